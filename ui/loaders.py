"""The app's view of the store: one Store per file, cached queries keyed by the file's freshness,
the background loader of published results and the embedded worker."""
from __future__ import annotations

import os
import threading
import weakref

import streamlit as st

from engine.analysis import budget_match, points_table
from engine.catalog import snapshot, timm_models, timm_published
from engine.errors import MatchupError
from engine.store import Store, resolve_db_path


@st.cache_resource
def _store_for(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The store for $MATCHUP_DB (else data/matchup.duckdb)."""
    return _store_for(str(resolve_db_path()))


@st.cache_resource
def _quick_store_for(path: str) -> Store:
    return Store(path, lock_timeout_s=1)


def quick_store() -> Store:
    """The same database for views that refresh on their own: it gives up on a lock after 1 s,
    so the view can say it is waiting instead of hanging."""
    return _quick_store_for(str(resolve_db_path()))


@st.cache_resource
def embedded_worker(path: str):
    """One per server, unless MATCHUP_READONLY or MATCHUP_NO_EMBEDDED_WORKER is set."""
    from engine.jobs import runner, submit
    if submit.read_only() or os.environ.get("MATCHUP_NO_EMBEDDED_WORKER"):
        return None
    return runner.EmbeddedWorker(path).start()


@st.cache_resource
def warm_imports() -> threading.Thread:
    """Once per server, after its first page: import timm (and torch under it) on a background
    thread. The Checkpoint page's model card needs timm, whose import takes ~5 s on a 2-core
    machine; warmed, a first open of that page after a server start is a second or two."""
    import importlib
    thread = threading.Thread(target=importlib.import_module, args=("timm",), daemon=True,
                              name="matchup-warm-imports")
    thread.start()
    return thread


def json_or_none(text):
    import json
    return json.loads(text) if isinstance(text, str) and text else None


class PublishedLoader:
    """Once per server: brings the shipped snapshot of timm's published results up to date
    (offline, well under a second; never over rows from sync or import). Where the database
    still has no published rows (snapshot missing or damaged, or MATCHUP_PUBLISHED_DIR set), it
    imports MATCHUP_PUBLISHED_DIR or syncs the pinned commit in the background; pages never
    wait for that."""

    def __init__(self, store: Store):
        self.state, self.message, self.snapshot_problem = "idle", "", None
        self._store = store
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "PublishedLoader":
        if not os.environ.get("MATCHUP_PUBLISHED_DIR"):
            try:
                self.message = snapshot.load(self._store).message
            except snapshot.SnapshotError as e:
                self.snapshot_problem = str(e)
        if self._store.count("published_results") > 0:
            self.state = "done"
            return self
        self.state = "running"
        self._thread.start()
        return self

    def _run(self):
        folder = os.environ.get("MATCHUP_PUBLISHED_DIR")
        try:
            report = timm_published.import_dir(self._store, folder) if folder else timm_published.sync(self._store)
            self.state = "done"
            self.message = f"imported {sum(report.imported.values())} published rows"
        except MatchupError as e:
            self.state = "failed"
            self.message = str(e)


@st.cache_resource
def published_loader(path: str) -> PublishedLoader:
    return PublishedLoader(_store_for(path)).start()


@st.cache_resource(show_spinner=False, max_entries=8)
def points(path: str, freshness: str, bench_source: str | None):
    """All analysis points, shared read-only by every session (no copy per rerun); keyed by the
    DB's freshness so widgets never re-read the store."""
    store = _store_for(path)
    return points_table.assemble_points(store.analysis_inputs(), bench_source=bench_source)


@st.cache_data(show_spinner=False, max_entries=4)
def bench_sources(path: str, freshness: str):
    return _store_for(path).published_benchmark_sources()


@st.cache_data(show_spinner=False, max_entries=4)
def checkpoint_table(path: str, freshness: str):
    return timm_models.list_checkpoints(_store_for(path))


@st.cache_data(show_spinner=False, max_entries=4)
def db_info(path: str, freshness: str) -> dict:
    return _store_for(path).info()


def current_points(bench_source: str | None = None):
    store = get_store()
    return points(str(store.path), store.freshness(), bench_source)


@st.cache_resource(show_spinner=False, max_entries=16)
def _metrics(path: str, freshness: str, bench_source: str | None, cost: str, zoo: str) -> list[str]:
    frame = points(path, freshness, bench_source)
    return sorted(frame.loc[(frame["cost_metric"] == cost) & (frame["zoo"] == zoo), "quality_metric"].unique())


def metrics_for(bench_source: str | None, cost: str, zoo: str = "imagenet") -> list[str]:
    """The quality metrics of one zoo with points on a cost axis, once per server and data."""
    store = get_store()
    return _metrics(str(store.path), store.freshness(), bench_source, cost, zoo)


@st.cache_resource(show_spinner=False, max_entries=64)
def _selection(path: str, freshness: str, bench_source: str | None, cost: str, metric: str,
               classes: tuple, data_scales: tuple, sources: tuple | None, zoo: str = "imagenet",
               data_sources: tuple = (), objectives: tuple = ()):
    chosen = points_table.select(points(path, freshness, bench_source), cost, metric, classes=list(classes) or None,
                             data_scales=list(data_scales) or None, sources=list(sources) if sources else None,
                             zoo=zoo, data_sources=list(data_sources) or None, objectives=list(objectives) or None)
    every_class = (_selection(path, freshness, bench_source, cost, metric, (), data_scales, sources, zoo,
                              data_sources, objectives) if classes else chosen)
    _share(chosen, every_class)
    return chosen


# What pages compute from a shared selection (its frontier, the best of each class under a budget),
# once per server: keyed by the selection's identity, dropped when the selection itself is.
_DERIVED: dict[int, tuple[weakref.ref, dict, object]] = {}


def _share(frame, every_class=None) -> None:
    """Register a shared selection; `every_class`: the same view with no class filter."""
    key = id(frame)

    def forget(ref, key=key):
        if _DERIVED.get(key, (None,))[0] is ref:
            _DERIVED.pop(key, None)
    _DERIVED[key] = (weakref.ref(frame, forget), {}, every_class if every_class is not frame else None)


def _every_class(frame):
    """The same view as a shared selection with no class filter (the frame itself otherwise)."""
    entry = _DERIVED.get(id(frame))
    return entry[2] if entry is not None and entry[0]() is frame and entry[2] is not None else frame


def budget_grid(frame, n: int = 16) -> tuple:
    """A view's default budgets, spread over the points of every class (whatever classes are
    selected), so that showing or hiding a class never moves the budgets a verdict is read at."""
    return tuple(derived(_every_class(frame), budget_match.log_budgets, n))


def multiplier_levels(frame, metric: str) -> tuple:
    """A view's default accuracy levels for the compute multiplier, over every class's points (as
    budget_grid): showing or hiding a class never moves them."""
    from engine.analysis import multiplier
    return tuple(derived(_every_class(frame), multiplier.default_levels, metric))


def derived(frame, fn, *args, **kwargs):
    """fn(frame, *args, **kwargs), computed once per server when `frame` is a selection every
    viewer of a view shares (what `selection` returns), and directly for any other frame (a chart
    filter's subset). `fn` is an engine or ui function (its name and the arguments are the key;
    a page script's own functions are new objects on every run). The result is shared: read it,
    never change it."""
    if fn.__module__ == "__main__":
        raise TypeError(f"derived() needs a module-level engine/ui function, not the page's {fn.__qualname__}")
    entry = _DERIVED.get(id(frame))
    if entry is None or entry[0]() is not frame:
        return fn(frame, *args, **kwargs)
    memo, key = entry[1], (fn.__module__, fn.__qualname__, args, tuple(sorted(kwargs.items())))
    if key not in memo:
        memo[key] = fn(frame, *args, **kwargs)
    return memo[key]


def explained_verdict(frame, metric: str, budgets: tuple, other: str, unit: str) -> list[str]:
    """The Overview's sentences, over the same budget table the page draws (one derived result,
    not a second bootstrap of it)."""
    from engine.analysis import when
    rows = derived(frame, budget_match.budget_table, metric, budgets)
    return when.explained_verdict(frame, metric, list(budgets), other=other, unit=unit, rows=rows)


@st.cache_resource(show_spinner=False, max_entries=16)
def _unestimated(path: str, freshness: str, metric: str, classes: tuple, data_scales: tuple, sources: tuple | None,
                 zoo: str, data_sources: tuple, objectives: tuple):
    """The checkpoints without a training-compute estimate under a view's filters (the coverage
    check's bracket rows), or None where there are none."""
    try:
        return points_table.select(points(path, freshness, None), points_table.UNESTIMATED, metric,
                                   classes=list(classes) or None, data_scales=list(data_scales) or None,
                                   sources=list(sources) if sources else None, zoo=zoo,
                                   data_sources=list(data_sources) or None, objectives=list(objectives) or None)
    except points_table.AnalysisError:
        return None


def _footed_table(frame, metric: str, budgets: tuple, view: tuple):
    """The budget table with each gap's estimates and coverage checks (engine.analysis.footing):
    a copy of the shared table, once per server and view."""
    import copy
    from engine.analysis import footing
    store = get_store()
    rows = copy.deepcopy(derived(frame, budget_match.budget_table, metric, budgets))
    return footing.add_footing(rows, frame, _unestimated(str(store.path), store.freshness(), metric, *view), metric)


def budget_rows(frame, cost: str, metric: str, budgets: tuple, filters: dict) -> list[dict]:
    """The budget table a page shows; on the training-compute axis with each verdict's footing."""
    if cost != "train_flops":
        return derived(frame, budget_match.budget_table, metric, budgets)
    return derived(frame, _footed_table, metric, budgets, view_key(filters))


def _arrow_table(frame, names: tuple):
    import pyarrow as pa
    return pa.Table.from_pandas(frame[list(names)], preserve_index=False)


def arrow(frame, names):
    """The columns a chart draws as an Arrow table, converted once per server for a shared
    selection: Streamlit sends an Arrow table as it is, where it converts a DataFrame on every
    rerun of every viewer (the costliest part of drawing the Frontier)."""
    return derived(frame, _arrow_table, tuple(names))


def selection(bench_source: str | None, cost: str, metric: str, filters: dict):
    """The points a view draws, shared read-only by every viewer of the same view (a room of
    laptops on one demo server filters once, not once per viewer and rerun)."""
    store = get_store()
    return _selection(str(store.path), store.freshness(), bench_source, cost, metric, *view_key(filters))


def view_key(filters: dict) -> tuple:
    """The sidebar's filters as a cache key: classes, data scales, sources, zoo, pre-training data
    and objectives."""
    return (tuple(filters["classes"] or ()), tuple(filters["data_scales"] or ()),
            tuple(filters["sources"]) if filters["sources"] else None, filters.get("zoo", "imagenet"),
            tuple(filters.get("data_sources") or ()), tuple(filters.get("objectives") or ()))


@st.cache_resource(show_spinner=False, max_entries=4)
def _data_source_counts(path: str, freshness: str, zoo: str):
    frame = points(path, freshness, None)
    frame = frame[(frame["zoo"] == zoo) & frame["pretrain_data"].notna() & ~frame["family"].isin(points_table.TOY_FAMILIES)]
    counts = frame.groupby(["pretrain_data", "arch_class"])["checkpoint"].nunique().unstack(fill_value=0)
    counts = counts.reindex(columns=[c for c in points_table.CLASSES if c in counts.columns])
    for column in ("ConvNet", "ViT"):
        if column not in counts:
            counts[column] = 0
    return counts.loc[counts.sum(axis=1).sort_values(ascending=False, kind="stable").index]


def data_source_counts(zoo: str):
    """Checkpoints per pre-training data source and class in a zoo, most first; once per server and data."""
    store = get_store()
    return _data_source_counts(str(store.path), store.freshness(), zoo)


@st.cache_resource(show_spinner=False, max_entries=4)
def _objectives_in(path: str, freshness: str, zoo: str) -> list[str]:
    from engine.catalog.objectives import OBJECTIVES
    frame = points(path, freshness, None)
    present = set(frame.loc[frame["zoo"] == zoo, "objective"].dropna())
    return [o for o in OBJECTIVES if o in present]


def objectives_in(zoo: str) -> list[str]:
    """The pre-training objectives a zoo's checkpoints have, in OBJECTIVES' order."""
    store = get_store()
    return _objectives_in(str(store.path), store.freshness(), zoo)


@st.cache_resource(show_spinner=False, max_entries=4)
def _params(path: str, freshness: str):
    frame = points(path, freshness, None)
    frame = frame.loc[frame["cost_metric"] == "params_m", ["checkpoint", "img_size", "cost"]]
    return frame.drop_duplicates(["checkpoint", "img_size"]).rename(columns={"cost": "params_m"})


@st.cache_data(show_spinner=False, max_entries=4)
def _probe_summaries(path: str, freshness: str):
    return _store_for(path).probe_summaries()


def probe_note(metric: str) -> str | None:
    """'linear probe, 5 folds, 1,200 images in 8 classes' for a probe:<dataset>[@...] metric."""
    from engine.analysis.points_table import probe_dataset_labels, probe_metric_name
    if not metric.startswith("probe:"):
        return None
    store = get_store()
    frame = _probe_summaries(str(store.path), store.freshness())
    prefix = metric.rsplit(".", 1)[0]
    if frame.empty:
        return None
    for label, row in zip(probe_dataset_labels(frame), frame.itertuples(), strict=True):
        if probe_metric_name(label, row.protocol, row.shots) == prefix:
            if row.protocol == "kfold":
                how = f"{int(row.folds)} folds"
            elif row.protocol == "val":
                how = "trained on the folder, tested on --val"
            else:
                how = f"{int(row.shots)} shots per class, 5 seeds"
            from ui.markdown import literal
            return (f"Linear probe on your folder “{literal(row.dataset_name)}”: {how}, {int(row.n_images):,} images in "
                    f"{int(row.n_classes)} classes, {int(row.n_checkpoints)} checkpoints probed (frozen pre-logits "
                    "features, logistic regression; `python -m engine probe MODEL --data DIR`).")
    return None


@st.cache_resource(show_spinner=False, max_entries=8)
def _robustness(path: str, freshness: str, ood: str):
    from engine.analysis import robustness
    if ood in robustness.IMAGE_TEXT_OOD:
        return robustness.image_text_robustness(points(path, freshness, None), ood)
    zoo = points(path, freshness, None)
    return robustness.robustness(zoo[zoo["zoo"] != "image-text"] if "zoo" in zoo else zoo, ood)


def robustness_view(ood: str) -> dict:
    """One OOD set's trend and effective robustness (an image-text set: that zoo's), once per
    server and data (not hashed per rerun)."""
    store = get_store()
    return _robustness(str(store.path), store.freshness(), ood)


@st.cache_resource(show_spinner=False, max_entries=32)
def _robustness_shown(path: str, freshness: str, ood: str, classes: tuple, data_scales: tuple,
                      data_sources: tuple = (), objectives: tuple = ()) -> dict:
    from engine.analysis import robustness
    shown = _robustness(path, freshness, ood)["points"]
    if classes:
        shown = shown[shown["arch_class"].isin(classes)]
    if data_sources:
        shown = shown[shown["pretrain_data"].isin(data_sources)]
    if objectives:
        shown = shown[shown["objective"].isin(objectives)]
    if data_scales:
        shown = shown[shown["data_scale"].astype(object).fillna("unknown").isin(data_scales)]
    if shown.empty:
        return {"points": shown}
    return {"points": shown, "by_class": robustness.summary(shown, ["arch_class"]),
            "by_scale": robustness.summary(shown, ["arch_class", "data_scale"])}


def robustness_shown(ood: str, filters: dict) -> dict:
    """The checkpoints under the sidebar filters with their mean effective robustness per class and
    per class × data scale (bootstrapped), once per server, data and filters."""
    store = get_store()
    return _robustness_shown(str(store.path), store.freshness(), ood, tuple(filters["classes"] or ()),
                             tuple(filters["data_scales"] or ()), tuple(filters.get("data_sources") or ()),
                             tuple(filters.get("objectives") or ()))


@st.cache_resource(show_spinner=False, max_entries=4)
def _seed_paper_claims(path: str, freshness: str) -> dict:
    from engine.analysis import seed_paper
    reference = _store_for(path).table_frame("reference_points")
    return {"paper": seed_paper.paper_claims(reference), "zoo": seed_paper.zoo_claims(points(path, freshness, None))}


def seed_paper_claims() -> dict:
    """The seed paper's claims in two parts: checked from the paper's own rows ("paper"), and asked
    of the public zoo with intervals ("zoo"); once per server and data."""
    store = get_store()
    return _seed_paper_claims(str(store.path), store.freshness())


@st.cache_resource(show_spinner=False, max_entries=16)
def _training_coverage(path: str, freshness: str, metric: str, classes: tuple, data_scales: tuple,
                       sources: tuple | None, data_sources: tuple = (), objectives: tuple = ()):
    import pandas as pd
    frame = points(path, freshness, None)
    frame = frame[(frame["quality_metric"] == metric) & ~frame["family"].isin(points_table.TOY_FAMILIES)]
    if data_sources:
        frame = frame[frame["pretrain_data"].isin(data_sources)]
    if objectives:
        frame = frame[frame["objective"].isin(objectives)]
    if classes:
        frame = frame[frame["arch_class"].isin(classes)]
    if data_scales:
        frame = frame[frame["data_scale"].isin(data_scales)]
    if sources:
        frame = frame[frame["source"].isin(sources)]
    every = frame[frame["cost_metric"] == "gflops"].groupby("arch_class")["checkpoint"].nunique()
    known = frame[frame["cost_metric"] == "train_flops"].groupby("arch_class")["checkpoint"].nunique()
    out = pd.DataFrame({"total": every}).join(pd.DataFrame({"known": known})).fillna(0).astype(int)
    return out.assign(missing=out["total"] - out["known"]).reset_index()


def training_coverage(metric: str, filters: dict):
    """Per class: checkpoints with `metric` (counted on the GFLOP axis), and how many of them
    have no training-compute estimate; once per server, data and filters."""
    store = get_store()
    return _training_coverage(str(store.path), store.freshness(), metric, tuple(filters["classes"] or ()),
                              tuple(filters["data_scales"] or ()),
                              tuple(filters["sources"]) if filters["sources"] else None,
                              tuple(filters.get("data_sources") or ()), tuple(filters.get("objectives") or ()))


@st.cache_resource(show_spinner=False, max_entries=8)
def _training_compute_missing(path: str, freshness: str, zoo: str, arch_class: str | None):
    return _store_for(path).training_compute_missing(arch_class, zoo)


def training_compute_missing(zoo: str, arch_class: str | None = None):
    """The checkpoints the training-compute axis leaves out, with why; once per server and data."""
    store = get_store()
    return _training_compute_missing(str(store.path), store.freshness(), zoo, arch_class)


@st.cache_data(show_spinner=False, max_entries=8)
def _training_crosscheck(path: str, freshness: str, utilisation: float) -> dict:
    from engine.catalog import training_compute
    store = _store_for(path)
    compute = store.compute_frame()
    if compute.empty:
        import pandas as pd
        return {"paper": pd.DataFrame(), "published": pd.DataFrame()}
    paper = training_compute.vit_paper_check(compute)
    return {"paper": paper, "published": training_compute.crosscheck(store.training_compute_frame(), paper, utilisation)}


def training_crosscheck(utilisation: float) -> dict:
    """The ViT paper's Table 6 against the estimator, and published figures against the estimates."""
    store = get_store()
    return _training_crosscheck(str(store.path), store.freshness(), utilisation)


def params_lookup():
    """Counted parameters (M) per (checkpoint, img_size), for filtering any cost axis by size."""
    store = get_store()
    return _params(str(store.path), store.freshness())
