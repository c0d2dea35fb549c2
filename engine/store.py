"""The DuckDB store: schema, migrations, locking and every SQL statement Matchup runs.

No process holds the file open longer than one transaction, so the app, CLI runs and
workers can share it: a connection that meets another process's lock retries with
backoff for a bounded time, then fails with a message that says what to do.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd

from engine.errors import MatchupError

DEFAULT_DB = Path(__file__).resolve().parent.parent / "data" / "matchup.duckdb"
DEFAULT_LOCK_TIMEOUT_S = 60.0


class StoreError(MatchupError):
    """The database cannot be opened or used as asked."""


class StoreLockedError(StoreError):
    """Another process kept the database locked past the timeout."""


class SchemaVersionError(StoreError):
    """The database was written by a newer Matchup."""


# Forward-only migrations: (version, statements). Append; never edit a released step.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
        """CREATE TABLE architectures (
            arch VARCHAR PRIMARY KEY, module VARCHAR, arch_class VARCHAR NOT NULL,
            family VARCHAR, registered BOOLEAN NOT NULL, n_pretrained INTEGER, note VARCHAR,
            default_input_h INTEGER, default_input_w INTEGER, default_num_classes INTEGER)""",
        """CREATE TABLE checkpoints (
            checkpoint VARCHAR PRIMARY KEY, arch VARCHAR NOT NULL, tag VARCHAR, module VARCHAR,
            arch_class VARCHAR NOT NULL, family VARCHAR, pretrain_data VARCHAR,
            finetune_data VARCHAR, data_scale VARCHAR, hub_repo VARCHAR,
            input_h INTEGER, input_w INTEGER, test_h INTEGER, test_w INTEGER,
            crop_pct DOUBLE, test_crop_pct DOUBLE, crop_mode VARCHAR, interpolation VARCHAR,
            mean DOUBLE[], std DOUBLE[], num_classes INTEGER, license VARCHAR,
            timm_version VARCHAR)""",
        """CREATE TABLE compute (
            arch VARCHAR, img_size INTEGER, num_classes INTEGER, img_width INTEGER,
            params BIGINT, flops DOUBLE, macs DOUBLE, attention_flops DOUBLE,
            flops_by_module JSON, reparameterizable BOOLEAN, counter VARCHAR,
            device VARCHAR, error VARCHAR, torch_version VARCHAR, timm_version VARCHAR,
            created_at TIMESTAMP, PRIMARY KEY (arch, img_size, num_classes))""",
        """CREATE TABLE published_results (
            source_file VARCHAR NOT NULL, dataset VARCHAR NOT NULL, model VARCHAR NOT NULL,
            checkpoint VARCHAR, img_size INTEGER, top1 DOUBLE, top5 DOUBLE,
            param_count DOUBLE, crop_pct DOUBLE, interpolation VARCHAR)""",
        """CREATE TABLE published_benchmarks (
            source_file VARCHAR NOT NULL, mode VARCHAR, device VARCHAR, precision VARCHAR,
            layout VARCHAR, torch VARCHAR, cuda VARCHAR, compiled BOOLEAN,
            model VARCHAR NOT NULL, arch VARCHAR, img_size INTEGER, batch_size INTEGER,
            samples_per_sec DOUBLE, step_time_ms DOUBLE, gmacs DOUBLE, macts DOUBLE,
            param_count DOUBLE)""",
        """CREATE TABLE published_files (
            source_file VARCHAR PRIMARY KEY, kind VARCHAR, n_rows INTEGER,
            sha256 VARCHAR, imported_at TIMESTAMP)""",
        """CREATE TABLE reference_points (
            source VARCHAR NOT NULL, model VARCHAR NOT NULL, arch_class VARCHAR,
            pretrain_data VARCHAR, compute_value DOUBLE, compute_unit VARCHAR,
            imagenet_top1 DOUBLE, params_m DOUBLE, gflops DOUBLE, resolution VARCHAR,
            notes VARCHAR)""",
        """CREATE TABLE evals (
            cache_key VARCHAR PRIMARY KEY, checkpoint VARCHAR NOT NULL, hub_revision VARCHAR,
            dataset_id VARCHAR, dataset_fingerprint VARCHAR, label_map VARCHAR,
            img_size INTEGER, crop_pct DOUBLE, crop_mode VARCHAR, interpolation VARCHAR,
            precision VARCHAR, device_name VARCHAR, n_images INTEGER, top1 DOUBLE,
            top5 DOUBLE, nll DOUBLE, ece DOUBLE, seconds DOUBLE, images_per_sec DOUBLE,
            torch_version VARCHAR, timm_version VARCHAR, cuda_version VARCHAR,
            details JSON, created_at TIMESTAMP)""",
        """CREATE TABLE benchmarks (
            cache_key VARCHAR PRIMARY KEY, checkpoint VARCHAR, arch VARCHAR NOT NULL,
            img_size INTEGER, batch_size INTEGER, precision VARCHAR, channels_last BOOLEAN,
            compiled BOOLEAN, device_name VARCHAR, throughput DOUBLE, latency_p50_ms DOUBLE,
            latency_p90_ms DOUBLE, peak_memory_mb DOUBLE, error VARCHAR, torch_version VARCHAR,
            timm_version VARCHAR, cuda_version VARCHAR, details JSON, created_at TIMESTAMP)""",
        """CREATE TABLE jobs (
            id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, spec JSON, cache_key VARCHAR,
            state VARCHAR NOT NULL, progress DOUBLE, heartbeat TIMESTAMP, error VARCHAR,
            created_at TIMESTAMP, started_at TIMESTAMP, finished_at TIMESTAMP)""",
    ]),
    (2, [  # the job queue: who runs a job, where, its live progress and cancellation
        "ALTER TABLE jobs ADD COLUMN label VARCHAR",
        "ALTER TABLE jobs ADD COLUMN device VARCHAR",
        "ALTER TABLE jobs ADD COLUMN worker VARCHAR",
        "ALTER TABLE jobs ADD COLUMN attempts INTEGER DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN DEFAULT false",
        "ALTER TABLE jobs ADD COLUMN detail JSON",
        "ALTER TABLE jobs ADD COLUMN result_key VARCHAR",
        """CREATE TABLE workers (
            id VARCHAR PRIMARY KEY, host VARCHAR, pid INTEGER, device VARCHAR,
            embedded BOOLEAN, started_at TIMESTAMP, heartbeat TIMESTAMP, job VARCHAR)""",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

TABLES = ("architectures", "checkpoints", "compute", "published_results", "published_benchmarks",
          "published_files", "reference_points", "evals", "benchmarks", "jobs", "workers")

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock")


def resolve_db_path(path: str | os.PathLike | None = None) -> Path:
    """--db PATH, else $MATCHUP_DB, else data/matchup.duckdb in the project."""
    chosen = path or os.environ.get("MATCHUP_DB") or DEFAULT_DB
    return Path(chosen).expanduser().resolve()


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

ACTIVE_STATES = ("queued", "running")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Store:
    """One DuckDB file. Each call opens, works in one transaction, and closes."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout_s: float | None = None):
        self.path = resolve_db_path(path)
        env_timeout = os.environ.get("MATCHUP_LOCK_TIMEOUT")
        self.lock_timeout_s = (lock_timeout_s if lock_timeout_s is not None
                               else float(env_timeout) if env_timeout else DEFAULT_LOCK_TIMEOUT_S)
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
        """A migrated connection, closed on exit."""
        con = self._open()
        try:
            if not self._migrated:
                with self._queue_lock():
                    self._migrate(con)
                self._migrated = True
            yield con
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
    @staticmethod
    def _version(con: duckdb.DuckDBPyConnection) -> int:
        has_meta = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
            " AND table_schema = 'main'").fetchall()[0][0]
        if not has_meta:
            return 0
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        row = row[0] if row else None
        return int(row[0]) if row else 0

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            current = self._version(con)
        except duckdb.Error as e:
            raise self._open_error(f"it is not a Matchup database ({e})") from None
        if current > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The database {self.path} has schema version {current}, written by a newer "
                f"Matchup; this Matchup reads schema versions 1 to {SCHEMA_VERSION}. Upgrade "
                "Matchup (git pull), or point --db / MATCHUP_DB at another file.")
        if current == SCHEMA_VERSION:
            return
        con.execute("BEGIN TRANSACTION")
        try:
            current = self._version(con)  # another process may have migrated meanwhile
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for sql in statements:
                    con.execute(sql)
                con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)])
            con.execute("COMMIT")
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

    def replace_catalog(self, architectures: pd.DataFrame, checkpoints: pd.DataFrame,
                        reference_points: pd.DataFrame, timm_version: str) -> None:
        """The whole catalog in one transaction: readers see the old one or the new one."""
        with self.transaction() as con:
            for table in ("architectures", "checkpoints", "reference_points"):
                con.execute(f"DELETE FROM {table}")
            self._insert(con, "architectures", architectures)
            self._insert(con, "checkpoints", checkpoints)
            self._insert(con, "reference_points", reference_points)
            self._set_meta(con, catalog_refreshed_at=_now().isoformat(timespec="seconds"),
                           catalog_timm_version=timm_version)

    def replace_published_file(self, source_file: str, kind: str, rows: pd.DataFrame,
                               sha256: str) -> None:
        """One published CSV's rows replace that file's previous rows, in one transaction."""
        table = {"results": "published_results", "benchmark": "published_benchmarks"}[kind]
        with self.transaction() as con:
            for other in ("published_results", "published_benchmarks"):
                con.execute(f"DELETE FROM {other} WHERE source_file = ?", [source_file])
            self._insert(con, table, rows)
            con.execute("INSERT OR REPLACE INTO published_files VALUES (?, ?, ?, ?, ?)",
                        [source_file, kind, len(rows), sha256, _now()])

    COMPUTE_COLUMNS = ("arch", "img_size", "num_classes", "img_width", "params", "flops", "macs",
                       "attention_flops", "flops_by_module", "reparameterizable", "counter",
                       "device", "error", "torch_version",
                       "timm_version", "created_at")

    def upsert_compute(self, frame: pd.DataFrame, keep_existing: bool = False) -> int:
        """Counted rows, each complete; `keep_existing` leaves rows already counted here alone."""
        if frame.empty:
            return 0
        frame = frame[[c for c in self.COMPUTE_COLUMNS if c in frame.columns]]
        columns = ", ".join(frame.columns)
        conflict = "DO NOTHING" if keep_existing else "DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in frame.columns
            if c not in ("arch", "img_size", "num_classes"))
        with self.transaction() as con:
            before = con.execute("SELECT count(*) FROM compute").fetchall()[0][0]
            con.register("incoming", frame)
            try:
                con.execute(f"INSERT INTO compute ({columns}) SELECT {columns} FROM incoming "
                            f"ON CONFLICT (arch, img_size, num_classes) {conflict}")
            finally:
                con.unregister("incoming")
            return con.execute("SELECT count(*) FROM compute").fetchall()[0][0] - before

    def compute_targets(self, missing_only: bool = True) -> pd.DataFrame:
        """(arch, img_size, img_width, num_classes) the catalog needs counted (missing_only: not yet
        counted, or failed before): each checkpoint at
        the resolution its accuracy is measured at (its test size and every published img_size)
        with its own head, and each published benchmark size with the arch's default head."""
        sql = """
            WITH needed AS (
                SELECT arch, coalesce(test_h, input_h) AS img_size,
                       coalesce(test_w, input_w) AS img_width, num_classes FROM checkpoints
                UNION
                SELECT c.arch, r.img_size,
                       CASE WHEN r.img_size = c.input_h THEN c.input_w ELSE r.img_size END,
                       c.num_classes
                FROM published_results r JOIN checkpoints c USING (checkpoint)
                WHERE r.img_size IS NOT NULL
                UNION
                SELECT b.arch, b.img_size,
                       CASE WHEN b.img_size = a.default_input_h THEN a.default_input_w
                            ELSE b.img_size END,
                       a.default_num_classes
                FROM published_benchmarks b JOIN architectures a USING (arch)
                WHERE a.n_pretrained > 0 AND a.registered AND b.gmacs IS NOT NULL)
            SELECT n.* FROM needed n
            LEFT JOIN compute c USING (arch, img_size, num_classes)
            WHERE NOT ? OR c.arch IS NULL OR c.error IS NOT NULL
            ORDER BY arch, img_size, num_classes"""
        with self.connect() as con:
            return con.execute(sql, [missing_only]).df()

    def compute_crosscheck(self) -> pd.DataFrame:
        """Counted MACs beside the newest published infer_gmacs for the same (arch, img_size),
        counted with the arch's default head, as timm's benchmark builds it."""
        sql = """
            WITH published AS (
                SELECT arch, img_size, arg_max(gmacs, torch || source_file) AS published_gmacs,
                       arg_max(source_file, torch || source_file) AS source_file
                FROM published_benchmarks WHERE gmacs IS NOT NULL AND gmacs > 0
                GROUP BY arch, img_size)
            SELECT p.arch, a.arch_class, a.family, p.img_size, p.published_gmacs, p.source_file,
                   c.macs / 1e9 AS counted_gmacs, c.attention_flops / 2e9 AS attention_gmacs,
                   c.params / 1e6 AS params_m, c.flops_by_module, c.reparameterizable
            FROM published p
            JOIN architectures a USING (arch)
            JOIN compute c ON c.arch = p.arch AND c.img_size = p.img_size
                          AND c.num_classes = a.default_num_classes
            WHERE c.error IS NULL
            ORDER BY p.arch, p.img_size"""
        with self.connect() as con:
            return con.execute(sql).df()

    BENCHMARK_COLUMNS = ("cache_key", "checkpoint", "arch", "img_size", "batch_size", "precision",
                         "channels_last", "compiled", "device_name", "throughput",
                         "latency_p50_ms", "latency_p90_ms", "peak_memory_mb", "error",
                         "torch_version", "timm_version", "cuda_version", "details", "created_at")

    def _cached(self, table: str, key: str) -> dict | None:
        """One stored result by cache key, details parsed."""
        with self.connect() as con:
            cursor = con.execute(f"SELECT * FROM {table} WHERE cache_key = ?", [key])
            rows = cursor.fetchall()
            if not rows:
                return None
            row = dict(zip([d[0] for d in cursor.description], rows[0]))
        row["details"] = json.loads(row["details"]) if row["details"] else {}
        return row

    def _put_result(self, table: str, columns: tuple[str, ...], row: dict, job: tuple[str, str] | None) -> None:
        """A finished result and, for a queued job, its `done` state, in one transaction."""
        values = {**row, "details": json.dumps(row.get("details") or {}, default=str),
                  "created_at": row.get("created_at") or _now()}
        present = [c for c in columns if c in values]
        with self._queue_lock(), self.transaction() as con:
            con.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(present)}) VALUES "
                        f"({', '.join('?' for _ in present)})", [values[c] for c in present])
            if job is not None:
                con.execute("""UPDATE jobs SET state = 'done', progress = 1.0, finished_at = ?,
                                   result_key = ?, error = NULL
                               WHERE id = ? AND worker = ? AND state = 'running'""",
                            [_now(), row["cache_key"], *job])

    def benchmark(self, key: str) -> dict | None:
        return self._cached("benchmarks", key)

    def put_benchmark(self, row: dict, job: tuple[str, str] | None = None) -> None:
        self._put_result("benchmarks", self.BENCHMARK_COLUMNS, row, job)

    EVAL_COLUMNS = ("cache_key", "checkpoint", "hub_revision", "dataset_id", "dataset_fingerprint",
                    "label_map", "img_size", "crop_pct", "crop_mode", "interpolation", "precision",
                    "device_name", "n_images", "top1", "top5", "nll", "ece", "seconds",
                    "images_per_sec", "torch_version", "timm_version", "cuda_version", "details",
                    "created_at")

    def eval_result(self, key: str) -> dict | None:
        return self._cached("evals", key)

    def put_eval(self, row: dict, job: tuple[str, str] | None = None) -> None:
        self._put_result("evals", self.EVAL_COLUMNS, row, job)

    def analysis_inputs(self) -> dict[str, pd.DataFrame]:
        """Everything engine.analysis assembles points from, one frame per source."""
        facts = "c.arch, c.arch_class, c.family, c.pretrain_data, c.data_scale, c.num_classes"
        queries = {
            "published": f"""SELECT r.checkpoint, {facts}, r.img_size, r.dataset, r.top1, r.top5
                             FROM published_results r JOIN checkpoints c USING (checkpoint)""",
            "evals": f"""SELECT e.checkpoint, {facts}, e.img_size,
                                json_extract_string(e.details, '$.variant') AS variant,
                                e.top1, e.top5, e.ece, e.nll
                         FROM evals e JOIN checkpoints c USING (checkpoint)""",
            "compute": "SELECT arch, img_size, num_classes, flops, params, error FROM compute",
            "published_benchmarks": """SELECT source_file, arch, img_size, samples_per_sec
                                       FROM published_benchmarks WHERE mode = 'infer'""",
            "benchmarks": "SELECT arch, img_size, latency_p50_ms, throughput, error FROM benchmarks",
            "reference": "SELECT * FROM reference_points",
        }
        with self.connect() as con:
            return {name: con.execute(sql).df() for name, sql in queries.items()}

    def published_benchmark_sources(self) -> pd.DataFrame:
        """Published inference benchmark files, the newest plain (uncompiled, NCHW, AMP) first."""
        with self.connect() as con:
            return con.execute("""
                SELECT source_file, device, precision, layout, torch, compiled, count(*) AS n_rows
                FROM published_benchmarks WHERE mode = 'infer'
                GROUP BY source_file, device, precision, layout, torch, compiled
                ORDER BY compiled, layout <> 'nchw', precision <> 'amp', torch DESC, n_rows DESC,
                         source_file
            """).df()

    def checkpoint_detail(self, checkpoint: str) -> dict[str, pd.DataFrame]:
        """Everything stored about one checkpoint, for its page."""
        queries = {
            "facts": "SELECT * FROM checkpoints WHERE checkpoint = ?",
            "compute": """SELECT c.* FROM compute c JOIN checkpoints k ON k.arch = c.arch
                          WHERE k.checkpoint = ? ORDER BY c.img_size, c.num_classes""",
            "published": """SELECT dataset, img_size, top1, top5, param_count, crop_pct, interpolation,
                                   source_file FROM published_results WHERE checkpoint = ?
                            ORDER BY dataset, img_size""",
            "published_gmacs": """SELECT b.img_size, b.source_file, b.gmacs, b.samples_per_sec, b.device,
                                         b.precision, b.compiled
                                  FROM published_benchmarks b JOIN checkpoints k ON k.arch = b.arch
                                  WHERE k.checkpoint = ? AND b.mode = 'infer' ORDER BY b.source_file""",
            "evals": "SELECT * EXCLUDE (details) FROM evals WHERE checkpoint = ? ORDER BY created_at DESC",
            "benchmarks": """SELECT b.* EXCLUDE (details) FROM benchmarks b JOIN checkpoints k ON k.arch = b.arch
                             WHERE k.checkpoint = ? ORDER BY b.created_at DESC""",
        }
        with self.connect() as con:
            return {name: con.execute(sql, [checkpoint]).df() for name, sql in queries.items()}

    def checkpoint_ids(self) -> list[str]:
        with self.connect() as con:
            return [r[0] for r in con.execute("SELECT checkpoint FROM checkpoints ORDER BY 1").fetchall()]

    def table_frame(self, table: str, limit: int = 100_000) -> pd.DataFrame:
        """A stored table for browsing and download (row-limited)."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        with self.connect() as con:
            return con.execute(f"SELECT * FROM {table} LIMIT ?", [limit]).df()

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

    def compute_frame(self) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(f"SELECT {', '.join(self.COMPUTE_COLUMNS)} FROM compute "
                               "ORDER BY arch, img_size, num_classes").df()

    def compute_for(self, arch: str, img_size: int, num_classes: int) -> dict | None:
        with self.connect() as con:
            cursor = con.execute("SELECT * FROM compute WHERE arch = ? AND img_size = ? "
                                 "AND num_classes = ?", [arch, img_size, num_classes])
            rows = cursor.fetchall()
            row = rows[0] if rows else None
            return dict(zip([d[0] for d in cursor.description], row)) if row else None

    # -- reads ---------------------------------------------------------------------------------
    def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        with self.connect() as con:
            return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]

    def class_counts(self) -> pd.DataFrame:
        """Pretrained checkpoints per architecture class."""
        with self.connect() as con:
            return con.execute(
                "SELECT arch_class, count(*) AS checkpoints FROM checkpoints"
                " GROUP BY arch_class ORDER BY checkpoints DESC").df()

    def list_checkpoints(self, arch_class: str | None = None) -> pd.DataFrame:
        """Checkpoints with class, params and published ImageNet top-1 (when imported)."""
        sql = """
            WITH imagenet AS (
                SELECT checkpoint, max(top1) AS top1, max(param_count) AS param_count,
                       arg_max(img_size, top1) AS img_size
                FROM published_results WHERE dataset = 'imagenet' GROUP BY checkpoint),
            counted AS (SELECT arch, max(params) AS params FROM compute GROUP BY arch)
            SELECT c.checkpoint, c.arch_class, c.family, c.pretrain_data, c.data_scale,
                   coalesce(i.param_count, counted.params / 1e6) AS params_m,
                   i.top1 AS imagenet_top1, i.img_size AS published_img_size
            FROM checkpoints c
            LEFT JOIN imagenet i USING (checkpoint)
            LEFT JOIN counted ON counted.arch = c.arch
            WHERE ? IS NULL OR lower(c.arch_class) = lower(?)
            ORDER BY c.checkpoint"""
        with self.connect() as con:
            return con.execute(sql, [arch_class, arch_class]).df()

    def info(self) -> dict:
        """Row counts, joins, schema version and file facts, for `db info` and the sidebar."""
        with self.connect() as con:
            counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}
            joins = dict(zip(
                ("published_results_joined", "imagenet_results_joined",
                 "published_benchmarks_joined", "checkpoints_without_class"),
                con.execute("""
                    SELECT
                      (SELECT count(*) FROM published_results r
                         JOIN checkpoints c USING (checkpoint)),
                      (SELECT count(*) FROM published_results r
                         JOIN checkpoints c USING (checkpoint) WHERE r.dataset = 'imagenet'),
                      (SELECT count(*) FROM published_benchmarks b
                         JOIN architectures a USING (arch)),
                      (SELECT count(*) FROM checkpoints
                         WHERE arch_class IS NULL OR arch_class = '')""").fetchall()[0]))
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        size = self.path.stat().st_size if self.path.exists() else 0
        return {"path": str(self.path), "size_bytes": size,
                "schema_version": int(meta.get("schema_version", 0)),
                "tables": counts, "joins": joins,
                "catalog_refreshed_at": meta.get("catalog_refreshed_at"),
                "catalog_timm_version": meta.get("catalog_timm_version")}

    def export(self, folder: str | os.PathLike) -> list[Path]:
        """Every table as Parquet, for sharing a lab's results."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        with self.connect() as con:
            for table in TABLES:
                target = folder / f"{table}.parquet"
                con.execute(f"COPY {table} TO '{target.as_posix()}' (FORMAT parquet)")
                written.append(target)
        return written

    # -- the job queue -------------------------------------------------------------------------
    def _queue_lock(self) -> threading.RLock:
        with _QUEUE_LOCKS_GUARD:
            return _QUEUE_LOCKS.setdefault(self.path, threading.RLock())

    def enqueue_job(self, job_id: str, kind: str, spec: dict, key: str, label: str,
                    device: str) -> tuple[str, bool]:
        """Queue a job unless an identical one (same key) is queued or running: then that
        job's id comes back, attached (True)."""
        with self._queue_lock(), self.transaction() as con:
            active = con.execute("SELECT id FROM jobs WHERE cache_key = ? AND state IN ('queued', 'running')"
                                 " ORDER BY created_at LIMIT 1", [key]).fetchall()
            if active:
                return active[0][0], True
            con.execute("""INSERT INTO jobs (id, kind, spec, cache_key, state, progress, label, device,
                                             attempts, cancel_requested, created_at)
                           VALUES (?, ?, ?, ?, 'queued', 0.0, ?, ?, 0, false, ?)""",
                        [job_id, kind, json.dumps(spec, sort_keys=True), key, label, device, _now()])
            return job_id, False

    def claim_job(self, worker: str, device: str) -> dict | None:
        """The oldest queued job this worker's device can run, now running under this worker."""
        family = "cuda" if device.startswith("cuda") else device
        with self._queue_lock(), self.transaction() as con:
            rows = con.execute("""SELECT id FROM jobs WHERE state = 'queued'
                                    AND (device IN ('auto', ?, ?)) ORDER BY created_at, id LIMIT 1""",
                               [device, family]).fetchall()
            if not rows:
                return None
            now = _now()
            con.execute("""UPDATE jobs SET state = 'running', worker = ?, started_at = ?, heartbeat = ?,
                               attempts = attempts + 1, progress = 0.0, detail = NULL
                           WHERE id = ?""", [worker, now, now, rows[0][0]])
            con.execute("UPDATE workers SET job = ?, heartbeat = ? WHERE id = ?", [rows[0][0], now, worker])
        return self.job(rows[0][0])

    def beat(self, worker: str, job: str | None = None, progress: float | None = None,
             detail: dict | None = None) -> bool:
        """A worker's heartbeat, with its job's progress; True when that job should stop
        (cancel requested, or the job is no longer this worker's)."""
        now = _now()
        with self._queue_lock(), self.transaction() as con:
            con.execute("UPDATE workers SET heartbeat = ?, job = ? WHERE id = ?", [now, job, worker])
            if job is None:
                return False
            con.execute("""UPDATE jobs SET heartbeat = ?, progress = coalesce(?, progress),
                               detail = coalesce(?, detail)
                           WHERE id = ? AND worker = ? AND state = 'running'""",
                        [now, progress, json.dumps(detail) if detail is not None else None, job, worker])
            rows = con.execute("SELECT cancel_requested, state, worker FROM jobs WHERE id = ?", [job]).fetchall()
        return not rows or bool(rows[0][0]) or rows[0][1] != "running" or rows[0][2] != worker

    def finish_job(self, job: str, worker: str, state: str, error: str | None = None,
                   result_key: str | None = None) -> None:
        """The end of a run that stored no new result (failed, cancelled, or answered from the
        store); a job another worker has taken over is left to that worker."""
        with self._queue_lock(), self.transaction() as con:
            con.execute("""UPDATE jobs SET state = ?, error = ?, result_key = coalesce(?, result_key),
                               finished_at = ?, progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END
                           WHERE id = ? AND worker = ? AND state = 'running'""",
                        [state, error, result_key, _now(), state, job, worker])

    def cancel_job(self, job: str) -> str | None:
        """A queued job is cancelled at once; a running one is asked to stop. The job's state
        comes back (None: no such job)."""
        with self._queue_lock(), self.transaction() as con:
            rows = con.execute("SELECT state FROM jobs WHERE id = ?", [job]).fetchall()
            if not rows:
                return None
            if rows[0][0] == "queued":
                con.execute("UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ?", [_now(), job])
                return "cancelled"
            if rows[0][0] == "running":
                con.execute("UPDATE jobs SET cancel_requested = true WHERE id = ?", [job])
            return rows[0][0]

    def requeue_stale(self, timeout_s: float, max_attempts: int) -> list[str]:
        """Running jobs whose worker stopped heartbeating go back to the queue (or fail, after
        max_attempts tries); workers that stopped are forgotten."""
        cutoff = _now().timestamp() - timeout_s
        cutoff = datetime.fromtimestamp(cutoff, timezone.utc).replace(tzinfo=None)
        with self._queue_lock(), self.transaction() as con:
            stale = con.execute("SELECT id, attempts FROM jobs WHERE state = 'running' AND heartbeat < ?",
                                [cutoff]).fetchall()
            for job, attempts in stale:
                if attempts >= max_attempts:
                    con.execute("""UPDATE jobs SET state = 'failed', finished_at = ?, error = ?
                                   WHERE id = ?""",
                                [_now(), f"Its worker stopped (crash or kill) {attempts} times; not "
                                 "retried again. Check the worker's log, then queue it again.", job])
                else:
                    con.execute("""UPDATE jobs SET state = 'queued', worker = NULL, progress = 0.0,
                                       detail = NULL WHERE id = ?""", [job])
            con.execute("DELETE FROM workers WHERE heartbeat < ?", [cutoff])
        return [job for job, _ in stale]

    def job(self, job: str) -> dict | None:
        with self.connect() as con:
            cursor = con.execute("SELECT * FROM jobs WHERE id = ?", [job])
            rows = cursor.fetchall()
            if not rows:
                return None
            row = dict(zip([d[0] for d in cursor.description], rows[0]))
        for key in ("spec", "detail"):
            row[key] = json.loads(row[key]) if row[key] else None
        return row

    def jobs_frame(self, limit: int = 200) -> pd.DataFrame:
        """Newest jobs first, for `jobs list` and the Run page."""
        with self.connect() as con:
            return con.execute("""SELECT j.id, j.kind, j.label, j.device, j.state, j.progress, j.detail,
                                         j.error, j.worker, j.attempts, j.cancel_requested, j.result_key,
                                         e.top1 AS result_top1, e.n_images AS result_images,
                                         b.throughput AS result_throughput, j.created_at, j.started_at,
                                         j.finished_at
                                  FROM jobs j
                                  LEFT JOIN evals e ON j.kind = 'eval' AND e.cache_key = j.result_key
                                  LEFT JOIN benchmarks b ON j.kind = 'bench' AND b.cache_key = j.result_key
                                  ORDER BY j.created_at DESC, j.id LIMIT ?""", [limit]).df()

    def register_worker(self, worker: str, host: str, pid: int, device: str, embedded: bool) -> None:
        now = _now()
        with self._queue_lock(), self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                        [worker, host, pid, device, embedded, now, now])

    def unregister_worker(self, worker: str) -> None:
        with self._queue_lock(), self.transaction() as con:
            con.execute("DELETE FROM workers WHERE id = ?", [worker])

    def live_workers(self, timeout_s: float) -> pd.DataFrame:
        cutoff = datetime.fromtimestamp(_now().timestamp() - timeout_s, timezone.utc).replace(tzinfo=None)
        with self.connect() as con:
            return con.execute("SELECT * FROM workers WHERE heartbeat >= ? ORDER BY started_at",
                               [cutoff]).df()

    def queued_count(self) -> int:
        with self.connect() as con:
            return con.execute("SELECT count(*) FROM jobs WHERE state = 'queued'").fetchall()[0][0]

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
