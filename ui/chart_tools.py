"""What a researcher expects around a chart (Frontier, Scaling): find and highlight a checkpoint
or family, family and range filters, colour by class or family, and export of the chart (SVG,
PNG) and its data (CSV). Every control lives in the URL like the sidebar's filters; zoom and pan
are the chart's own (scroll and drag; double-click resets)."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from ui import charts, loaders, widgets

COLOUR_BY = {"class": "class", "family": "family"}


TOOL_KEYS = ("find", "family", "params", "res", "q", "colour")


def enabled() -> bool:
    """The tools appear on demand (a toggle in the URL as tools=1, on by itself when a link carries
    any tool's parameter): a room of viewers opening the chart gets the light page."""
    if "tools" not in st.session_state or st.session_state.get("entering_page"):
        st.session_state["tools"] = (st.query_params.get("tools") == "1"
                                     or any(k in st.query_params for k in TOOL_KEYS))
    on = st.toggle("Chart tools: find, filter, colour, export", key="tools")
    if on:
        st.query_params["tools"] = "1"
    else:
        st.query_params.pop("tools", None)
        for key in TOOL_KEYS:
            st.query_params.pop(key, None)
    return on


def _range_from_url(key: str, low: float, high: float) -> tuple[float, float]:
    raw = st.query_params.get(key)
    try:
        a, b = (float(v) for v in raw.split(":"))
        a, b = max(a, low), min(b, high)  # a link's range is clamped to the data's span
        if a <= b:
            return a, b
    except (AttributeError, TypeError, ValueError):
        pass
    return low, high


def url_range(label: str, values: pd.Series, key: str, fmt: str) -> tuple[float, float] | None:
    """A range slider over the values' span, kept in the URL as 'low:high'; None when the values
    do not span a range."""
    values = values.dropna()
    if values.empty or values.min() == values.max():
        return None
    low, high = float(values.min()), float(values.max())
    if widgets.url_wins(key):
        st.session_state[key] = _range_from_url(key, low, high)
    a, b = st.session_state[key]
    if not (low <= a <= b <= high):  # the data changed under the view: full span
        st.session_state[key] = (low, high)
    chosen = st.slider(label, low, high, key=key, format=fmt)
    if chosen == (low, high):
        st.query_params.pop(key, None)
    else:
        st.query_params[key] = f"{chosen[0]:g}:{chosen[1]:g}"
    return chosen


def view_filters(chosen: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Family, parameter, resolution and quality filters in the sidebar, under the shared ones."""
    params = loaders.params_lookup()
    frame = chosen.merge(params, on=["checkpoint", "img_size"], how="left")
    with st.sidebar:
        st.subheader("Chart filters")
        families = sorted(frame["family"].dropna().unique())
        picked = widgets.url_multiselect("Families", families, "family", [], placeholder="all families")
        param_range = url_range("Parameters (M)", frame["params_m"], "params", "%.1f")
        size_range = url_range("Resolution (px)", frame["img_size"], "res", "%d")
        quality_range = url_range(metric, frame["quality"], "q", "%.2f")
    keep = pd.Series(True, index=frame.index)
    if picked:
        keep &= frame["family"].isin(picked)
    for column, bounds in (("params_m", param_range), ("img_size", size_range), ("quality", quality_range)):
        if bounds is not None:
            keep &= frame[column].isna() | frame[column].between(*bounds)
    return frame[keep].reset_index(drop=True)


def find_and_colour() -> tuple[str, str]:
    left, right = st.columns([3, 1])
    with left:
        find = widgets.url_text("Find a checkpoint or family (highlighted)", "find",
                                placeholder="e.g. convnext, eva02, vit_base_patch16_224.augreg2_in21k_ft_in1k")
    with right:
        colour = widgets.url_selectbox("Colour by", list(COLOUR_BY), "colour", default="class")
    return find.strip(), colour


def matches(frame: pd.DataFrame, find: str) -> pd.DataFrame:
    """Points whose checkpoint contains the text or whose family is it (case-insensitive)."""
    if not find:
        return frame.iloc[:0]
    text = find.lower()
    hit = frame["checkpoint"].str.lower().str.contains(text, regex=False) | (frame["family"].str.lower() == text)
    return frame[hit]


def colour(colour_by: str) -> alt.Color:
    if colour_by == "family":
        return alt.Color("family:N", title="family", legend=alt.Legend(columns=2, symbolLimit=40))
    return charts.class_color()


def highlight_layers(x, y, dataset: str = "highlight") -> alt.LayerChart:
    """A ring and a label over each found point, from a named dataset."""
    ring = charts.data(dataset).mark_point(size=260, filled=False, strokeWidth=2.5, color="black").encode(
        x=x, y=y, tooltip=["checkpoint:N"])
    label = charts.data(dataset).mark_text(align="left", dx=10, dy=-8, fontSize=11, fontWeight="bold").encode(
        x=x, y=y, text="checkpoint:N")
    return ring + label


def say_found(found: pd.DataFrame, find: str) -> None:
    if find:
        st.caption(f"“{find}”: {len(found)} point(s) highlighted" + ("" if len(found) else
                   " — no checkpoint or family matches under these filters"))


@st.cache_data(show_spinner=False, max_entries=16)
def _render(spec_json: str, fmt: str) -> bytes:
    import json

    import vl_convert as vlc
    spec = json.loads(spec_json)
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode()
    return vlc.vegalite_to_png(spec, scale=2)


def export_buttons(spec: dict, datasets: dict, frame: pd.DataFrame, name: str) -> None:
    """SVG and PNG of the chart as drawn (rendered offline by vl-convert when clicked), and the CSV
    of its points. Data travel inline in the exported spec."""
    import json

    def spec_json() -> str:  # built on click, not on every rerun
        inline = {**spec, "datasets": {k: (v.to_dict("records") if isinstance(v, pd.DataFrame)
                                           else v.to_pylist() if hasattr(v, "to_pylist") else v)  # an Arrow table
                                       for k, v in datasets.items()}, "width": 900, "height": 500}
        return json.dumps(inline, default=str)
    a, b, c, _ = st.columns([1, 1, 1, 3])
    a.download_button("Chart as SVG", lambda: _render(spec_json(), "svg"), file_name=f"{name}.svg",
                      mime="image/svg+xml", on_click="ignore", key=f"{name}_svg")
    b.download_button("Chart as PNG", lambda: _render(spec_json(), "png"), file_name=f"{name}.png",
                      mime="image/png", on_click="ignore", key=f"{name}_png")
    c.download_button("Data as CSV", lambda: frame.to_csv(index=False), file_name=f"{name}.csv",
                      mime="text/csv", on_click="ignore", key=f"{name}_csv")
