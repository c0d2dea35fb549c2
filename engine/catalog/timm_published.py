"""What timm published about its checkpoints: results-*.csv and benchmark-*.csv, parsed by name,
imported (`import_dir`), or downloaded at a pinned commit and imported (`sync`).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine.catalog import taxonomy
from engine.catalog.timm_models import CatalogError, load_registry
from engine.store import Store


# timm's results/ folder: the commit whose files Matchup was checked against, and its file names.
TIMM_RESULTS_COMMIT = "aa4b5850c1543fa488abf260f18390eda46cf85d"
TIMM_RESULTS_URL = "https://raw.githubusercontent.com/huggingface/pytorch-image-models"
TIMM_RESULTS_FILES = (
    "results-imagenet.csv", "results-imagenet-real.csv", "results-imagenetv2-matched-frequency.csv",
    "results-sketch.csv", "results-imagenet-a.csv", "results-imagenet-a-clean.csv",
    "results-imagenet-r.csv", "results-imagenet-r-clean.csv",
    "benchmark-infer-amp-nchw-pt113-cu117-rtx3090.csv", "benchmark-infer-amp-nhwc-pt113-cu117-rtx3090.csv",
    "benchmark-infer-amp-nchw-pt210-cu121-rtx3090.csv", "benchmark-infer-amp-nhwc-pt210-cu121-rtx3090.csv",
    "benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv", "benchmark-infer-amp-nhwc-pt240-cu124-rtx3090.csv",
    "benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv", "benchmark-infer-amp-nhwc-pt240-cu124-rtx4090.csv",
    "benchmark-infer-amp-nchw-pt240-cu124-rtx4090-dynamo.csv",
    "benchmark-infer-amp-nchw-pt291-cu128-4090.csv", "benchmark-infer-amp-nchw-pt291-cu128-4090-dynamo.csv",
    "benchmark-infer-amp-nchw-pt291-cu130-5090.csv", "benchmark-infer-amp-nchw-pt291-cu130-5090-dynamo.csv",
    "benchmark-infer-amp-nchw-pt291-cu130-pro6000maxq.csv",
    "benchmark-infer-amp-nchw-pt291-cu130-pro6000maxq-dynamo.csv",
    "benchmark-infer-amp_bf16-nchw-pt291-cu130-pro6000maxq-dynamo.csv",
    "benchmark-infer-bf16-nchw-pt291-cu130-pro6000maxq-dynamo.csv",
    "benchmark-infer-fp32-nchw-pt221-cpu-i9_10940x-dynamo.csv",
    "benchmark-infer-fp32-nchw-pt240-cpu-i9_10940x-dynamo.csv",
    "benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv",
    "benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv", "benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv",
)

# Published file name -> the dataset id Matchup uses in metric names (`<dataset>.top1`).
DATASET_IDS = {
    "imagenet": "imagenet", "imagenet-real": "imagenet-real",
    "imagenetv2-matched-frequency": "imagenet-v2", "sketch": "sketch",
    "imagenet-a": "imagenet-a", "imagenet-a-clean": "imagenet-a-clean",
    "imagenet-r": "imagenet-r", "imagenet-r-clean": "imagenet-r-clean",
}
RESULTS_NAME = re.compile(r"^results-(?P<dataset>[a-z0-9][a-z0-9_-]*)\.csv$")
BENCHMARK_NAME = re.compile(
    r"^benchmark-(?P<mode>infer|train)-(?P<precision>[a-z0-9_]+)-(?P<layout>nchw|nhwc)"
    r"-pt(?P<torch>\d+)-(?P<backend>cu\d+|cpu)-(?P<device>[a-z0-9_]+?)(?P<dynamo>-dynamo)?\.csv$")

RESULTS_COLUMNS = {  # published column -> store column
    "model": "model", "img_size": "img_size", "top1": "top1", "top5": "top5",
    "param_count": "param_count", "crop_pct": "crop_pct", "interpolation": "interpolation"}
BENCHMARK_COLUMNS = {
    "model": "model", "{mode}_img_size": "img_size", "{mode}_batch_size": "batch_size",
    "{mode}_samples_per_sec": "samples_per_sec", "{mode}_step_time": "step_time_ms",
    "param_count": "param_count"}
BENCHMARK_OPTIONAL = {"infer_gmacs": "gmacs", "infer_macts": "macts"}
TEXT_COLUMNS = {"model", "interpolation"}


# -- published results import -------------------------------------------------------------------
def _torch_version(digits: str) -> str:
    """pt113 -> 1.13, pt210 -> 2.1.0: timm writes the version without dots."""
    if digits.startswith("1"):
        return f"1.{digits[1:]}"
    return ".".join(digits)


def _cuda_version(backend: str) -> str | None:
    if backend == "cpu":
        return None
    digits = backend[2:]
    return f"{digits[:2]}.{digits[2:]}"


@dataclass
class ParsedName:
    kind: str  # "results" or "benchmark"
    fields: dict


def parse_file_name(name: str) -> ParsedName | None:
    """What a published file holds, from its name alone; None when the name is not one of timm's."""
    if m := RESULTS_NAME.match(name):
        dataset = m["dataset"]
        return ParsedName("results", {"dataset": DATASET_IDS.get(dataset, dataset)})
    if m := BENCHMARK_NAME.match(name):
        return ParsedName("benchmark", {
            "mode": m["mode"], "precision": m["precision"], "layout": m["layout"],
            "torch": _torch_version(m["torch"]), "cuda": _cuda_version(m["backend"]),
            "device": m["device"] if m["backend"] != "cpu" else f"cpu-{m['device']}",
            "compiled": bool(m["dynamo"])})
    return None


def published_names() -> "_Names":
    """Resolves the model names in published files to this timm's checkpoints and architectures."""
    return _Names()


class _Names:
    """Published names -> current timm names, through timm's deprecation map and our retired list."""

    def __init__(self):
        registry = load_registry()  # the shipped copy for this timm: an import need not load torch
        self.pretrained = set(registry.pretrained["checkpoint"])
        self.archs = set(registry.architectures["arch"])
        self.deprecated = dict(zip(registry.deprecated["deprecated"], registry.deprecated["current"], strict=True))
        self.retired = taxonomy.retired_archs()

    def checkpoint(self, model: str) -> str | None:
        name = self.deprecated.get(model, model) or model
        return name if name in self.pretrained else None

    def arch(self, model: str) -> str | None:
        if model in self.archs or model in self.retired:
            return model
        target = self.deprecated.get(model)
        if target:
            arch = taxonomy.split_checkpoint(target)[0]
            return arch if arch in self.archs else None
        return None


def _read_published(path: Path, parsed: ParsedName, names: _Names) -> pd.DataFrame:
    """Rows ready for the store; a missing column or a non-number raises, naming file and column."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise CatalogError(f"{path.name}: not a readable CSV ({e}). Nothing from it was imported.") from None
    if parsed.kind == "results":
        wanted = dict(RESULTS_COLUMNS)
    else:
        wanted = {k.format(mode=parsed.fields["mode"]): v for k, v in BENCHMARK_COLUMNS.items()}
        wanted.update({k: v for k, v in BENCHMARK_OPTIONAL.items() if k in raw.columns})
    missing = [column for column in wanted if column not in raw.columns]
    if missing:
        raise CatalogError(
            f"{path.name}: required column {', '.join(repr(c) for c in missing)} is missing "
            f"(found: {', '.join(raw.columns)}). Nothing from this file was imported; fix the "
            "file or re-download timm's results folder.")
    rows = raw[list(wanted)].rename(columns=wanted)
    for source_column, column in wanted.items():
        if column in TEXT_COLUMNS:
            continue
        try:
            # timm writes thousands separators ("1,014.45") in some columns
            rows[column] = pd.to_numeric(rows[column].str.replace(",", "", regex=False))
        except (ValueError, TypeError) as e:
            raise CatalogError(f"{path.name}: column {source_column!r} holds a non-number ({e}). "
                               "Nothing from this file was imported.") from None
    if rows["model"].isna().any():
        raise CatalogError(f"{path.name}: column 'model' has empty cells. Nothing from this file "
                           "was imported.")
    rows.insert(0, "source_file", path.name)
    for key, value in parsed.fields.items():
        rows[key] = value
    if parsed.kind == "results":
        rows["checkpoint"] = rows["model"].map(names.checkpoint)
    else:
        rows["arch"] = rows["model"].map(names.arch)
    return rows


@dataclass
class ImportReport:
    imported: dict[str, int] = field(default_factory=dict)  # file -> rows
    skipped: dict[str, str] = field(default_factory=dict)   # file -> why
    failed: dict[str, str] = field(default_factory=dict)    # file -> error


def import_dir(store: Store, folder: str | os.PathLike, origin: str = "import",
               commit: str | None = None) -> ImportReport:
    """Import every results-*.csv and benchmark-*.csv; one transaction per file. `origin` and
    `commit` record where the files came from (a folder's commit is unknown unless given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CatalogError(f"{folder} is not a folder. Point `catalog import` at timm's results/ "
                           "folder (the one holding results-imagenet.csv) or OpenCLIP's docs/ folder.")
    from engine.catalog import image_text_published
    report = ImportReport()
    opened = image_text_published.import_dir(store, folder, origin=origin, commit=None if origin == "import" else commit)
    report.imported.update(opened.imported)
    report.failed.update(opened.failed)
    names = None
    for path in sorted(folder.glob("*.csv")):
        if path.name in image_text_published.FILES:
            continue
        parsed = parse_file_name(path.name)
        if parsed is None:
            report.skipped[path.name] = ("file name matches neither results-<dataset>.csv nor "
                                         "benchmark-<mode>-<precision>-<layout>-pt<ver>-<cuXXX|cpu>"
                                         "-<device>[-dynamo].csv")
            continue
        names = names or published_names()
        try:
            rows = _read_published(path, parsed, names)
        except CatalogError as e:
            report.failed[path.name] = str(e)
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        store.replace_published_file(path.name, parsed.kind, rows, digest, origin=origin, commit=commit)
        report.imported[path.name] = len(rows)
    if not report.imported and not report.failed:
        raise CatalogError(f"{folder} holds no results-*.csv or benchmark-*.csv files, nor OpenCLIP's "
                           "openclip_results.csv. Point `catalog import` at timm's results/ folder or "
                           "OpenCLIP's docs/ folder.")
    return report


def download(commit: str, folder: Path, base_url: str | None = None, timeout_s: float = 30.0) -> None:
    """timm's published CSVs at `commit` into `folder`; offline or a bad commit is a CatalogError."""
    base_url = (base_url or os.environ.get("MATCHUP_TIMM_RESULTS_URL") or TIMM_RESULTS_URL).rstrip("/")
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise CatalogError(f"--commit {commit!r} is not a git commit SHA (7 to 40 hex digits).")
    for name in TIMM_RESULTS_FILES:
        url = f"{base_url}/{commit}/results/{name}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                (Path(folder) / name).write_bytes(response.read())
        except urllib.error.HTTPError as e:
            raise CatalogError(
                f"Downloading {name} at commit {commit} failed with HTTP {e.code} ({url}). "
                "Check the commit, or import a local copy of timm's results/ folder with "
                "`python -m engine catalog import DIR`.") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CatalogError(
                f"Cannot download timm's published results: {base_url} is unreachable "
                f"({reason}); this machine looks offline. Nothing was changed. Import a local "
                "copy instead: `python -m engine catalog import DIR`, where DIR is timm's "
                "results/ folder.") from None


def sync(store: Store, commit: str = TIMM_RESULTS_COMMIT, base_url: str | None = None,
         timeout_s: float = 30.0, open_clip_commit: str | None = None) -> ImportReport:
    """Download timm's published CSVs at a pinned commit and OpenCLIP's published tables at its
    pinned commit, then import them."""
    from engine.catalog import image_text_published
    with tempfile.TemporaryDirectory(prefix="matchup-sync-") as tmp:
        download(commit, Path(tmp), base_url, timeout_s)
        report = import_dir(store, tmp, origin="sync", commit=commit)
    try:
        opened = image_text_published.sync(store, open_clip_commit or image_text_published.OPEN_CLIP_COMMIT,
                                           timeout_s=timeout_s)
    except image_text_published.PublishedError as e:
        report.failed["OpenCLIP docs/"] = str(e)
    else:
        report.imported.update(opened.imported)
        report.failed.update(opened.failed)
    return report


def describe_published(provenance: list[dict], counts: bool = True) -> str:
    """One line on where the published rows came from (`Store.published_provenance`), for the
    sidebar and `db info`; empty when none are loaded."""
    how = {"snapshot": "shipped snapshot", "sync": "synced", "import": "imported from a folder"}
    merged: dict[tuple, dict] = {}  # one line per origin, commit and day, however many files
    for entry in provenance:
        key = (entry["origin"], entry.get("commit"), (entry.get("taken_at") or "")[:10])
        total = merged.setdefault(key, {"files": 0, "rows": 0})
        total["files"] += entry.get("files") or 0
        total["rows"] += entry.get("rows") or 0
    parts = []
    for (origin, commit, when), total in merged.items():
        name = f"timm {commit[:8]}" if commit else "timm (commit unknown)"
        verb = "taken" if origin == "snapshot" else "on"
        parts.append(f"{name}, {how.get(origin, origin)} {verb} {when}"
                     + (f" ({total['files']} files, {total['rows']:,} rows)" if counts else
                        f" ({total['files']} files)" if total["files"] > 1 else ""))
    return "; ".join(parts)
