"""The read-only query box: one SELECT in a child process, row- and time-limited."""
from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pandas as pd

from engine.errors import MatchupError
from engine.store.connection import _LOCK_MARKERS


class ReadOnlyQuery:
    # -- read-only SQL for the Results page ----------------------------------------------------------
    def read_only_query(self, sql: str, limit: int = 10_000, timeout_s: float = 10.0) -> pd.DataFrame:
        """One SELECT, run in a child process on a read-only connection with file access off,
        at most `limit` rows, killed after `timeout_s`: what a shared demo may let anyone type."""
        statements = _select_statements(sql)
        if len(statements) != 1:
            raise QueryError("Give exactly one SELECT statement (no ';'-separated list).")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                done = subprocess.run([sys.executable, "-c", _READ_ONLY_CHILD, str(self.path),
                                       statements[0], str(int(limit))], capture_output=True,
                                      timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise QueryError(f"The query ran past {timeout_s:g} s and was stopped. Narrow it "
                                 "(a WHERE clause, fewer joins) and run it again.") from None
            if done.returncode == 0:
                import io
                return pd.read_parquet(io.BytesIO(done.stdout))
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            message = next((line for line in reversed(lines) if "Error: " in line or "Exception: " in line),
                           lines[-1] if lines else "unknown error")
            if any(marker in message for marker in _LOCK_MARKERS) and time.monotonic() < deadline:
                time.sleep(0.2)  # a writer holds the file for one transaction: try again
                continue
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
import io, sys, duckdb
path, sql, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect(path, read_only=True)
con.execute("SET enable_external_access = false")
con.execute("SET lock_configuration = true")
frame = con.execute(f"SELECT * FROM ({sql}) LIMIT {limit}").df()
buffer = io.BytesIO()
frame.to_parquet(buffer)
sys.stdout.buffer.write(buffer.getvalue())
"""
