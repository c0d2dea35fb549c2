"""Training-compute cross-check: the estimates against the training compute papers publish."""
import streamlit as st

from ui import loaders, tables, widgets

widgets.enter("training_crosscheck")
st.title("Training-compute cross-check")
st.caption("Each published training-compute figure beside this project's estimate of the same run, from its "
           "sourced recipe and the FLOPs counted here. Accelerator time becomes FLOPs at the accelerator's peak "
           "(TPU v3 61.5 and TPU v4 137.5 TFLOP/s per core; V100 125, A100 312 TFLOP/s) times the utilisation below.")
utilisation = widgets.url_select_slider("Accelerator utilisation assumed for time figures", [0.2, 0.3, 0.4, 0.5, 0.6],
                                        "utilisation", 0.4, format_func=lambda u: f"{u:.0%}")
checked = loaders.training_crosscheck(float(utilisation))
if checked["paper"].empty:
    st.info("No FLOP counts yet: `python -m engine catalog refresh` loads the shipped ones.")
    st.stop()
paper = checked["paper"]
st.subheader("The convention: the ViT paper's pre-training exaFLOPs (Table 6)")
tables.show(paper, column_config={"ratio": st.column_config.NumberColumn(format="%.3f")})
within = paper["ratio"].dropna()
st.caption(f"3 × forward FLOPs at 224 px × 303M images × epochs reproduces the paper within "
           f"{100 * (within - 1).abs().max():.1f}% for the {len(within)} runs whose network timm has.")
st.subheader("Published figures for checkpoints and runs")
table = checked["published"]
tables.show(table[["figure", "estimate_of", "covers", "value", "unit", "published_flops", "estimate_flops", "ratio",
                    "implied_utilisation", "outlier", "reason", "source", "note"]],
            column_config={"ratio": st.column_config.NumberColumn(format="%.2f"),
                           "implied_utilisation": st.column_config.NumberColumn(format="percent")})
unexplained = table[table["outlier"] & (table["reason"] == "")]
if len(unexplained):
    st.warning(f"{len(unexplained)} estimate(s) beyond 2× of the published figure have no reason recorded yet.")
