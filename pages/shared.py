"""What every page shares: the store, cached queries, and widgets whose state lives in the URL."""
from __future__ import annotations

import os
import threading

import altair as alt
import streamlit as st

from engine import analysis, catalog
from engine.errors import MatchupError
from engine.store import Store, resolve_db_path

COST_LABELS = {"gflops": "GFLOPs (counted)", "params_m": "parameters (M)",
               "ms_per_img": "ms per image (throughput)", "latency_ms": "latency, batch 1 (ms, measured here)"}
COST_UNITS = {"gflops": " GFLOPs", "params_m": "M params", "ms_per_img": " ms/img", "latency_ms": " ms"}
SOURCES = {"both": None, "published": ["published"], "measured here": ["measured here"]}


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
    from engine import jobs
    if jobs.read_only() or os.environ.get("MATCHUP_NO_EMBEDDED_WORKER"):
        return None
    return jobs.EmbeddedWorker(path).start()


def json_or_none(text):
    import json
    return json.loads(text) if isinstance(text, str) and text else None


# -- published results in the background ----------------------------------------------------------
class PublishedLoader:
    """Imports timm's published results once per server: from MATCHUP_PUBLISHED_DIR when set,
    else by syncing the pinned commit; pages never wait for it."""

    def __init__(self, store: Store):
        self.state, self.message = "idle", ""
        self._store = store
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "PublishedLoader":
        if self._store.count("published_results") > 0:
            self.state = "done"
            return self
        self.state = "running"
        self._thread.start()
        return self

    def _run(self):
        folder = os.environ.get("MATCHUP_PUBLISHED_DIR")
        try:
            report = catalog.import_dir(self._store, folder) if folder else catalog.sync(self._store)
            self.state = "done"
            self.message = f"imported {sum(report.imported.values())} published rows"
        except MatchupError as e:
            self.state = "failed"
            self.message = str(e)


@st.cache_resource
def published_loader(path: str) -> PublishedLoader:
    return PublishedLoader(_store_for(path)).start()


# -- cached queries ---------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=8)
def points(path: str, freshness: str, bench_source: str | None):
    """All analysis points, shared read-only by every session (no copy per rerun); keyed by the
    DB's freshness so widgets never re-read the store."""
    store = _store_for(path)
    return analysis.assemble_points(store.analysis_inputs(), bench_source=bench_source)


@st.cache_data(show_spinner=False, max_entries=4)
def bench_sources(path: str, freshness: str):
    return _store_for(path).published_benchmark_sources()


@st.cache_data(show_spinner=False, max_entries=4)
def checkpoint_table(path: str, freshness: str):
    return catalog.list_checkpoints(_store_for(path))


@st.cache_data(show_spinner=False, max_entries=4)
def db_info(path: str, freshness: str) -> dict:
    return _store_for(path).info()


def current_points(bench_source: str | None = None):
    store = get_store()
    return points(str(store.path), store.freshness(), bench_source)


# -- widgets whose value is in the URL ----------------------------------------------------------------
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


def _url_wins(key: str) -> bool:
    return key not in st.session_state or (st.session_state.get("entering_page", False)
                                             and key in st.query_params)


def _from_url(key: str, default, cast=str):
    if _url_wins(key):
        raw = st.query_params.get(key)
        try:
            st.session_state[key] = cast(raw) if raw is not None else default
        except (TypeError, ValueError):
            st.session_state[key] = default
    return st.session_state[key]


def url_selectbox(label: str, options: list, key: str, default=None, **kwargs):
    value = _from_url(key, default if default is not None else options[0])
    if value not in options:
        st.session_state[key] = options[0]
    choice = st.selectbox(label, options, key=key, **kwargs)
    st.query_params[key] = str(choice)
    return choice


def url_multiselect(label: str, options: list, key: str, default: list, **kwargs):
    raw = st.query_params.get_all(key) if key in st.query_params else None
    if _url_wins(key):
        st.session_state[key] = [v for v in (raw or default) if v in options]
    chosen = st.multiselect(label, options, key=key, **kwargs)
    st.query_params[key] = chosen
    return chosen


def url_select_slider(label: str, options: list[float], key: str, default: float, **kwargs):
    value = _from_url(key, default, float)
    if value not in options:
        st.session_state[key] = min(options, key=lambda o: abs(o - value))
    chosen = st.select_slider(label, options, key=key, **kwargs)
    st.query_params[key] = str(chosen)
    return chosen


# -- the shared sidebar filters -----------------------------------------------------------------------
def global_filters() -> dict:
    """Class, data scale and source filters, set in the sidebar and shared by every page."""
    with st.sidebar:
        st.subheader("Filters")
        classes = url_multiselect("Architecture classes", list(analysis.CLASSES), "classes",
                                  ["ConvNet", "ViT", "Hybrid"])
        scales = url_multiselect("Pre-training data scale", ["≈1M", "≈10M", "≈100M", "≥1B"], "scale",
                                 ["≈1M", "≈10M", "≈100M", "≥1B"])
        source = url_selectbox("Source", list(SOURCES), "source")
    return {"classes": classes, "data_scales": scales, "sources": SOURCES[source]}


def cost_and_metric(points_frame) -> tuple[str, str, str | None, object]:
    """Cost axis (with the published device for ms/img) and quality metric pickers; also
    returns the points for that device."""
    store = get_store()
    left, middle, right = st.columns(3)
    with left:
        cost = url_selectbox("Cost", list(COST_LABELS), "cost", format_func=COST_LABELS.get)
    bench_source = None
    if cost == "ms_per_img":
        sources = bench_sources(str(store.path), store.freshness())
        options = ["here"] + sources["source_file"].tolist()
        with right:
            bench_source = url_selectbox("Device (published benchmark file, or here)", options, "device",
                                         default=options[1] if len(options) > 1 else "here")
        points_frame = current_points(bench_source)
    metrics = sorted(points_frame.loc[points_frame["cost_metric"] == cost, "quality_metric"].unique())
    with middle:
        metric = url_selectbox("Metric", metrics or ["imagenet.top1"], "metric",
                               default="imagenet.top1" if "imagenet.top1" in metrics else None)
    return cost, metric, bench_source, points_frame


def selected(points_frame, cost: str, metric: str, filters: dict):
    """Filtered points, or None after telling the user what is missing."""
    try:
        return analysis.select(points_frame, cost, metric, classes=filters["classes"] or None,
                               data_scales=filters["data_scales"] or None, sources=filters["sources"])
    except analysis.AnalysisError as e:
        st.info(f"{e} Import published results (`python -m engine catalog import DIR`) or run "
                "evaluations and benchmarks to fill this view.")
        return None


def analysis_page(page: str, title: str):
    """The head every analysis page shares: title, filters, cost and metric, the chosen points.
    Returns (points or None, cost, metric)."""
    enter(page)
    st.title(title)
    filters = global_filters()
    cost, metric, _source, points_frame = cost_and_metric(current_points())
    return selected(points_frame, cost, metric, filters), cost, metric


def budget_slider(chosen):
    options = analysis.log_budgets(chosen, n=40)
    return url_select_slider("Budget", options, "budget", options[len(options) // 2])


def flop_note(cost: str) -> None:
    if cost == "gflops":
        st.caption("GFLOPs are counted here for every checkpoint one way: forward pass, batch 1, "
                   "2 FLOPs per multiply-add, attention matmuls included, at the resolution the "
                   "accuracy was measured at (torch FlopCounterMode).")
        st.page_link("pages/crosscheck.py", label="How these counts compare with timm's published GMACs")


# -- charts whose spec is built once ---------------------------------------------------------------
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
