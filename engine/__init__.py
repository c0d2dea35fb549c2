"""Matchup's engine: catalog, evaluation, profiling, store and analysis. Never imports streamlit."""
