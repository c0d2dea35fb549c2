"""The checkpoints that exist: the installed timm registry read offline (architectures, pretrained
tags, class by taxonomy), the reference facts and the shipped FLOP counts, and filters over them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from engine.catalog import taxonomy
from engine.errors import MatchupError
from engine.paths import DATA_DIR
from engine.store import Store

REFERENCE_POINTS_CSV = DATA_DIR / "reference" / "paper_facts.csv"
SHIPPED_COMPUTE_CSV = DATA_DIR / "compute.csv"


class CatalogError(MatchupError):
    """A published file or the catalog source cannot be used as asked."""


def _timm():
    import timm
    import timm.models
    return timm


# -- timm's registry: read from timm, or from the copy shipped for the pinned timm ---------------------
REGISTRY_ARCHITECTURES_CSV = DATA_DIR / "timm_architectures.csv"
REGISTRY_PRETRAINED_CSV = DATA_DIR / "timm_pretrained.csv"
REGISTRY_DEPRECATED_CSV = DATA_DIR / "timm_deprecated.csv"  # old names timm still resolves
ARCH_COLUMNS = ["arch", "module", "default_input_h", "default_input_w", "default_num_classes"]
DEPRECATED_COLUMNS = ["deprecated", "current"]
PRETRAINED_COLUMNS = ["checkpoint", "hf_hub_id", "input_h", "input_w", "test_h", "test_w", "crop_pct",
                      "test_crop_pct", "crop_mode", "interpolation", "mean", "std", "num_classes", "license"]
_INTS = ("default_input_h", "default_input_w", "default_num_classes", "input_h", "input_w", "test_h", "test_w",
         "num_classes")


@dataclass
class Registry:
    """What timm itself says: each registered architecture (module, default input size and head)
    and each pretrained checkpoint's config, in timm's order. Classes and data are ours, derived."""
    version: str
    architectures: pd.DataFrame  # ARCH_COLUMNS
    pretrained: pd.DataFrame     # PRETRAINED_COLUMNS
    deprecated: pd.DataFrame     # DEPRECATED_COLUMNS: an old name and the checkpoint it now is


def installed_timm() -> str | None:
    """The installed timm's version, without importing it (importing timm imports torch: seconds)."""
    from importlib import metadata
    try:
        return metadata.version("timm")
    except metadata.PackageNotFoundError:
        return None


def registry_from_timm() -> Registry:
    """Read the installed timm's registry (imports timm and torch)."""
    timm = _timm()
    archs = []
    for module in timm.models.list_modules():
        for arch in timm.list_models(module=module):
            cfg = timm.models.get_pretrained_cfg(arch)
            size = cfg.input_size if cfg is not None else (None, None, None)
            archs.append((arch, module, size[1], size[2], cfg.num_classes if cfg is not None else None))
    pretrained = []
    for name in timm.list_pretrained():
        cfg = timm.models.get_pretrained_cfg(name)
        test = cfg.test_input_size
        pretrained.append((name, cfg.hf_hub_id, cfg.input_size[1], cfg.input_size[2],
                           test[1] if test else None, test[2] if test else None, cfg.crop_pct, cfg.test_crop_pct,
                           cfg.crop_mode, cfg.interpolation, [float(v) for v in cfg.mean],
                           [float(v) for v in cfg.std], cfg.num_classes, cfg.license))
    deprecated = pd.DataFrame(list(timm.models.get_deprecated_models().items()), columns=DEPRECATED_COLUMNS)
    return Registry(timm.__version__, _typed(pd.DataFrame(archs, columns=ARCH_COLUMNS)),
                    _typed(pd.DataFrame(pretrained, columns=PRETRAINED_COLUMNS)), deprecated)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _INTS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def shipped_registry(version: str | None, folder: Path = DATA_DIR) -> Registry | None:
    """The registry shipped for timm `version` (data/timm_architectures.csv, timm_pretrained.csv and
    timm_deprecated.csv), or None when a file is missing, damaged or written for another timm: then
    read timm itself."""
    paths = (folder / REGISTRY_ARCHITECTURES_CSV.name, folder / REGISTRY_PRETRAINED_CSV.name,
             folder / REGISTRY_DEPRECATED_CSV.name)
    if version is None or not all(p.is_file() for p in paths):
        return None
    try:
        archs, pretrained, deprecated = (pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths)
        if not all((f["timm_version"] == version).all() for f in (archs, pretrained, deprecated)) \
                or archs.empty or pretrained.empty:
            return None
        deprecated = deprecated[DEPRECATED_COLUMNS].reset_index(drop=True)
        archs, pretrained = archs[ARCH_COLUMNS], pretrained[PRETRAINED_COLUMNS]
        archs, pretrained = archs.where(archs != "", None), pretrained.where(pretrained != "", None)
        for column in _INTS:
            frame = archs if column in archs else pretrained
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
        for column in ("crop_pct", "test_crop_pct"):
            pretrained[column] = pd.to_numeric(pretrained[column]).astype(float)
        for column in ("mean", "std"):
            pretrained[column] = pretrained[column].map(lambda v: [float(x) for x in v.split()])
    except (KeyError, ValueError, TypeError, AttributeError, pd.errors.ParserError):
        return None
    return Registry(version, archs, pretrained, deprecated)


def load_registry() -> Registry:
    """The shipped registry when it was written for the installed timm (a start need not import
    torch), else timm's own."""
    return shipped_registry(installed_timm()) or registry_from_timm()


def write_shipped_registry(folder: Path = DATA_DIR) -> Registry:
    """Write the installed timm's registry as the project ships it (three CSVs tagged with timm's version)."""
    registry = registry_from_timm()
    pretrained = registry.pretrained.assign(**{c: registry.pretrained[c].map(lambda v: " ".join(repr(x) for x in v))
                                               for c in ("mean", "std")})
    for frame, name in ((registry.architectures, REGISTRY_ARCHITECTURES_CSV.name),
                        (pretrained, REGISTRY_PRETRAINED_CSV.name), (registry.deprecated, REGISTRY_DEPRECATED_CSV.name)):
        partial = folder / f".{name}.partial"
        frame.assign(timm_version=registry.version).to_csv(partial, index=False)
        os.replace(partial, folder / name)
    return registry


def _architectures_frame(registry: Registry) -> pd.DataFrame:
    pretrained_per_arch: dict[str, int] = {}
    for name in registry.pretrained["checkpoint"]:
        arch = taxonomy.split_checkpoint(name)[0]
        pretrained_per_arch[arch] = pretrained_per_arch.get(arch, 0) + 1
    rows = []
    for arch, module, h, w, classes in registry.architectures[ARCH_COLUMNS].itertuples(index=False):
        rows.append((arch, module, taxonomy.arch_class(arch, module), taxonomy.family(arch),
                     True, pretrained_per_arch.get(arch, 0), None, h, w, classes))
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


def _checkpoints_frame(architectures: pd.DataFrame, registry: Registry) -> pd.DataFrame:
    by_arch = {a: (m, c, f) for a, m, c, f in zip(architectures["arch"], architectures["module"],
                                                  architectures["arch_class"], architectures["family"], strict=True)}
    rows = []
    for cfg in registry.pretrained.to_dict("records"):
        name = cfg["checkpoint"]
        arch, tag = taxonomy.split_checkpoint(name)
        classes = None if pd.isna(cfg["num_classes"]) else int(cfg["num_classes"])
        data = taxonomy.parse_pretrain(tag, classes, arch)
        module, arch_class, family = by_arch[arch]
        rows.append({
            "checkpoint": name, "arch": arch, "tag": tag, "module": module,
            "arch_class": arch_class, "family": family,
            "pretrain_data": data.pretrain_data, "finetune_data": data.finetune_data,
            "data_scale": data.data_scale, "hub_repo": cfg["hf_hub_id"],
            "input_h": cfg["input_h"], "input_w": cfg["input_w"],
            "test_h": cfg["test_h"], "test_w": cfg["test_w"],
            "crop_pct": cfg["crop_pct"], "test_crop_pct": cfg["test_crop_pct"],
            "crop_mode": cfg["crop_mode"], "interpolation": cfg["interpolation"],
            "mean": cfg["mean"], "std": cfg["std"],
            "num_classes": classes, "license": cfg["license"],
            "timm_version": registry.version, "zoo": "imagenet"})
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


ZOOS = ("imagenet", "image-text")


def checked_zoo(zoo: str | None) -> str | None:
    if zoo is not None and zoo not in ZOOS:
        raise CatalogError(f"Unknown zoo {zoo!r}; choose one of {', '.join(ZOOS)}.")
    return zoo


def checked_class(arch_class: str | None) -> str | None:
    """The class as the catalog spells it (any case given), or a one-line error naming the four."""
    if arch_class is None:
        return None
    known = {c.lower(): c for c in taxonomy.ARCH_CLASSES}
    if arch_class.lower() not in known:
        raise CatalogError(f"Unknown class {arch_class!r}; choose one of {', '.join(taxonomy.ARCH_CLASSES)}.")
    return known[arch_class.lower()]


def list_checkpoints(store: Store, arch_class: str | None = None, zoo: str | None = None) -> pd.DataFrame:
    return store.list_checkpoints(checked_class(arch_class), checked_zoo(zoo))


def filter_checkpoints(frame: pd.DataFrame, classes=None, families=None, data_scales=None,
                       max_params_m: float | None = None) -> pd.DataFrame:
    """Rows of `list_checkpoints` kept by the Run page's filters (empty filter: keep all)."""
    for column, allowed in (("arch_class", classes), ("family", families), ("data_scale", data_scales)):
        if allowed:
            frame = frame[frame[column].isin(allowed)]
    if max_params_m:
        frame = frame[frame["params_m"] <= max_params_m]
    return frame
