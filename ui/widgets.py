"""Widgets whose state lives in the URL, the sidebar filters and the head every analysis page shares."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from engine.analysis import budget_match, footing, points_table
from ui import loaders, tables
from ui.markdown import literal, markdown_table, readable  # noqa: F401 (pages call them as widgets.literal, ...)

COST_LABELS = {"gflops": "GFLOPs (counted)", "params_m": "parameters (M)",
               "train_flops": "training compute (FLOPs: counted forward FLOPs x samples seen, from recipes or tags)",
               "ms_per_img": "ms per image (throughput)", "latency_ms": "latency, batch 1 (ms, measured here)"}


COST_UNITS = {"gflops": " GFLOPs", "params_m": "M params", "train_flops": " training FLOPs", "ms_per_img": " ms/img",
              "latency_ms": " ms"}


SOURCES = {"both": None, "published": ["published"], "measured here": ["measured here"]}


def enter(page: str) -> None:
    """Called first by each page: on entering it (a fresh session from a shared link, or a
    switch from another page) the URL's parameters win over what widgets held; while the user
    stays on the page, the widgets write the URL."""
    if not st.session_state.get("app_shell"):
        # A server's very first visitor arriving on a page's URL gets Streamlit's legacy pages/
        # mode, which runs this file without app.py (no catalog check, no sidebar, every file
        # in pages/ listed). app.py's st.navigation ends that mode, but only once app.py runs;
        # end it here (the flag st.navigation clears) and rerun through app.py.
        from streamlit.runtime.pages_manager import PagesManager
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.session_state["entering_page"] = st.session_state.get("last_page") != page
    st.session_state["last_page"] = page


def url_wins(key: str) -> bool:
    """Whether the URL's value of `key` replaces the widget's (first run, or entering the page)."""
    return key not in st.session_state or (st.session_state.get("entering_page", False)
                                             and key in st.query_params)


def _from_url(key: str, default, cast=str):
    if url_wins(key):
        raw = st.query_params.get(key)
        try:
            st.session_state[key] = cast(raw) if raw is not None else default
        except (TypeError, ValueError):
            st.session_state[key] = default
    return st.session_state[key]


def url_selectbox(label: str, options: list, key: str, default=None, **kwargs):
    """A selectbox in the URL; a value from a link that is not an option falls back to the
    control's default (not to the first option)."""
    fallback = default if default in options else options[0]
    value = _from_url(key, fallback)
    if value not in options:
        st.session_state[key] = fallback
    choice = st.selectbox(label, options, key=key, **kwargs)
    st.query_params[key] = str(choice)
    return choice


def url_text(label: str, key: str, **kwargs) -> str:
    """A text input in the URL (empty text: no parameter)."""
    _from_url(key, "")
    text = st.text_input(label, key=key, **kwargs)
    if text:
        st.query_params[key] = text
    else:
        st.query_params.pop(key, None)
    return text


def url_multiselect(label: str, options: list, key: str, default: list, **kwargs):
    raw = st.query_params.get_all(key) if key in st.query_params else None
    if url_wins(key):
        valid = [v for v in (raw or default) if v in options]
        st.session_state[key] = valid if valid or not raw else [v for v in default if v in options]
    chosen = st.multiselect(label, options, key=key, **kwargs)
    st.query_params[key] = chosen
    return chosen


def _finite(text) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def url_select_slider(label: str, options: list[float], key: str, default: float, **kwargs):
    value = _from_url(key, default, _finite)
    if value not in options:
        st.session_state[key] = min(options, key=lambda o: abs(o - value))
    chosen = st.select_slider(label, options, key=key, **kwargs)
    st.query_params[key] = str(chosen)
    return chosen


ZOO_LABELS = {"imagenet": "ImageNet classifiers", "image-text": "Image-text (zero-shot)"}
ZOO_HELP = ("ImageNet classifiers: timm's pretrained checkpoints, their published ImageNet results and what you "
            "measure here. Image-text (zero-shot): OpenCLIP's models, compared by their zero-shot results.")
# What a select box shows (it must fit its box at 1280 px); the full description is its help text.
COST_SHORT = {"gflops": "GFLOPs (counted)", "params_m": "parameters (M)", "train_flops": "training compute (FLOPs)",
              "ms_per_img": "ms per image", "latency_ms": "latency, batch 1 (ms)"}
COST_HELP = " ".join(f"{COST_SHORT[k]}: {v}." for k, v in COST_LABELS.items())
OBJECTIVE_SHORT = {"semi-supervised pseudo-labels": "pseudo-labels", "masked image modelling": "masked modelling",
                   "image-text contrastive": "contrastive"}
DEFAULT_METRIC = {"imagenet": "imagenet.top1", "image-text": "zeroshot:imagenet1k.top1"}
SCALES = ["≈1M", "≈10M", "≈100M", "≥1B"]


def zoo_switch() -> str:
    """The zoo every analysis page reads, in the sidebar and the URL (?zoo=image-text)."""
    with st.sidebar:
        return url_selectbox("Zoo", list(ZOO_LABELS), "zoo", format_func=ZOO_LABELS.get, help=ZOO_HELP)


CATALOG_LISTS = {"all": "every checkpoint", "no-training-compute": "no training-compute estimate"}
ALL_DATA = "all pre-training data (mixed)"
MIXED = "mixed pre-training data"


def _on_zoo_switch(zoo: str) -> bool:
    """Whether this session has just moved to another zoo: the cost, metric and data it held were
    the other zoo's, so they give way to this zoo's natural ones (image-text: training compute,
    zero-shot ImageNet, LAION-2B). A fresh session from a link keeps every parameter the link names."""
    previous = st.session_state.get("filters_zoo")
    st.session_state["filters_zoo"] = zoo
    if previous is None or previous == zoo:
        return False
    for key in ("cost", "metric", "data", "budget", "levels"):
        st.session_state.pop(key, None)
        st.query_params.pop(key, None)
    return True


def data_picker(zoo: str) -> list[str] | None:
    """One pre-training data source for every analysis page (sidebar, ?data=), or the mix. The
    image-text zoo opens on the largest source that holds ConvNets and ViTs both (LAION-2B):
    comparing towers trained on different data is chosen, never a silent default."""
    counts = loaders.data_source_counts(zoo)
    both = [d for d in counts.index if counts.at[d, "ConvNet"] and counts.at[d, "ViT"]]
    options = [ALL_DATA, *both, *[d for d in counts.index if d not in both]]
    default = both[0] if zoo == "image-text" and both else ALL_DATA

    def label(option: str) -> str:
        if option == ALL_DATA:
            return option
        shown = [f"{int(counts.at[option, c])} {c}" for c in counts.columns if counts.at[option, c]]
        return f"{option} ({', '.join(shown)})"
    source = url_selectbox("Pre-training data", options, "data", default=default, format_func=label,
                           help="Every page compares classes pre-trained on this one data source; the mix compares "
                                "checkpoints trained on different data, and every verdict on it says so.")
    return None if source == ALL_DATA else [source]


def global_filters() -> dict:
    """Zoo, class, pre-training data and objective, data scale and source filters, set in the
    sidebar and shared by every page. The image-text zoo's scale filter also offers "unknown"
    (data whose size no source gives)."""
    zoo = zoo_switch()
    _on_zoo_switch(zoo)
    scales = SCALES + ([points_table.UNKNOWN_SCALE] if zoo == "image-text" else [])
    with st.sidebar:
        st.subheader("Filters")
        data_sources = data_picker(zoo)
        classes = url_multiselect("Architecture classes", list(points_table.CLASSES), "classes",
                                  ["ConvNet", "ViT", "Hybrid"])
        present = loaders.objectives_in(zoo)
        chosen_objectives = url_multiselect("Pre-training objective", present, "objective", present,
                                            format_func=lambda o: OBJECTIVE_SHORT.get(o, o),
                                            help="From each checkpoint's sourced recipe, else its tag (.mae, .dino, "
                                                 "clip, ns_jft); unknown where neither states it. Pseudo-labels: "
                                                 "semi-supervised pseudo-labels; masked modelling: masked image "
                                                 "modelling; contrastive: image-text contrastive.")
        switched = st.session_state.get("scale_zoo", zoo) != zoo
        if switched and set(SCALES) <= set(st.session_state.get("scale", [])):
            st.session_state["scale"] = scales  # every scale chosen stays every scale in the other zoo
        elif "scale" in st.session_state:
            st.session_state["scale"] = [v for v in st.session_state["scale"] if v in scales]
        st.session_state["scale_zoo"] = zoo
        chosen = url_multiselect("Pre-training data scale", scales, "scale", scales)
        source = url_selectbox("Source", list(SOURCES), "source")
    every_objective = not chosen_objectives or set(present) <= set(chosen_objectives)
    return {"zoo": zoo, "classes": classes, "data_scales": chosen, "sources": SOURCES[source],
            "data_sources": data_sources, "objectives": None if every_objective else chosen_objectives,
            "data_label": data_sources[0] if data_sources else MIXED}


def data_said(filters: dict) -> str:
    """' on LAION-2B' or ' (mixed pre-training data)': what every verdict says of its data."""
    return f" on {literal(filters['data_label'])}" if filters.get("data_sources") else f" ({MIXED})"


def _device_label(source: str) -> str:
    """'benchmark-infer-amp-nhwc-pt240-cu124-rtx4090.csv' -> 'rtx4090 amp nhwc pt240': the device
    first, short enough for its box; the files' other fields (CUDA) never tell two apart."""
    if source == "here":
        return "here (this machine)"
    parts = source.removesuffix(".csv").split("-")
    if len(parts) < 7 or parts[0] != "benchmark":
        return source
    kind, precision, layout, torch, device, extra = parts[1], parts[2], parts[3], parts[4], parts[6], parts[7:]
    return " ".join([device, precision, layout, torch, *extra] + (["train"] if kind == "train" else []))


def cost_and_metric(points_frame, zoo: str = "imagenet") -> tuple[str, str, str | None, object]:
    """Cost axis (with the published device for ms/img) and quality metric pickers; also
    returns the points for that device. The image-text zoo opens on training compute."""
    store = loaders.get_store()
    left, middle, right = st.columns(3)
    with left:
        cost = url_selectbox("Cost", list(COST_LABELS), "cost", format_func=COST_SHORT.get, help=COST_HELP,
                             default="train_flops" if zoo == "image-text" else None)
    bench_source = None
    if cost == "ms_per_img":
        sources = loaders.bench_sources(str(store.path), store.freshness())
        options = ["here"] + sources["source_file"].tolist()
        with right:
            bench_source = url_selectbox("Device", options, "device", default=options[1] if len(options) > 1 else "here",
                                         format_func=_device_label,
                                         help="A published benchmark file of timm's (its device and settings), or "
                                              "'here': speeds measured on this machine.")
        points_frame = loaders.current_points(bench_source)
    metrics = loaders.metrics_for(bench_source, cost, zoo)
    default = DEFAULT_METRIC[zoo]
    with middle:
        metric = url_selectbox("Metric", metrics or [default], "metric",
                               default=default if default in metrics else None)
    return cost, metric, bench_source, points_frame


EMPTY_COST_AXIS = {
    "latency_ms": "Latency is measured on this machine and nothing has been benchmarked here yet: run "
                  "`python -m engine bench resnet50.a1_in1k vit_base_patch16_224.augreg2_in21k_ft_in1k` "
                  "(or queue benchmarks on the Run page) to fill this axis.",
    "ms_per_img": "No throughput for this device yet: pick a published benchmark file, or run "
                  "`python -m engine bench MODEL` to measure this machine ('here').",
}


def selected(bench_source: str | None, cost: str, metric: str, filters: dict):
    """Filtered points, or None after telling the user what is missing."""
    if not loaders.metrics_for(bench_source, cost, filters.get("zoo", "imagenet")):
        st.info(EMPTY_COST_AXIS.get(cost, f"No results on the {COST_LABELS.get(cost, cost)} axis yet: import "
                                          "published results (`python -m engine catalog import DIR`) or run "
                                          "evaluations here (`python -m engine eval MODEL --data DIR`)."))
        return None
    try:
        return loaders.selection(bench_source, cost, metric, filters)
    except points_table.AnalysisError as e:
        st.info(empty_selection_text(literal(e), filters))
        return None


def empty_selection_text(why: str, filters: dict) -> str:
    """What to do when a view has no points, by what emptied it: nothing measured here yet,
    filters too narrow, or no published results loaded at all."""
    if filters.get("sources") == ["measured here"]:
        return ("Nothing measured on this machine matches this view yet. Evaluate checkpoints here (the Run "
                "page, or `python -m engine eval MODEL --data DIR`), or set Source to “both” in the sidebar "
                "to see the published results.")
    store = loaders.get_store()
    if loaders.db_info(str(store.path), store.freshness())["tables"].get("published_results", 0):
        narrowed = [f"pre-training data (now {filters['data_label']})"] if filters.get("data_sources") else []
        narrowed += ["objective"] if filters.get("objectives") else []
        return (f"{why} Widen the class, data-scale or source filters in the sidebar"
                + (f", or its {' and '.join(narrowed)}." if narrowed else "."))
    return (f"{why} Import published results (`python -m engine catalog import DIR`) or run evaluations and "
            "benchmarks to fill this view.")


def analysis_page(page: str, title: str, say_data: bool = True):
    """The head every analysis page shares: title, filters, cost and metric, the chosen points,
    and the pre-training data they were trained on (one source, or the mix, said as such).
    Returns (points or None, cost, metric)."""
    enter(page)
    st.title(title)
    filters = global_filters()
    if say_data:
        st.caption(f"Pre-training data: {literal(filters['data_label'])}." if filters["data_sources"] else
                   "Pre-training data: mixed (checkpoints trained on different data are compared; the sidebar's "
                   "Pre-training data picks one source).")
    cost, metric, bench_source, _points = cost_and_metric(loaders.current_points(), filters["zoo"])
    st.session_state["page_view"] = (bench_source, filters)
    chosen = selected(bench_source, cost, metric, filters)
    if cost == "train_flops":
        training_coverage_note(metric, filters)
    return chosen, cost, metric


INTERVAL_NOTE = ("How the intervals are drawn: each is the 95% percentile interval of the exact bootstrap of each "
                 "class's best under the budget (checkpoints resampled with replacement within each class, every "
                 "resample weighted exactly: no seed). In a resample a class's best can only stay or fall, never "
                 "rise, so the interval is lopsided and the estimate often sits near one end; the long side says "
                 "how far the gap moves when a class's best checkpoint or two are left out, that is how much the "
                 "answer rests on them.")


def interval_note() -> None:
    """Once per page that shows best-of-class intervals: where they are drawn, and why an
    estimate can sit at the edge of its own interval."""
    st.caption(INTERVAL_NOTE)


def training_coverage_note(metric: str, filters: dict) -> None:
    """On the training-compute axis, the checkpoints left out for want of a sourced recipe,
    counted by class: a class with lower coverage cannot bias the picture silently."""
    counts = loaders.training_coverage(metric, filters)
    if counts.empty:
        return
    parts = [f"{r.arch_class} {r.missing:,} of {r.total:,}" for r in counts.itertuples() if r.total]
    if any(r.missing for r in counts.itertuples()):
        st.page_link("pages/catalog.py", label="List the checkpoints without training compute, and why",
                     icon=":material/list:", query_params={"zoo": filters.get("zoo") or "imagenet",
                                                            "show": "no-training-compute"})
    if filters.get("zoo") == "image-text":
        st.caption("Image-text training compute is 3 x (image + text forward FLOPs, counted here) x the samples "
                   "seen that the OpenCLIP tag states (s34b) or a sourced recipe gives, stage by stage "
                   "(python -m engine catalog training-compute lists them); left out where neither gives them, "
                   "by class: " + "; ".join(parts) + ".")
        return
    st.caption("Training compute is estimated from sourced recipes over each checkpoint's lineage (a pre-trained "
               "checkpoint from its fine-tuned children, a CLIP tower from its OpenCLIP pair), as a range; a "
               "lower bound is placed only where its range is narrow (python -m engine catalog training-compute "
               "lists them); left out for want of one, by class: " + "; ".join(parts) + ".")


def probe_note(metric: str) -> None:
    """Under a chart of a linear-probe metric: how it was measured (folds, images, classes)."""
    note = loaders.probe_note(metric)
    if note:
        st.caption(note)


def _nearest(options: list[float], value: float) -> float:
    return min(options, key=lambda o: abs(math.log(o) - math.log(value)) if o > 0 and value > 0 else abs(o - value))


def _budget_picked() -> None:
    st.session_state["budget"] = st.session_state["budget_pick"]


def _budget_typed() -> None:
    typed = st.session_state.get("budget_typed")
    if typed is not None and typed > 0 and math.isfinite(typed):
        st.session_state["budget"] = float(typed)


def budget_slider(chosen, cost: str) -> float:
    """The budget, in the URL (?budget=), answered at exactly that value: a slider over the view's
    grid for browsing, and a number box beside it for a budget the grid skips (400 GFLOPs, 1e20
    FLOPs). Changing the cost axis resets it to the new axis's middle: a value in GFLOPs means
    nothing in parameters or ms (it once became 4.6 M params, then 4.3 ms)."""
    options = list(loaders.budget_grid(chosen, 40))
    axis = st.session_state.get("budget_axis")
    if axis is not None and axis != cost and not st.session_state.get("entering_page"):
        st.session_state.pop("budget", None)
        st.query_params.pop("budget", None)
    st.session_state["budget_axis"] = cost
    default = options[len(options) // 2]
    budget = _from_url("budget", default, _finite)
    if not budget > 0:
        budget = st.session_state["budget"] = default
    st.session_state["budget_pick"] = _nearest(options, budget)
    st.session_state["budget_typed"] = budget
    slider, box = st.columns([3, 1], vertical_alignment="bottom")
    with slider:
        st.select_slider("Budget", options, key="budget_pick", on_change=_budget_picked,
                         format_func=lambda v: f"{float(v):.3g}")
    with box:
        st.number_input(f"or type it ({tables.COST_UNIT_NAMES[cost]})", key="budget_typed", on_change=_budget_typed,
                        min_value=0.0, format="%.4g", step=None,
                        help="The exact budget: the answer is read at this value, not the slider's nearest step.")
    st.query_params["budget"] = f"{budget:.10g}"
    return budget


def _dash(value) -> str:
    return "—" if value is None or value != value else value


def budget_frame(rows: list[dict], cost: str):
    """The Budget match table, pairwise first: per class against ConvNets its gap with interval,
    verdict and the two best qualities; then the best of all classes; checkpoint names last, so
    the answer fits the screen. Missing cells are '—'."""
    others = [c for c in points_table.CLASSES if c != "ConvNet" and any(c in r["best"] for r in rows)]
    table = []
    for row in rows:
        best = row["best"]
        entry = {tables.with_unit("budget", cost): tables.cost_cell(row["budget"], cost)}
        for i, other in enumerate(others):
            gap = row["gaps"].get(f"{other}-ConvNet")
            entry[f"{other} best"] = f"{best[other]['quality']:.2f}" if other in best else "—"
            if i == 0:
                entry["ConvNet best"] = f"{best['ConvNet']['quality']:.2f}" if "ConvNet" in best else "—"
            entry[f"{other} − ConvNet"] = budget_match.with_ci(gap["gap"], gap["ci_low"], gap["ci_high"]) if gap else "—"
            entry[f"{other} vs ConvNet"] = budget_match.verdict_label(gap)
            if gap and gap.get("estimates_check"):
                entry[f"{other} footing"] = footing.footing_text(gap)
        if not others:
            entry["ConvNet best"] = f"{best['ConvNet']['quality']:.2f}" if "ConvNet" in best else "—"
        entry["best class"] = row["winner"] or row.get("winner_verdict", "no clear winner")
        for arch_class in ("ConvNet", *others):
            entry[f"{arch_class} checkpoint"] = best[arch_class]["checkpoint"] if arch_class in best else "—"
        table.append({k: _dash(v) for k, v in entry.items()})
    frame = pd.DataFrame(table)
    footings = [c for c in frame.columns if c.endswith(" footing")]
    frame[footings] = frame[footings].fillna("—")  # a budget with no comparison has no footing
    return frame


def footing_lines(rows: list[dict], other: str, unit: str) -> list[str]:
    """On the training-compute axis, each run of budgets whose verdict has the same footing:
    'from 1e+20 to 1e+22: holds within every estimate's range; holds with the 279 unestimated
    checkpoints at 100–1,000 epochs'."""
    runs: list[list] = []
    for row in rows:
        gap = row["gaps"].get(f"{other}-ConvNet")
        if not gap or not gap.get("estimates_check"):
            continue
        said = f"{budget_match.verdict_label(gap)}: {footing.footing_text(gap)}"
        if runs and runs[-1][1] == said:
            runs[-1][0].append(row["budget"])
        else:
            runs.append([[row["budget"]], said])
    return [(f"at {b[0]:g}{unit}" if len(b) == 1 else f"from {b[0]:g} to {b[-1]:g}{unit}") + f" — {said}"
            for b, said in runs]


def footing_note(rows: list[dict], other: str, cost: str) -> None:
    """Under a verdict on the training-compute axis: how much it rests on estimates."""
    lines = footing_lines(rows, other, COST_UNITS.get(cost, ""))
    if lines:
        st.markdown(f"*Footing of {other} vs ConvNet* (does the verdict hold when every estimate moves within "
                    "its range, and with the unestimated checkpoints at 100–1,000 epochs?)\n"
                    + "\n".join(f"- {line}" for line in lines))


def budget_views(rows: list[dict], cost: str) -> list[tuple[str, list, tuple]]:
    """budget_frame drawn as one table per class against ConvNets, each fitting a 1280 px page:
    (class, its columns, the answer columns kept at full width: the budget, the class's best, the
    best ConvNet, their gap and verdict). The first also says the best of all classes. (Not
    pinned: Streamlit greys pinned columns, and grey here means "too few".)"""
    budget = tables.with_unit("budget", cost)
    others = [c for c in points_table.CLASSES if c != "ConvNet" and any(c in r["best"] for r in rows)]
    if not others:
        return [("ConvNet", [budget, "ConvNet best", "ConvNet checkpoint"], (budget, "ConvNet best"))]
    views = []
    for i, other in enumerate(others):
        answer = [budget, f"{other} best", "ConvNet best", f"{other} − ConvNet", f"{other} vs ConvNet"]
        extra = (["best class"] if i == 0 and len(others) > 1 else []) + (
            [f"{other} footing"] if any(r["gaps"].get(f"{other}-ConvNet", {}).get("estimates_check") for r in rows)
            else [])
        views.append((other, answer + extra + [f"{other} checkpoint", "ConvNet checkpoint"], tuple(answer)))
    return views


def budget_tables(rows: list[dict], cost: str, key: str | None = None) -> None:
    """The budget table, one table per class against ConvNets (budget_views)."""
    styled = budget_styled(rows, cost)
    for i, (_, columns, keep) in enumerate(budget_views(rows, cost)):
        tables.show(styled, column_order=columns, keep=keep, key=f"{key}_{i}" if key and i else key)


def budget_styled(rows: list[dict], cost: str):
    """budget_frame with a class's cells in grey where it has too few checkpoints for a verdict."""
    frame = budget_frame(rows, cost)

    def grey(table: pd.DataFrame) -> pd.DataFrame:
        styles = pd.DataFrame("", index=table.index, columns=table.columns)
        for column in [c for c in table.columns if c.endswith(" vs ConvNet")]:
            other = column.split(" ")[0]
            too_few = table[column].str.endswith("too few")
            for part in (f"{other} best", f"{other} − ConvNet", column):
                styles.loc[too_few, part] = "color: #9a9a9a"
        return styles
    return frame.style.apply(grey, axis=None)


def grey_rows(frame: pd.DataFrame, mask) -> object:
    """The frame styled with the masked rows in grey (too few checkpoints for a verdict)."""
    flags = list(mask)
    return frame.style.apply(lambda row: ["color: #9a9a9a"] * len(row) if flags[row.name] else [""] * len(row),
                             axis=1)


def flop_note(cost: str) -> None:
    if cost == "gflops":
        st.caption("GFLOPs are counted here for every checkpoint one way: forward pass, batch 1, "
                   "2 FLOPs per multiply-add, attention matmuls included, at the resolution the "
                   "accuracy was measured at (torch FlopCounterMode).")
        st.page_link("pages/crosscheck.py", label="How these counts compare with timm's published GMACs")


METRIC_WORDS = {"imagenet.top1": "% ImageNet top-1", "zeroshot:imagenet1k.top1": "% zero-shot ImageNet"}
COST_WORDS = {"train_flops": "training compute", "gflops": "GFLOPs", "params_m": "parameters",
              "ms_per_img": "time per image", "latency_ms": "latency"}


def multiplier_sentences(chosen, cost: str, metric: str, filters: dict) -> None:
    """The Overview's compute multiplier at equal accuracy: per class against ConvNets, one
    sentence per run of levels with the same verdict."""
    from engine.analysis import multiplier
    rows = loaders.derived(chosen, multiplier.multiplier_table, metric, loaders.multiplier_levels(chosen, metric))
    what = METRIC_WORDS.get(metric, f" {metric}") + (f" on {filters['data_label']}" if filters.get("data_sources") else "")
    shown = False
    for other, reference in multiplier.COMPARISONS:
        said = multiplier.sentences(rows, other, reference, what, COST_WORDS.get(cost, cost))
        if said:
            if not shown:
                st.subheader("The compute multiplier at equal accuracy")
                shown = True
            mixed = "" if filters.get("data_sources") else f" ({MIXED})"
            st.markdown(f"**{other} over {reference}{mixed}** — " + literal("; ".join(said)) + ".")
    if shown:
        st.caption("For each accuracy level, the cheapest checkpoint of each class that reaches it and the ratio of "
                   "their costs, with a 95% exact bootstrap interval (checkpoints resampled within each class, as "
                   "for the gaps); a class is cheaper only where the interval excludes 1×. The table per level: "
                   "Budget match.")


def multiplier_frame(chosen, metric: str, cost: str, levels: tuple | None = None):
    """The Budget match page's multiplier table: per level, each class's cheapest checkpoint
    reaching it, and each class's cost over the ConvNet's with interval and verdict."""
    from engine.analysis import multiplier
    levels = levels or loaders.multiplier_levels(chosen, metric)
    table = []
    for row in loaders.derived(chosen, multiplier.multiplier_table, metric, tuple(levels)):
        entry = {"level": f"{row['level']:g}"}
        for arch_class, best in row["cheapest"].items():
            entry[f"{arch_class} cheapest ({tables.COST_UNIT_NAMES[cost]})"] = (
                f"{best['checkpoint']} ({tables.cost_cell(best['cost'], cost)})")
        for key, r in row["ratios"].items():
            other, reference = key.split("/")
            entry[f"{other} ÷ {reference}"] = multiplier.ratio_text(r)
            entry[f"{other} vs {reference}"] = multiplier.verdict_label(r, other, reference)
        table.append(entry)
    frame = pd.DataFrame(table)
    if frame.empty:
        return frame
    ratios = [c for c in frame.columns if "÷" in c or " vs " in c]
    cheapest = [c for c in frame.columns if " cheapest (" in c]
    return frame[["level", *ratios, *cheapest]].fillna("—")


def pretraining_frame(bought: dict):
    """The When page's table: per pre-training, each class's mean gain over its ImageNet-1k
    supervised baseline and the difference to ConvNets."""
    from engine.analysis import pretraining
    table = []
    for row in bought["gains"]:
        entry = {"pre-training": row["pretraining"]}
        for arch_class, gain in row["classes"].items():
            entry[f"{arch_class} gain"] = pretraining.gain_text(gain)
        for key, diff in row["differences"].items():
            other, reference = key.split("-")
            entry[f"{other} − {reference}"] = (
                "—" if diff["ci_low"] is None else
                f"{diff['difference']:+.2f} [{diff['ci_low']:+.2f}, {diff['ci_high']:+.2f}]: {diff['verdict']}")
        table.append(entry)
    return pd.DataFrame(table).fillna("—")
