"""Opening the file: paths, locking with backoff, migrations, one transaction per call.

No process holds the file open longer than one transaction, so the app, CLI runs and
workers can share it: a connection that meets another process's lock retries with
backoff for a bounded time, then fails with a message that says what to do.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd

from engine.errors import MatchupError
from engine.paths import DATA_DIR
from engine.store import schema

DEFAULT_DB = DATA_DIR / "matchup.duckdb"
DEFAULT_LOCK_TIMEOUT_S = 60.0


class StoreError(MatchupError):
    """The database cannot be opened or used as asked."""


class StoreLockedError(StoreError):
    """Another process kept the database locked past the timeout."""


class SchemaVersionError(StoreError):
    """The database was written by a newer Matchup."""


_LOCK_MARKERS = ("Could not set lock", "Conflicting lock")


def resolve_db_path(path: str | os.PathLike | None = None) -> Path:
    """--db PATH, else $MATCHUP_DB, else data/matchup.duckdb in the project."""
    chosen = path or os.environ.get("MATCHUP_DB") or DEFAULT_DB
    return Path(chosen).expanduser().resolve()


def sql_string(text: str) -> str:
    """A SQL string literal of any text (for statements such as COPY ... TO that take no bound
    parameter): single quotes doubled, so a path with quotes, ';' or '--' stays a path."""
    return "'" + str(text).replace("'", "''") + "'"


def cache_key(payload: dict) -> str:
    """SHA-256 of the canonical JSON of everything that can change a stored number."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Threads of one process share one DuckDB instance, where two transactions can both read "no
# such job" and both insert (or both migrate a new file); processes are kept apart by DuckDB's
# file lock. So queue writes and migrations also hold this per-file lock: together they make
# claim, dedupe and first use atomic.
_QUEUE_LOCKS: dict[Path, threading.RLock] = {}
_QUEUE_LOCKS_GUARD = threading.Lock()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Connection:
    """One DuckDB file. Each call opens, works in one transaction, and closes."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout_s: float | None = None):
        self.path = resolve_db_path(path)
        from engine import options
        self.lock_timeout_s = (lock_timeout_s if lock_timeout_s is not None
                               else options.env("MATCHUP_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT_S))
        self._migrated = False

    # -- connections ---------------------------------------------------------------------------
    def _open_error(self, reason: str) -> StoreError:
        return StoreError(
            f"Cannot open the Matchup database at {self.path}: {reason}. "
            "Pass --db PATH (or set MATCHUP_DB) to a writable DuckDB file; "
            "Matchup creates it on first use.")

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.path.is_dir():
            raise self._open_error("that path is a directory, not a database file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._open_error(f"its folder cannot be created ({e.strerror or e})") from None
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as e:
                message = str(e)
                if not any(marker in message for marker in _LOCK_MARKERS):
                    raise self._open_error(message.removeprefix("IO Error: ")) from None
                if time.monotonic() >= deadline:
                    holder = message.split("Conflicting lock is held in", 1)[-1].split(". See")[0]
                    raise StoreLockedError(
                        f"The Matchup database {self.path} stayed locked by another process"
                        f" ({holder.strip()}) for {self.lock_timeout_s:.0f} s. Wait for that"
                        " process (an import, a worker or the app) to finish and try again, raise"
                        " MATCHUP_LOCK_TIMEOUT, or point --db / MATCHUP_DB at another file."
                    ) from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 1.0)
            except duckdb.Error as e:
                raise self._open_error(str(e)) from None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A migrated connection, closed on exit. A file that cannot be read or written as the
        work goes on (damaged, a read-only folder, a full disk) is a StoreError saying so."""
        con = self._open()
        try:
            if not self._migrated:
                with self._queue_lock():
                    self._migrate(con)
                self._migrated = True
            yield con
        except (duckdb.IOException, duckdb.PermissionException, duckdb.SerializationException,
                duckdb.InternalException, duckdb.FatalException) as e:
            if any(marker in str(e) for marker in _LOCK_MARKERS):
                raise
            raise StoreError(f"The Matchup database {self.path} cannot be read or written: "
                             f"{str(e).splitlines()[0]}. If the disk is full or the folder read-only, fix that; "
                             "if the file is damaged, move it aside (Matchup starts a new one).") from None
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: a failure rolls back, so no result is ever half-written."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- schema --------------------------------------------------------------------------------
    def _version(self, con: duckdb.DuckDBPyConnection) -> int:
        """The file's Matchup schema version; 0 for a new or empty file. Any other file (someone
        else's tables, a damaged version row) is refused before anything is written to it."""
        tables = [f"{s}.{t}" if s != "main" else t for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY 1, 2").fetchall()]
        if "meta" not in tables:
            if tables:
                shown = ", ".join(tables[:8]) + (f" and {len(tables) - 8} more" if len(tables) > 8 else "")
                raise self._open_error(
                    f"it is a DuckDB database but not Matchup's (it holds the tables {shown} and no "
                    "Matchup schema); Matchup creates its tables only in a new or empty file and left "
                    "this one unchanged")
            return 0
        try:  # Matchup writes meta and its version in the transaction that creates the schema
            [(value,)] = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
            return int(value)
        except (duckdb.Error, ValueError, TypeError):
            raise self._open_error(
                "its 'meta' table holds no readable Matchup schema version (damaged, or another "
                "program's table); it was left unchanged") from None

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        current = self._version(con)
        if current > schema.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The database {self.path} has schema version {current}, written by a newer "
                f"Matchup; this Matchup reads schema versions 1 to {schema.SCHEMA_VERSION}. Upgrade "
                "Matchup (git pull), or point --db / MATCHUP_DB at another file.")
        if current == schema.SCHEMA_VERSION:
            return
        con.execute("BEGIN TRANSACTION")
        try:
            current = self._version(con)  # another process may have migrated meanwhile
            for version, statements in schema.MIGRATIONS:
                if version <= current:
                    continue
                for sql in statements:
                    con.execute(sql)
                con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)])
            con.execute("COMMIT")
        except duckdb.Error as e:  # the tables are not what the version row says: refuse, change nothing
            con.execute("ROLLBACK")
            raise self._open_error(
                f"its schema version row says {current}, but its tables do not match that version "
                f"({str(e).splitlines()[0]}); it was edited by hand or by another program and was left "
                "unchanged. Restore it from a backup, or point --db / MATCHUP_DB at another file") from None
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        with self.connect() as con:
            return self._version(con)

    # -- meta ----------------------------------------------------------------------------------
    @staticmethod
    def _set_meta(con: duckdb.DuckDBPyConnection, **values: str) -> None:
        for key, value in values.items():
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, str(value)])

    def meta(self) -> dict[str, str]:
        with self.connect() as con:
            return dict(con.execute("SELECT key, value FROM meta").fetchall())

    # -- writes --------------------------------------------------------------------------------
    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        columns = ", ".join(frame.columns)
        con.register("incoming", frame)
        try:
            con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
        finally:
            con.unregister("incoming")

    def freshness(self) -> str:
        """A token that changes whenever the file is written (every write ends in a checkpoint
        when its connection closes): keys the app's cached queries without opening the database."""
        parts = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                stat = path.stat()
                parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
            except FileNotFoundError:
                parts.append("-")
        return "|".join(parts)

    # -- reads ---------------------------------------------------------------------------------
    def count(self, table: str) -> int:
        if table not in schema.TABLES:
            raise ValueError(f"unknown table {table!r}")
        with self.connect() as con:
            return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]

    def table_frame(self, table: str, limit: int = 100_000) -> pd.DataFrame:
        """A stored table for browsing and download (row-limited)."""
        if table not in schema.TABLES:
            raise ValueError(f"unknown table {table!r}")
        with self.connect() as con:
            return con.execute(f"SELECT * FROM {table} LIMIT ?", [limit]).df()

    def export(self, folder: str | os.PathLike) -> list[Path]:
        """Every table as Parquet, for sharing a lab's results; each file is written under a
        temporary name and renamed, so a failed export leaves no half file."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"Cannot export to {folder}: {e.strerror or e} (it must be a folder, or a path where "
                             "one can be made). Give another folder.") from None
        written = []
        with self.connect() as con:
            for table in schema.TABLES:
                target = folder / f"{table}.parquet"
                partial = folder / f".{table}.parquet.partial"
                try:
                    con.execute(f"COPY {table} TO {sql_string(partial.as_posix())} (FORMAT parquet)")
                    os.replace(partial, target)
                except (OSError, duckdb.Error) as e:
                    partial.unlink(missing_ok=True)
                    raise StoreError(f"Cannot write {target}: {str(e).splitlines()[0]}. Nothing more was "
                                     "exported; free some space or give another folder.") from None
                written.append(target)
        return written

    def _queue_lock(self) -> threading.RLock:
        with _QUEUE_LOCKS_GUARD:
            return _QUEUE_LOCKS.setdefault(self.path, threading.RLock())
