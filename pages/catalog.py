"""Catalog: how many pretrained checkpoints each architecture class has, and the list itself."""
import altair as alt
import streamlit as st

from engine.catalog import taxonomy, timm_models
from ui import charts, loaders, tables, widgets

widgets.enter("catalog")
store = loaders.get_store()
zoo = widgets.zoo_switch()
st.title("Checkpoint catalog")
everything = timm_models.list_checkpoints(store, zoo=zoo)
counts = everything.groupby("arch_class").size().rename("checkpoints").reset_index()
total = len(everything)
st.write(f"{total} pretrained checkpoints in the installed timm, by architecture class." if zoo == "imagenet" else
         f"{total} pretrained image-text checkpoints the installed open_clip lists, by the class of their image "
         "tower (ids `open_clip:<model>.<tag>`; `timm_checkpoint` is timm's copy of the same image tower).")

columns = st.columns(len(taxonomy.ARCH_CLASSES))
by_class = dict(zip(counts["arch_class"], counts["checkpoints"]))
for column, arch_class in zip(columns, taxonomy.ARCH_CLASSES):
    column.metric(arch_class, int(by_class.get(arch_class, 0)))

st.altair_chart(
    alt.Chart(counts).mark_bar().encode(
        x=alt.X("checkpoints:Q", title="pretrained checkpoints"),
        y=alt.Y("arch_class:N", sort="-x", title=None),
        color=charts.class_color(legend=None),
        tooltip=["arch_class", "checkpoints"]),
    width="stretch")

left, right = st.columns(2)
with left:
    chosen = widgets.url_selectbox("Class", ["all", *taxonomy.ARCH_CLASSES], "arch_class")
with right:
    show = widgets.url_selectbox("Show", list(widgets.CATALOG_LISTS), "show", format_func=widgets.CATALOG_LISTS.get,
                                 help="Every checkpoint, or those the training-compute axis leaves out for want of "
                                      "an estimate, with why (also `python -m engine catalog training-compute "
                                      "--missing`).")
arch_class = None if chosen == "all" else chosen
if show == "no-training-compute":
    missing = loaders.training_compute_missing(zoo, arch_class)
    st.write(f"{len(missing):,} of these checkpoints have no training-compute estimate, so the training-compute "
             "axis leaves them out; **why** says what the estimator lacks (a sourced recipe, a length, a parent's "
             "estimate).")
    tables.show(missing)
else:
    tables.show(everything if arch_class is None else everything[everything["arch_class"] == arch_class])
