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
