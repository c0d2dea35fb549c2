"""Accuracy of Hub checkpoints on an evaluation set: top-1/5, NLL, ECE, per-class counts.

Preprocessing is each checkpoint's own, built exactly as timm's validate.py builds it:
`resolve_data_config(..., use_test_size=True)` then `create_transform` in its prefetcher form
(uint8 tensors from the workers, normalised on the device). Checkpoints that see the same pixels
(size, interpolation, crop) form a group: the first pass over a group decodes every image once,
feeding up to SWEEP_GROUP models and filling the decoded-image cache (engine.decoded); every
other checkpoint of the group, now or in a later run, reads the cached pixels. An image that
cannot be decoded is skipped, counted and listed by path in the result, never fatal.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from engine.catalog import hub
from engine.catalog.hub import data_config
from engine.errors import MatchupError
from engine.measure import decoded
from engine.measure.datasets import EvalDataset
from engine.measure.eval_batches import autocast_for, cached_batches, decoding_batches, on_device, pixel_scale, strict_error
from engine.measure.eval_metrics import EvalError, Metrics, check_head, head_error
from engine.measure.profile import check_precision, device_name, is_out_of_memory, resolve_device
from engine.store import cache_key

SWEEP_GROUP = 4  # models that share one decoding pass (they all sit in memory together)


class EvalCancelled(MatchupError):
    """Cancelled by the caller; nothing was stored."""


@dataclass
class EvalSettings:
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 128
    workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    limit: int | None = None
    channels_last: bool = False
    compile: bool = False             # torch.compile each model (worth it for long GPU runs)
    decoded_cache: bool = True        # read and fill the decoded-image cache ($MATCHUP_CACHE)
    decoded_cache_gb: float | None = None  # its budget (default: half the free disk)
    strict: bool = False              # an undecodable image fails the run (default: skipped, listed)


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


def cached_revision(checkpoint: str) -> str | None:
    """The revision in the local Hub cache, found without the network (for cache lookups)."""
    from huggingface_hub import try_to_load_from_cache
    cfg = hub.pretrained_cfg(checkpoint)
    if not cfg.hf_hub_id:
        return None
    for filename in hub._candidates(cfg):
        path = try_to_load_from_cache(cfg.hf_hub_id, filename, cache_dir=hub.cache_dir())
        if isinstance(path, str):
            return os.path.basename(os.path.dirname(path))
    return None


def lookup(store, checkpoint: str, dataset: EvalDataset, settings: EvalSettings) -> dict | None:
    """The stored result for this request when the weights in the local Hub cache were already
    evaluated this way; None otherwise. Loads no weights and touches no network. `dataset`
    must already carry the settings' limit (`dataset.limit(settings.limit)`)."""
    revision = cached_revision(checkpoint)
    if revision is None:
        return None
    key, _ = eval_key(checkpoint, revision, dataset, data_config(hub.pretrained_cfg(checkpoint)), settings)
    return store.eval_result(key)


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


# -- one pass over the images, feeding one or more models -----------------------------------------
class _ModelFailed(Exception):
    """One model of a pass failed; the others go on."""

    def __init__(self, entry: dict, error: MatchupError):
        super().__init__(str(error))
        self.entry, self.error = entry, error


def _run_pass(models: list[dict], batches, dataset: EvalDataset, settings: EvalSettings, device,
              progress: Callable | None, cancel: Callable | None, on_failure: Callable | None) -> None:
    """Every model of `models` sees every batch; fills each model's `metrics`. A model that fails
    (non-finite logits, out of memory at batch 1) is reported to `on_failure` and dropped, or
    raises when there is none."""
    import torch
    autocast = autocast_for(settings.precision, device)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    subset = dataset.class_subset
    subset_index = torch.tensor(subset, device=device) if subset else None
    targets_all = torch.tensor(dataset.subset_targets())
    chunk = [settings.batch_size]
    active = []
    for entry in models:
        model = entry["model"].to(device, memory_format=memory_format)
        entry["forward"] = torch.compile(model) if settings.compile else model
        entry["metrics"] = Metrics(dataset.num_classes, device)
        entry["seconds"] = 0.0
        entry["norm"] = (tuple(entry["config"]["mean"]), tuple(entry["config"]["std"]))
        entry["bad_from"] = torch.full((), -1, dtype=torch.int64, device=device)  # first non-finite batch
        active.append(entry)
    norms = {key: pixel_scale(*key, device) for key in {e["norm"] for e in active}}

    def fail(entry, error):
        if on_failure is None:
            raise error
        active.remove(entry)
        entry.pop("model", None), entry.pop("forward", None)
        on_failure(entry, error)

    def check_finite():
        """Reads each model's non-finite flag (a GPU sync, so not every batch on a GPU)."""
        for entry in list(active):
            first = int(entry["bad_from"])
            if first >= 0:
                advice = ("Try --precision fp32 (reduced precision can overflow), or check the weights file."
                          if settings.precision != "fp32" else
                          "This is at full precision: the weights file likely holds NaN or inf values; "
                          "delete its snapshot folder and fetch it again.")
                fail(entry, EvalError(
                    f"{entry['checkpoint']} produced non-finite logits (NaN or inf) on the batch from image "
                    f"{first} at {settings.precision}; nothing was stored. {advice}"))

    check_every = 32 if device.type == "cuda" else 1
    done, started, total, batch_no = 0, time.perf_counter(), len(dataset), 0
    with torch.inference_mode():
        for images, indices, ok in on_device(batches, device):
            if cancel is not None and cancel():
                raise EvalCancelled("Evaluation cancelled; nothing was stored.")
            all_ok = bool(ok.all())  # a CPU tensor: no device read
            keep = None if all_ok else ok.to(device)
            kept = indices if all_ok else [i for i, good in zip(indices, ok.tolist()) if good]
            targets = targets_all[kept].to(device, non_blocking=True)
            real = [dataset.real_labels[i] for i in kept] if dataset.real_labels else None
            first_image = torch.full((), done, dtype=torch.int64, device=device)
            normalised = {}
            for entry in list(active):
                if entry["norm"] not in normalised:
                    mean, std = norms[entry["norm"]]
                    # NCHW in: a channels_last model's first conv takes it as fast as NHWC, with
                    # identical outputs, and the batch is not copied into another layout
                    normalised[entry["norm"]] = images.float().sub_(mean).div_(std)
                model_started = time.perf_counter()
                try:
                    with autocast:
                        logits = _forward(entry["forward"], normalised[entry["norm"]], chunk)
                except Exception as e:  # noqa: BLE001 - out of memory at batch 1 is this model's alone
                    if not is_out_of_memory(e):
                        raise
                    fail(entry, EvalError(f"{entry['checkpoint']} ran out of memory at batch size 1 on "
                                          f"{device}; nothing was stored."))
                    continue
                logits = logits.float()[:, entry["offset"]:]
                if subset_index is not None:
                    logits = logits.index_select(1, subset_index)
                if keep is not None:
                    logits = logits[keep]
                entry["bad_from"] = torch.where((entry["bad_from"] < 0) & ~torch.isfinite(logits).all(),
                                                first_image, entry["bad_from"])
                entry["metrics"].update(logits, targets, real, subset)  # on the device: no wait
                entry["seconds"] += time.perf_counter() - model_started
            done += len(indices)
            batch_no += 1
            if batch_no % check_every == 0:
                check_finite()
            if progress is not None:
                elapsed = time.perf_counter() - started
                rate = done / elapsed if elapsed else 0.0
                progress({"done": done, "total": total, "images_per_sec": rate,
                          "eta_s": (total - done) / rate if rate else None,
                          "checkpoints": [e["checkpoint"] for e in models]})
            if not active:
                break
        check_finite()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - started
    for entry in active:
        entry["wall_seconds"] = wall
        entry["batch_size_used"] = chunk[0]
    models[:] = active


def _row(entry: dict, dataset: EvalDataset, settings: EvalSettings, device, shared_with: list[str],
         pixels: dict) -> dict:
    """The stored result of one finished model: metrics, provenance and how it was run."""
    import torch
    import timm
    metrics = entry["metrics"].finish()
    config = entry["config"]
    bad = pixels["bad"]
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
                    "hub_repo": entry["weights"].repo_id, "weights_file": entry["weights"].filename,
                    "batch_size": settings.batch_size, "batch_size_used": entry["batch_size_used"],
                    "workers": settings.workers, "channels_last": settings.channels_last,
                    "compiled": settings.compile, "model_seconds": entry["seconds"],
                    "shared_pass_with": shared_with,
                    "pixels_from": pixels["source"], "decoded_images": pixels["decoded"],
                    "skipped_images": len(bad) + len(dataset.unreadable),
                    "skipped_paths": ([f"{dataset.files[i]}: {why}" for i, why in sorted(bad.items())]
                                      + [f"{path}: {why}" for path, why in sorted(dataset.unreadable.items())])[:100],
                    **{k: v for k, v in metrics.items() if k not in ("n_images", "top1", "top5", "nll", "ece")},
                    "predictions": entry["metrics"].predicted()},
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    if not metrics["n_images"]:
        raise EvalError(f"{entry['checkpoint']}: none of the {len(dataset)} images could be decoded "
                        f"(first: {row['details']['skipped_paths'][:1]}); nothing was stored.")
    if not all(math.isfinite(row[k]) for k in ("top1", "top5", "nll", "ece")):
        raise EvalError(f"{entry['checkpoint']}: metrics are not finite; nothing stored.")
    return row


# -- a group of checkpoints that see the same pixels ------------------------------------------------
def prepare(checkpoint: str, dataset: EvalDataset) -> dict:
    """What is known before any download: config, and a head that cannot score the 1k classes
    refused from timm's config alone."""
    cfg = hub.pretrained_cfg(checkpoint)
    hub.check_on_hub(checkpoint, cfg)
    error = head_error(checkpoint, cfg.num_classes, cfg.label_offset or 0, dataset)
    if error is not None:
        raise error
    return {"checkpoint": checkpoint, "cfg": cfg, "config": data_config(cfg)}


def evaluate_group(entries: list[dict], dataset: EvalDataset, settings: EvalSettings,
                   on_row: Callable, on_error: Callable | None = None,
                   stored: Callable = lambda key: None, progress: Callable | None = None,
                   cancel: Callable | None = None, cache: decoded.DecodedCache | None = None,
                   fresh_pixels: bool = False) -> None:
    """Evaluate prepared entries that share pixel preprocessing (an entry with a `load()` that returns
    (model, weights, label offset, cache key, payload) brings its own model); `on_row(row, cached)` gets each
    result as soon as it is finished. The first pass decodes (filling `cache`) for up to
    SWEEP_GROUP models; the rest read the cache. Failures of one checkpoint go to
    `on_error(checkpoint, message)` and the others go on; without it they raise. `stored(key)`
    answers results already in a store (a download may bring an evaluated revision).
    `fresh_pixels` (--force): decode from the images, never from the cache (the entry is rebuilt)."""
    device = resolve_device(settings.device)
    config = entries[0]["config"]
    key = decoded.DecodedCache.key(dataset, config) if cache is not None else None
    made_from = decoded.provenance(dataset, config)
    entry_cache = cache.get(key, made_from) if cache is not None and not fresh_pixels else None
    pending = list(entries)

    def fail(entry, error):
        if on_error is None:
            raise error
        on_error(entry["checkpoint"], str(error))

    def load(entry) -> bool:
        try:
            if "load" in entry:  # another task's model (zero-shot): it knows its own key
                model, weights, offset, entry_key, payload = entry["load"]()
            else:
                model, weights = hub.load_model(entry["checkpoint"])
                offset = check_head(entry["checkpoint"], entry["cfg"], model, dataset)
                entry_key, payload = eval_key(entry["checkpoint"], weights.revision, dataset, entry["config"],
                                              settings)
        except MatchupError as e:
            fail(entry, e)
            return False
        found = stored(entry_key)
        if found is not None:
            on_row(found, True)
            return False
        entry.update(model=model, weights=weights, offset=offset, key=entry_key, payload=payload)
        return True

    while pending:
        if entry_cache is None:
            chunk = [e for e in pending[:SWEEP_GROUP] if load(e)]
            pending = pending[SWEEP_GROUP:]
            if not chunk:
                continue
            writer = cache.writer(key, len(dataset), config, made_from) if cache is not None else None
            bad: dict[int, str] = {}
            try:
                batches = decoding_batches(dataset, config, settings, device, writer, bad)
                _run_pass(chunk, batches, dataset, settings, device, progress, cancel,
                          (lambda e, err: fail(e, err)) if on_error else None)
                if writer is not None and writer.written == len(dataset):
                    if writer.commit(replace=fresh_pixels) is not None:
                        entry_cache = cache.get(key, made_from)
                elif writer is not None:  # every model of the pass failed before its end
                    writer.abort()
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            pixels = {"source": "decoded here", "decoded": len(dataset), "bad": bad}
        else:
            if settings.strict and entry_cache.bad:
                index = min(entry_cache.bad)
                raise strict_error(dataset, index, entry_cache.bad[index])
            entry = pending.pop(0)
            if not load(entry):
                continue
            chunk = [entry]
            try:
                _run_pass(chunk, cached_batches(entry_cache, settings, device), dataset, settings,
                          device, progress, cancel, (lambda e, err: fail(e, err)) if on_error else None)
            except decoded.CorruptEntry:  # a changed pixel file: drop it, decode this one again
                decoded.log.warning(decoded.corrupt_line(key))  # one line: never the worker's traceback
                cache.discard(key)
                entry_cache = None
                pending.insert(0, entry)
                continue
            pixels = {"source": "decoded cache", "decoded": 0, "bad": entry_cache.bad}
        names = [e["checkpoint"] for e in chunk]
        for entry in chunk:
            try:
                row = _row(entry, dataset, settings, device, [n for n in names if n != entry["checkpoint"]], pixels)
            except EvalError as e:
                fail(entry, e)
                continue
            finally:
                entry.pop("model", None), entry.pop("forward", None)
            on_row(row, False)


def open_cache(settings: EvalSettings) -> decoded.DecodedCache | None:
    """The decoded-image cache, or None: switched off (--decoded-cache-gb 0 neither reads nor
    writes it), or unusable ($MATCHUP_CACHE not a writable folder: said once, run without it)."""
    if not settings.decoded_cache or settings.decoded_cache_gb == 0:
        return None
    budget = int(settings.decoded_cache_gb * 1e9) if settings.decoded_cache_gb is not None else None
    try:
        return decoded.DecodedCache(budget_bytes=budget)
    except OSError as e:
        decoded.log.warning("The decoded-image cache at %s cannot be used (%s: %s); running without it.",
                            decoded.cache_root(), type(e).__name__, e.strerror or e)
        return None


def check_settings(settings: EvalSettings) -> None:
    from engine import options
    check_precision(settings.precision, resolve_device(settings.device))
    options.check("batch_size", settings.batch_size, optional=False)
    options.check("workers", settings.workers, optional=False)
    options.check("limit", settings.limit)
    options.check("decoded_cache_gb", settings.decoded_cache_gb)


def effective(settings: EvalSettings, dataset: EvalDataset) -> EvalSettings:
    """A limit of the whole set or more means every image: the same measurement, the same key."""
    from dataclasses import replace
    return replace(settings, limit=None) if settings.limit and settings.limit >= len(dataset) else settings


def evaluate(store, checkpoints: list[str], dataset: EvalDataset, settings: EvalSettings | None = None,
             force: bool = False, progress: Callable | None = None, cancel: Callable | None = None,
             on_error: Callable | None = None, on_result: Callable | None = None) -> list[dict]:
    """Evaluate each checkpoint (cached results come back at once); one row per checkpoint, each
    stored as soon as it is finished. With `on_error(checkpoint, message)` a failing checkpoint
    becomes {"checkpoint", "error"} and the others go on; without it the failure raises.
    `on_result(row)` hears of every result, cached or new, as it comes."""
    settings = effective(settings or EvalSettings(), dataset)
    check_settings(settings)
    dataset = dataset.limit(settings.limit)
    if settings.strict and dataset.unreadable:
        path, why = sorted(dataset.unreadable.items())[0]
        raise EvalError(f"{path} is {why}; --strict stops at the first file that is no image and stores "
                        "nothing. Remove it, or run without --strict: such files are then skipped, counted and listed.")
    results: dict[str, dict] = {}

    def failed(checkpoint, message):
        results[checkpoint] = {"checkpoint": checkpoint, "error": message}
        on_error(checkpoint, message)

    def done(row, cached):
        if not cached:
            store.put_eval(row)
            row = store.eval_result(row["cache_key"])
        results[row["checkpoint"]] = {**row, "cached": cached}
        if on_result is not None:
            on_result(results[row["checkpoint"]])

    groups: dict[tuple, list[dict]] = {}
    for checkpoint in checkpoints:
        try:
            entry = prepare(checkpoint, dataset)
        except MatchupError as e:
            if on_error is None:
                raise
            failed(checkpoint, str(e))
            continue
        found = None if force else lookup(store, checkpoint, dataset, settings)
        if found is not None:
            done(found, True)
            continue
        groups.setdefault(decoded.pixel_key(entry["config"]), []).append(entry)
    run_groups(groups, dataset, settings, done, failed if on_error else None,
               (lambda key: None) if force else store.eval_result, results, progress, cancel, force)
    return [results[c] for c in checkpoints]


def run_groups(groups: dict, dataset: EvalDataset, settings: EvalSettings, done: Callable, failed: Callable | None,
               stored: Callable, results: dict, progress: Callable | None, cancel: Callable | None,
               force: bool) -> None:
    """Each pixel group through `evaluate_group`, sharing one decoded-image cache (eval and
    zero-shot alike). With `failed`, an unexpected fault fails that group's unfinished checkpoints only."""
    cache = open_cache(settings) if groups else None
    for entries in groups.values():
        try:
            evaluate_group(entries, dataset, settings, done, failed, stored, progress, cancel, cache,
                           fresh_pixels=force)
        except (MatchupError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - with failed, one group's fault fails that group only
            if failed is None:
                raise
            for entry in entries:
                if entry["checkpoint"] not in results:
                    failed(entry["checkpoint"], f"Unexpected {type(e).__name__}: {e}. Nothing was stored for it.")
