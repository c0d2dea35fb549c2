"""What every page shares: the store connection, one per database path and server process."""
import streamlit as st

from engine.store import Store, resolve_db_path


@st.cache_resource
def _store_for(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The store for $MATCHUP_DB (else data/matchup.duckdb)."""
    return _store_for(str(resolve_db_path()))
