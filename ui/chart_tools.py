"""What a researcher expects around a chart (Frontier, Scaling): find and highlight a checkpoint
or family, family and range filters, colour by class or family, and export of the chart (SVG,
PNG) and its data (CSV). Every control lives in the URL like the sidebar's filters; zoom and pan
are the chart's own (scroll and drag; double-click resets)."""
from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from ui import charts, loaders, tables, widgets

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


# Label placement: the four spots a label may take beside its point (dx, dy, align), tried in turn.
LABEL_SPOTS = {"ru": (10, -9, "left"), "rd": (10, 13, "left"), "lu": (-10, -9, "right"), "ld": (-10, 13, "right")}
LABEL_COLUMNS = [f"label_{spot}" for spot in LABEL_SPOTS]
CHART_HEIGHT = 420  # the Frontier's and Scaling's height (px), so labels are placed for a known plot
LABEL_BOX = (600, CHART_HEIGHT - 85)  # the plot area (px) at 1280 px: the height is the whole chart, axes included
CHAR_PX, LINE_PX = 6.6, 16  # bold 11 px text, with a little air between lines
RING_PX = 9  # half the ring's size: a label never covers another found point


def place_labels(found: pd.DataFrame, shown: pd.DataFrame, y: str = "quality", log_y: bool = False,
                 limit: int = 24) -> tuple[pd.DataFrame, list[str]]:
    """Labels for found points that fit without overlapping each other: each point tries the four
    spots beside it, best points first, and keeps the first spot whose box overlaps no placed
    label and stays inside the plot; the rest are returned by name, to be listed beside the chart.
    Positions are worked out on the chart's axes (log cost; `y` linear or log) scaled to LABEL_BOX."""
    found = found.assign(**{f"label_{k}": "" for k in LABEL_SPOTS}, label_box=None)
    if found.empty:
        return found, []
    def scaled(values: pd.Series, span: pd.Series, size: float, log: bool) -> np.ndarray:
        v, s = (np.log10(values.astype(float)), np.log10(span.astype(float))) if log else (values.astype(float), span.astype(float))
        low, high = float(s.min()), float(s.max())
        if log:  # Vega's "nice" log axis runs from decade to decade
            low, high = math.floor(low), max(math.ceil(high), math.floor(low) + 1)
        else:  # and a linear one a little past the data
            pad = 0.05 * ((high - low) or 1.0)
            low, high = low - pad, high + pad
        return (v.to_numpy() - low) / ((high - low) or 1.0) * size
    px = scaled(found["cost"], shown["cost"], LABEL_BOX[0], True)
    py = LABEL_BOX[1] - scaled(found[y], shown[y], LABEL_BOX[1], log_y)  # screen y grows downwards
    placed, rest = [], []
    boxes = [(x - RING_PX, y0 - RING_PX, x + RING_PX, y0 + RING_PX) for x, y0 in zip(px, py, strict=True)]
    order = found[y].to_numpy(float).argsort()[::-1] if not log_y else found[y].to_numpy(float).argsort()
    for i in order:
        name = str(found["checkpoint"].iloc[i])
        width = CHAR_PX * len(name)
        for spot, (dx, dy, align) in LABEL_SPOTS.items():
            left = px[i] + dx if align == "left" else px[i] + dx - width
            top = py[i] + dy - LINE_PX * 0.8
            box = (left, top, left + width, top + LINE_PX)
            inside = 0 <= box[0] and box[2] <= LABEL_BOX[0] and 0 <= box[1] and box[3] <= LABEL_BOX[1]
            if inside and len(placed) < limit and not any(
                    box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
                boxes.append(box)
                placed.append(i)
                found.iloc[i, found.columns.get_loc(f"label_{spot}")] = name
                found.iloc[i, found.columns.get_loc("label_box")] = box
                break
        else:
            rest.append(name)
    return found, rest


def highlight_layers(x, y, dataset: str = "highlight", tooltip: list | None = None) -> alt.LayerChart:
    """A ring over each found point and its label where place_labels found room, from a named
    dataset; the ring's tooltip says what the point is."""
    ring = charts.data(dataset).mark_point(size=260, filled=False, strokeWidth=2.5, color="black").encode(
        x=x, y=y, tooltip=tooltip or ["checkpoint:N"])
    layers = [ring]
    for spot, (dx, dy, align) in LABEL_SPOTS.items():
        layers.append(charts.data(dataset).mark_text(align=align, dx=dx, dy=dy, fontSize=11, fontWeight="bold").encode(
            x=x, y=y, text=f"label_{spot}:N"))
    return alt.layer(*layers)


def say_found(found: pd.DataFrame, find: str, unlabelled: list[str] | None = None) -> None:
    if find:
        st.caption(f"“{widgets.literal(find)}”: {len(found)} point(s) highlighted" + ("" if len(found) else
                   " — no checkpoint or family matches under these filters"))
    if unlabelled:
        shown = ", ".join(unlabelled[:30]) + (f", and {len(unlabelled) - 30} more" if len(unlabelled) > 30 else "")
        st.caption(f"Ringed but not labelled (no room beside the point without overlapping): {widgets.literal(shown)}.")


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
    c.download_button("Data as CSV", lambda: tables.csv_text(frame), file_name=f"{name}.csv",
                      mime="text/csv", on_click="ignore", key=f"{name}_csv")


def range_layer(y, colour_by: str):
    """On the training-compute axis, each estimate's range as a horizontal bar behind its point."""
    return charts.data("points").transform_filter("datum.cost_high > datum.cost_low").mark_rule(opacity=0.3).encode(
        x=alt.X("cost_low:Q", scale=alt.Scale(type="log")), x2="cost_high:Q", y=y, color=colour(colour_by))
