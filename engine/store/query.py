"""The read-only query box: one SELECT in a child process, row- and time-limited."""
from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pandas as pd

from engine.errors import MatchupError
from engine.store.connection import _LOCK_MARKERS


MAX_RESULT_BYTES = 32 * 2**20     # what a query may send back to the app (Arrow bytes)
MAX_QUERY_MEMORY = 2 * 2**30      # the query process's address space; DuckDB gets a quarter of it


class ReadOnlyQuery:
    # -- read-only SQL for the Results page ----------------------------------------------------------
    def read_only_query(self, sql: str, limit: int = 10_000, timeout_s: float = 10.0,
                        max_bytes: int = MAX_RESULT_BYTES, max_memory: int = MAX_QUERY_MEMORY) -> pd.DataFrame:
        """One SELECT, run in a child process on a read-only connection with file access off: at
        most `limit` rows and `max_bytes` of result (streamed, so a huge result is never built),
        the child's memory capped at `max_memory`, killed after `timeout_s`: what a shared demo
        may let anyone type. What was cut is in `frame.attrs["cut"]`."""
        if "\x00" in sql:
            raise QueryError("The query holds a NUL byte (pasted from a binary file?); remove it and run it again.")
        statements = _select_statements(sql)
        if len(statements) != 1:
            raise QueryError("Give exactly one SELECT statement (no ';'-separated list).")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                # the query goes in on stdin: a long one would not fit the child's argument list
                done = subprocess.run([sys.executable, "-c", _READ_ONLY_CHILD, str(self.path),
                                       str(int(limit)), str(int(max_bytes)), str(int(max_memory))],
                                      input=statements[0].encode(), capture_output=True,
                                      timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise QueryError(f"The query ran past {timeout_s:g} s and was stopped. Narrow it "
                                 "(a WHERE clause, fewer joins) and run it again.") from None
            if done.returncode == 0:
                import io
                import json
                frame = pd.read_parquet(io.BytesIO(done.stdout))
                report = json.loads(done.stderr.decode().strip().splitlines()[-1])
                frame.attrs["cut"] = report["cut"]
                return frame
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            message = next((line for line in reversed(lines) if "Error: " in line or "Exception: " in line
                            or "Error" in line.split(":")[0]), lines[-1] if lines else "unknown error")
            if any(marker in message for marker in _LOCK_MARKERS) and time.monotonic() < deadline:
                time.sleep(0.2)  # a writer holds the file for one transaction: try again
                continue
            if "Out of Memory" in message or "MemoryError" in message or not lines:
                raise QueryError(f"The query needs more memory than this box allows ({max_memory / 2**30:g} GiB) "
                                 "and was stopped. Select fewer or narrower columns, or aggregate first.")
            raise QueryError(f"The query failed: {message.split('Error: ', 1)[-1]}")


class QueryError(MatchupError):
    """A read-only query was refused or failed; the message says why."""


def _select_statements(sql: str) -> list[str]:
    """The statements of `sql`, refusing anything but SELECT."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"The query does not parse: {str(e).split(': ', 1)[-1]}") from None
    for statement in statements:
        if statement.type != duckdb.StatementType.SELECT:
            raise QueryError(f"Only SELECT queries run here (this is a {statement.type.name} "
                             "statement): the Results page never changes the database.")
    return [statement.query for statement in statements]


_READ_ONLY_CHILD = """
import io, json, resource, sys
path, limit, max_bytes, max_memory = sys.argv[1], *map(int, sys.argv[2:5])
sql = sys.stdin.read()
resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
import duckdb, pyarrow as pa, pyarrow.parquet as pq
con = duckdb.connect(path, read_only=True, config={"memory_limit": f"{max_memory // 4 // 2**20}MB", "threads": "2"})
con.execute("SET enable_external_access = false")
con.execute("SET lock_configuration = true")
reader = con.sql(sql).to_arrow_reader(256)
batches, rows, size, cut = [], 0, 0, None
for batch in reader:
    if rows + batch.num_rows > limit:
        batch, cut = batch.slice(0, limit - rows), f"rows: the first {limit:,} rows are shown"
    if size + batch.nbytes > max_bytes:
        keep = int((max_bytes - size) // max(1, batch.nbytes // max(1, batch.num_rows)))
        batch, cut = batch.slice(0, max(0, min(keep, batch.num_rows))), f"bytes: the first {max_bytes // 2**20} MiB are shown"
    if batch.num_rows:
        batches.append(batch)
    rows, size = rows + batch.num_rows, size + batch.nbytes
    if cut:
        break
table = pa.Table.from_batches(batches, schema=reader.schema)
names, seen = [], {}
for name in table.column_names:  # a join's two "checkpoint" columns: checkpoint, checkpoint_2
    seen[name] = seen.get(name, 0) + 1
    unique = name if seen[name] == 1 else f"{name}_{seen[name]}"
    while unique in seen and unique != name:
        seen[name] += 1
        unique = f"{name}_{seen[name]}"
    seen.setdefault(unique, 1)
    names.append(unique)
table = table.rename_columns(names)
buffer = io.BytesIO()
pq.write_table(table, buffer)
sys.stdout.buffer.write(buffer.getvalue())
sys.stderr.write(json.dumps({"rows": rows, "bytes": size, "cut": cut}) + "\\n")
"""
