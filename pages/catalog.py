"""Catalog: how many pretrained checkpoints each architecture class has, and the list itself."""
import altair as alt
import streamlit as st

from engine import catalog, taxonomy
from ui import charts, loaders, widgets

widgets.enter("catalog")
store = loaders.get_store()
st.title("Checkpoint catalog")
counts = store.class_counts()
total = int(counts["checkpoints"].sum())
st.write(f"{total} pretrained checkpoints in the installed timm, by architecture class.")

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

chosen = widgets.url_selectbox("Class", ["all", *taxonomy.ARCH_CLASSES], "arch_class")
frame = catalog.list_checkpoints(store, None if chosen == "all" else chosen)
st.dataframe(frame, hide_index=True, width="stretch")
