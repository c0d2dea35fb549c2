"""Frontier: every checkpoint on one cost axis, with each class's Pareto frontier and a budget."""
import altair as alt
import streamlit as st

from engine import analysis
from engine.taxonomy import DATA_SCALES
from ui import charts, widgets

POINT_COLUMNS = ["checkpoint", "arch_class", "family", "pretrain_data", "data_scale", "img_size",
                 "cost", "quality", "source"]  # only what the chart draws: a lighter page


@st.cache_data(show_spinner=False, max_entries=32)
def frontier_spec(cost: str, metric: str) -> dict:
    x = alt.X("cost:Q", scale=alt.Scale(type="log"), title=widgets.COST_LABELS[cost])
    y = alt.Y("quality:Q", scale=alt.Scale(zero=False), title=metric)
    dots = charts.data("points").mark_point(filled=True, opacity=0.6).encode(
        x=x, y=y, color=charts.class_color(),
        shape=alt.Shape("data_scale:N", title="pre-training data", scale=alt.Scale(domain=list(DATA_SCALES))),
        tooltip=["checkpoint:N", "arch_class:N", "family:N", "pretrain_data:N", "img_size:Q",
                 alt.Tooltip("cost:Q", format=".3g"), alt.Tooltip("quality:Q", format=".2f"), "source:N"],
    ).add_params(alt.selection_point(fields=["checkpoint"], name="pick"))
    steps = charts.data("frontier").mark_line(interpolate="step-after").encode(x=x, y=y, color=charts.class_color())
    rule = charts.data("budget").mark_rule(strokeDash=[6, 3]).encode(x="budget:Q")
    return charts.spec_of(dots + steps + rule)


chosen, cost, metric = widgets.analysis_page("frontier", "Pareto frontier per class")
if chosen is not None:
    budget = widgets.budget_slider(chosen)
    front = analysis.frontier(chosen, metric)
    event = charts.draw(frontier_spec(cost, metric),
                        {"points": chosen[POINT_COLUMNS], "frontier": front[["cost", "quality", "arch_class"]],
                         "budget": [{"budget": budget}]},
                        width="stretch", on_select="rerun", key="frontier_chart")
    picked = (event or {}).get("selection", {}).get("pick") or []
    if picked and picked[0].get("checkpoint"):
        st.switch_page("pages/checkpoint.py", query_params={"checkpoint": picked[0]["checkpoint"]})
    [row] = analysis.budget_table(chosen, metric, [budget], n_boot=200)
    st.subheader(f"Best of each class at ≤ {budget:g}{widgets.COST_UNITS[cost]}")
    st.table([{"class": c, "checkpoint": b["checkpoint"], metric: round(b["quality"], 2),
               cost: round(b["cost"], 3), "source": b["source"]} for c, b in row["best"].items()])
    widgets.flop_note(cost)
