"""Matchup's Streamlit entry point: navigation, the shared sidebar, and a full database on first start."""
import os

import streamlit as st

st.set_page_config(page_title="Matchup: ConvNets vs ViTs at matched compute", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", default=True),
    st.Page("pages/frontier.py", title="Frontier"),
    st.Page("pages/budget.py", title="Budget match"),
    st.Page("pages/when.py", title="When each wins"),
    st.Page("pages/robustness.py", title="Robustness"),
    st.Page("pages/scaling.py", title="Scaling"),
    st.Page("pages/seed_paper.py", title="Seed paper"),
    st.Page("pages/checkpoint.py", title="Checkpoint"),
    st.Page("pages/crosscheck.py", title="FLOP cross-check"),
    st.Page("pages/training_crosscheck.py", title="Training-compute cross-check"),
    st.Page("pages/run.py", title="Run"),
    st.Page("pages/results.py", title="Results"),
    st.Page("pages/catalog.py", title="Catalog"),
]
# Navigation first: until st.navigation runs, Streamlit lists every file of pages/ on its own.
navigation = st.navigation(PAGES, expanded=True)  # all pages listed, not "View 3 more"
st.session_state["app_shell"] = True  # pages check it: see ui.widgets.enter

from engine import options  # noqa: E402
from engine.catalog import refresh, timm_published  # noqa: E402  (after the navigation: these imports take a second)
from engine.errors import MatchupError, unexpected_line  # noqa: E402
from engine.jobs import access  # noqa: E402
from ui.access import sidebar_account  # noqa: E402
from ui.loaders import db_info, embedded_worker, get_store, published_loader, warm_imports  # noqa: E402
from ui.markdown import literal  # noqa: E402


def ensure_catalog() -> dict:
    """An empty database gets, in one step and offline, the catalog from the installed timm, the
    shipped FLOP counts, the paper reference points and the shipped snapshot of timm's published
    results (unless MATCHUP_PUBLISHED_DIR names a folder to import instead)."""
    store = get_store()
    info = db_info(str(store.path), store.freshness())
    if info["tables"]["checkpoints"] == 0 or not info.get("catalog_complete"):  # new, or a refresh cut short
        with st.status("Building the checkpoint catalog and loading timm's published results…") as status:
            report = refresh.refresh(store, load_published=not os.environ.get("MATCHUP_PUBLISHED_DIR"))
            status.update(label=f"Catalog built: {report.checkpoints} checkpoints, {report.compute_loaded} "
                                f"FLOP counts; {report.published or 'published results not loaded'}",
                          state="complete")
        info = db_info(str(store.path), store.freshness())
    return info


try:
    options.check_environment()
    access.check_lists()
    info = ensure_catalog()
    loader = published_loader(info["path"])
    embedded_worker(info["path"])
except MatchupError as e:
    st.error(literal(e))
    st.stop()
except Exception as e:  # noqa: BLE001 - one line here, the traceback in a log file
    st.error(literal(unexpected_line(e, "app start")))
    st.stop()

sidebar_account()
with st.sidebar:
    published = timm_published.describe_published(info["published"], counts=False)
    # Plain text on purpose: inline code and a "hh:mm:ss" (read as an :emoji: code) each make every
    # new viewer's browser fetch one more file (a font, a plugin) from this server (issue 13).
    refreshed = (info["catalog_refreshed_at"] or "never").replace("T", " ")[:16]
    st.caption(f"Database {info['path']} · catalog refreshed {refreshed} "
               f"(timm {info['catalog_timm_version']}) · {info['tables']['published_results']:,} "
               f"published results and {info['tables']['published_benchmarks']:,} published benchmark rows"
               f"{f' ({published})' if published else ''} · {info['tables']['evals']:,} evaluations measured here")
    if info["tables"]["published_results"] == 0:
        if loader.snapshot_problem:
            st.warning(loader.snapshot_problem)
        if loader.state == "running":
            source = os.environ.get("MATCHUP_PUBLISHED_DIR") or "timm's repository"
            st.caption(f"Loading published results from {source} in the background…")
        elif loader.state == "failed":
            st.caption("Published results are not loaded (offline?). Import them from a folder: "
                       "`python -m engine catalog import DIR`, or set MATCHUP_PUBLISHED_DIR.")

try:
    navigation.run()
except Exception as e:  # noqa: BLE001 - a page's unexpected error: one line here, the traceback in a log file
    st.error(literal(unexpected_line(e, f"page {navigation.title}")))
warm_imports()  # after the page: timm and torch load in the background once per server
