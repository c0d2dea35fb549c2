"""Frontier: every checkpoint on one cost axis, with each class's Pareto frontier and a budget."""
import altair as alt
import streamlit as st

from engine.analysis import budget_match, pareto
from engine.catalog.taxonomy import DATA_SCALES
from ui import chart_tools, charts, loaders, tables, widgets

POINT_COLUMNS = ["checkpoint", "arch_class", "family", "pretrain_data", "data_scale", "img_size",
                 "cost", "quality", "source"]  # only what the chart draws: a lighter page
RANGE_COLUMNS = ["cost_low", "cost_high", "cost_range"]  # the training-compute axis: each estimate's range


@st.cache_data(show_spinner=False, max_entries=32)
def frontier_spec(cost: str, metric: str, colour_by: str) -> dict:
    x = alt.X("cost:Q", scale=alt.Scale(type="log"), title=widgets.COST_LABELS[cost])
    y = alt.Y("quality:Q", scale=alt.Scale(zero=False), title=metric)
    ranged = cost == "train_flops"
    cost_tip = (alt.Tooltip("cost_range:N", title="training FLOPs [range]") if ranged
                else alt.Tooltip("cost:Q", format=".3g"))
    dots = charts.data("points").mark_point(filled=True, opacity=0.6).encode(
        x=x, y=y, color=chart_tools.colour(colour_by),
        shape=alt.Shape("data_scale:N", title="pre-training data", scale=alt.Scale(domain=list(DATA_SCALES))),
        tooltip=["checkpoint:N", "arch_class:N", "family:N", "pretrain_data:N", "img_size:Q",
                 cost_tip, alt.Tooltip("quality:Q", format=".2f"), "source:N"],
    ).add_params(alt.selection_point(fields=["checkpoint"], name="pick"),
                 alt.selection_interval(bind="scales", name="zoom"))
    steps = charts.data("frontier").mark_line(interpolate="step-after").encode(
        x=x, y=y, color=charts.class_color())
    rule = charts.data("budget").mark_rule(strokeDash=[6, 3]).encode(x="budget:Q")
    ring_tooltip = ["checkpoint:N", "arch_class:N", "pretrain_data:N", alt.Tooltip("cost:Q", format=".3g"),
                    alt.Tooltip("quality:Q", format=".2f")]
    layers = [dots, steps, rule, chart_tools.highlight_layers(x, y, tooltip=ring_tooltip)]
    if ranged:
        layers.insert(0, chart_tools.range_layer(y, colour_by))
    return charts.spec_of(alt.layer(*layers).properties(height=chart_tools.CHART_HEIGHT))


chosen, cost, metric = widgets.analysis_page("frontier", "Pareto frontier per class")
tools = chosen is not None and chart_tools.enabled()
if tools:
    chosen = chart_tools.view_filters(chosen, metric)
if chosen is not None and chosen.empty:
    st.info("No checkpoint is left under the chart filters in the sidebar; widen them.")
elif chosen is not None:
    find, colour_by = chart_tools.find_and_colour() if tools else ("", "class")
    budget = widgets.budget_slider(chosen, cost)
    [row] = loaders.derived(chosen, budget_match.budget_table, metric, (budget,))
    st.subheader(f"Best of each class at ≤ {budget:g}{widgets.COST_UNITS[cost]}")
    with st.container(key="best_under_budget"):
        st.markdown(widgets.markdown_table([{"class": c, "checkpoint": b["checkpoint"], metric: f"{b['quality']:.2f}",
                                             tables.with_unit("cost", cost): tables.cost_cell(b["cost"], cost),
                                             "source": b["source"]}
                                            for c, b in row["best"].items()]))
    front = loaders.derived(chosen, pareto.frontier, metric)  # once per server and view
    found, unlabelled = chart_tools.place_labels(chart_tools.matches(chosen, find), chosen)
    spec = frontier_spec(cost, metric, colour_by)
    drawn = POINT_COLUMNS + (RANGE_COLUMNS if cost == "train_flops" else [])
    datasets = {"points": loaders.arrow(chosen, drawn),
                "frontier": front[["cost", "quality", "arch_class"]],
                "budget": [{"budget": budget}], "highlight": found[["checkpoint", "arch_class", "pretrain_data", "cost", "quality",
                                        *chart_tools.LABEL_COLUMNS]]}
    event = charts.draw(spec, datasets, width="stretch", on_select="rerun", selection_mode="pick",
                        key="frontier_chart")
    picked = (event or {}).get("selection", {}).get("pick") or []
    if picked and picked[0].get("checkpoint"):
        st.switch_page("pages/checkpoint.py", query_params={"checkpoint": picked[0]["checkpoint"]})
    widgets.probe_note(metric)
    if tools:
        chart_tools.say_found(found, find, unlabelled)
        chart_tools.export_buttons(spec, datasets, chosen[POINT_COLUMNS + ["params_m"]], f"frontier_{cost}_{metric}")
    st.caption("Scroll to zoom, drag to pan, double-click to reset; click a point for its checkpoint.")
    widgets.flop_note(cost)
