"""Linear probe of frozen features on the user's own labelled folder: transfer, at any budget.

A folder with one sub-folder per class (any names). Each checkpoint sees the images through its
own eval preprocessing (the same transform and decoding as `eval`); its features are the
pre-logits output (timm's forward_features then forward_head(pre_logits=True)), extracted once
and cached per (checkpoint, revision, dataset fingerprint, preprocessing) under $MATCHUP_CACHE.
The classifier is scikit-learn's multinomial logistic regression on standardised features, its
L2 strength chosen by inner cross-validation on each training fold (LogisticRegressionCV over a
small log grid). Reported per protocol (k-fold, a given validation folder, or K shots per class
repeated over seeds): accuracy, balanced accuracy, macro-F1 and NLL, each as the mean with a
95% interval over folds or repeats.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from engine.catalog import hub
from engine.errors import MatchupError
from engine.intervals import holding, percentile_interval
from engine.measure import cache_mac, datasets, decoded, eval_batches, evaluate
from engine.store import cache_key

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # inverse L2 strength, chosen per training fold
INNER_FOLDS = 3
SHOT_REPEATS = 5
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "nll")


class ProbeError(MatchupError):
    """The probe cannot be run as asked; the message says what to change."""


# -- the user's folder --------------------------------------------------------------------------
@dataclass
class ProbeData:
    name: str
    root: Path
    files: list[Path]
    labels: list[int]
    classes: list[str]
    fingerprint: str
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> why it is no image (a pipe, a dead link)

    def __len__(self) -> int:
        return len(self.files)

    def as_eval_dataset(self) -> datasets.EvalDataset:
        """The same files as an evaluation set, so decoding is eval's own (and its decoded cache)."""
        return datasets.EvalDataset(id=f"probe:{self.root}", variant="probe", files=self.files,
                                    targets=self.labels, label_map=f"folders:{','.join(self.classes)}",
                                    fingerprint=self.fingerprint, unreadable=self.unreadable)


def open_folder(path: str | Path, file_rule: str = "matchup") -> ProbeData:
    """Class sub-folders (hidden ones ignored), images under each by the eval file rule."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ProbeError(f"{root} is not a folder. Give a folder with one sub-folder of images per class.")
    if file_rule not in datasets.FILE_RULES:
        raise ProbeError(f"Unknown file rule {file_rule!r}; use one of {', '.join(datasets.FILE_RULES)}.")
    classes, files, labels, empty, unreadable = [], [], [], [], {}
    folders = datasets.class_folders(root)
    apart = datasets.walked_apart(root, folders)
    for folder in folders:
        images = datasets.images_under(folder, file_rule, seen=apart - {os.path.realpath(folder)},
                                       skipped=unreadable)
        if not images:
            empty.append(folder.name)
            continue
        labels += [len(classes)] * len(images)
        files += images
        classes.append(folder.name)
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise ProbeError(f"A linear probe needs at least two classes (sub-folders with images) in {root}; "
                         f"found {found}{' (empty: ' + ', '.join(empty) + ')' if empty else ''}.")
    fingerprint = datasets.fingerprint_of(root, files, json.dumps({"classes": classes, "rule": file_rule}))
    return ProbeData(root.name, root, files, labels, classes, fingerprint, unreadable)


# -- features -----------------------------------------------------------------------------------
@dataclass
class ProbeSettings:
    folds: int = 5
    shots: int | None = None
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 64
    workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    strict: bool = False
    decoded_cache: bool = True  # read and fill eval's decoded-image cache ($MATCHUP_CACHE)


@dataclass
class Features:
    checkpoint: str
    revision: str
    features: np.ndarray       # (n kept images, dim) float32
    kept: np.ndarray           # indices into the folder's files
    skipped: dict[int, str]    # index -> why it could not be decoded
    source: str                # "pre_logits" or "pooled" (a checkpoint without a head)
    config: dict
    seconds: float
    from_cache: bool


def cache_root() -> Path:
    return decoded.cache_root()  # one $MATCHUP_CACHE for decoded pixels and features


def features_key(checkpoint: str, revision: str, data: ProbeData, config: dict, precision: str) -> str:
    payload = {"checkpoint": checkpoint, "revision": revision, "dataset": data.fingerprint,
               "preprocessing": {k: config[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode",
                                                        "mean", "std")}, "precision": precision,
               "features": "pre_logits"}
    return cache_key(payload)


FEATURES_FORMAT = 2  # a feature-cache entry of another layout is a miss (1: unkeyed SHA-256 of the arrays)


def _cache_path(key: str) -> Path:
    return cache_root() / "features" / f"{key}.npz"


def _pooled(model, images):
    """Pre-logits features; a model without a classifier head gives its pooled features."""
    return model.forward_head(model.forward_features(images), pre_logits=True)


def extract(checkpoint: str, data: ProbeData, settings: ProbeSettings,
            progress: Callable[[int, int], None] | None = None) -> Features:
    """The checkpoint's features of every decodable image, from the cache when they are there."""
    import torch

    from engine.measure.profile import resolve_device
    cfg = hub.pretrained_cfg(checkpoint)
    config = evaluate.data_config(cfg)
    revision = evaluate.cached_revision(checkpoint)
    if revision is not None:
        key = features_key(checkpoint, revision, data, config, settings.precision)
        found = _read_cache(key, checkpoint, revision, config,
                            features_provenance(checkpoint, revision, data, config, settings.precision))
        if found is not None:
            return found
    started = time.perf_counter()
    model, weights = hub.load_model(checkpoint)
    key = features_key(checkpoint, weights.revision, data, config, settings.precision)
    made_from = features_provenance(checkpoint, weights.revision, data, config, settings.precision)
    found = _read_cache(key, checkpoint, weights.revision, config, made_from)
    if found is not None:
        return found
    device = resolve_device(settings.device)
    source = "pre_logits" if getattr(model, "num_classes", 0) else "pooled"
    model = model.eval().to(device)
    mean, std = eval_batches.pixel_scale(config["mean"], config["std"], device)
    eval_settings = evaluate.EvalSettings(device=settings.device, precision=settings.precision,
                                          batch_size=settings.batch_size, workers=settings.workers,
                                          strict=settings.strict, decoded_cache=settings.decoded_cache)
    dataset = data.as_eval_dataset()
    # eval's decoded-image cache: checkpoints that share a preprocessing decode the folder once
    cache = evaluate.open_cache(eval_settings)
    pixels_key = decoded.DecodedCache.key(dataset, config) if cache is not None else None
    pixels_from = decoded.provenance(dataset, config)
    entry = cache.get(pixels_key, pixels_from) if cache is not None else None
    autocast = eval_batches.autocast_for(settings.precision, device)
    while True:
        writer = None
        bad: dict[int, str] = {}
        parts, kept, done = [], [], 0
        try:
            if entry is not None:
                if settings.strict and entry.bad:
                    first = min(entry.bad)
                    raise eval_batches.strict_error(dataset, first, entry.bad[first])
                bad.update(entry.bad)
                batches = eval_batches.cached_batches(entry, eval_settings, device)
            else:
                writer = cache.writer(pixels_key, len(dataset), config, pixels_from) if cache is not None else None
                batches = eval_batches.decoding_batches(dataset, config, eval_settings, device, writer, bad)
            with torch.inference_mode():
                for images, indices, ok in eval_batches.on_device(batches, device):
                    images = (images.to(device).float() - mean) / std
                    with autocast:
                        out = _pooled(model, images).float()
                    keep = ok.to(out.device)
                    parts.append(out[keep].cpu())
                    kept += [i for i, good in zip(indices, ok.tolist(), strict=True) if good]
                    done += len(indices)
                    if progress is not None:
                        progress(done, len(dataset))
            if writer is not None and writer.written == len(dataset):
                writer.commit()
            elif writer is not None:
                writer.abort()
            writer = None
            break
        except decoded.CorruptEntry:  # a changed pixel file: drop it and decode the folder again
            decoded.log.warning(decoded.corrupt_line(pixels_key))  # one line: never the worker's traceback
            cache.discard(pixels_key)
            entry = None
        except BaseException as e:
            if writer is not None:
                writer.abort()
            if isinstance(e, evaluate.EvalError):  # --strict: the first undecodable file
                raise ProbeError(str(e)) from None
            raise
    features = torch.cat(parts).numpy() if parts else np.zeros((0, 0), np.float32)
    if not len(features):
        raise ProbeError(f"None of the {len(data)} images in {data.root} could be decoded "
                         f"(first: {next(iter(bad.values()), '?')}); nothing was stored.")
    if not np.isfinite(features).all():
        rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
        raise ProbeError(f"{checkpoint} produced non-finite features (NaN or inf) for {len(rows)} images, the "
                         f"first {data.files[kept[rows[0]]]}; nothing was stored. "
                         + ("Try --precision fp32." if settings.precision != "fp32" else
                            "At full precision this points at the weights: delete its snapshot and fetch it again."))
    result = Features(checkpoint, weights.revision, features.astype(np.float32), np.asarray(kept), bad, source,
                      config, time.perf_counter() - started, False)
    _write_cache(key, result, made_from)
    return result


def features_provenance(checkpoint: str, revision: str, data: ProbeData, config: dict, precision: str) -> dict:
    """What a feature-cache entry must have been made from to be read for this request."""
    made_from = {"checkpoint": checkpoint, "revision": revision, "dataset_fingerprint": data.fingerprint,
                 "files_sha256": hashlib.sha256("\n".join(str(f) for f in data.files).encode()).hexdigest(),
                 "n_images": len(data), "precision": precision,
                 "preprocessing": {k: config[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode",
                                                          "mean", "std")}}
    return json.loads(json.dumps(made_from))  # as the cache file holds it (tuples become lists)


def _content(meta: dict, features: np.ndarray, kept: np.ndarray) -> tuple[bytes, ...]:
    """What an entry's keyed checksum covers: all its metadata (provenance, skipped images, feature
    source, seconds: each goes into a stored number) and its arrays with their dtypes and shapes."""
    body = json.dumps({k: v for k, v in meta.items() if k != "mac"}, sort_keys=True).encode()
    arrays = [np.ascontiguousarray(features), np.ascontiguousarray(kept)]
    layout = json.dumps([[str(a.dtype), list(a.shape)] for a in arrays]).encode()
    return body, layout, *(a.tobytes() for a in arrays)


def _write_cache(key: str, features: Features, made_from: dict) -> None:
    """Features with their provenance and a hash of their content; a cache that cannot be
    written is said once and skipped (the probe's result stands)."""
    path = _cache_path(key)
    partial = path.with_suffix(".partial.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FEATURES_FORMAT, "provenance": made_from,
                "skipped": {str(k): v for k, v in features.skipped.items()},
                "source": features.source, "seconds": features.seconds}
        meta["mac"] = cache_mac.mac(*_content(meta, features.features, features.kept))
        np.savez(partial, features=features.features, kept=features.kept, meta=json.dumps(meta))
        os.replace(partial, path)  # never a half-written cache entry
    except OSError as e:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass  # no folder to hold it either
        decoded.log.warning("probe feature cache not written (%s: %s); the result stands.", type(e).__name__, e)


def _read_cache(key: str, checkpoint: str, revision: str, config: dict, made_from: dict) -> Features | None:
    """The cached features when they were made from `made_from` and their content still matches
    its hash and is finite; anything else is a miss (said once) and the entry is dropped."""
    path = _cache_path(key)
    try:
        if not path.is_file():
            return None
    except OSError:  # $MATCHUP_CACHE is not a folder: no entry
        return None
    problem, found = None, None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            features, kept = stored["features"], stored["kept"]
        if not isinstance(meta, dict) or meta.get("format") != FEATURES_FORMAT:
            problem = "it is from another version"
        elif not cache_mac.verify(meta.get("mac"), *_content(meta, features, kept)):
            problem = "its content does not match its checksum (changed, or not written with this user's key)"
        elif meta.get("provenance") != made_from:
            problem = "it was made from other images, weights or preprocessing"
        elif features.dtype != np.float32 or kept.dtype.kind not in "iu" or features.ndim != 2 or kept.ndim != 1:
            problem = "its arrays are not features and image indices"
        elif not np.isfinite(features).all():
            problem = "it holds non-finite features"
        elif len(features) != len(kept) or len(np.unique(kept)) != len(kept) or (len(kept) and (
                kept.min() < 0 or kept.max() >= made_from["n_images"])):
            problem = "its image indices are not valid"
        else:
            found = Features(checkpoint, revision, features, kept, {int(k): str(v) for k, v in meta["skipped"].items()},
                             str(meta["source"]), config, float(meta["seconds"]), True)
    except Exception as e:  # noqa: BLE001 - any unreadable entry (a damaged zip, JSON of any shape) is a miss
        problem = f"it cannot be read ({type(e).__name__})"
    if problem is not None:
        decoded.log.warning("probe feature cache entry %s is not used: %s; features are extracted again.",
                            path.name, problem)
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return None
    return found


# -- the classifier -------------------------------------------------------------------------------
def _classifier(train_labels: np.ndarray, seed: int):
    """Standardise, then multinomial logistic regression with C chosen by inner stratified CV
    (as many inner folds as the smallest class allows, up to 3; a fixed C=1 below 2)."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    smallest = int(np.bincount(train_labels).min()) if len(train_labels) else 0
    inner = min(INNER_FOLDS, smallest)
    if inner >= 2:
        import inspect
        newer = {k: v for k, v in (("l1_ratios", (0.0,)), ("use_legacy_attributes", False))
                 if k in inspect.signature(LogisticRegressionCV).parameters}  # scikit-learn >= 1.8's spelling
        model = LogisticRegressionCV(Cs=list(C_GRID), cv=StratifiedKFold(inner, shuffle=True, random_state=seed),
                                     scoring="neg_log_loss", max_iter=2000, **newer)
    else:
        model = LogisticRegression(C=1.0, max_iter=2000)
    return make_pipeline(StandardScaler(), model)


def _probabilities(model, features: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities over all classes (a class absent from training gets 0)."""
    proba = np.zeros((len(features), n_classes))
    proba[:, model.classes_] = model.predict_proba(features)
    return proba


def _scores(model, features: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    return _metrics(_probabilities(model, features, n_classes), labels, n_classes)


def _metrics(proba: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss
    predicted = proba.argmax(axis=1)
    return {"accuracy": 100 * accuracy_score(labels, predicted),
            "balanced_accuracy": 100 * balanced_accuracy_score(labels, predicted),
            "macro_f1": 100 * f1_score(labels, predicted, average="macro", labels=sorted(set(labels))),
            "nll": float(log_loss(labels, np.clip(proba, 1e-15, 1), labels=list(range(n_classes))))}


def _chosen_c(model) -> float:
    last = model[-1]
    chosen = getattr(last, "C_", None)
    return float(np.atleast_1d(last.C if chosen is None else chosen)[0])


def _interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and a 95% t-interval over folds or repeats."""
    from scipy import stats
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return (mean, *holding(mean - half, mean + half, mean))


def check_folds(labels: np.ndarray, classes: list[str], folds: int) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    if folds < 2:
        raise ProbeError(f"--folds must be at least 2, not {folds}.")
    short = [f"{classes[i]!r} ({n})" for i, n in enumerate(counts) if n < folds]
    if short:
        raise ProbeError(f"{folds}-fold cross-validation needs at least {folds} images in every class; "
                         f"{', '.join(short)} have fewer. Add images, or pass --folds {max(2, int(counts.min()))}"
                         f" (the smallest class's count)." if counts.min() >= 2 else
                         f"{folds}-fold cross-validation needs at least {folds} images in every class; "
                         f"{', '.join(short)} have fewer, and a class needs at least 2. Add images or "
                         "remove that class's folder.")


def fit(features: np.ndarray, labels: np.ndarray, classes: list[str], folds: int = 5, seed: int = 0,
        shots: int | None = None, val: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The probe's metrics under one protocol: k-fold (default), K shots per class repeated over
    SHOT_REPEATS seeds (tested on the rest), or train on everything and test on `val`."""
    from sklearn.model_selection import StratifiedKFold
    labels = np.asarray(labels)
    n_classes = len(classes)
    runs = []
    if val is not None:
        protocol = "val"
        model = _classifier(labels, seed).fit(features, labels)
        proba = _probabilities(model, val[0], n_classes)  # once: the bootstrap resamples its rows
        runs.append({**_metrics(proba, val[1], n_classes), "C": _chosen_c(model)})
        rng = np.random.default_rng(seed)  # the interval: bootstrap over the validation images
        boot = []
        for _ in range(200):
            pick = rng.integers(0, len(val[1]), len(val[1]))
            boot.append(_metrics(proba[pick], val[1][pick], n_classes))
        spread = {m: percentile_interval([b[m] for b in boot], runs[0][m]) for m in METRICS}
    elif shots:
        protocol = "shots"
        counts = np.bincount(labels, minlength=n_classes)
        short = [f"{classes[i]!r} ({n})" for i, n in enumerate(counts) if n <= shots]
        if short:
            raise ProbeError(f"--shots {shots} keeps {shots} training images per class and tests on the rest; "
                             f"{', '.join(short)} have no image left to test. Use fewer shots or add images.")
        for repeat in range(SHOT_REPEATS):
            rng = np.random.default_rng(seed + repeat)
            train = np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False)
                                    for c in range(n_classes)])
            test = np.setdiff1d(np.arange(len(labels)), train)
            model = _classifier(labels[train], seed).fit(features[train], labels[train])
            runs.append({**_scores(model, features[test], labels[test], n_classes), "C": _chosen_c(model)})
        spread = None  # a t-interval over the repeats, kept inside each metric's range below
    else:
        protocol = "kfold"
        check_folds(labels, classes, folds)
        pooled = np.zeros((len(labels), n_classes))  # each image's out-of-fold probabilities
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
            model = _classifier(labels[train], seed).fit(features[train], labels[train])
            pooled[test] = _probabilities(model, features[test], n_classes)
            runs.append({**_metrics(pooled[test], labels[test], n_classes), "C": _chosen_c(model)})
        # the interval: a bootstrap over the images' out-of-fold predictions. A t-interval over a
        # handful of folds means little (2 folds once gave "55.56 [-85.62, 196.74]").
        rng = np.random.default_rng(seed)
        boot = []
        for _ in range(200):
            pick = rng.integers(0, len(labels), len(labels))
            boot.append(_metrics(pooled[pick], labels[pick], n_classes))
        spread = {m: percentile_interval([b[m] for b in boot], float(np.mean([r[m] for r in runs])))
                  for m in METRICS}
    result = {"protocol": protocol, "folds": folds if protocol == "kfold" else None,
              "shots": shots if protocol == "shots" else None,
              "repeats": SHOT_REPEATS if protocol == "shots" else None, "seed": seed, "runs": runs}
    for metric in METRICS:
        mean, low, high = _interval([r[metric] for r in runs])
        if spread is not None:
            low, high = spread[metric]
        ceiling = math.inf if metric == "nll" else 100.0  # never a bound outside the metric's range
        result[metric] = {"mean": mean, "low": max(low, 0.0) if math.isfinite(low) else low,
                          "high": min(high, ceiling) if math.isfinite(high) else high}
    return result


# -- one request, with its cache key --------------------------------------------------------------
def library_versions() -> dict:
    import sklearn
    import timm
    import torch
    return {"torch": torch.__version__, "timm": timm.__version__, "sklearn": sklearn.__version__}


def probe_key(checkpoint: str, revision: str, data: ProbeData, config: dict, settings: ProbeSettings,
              val: ProbeData | None) -> str:
    payload = {"checkpoint": checkpoint, "revision": revision, "dataset": data.fingerprint,
               "val": val.fingerprint if val else None,
               "preprocessing": features_key(checkpoint, revision, data, config, settings.precision),
               "protocol": {"folds": settings.folds if not (settings.shots or val) else None,
                            "shots": settings.shots if not val else None, "seed": settings.seed,
                            "grid": list(C_GRID), "inner": INNER_FOLDS},
               "versions": library_versions()}
    return cache_key(payload)


def lookup(store, checkpoint: str, data: ProbeData, settings: ProbeSettings, val: ProbeData | None = None) -> dict | None:
    """The stored result for this request, when its weights are already cached (no download)."""
    revision = evaluate.cached_revision(checkpoint)
    if revision is None:
        return None
    config = evaluate.data_config(hub.pretrained_cfg(checkpoint))
    return store.probe_result(probe_key(checkpoint, revision, data, config, settings, val))


def probe_many(store, checkpoints: list[str], data: ProbeData, settings: ProbeSettings,
               val: ProbeData | None = None, on_result: Callable[[str, dict | None, str | None, bool], None] | None = None) -> list[dict]:
    """`sweep --probe`: each checkpoint in turn; a stored result is skipped (so a rerun resumes),
    a failure is recorded and the others go on. Returns one status row per checkpoint."""
    report = []
    for checkpoint in checkpoints:
        try:
            found = lookup(store, checkpoint, data, settings, val)
            row, cached = (found, True) if found is not None else probe_one(store, checkpoint, data, settings, val)
            status = {"checkpoint": checkpoint, "status": "cached" if cached else "done",
                      "accuracy": row["accuracy"], "n_images": row["n_images"], "error": None}
        except MatchupError as e:
            row, cached = None, False
            status = {"checkpoint": checkpoint, "status": "failed", "accuracy": None, "n_images": None, "error": str(e)}
        report.append(status)
        if on_result is not None:
            on_result(checkpoint, row, status["error"], cached)
    return report


def probe_one(store, checkpoint: str, data: ProbeData, settings: ProbeSettings, val: ProbeData | None = None,
              progress: Callable[[int, int], None] | None = None) -> tuple[dict, bool]:
    """(the stored row, whether it was already there) for one checkpoint; the row is written in
    one transaction once everything is computed."""
    if val is not None and val.classes != data.classes:
        only_train = sorted(set(data.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(data.classes))
        raise ProbeError(f"--val {val.root} has other classes than {data.root}: only in training "
                         f"{only_train or 'none'}, only in validation {only_val or 'none'}. Both folders need "
                         "the same class sub-folders.")
    features = extract(checkpoint, data, settings, progress)
    key = probe_key(checkpoint, features.revision, data, features.config, settings, val)
    found = store.probe_result(key)
    if found is not None:
        return found, True
    labels = np.asarray(data.labels)[features.kept]
    val_pair = None
    if val is not None:
        val_features = extract(checkpoint, val, settings)
        val_pair = (val_features.features, np.asarray(val.labels)[val_features.kept])
    result = fit(features.features, labels, data.classes, settings.folds, settings.seed, settings.shots, val_pair)
    versions = library_versions()
    row = {"cache_key": key, "checkpoint": checkpoint, "hub_revision": features.revision,
           "dataset_name": data.name, "dataset_root": str(data.root), "dataset_fingerprint": data.fingerprint,
           "val_fingerprint": val.fingerprint if val else None, "n_images": int(len(labels)),
           "n_classes": len(data.classes), "classes": json.dumps(data.classes), "protocol": result["protocol"],
           "folds": result["folds"], "shots": result["shots"], "seed": settings.seed,
           "feature_dim": int(features.features.shape[1]), "feature_source": features.source,
           "img_size": int(features.config["input_size"][-1]),
           **{f"{m}{suffix}": result[m][part] for m in METRICS
              for suffix, part in (("", "mean"), ("_low", "low"), ("_high", "high"))},
           "extract_seconds": features.seconds, "skipped_images": len(features.skipped) + len(data.unreadable),
           "torch_version": versions["torch"], "timm_version": versions["timm"], "sklearn_version": versions["sklearn"],
           "details": {"runs": result["runs"], "settings": asdict(settings), "features_cached": features.from_cache,
                       "skipped_paths": ([f"{data.files[i]}: {why}" for i, why in sorted(features.skipped.items())]
                                         + [f"{p}: {why}" for p, why in sorted(data.unreadable.items())])[:100]},
           "created_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    store.put_probe(row)
    return row, False
