"""The shipped snapshot of timm's published results (data/published): equal to an import of its
commit, loaded offline with the catalog, never half-loaded, never over rows from sync or import."""
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from engine.__main__ import main
from engine.catalog import refresh, snapshot, timm_published
from engine.store import SCHEMA_VERSION, Store
from tests.conftest import run_cli

TABLES = list(snapshot.TABLE_FILES)


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    """A table's rows in a canonical order, for comparing two loads of the same data."""
    frame = frame.drop(columns=[c for c in ("imported_at",) if c in frame.columns])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _published(store: Store) -> dict[str, pd.DataFrame]:
    with store.connect() as con:
        return {t: _rows(con.execute(f"SELECT * FROM {t}").df()) for t in TABLES}


@pytest.fixture
def shipped_copy(tmp_path) -> Path:
    """A copy of the shipped snapshot that a test may damage."""
    copy = tmp_path / "published"
    shutil.copytree(snapshot.SNAPSHOT_DIR, copy)
    return copy


def _fresh(catalog_db, tmp_path, name="m.duckdb") -> Store:
    path = tmp_path / name
    shutil.copy(catalog_db, path)
    return Store(path, lock_timeout_s=30)


# -- the snapshot is the import of its commit ---------------------------------------------------------
def test_shipped_snapshot_equals_a_fresh_import_of_its_commit(full_db, shared_results, catalog_db, tmp_path):
    """../shared/reference/timm-results is timm's results/ at the pinned commit, byte for byte."""
    provenance = snapshot.read_provenance()
    assert provenance["commit"] == timm_published.TIMM_RESULTS_COMMIT
    assert provenance["commit"] in (shared_results / "SOURCE.md").read_text()
    for name, entry in provenance["files"].items():
        assert hashlib.sha256((shared_results / name).read_bytes()).hexdigest() == entry["sha256"], name
    imported = _published(Store(full_db))
    for table in TABLES:
        shipped = _rows(pd.read_parquet(snapshot.SNAPSHOT_DIR / snapshot.TABLE_FILES[table]))
        pd.testing.assert_frame_equal(shipped, imported[table], check_dtype=False)
    store = _fresh(catalog_db, tmp_path)
    report = snapshot.load(store)
    assert report.state == "loaded" and report.rows == sum(len(f) for f in imported.values())
    loaded = _published(store)
    for table in TABLES:
        pd.testing.assert_frame_equal(loaded[table], imported[table], check_dtype=False)
    files = store.table_frame("published_files").set_index("source_file")
    assert set(files.index) == set(provenance["files"]) and set(files["origin"]) == {"snapshot"}
    assert set(files["commit"]) == {timm_published.TIMM_RESULTS_COMMIT}


def test_snapshot_is_small_and_names_its_source_and_licence():
    provenance = snapshot.read_provenance()
    size = sum((snapshot.SNAPSHOT_DIR / t["file"]).stat().st_size for t in provenance["tables"].values())
    assert size <= 2_000_000
    assert "Apache-2.0" in provenance["licence"] and "pytorch-image-models" in provenance["source"]
    assert provenance["taken_at"] and provenance["commit_date"] == "2026-08-08"
    assert sum(f["rows"] for f in provenance["files"].values()) == sum(
        t["rows"] for t in provenance["tables"].values())
    assert not list(snapshot.SNAPSHOT_DIR.glob("*.csv"))  # the CSVs themselves are never shipped


def test_snapshot_command_writes_the_same_rows_from_the_folder(shared_results, tmp_path):
    out = tmp_path / "published"
    done = run_cli("catalog", "snapshot", "--from", str(shared_results), "--out", str(out), "--json",
                   db=tmp_path / "unused.duckdb")
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout)
    shipped = snapshot.read_provenance()
    assert written["files"] == shipped["files"]
    for table in TABLES:
        assert written["tables"][table]["rows"] == shipped["tables"][table]["rows"]
        pd.testing.assert_frame_equal(_rows(pd.read_parquet(out / snapshot.TABLE_FILES[table])),
                                      _rows(pd.read_parquet(snapshot.SNAPSHOT_DIR / snapshot.TABLE_FILES[table])))
    assert not list(out.glob(".*partial"))


# -- loading -------------------------------------------------------------------------------------------
def test_refresh_of_an_empty_database_loads_the_snapshot_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    db = str(tmp_path / "new.duckdb")
    assert main(["--db", db, "catalog", "refresh"]) == 0
    out = capsys.readouterr().out
    info = Store(db).info()
    # results and benchmark rows named apart, as the app's sidebar counts them (issue 21)
    assert (f"loaded {info['tables']['published_results']:,} published results and "
            f"{info['tables']['published_benchmarks']:,} published benchmark rows from the shipped snapshot of "
            "timm aa4b5850") in out
    assert info["tables"]["published_results"] == snapshot.read_provenance()["tables"]["published_results"]["rows"]
    assert info["joins"]["imagenet_results_joined"] >= 1500
    [entry] = info["published"]
    assert entry["origin"] == "snapshot" and entry["commit"] == timm_published.TIMM_RESULTS_COMMIT
    assert main(["--db", db, "db", "info"]) == 0
    assert "published results: timm aa4b5850, shipped snapshot taken" in capsys.readouterr().out
    assert main(["--db", db, "catalog", "refresh"]) == 0  # again: the same snapshot is not reloaded
    assert "already loaded" in capsys.readouterr().out
    assert Store(db).info()["tables"] == info["tables"]


def test_a_newer_snapshot_replaces_an_older_one(catalog_db, tmp_path, shipped_copy):
    store = _fresh(catalog_db, tmp_path)
    assert snapshot.load(store, shipped_copy).state == "loaded"
    path = shipped_copy / snapshot.TABLE_FILES["published_results"]
    frame = pd.read_parquet(path)
    frame = frame[frame["source_file"] == "results-imagenet.csv"]  # a "newer" snapshot: fewer rows
    frame.to_parquet(path)
    provenance = json.loads((shipped_copy / "provenance.json").read_text())
    provenance["tables"]["published_results"].update(rows=len(frame), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    (shipped_copy / "provenance.json").write_text(json.dumps(provenance))
    assert snapshot.load(store, shipped_copy).state == "loaded"
    assert store.count("published_results") == len(frame)


def test_names_are_resolved_again_under_another_timm(catalog_db, tmp_path, shipped_copy):
    provenance = json.loads((shipped_copy / "provenance.json").read_text())
    provenance["names_resolved_with_timm"] = "0.9.0"
    (shipped_copy / "provenance.json").write_text(json.dumps(provenance))
    with_rename = _fresh(catalog_db, tmp_path, "a.duckdb")
    snapshot.load(with_rename, shipped_copy)
    as_shipped = _fresh(catalog_db, tmp_path, "b.duckdb")
    snapshot.load(as_shipped)
    for table, frame in _published(with_rename).items():
        pd.testing.assert_frame_equal(frame, _published(as_shipped)[table], check_dtype=False)


# -- bad input ------------------------------------------------------------------------------------------
def _remove_provenance(folder):
    (folder / "provenance.json").unlink()


def _remove_results(folder):
    (folder / snapshot.TABLE_FILES["published_results"]).unlink()


def _flip_bytes(folder):
    path = folder / snapshot.TABLE_FILES["published_benchmarks"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_with_a_matching_checksum(folder):
    path = folder / snapshot.TABLE_FILES["published_benchmarks"]
    path.write_bytes(path.read_bytes()[:5000])
    provenance = json.loads((folder / "provenance.json").read_text())
    provenance["tables"]["published_benchmarks"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "provenance.json").write_text(json.dumps(provenance))


def _garble_provenance(folder):
    (folder / "provenance.json").write_text("{\"schema_version\": 3, \"tables\": ")


@pytest.mark.parametrize("damage, said", [
    (_remove_provenance, "provenance.json is missing"),
    (_remove_results, "published_results.parquet is missing"),
    (_flip_bytes, "does not match its checksum"),
    (_truncate_with_a_matching_checksum, "cannot be read"),
    (_garble_provenance, "is damaged"),
], ids=["no-provenance", "no-results-file", "flipped-bytes", "truncated", "garbled-provenance"])
def test_a_missing_or_damaged_snapshot_leaves_the_catalog_and_says_what_to_do(
        damage, said, shipped_copy, tmp_path, monkeypatch):
    damage(shipped_copy)
    monkeypatch.setenv("MATCHUP_SNAPSHOT_DIR", str(shipped_copy))
    store = Store(tmp_path / "new.duckdb")
    report = refresh.refresh(store)
    assert report.checkpoints > 1000 and store.count("checkpoints") == report.checkpoints
    assert said in report.published_error and "catalog import DIR" in report.published_error
    assert "\n" not in report.published_error
    assert all(store.count(t) == 0 for t in (*TABLES, "published_files"))
    done = run_cli("catalog", "refresh", db=tmp_path / "cli.duckdb")
    assert done.returncode == 0 and said in done.stderr and "Traceback" not in done.stderr


def test_a_snapshot_that_fails_midway_lands_nothing(catalog_db, tmp_path, shipped_copy):
    """The results table loads, then the benchmark rows fail to insert: both roll back."""
    path = shipped_copy / snapshot.TABLE_FILES["published_benchmarks"]
    frame = pd.read_parquet(path)
    frame["samples_per_sec"] = "not a number"
    frame.to_parquet(path)
    provenance = json.loads((shipped_copy / "provenance.json").read_text())
    provenance["tables"]["published_benchmarks"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (shipped_copy / "provenance.json").write_text(json.dumps(provenance))
    store = _fresh(catalog_db, tmp_path)
    with pytest.raises(snapshot.SnapshotError, match="rows the database refuses"):
        snapshot.load(store, shipped_copy)
    assert all(store.count(t) == 0 for t in (*TABLES, "published_files"))
    assert "published_snapshot" not in store.meta()


def test_a_snapshot_from_a_newer_schema_is_refused_with_the_versions(catalog_db, tmp_path, shipped_copy):
    provenance = json.loads((shipped_copy / "provenance.json").read_text())
    provenance["schema_version"] = SCHEMA_VERSION + 1
    (shipped_copy / "provenance.json").write_text(json.dumps(provenance))
    store = _fresh(catalog_db, tmp_path)
    with pytest.raises(snapshot.SnapshotError) as err:
        snapshot.load(store, shipped_copy)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(err.value)
    assert f"schema versions 1 to {SCHEMA_VERSION}" in str(err.value)
    assert store.count("published_results") == 0


@pytest.mark.parametrize("origin", ["sync", "import"])
def test_the_snapshot_never_overwrites_rows_from_sync_or_import(origin, catalog_db, tmp_path, shared_results):
    store = _fresh(catalog_db, tmp_path)
    folder = tmp_path / "newer"
    folder.mkdir()
    frame = pd.read_csv(shared_results / "results-imagenet.csv").head(100)  # "newer" rows: a different file
    frame.to_csv(folder / "results-imagenet.csv", index=False)
    timm_published.import_dir(store, folder, origin=origin, commit="f" * 40 if origin == "sync" else None)
    before = _published(store)
    report = snapshot.load(store)
    assert report.state == "kept"
    after = _published(store)
    for table in TABLES:
        pd.testing.assert_frame_equal(after[table], before[table])
    assert store.count("published_results") == 100
    assert refresh.refresh(store).published.startswith("published rows from")
    assert store.count("published_results") == 100
