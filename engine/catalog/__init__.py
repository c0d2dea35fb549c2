"""The checkpoints that exist (the installed timm registry) and what was published about them.

`refresh` reads timm's registry offline; `import_dir` loads timm's published results and
benchmark CSVs; `sync` downloads those CSVs at a pinned commit and imports them.
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

from engine import taxonomy
from engine.errors import MatchupError
from engine.store import Store

REFERENCE_POINTS_CSV = taxonomy.DATA_DIR / "reference" / "paper_facts.csv"
SHIPPED_COMPUTE_CSV = taxonomy.DATA_DIR / "compute.csv"

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


class CatalogError(MatchupError):
    """A published file or the catalog source cannot be used as asked."""


# -- refresh ----------------------------------------------------------------------------------
def _timm():
    import timm
    import timm.models
    return timm


def _architectures_frame() -> pd.DataFrame:
    timm = _timm()
    pretrained_per_arch: dict[str, int] = {}
    for name in timm.list_pretrained():
        arch = taxonomy.split_checkpoint(name)[0]
        pretrained_per_arch[arch] = pretrained_per_arch.get(arch, 0) + 1
    rows = []
    for module in timm.models.list_modules():
        for arch in timm.list_models(module=module):
            cfg = timm.models.get_pretrained_cfg(arch)
            size = cfg.input_size if cfg is not None else (None, None, None)
            rows.append((arch, module, taxonomy.arch_class(arch, module), taxonomy.family(arch),
                         True, pretrained_per_arch.get(arch, 0), None, size[1], size[2],
                         cfg.num_classes if cfg is not None else None))
    registered = {row[0] for row in rows}
    for arch, info in taxonomy.retired_archs().items():
        if arch not in registered:
            rows.append((arch, info["module"], taxonomy.arch_class(arch, info["module"]),
                         taxonomy.family(arch), False, 0, info["note"], None, None, None))
    frame = pd.DataFrame(rows, columns=["arch", "module", "arch_class", "family", "registered",
                                        "n_pretrained", "note", "default_input_h",
                                        "default_input_w", "default_num_classes"])
    for column in ("default_input_h", "default_input_w", "default_num_classes"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _checkpoints_frame(architectures: pd.DataFrame) -> pd.DataFrame:
    timm = _timm()
    by_arch = architectures.set_index("arch")
    rows = []
    for name in timm.list_pretrained():
        arch, tag = taxonomy.split_checkpoint(name)
        cfg = timm.models.get_pretrained_cfg(name)
        data = taxonomy.parse_pretrain(tag, cfg.num_classes, arch)
        test = cfg.test_input_size
        rows.append({
            "checkpoint": name, "arch": arch, "tag": tag, "module": by_arch.at[arch, "module"],
            "arch_class": by_arch.at[arch, "arch_class"], "family": by_arch.at[arch, "family"],
            "pretrain_data": data.pretrain_data, "finetune_data": data.finetune_data,
            "data_scale": data.data_scale, "hub_repo": cfg.hf_hub_id,
            "input_h": cfg.input_size[1], "input_w": cfg.input_size[2],
            "test_h": test[1] if test else None, "test_w": test[2] if test else None,
            "crop_pct": cfg.crop_pct, "test_crop_pct": cfg.test_crop_pct,
            "crop_mode": cfg.crop_mode, "interpolation": cfg.interpolation,
            "mean": [float(v) for v in cfg.mean], "std": [float(v) for v in cfg.std],
            "num_classes": cfg.num_classes, "license": cfg.license,
            "timm_version": timm.__version__, "zoo": "imagenet"})
    frame = pd.DataFrame(rows)
    for column in ("test_h", "test_w", "num_classes"):
        frame[column] = frame[column].astype("Int64")
    return frame


def reference_points_frame(path: Path = REFERENCE_POINTS_CSV) -> pd.DataFrame:
    """The project's table of published reference points; every row keeps its source."""
    frame = pd.read_csv(path, dtype=str)
    missing = [c for c in ("source", "model", "arch_class") if c not in frame.columns]
    if missing:
        raise CatalogError(f"{path} lacks column(s) {', '.join(missing)}; every reference point "
                           "needs its source, model and arch_class.")
    if frame["source"].isna().any():
        raise CatalogError(f"{path} has rows without a source; every reference point needs one.")
    for column in ("compute_value", "imagenet_top1", "params_m", "gflops"):
        frame[column] = pd.to_numeric(frame[column])
    return frame


def shipped_compute_frame(timm_version: str, path: Path = SHIPPED_COMPUTE_CSV) -> pd.DataFrame:
    """The project's own FLOP counts for one timm version (counts change with model code)."""
    if not path.exists():
        return pd.DataFrame()
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    frame = frame[frame["timm_version"].astype(str) == timm_version]
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    return frame


@dataclass
class RefreshReport:
    checkpoints: int
    architectures: int
    reference_points: int
    timm_version: str
    compute_loaded: int = 0
    published: str = ""              # what happened to the shipped published-results snapshot
    published_error: str | None = None  # why it was not loaded (missing, damaged, newer)
    training_compute: str = ""       # how many checkpoints have a training-compute estimate
    recipes_refused: str = ""        # one line on recipe rows refused, if any
    image_text_checkpoints: int = 0  # of `checkpoints`, the OpenCLIP ones (the image-text zoo)
    open_clip_version: str | None = None
    image_text_published: str = ""   # what happened to the shipped OpenCLIP snapshot
    image_text_error: str | None = None


def _image_text_architectures(checkpoints: pd.DataFrame) -> pd.DataFrame:
    """One architectures row per OpenCLIP model (its image tower's class; no classifier head)."""
    first = checkpoints.groupby("arch", as_index=False).agg(
        module=("module", "first"), arch_class=("arch_class", "first"), family=("family", "first"),
        n_pretrained=("checkpoint", "size"), default_input_h=("input_h", "first"),
        default_input_w=("input_w", "first"))
    return first.assign(registered=True, note=None, default_num_classes=0)


def refresh(store: Store, load_published: bool = True) -> RefreshReport:
    """Fill `checkpoints`, `architectures` and `reference_points` from the installed timm and
    OpenCLIP, offline, load the shipped FLOP counts for these versions (counts made here are
    kept) and the shipped snapshots of timm's and OpenCLIP's published results (never over rows
    from sync or import). A snapshot that cannot be loaded leaves the catalog in place and says
    why in the report."""
    from engine.catalog import image_text
    timm = _timm()
    architectures = _architectures_frame()
    checkpoints = _checkpoints_frame(architectures)
    zoo, _ = image_text.load_catalog(timm.__version__)
    if not zoo.checkpoints.empty:
        architectures = pd.concat([architectures, _image_text_architectures(zoo.checkpoints)[architectures.columns]],
                                  ignore_index=True)
    if not zoo.checkpoints.empty:
        checkpoints = pd.concat([checkpoints, zoo.checkpoints[checkpoints.columns]], ignore_index=True)
    reference = reference_points_frame()
    store.replace_catalog(architectures, checkpoints, reference, timm.__version__, image_text=zoo.details)
    open_clip_version = image_text.installed_open_clip()
    store.upsert_image_text_compute(image_text.shipped_compute(str(open_clip_version)), keep_existing=True)
    loaded = store.upsert_compute(shipped_compute_frame(timm.__version__), keep_existing=True)
    loaded += store.upsert_compute(image_text.image_tower_compute(store.image_text_compute_frame(), timm.__version__),
                                   keep_existing=True)
    report = RefreshReport(len(checkpoints), len(architectures), len(reference), timm.__version__, loaded,
                           image_text_checkpoints=len(zoo.checkpoints), open_clip_version=open_clip_version)
    report.training_compute, report.recipes_refused = refresh_training_compute(store)
    store.mark_catalog_complete(timm.__version__)
    if load_published:
        from engine import snapshot
        from engine.catalog import image_text_published
        try:
            report.published = snapshot.load(store).message
        except snapshot.SnapshotError as e:
            report.published_error = str(e)
        try:
            report.image_text_published = image_text_published.load_snapshot(store)
        except image_text_published.PublishedError as e:
            report.image_text_error = str(e)
    return report


def refresh_training_compute(store: Store) -> tuple[str, str]:
    """Estimate every checkpoint's training compute from the shipped recipes and the counted
    FLOPs and store it (unknown ones as unknown). Returns what to say: how many were estimated,
    and one line on refused recipe rows (empty when none)."""
    from engine import training_compute
    try:
        book = training_compute.load_recipes()
    except (training_compute.RecipeError, OSError, ValueError) as e:
        return "training compute not estimated", f"training recipes not loaded: {e}"
    inputs = store.training_compute_inputs()
    heads = dict(zip(inputs["heads"]["arch"], inputs["heads"]["default_num_classes"].fillna(1000).astype(int),
                     strict=True))
    estimates = training_compute.estimate(inputs["checkpoints"], inputs["compute"], book, heads)
    from engine.catalog import image_text
    try:
        zoo = image_text.estimate(store.image_text_compute_frame(), store.image_text_catalog(),
                                  datasets=book.datasets)
    except (image_text.ImageTextError, OSError, ValueError) as e:
        zoo, refused = pd.DataFrame(), f"image-text training recipes not loaded: {e}"
    else:
        refused = ""
    both = pd.concat([estimates, zoo], ignore_index=True) if not zoo.empty else estimates
    store.replace_training_compute(training_compute.as_table(both))
    known = int(estimates["train_flops"].notna().sum())
    zoo_known = int(zoo["train_flops"].notna().sum()) if not zoo.empty else 0
    line = "; ".join(x for x in (book.refused_line(), refused) if x)
    return (f"training compute estimated for {known} of {len(estimates)} ImageNet-zoo checkpoints from "
            f"{book.stages.groupby(['tag', 'arch_pattern']).ngroups} sourced recipes, and for "
            f"{zoo_known} of {len(zoo)} image-text checkpoints (samples seen from the tag or a sourced recipe)", line)


def training_count_targets(store: Store, missing_only: bool = True) -> pd.DataFrame:
    """(arch, img_size, img_width, num_classes) the training-compute estimates need counted: each
    recipe stage's student at its train resolution, each countable teacher with its default head."""
    from engine import training_compute
    inputs = store.training_compute_inputs()
    heads = dict(zip(inputs["heads"]["arch"], inputs["heads"]["default_num_classes"].fillna(1000).astype(int),
                     strict=True))
    needed = training_compute.needed_counts(training_compute.load_recipes(), inputs["checkpoints"])
    needed |= training_compute.vit_paper_counts()  # the convention check's networks
    frame = pd.DataFrame(sorted((a, r, r, heads.get(a, 1000) if n == -1 else n) for a, r, n in needed),
                         columns=["arch", "img_size", "img_width", "num_classes"])
    if missing_only and not frame.empty:
        counted = inputs["compute"]
        counted = counted[counted["error"].isna()][["arch", "img_size", "num_classes"]].assign(_have=True)
        frame = frame.merge(counted, on=["arch", "img_size", "num_classes"], how="left")
        frame = frame[frame["_have"].isna()].drop(columns="_have")
    return frame.reset_index(drop=True)


def write_shipped_compute(store: Store, path: Path = SHIPPED_COMPUTE_CSV) -> int:
    """Write the counted compute table as the project's shipped measurement."""
    frame = store.compute_frame()
    frame.to_csv(path, index=False)
    return len(frame)


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
        timm = _timm()
        self.pretrained = set(timm.list_pretrained())
        self.archs = set(timm.list_models())
        self.deprecated = timm.models.get_deprecated_models()
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


ZOOS = ("imagenet", "image-text")


def list_checkpoints(store: Store, arch_class: str | None = None, zoo: str | None = None) -> pd.DataFrame:
    if zoo is not None and zoo not in ZOOS:
        raise CatalogError(f"Unknown zoo {zoo!r}; choose one of {', '.join(ZOOS)}.")
    if arch_class is not None:
        known = {c.lower(): c for c in taxonomy.ARCH_CLASSES}
        if arch_class.lower() not in known:
            raise CatalogError(f"Unknown class {arch_class!r}; choose one of "
                               f"{', '.join(taxonomy.ARCH_CLASSES)}.")
        arch_class = known[arch_class.lower()]
    return store.list_checkpoints(arch_class, zoo)


def filter_checkpoints(frame: pd.DataFrame, classes=None, families=None, data_scales=None,
                       max_params_m: float | None = None) -> pd.DataFrame:
    """Rows of `list_checkpoints` kept by the Run page's filters (empty filter: keep all)."""
    for column, allowed in (("arch_class", classes), ("family", families), ("data_scale", data_scales)):
        if allowed:
            frame = frame[frame[column].isin(allowed)]
    if max_params_m:
        frame = frame[frame["params_m"] <= max_params_m]
    return frame
