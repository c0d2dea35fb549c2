"""Results: browse the stored tables and download them as CSV or Parquet."""
import io

import streamlit as st

from engine.errors import MatchupError
from engine.store import TABLES
from engine.store.query import MAX_QUERY_MEMORY, MAX_RESULT_BYTES
from ui import loaders, tables, widgets

QUERY_ROW_LIMIT, QUERY_TIMEOUT_S = 10_000, 10

widgets.enter("results")

st.title("Results")
table = widgets.url_selectbox("Table", list(TABLES), "table", default="published_results")
frame = loaders.get_store().table_frame(table)
text = st.text_input("Filter rows containing", key="filter")
if text:
    mask = frame.astype(str).apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
    frame = frame[mask]
with st.expander("Query with SQL (read-only)"):
    sql = st.text_area("One SELECT over the tables above", key="sql",
                       placeholder="SELECT checkpoint, top1 FROM evals ORDER BY top1 DESC")
    st.caption(f"Runs on a read-only connection with file access off; at most {QUERY_ROW_LIMIT:,} rows, "
               f"{MAX_RESULT_BYTES // 2**20} MiB of result, {MAX_QUERY_MEMORY // 2**30} GiB of memory "
               f"and {QUERY_TIMEOUT_S} s.")
    if sql.strip():
        try:
            frame = loaders.get_store().read_only_query(sql, limit=QUERY_ROW_LIMIT, timeout_s=QUERY_TIMEOUT_S)
            table = "query"
            if frame.attrs.get("cut"):
                st.warning(f"The result was cut ({frame.attrs['cut']}). Narrow the query (fewer or "
                           "narrower columns, a WHERE clause) to see the rest.")
        except MatchupError as e:
            st.error(widgets.literal(e))
st.caption(f"{len(frame)} rows")
tables.show(frame, hide_index=True, width="stretch")
left, right = st.columns(2)
left.download_button("Download CSV", tables.csv_text(frame), f"{table}.csv", "text/csv")
buffer = io.BytesIO()
frame.to_parquet(buffer, index=False)
right.download_button("Download Parquet", buffer.getvalue(), f"{table}.parquet", "application/octet-stream")
