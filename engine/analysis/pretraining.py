"""What pre-training buys each class: the same architecture at the same resolution, pre-trained
two ways, one of them the ImageNet-1k supervised baseline.

The seed's sentence ("transformer-based architectures ... scaled up with data; that is the key to
their success") is tested directly by pairs that differ only in pre-training: the gain a
pre-training (its data and objective) adds over ImageNet-1k supervised training of the same
network, per class, and whether ViTs gain more than ConvNets. Each network counts once per
pre-training (its best tag on each side, at the lowest resolution both share), so one network
with many tags cannot decide a mean. Intervals are Student-t (the mean gain) and Welch (the
difference between classes): computed, not sampled, so no seed moves them. Pure functions.
"""
from __future__ import annotations

import math
import re

import pandas as pd
from scipy import stats

from engine.analysis.points_table import CLASSES, AnalysisError, higher_is_better
from engine.catalog.objectives import UNKNOWN

BASELINE = ("ImageNet-1k", "supervised")
MIN_PAIRS = 3  # fewer pairs of a class for a pre-training: its mean is shown, with no interval
# A network under two timm names: OpenAI/OpenCLIP ViTs are timm's ViT with a pre-norm LayerNorm
# (a few thousand parameters) and sometimes QuickGELU; the ViT-B/16 of CLIP is ViT-B/16.
SAME_NETWORK = ((re.compile(r"^(vit_\w+?)_clip(?:_quickgelu)?_(\d+)$"), r"\1_\2"),)


def network(arch: str) -> str:
    """The network an architecture name stands for (timm's CLIP ViTs are their plain ViT)."""
    for pattern, replacement in SAME_NETWORK:
        arch = pattern.sub(replacement, arch)
    return arch


def pretraining_label(data: str, objective: str) -> str:
    return f"{data}, {objective}"


BASELINE_LABEL = pretraining_label(*BASELINE)


def pairs(points: pd.DataFrame, quality: str) -> tuple[list[dict], int]:
    """Every (network, pre-training) with the same network's ImageNet-1k supervised baseline at a
    shared resolution: both checkpoints, their qualities and the gain (in the metric's units,
    positive: the pre-training helps). Also returns how many other (network, pre-training) were
    left out because their objective is unknown."""
    sign = 1.0 if higher_is_better(quality) else -1.0
    frame = points[points["arch"].notna() & points["img_size"].notna()].copy()
    frame["network"] = frame["arch"].map(network)
    frame["pretraining"] = [pretraining_label(d, o) for d, o in zip(frame["pretrain_data"], frame["objective"],
                                                                      strict=True)]
    frame["oriented"] = sign * frame["quality"]
    best = (frame.sort_values(["oriented", "checkpoint"], ascending=[False, True])
            .drop_duplicates(["network", "img_size", "pretraining"]))
    base = best[best["pretraining"] == BASELINE_LABEL].set_index(["network", "img_size"])
    out, unknown = [], set()
    others = best[(best["pretraining"] != BASELINE_LABEL)].sort_values(["network", "pretraining", "img_size"])
    for (net, label), group in others.groupby(["network", "pretraining"], sort=True):
        shared = [row for row in group.itertuples() if (net, row.img_size) in base.index]
        if not shared:
            continue
        if group["objective"].iloc[0] == UNKNOWN:
            unknown.add((net, label))
            continue
        row = shared[0]  # the lowest resolution both share
        b = base.loc[(net, row.img_size)]
        out.append({"network": net, "arch_class": row.arch_class, "img_size": int(row.img_size),
                    "pretraining": label, "pretrain_data": row.pretrain_data, "objective": row.objective,
                    "checkpoint": row.checkpoint, "quality": float(row.quality),
                    "baseline_checkpoint": b["checkpoint"], "baseline_quality": float(b["quality"]),
                    "gain": float(sign * (row.quality - b["quality"]))})
    return out, len(unknown)


def mean_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """The mean with its 95% Student-t interval; no interval under MIN_PAIRS values."""
    mean = float(sum(values) / len(values))
    if len(values) < MIN_PAIRS:
        return mean, None, None
    sem = float(pd.Series(values).std(ddof=1)) / math.sqrt(len(values))
    half = float(stats.t.ppf(0.975, len(values) - 1)) * sem
    return mean, mean - half, mean + half


def _welch(a: list[float], b: list[float]) -> tuple[float, float | None, float | None]:
    diff = float(sum(a) / len(a) - sum(b) / len(b))
    if min(len(a), len(b)) < MIN_PAIRS:
        return diff, None, None
    va, vb = pd.Series(a).var(ddof=1) / len(a), pd.Series(b).var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0) + (vb ** 2 / (len(b) - 1) if vb else 0))
    half = float(stats.t.ppf(0.975, dof)) * se
    return diff, diff - half, diff + half


def gains(pair_list: list[dict], reference: str = "ConvNet") -> list[dict]:
    """Per pre-training (most pairs first): per class the number of pairs and the mean gain with
    its 95% interval, and each other class's mean gain minus the reference class's (Welch)."""
    frame = pd.DataFrame(pair_list)
    if frame.empty:
        return []
    out = []
    sizes = frame.groupby("pretraining").size()
    for label in sorted(sizes.index, key=lambda lb: (-sizes[lb], lb)):
        part = frame[frame["pretraining"] == label]
        by_class = {}
        for arch_class in [c for c in CLASSES if c in set(part["arch_class"])]:
            values = part.loc[part["arch_class"] == arch_class, "gain"].tolist()
            mean, low, high = mean_interval(values)
            by_class[arch_class] = {"n_pairs": len(values), "mean_gain": mean, "ci_low": low, "ci_high": high}
        differences = {}
        if reference in by_class:
            ref_values = part.loc[part["arch_class"] == reference, "gain"].tolist()
            for other in by_class:
                if other == reference:
                    continue
                diff, low, high = _welch(part.loc[part["arch_class"] == other, "gain"].tolist(), ref_values)
                differences[f"{other}-{reference}"] = {"difference": diff, "ci_low": low, "ci_high": high,
                                                       "verdict": _verdict(low, high, other, reference)}
        out.append({"pretraining": label, "baseline": BASELINE_LABEL, "classes": by_class,
                    "differences": differences})
    return out


def _verdict(low, high, other: str, reference: str) -> str:
    if low is None:
        return "too few"
    if low > 0:
        return f"{other}s gain more"
    if high < 0:
        return f"{reference}s gain more"
    return "no clear difference"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def gain_text(entry: dict) -> str:
    """'+3.10 [+1.20, +5.00] (n = 7)', or '+3.10 (n = 2: too few for an interval)'."""
    if entry.get("ci_low") is None:
        return f"{_signed(entry['mean_gain'])} (n = {entry['n_pairs']}: too few for an interval)"
    return f"{_signed(entry['mean_gain'])} [{_signed(entry['ci_low'])}, {_signed(entry['ci_high'])}] (n = {entry['n_pairs']})"


def sentence(row: dict, other: str = "ViT", reference: str = "ConvNet") -> str | None:
    """'from ImageNet-1k, supervised to ImageNet-21k, supervised: ViTs gain +x [..] points, ConvNets
    +y [..]; ViTs gain z [..] more'."""
    classes = row["classes"]
    if other not in classes or reference not in classes:
        return None
    said = (f"from {row['baseline']} to {row['pretraining']}: {other}s gain {gain_text(classes[other])} points, "
            f"{reference}s {gain_text(classes[reference])}")
    diff = row["differences"].get(f"{other}-{reference}")
    if diff and diff["ci_low"] is not None:
        said += (f"; {other}s gain {_signed(diff['difference'])} [{_signed(diff['ci_low'])}, "
                 f"{_signed(diff['ci_high'])}] more ({diff['verdict']})")
    return said


def pretraining(points: pd.DataFrame, quality: str) -> dict:
    """Everything the When page's section and `analyze pretraining` show."""
    found, unknown = pairs(points, quality)
    if not found:
        raise AnalysisError(f"No architecture here has both an ImageNet-1k supervised checkpoint and another "
                            f"pre-training with {quality} at a shared resolution under these filters.")
    rows = gains(found)
    return {"baseline": BASELINE_LABEL, "gains": rows, "pairs": found, "n_left_out_unknown_objective": unknown,
            "sentences": [s for s in (sentence(r) for r in rows) if s]}
