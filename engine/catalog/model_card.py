"""A checkpoint's model card: what a researcher needs to use what they found.

Everything comes from the installed timm (the checkpoint's own pretrained config, the eval
transform exactly as timm builds it, the defining module's docstring with its paper links) and
from the store (FLOPs counted per module, split by head). No network.
"""
from __future__ import annotations

import importlib
import json
import re

import pandas as pd

from engine.catalog import hub
from engine.errors import MatchupError

TIMM_SOURCE = "https://github.com/huggingface/pytorch-image-models/blob/v{version}/timm/models/{module}.py"


class ModelCardError(MatchupError):
    """The checkpoint is not one the installed timm knows."""


def pretrained_config(checkpoint: str) -> dict:
    import timm
    try:
        cfg = timm.models.get_pretrained_cfg(checkpoint, allow_unregistered=False)
    except RuntimeError:  # timm raises for an unknown tag
        cfg = None
    if cfg is None:
        raise ModelCardError(f"timm {timm.__version__} has no pretrained config {checkpoint!r}; "
                             "`python -m engine catalog list` shows the checkpoints it knows.")
    return cfg


def eval_transform(checkpoint: str) -> tuple[dict, str]:
    """The data config Matchup's eval resolves (timm's validate.py rule: the test size) and the
    transform timm builds from it, as timm prints it."""
    from timm.data import create_transform
    config = hub.data_config(pretrained_config(checkpoint))
    transform = create_transform(**config, is_training=False)
    return config, str(transform)


def module_of(checkpoint: str) -> str:
    import timm
    return timm.models.model_entrypoint(checkpoint.split(".", 1)[0]).__module__


def snippet(checkpoint: str) -> str:
    return (f"import timm\n\n"
            f"model = timm.create_model(\"{checkpoint}\", pretrained=True).eval()\n"
            f"config = timm.data.resolve_data_config(model=model, use_test_size=True)\n"
            f"transform = timm.data.create_transform(**config, is_training=False)\n")


def flops_by_module(compute: pd.DataFrame, img_size: int | None, num_classes: int, top: int = 12) -> pd.DataFrame:
    """The counted FLOPs of one compute row split by top-level module, largest first."""
    rows = compute[(compute["num_classes"] == num_classes) & compute["flops_by_module"].notna()]
    if img_size is not None and (rows["img_size"] == img_size).any():
        rows = rows[rows["img_size"] == img_size]
    if rows.empty:
        return pd.DataFrame(columns=["module", "gflops", "share"])
    split = rows.iloc[0]["flops_by_module"]
    split = json.loads(split) if isinstance(split, str) else split
    frame = pd.DataFrame([{"module": k, "gflops": v / 1e9} for k, v in split.items()])
    frame = frame.sort_values("gflops", ascending=False, kind="stable").reset_index(drop=True)
    frame["share"] = frame["gflops"] / frame["gflops"].sum()
    return frame.head(top)


def card(checkpoint: str, compute: pd.DataFrame | None = None) -> dict:
    """The model card. `compute`: the store's compute rows of this architecture (every head and
    resolution), split here into this checkpoint's head and the architecture's other heads."""
    import timm
    cfg = pretrained_config(checkpoint)
    config, transform = eval_transform(checkpoint)
    module_name = module_of(checkpoint)
    module = importlib.import_module(module_name)
    doc = (module.__doc__ or "").strip()
    short = module_name.rsplit(".", 1)[-1]
    result = {"checkpoint": checkpoint, "pretrained_config": cfg.to_dict(), "data_config": config,
              "transform": transform, "snippet": snippet(checkpoint), "module": module_name,
              "docstring": doc, "paper_links": sorted({u.rstrip(".,;:") for u in re.findall(r"https?://[^\s)>\]`'\"]+", doc)}),
              "source_url": TIMM_SOURCE.format(version=timm.__version__, module=short),
              "origin": cfg.origin_url or cfg.url or None, "license": cfg.license,
              "paper_ids": cfg.paper_ids}
    if compute is not None and not compute.empty:
        own = compute["num_classes"] == cfg.num_classes
        result["compute"] = compute[own].reset_index(drop=True)
        result["other_heads"] = compute[~own].reset_index(drop=True)
        result["flops_by_module"] = flops_by_module(compute, config["input_size"][-1], cfg.num_classes)
    return result
