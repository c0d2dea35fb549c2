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


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP's CSV injection list


def _inert(value):
    """A text cell a spreadsheet would run as a formula, prefixed with ' (then read as text)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def csv_text(frame: pd.DataFrame) -> str:
    """A frame as CSV for download, every text cell and header that starts like a formula
    (=, +, -, @, tab, carriage return) prefixed with ' as OWASP advises: a folder named
    `=cmd|' /C calc'!A0` must not run when the file is opened. Numbers stay numbers."""
    safe = frame.rename(columns=lambda c: _inert(str(c)))
    text = safe.select_dtypes(include=["object", "string"]).columns
    safe[text] = safe[text].map(_inert)
    return safe.to_csv(index=False, lineterminator="\r\n")  # RFC 4180: a CR or LF inside a cell is quoted


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


PAGE_WIDTH = 800   # px of the main column at 1280 px with the sidebar open (818), less a scrollbar
CHAR_PX = 7.0      # an average character of the grid's 14 px font
CELL_PAD, HEADER_PAD, MIN_WIDTH = 18, 24, 56


def _shown(value, fmt: str | None) -> str:
    """A cell as the grid draws it, for its width."""
    if isinstance(value, float) and value == value and fmt and "%" in fmt:
        try:
            return fmt % value
        except (TypeError, ValueError):  # a named format ("percent"): its text is short
            return f"{value:.4g}"
    try:
        missing = bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array in an object column
        missing = False
    return "" if missing else str(value)


def fit_widths(frame: pd.DataFrame, config: dict, columns: list, width: int, keep: tuple = ()) -> dict:
    """Pixel widths that fit `columns` into `width`, so that no table scrolls sideways at 1280 px:
    each column as wide as its header and its longest cells (90th percentile), and where that is
    too wide, the widest shrunk first (their text ends in "…", in full on hover) while the
    columns in `keep` (the answer) and any width the page set stay as they are."""
    natural = {}
    for name in columns:
        fmt = (config.get(name) or {}).get("type_config", {}).get("format")
        cells = [len(_shown(v, fmt)) for v in frame[name].head(400)] or [0]
        natural[name] = int(max(HEADER_PAD + CHAR_PX * len(str((config.get(name) or {}).get("label") or name)),
                                CELL_PAD + CHAR_PX * float(pd.Series(cells).quantile(0.9))))
    fixed = {n: config[n]["width"] for n in columns if isinstance((config.get(n) or {}).get("width"), int)}
    held = {n: natural[n] for n in keep if n in natural and n not in fixed}
    free = {n: w for n, w in natural.items() if n not in fixed and n not in held}
    room = width - sum(fixed.values()) - sum(held.values())
    cap = max(free.values(), default=0)
    while free and sum(max(MIN_WIDTH, min(w, cap)) for w in free.values()) > room and cap > MIN_WIDTH:
        cap -= 4
    return {**{n: max(MIN_WIDTH, min(w, cap)) for n, w in free.items()}, **held, **fixed}


def show(data, container=None, share: float = 1.0, keep: tuple = (), **kwargs):
    """st.dataframe(data) with `column_config` for reading (the caller's own entries win) and
    widths that fit the page (`share`: the part of the page's width its container has), no
    index, the page's width."""
    frame = _frame(data)
    config = {**column_config(frame), **(kwargs.pop("column_config", None) or {})}
    columns = [c for c in (kwargs.get("column_order") or frame.columns) if c in frame.columns]
    for name, px in fit_widths(frame, config, columns, int(PAGE_WIDTH * share), keep).items():
        entry = config.get(name)
        config[name] = {**(entry if isinstance(entry, dict) else {"label": entry} if entry else {}), "width": px}
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    return (container or st).dataframe(data, column_config=config, **kwargs)
