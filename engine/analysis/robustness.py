"""Robustness at matched accuracy: effective robustness (Taori et al. 2020) per class and data scale.

Out-of-distribution accuracy rises with ImageNet accuracy along a line once both are put on the
logit scale. A checkpoint is only more robust than another if it lies above that line: its
effective robustness is its OOD accuracy minus the accuracy the line (fitted on checkpoints
trained on ImageNet-1k alone) predicts at its ImageNet accuracy, in accuracy points.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from engine.analysis import budget_match, points_table
from engine.catalog.taxonomy import DATA_SCALES
from engine.intervals import percentile_interval

# Each OOD set and the in-distribution accuracy it is read against. ImageNet-A and -R cover 200
# classes: timm publishes both on those classes, the OOD set and ImageNet's own validation images
# of the same classes ("-clean"), which is the matching x axis.
OOD_SETS = {"imagenet-v2": "imagenet", "sketch": "imagenet", "imagenet-a": "imagenet-a-clean",
            "imagenet-r": "imagenet-r-clean"}
OOD_NAMES = {"imagenet-v2": "ImageNet-V2", "sketch": "ImageNet-Sketch", "imagenet-a": "ImageNet-A (200 classes)",
             "imagenet-r": "ImageNet-R (200 classes)"}
CONSTRUCTION_NOTES = {
    "imagenet-a": "ImageNet-A kept the natural images that a ResNet-50 classified wrong (Hendrycks et al. "
                  "2021), so ConvNets start behind on it by construction: read its ConvNet-vs-ViT gap with that "
                  "in mind.",
    "imagenet-r": "ImageNet-R (renditions: art, cartoons, sketches) was not filtered by any model, but its 200 "
                  "classes and styles reward shape over texture cues.",
    "imagenet-v2": "ImageNet-V2 repeats ImageNet's collection process, so it measures the drop on new images "
                   "from the same distribution more than robustness to a shift.",
    "sketch": "ImageNet-Sketch holds black-and-white sketches of ImageNet's 1,000 classes.",
}
# The image-text zoo: OpenCLIP's zero-shot results on ImageNet's OOD sets against its zero-shot
# ImageNet-1k accuracy. Where the classifiers' zoo has the same two axes (ImageNet-V2, -Sketch: the
# 1000 classes both ways) the trend is the ImageNet-1k-only classifiers' line, as in Taori et al.
# and the CLIP paper; -A, -R and ObjectNet are scored by OpenCLIP on their own class subsets against
# the 1000-class ImageNet accuracy, which no classifier result matches: there the trend is the
# image-text zoo's own, and the page says so.
IMAGE_TEXT_X = "zeroshot:imagenet1k"
IMAGE_TEXT_OOD = {"zeroshot:imagenetv2": "imagenet-v2", "zeroshot:imagenet_sketch": "sketch",
                  "zeroshot:imagenet-a": None, "zeroshot:imagenet-r": None, "zeroshot:objectnet": None}
IMAGE_TEXT_OOD_NAMES = {"zeroshot:imagenetv2": "ImageNet-V2 (zero-shot)",
                        "zeroshot:imagenet_sketch": "ImageNet-Sketch (zero-shot)",
                        "zeroshot:imagenet-a": "ImageNet-A (zero-shot, its 200 classes)",
                        "zeroshot:imagenet-r": "ImageNet-R (zero-shot, its 200 classes)",
                        "zeroshot:objectnet": "ObjectNet (zero-shot, its 113 ImageNet classes)"}
ZOO_TREND = "the image-text zoo itself"
ROBUSTNESS_N_BOOT = 2000  # a mean's bootstrap: n_boot × n resamples, so fewer than the budget table's
BASELINE_DATA = "ImageNet-1k"  # the trend is fitted on checkpoints pre-trained on ImageNet-1k only


def logit(accuracy_percent) -> np.ndarray:
    p = np.clip(np.asarray(accuracy_percent, dtype=float) / 100.0, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def inverse_logit(z) -> np.ndarray:
    return 100.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def paired_accuracy(points: pd.DataFrame, ood: str, metric: str = "top1") -> pd.DataFrame:
    """One row per checkpoint with both its in-distribution and OOD accuracy (same source, same
    resolution), plus its class, family and pre-training data."""
    if ood not in OOD_SETS:
        raise points_table.AnalysisError(f"Unknown OOD set {ood!r}; use one of {', '.join(OOD_SETS)}.")
    return _pair(points, f"{OOD_SETS[ood]}.{metric}", f"{ood}.{metric}")


def _pair(points: pd.DataFrame, x_metric: str, y_metric: str) -> pd.DataFrame:
    """Checkpoints with both metrics (same source and resolution), on one cost axis."""
    keys = ["checkpoint", "source", "img_size"]
    first_cost = points["cost_metric"].iloc[0] if len(points) else None
    base = points[points["cost_metric"] == first_cost]
    x = base[base["quality_metric"] == x_metric]
    y = base[base["quality_metric"] == y_metric]
    columns = ["checkpoint", "arch_class", "family", "pretrain_data", "data_scale", "img_size", "source"]
    columns += ["objective"] if "objective" in x else []
    joined = x[columns + ["quality"]].rename(columns={"quality": "id_accuracy"}).merge(
        y[keys + ["quality"]].rename(columns={"quality": "ood_accuracy"}), on=keys, how="inner")
    joined = joined[~joined["family"].isin(points_table.TOY_FAMILIES)]
    return joined.drop_duplicates(["checkpoint", "source"]).reset_index(drop=True)


def image_text_robustness(points: pd.DataFrame, ood: str, n_boot: int = ROBUSTNESS_N_BOOT, seed: int = 0) -> dict:
    """Zero-shot OOD accuracy against zero-shot ImageNet accuracy for the image-text zoo, with the
    classifiers' trend where the axes match (IMAGE_TEXT_OOD), else the zoo's own."""
    if ood not in IMAGE_TEXT_OOD:
        raise points_table.AnalysisError(f"Unknown OOD set {ood!r}; use one of {', '.join(IMAGE_TEXT_OOD)}.")
    zoo = points[points["zoo"] == "image-text"] if "zoo" in points else points
    paired = _pair(zoo, f"{IMAGE_TEXT_X}.top1", f"{ood}.top1")
    if paired.empty:
        raise points_table.AnalysisError(f"No image-text checkpoint has both {IMAGE_TEXT_X}.top1 and {ood}.top1 results; "
                                     "OpenCLIP's published results arrive with the catalog.")
    classifiers = IMAGE_TEXT_OOD[ood]
    if classifiers is not None:
        baseline = paired_accuracy(points[points["zoo"] != "image-text"] if "zoo" in points else points, classifiers)
        trend = fit_trend(baseline[baseline["pretrain_data"] == BASELINE_DATA])
    else:
        trend = {**fit_trend(paired, what="image-text checkpoints"), "fitted_on": ZOO_TREND}
    paired = paired.assign(effective_robustness=effective_robustness(paired, trend))
    paired["data_scale"] = pd.Categorical(paired["data_scale"], categories=[*DATA_SCALES, points_table.UNKNOWN_SCALE],
                                          ordered=True)
    return {"ood": ood, "name": IMAGE_TEXT_OOD_NAMES[ood], "x": f"{IMAGE_TEXT_X}.top1", "y": f"{ood}.top1",
            "trend": trend, "note": None, "n_checkpoints": int(len(paired)),
            "by_class": summary(paired, ["arch_class"], n_boot, seed),
            "by_class_and_scale": summary(paired, ["arch_class", "data_scale"], n_boot, seed),
            "points": paired}


def fit_trend(frame: pd.DataFrame, what: str = f"checkpoints pre-trained on {BASELINE_DATA} only") -> dict:
    """logit(OOD) = intercept + slope * logit(ID), least squares on the baseline checkpoints."""
    if len(frame) < 3 or np.ptp(logit(frame["id_accuracy"])) == 0:
        raise points_table.AnalysisError(
            f"The robustness trend needs at least 3 {what} with different ImageNet accuracies; "
            f"there are {len(frame)}.")
    x, y = logit(frame["id_accuracy"]), logit(frame["ood_accuracy"])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = ((y - y.mean()) ** 2).sum()
    return {"slope": float(slope), "intercept": float(intercept), "n_points": int(len(frame)),
            "r2": float(1 - (residual ** 2).sum() / total) if total > 0 else math.nan,
            "fitted_on": BASELINE_DATA}


def effective_robustness(frame: pd.DataFrame, trend: dict) -> np.ndarray:
    """OOD accuracy minus the trend's prediction at the same ImageNet accuracy (accuracy points)."""
    predicted = inverse_logit(trend["intercept"] + trend["slope"] * logit(frame["id_accuracy"]))
    return frame["ood_accuracy"].to_numpy(float) - predicted


def _mean_ci(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float, float]:
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    draws = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    mean = float(values.mean())
    low, high = percentile_interval(draws, mean)
    return mean, low, high


def group_stream(seed: int, key: tuple) -> np.random.Generator:
    """A group's own random stream (from the seed and the group's key alone): one class's
    interval never depends on which other groups are shown."""
    return np.random.default_rng([int(seed), *(zlib.crc32(str(k).encode()) for k in key)])


def summary(frame: pd.DataFrame, by: list[str], n_boot: int = ROBUSTNESS_N_BOOT, seed: int = 0) -> list[dict]:
    """Mean effective robustness per group with a bootstrap CI (checkpoints resampled, on the
    group's own stream). A group with fewer than MIN_CHECKPOINTS gets no interval: `too_few`."""
    rows = []
    for key, group in frame.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        values = group["effective_robustness"].to_numpy(float)
        too_few = len(values) < budget_match.MIN_CHECKPOINTS
        mean, low, high = ((float(values.mean()), math.nan, math.nan) if too_few else
                           _mean_ci(values, n_boot, group_stream(seed, key)))
        rows.append({**dict(zip(by, key, strict=True)), "n": int(len(group)), "mean": mean,
                     "ci_low": low, "ci_high": high, "too_few": too_few})
    return rows


def robustness(points: pd.DataFrame, ood: str, metric: str = "top1", n_boot: int = ROBUSTNESS_N_BOOT,
               seed: int = 0) -> dict:
    """The trend, each checkpoint's effective robustness, and the means per class and per
    (class, data scale) for one OOD set."""
    paired = paired_accuracy(points, ood, metric)
    if paired.empty:
        raise points_table.AnalysisError(
            f"No checkpoint has both {OOD_SETS[ood]}.{metric} and {ood}.{metric} results; import timm's "
            "published results or evaluate on both sets.")
    trend = fit_trend(paired[paired["pretrain_data"] == BASELINE_DATA])
    paired = paired.assign(effective_robustness=effective_robustness(paired, trend))
    paired["data_scale"] = pd.Categorical(paired["data_scale"], categories=list(DATA_SCALES), ordered=True)
    return {"ood": ood, "name": OOD_NAMES[ood], "x": f"{OOD_SETS[ood]}.{metric}", "y": f"{ood}.{metric}",
            "trend": trend, "note": CONSTRUCTION_NOTES.get(ood), "n_checkpoints": int(len(paired)),
            "by_class": summary(paired, ["arch_class"], n_boot, seed),
            "by_class_and_scale": summary(paired, ["arch_class", "data_scale"], n_boot, seed),
            "points": paired}


def trend_curve(trend: dict, low: float, high: float, n: int = 50) -> pd.DataFrame:
    """The fitted line in accuracy units, for drawing on logit axes."""
    x = inverse_logit(np.linspace(logit(low), logit(high), n))
    return pd.DataFrame({"id_accuracy": x, "ood_accuracy": inverse_logit(trend["intercept"] + trend["slope"] * logit(x))})
