"""Scaling: log-log error against cost per class, fitted lines with CI bands, slopes, crossovers."""
import altair as alt
import pandas as pd
import streamlit as st

from engine.analysis import points_table, scaling_fits
from ui import chart_tools, charts, loaders, tables, widgets


@st.cache_data(show_spinner=False, max_entries=32)
def scaling_spec(cost: str, metric: str, colour_by: str, with_curves: bool, with_crossings: bool = False) -> dict:
    """Points, fitted curves with their bands, where each class's line crosses ConvNets' (a rule at
    the estimate, a shaded band over its 95% interval within the plotted costs) and the
    highlight, built once per view; all data."""
    x = alt.X("cost:Q", scale=alt.Scale(type="log"), title=widgets.COST_LABELS[cost])
    label = "100 − " + metric if points_table.higher_is_better(metric) else metric
    y = alt.Y("error:Q", scale=alt.Scale(type="log"), title=f"error ({label}, log)")
    ranged = cost == "train_flops"
    cost_tip = (alt.Tooltip("cost_range:N", title="training FLOPs [range]") if ranged
                else alt.Tooltip("cost:Q", format=".3g"))
    dots = charts.data("points").mark_point(filled=True).encode(
        x=x, y=y, color=chart_tools.colour(colour_by),
        tooltip=["checkpoint:N", "arch_class:N", "family:N", cost_tip,
                 alt.Tooltip("quality:Q", format=".2f")]).add_params(alt.selection_interval(bind="scales", name="zoom"))
    layers = [dots]
    if ranged:
        layers.insert(0, chart_tools.range_layer(y, colour_by))
    if with_curves:
        curves = charts.data("curves")
        layers += [curves.mark_area(opacity=0.15).encode(x=x, y="low:Q", y2="high:Q", color=charts.class_color()),
                   curves.mark_line().encode(x=x, y="fit:Q", color=charts.class_color())]
    if with_crossings:
        crossings = charts.data("crossings")
        tip = ["pair:N", alt.Tooltip("crossover:Q", format=".3g"), alt.Tooltip("ci_low:Q", format=".3g"),
               alt.Tooltip("ci_high:Q", format=".3g"), "located:N"]
        layers.insert(0, crossings.mark_rect(opacity=0.08).encode(x=alt.X("band_low:Q"), x2="band_high:Q",
                                                                   color=charts.class_color(), tooltip=tip))
        layers.append(crossings.mark_rule(strokeDash=[2, 4], strokeWidth=1.5).encode(
            x="crossover:Q", color=charts.class_color(), tooltip=tip))
    layers.append(chart_tools.highlight_layers(x, y, tooltip=[
        "checkpoint:N", "arch_class:N", "pretrain_data:N", alt.Tooltip("cost:Q", format=".3g"),
        alt.Tooltip("quality:Q", format=".2f")]))
    return charts.spec_of(alt.layer(*layers).resolve_scale(color="independent" if colour_by == "family" else "shared")
                          .properties(height=chart_tools.CHART_HEIGHT))

chosen, cost, metric = widgets.analysis_page("scaling", "Scaling laws")
tools = chosen is not None and chart_tools.enabled()
if tools:
    chosen = chart_tools.view_filters(chosen, metric)
    if chosen.empty:
        st.info("No checkpoint is left under the chart filters in the sidebar; widen them.")
        st.stop()
if chosen is not None:
    find, colour_by = chart_tools.find_and_colour() if tools else ("", "class")
    on = widgets.url_selectbox("Fit on", ["frontier", "all"], "on")
    result = loaders.derived(chosen, scaling_fits.scaling, metric, on=on, curves=True)  # once per server and view
    fitted = result["points"][["checkpoint", "arch_class", "family", "pretrain_data", "cost", "quality", "error"]]
    if cost == "train_flops":
        fitted = fitted.merge(chosen[["checkpoint", "cost_low", "cost_high", "cost_range"]].drop_duplicates("checkpoint"),
                              on="checkpoint", how="left")
    found, unlabelled = chart_tools.place_labels(chart_tools.matches(fitted, find), fitted, y="error", log_y=True)
    datasets = {"points": fitted, "highlight": found[["checkpoint", "arch_class", "pretrain_data", "cost", "quality",
                                                      "error", *chart_tools.LABEL_COLUMNS]]}
    if not result["curves"].empty:
        datasets["curves"] = result["curves"]
    crossings = scaling_fits.crossings_frame(result["crossovers"], "ConvNet", float(fitted["cost"].min()),
                                             float(fitted["cost"].max()))
    if crossings is not None:
        datasets["crossings"] = crossings
    with st.container(key="crossovers"):  # the answer first, on the first screen: where each pair's lines cross
        for c in sorted(result["crossovers"], key=lambda c: "ConvNet" not in c["classes"]):
            st.markdown("- " + widgets.literal(scaling_fits.crossover_text(c, widgets.COST_UNITS[cost])))
    spec = scaling_spec(cost, metric, colour_by, "curves" in datasets, crossings is not None)
    charts.draw(spec, datasets, width="stretch", key="scaling_chart")
    widgets.probe_note(metric)
    if tools:
        chart_tools.say_found(found, find, unlabelled)
        chart_tools.export_buttons(spec, datasets, fitted, f"scaling_{cost}_{metric}")
    tables.show(pd.DataFrame([{"class": c, "slope b": f["b"], "slope 95% CI": f"[{f['b_ci'][0]:.3f}, {f['b_ci'][1]:.3f}]",
                                "R²": f["r2"], "points": f["n_points"]} for c, f in result["fits"].items()]),
                 hide_index=True, width="stretch")
    if crossings is not None:
        st.caption("On the chart: a dotted rule where a class's fitted line crosses ConvNets', shaded over the 95% "
                   "interval of that crossing (cut at the plotted costs). A wide band is why the page does not call "
                   "it a crossover: the fits cannot tell where, or whether, the lines cross.")
    for arch_class, why in result["skipped"].items():
        st.caption(f"{arch_class}: {why}")
