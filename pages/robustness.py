"""Robustness at matched accuracy: OOD against ImageNet accuracy on logit axes, effective robustness."""
import altair as alt
import pandas as pd
import streamlit as st

from engine.analysis import budget_match, points_table, robustness
from engine.catalog.taxonomy import DATA_SCALES
from ui import charts, loaders, tables, widgets

LOGIT_TICKS = [1, 2, 5, 10, 20, 30, 50, 70, 80, 90, 95, 98, 99]


def logit_axis(field: str, title: str, axis_channel):
    """An accuracy axis on the logit scale: data are logits, ticks are labelled in percent."""
    return axis_channel(f"{field}:Q", title=title, scale=alt.Scale(zero=False, padding=12),
                        axis=alt.Axis(values=list(robustness.logit(LOGIT_TICKS)),
                                      labelExpr="format(100 / (1 + exp(-datum.value)), '.0f') + '%'"))


@st.cache_data(show_spinner=False, max_entries=16)
def robustness_spec(x_title: str, y_title: str) -> dict:
    """Checkpoints and the fitted trend on logit axes, built once per OOD set; both are data."""
    x, y = logit_axis("x", x_title, alt.X), logit_axis("y", y_title, alt.Y)
    dots = charts.data("points").mark_point(filled=True, opacity=0.6).encode(
        x=x, y=y, color=charts.class_color(),
        shape=alt.Shape("data_scale:N", title="pre-training data", scale=alt.Scale(domain=list(DATA_SCALES))),
        tooltip=["checkpoint:N", "arch_class:N", "pretrain_data:N", alt.Tooltip("id_accuracy:Q", format=".2f"),
                 alt.Tooltip("ood_accuracy:Q", format=".2f"), alt.Tooltip("effective_robustness:Q", format="+.2f")])
    fit = charts.data("trend").mark_line(color="black", strokeDash=[6, 3]).encode(x="x:Q", y="y:Q")
    return charts.spec_of(alt.layer(dots, fit))


widgets.enter("robustness")
st.title("Robustness at matched accuracy")
filters = widgets.global_filters()
st.caption(f"Pre-training data: {widgets.literal(filters['data_label'])}.")
image_text = filters["zoo"] == "image-text"
ood_sets = robustness.IMAGE_TEXT_OOD_NAMES if image_text else robustness.OOD_NAMES
ood = widgets.url_selectbox("Out-of-distribution set", list(ood_sets), "ood", format_func=ood_sets.get)
points = loaders.current_points()
try:
    result = loaders.robustness_view(ood)
except points_table.AnalysisError as e:
    st.info(f"{e} Published results arrive with the catalog (`python -m engine catalog refresh`).")
    st.stop()
view = loaders.robustness_shown(ood, filters)  # once per server and filters
shown = view["points"]
if shown.empty:
    st.info(f"No checkpoint under these filters (pre-training data: {widgets.literal(filters['data_label'])}) has "
            "results on both sets. Pick another source or the mix in the sidebar's Pre-training data.")
    st.stop()
if result["note"]:
    (st.warning if ood == "imagenet-a" else st.caption)(result["note"])
trend = result["trend"]
low, high = float(shown["id_accuracy"].min()), float(shown["id_accuracy"].max())
curve = robustness.trend_curve(trend, low, high)
plot = shown[["checkpoint", "arch_class", "pretrain_data", "id_accuracy", "ood_accuracy", "effective_robustness"]].assign(
    x=robustness.logit(shown["id_accuracy"]), y=robustness.logit(shown["ood_accuracy"]),
    data_scale=shown["data_scale"].astype(str))
line = pd.DataFrame({"x": robustness.logit(curve["id_accuracy"]), "y": robustness.logit(curve["ood_accuracy"])})
charts.draw(robustness_spec(f"ImageNet accuracy, {result['x']} (logit scale)", f"{result['name']} accuracy (logit scale)"),
            {"points": plot, "trend": line}, width="stretch")
fitted_on = (f"the {trend['n_points']} image-text checkpoints themselves (no classifier result has these two axes)"
             if trend["fitted_on"] == robustness.ZOO_TREND else
             f"the {trend['n_points']} classifiers trained on {trend['fitted_on']} only")
st.caption(f"Dashed: logit(OOD) = {trend['intercept']:.2f} + {trend['slope']:.2f} · logit(ImageNet), fitted on "
           f"{fitted_on} (R² {trend['r2']:.2f}). Effective robustness = OOD accuracy minus the line's prediction at "
           "the same ImageNet accuracy (Taori et al. 2020)" + ("; zero-shot accuracies, OpenCLIP's published results."
                                                               if image_text else "."))

st.subheader("Mean effective robustness (accuracy points, 95% bootstrap CI)")
by_class, by_scale = pd.DataFrame(view["by_class"]), pd.DataFrame(view["by_scale"])
for frame in (by_class, by_scale):
    frame["effective robustness"] = [
        f"{budget_match.bound_text(r['mean'])} (too few for an interval)" if r["too_few"]
        else budget_match.with_ci(r["mean"], r["ci_low"], r["ci_high"]) for r in frame.to_dict("records")]
left, right = st.columns(2)
tables.show(widgets.grey_rows(by_class, by_class["too_few"]), left, share=0.5, column_order=["arch_class", "n", "effective robustness"])
tables.show(widgets.grey_rows(by_scale, by_scale["too_few"]), right, share=0.5,
            column_order=["arch_class", "data_scale", "n", "effective robustness"])

st.subheader(f"Budget-matched gap on {result['name']}{widgets.data_said(filters)}")
cost = widgets.url_selectbox("Cost", ["gflops", "params_m", "train_flops"], "cost", format_func=widgets.COST_SHORT.get,
                             help=widgets.COST_HELP)
try:
    chosen = loaders.selection(None, cost, result["y"], filters)
except points_table.AnalysisError as e:
    st.info(str(e))
else:
    rows = loaders.derived(chosen, budget_match.budget_table, result["y"], loaders.budget_grid(chosen, 6))
    widgets.budget_tables(rows, cost)
    widgets.interval_note()

if image_text:  # OpenCLIP publishes accuracies only, and zero-shot runs here store no ECE
    st.stop()
st.subheader("Calibration (ECE) against cost")
ece = points[(points["quality_metric"] == "imagenet.ece") & (points["cost_metric"] == "gflops")]
st.caption("Published results carry no ECE: timm publishes top-1 and top-5 only. ECE comes from evaluations "
           "run here (the Run page, or `python -m engine eval MODEL --data DIR`).")
if not ece.empty:
    st.altair_chart(alt.Chart(ece).mark_point(filled=True).encode(
        x=alt.X("cost:Q", scale=alt.Scale(type="log"), title=widgets.COST_LABELS["gflops"]),
        y=alt.Y("quality:Q", title="ECE (15 bins, lower is better)"), color=charts.class_color(),
        tooltip=["checkpoint", "arch_class", alt.Tooltip("quality:Q", format=".4f")]), width="stretch")
