"""The DuckDB store: schema, migrations, locking and every SQL statement Matchup runs.

One `Store` per file, assembled from one module per concern, each holding its own SQL:
connection (opening, locking, migrations), catalog (catalog, compute and published tables),
results (what was measured here), queue (jobs and workers), query (the read-only query box).
"""
from engine.store.catalog import CatalogTables
from engine.store.connection import (DEFAULT_DB, DEFAULT_LOCK_TIMEOUT_S, Connection, SchemaVersionError,
                                     StoreError, StoreLockedError, cache_key, resolve_db_path)
from engine.store.query import QueryError, ReadOnlyQuery
from engine.store.queue import JobQueue
from engine.store.results import MeasuredResults
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION, TABLES


class Store(CatalogTables, MeasuredResults, JobQueue, ReadOnlyQuery, Connection):
    """One DuckDB file. Each call opens, works in one transaction, and closes."""


__all__ = ["Store", "StoreError", "StoreLockedError", "SchemaVersionError", "QueryError", "cache_key",
           "resolve_db_path", "DEFAULT_DB", "DEFAULT_LOCK_TIMEOUT_S", "MIGRATIONS", "SCHEMA_VERSION", "TABLES"]
