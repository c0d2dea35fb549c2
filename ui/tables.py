"""Every table a page draws goes through `show`: each number formatted for reading by what it is
(a FLOP count as 1.18e+20, never a 21-digit integer), the unit in the header, and columns kept
numeric so that sorting by a click still sorts by value."""
from __future__ import annotations

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

FLOP_FORMAT = "%.2e"     # 1.18e+20: every FLOP count, samples seen and any count past ten million
NUMBER_FORMAT = "%.4g"   # 78.28, 4.123, 0.0512: every other fractional number
LARGE = 1e7


def _frame(data) -> pd.DataFrame:
    """The frame behind a Styler (a page greys too-few rows with one), or the frame itself."""
    return data.data if isinstance(data, Styler) else pd.DataFrame(data)


def _is_flops(name: str) -> bool:
    lowered = name.lower()
    return "flops" in lowered and "gflops" not in lowered


def _header(name: str) -> str:
    """The header with its unit: a FLOP column says "(FLOPs)" once."""
    if _is_flops(name) and "(flops)" not in name.lower() and name.lower() not in ("flops",):
        return f"{name.replace('_flops', '').replace('flops', '').strip('_ ') or name} (FLOPs)"
    return name


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
