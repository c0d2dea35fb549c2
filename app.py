"""Matchup's Streamlit entry point: navigation, the shared sidebar, and a catalog on first start."""
import os

import streamlit as st

from engine import catalog
from engine.errors import MatchupError
from ui.loaders import db_info, embedded_worker, get_store, published_loader

st.set_page_config(page_title="Matchup: ConvNets vs ViTs at matched compute", layout="wide")


def ensure_catalog() -> dict:
    """An empty database gets the catalog, the shipped FLOP counts and the paper reference points
    from the installed timm (offline, a few seconds)."""
    store = get_store()
    info = db_info(str(store.path), store.freshness())
    if info["tables"]["checkpoints"] == 0:
        with st.status("Building the checkpoint catalog from the installed timm…") as status:
            report = catalog.refresh(store)
            status.update(label=f"Catalog built: {report.checkpoints} checkpoints, "
                                f"{report.compute_loaded} FLOP counts", state="complete")
        info = db_info(str(store.path), store.freshness())
    return info


try:
    info = ensure_catalog()
    loader = published_loader(info["path"])
    embedded_worker(info["path"])
except MatchupError as e:
    st.error(str(e))
    st.stop()

with st.sidebar:
    st.caption(f"Database `{info['path']}` · catalog refreshed {info['catalog_refreshed_at']} "
               f"(timm {info['catalog_timm_version']}) · {info['tables']['published_results']} "
               f"published results · {info['tables']['evals']} evaluations measured here")
    if loader.state == "running":
        source = os.environ.get("MATCHUP_PUBLISHED_DIR") or "timm's repository"
        st.caption(f"Loading published results from {source} in the background…")
    elif loader.state == "failed" and info["tables"]["published_results"] == 0:
        st.caption("Published results are not loaded (offline?). Import them from a folder: "
                   "`python -m engine catalog import DIR`, or set MATCHUP_PUBLISHED_DIR.")

PAGES = [
    st.Page("pages/overview.py", title="Overview", default=True),
    st.Page("pages/frontier.py", title="Frontier"),
    st.Page("pages/budget.py", title="Budget match"),
    st.Page("pages/scaling.py", title="Scaling"),
    st.Page("pages/seed_paper.py", title="Seed paper"),
    st.Page("pages/checkpoint.py", title="Checkpoint"),
    st.Page("pages/crosscheck.py", title="FLOP cross-check"),
    st.Page("pages/run.py", title="Run"),
    st.Page("pages/results.py", title="Results"),
    st.Page("pages/catalog.py", title="Catalog"),
]
st.session_state["app_shell"] = True  # pages check it: see ui.widgets.enter
st.navigation(PAGES).run()
