"""OpenCLIP's published tables: zero-shot results on 38 tasks, retrieval recall, the model profile.

Imported like timm's published results: from a folder (`catalog import DIR` on a folder holding
OpenCLIP's docs/ CSVs), downloaded at a pinned commit (`catalog sync`), and shipped as the
project's own snapshot (data/published/open_clip/: Parquet plus provenance with commit, date,
licence and checksums) that the first start loads offline. Results are long form, one row per
(checkpoint, quality metric), in percent: `zeroshot:<task>.top1` for the classification tasks,
`zeroshot:flickr30k.mean_recall@1` and friends for the three retrieval-type columns of the 38,
`zeroshot:average-38.score` for OpenCLIP's average, `retrieval:<dataset>.<image|text>_recall@K`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from engine import paths
from engine.catalog import image_text
from engine.errors import MatchupError

OPEN_CLIP_COMMIT = "30573618fc375b12f094ef64cb3a1391cf611c45"  # tag v3.3.0, the open_clip Matchup pins
COMMIT_DATES = {OPEN_CLIP_COMMIT: "2026-02-26"}
SOURCE_REPOSITORY = "https://github.com/mlfoundations/open_clip"
SOURCE_URL = "https://raw.githubusercontent.com/mlfoundations/open_clip"
SOURCE_LICENCE = "MIT (the open_clip repository's LICENSE); model weights carry their own licences on the Hub"
RESULTS_FILE, RETRIEVAL_FILE, PROFILE_FILE = "openclip_results.csv", "openclip_retrieval_results.csv", "model_profile.csv"
FILES = {RESULTS_FILE: "zeroshot", RETRIEVAL_FILE: "retrieval", PROFILE_FILE: "profile"}
SNAPSHOT_SUBDIR = "open_clip"
TABLE_FILES = {"published_image_text": "published_image_text.parquet",
               "published_image_text_profile": "published_image_text_profile.parquet"}

# The 38 tasks of openclip_results.csv: column -> (task id, metric). Ids follow CLIP Benchmark's
# dataset names without their vtab/ and wilds/ prefixes.
TASKS = {
    "ImageNet 1k": ("imagenet1k", "top1"), "Caltech-101": ("caltech101", "top1"), "CIFAR-10": ("cifar10", "top1"),
    "CIFAR-100": ("cifar100", "top1"), "CLEVR Counts": ("clevr_count", "top1"),
    "CLEVR Distance": ("clevr_distance", "top1"), "Country211": ("country211", "top1"),
    "Describable Textures": ("dtd", "top1"), "EuroSAT": ("eurosat", "top1"), "FGVC Aircraft": ("fgvc_aircraft", "top1"),
    "Food-101": ("food101", "top1"), "GTSRB": ("gtsrb", "top1"), "ImageNet Sketch": ("imagenet_sketch", "top1"),
    "ImageNet v2": ("imagenetv2", "top1"), "ImageNet-A": ("imagenet-a", "top1"), "ImageNet-O": ("imagenet-o", "top1"),
    "ImageNet-R": ("imagenet-r", "top1"), "KITTI Vehicle Distance": ("kitti_distance", "top1"),
    "MNIST": ("mnist", "top1"), "ObjectNet": ("objectnet", "top1"), "Oxford Flowers-102": ("flowers102", "top1"),
    "Oxford-IIIT Pet": ("pets", "top1"), "Pascal VOC 2007": ("voc2007", "top1"), "PatchCamelyon": ("pcam", "top1"),
    "Rendered SST2": ("renderedsst2", "top1"), "RESISC45": ("resisc45", "top1"), "Stanford Cars": ("cars", "top1"),
    "STL-10": ("stl10", "top1"), "SUN397": ("sun397", "top1"), "SVHN": ("svhn", "top1"),
    "Flickr": ("flickr30k", "mean_recall@1"), "MSCOCO": ("mscoco", "mean_recall@1"),
    "WinoGAViL": ("winogavil", "jaccard"), "iWildCam": ("iwildcam", "top1"), "Camelyon17": ("camelyon17", "top1"),
    "FMoW": ("fmow", "top1"), "Dollar Street": ("dollar_street", "top1"), "GeoDE": ("geode", "top1"),
}
AVERAGE_COLUMN, AVERAGE_METRIC = "Average perf. on 38 datasets", "zeroshot:average-38.score"
RETRIEVAL = re.compile(r"^(?P<dataset>Flickr|MSCOCO) (?P<side>image|text) retr\. R@(?P<k>\d+)$")
RETRIEVAL_IDS = {"Flickr": "flickr30k", "MSCOCO": "mscoco"}
PROFILE_COLUMNS = ["model", "image_size", "image_width", "text_width", "embed_dim", "mparams", "image_mparams",
                   "text_mparams", "gflops", "image_gflops", "text_gflops"]
FIX = ("Restore it (`git checkout -- data/published`) or load OpenCLIP's tables another way: "
       "`python -m engine catalog import DIR` on a folder holding its docs/ CSVs (or `catalog sync` online).")


class PublishedError(MatchupError):
    """OpenCLIP's published tables cannot be used as given; nothing from them was stored."""


def zeroshot_metric(task: str, metric: str = "top1") -> str:
    return f"zeroshot:{task}.{metric}"


def task_names() -> frozenset[str]:
    """The names OpenCLIP's published zero-shot tasks hold (`imagenet1k`, `pets`, `average-38`, ...):
    a user's folder never takes one of them as its own."""
    return frozenset({task for task, _ in TASKS.values()} | {AVERAGE_METRIC.split(":", 1)[1].rsplit(".", 1)[0]})


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise PublishedError(f"{path.name}: not a readable CSV ({e}). Nothing from it was imported.") from None


def _numbers(frame: pd.DataFrame, columns, name: str) -> pd.DataFrame:
    for column in columns:
        try:
            frame[column] = pd.to_numeric(frame[column])
        except (ValueError, TypeError):
            raise PublishedError(f"{name}: column {column!r} holds a non-number. Nothing from this file "
                                 "was imported.") from None
    return frame


def _require(frame: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PublishedError(f"{name}: required column(s) {', '.join(repr(c) for c in missing)} missing "
                             f"(found: {', '.join(frame.columns[:12])}...). Nothing from this file was imported; "
                             "use OpenCLIP's docs/ CSVs as published.")


def _long_rows(frame: pd.DataFrame, name: str, metrics: dict[str, str]) -> pd.DataFrame:
    """Wide OpenCLIP rows -> (source_file, model, tag, checkpoint, metric, value in percent)."""
    _require(frame, ["name", "pretrained", *metrics], name)
    frame = _numbers(frame, list(metrics), name)
    if frame["name"].isna().any() or frame["pretrained"].isna().any():
        raise PublishedError(f"{name}: rows without a model name or tag. Nothing from this file was imported.")
    known = set(image_text.pairs())
    parts = []
    for column, metric in metrics.items():
        part = frame[["name", "pretrained", column]].dropna(subset=[column])
        parts.append(pd.DataFrame({"source_file": name, "model": part["name"], "tag": part["pretrained"],
                                   "metric": metric, "value": part[column] * 100.0}))
    rows = pd.concat(parts, ignore_index=True)
    rows.insert(3, "checkpoint", [image_text.checkpoint_id(m, t) if (m, t) in known else None
                                  for m, t in zip(rows["model"], rows["tag"], strict=True)])
    return rows


def read_results(path: Path) -> pd.DataFrame:
    metrics = {column: zeroshot_metric(task, metric) for column, (task, metric) in TASKS.items()}
    metrics[AVERAGE_COLUMN] = AVERAGE_METRIC
    return _long_rows(_read_csv(path), path.name, metrics)


def read_retrieval(path: Path) -> pd.DataFrame:
    frame = _read_csv(path)
    metrics = {c: f"retrieval:{RETRIEVAL_IDS[m['dataset']]}.{m['side']}_recall@{m['k']}"
               for c in frame.columns if (m := RETRIEVAL.match(c))}
    if not metrics:
        raise PublishedError(f"{path.name}: no 'Flickr|MSCOCO image|text retr. R@K' columns. Nothing from this "
                             "file was imported.")
    return _long_rows(frame, path.name, metrics)


def read_profile(path: Path) -> pd.DataFrame:
    frame = _read_csv(path)
    _require(frame, PROFILE_COLUMNS, path.name)
    frame = _numbers(frame[PROFILE_COLUMNS].copy(), PROFILE_COLUMNS[1:], path.name)
    frame.insert(0, "source_file", path.name)
    return frame


READERS = {RESULTS_FILE: read_results, RETRIEVAL_FILE: read_retrieval, PROFILE_FILE: read_profile}


@dataclass
class ImportReport:
    imported: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def present(folder: str | os.PathLike) -> list[str]:
    """OpenCLIP's published file names found in `folder`."""
    return [name for name in FILES if (Path(folder) / name).is_file()]


def import_dir(store, folder: str | os.PathLike, origin: str = "import", commit: str | None = None) -> ImportReport:
    """Every OpenCLIP file in `folder`, each in one transaction (a bad file is reported, never
    half-stored). `origin` and `commit` say where the files came from."""
    folder = Path(folder)
    report = ImportReport()
    for name in present(folder):
        path = folder / name
        try:
            rows = READERS[name](path)
        except PublishedError as e:
            report.failed[name] = str(e)
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        table = "published_image_text_profile" if FILES[name] == "profile" else "published_image_text"
        store.replace_image_text_file(name, FILES[name], table, rows, digest, origin=origin, commit=commit)
        report.imported[name] = len(rows)
    return report


def download(commit: str, folder: Path, base_url: str | None = None, timeout_s: float = 30.0) -> None:
    """OpenCLIP's three docs/ CSVs at `commit` into `folder`; offline is a PublishedError."""
    base_url = (base_url or os.environ.get("MATCHUP_OPEN_CLIP_RESULTS_URL") or SOURCE_URL).rstrip("/")
    for name in FILES:
        url = f"{base_url}/{commit}/docs/{name}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                (Path(folder) / name).write_bytes(response.read())
        except urllib.error.HTTPError as e:
            raise PublishedError(f"Downloading OpenCLIP's {name} at commit {commit} failed with HTTP {e.code} "
                                 f"({url}). Import a local copy of its docs/ folder with `python -m engine "
                                 "catalog import DIR`.") from None
        except (urllib.error.URLError, OSError) as e:
            raise PublishedError(f"Cannot download OpenCLIP's published tables: {base_url} is unreachable "
                                 f"({getattr(e, 'reason', e)}); this machine looks offline. Nothing was changed. "
                                 "Import a local copy of its docs/ folder with `python -m engine catalog import "
                                 "DIR`.") from None


def sync(store, commit: str = OPEN_CLIP_COMMIT, base_url: str | None = None, timeout_s: float = 30.0) -> ImportReport:
    with tempfile.TemporaryDirectory(prefix="matchup-sync-open-clip-") as tmp:
        download(commit, Path(tmp), base_url, timeout_s)
        return import_dir(store, tmp, origin="sync", commit=commit)


# -- the shipped snapshot ------------------------------------------------------------------------------
def snapshot_dir() -> Path:
    return paths.snapshot_dir() / SNAPSHOT_SUBDIR


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_snapshot(source_dir: Path | None = None, out_dir: Path | None = None,
                   commit: str = OPEN_CLIP_COMMIT) -> dict:
    """Import OpenCLIP's CSVs (a folder holding `commit`'s docs/ files, else downloaded) into a
    scratch database and write what landed, as Parquet with its provenance, to `out_dir`."""
    from engine.store import SCHEMA_VERSION, Store
    out_dir = Path(out_dir or snapshot_dir())
    with tempfile.TemporaryDirectory(prefix="matchup-snapshot-open-clip-") as tmp:
        tmp = Path(tmp)
        if source_dir is None:
            source_dir = tmp / "csv"
            source_dir.mkdir()
            download(commit, source_dir)
        missing = [name for name in FILES if not (Path(source_dir) / name).is_file()]
        if missing:
            raise PublishedError(f"{source_dir} lacks {', '.join(missing)}; a snapshot needs all three of "
                                 "OpenCLIP's docs/ tables.")
        scratch = Store(tmp / "scratch.duckdb")
        report = import_dir(scratch, source_dir)
        if report.failed:
            raise PublishedError("Not every OpenCLIP file imported cleanly, so no snapshot was written: "
                                 + " ".join(report.failed.values()))
        out_dir.mkdir(parents=True, exist_ok=True)
        staged = {table: out_dir / f".{name}.partial" for table, name in TABLE_FILES.items()}
        scratch.export_published(staged)
        import open_clip
        provenance = {"schema_version": SCHEMA_VERSION, "source": f"{SOURCE_REPOSITORY}, docs/ folder",
                      "commit": commit, "commit_date": COMMIT_DATES.get(commit), "licence": SOURCE_LICENCE,
                      "taken_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "names_resolved_with_open_clip": open_clip.__version__,
                      "written_by": "python -m engine catalog snapshot --open-clip-from DIR",
                      "files": {name: {"kind": FILES[name], "rows": report.imported[name],
                                       "sha256": _sha256(Path(source_dir) / name)} for name in sorted(report.imported)},
                      "tables": {}}
        for table, path in staged.items():
            final = out_dir / TABLE_FILES[table]
            os.replace(path, final)
            provenance["tables"][table] = {"file": final.name, "rows": int(pd.read_parquet(final).shape[0]),
                                           "sha256": _sha256(final)}
    partial = out_dir / ".provenance.json.partial"
    partial.write_text(json.dumps(provenance, indent=2) + "\n")
    os.replace(partial, out_dir / "provenance.json")
    return provenance


def load_snapshot(store, folder: Path | None = None) -> str:
    """Load the shipped OpenCLIP snapshot unless the database holds OpenCLIP rows from sync or
    import, or this very snapshot. One transaction. Returns what happened, in words."""
    from engine.store import SCHEMA_VERSION
    folder = Path(folder or snapshot_dir())
    path = folder / "provenance.json"
    if not path.is_file():
        raise PublishedError(f"OpenCLIP's published tables not loaded: the shipped snapshot {path} is missing. {FIX}")
    try:
        provenance = json.loads(path.read_text())
        version, tables = int(provenance["schema_version"]), provenance["tables"]
        entries = [tables[t] for t in TABLE_FILES]
    except (ValueError, KeyError, TypeError) as e:
        raise PublishedError(f"OpenCLIP's published tables not loaded: {path} is damaged "
                             f"({type(e).__name__}: {e}). {FIX}") from None
    if version > SCHEMA_VERSION:
        raise PublishedError(f"OpenCLIP's published tables not loaded: the snapshot in {folder} was written by a "
                             f"newer Matchup (schema version {version}). Update Matchup (git pull).")
    ident = f"{provenance.get('commit')}@" + ",".join(e["sha256"][:12] for e in entries)
    origins = store.image_text_origins()
    if origins - {"snapshot"}:
        return "OpenCLIP rows from `catalog sync`/`import` are kept"
    if origins == {"snapshot"} and store.meta().get("image_text_snapshot") == ident:
        return "the shipped OpenCLIP snapshot is already loaded"
    frames = {}
    for table, entry in zip(TABLE_FILES, entries, strict=True):
        file = folder / entry["file"]
        if not file.is_file() or _sha256(file) != entry["sha256"]:
            raise PublishedError(f"OpenCLIP's published tables not loaded: {file} is missing or does not match "
                                 f"its checksum (damaged or edited). {FIX}")
        frames[table] = pd.read_parquet(file)
        if len(frames[table]) != entry["rows"]:
            raise PublishedError(f"OpenCLIP's published tables not loaded: {file} holds {len(frames[table])} rows "
                                 f"where provenance.json says {entry['rows']}. {FIX}")
    if provenance.get("names_resolved_with_open_clip") != image_text.installed_open_clip():  # no import: seconds
        known = set(image_text.pairs())
        rows = frames["published_image_text"]
        rows["checkpoint"] = [image_text.checkpoint_id(m, t) if (m, t) in known else None
                              for m, t in zip(rows["model"], rows["tag"], strict=True)]
    files = [(name, e["kind"], e["rows"], e["sha256"]) for name, e in provenance["files"].items()]
    try:
        loaded = store.replace_image_text_snapshot(frames, files, provenance.get("commit"),
                                                   provenance["taken_at"], ident)
    except (duckdb.Error, ValueError) as e:
        raise PublishedError(f"OpenCLIP's published tables not loaded: rows the database refuses "
                             f"({str(e).splitlines()[0]}). {FIX}") from None
    if loaded is None:
        return "OpenCLIP rows from `catalog sync`/`import` arrived meanwhile and are kept"
    return (f"loaded {len(frames['published_image_text']):,} OpenCLIP published results from the shipped snapshot "
            f"of open_clip {str(provenance.get('commit'))[:8]}")


def describe(provenance: list[dict]) -> str:
    """One line on where the OpenCLIP rows came from, for the sidebar and `db info`."""
    how = {"snapshot": "shipped snapshot", "sync": "synced", "import": "imported from a folder"}
    parts = []
    for entry in provenance:
        name = f"OpenCLIP {entry['commit'][:8]}" if entry.get("commit") else "OpenCLIP (commit unknown)"
        parts.append(f"{name}, {how.get(entry['origin'], entry['origin'])} "
                     f"{'taken' if entry['origin'] == 'snapshot' else 'on'} {(entry.get('taken_at') or '')[:10]}")
    return "; ".join(dict.fromkeys(parts))

