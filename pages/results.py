"""Results: browse the stored tables and download them as CSV or Parquet."""
import io

import streamlit as st

from engine.store import TABLES
from pages import shared

shared.enter("results")

st.title("Results")
table = shared.url_selectbox("Table", list(TABLES), "table", default="published_results")
frame = shared.get_store().table_frame(table)
text = st.text_input("Filter rows containing", key="filter")
if text:
    mask = frame.astype(str).apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
    frame = frame[mask]
st.caption(f"{len(frame)} rows")
st.dataframe(frame, hide_index=True, width="stretch")
left, right = st.columns(2)
left.download_button("Download CSV", frame.to_csv(index=False), f"{table}.csv", "text/csv")
buffer = io.BytesIO()
frame.to_parquet(buffer, index=False)
right.download_button("Download Parquet", buffer.getvalue(), f"{table}.parquet", "application/octet-stream")
