"""Every table a page draws goes through `show`: each number formatted for reading by what it is
(a FLOP count as 1.18e+20, never a 21-digit integer), the unit in the header, and columns kept
numeric so that sorting by a click still sorts by value."""
from __future__ import annotations

import re

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

FLOP_FORMAT = "%.2e"     # 1.18e+20: every FLOP count, samples seen and any count past ten million
NUMBER_FORMAT = "%.4g"   # 78.28, 4.123, 0.0512: every other fractional number
LARGE = 1e7
COST_UNIT_NAMES = {"gflops": "GFLOPs", "params_m": "M params", "train_flops": "FLOPs", "ms_per_img": "ms/img",
                   "latency_ms": "ms"}


def cost_cell(value: float, cost: str) -> str:
    """A cost in a table cell built as text (a budget, "name (cost)"): FLOP counts in the one
    FLOP format (as NumberColumn draws them), any other cost to four significant digits."""
    if value is None or value != value:
        return "—"
    return FLOP_FORMAT % value if cost == "train_flops" or abs(value) >= LARGE else f"{value:.4g}"


def with_unit(name: str, cost: str) -> str:
    """'budget' -> 'budget (GFLOPs)': the header says the unit."""
    return f"{name} ({COST_UNIT_NAMES.get(cost, cost)})"


def _frame(data) -> pd.DataFrame:
    """The frame behind a Styler (a page greys too-few rows with one), or the frame itself."""
    return data.data if isinstance(data, Styler) else pd.DataFrame(data)


def _is_flops(name: str) -> bool:
    lowered = name.lower()
    return "flops" in lowered and "gflops" not in lowered


NAMED = {"train_flops": "training compute (FLOPs)", "pretrain_flops": "pre-training (FLOPs)",
         "finetune_flops": "fine-tuning (FLOPs)"}


def _header(name: str) -> str:
    """The header with its unit: 'published_flops' -> 'published (FLOPs)'; a header that names
    FLOPs already ('FLOPs per sample') is kept."""
    if not _is_flops(name) or "FLOPs" in name:
        return name
    stem = re.sub(r"_?flops", "", name, flags=re.IGNORECASE).strip("_ ").replace("_", " ")
    return NAMED.get(name, f"{stem or name} (FLOPs)")


def column_config(frame: pd.DataFrame) -> dict:
    """A NumberColumn per numeric column: FLOP counts (by name, or any value past 1e7) in one
    scientific format with "(FLOPs)" in the header; other fractions to four significant digits."""
    config = {}
    for name in frame.columns:
        values = frame[name]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        finite = values.dropna()
        large = bool(len(finite)) and float(finite.abs().max()) >= LARGE
        if _is_flops(str(name)) or large:
            config[name] = st.column_config.NumberColumn(_header(str(name)), format=FLOP_FORMAT)
        elif pd.api.types.is_float_dtype(values):
            config[name] = st.column_config.NumberColumn(str(name), format=NUMBER_FORMAT)
    return config


def show(data, container=None, **kwargs):
    """st.dataframe(data) with `column_config` for reading (the caller's own entries win), no
    index, the page's width."""
    config = {**column_config(_frame(data)), **(kwargs.pop("column_config", None) or {})}
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    return (container or st).dataframe(data, column_config=config, **kwargs)
