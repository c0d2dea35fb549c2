"""The checkpoints that exist: the installed timm registry read offline (architectures, pretrained
tags, class by taxonomy), the reference facts and the shipped FLOP counts, and filters over them.
"""
from __future__ import annotations

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
