"""Matchup's Streamlit entry point: navigation, the shared sidebar, and a catalog on first start."""
import streamlit as st

from engine import catalog
from engine.errors import MatchupError
from pages.shared import get_store

st.set_page_config(page_title="Matchup: ConvNets vs ViTs at matched compute", layout="wide")


def ensure_catalog() -> dict:
    """An empty database gets the catalog from the installed timm (offline, a few seconds)."""
    store = get_store()
    if store.count("checkpoints") == 0:
        with st.status("Building the checkpoint catalog from the installed timm…") as status:
            report = catalog.refresh(store)
            status.update(label=f"Catalog built: {report.checkpoints} checkpoints", state="complete")
    return store.info()


try:
    info = ensure_catalog()
except MatchupError as e:
    st.error(str(e))
    st.stop()

with st.sidebar:
    st.caption(f"Database `{info['path']}` · schema v{info['schema_version']}")
    st.caption(f"Catalog refreshed {info['catalog_refreshed_at']} from timm "
               f"{info['catalog_timm_version']}; {info['tables']['published_results']} published "
               "results imported.")

page = st.navigation([st.Page("pages/catalog.py", title="Catalog", default=True)])
page.run()
