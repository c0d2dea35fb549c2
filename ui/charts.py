"""Charts whose Vega-Lite spec is built once and whose data is swapped on each rerun."""
from __future__ import annotations

import altair as alt
import streamlit as st


def data(name: str) -> alt.Chart:
    """A chart layer reading the named dataset `name`, supplied at draw time (see `draw`)."""
    return alt.Chart(alt.NamedData(name))


def spec_of(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite dict of a chart built on named datasets. Building and validating an Altair
    chart costs ~50 ms, so pages cache this per (cost, metric) and only swap the data."""
    spec = chart.to_dict()
    spec.pop("config", None)  # Altair's default 300×300 view; Streamlit's theme sizes the chart
    return spec


def draw(spec: dict, datasets: dict, **kwargs):
    """Draw a cached spec with this run's data. Dataset names are fixed, so a rerun that only
    changes data (a budget step) keeps the spec identical and the browser updates the drawn
    chart in place instead of embedding it again."""
    return st.vega_lite_chart({**spec, "datasets": datasets}, **kwargs)


# One colour per class on every page: the Okabe-Ito palette, distinguishable with the common
# colour-vision deficiencies and on a projector.
CLASS_COLORS = {"ConvNet": "#0072B2", "ViT": "#D55E00", "Hybrid": "#009E73", "MLP": "#CC79A7"}


def class_color(field: str = "arch_class", title: str | None = "class", **kwargs) -> alt.Color:
    """Colour by architecture class with the shared palette (also for fields holding class names,
    e.g. a comparison labelled by its non-reference class)."""
    return alt.Color(f"{field}:N", title=title, scale=alt.Scale(domain=list(CLASS_COLORS),
                                                                range=list(CLASS_COLORS.values())), **kwargs)


TOO_FEW_POINT = "#999999"  # a too-few budget's hollow point
NEUTRAL_FILL = "#f3efe6"   # a heatmap cell with no clear winner: neither class's colour
TOO_FEW_FILL = "#d9d9d9"   # too few checkpoints for a verdict


@st.cache_data(show_spinner=False, max_entries=32)
def gap_heatmap_spec(comparison: str, metric: str, cost_label: str, budget_order: tuple, span: float,
                     group_title: str, group_order: tuple) -> dict:
    """One comparison's budget × group heatmap (When each wins), built once per view; its cells
    are data (when.cells_frame). Colour only where a class leads: the gap on a diverging scale;
    one neutral fill where no class leads; grey where too few."""
    base = data("cells").encode(
        x=alt.X("budget_label:O", sort=list(budget_order), title=f"budget: {cost_label} ≤"),
        y=alt.Y("group:O", sort=list(group_order), title=group_title))
    tooltip = ["comparison:N", "group:N", "budget:Q", alt.Tooltip("gap:Q", format="+.2f"),
               alt.Tooltip("ci_low:Q", format="+.3f"), alt.Tooltip("ci_high:Q", format="+.3f"),
               "n_checkpoints:Q", "verdict:N"]
    leads = base.transform_filter("datum.shade === 'leads'").mark_rect().encode(
        color=alt.Color("gap:Q", title="gap where a class leads (points)",
                        scale=alt.Scale(scheme="blueorange", domain=[-span, span], domainMid=0)),
        tooltip=tooltip)
    neutral = base.transform_filter("datum.shade === 'no clear winner'").mark_rect(color=NEUTRAL_FILL).encode(
        tooltip=tooltip)
    too_few = base.transform_filter("datum.shade === 'too few'").mark_rect(color=TOO_FEW_FILL).encode(tooltip=tooltip)
    text = base.mark_text(fontSize=10, lineBreak="\n", limit=0).encode(
        text="label:N", color=alt.condition(f"datum.shade === 'leads' && abs(datum.gap) > {0.45 * span}",
                                            alt.value("white"), alt.value("black")))
    return spec_of(alt.layer(leads, neutral, too_few, text).properties(
        title=f"{comparison} (points of {metric})", height=max(240, 90 * len(group_order))))


def judged_segments(frame, by: str) -> list[str]:
    """Per row (sorted by budget within `by`), the run of judged budgets it belongs to: a too-few
    budget ends a run, so a line or band drawn per segment breaks there instead of joining a
    result to a budget that has none."""
    segment, out = {}, {}
    for index, row in frame.sort_values([by, "budget"]).iterrows():
        key = row[by]
        if row["too_few"]:
            segment[key] = segment.get(key, 0) + 1
        out[index] = f"{key}#{segment.get(key, 0)}"
    return [out[i] for i in frame.index]
