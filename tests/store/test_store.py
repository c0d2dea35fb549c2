import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest

from engine.store import schema as store_schema
from engine.store import connection as store_connection
from engine.store import SCHEMA_VERSION, TABLES, SchemaVersionError, Store, StoreError, StoreLockedError


def test_new_database_is_created_at_the_current_schema(store):
    assert not store.path.exists()
    info = store.info()
    assert store.path.exists()
    assert info["schema_version"] == SCHEMA_VERSION
    assert set(info["tables"]) == set(TABLES)
    assert all(n == 0 for n in info["tables"].values())


def test_db_path_comes_from_argument_then_env_then_default(monkeypatch, tmp_path):
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "env.duckdb"))
    assert Store().path == tmp_path / "env.duckdb"
    assert Store(tmp_path / "arg.duckdb").path == tmp_path / "arg.duckdb"
    monkeypatch.delenv("MATCHUP_DB")
    assert Store().path == store_connection.DEFAULT_DB


def test_database_from_a_newer_schema_is_refused(store):
    store.info()
    con = duckdb.connect(str(store.path))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SchemaVersionError) as err:
        Store(store.path).info()
    message = str(err.value)
    assert "schema version 99" in message and f"1 to {SCHEMA_VERSION}" in message


def test_forward_migration_upgrades_an_older_file_and_keeps_its_rows(store, monkeypatch):
    store.replace_catalog(pd.DataFrame(), pd.DataFrame(
        [{"checkpoint": "a.b", "arch": "a", "arch_class": "ViT"}]), pd.DataFrame(), "x")
    extra = (SCHEMA_VERSION + 1, ["ALTER TABLE checkpoints ADD COLUMN note VARCHAR"])
    monkeypatch.setattr(store_schema, "MIGRATIONS", store_schema.MIGRATIONS + [extra])
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = Store(store.path)
    assert upgraded.schema_version() == SCHEMA_VERSION + 1
    with upgraded.connect() as con:
        assert con.execute("SELECT checkpoint, note FROM checkpoints").fetchall() == [("a.b", None)]


@pytest.mark.parametrize("make_path", [
    lambda tmp: tmp,                                            # a directory
    lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt" / "m.duckdb",  # parent is a file
    lambda tmp: (tmp / "bad.duckdb").write_text("not a database") and tmp / "bad.duckdb",
], ids=["directory", "parent-is-a-file", "not-a-duckdb-file"])
def test_unreadable_db_path_gives_a_clear_error(tmp_path, make_path):
    path = make_path(tmp_path)
    with pytest.raises(StoreError) as err:
        Store(path).info()
    message = str(err.value)
    assert str(path) in message and "--db" in message and "MATCHUP_DB" in message
    assert "\n" not in message


def test_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            con.execute("INSERT INTO jobs (id, kind, state) VALUES ('j1', 'eval', 'queued')")
            raise RuntimeError("boom")
    assert store.count("jobs") == 0


HOLD_LOCK = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold_lock(path, seconds):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_writer_waits_for_another_process_lock_then_succeeds(store):
    store.info()
    holder = _hold_lock(store.path, 1.5)
    try:
        started = time.monotonic()
        with store.transaction() as con:
            con.execute("INSERT INTO jobs (id, kind, state) VALUES ('j1', 'eval', 'queued')")
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert store.count("jobs") == 1
    assert waited > 0.3  # it really met the lock and retried


def test_lock_held_past_the_timeout_fails_with_a_clear_message(tmp_path):
    impatient = Store(tmp_path / "m.duckdb", lock_timeout_s=0.5)
    impatient.info()
    holder = _hold_lock(impatient.path, 20)
    try:
        with pytest.raises(StoreLockedError) as err:
            impatient.info()
    finally:
        holder.kill()
        holder.wait()
    message = str(err.value)
    assert "stayed locked" in message and "MATCHUP_LOCK_TIMEOUT" in message


def test_export_writes_every_table_as_parquet(store, tmp_path):
    written = store.export(tmp_path / "out")
    assert sorted(p.stem for p in written) == sorted(TABLES)
    assert all(p.exists() for p in written)


def _sha256(path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("make", [
    lambda con: con.execute("CREATE TABLE sales (id INTEGER, amount DOUBLE); INSERT INTO sales VALUES (1, 2.5)"),
    lambda con: con.execute("CREATE TABLE checkpoints (x INTEGER); INSERT INTO checkpoints VALUES (7)"),  # a name of ours
    lambda con: con.execute("CREATE SCHEMA lab; CREATE TABLE lab.runs (id INTEGER)"),
    lambda con: con.execute("CREATE TABLE meta (key VARCHAR, value VARCHAR); INSERT INTO meta VALUES ('owner', 'x')"),
], ids=["foreign-table", "colliding-name", "other-schema", "someone-elses-meta"])
def test_someone_elses_duckdb_file_is_refused_and_left_unchanged(tmp_path, make):
    path = tmp_path / "theirs.duckdb"
    con = duckdb.connect(str(path))
    make(con)
    con.close()
    before = _sha256(path)
    with pytest.raises(StoreError) as err:
        Store(path).info()
    assert "not Matchup's" in str(err.value) or "no readable Matchup schema version" in str(err.value)
    assert "unchanged" in str(err.value) and "--db" in str(err.value)
    assert _sha256(path) == before


def test_a_damaged_schema_version_is_refused_not_a_traceback(store):
    store.info()
    con = duckdb.connect(str(store.path))
    con.execute("UPDATE meta SET value = 'three' WHERE key = 'schema_version'")
    con.close()
    before = _sha256(store.path)
    with pytest.raises(StoreError, match="no readable Matchup schema version"):
        Store(store.path).info()
    assert _sha256(store.path) == before


def test_an_empty_duckdb_file_becomes_a_matchup_database(tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    assert Store(path).info()["schema_version"] == SCHEMA_VERSION
