"""The project's own snapshot of timm's published results, shipped in data/published/.

A new install has no network on a demo laptop, so the rows `catalog sync` imports at the pinned
commit ship with the project as compressed Parquet plus a provenance file (commit, licence, row
counts, checksums). `catalog refresh` (and the app's first start) loads it offline in the same
step as the catalog. The snapshot is written by `python -m engine catalog snapshot`, which runs the
ordinary import into a scratch database and exports what landed: snapshot rows are import rows.

It never replaces published rows that came from `catalog sync` or `catalog import`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from engine.catalog import timm_published
from engine.catalog.timm_models import installed_timm
from engine.errors import MatchupError
from engine.paths import SNAPSHOT_DIR, snapshot_dir
from engine.store import SCHEMA_VERSION, Store

__all__ = ["SNAPSHOT_DIR", "snapshot_dir", "SnapshotError", "LoadReport", "write", "read_provenance", "snapshot_id",
           "load"]
PROVENANCE_FILE = "provenance.json"
TABLE_FILES = {"published_results": "published_results.parquet",
               "published_benchmarks": "published_benchmarks.parquet"}
SOURCE_REPOSITORY = "https://github.com/huggingface/pytorch-image-models"
SOURCE_LICENCE = ("Apache-2.0 (the timm repository's LICENSE; model weights carry their own "
                  "licences on the Hugging Face Hub)")
COMMIT_DATES = {timm_published.TIMM_RESULTS_COMMIT: "2026-08-08"}  # known commits; others unrecorded
FIX = ("Restore it (`git checkout -- data/published`) or load timm's results another way: "
       "`python -m engine catalog import DIR` (or `catalog sync` online).")


class SnapshotError(MatchupError):
    """The shipped snapshot is missing, damaged or from a newer Matchup; nothing was loaded."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- writing ----------------------------------------------------------------------------------------
def write(out_dir: Path | None = None, source_dir: Path | None = None,
          commit: str = timm_published.TIMM_RESULTS_COMMIT) -> dict:
    """Import timm's published CSVs (a folder holding `commit`'s results/, else downloaded at
    `commit`) into a scratch database and write its published rows and provenance to `out_dir`.
    Returns the provenance."""
    out_dir = Path(out_dir or snapshot_dir())
    with tempfile.TemporaryDirectory(prefix="matchup-snapshot-") as tmp:
        tmp = Path(tmp)
        if source_dir is None:
            source_dir = tmp / "csv"
            source_dir.mkdir()
            timm_published.download(commit, source_dir)
        scratch = Store(tmp / "scratch.duckdb")
        report = timm_published.import_dir(scratch, source_dir)
        if report.failed:
            raise SnapshotError("Not every published file imported cleanly, so no snapshot was "
                                "written: " + " ".join(report.failed.values()))
        out_dir.mkdir(parents=True, exist_ok=True)
        staged = {table: out_dir / f".{name}.partial" for table, name in TABLE_FILES.items()}
        scratch.export_published(staged)
        files = {}
        for name in sorted(report.imported):
            parsed = timm_published.parse_file_name(name)
            files[name] = {"kind": parsed.kind, "rows": report.imported[name],
                           "sha256": _sha256(Path(source_dir) / name)}
        import timm
        provenance = {
            "schema_version": SCHEMA_VERSION,
            "source": f"{SOURCE_REPOSITORY}, results/ folder",
            "commit": commit,
            "commit_date": COMMIT_DATES.get(commit),
            "licence": SOURCE_LICENCE,
            "taken_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "names_resolved_with_timm": timm.__version__,
            "written_by": "python -m engine catalog snapshot",
            "files": files,
            "skipped": sorted(report.skipped),
            "tables": {},
        }
        for table, path in staged.items():
            final = out_dir / TABLE_FILES[table]
            os.replace(path, final)
            provenance["tables"][table] = {"file": final.name, "rows": int(pd.read_parquet(final).shape[0]),
                                           "sha256": _sha256(final)}
    partial = out_dir / f".{PROVENANCE_FILE}.partial"
    partial.write_text(json.dumps(provenance, indent=2) + "\n")
    os.replace(partial, out_dir / PROVENANCE_FILE)
    return provenance


# -- reading ----------------------------------------------------------------------------------------
def read_provenance(folder: Path | None = None) -> dict:
    """The provenance of the snapshot in `folder`, checked: present, readable, not newer."""
    folder = Path(folder or snapshot_dir())
    path = folder / PROVENANCE_FILE
    if not path.is_file():
        raise SnapshotError(f"Published results not loaded: the shipped snapshot {path} is missing. {FIX}")
    try:
        provenance = json.loads(path.read_text())
        version = int(provenance["schema_version"])
        tables = provenance["tables"]
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotError(f"Published results not loaded: the shipped snapshot's {path} is damaged "
                            f"({type(e).__name__}: {e}). {FIX}") from None
    if version > SCHEMA_VERSION:
        raise SnapshotError(
            f"Published results not loaded: the shipped snapshot in {folder} was written by a newer "
            f"Matchup (schema version {version}; this Matchup reads schema versions 1 to "
            f"{SCHEMA_VERSION}). Update Matchup (git pull), or write the snapshot again with this "
            "one: `python -m engine catalog snapshot --from DIR`.")
    missing = [t for t in TABLE_FILES if t not in tables]
    if missing:
        raise SnapshotError(f"Published results not loaded: the shipped snapshot's {path} lists no "
                            f"{', '.join(missing)}. {FIX}")
    return provenance


def snapshot_id(provenance: dict) -> str:
    """Identifies one written snapshot: its commit and the checksums of its tables."""
    return f"{provenance.get('commit')}@" + ",".join(
        provenance["tables"][t]["sha256"][:12] for t in sorted(TABLE_FILES))


def _read_tables(folder: Path, provenance: dict) -> dict[str, pd.DataFrame]:
    frames = {}
    for table in TABLE_FILES:
        entry = provenance["tables"][table]
        path = folder / entry["file"]
        if not path.is_file():
            raise SnapshotError(f"Published results not loaded: the shipped snapshot file {path} is "
                                f"missing. {FIX}")
        if _sha256(path) != entry["sha256"]:
            raise SnapshotError(f"Published results not loaded: the shipped snapshot file {path} does "
                                f"not match its checksum in {PROVENANCE_FILE} (damaged or edited). {FIX}")
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for damaged files
            raise SnapshotError(f"Published results not loaded: the shipped snapshot file {path} cannot "
                                f"be read ({type(e).__name__}). {FIX}") from None
        if len(frame) != entry["rows"]:
            raise SnapshotError(f"Published results not loaded: the shipped snapshot file {path} holds "
                                f"{len(frame)} rows where {PROVENANCE_FILE} says {entry['rows']}. {FIX}")
        frames[table] = frame
    return frames


def _resolve_names(frames: dict[str, pd.DataFrame]) -> None:
    """Model names -> this timm's checkpoint and architecture names (the snapshot's were resolved
    by the timm named in its provenance)."""
    names = timm_published.published_names()
    frames["published_results"]["checkpoint"] = frames["published_results"]["model"].map(names.checkpoint)
    frames["published_benchmarks"]["arch"] = frames["published_benchmarks"]["model"].map(names.arch)


@dataclass
class LoadReport:
    state: str      # "loaded", "current" (this snapshot is already in) or "kept" (sync/import rows)
    message: str
    rows: int = 0


def load(store: Store, folder: Path | None = None) -> LoadReport:
    """Load the shipped snapshot unless the database holds published rows from `sync` or
    `import`, or this very snapshot already. One transaction: all of it lands or none."""
    folder = Path(folder or snapshot_dir())
    provenance = read_provenance(folder)
    ident = snapshot_id(provenance)
    origins = store.published_origins()
    if origins - {"snapshot"}:
        return LoadReport("kept", "published rows from `catalog sync`/`import` are kept; the "
                                  "shipped snapshot does not replace them")
    if origins == {"snapshot"} and store.meta().get("published_snapshot") == ident:
        return LoadReport("current", "the shipped snapshot is already loaded")
    frames = _read_tables(folder, provenance)
    if provenance.get("names_resolved_with_timm") != installed_timm():  # no import: timm imports torch
        _resolve_names(frames)
    files = [(name, entry["kind"], entry["rows"], entry["sha256"]) for name, entry in provenance["files"].items()]
    try:
        loaded = store.replace_published_snapshot(frames, files, commit=provenance.get("commit"),
                                                  taken_at=provenance["taken_at"], snapshot=ident)
    except (duckdb.Error, ValueError) as e:  # rows the tables refuse: rolled back, nothing landed
        raise SnapshotError(f"Published results not loaded: the shipped snapshot in {folder} has rows "
                            f"the database refuses ({str(e).splitlines()[0]}). {FIX}") from None
    if loaded is None:
        return LoadReport("kept", "published rows from `catalog sync`/`import` arrived meanwhile and are kept")
    results, benchmarks = len(frames["published_results"]), len(frames["published_benchmarks"])
    return LoadReport("loaded", f"loaded {results:,} published results and {benchmarks:,} published benchmark "
                                f"rows from the shipped snapshot of timm {str(provenance.get('commit'))[:8]} "
                                f"(taken {provenance['taken_at'][:10]})", loaded)
