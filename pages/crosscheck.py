"""FLOP cross-check: counted MACs against timm's published infer_gmacs, with every outlier's reason."""
import altair as alt
import streamlit as st

from engine.measure import flops
from ui import charts, loaders, tables, widgets

widgets.enter("crosscheck")
st.title("FLOP cross-check")
st.caption("Counted here: forward pass, batch 1, 2 FLOPs per multiply-add, attention matmuls included "
           "(torch FlopCounterMode on the meta device); MACs = FLOPs / 2. Published: timm's infer_gmacs "
           "(fvcore or deepspeed), the newest benchmark file per (architecture, resolution).")
frame = loaders.get_store().compute_crosscheck()
if frame.empty:
    st.info("No pairs to compare yet: import published benchmarks (`python -m engine catalog import DIR`).")
    st.stop()
summary = flops.crosscheck_summary(frame)
a, b, c = st.columns(3)
a.metric("matched pairs", summary["pairs"])
b.metric("agree", f"{summary['share_within_tolerance']:.1%}", help=summary["tolerance"])
c.metric("within 3% strictly", f"{summary['share_within_3pct_strict']:.1%}")
checked = flops.crosscheck(frame)
st.altair_chart(alt.Chart(checked[["arch", "arch_class", "img_size", "published_gmacs", "counted_gmacs", "ratio"]])
                .mark_point(filled=True, opacity=0.6).encode(
    x=alt.X("published_gmacs:Q", scale=alt.Scale(type="log"), title="published GMACs"),
    y=alt.Y("ratio:Q", title="counted / published"), color=charts.class_color(),
    tooltip=["arch", "img_size", "published_gmacs", alt.Tooltip("counted_gmacs:Q", format=".3f"),
             alt.Tooltip("ratio:Q", format=".3f")]), width="stretch")
st.subheader(f"{len(summary['outliers'])} outliers and why")
tables.show(checked[~checked["within_tolerance"]][["arch", "arch_class", "img_size", "counted_gmacs",
                                                     "published_gmacs", "ratio", "reason", "source_file"]],
             hide_index=True, width="stretch")
