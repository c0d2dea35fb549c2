"""Accuracy of Hub checkpoints on an evaluation set: top-1/5, NLL, ECE, per-class counts.

Preprocessing is each checkpoint's own, built exactly as timm's validate.py builds it:
`resolve_data_config(..., use_test_size=True)` then `create_transform` in its prefetcher form
(uint8 tensors from the workers, normalised on the device). Checkpoints that share that
preprocessing are evaluated in one pass, so each image is decoded once per sweep.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from engine import hub
from engine.datasets import EvalDataset
from engine.errors import MatchupError
from engine.profile import check_precision, device_name, is_out_of_memory, resolve_device
from engine.store import cache_key

ECE_BINS = 15
SWEEP_GROUP = 4  # models that share one decoding pass (they all sit in memory together)


class EvalError(MatchupError):
    """An evaluation cannot run or produced unusable numbers."""


class EvalCancelled(MatchupError):
    """Cancelled by the caller; nothing was stored."""


def data_config(cfg) -> dict:
    """The checkpoint's own eval preprocessing, as validate.py resolves it (test size)."""
    from timm.data import resolve_data_config
    return resolve_data_config(pretrained_cfg=cfg.to_dict(), use_test_size=True)


def make_transform(config: dict):
    """validate.py's eval transform (prefetcher form: normalisation happens on the device)."""
    from timm.data import create_transform
    return create_transform(input_size=config["input_size"], is_training=False,
                            use_prefetcher=True, interpolation=config["interpolation"],
                            mean=config["mean"], std=config["std"], crop_pct=config["crop_pct"],
                            crop_mode=config["crop_mode"])


def _preprocessing_key(config: dict) -> tuple:
    return (tuple(config["input_size"]), config["interpolation"], float(config["crop_pct"]),
            config["crop_mode"], tuple(config["mean"]), tuple(config["std"]))


@dataclass
class EvalSettings:
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 128
    workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    limit: int | None = None
    channels_last: bool = False


def eval_key(checkpoint: str, revision: str, dataset: EvalDataset, config: dict,
             settings: EvalSettings) -> tuple[str, dict]:
    payload = {"kind": "eval", "checkpoint": checkpoint, "revision": revision,
               "dataset_fingerprint": dataset.fingerprint, "variant": dataset.variant,
               "label_map": dataset.label_map, "img_size": list(config["input_size"]),
               "crop_pct": config["crop_pct"], "crop_mode": config["crop_mode"],
               "interpolation": config["interpolation"], "mean": list(config["mean"]),
               "std": list(config["std"]), "precision": settings.precision,
               "limit": settings.limit}
    return cache_key(payload), payload


def _cached_revision(checkpoint: str) -> str | None:
    """The revision in the local Hub cache, found without the network (for cache lookups)."""
    from huggingface_hub import try_to_load_from_cache
    cfg = hub.pretrained_cfg(checkpoint)
    for filename in hub._candidates(cfg):
        path = try_to_load_from_cache(cfg.hf_hub_id, filename, cache_dir=hub.cache_dir())
        if isinstance(path, str):
            return os.path.basename(os.path.dirname(path))
    return None


def lookup(store, checkpoint: str, dataset: EvalDataset, settings: EvalSettings) -> dict | None:
    """The stored result for this request when the weights in the local Hub cache were already
    evaluated this way; None otherwise. Loads no weights and touches no network. `dataset`
    must already carry the settings' limit (`dataset.limit(settings.limit)`)."""
    revision = _cached_revision(checkpoint)
    if revision is None:
        return None
    key, _ = eval_key(checkpoint, revision, dataset, data_config(hub.pretrained_cfg(checkpoint)), settings)
    return store.eval_result(key)


class _Images:
    """Torch dataset over an EvalDataset: (uint8 CHW tensor, index)."""

    def __init__(self, dataset: EvalDataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        import torch
        image = self.transform(self.dataset.load(index))
        if not isinstance(image, torch.Tensor):
            image = torch.as_tensor(image)
        return image, index


class _Metrics:
    """Running sums for one checkpoint; `finish` turns them into the stored numbers."""

    def __init__(self, num_classes: int):
        import torch
        self.n = self.top1 = self.top5 = 0
        self.nll = 0.0
        self.bin_count = torch.zeros(ECE_BINS, dtype=torch.float64)
        self.bin_conf = torch.zeros(ECE_BINS, dtype=torch.float64)
        self.bin_correct = torch.zeros(ECE_BINS, dtype=torch.float64)
        self.class_total = torch.zeros(num_classes, dtype=torch.int64)
        self.class_correct = torch.zeros(num_classes, dtype=torch.int64)
        self.real_n = self.real_top1 = self.real_top5 = 0
        self.predictions: list[int] = []

    def update(self, logits, targets, real: list[list[int]] | None, subset):
        import torch
        import torch.nn.functional as F
        probs = logits.softmax(dim=1)
        confidence, predicted = probs.max(dim=1)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct = predicted == targets
        self.n += len(targets)
        self.top1 += int(correct.sum())
        self.top5 += int((top5 == targets[:, None]).any(dim=1).sum())
        self.nll += float(F.cross_entropy(logits, targets, reduction="sum"))
        bins = (confidence * ECE_BINS).long().clamp_(max=ECE_BINS - 1)
        self.bin_count += torch.bincount(bins, minlength=ECE_BINS).double()
        self.bin_conf += torch.bincount(bins, weights=confidence.double(), minlength=ECE_BINS)
        self.bin_correct += torch.bincount(bins, weights=correct.double(), minlength=ECE_BINS)
        self.class_total += torch.bincount(targets, minlength=len(self.class_total))
        self.class_correct += torch.bincount(targets[correct], minlength=len(self.class_total))
        self.predictions += predicted.tolist()
        if real is not None:
            in_1k = (lambda i: subset[i]) if subset else (lambda i: i)
            for labels, pred, top in zip(real, predicted.tolist(), top5.tolist()):
                if labels:
                    self.real_n += 1
                    self.real_top1 += in_1k(pred) in labels
                    self.real_top5 += any(in_1k(t) in labels for t in top)

    def finish(self) -> dict:
        ece = float((self.bin_conf - self.bin_correct).abs().sum() / max(self.n, 1))
        result = {"n_images": self.n, "top1": 100 * self.top1 / self.n,
                  "top5": 100 * self.top5 / self.n, "nll": self.nll / self.n, "ece": ece,
                  "per_class_correct": self.class_correct.tolist(),
                  "per_class_total": self.class_total.tolist(),
                  "ece_bins": {"count": self.bin_count.tolist(), "confidence": self.bin_conf.tolist(),
                               "correct": self.bin_correct.tolist()}}
        if self.real_n:
            result.update(top1=100 * self.real_top1 / self.real_n, top5=100 * self.real_top5 / self.real_n,
                          real_n_images=self.real_n, single_label_top1=100 * self.top1 / self.n)
        return result


def _forward(model, images, chunk: list[int]):
    """Logits for a batch; on out-of-memory the batch is split in halves, and the smaller
    chunk size is kept for the rest of the run."""
    import torch
    while True:
        try:
            size = chunk[0]
            return torch.cat([model(images[i:i + size]) for i in range(0, len(images), size)])
        except Exception as e:  # noqa: BLE001
            if not is_out_of_memory(e) or chunk[0] == 1:
                raise
            if images.is_cuda:
                torch.cuda.empty_cache()
            chunk[0] = max(1, min(chunk[0], len(images)) // 2)


def check_head(checkpoint: str, cfg, model, dataset: EvalDataset) -> int:
    """The label offset to drop; refuses a head that does not predict ImageNet-1k classes."""
    offset = cfg.label_offset or 0
    classes = getattr(model, "num_classes", None)
    if classes is None or classes - offset != 1000:
        what = {0: "no classifier head (a feature extractor)", 21841: "an ImageNet-21k head",
                21843: "an ImageNet-21k head", 11821: "an ImageNet-12k head"}.get(classes, f"a {classes}-class head")
        raise EvalError(f"{checkpoint} has {what}; {dataset.variant} is scored on the 1000 "
                        "ImageNet-1k classes. Pick a checkpoint fine-tuned on ImageNet-1k "
                        f"(a tag ending in _in1k, e.g. `catalog list` shows them).")
    return offset


def _evaluate_group(models: list[dict], dataset: EvalDataset, config: dict, settings: EvalSettings,
                    progress: Callable | None, cancel: Callable | None) -> None:
    """One decoding pass feeding every model of the group; fills each model's `metrics`."""
    import contextlib
    import torch
    device = resolve_device(settings.device)
    transform = make_transform(config)
    loader = torch.utils.data.DataLoader(
        _Images(dataset, transform), batch_size=settings.batch_size, shuffle=False,
        num_workers=settings.workers, pin_memory=device.type == "cuda",
        persistent_workers=False)
    mean = torch.tensor([x * 255 for x in config["mean"]], device=device).view(1, 3, 1, 1)
    std = torch.tensor([x * 255 for x in config["std"]], device=device).view(1, 3, 1, 1)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.precision)
    autocast = (torch.autocast(device_type=device.type, dtype=dtype) if dtype
                else contextlib.nullcontext())
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    subset = dataset.class_subset
    subset_index = torch.tensor(subset, device=device) if subset else None
    targets_all = torch.tensor(dataset.subset_targets())
    chunk = [settings.batch_size]
    for entry in models:
        entry["model"] = entry["model"].to(device, memory_format=memory_format)
        entry["metrics"] = _Metrics(dataset.num_classes)
        entry["seconds"] = 0.0
    done, started = 0, time.perf_counter()
    with torch.inference_mode():
        for images, indices in loader:
            if cancel is not None and cancel():
                raise EvalCancelled("Evaluation cancelled; nothing was stored.")
            images = images.to(device, non_blocking=True).float().sub_(mean).div_(std)
            images = images.contiguous(memory_format=memory_format)
            targets = targets_all[indices].to(device)
            real = [dataset.real_labels[i] for i in indices.tolist()] if dataset.real_labels else None
            for entry in models:
                model_started = time.perf_counter()
                with autocast:
                    logits = _forward(entry["model"], images, chunk)
                logits = logits.float()[:, entry["offset"]:]
                if subset_index is not None:
                    logits = logits.index_select(1, subset_index)
                if not torch.isfinite(logits).all():
                    raise EvalError(
                        f"{entry['checkpoint']} produced non-finite logits (NaN or inf) on images "
                        f"{done}-{done + len(indices) - 1} at {settings.precision}; nothing was "
                        "stored. Try --precision fp32, or check the weights file.")
                entry["metrics"].update(logits.cpu(), targets.cpu(), real, subset)
                entry["seconds"] += time.perf_counter() - model_started
            done += len(indices)
            if progress is not None:
                elapsed = time.perf_counter() - started
                rate = done / elapsed if elapsed else 0.0
                progress({"done": done, "total": len(dataset), "images_per_sec": rate,
                          "eta_s": (len(dataset) - done) / rate if rate else None,
                          "checkpoints": [e["checkpoint"] for e in models]})
    wall = time.perf_counter() - started
    for entry in models:
        entry["wall_seconds"] = wall
        entry["batch_size_used"] = chunk[0]


def evaluate(store, checkpoints: list[str], dataset: EvalDataset, settings: EvalSettings | None = None,
             force: bool = False, progress: Callable | None = None,
             cancel: Callable | None = None) -> list[dict]:
    """Evaluate each checkpoint (cached results come back at once); one row per checkpoint."""
    import torch
    import timm
    settings = settings or EvalSettings()
    device = resolve_device(settings.device)
    check_precision(settings.precision, device)
    if settings.batch_size < 1:
        raise EvalError("--batch-size must be at least 1.")
    dataset = dataset.limit(settings.limit)
    results: dict[str, dict] = {}
    pending: dict[tuple, list[dict]] = {}
    for checkpoint in checkpoints:
        cfg = hub.pretrained_cfg(checkpoint)
        config = data_config(cfg)
        cached = None if force else lookup(store, checkpoint, dataset, settings)
        if cached is not None:
            results[checkpoint] = {**cached, "cached": True}
            continue
        pending.setdefault(_preprocessing_key(config), []).append(
            {"checkpoint": checkpoint, "cfg": cfg, "config": config})
    for group in pending.values():
        for start in range(0, len(group), SWEEP_GROUP):
            batch = group[start:start + SWEEP_GROUP]
            for entry in batch:
                model, weights = hub.load_model(entry["checkpoint"])
                entry.update(model=model, weights=weights,
                             offset=check_head(entry["checkpoint"], entry["cfg"], model, dataset))
                key, payload = eval_key(entry["checkpoint"], weights.revision, dataset,
                                        entry["config"], settings)
                cached = None if force else store.eval_result(key)
                if cached is not None:  # the download brought a revision already evaluated
                    results[entry["checkpoint"]] = {**cached, "cached": True}
                entry.update(key=key, payload=payload)
            batch = [e for e in batch if e["checkpoint"] not in results]
            if not batch:
                continue
            _evaluate_group(batch, dataset, batch[0]["config"], settings, progress, cancel)
            for entry in batch:
                metrics = entry["metrics"].finish()
                config = entry["config"]
                row = {
                    "cache_key": entry["key"], "checkpoint": entry["checkpoint"],
                    "hub_revision": entry["weights"].revision, "dataset_id": dataset.id,
                    "dataset_fingerprint": dataset.fingerprint, "label_map": dataset.label_map,
                    "img_size": config["input_size"][1], "crop_pct": config["crop_pct"],
                    "crop_mode": config["crop_mode"], "interpolation": config["interpolation"],
                    "precision": settings.precision, "device_name": device_name(device),
                    "n_images": metrics["n_images"], "top1": metrics["top1"], "top5": metrics["top5"],
                    "nll": metrics["nll"], "ece": metrics["ece"], "seconds": entry["wall_seconds"],
                    "images_per_sec": metrics["n_images"] / entry["wall_seconds"],
                    "torch_version": torch.__version__, "timm_version": timm.__version__,
                    "cuda_version": torch.version.cuda if device.type == "cuda" else None,
                    "details": {**entry["payload"], "variant": dataset.variant,
                                "hub_repo": entry["weights"].repo_id,
                                "weights_file": entry["weights"].filename,
                                "batch_size": settings.batch_size,
                                "batch_size_used": entry["batch_size_used"],
                                "workers": settings.workers, "channels_last": settings.channels_last,
                                "model_seconds": entry["seconds"],
                                "shared_pass_with": [e["checkpoint"] for e in batch if e is not entry],
                                **{k: v for k, v in metrics.items()
                                   if k not in ("n_images", "top1", "top5", "nll", "ece")},
                                "predictions": entry["metrics"].predictions},
                    "created_at": datetime.now(timezone.utc).replace(tzinfo=None)}
                if not all(math.isfinite(row[k]) for k in ("top1", "top5", "nll", "ece")):
                    raise EvalError(f"{entry['checkpoint']}: metrics are not finite; nothing stored.")
                store.put_eval(row)
                results[entry["checkpoint"]] = {**store.eval_result(entry["key"]), "cached": False}
                del entry["model"]
    return [results[c] for c in checkpoints]
