"""What a job asks for: a spec (kind, checkpoint, data, device, options) checked and normalised,
turned into the engine's settings, labelled for people and keyed for the cache. Data folders must
lie under the server's data roots.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from engine import options
from engine.errors import MatchupError
from engine.store import Store, cache_key

KINDS = ("eval", "bench", "probe", "zeroshot")
DEVICES = ("cpu", "cuda", "auto")
# timm ids: `arch` or `arch.tag`, lower-case letters, digits and underscores (tags may hold dashes)
CHECKPOINT_ID = re.compile(r"^[a-z0-9_]{1,100}(\.[a-z0-9_-]{1,100})?$")
# OpenCLIP ids: open_clip:<model>.<tag> (model names hold capitals and dashes) or open_clip:hf-hub:ORG/REPO
IMAGE_TEXT_ID = re.compile(r"^open_clip:([A-Za-z0-9_-]{1,100}\.[A-Za-z0-9_-]{1,100}|hf-hub:[\w.-]{1,100}/[\w.-]{1,100})$")


class JobError(MatchupError):
    """A job cannot be queued as asked; the message says what to change."""


def data_roots() -> list[Path]:
    """MATCHUP_DATA_ROOTS: the folders evaluation sets may come from when asked from the
    browser (os.pathsep-separated, like PATH)."""
    raw = os.environ.get("MATCHUP_DATA_ROOTS", "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def within_roots(path: str | os.PathLike, roots: list[Path]) -> Path:
    """The resolved path when it lies inside one of `roots` (symlinks followed), else a JobError."""
    resolved = Path(path).expanduser().resolve()
    for root in roots:
        if resolved == root or root in resolved.parents:
            return resolved
    where = ", ".join(str(r) for r in roots) or "none are configured"
    raise JobError(f"{resolved} is outside the evaluation-set folders this app may read ({where}). "
                   "Pick a set under one of them, or have the admin add its folder to "
                   "MATCHUP_DATA_ROOTS.")


def evaluation_sets(roots: list[Path]) -> list[Path]:
    """Each root and the folders directly under it, for the browser to choose from."""
    found = []
    for root in roots:
        if root.is_dir():
            found.append(root)
            found += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return found


def available_devices() -> list[str]:
    """What a job may ask for here: cpu, each GPU torch sees, and auto (any worker)."""
    import torch
    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["cpu", *gpus, "auto"]


def check_checkpoint_id(checkpoint: str, kind: str = "eval") -> str:
    """Refuse anything that is not shaped like a timm id (an OpenCLIP id for zero-shot jobs)
    before any lookup or load."""
    if kind == "zeroshot":
        if not isinstance(checkpoint, str) or not IMAGE_TEXT_ID.match(checkpoint):
            raise JobError(f"{checkpoint!r} is not an image-text checkpoint id (open_clip:<model>.<tag>, e.g. "
                           "open_clip:ViT-B-32.laion2b_s34b_b79k).")
        return checkpoint
    if not isinstance(checkpoint, str) or not CHECKPOINT_ID.match(checkpoint):
        raise JobError(f"{checkpoint!r} is not a timm checkpoint id (arch or arch.tag: lower-case "
                       "letters, digits and underscores, e.g. resnet50.a1_in1k).")
    return checkpoint


def _text(spec: dict, key: str, default: str | None = None) -> str | None:
    """A text field of a spec (a path, a device name): text or absent, nothing else."""
    value = spec.get(key, default)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise JobError(f"{key} must be text, not {value!r}.")
    return value


def _flag(spec: dict, key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise JobError(f"{key} must be true or false, not {value!r}.")
    return value


def normalize(spec: dict, roots: list[Path] | None = None) -> dict:
    """A validated, complete job spec (defaults filled in). With `roots`, an evaluation set must
    lie inside them (requests from the browser). Every field is checked for its type as well as
    its value: a spec from a script or a crafted request gets a JobError, never a traceback."""
    from engine.catalog import hub
    if not isinstance(spec, dict):
        raise JobError(f"A job spec is a mapping of fields, not {type(spec).__name__}.")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise JobError(f"Unknown job kind {kind!r}; use one of {', '.join(KINDS)}.")
    checkpoint = check_checkpoint_id(spec.get("checkpoint"), kind)
    device = _text(spec, "device", "cpu")
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", str(device)):
        raise JobError(f"Unknown device {device!r}; use cpu, cuda, cuda:N or auto.")
    precision = _text(spec, "precision", "fp32")
    if precision not in ("fp32", "bf16", "fp16"):
        raise JobError(f"Unknown precision {precision!r}; use fp32, bf16 or fp16.")
    if device == "cpu" and precision == "fp16":
        raise JobError("fp16 is not supported on the CPU; use bf16 or fp32, or a cuda device.")
    out = {"kind": kind, "checkpoint": checkpoint, "device": device, "precision": precision,
           "channels_last": _flag(spec, "channels_last")}
    if kind == "eval":
        hub.pretrained_cfg(checkpoint)  # unknown ids: a clear error with close names
        data = _text(spec, "data")
        if not data:
            raise JobError("An evaluation job needs an evaluation set (data: a folder).")
        labels = _text(spec, "labels")
        if roots is not None:
            data = str(within_roots(data, roots))
            if labels:
                within_roots(labels, roots)
        elif not str(data).startswith("hfds/"):
            data = str(Path(data).expanduser().resolve())
        batch_size = options.check("batch_size", spec.get("batch_size", 64), optional=False)
        limit = options.check("limit", spec.get("limit"))
        file_rule = _text(spec, "file_rule", "matchup")
        if file_rule not in ("matchup", "timm"):
            raise JobError(f"Unknown file rule {file_rule!r}; use matchup or timm.")
        variant = _text(spec, "variant", "imagenet")
        from engine.measure.datasets import VARIANTS
        if variant not in VARIANTS:
            raise JobError(f"Unknown variant {variant!r}; use one of {', '.join(VARIANTS)}.")
        out.update(data=data, labels=labels, variant=variant,
                   batch_size=batch_size, limit=int(limit) if limit else None,
                   workers=options.check("workers", spec.get("workers")), file_rule=file_rule,
                   strict=_flag(spec, "strict"))
    elif kind == "zeroshot":
        from engine.measure import zeroshot
        zeroshot.spec_of(checkpoint)  # unknown model or tag: a clear error with close names
        data, classnames, templates = _text(spec, "data"), _text(spec, "classnames"), _text(spec, "templates")
        if not data:
            raise JobError("A zero-shot job needs a class folder (data: a folder with one sub-folder per class).")
        resolve = (lambda p: str(within_roots(p, roots))) if roots is not None else (
            lambda p: str(Path(p).expanduser().resolve()))
        data = resolve(data)
        classnames = resolve(classnames) if classnames else None
        if templates and templates not in zeroshot.template_sets():
            templates = resolve(templates)
        file_rule = _text(spec, "file_rule", "matchup")
        if file_rule not in ("matchup", "timm"):
            raise JobError(f"Unknown file rule {file_rule!r}; use matchup or timm.")
        limit = options.check("limit", spec.get("limit"))
        out.update(data=data, classnames=classnames, templates=templates or None,
                   batch_size=options.check("batch_size", spec.get("batch_size", 64), optional=False),
                   limit=int(limit) if limit else None, workers=options.check("workers", spec.get("workers")),
                   file_rule=file_rule, strict=_flag(spec, "strict"))
    elif kind == "probe":
        hub.pretrained_cfg(checkpoint)
        data, val = _text(spec, "data"), _text(spec, "val")
        if not data:
            raise JobError("A probe job needs a labelled folder (data: a folder with one sub-folder per class).")
        data = str(within_roots(data, roots)) if roots is not None else str(Path(data).expanduser().resolve())
        if val:
            val = str(within_roots(val, roots)) if roots is not None else str(Path(val).expanduser().resolve())
        file_rule = _text(spec, "file_rule", "matchup")
        if file_rule not in ("matchup", "timm"):
            raise JobError(f"Unknown file rule {file_rule!r}; use matchup or timm.")
        out.update(data=data, val=val or None, folds=options.check("folds", spec.get("folds", 5), optional=False),
                   shots=options.check("shots", spec.get("shots")),
                   seed=options.check("seed", spec.get("seed", 0), optional=False),
                   batch_size=options.check("batch_size", spec.get("batch_size", 64), optional=False),
                   workers=options.check("workers", spec.get("workers")), file_rule=file_rule,
                   strict=_flag(spec, "strict"))
    else:
        from engine.measure import flops
        img_size = options.check("img_size", spec.get("img_size"))
        flops.checkpoint_target(checkpoint, img_size)  # unknown arch: clear error
        batch_size = spec.get("batch_size", "auto")
        out.update(batch_size=batch_size if batch_size == "auto" else options.check("batch_size", batch_size),
                   img_size=img_size, compile=_flag(spec, "compile"))
    return out


def open_dataset(spec: dict):
    from engine.measure import datasets
    return datasets.open_dataset(spec["data"], labels=spec.get("labels"), variant=spec["variant"],
                                 file_rule=spec.get("file_rule", "matchup"))


def zeroshot_folder(spec: dict):
    from engine.measure import zeroshot
    return zeroshot.open_folder(spec["data"], classnames=spec.get("classnames"), file_rule=spec.get("file_rule", "matchup"))


def eval_settings(spec: dict, device: str):
    from engine.measure.evaluate import EvalSettings
    extra = {"workers": spec["workers"]} if spec.get("workers") is not None else {}
    return EvalSettings(device=device, precision=spec["precision"], batch_size=spec["batch_size"],
                        limit=spec["limit"], channels_last=spec["channels_last"],
                        strict=spec.get("strict", False), **extra)


def probe_folders(spec: dict):
    """(folder, validation folder or None) of a probe job, each read once."""
    from engine.measure import probe
    data = probe.open_folder(spec["data"], spec.get("file_rule", "matchup"))
    val = probe.open_folder(spec["val"], spec.get("file_rule", "matchup")) if spec.get("val") else None
    return data, val


def probe_settings(spec: dict, device: str):
    from engine.measure import probe
    extra = {"workers": spec["workers"]} if spec.get("workers") is not None else {}
    return probe.ProbeSettings(folds=spec["folds"], shots=spec.get("shots"), seed=spec.get("seed", 0),
                               device=device, precision=spec["precision"], batch_size=spec["batch_size"],
                               strict=spec.get("strict", False), **extra)


def bench_spec(spec: dict, device: str):
    from engine.measure.profile import BenchSpec
    return BenchSpec(model=spec["checkpoint"], device=device, precision=spec["precision"],
                     batch_size=spec["batch_size"], channels_last=spec["channels_last"],
                     compile=spec["compile"], img_size=spec["img_size"])


def sweep_plan(store: Store, checkpoints: list[str], spec: dict, roots: list[Path] | None = None):
    """The plan a sweep of `checkpoints` queued as evaluations with `spec` follows (the Run page
    shows it before anything is queued); timed for the GPU when the jobs ask for one and it is here."""
    import torch
    from engine.measure import sweep
    if not checkpoints:
        raise JobError("No checkpoints to sweep: widen the filters.")
    spec = normalize({**spec, "kind": "eval", "checkpoint": checkpoints[0]}, roots)
    gpu = spec["device"] != "cpu" and torch.cuda.is_available()
    index = int(spec["device"].split(":")[1]) if ":" in spec["device"] else 0
    return sweep.plan(store, checkpoints, open_dataset(spec), eval_settings(spec, "cpu"),
                      estimate_for=torch.cuda.get_device_name(index) if gpu else None)


def label(spec: dict) -> str:
    if spec["kind"] == "probe":
        how = f"{spec['shots']} shots" if spec.get("shots") else ("on val" if spec.get("val") else f"{spec['folds']} folds")
        return f"probe {spec['checkpoint']} on {Path(spec['data']).name} ({how}, {spec['device']}, {spec['precision']})"
    if spec["kind"] == "zeroshot":
        limit = f", {spec['limit']} images" if spec.get("limit") else ""
        return f"zero-shot {spec['checkpoint']} on {Path(spec['data']).name}{limit} ({spec['device']}, {spec['precision']})"
    if spec["kind"] == "eval":
        limit = f", {spec['limit']} images" if spec.get("limit") else ""
        return f"eval {spec['checkpoint']} on {Path(spec['data']).name}{limit} ({spec['device']}, {spec['precision']})"
    return f"bench {spec['checkpoint']} ({spec['device']}, {spec['precision']}, batch {spec['batch_size']})"


def request_key(spec: dict) -> tuple[str, dict | None]:
    """The key that makes two requests the same job; for an evaluation it includes the
    evaluation set's fingerprint, so a changed folder is a new job. Also returns the opened
    evaluation set (a probe: its folders; None for a benchmark), so it is read once."""
    if spec["kind"] == "eval":
        dataset = open_dataset(spec)
        if spec["limit"] and spec["limit"] >= len(dataset):
            spec["limit"] = None  # every image either way: one measurement, one job, one row
        payload = {**spec, "data_fingerprint": dataset.fingerprint}
        return cache_key(payload), dataset
    if spec["kind"] == "zeroshot":
        dataset = zeroshot_folder(spec)
        if spec["limit"] and spec["limit"] >= len(dataset):
            spec["limit"] = None
        return cache_key({**spec, "data_fingerprint": dataset.fingerprint}), dataset
    if spec["kind"] == "probe":
        data, val = probe_folders(spec)
        return cache_key({**spec, "data_fingerprint": data.fingerprint,
                          "val_fingerprint": val.fingerprint if val else None}), (data, val)
    return cache_key(spec), None
