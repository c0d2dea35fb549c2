"""ConvNets vs ViTs on one cost axis: frontiers, budget winners, matched pairs, scaling laws.

Pure functions over DataFrames: no SQL, no UI. Every uncertainty is a seeded bootstrap, so the
same inputs give the same intervals. A point is one (checkpoint, quality metric, cost metric).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.intervals import holding, percentile_band, percentile_interval

CLASSES = ("ConvNet", "ViT", "Hybrid", "MLP")
COST_METRICS = ("gflops", "params_m", "train_flops", "latency_ms", "ms_per_img", "pretrain_tpu_v4_core_hours",
                "paper_gflops")
# train_flops: each checkpoint's training compute, estimated from its sourced recipe (all stages;
# engine.training_compute); a checkpoint without one is left out of that axis, never defaulted.
# gflops are counted here, one convention for all checkpoints. Papers report "FLOPs" in their own
# conventions (ConvNeXt's and NFNet's are multiply-adds, ViT-G's are real FLOPs), so a paper's
# numbers stay on their own axis, paper_gflops, and are compared only with each other.
TOY_FAMILIES = ("test",)  # timm's test_* models: tiny nets for unit tests, not candidates
LOWER_IS_BETTER_SUFFIXES = (".ece", ".nll", ".error")
DATASET_OF_VARIANT = {"imagenet": "imagenet", "imagenet-a": "imagenet-a", "imagenet-r": "imagenet-r",
                      "imagenet-v2": "imagenet-v2", "sketch": "sketch", "real": "imagenet-real"}
POINT_COLUMNS = ["checkpoint", "arch_class", "family", "pretrain_data", "data_scale", "img_size",
                 "source", "quality_metric", "quality", "cost_metric", "cost", "zoo"]
ZOOS = ("imagenet", "image-text")  # ImageNet classifiers (timm) | image-text models (OpenCLIP)
UNKNOWN_SCALE = "unknown"  # a data-scale filter value: the data's size is not known


class AnalysisError(ValueError):
    """The request cannot be answered from these points; the message says why."""


def higher_is_better(quality_metric: str) -> bool:
    return not quality_metric.endswith(LOWER_IS_BETTER_SUFFIXES)


# -- points -------------------------------------------------------------------------------------
def _quality_rows(frame: pd.DataFrame, dataset_col: str, source: str) -> pd.DataFrame:
    rows = []
    for metric in ("top1", "top5", "ece", "nll"):
        if metric in frame.columns:
            part = frame[frame[metric].notna()].copy()
            part["quality_metric"] = part[dataset_col] + "." + metric
            part["quality"] = part[metric]
            rows.append(part)
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows, ignore_index=True)
    out["source"] = source if source != "measured" else "measured here"
    return out


PROBE_METRICS = {"accuracy": "acc", "balanced_accuracy": "balanced_acc", "macro_f1": "macro_f1", "nll": "nll"}


def probe_metric_name(dataset_name: str, protocol: str, shots=None) -> str:
    """probe:<dataset>[@Kshot|@val]: the quality-metric prefix of a linear probe's results."""
    if protocol in ("kfold", "val"):
        return f"probe:{dataset_name}" + ("@val" if protocol == "val" else "")
    return f"probe:{dataset_name}@{int(shots)}shot"


def probe_dataset_labels(probes: pd.DataFrame) -> pd.Series:
    """Each probe's dataset as metric names show it: its folder name, or, where folders of one
    name hold different images (two folders called `train`), the name and its fingerprint's
    first six characters (`train~3f9a1c`), so two tasks are never read as one."""
    fingerprints = probes.groupby("dataset_name")["dataset_fingerprint"].transform("nunique")
    return pd.Series([name if n <= 1 else f"{name}~{str(fp)[:6]}" for name, fp, n in
                      zip(probes["dataset_name"], probes["dataset_fingerprint"], fingerprints, strict=True)],
                     index=probes.index)


def _probe_rows(probes: pd.DataFrame) -> pd.DataFrame:
    """Linear-probe results as quality rows (probe:<dataset>.acc, .balanced_acc, .macro_f1, .nll);
    the newest result per checkpoint and metric."""
    latest = probes.sort_values("created_at").copy()
    latest["prefix"] = [probe_metric_name(d, p, s) for d, p, s in
                        zip(probe_dataset_labels(latest), latest["protocol"], latest["shots"], strict=True)]
    return _newest_rows(latest, PROBE_METRICS)


def _newest_rows(latest: pd.DataFrame, metrics: dict[str, str]) -> pd.DataFrame:
    """Measured results (sorted oldest first, with a metric `prefix`) as quality rows: the newest
    per checkpoint and prefix, one row per metric column that has a value."""
    latest = latest.drop_duplicates(["checkpoint", "prefix"], keep="last")
    rows = []
    for column, short in metrics.items():
        part = latest[latest[column].notna()].copy()
        part["quality_metric"] = part["prefix"] + "." + short
        part["quality"] = part[column]
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out["source"] = "measured here"
    return out


ZEROSHOT_METRICS = {"top1": "top1", "top5": "top5", "balanced_accuracy": "balanced_acc"}


def _zeroshot_rows(zeroshots: pd.DataFrame) -> pd.DataFrame:
    """Zero-shot runs measured here as quality rows (zeroshot:<dataset>.top1, .top5,
    .balanced_acc); the newest per checkpoint and metric. A folder of the 1000 ImageNet classes
    is `imagenet1k`, as OpenCLIP's published table names it."""
    latest = zeroshots.sort_values("created_at").copy()
    latest["prefix"] = "zeroshot:" + latest["dataset_id"]
    return _newest_rows(latest, ZEROSHOT_METRICS)


def assemble_points(inputs: dict[str, pd.DataFrame], bench_source: str | None = None) -> pd.DataFrame:
    """One row per (checkpoint, quality metric, cost metric), with `source` kept.

    inputs: published (published results + checkpoint facts), evals (measured, + facts),
    compute, published_benchmarks, benchmarks (measured), reference (paper facts).
    `bench_source` picks the published benchmark file for ms_per_img ('here' = measured)."""
    published = inputs.get("published", pd.DataFrame())
    measured = inputs.get("evals", pd.DataFrame())
    quality = []
    if not published.empty:
        quality.append(_quality_rows(published, "dataset", "published"))
    if not measured.empty:
        measured = measured.assign(dataset=measured["variant"].map(DATASET_OF_VARIANT).fillna(measured["variant"]))
        quality.append(_quality_rows(measured, "dataset", "measured"))
    probes = inputs.get("probes", pd.DataFrame())
    if not probes.empty:
        quality.append(_probe_rows(probes))
    image_text = inputs.get("image_text_published", pd.DataFrame())
    if not image_text.empty:
        quality.append(image_text.rename(columns={"metric": "quality_metric", "value": "quality"})
                       .assign(source="published"))
    zeroshots = inputs.get("zeroshots", pd.DataFrame())
    if not zeroshots.empty:
        quality.append(_zeroshot_rows(zeroshots))
    quality = [q for q in quality if not q.empty]
    frames = []
    if quality:
        q = pd.concat(quality, ignore_index=True)
        keys = ["checkpoint", "arch", "arch_class", "family", "pretrain_data", "data_scale", "img_size",
                "num_classes", "source", "quality_metric", "quality", "zoo"]
        q = q.assign(zoo=q["zoo"].fillna("imagenet") if "zoo" in q else "imagenet")[keys]
        compute = inputs.get("compute", pd.DataFrame())
        if not compute.empty:
            c = compute[compute["error"].isna()][["arch", "img_size", "num_classes", "flops", "params"]]
            joined = q.merge(c, on=["arch", "img_size", "num_classes"], how="inner")
            frames.append(joined.assign(cost_metric="gflops", cost=joined["flops"] / 1e9))
            frames.append(joined.assign(cost_metric="params_m", cost=joined["params"] / 1e6))
        training = inputs.get("training_compute", pd.DataFrame())
        if not training.empty:
            joined = q.merge(training[["checkpoint", "train_flops"]], on="checkpoint", how="inner")
            frames.append(joined.assign(cost_metric="train_flops", cost=joined["train_flops"]))
        bench = inputs.get("published_benchmarks", pd.DataFrame())
        if bench_source not in (None, "here") and not bench.empty:
            b = bench[bench["source_file"] == bench_source][["arch", "img_size", "samples_per_sec"]]
            b = b.groupby(["arch", "img_size"], as_index=False)["samples_per_sec"].max()
            joined = q.merge(b, on=["arch", "img_size"], how="inner")
            frames.append(joined.assign(cost_metric="ms_per_img", cost=1000 / joined["samples_per_sec"]))
        here = inputs.get("benchmarks", pd.DataFrame())
        if not here.empty:
            h = here[here["error"].isna()].groupby(["arch", "img_size"], as_index=False).agg(
                latency=("latency_p50_ms", "min"), throughput=("throughput", "max"))
            joined = q.merge(h, on=["arch", "img_size"], how="inner")
            frames.append(joined.assign(cost_metric="latency_ms", cost=joined["latency"]))
            if bench_source == "here":
                frames.append(joined.assign(cost_metric="ms_per_img", cost=1000 / joined["throughput"]))
    reference = inputs.get("reference", pd.DataFrame())
    if not reference.empty:
        ref = reference[reference["imagenet_top1"].notna()].copy()
        ref = ref.assign(checkpoint=ref["model"], family=None, data_scale=None, img_size=None,
                         source=ref["source"], quality_metric="imagenet.top1", quality=ref["imagenet_top1"],
                         zoo="imagenet")
        for metric, values in (("paper_gflops", ref["gflops"]), ("params_m", ref["params_m"]),
                               ("pretrain_tpu_v4_core_hours",
                                ref["compute_value"].where(ref["compute_unit"] == "tpu_v4_core_hours"))):
            part = ref.assign(cost_metric=metric, cost=values)
            frames.append(part[part["cost"].notna()])
    if not frames:
        return pd.DataFrame(columns=POINT_COLUMNS)
    points = pd.concat([f[POINT_COLUMNS] for f in frames if not f.empty], ignore_index=True)
    return points[(points["cost"] > 0) & points["quality"].notna()].reset_index(drop=True)


def select(points: pd.DataFrame, cost: str, quality: str, classes=None, data_scales=None,
           families=None, sources=None, img_size_range=None, include_toys: bool = False,
           zoo: str | None = None, data_sources=None) -> pd.DataFrame:
    """The points for one cost and one quality metric, after the filters. `data_scales` may
    hold "unknown" (checkpoints whose data's size is not known); `data_sources` filters on the
    pre-training data by name (the image-text zoo's "same data" view)."""
    if cost not in COST_METRICS:
        raise AnalysisError(f"Unknown cost {cost!r}; use one of {', '.join(COST_METRICS)}.")
    chosen = points[(points["cost_metric"] == cost) & (points["quality_metric"] == quality)]
    if zoo:
        chosen = chosen[chosen["zoo"] == zoo]
    if not include_toys:
        chosen = chosen[~chosen["family"].isin(TOY_FAMILIES)]
    if classes:
        chosen = chosen[chosen["arch_class"].isin(classes)]
    if data_scales:
        chosen = chosen[chosen["data_scale"].fillna(UNKNOWN_SCALE).isin(data_scales)]
    if data_sources:
        chosen = chosen[chosen["pretrain_data"].isin(data_sources)]
    if families:
        chosen = chosen[chosen["family"].isin(families)]
    if sources:
        chosen = chosen[chosen["source"].isin(sources) | chosen["source"].apply(
            lambda s: ("published" in sources and s not in ("published", "measured here")))]
    if img_size_range:
        low, high = img_size_range
        chosen = chosen[chosen["img_size"].isna() | chosen["img_size"].between(low, high)]
    if chosen.empty:
        available = sorted(points.loc[points["cost_metric"] == cost, "quality_metric"].unique())
        raise AnalysisError(f"No points with cost {cost} and quality {quality} after the filters. "
                            f"Qualities available with {cost}: {', '.join(available[:12]) or 'none'}.")
    return chosen.reset_index(drop=True)


def _oriented(frame: pd.DataFrame, quality: str) -> np.ndarray:
    """Quality where higher is always better (lower-is-better metrics are negated)."""
    q = frame["quality"].to_numpy(dtype=float)
    return q if higher_is_better(quality) else -q


# -- frontier -----------------------------------------------------------------------------------
def pareto_mask(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """True where no other point is at most as costly and at least as good (ties: the first)."""
    order = np.lexsort((-quality, cost))  # cheapest first; equal cost: best first
    keep = np.zeros(len(cost), dtype=bool)
    best = -np.inf
    for i in order:
        if quality[i] > best:
            keep[i] = True
            best = quality[i]
    return keep


def frontier(points: pd.DataFrame, quality: str) -> pd.DataFrame:
    """Per class, the Pareto-optimal points sorted by cost: a step function of budget."""
    parts = []
    for arch_class, group in points.groupby("arch_class", sort=True):
        mask = pareto_mask(group["cost"].to_numpy(float), _oriented(group, quality))
        parts.append(group[mask].sort_values("cost"))
    return pd.concat(parts, ignore_index=True) if parts else points.iloc[:0]


# -- budget -------------------------------------------------------------------------------------
# The budget bootstrap is computed exactly, not sampled: the best checkpoint of a resample has a
# known distribution, so every resample is weighted by its probability (the "ideal bootstrap").
# No seed moves a bound, and a gap depends on its two classes' checkpoints alone.
N_BOOT = 10_000  # the Monte-Carlo bootstrap size 'borderline' guards against (see gap_verdict)
MIN_CHECKPOINTS = 5  # fewer under a budget (in a cell, a group): no verdict, "n = 2: too few"
MC_Z = 2.576  # 'borderline': a tail within 2.576 Monte-Carlo standard errors of 2.5%
TAIL_ATOMS = 64  # a resample's best lies below its class's 64th best with probability < e^-64
VERDICTS = ("lead", "borderline", "no clear winner", "too few")


def _best_under(cost: np.ndarray, oriented: np.ndarray, budget: float) -> int | None:
    within = np.flatnonzero(cost <= budget)
    return int(within[np.argmax(oriented[within])]) if len(within) else None


def best_distribution(cost: np.ndarray, oriented: np.ndarray, budget: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The distribution of the best (oriented) quality under the budget over bootstrap resamples
    of the class's n checkpoints (n drawn with replacement), given that a resample has one under
    the budget: values ascending and their probabilities. With m under the budget sorted
    ascending, P(best ≤ the j-th) = ((n − m + j) / n)^n; None when none is under the budget."""
    n = len(cost)
    under = np.sort(oriented[cost <= budget])
    if not len(under):
        return None
    cdf = ((n - len(under) + np.arange(len(under) + 1)) / n) ** n
    probs = np.diff(cdf)[-TAIL_ATOMS:]
    return under[-TAIL_ATOMS:], probs / probs.sum()


@dataclass
class GapDistribution:
    """other − reference (oriented: positive means `other` is better) over the bootstrap."""
    values: np.ndarray  # ascending
    cdf: np.ndarray

    @classmethod
    def of(cls, other: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]) -> "GapDistribution":
        values = (other[0][:, None] - reference[0][None, :]).ravel()
        probs = (other[1][:, None] * reference[1][None, :]).ravel()
        order = np.argsort(values, kind="stable")
        cdf = np.cumsum(probs[order])
        return cls(values[order], cdf / cdf[-1])

    def quantile(self, p: float) -> float:
        """The smallest gap with P(gap ≤ it) ≥ p."""
        return float(self.values[min(int(np.searchsorted(self.cdf, p, side="left")), len(self.values) - 1)])

    def at_or_below(self, x: float) -> float:
        i = int(np.searchsorted(self.values, x, side="right"))
        return float(self.cdf[i - 1]) if i else 0.0

    def at_or_above(self, x: float) -> float:
        i = int(np.searchsorted(self.values, x, side="left"))
        return 1.0 - (float(self.cdf[i - 1]) if i else 0.0)


def gap_verdict(dist: GapDistribution, gap: float, n_other: int, n_reference: int, other: str, reference: str,
                higher_is_better: bool = True, n_boot: int = N_BOOT) -> dict:
    """A gap (other − reference, in the metric's units) with its 95% bootstrap interval and the
    one verdict rule. In oriented terms (positive: `other` better), with P(gap ≤ 0) and
    P(gap ≥ 0) the bootstrap's tails at 0 and δ the Monte-Carlo error of a 2.5% tail with
    n_boot resamples: 'lead' where a tail at 0 is below 2.5% − δ (the interval excludes 0 and no
    seed of an n_boot-resample bootstrap would say otherwise; leader: the class ahead);
    'borderline' where a tail is within δ of 2.5% (a bound within Monte-Carlo error of 0);
    'no clear winner' where the interval clearly holds 0; 'too few' where a class has fewer than
    MIN_CHECKPOINTS under the budget (no verdict whatever the interval)."""
    low, high = dist.quantile(0.025), dist.quantile(0.975)
    below, above = dist.at_or_below(0.0), dist.at_or_above(0.0)
    ci = (low, high) if higher_is_better else (-high, -low)
    ci_low, ci_high = holding(*ci, gap)
    entry = {"gap": float(gap), "ci_low": ci_low, "ci_high": ci_high, "n_boot": int(n_boot),
             "n": {other: int(n_other), reference: int(n_reference)}, "leader": None,
             "p_gap_le_0": below if higher_is_better else above, "p_gap_ge_0": above if higher_is_better else below}
    if min(n_other, n_reference) < MIN_CHECKPOINTS:
        return {**entry, "verdict": "too few"}
    tail = 0.025
    delta = MC_Z * math.sqrt(tail * (1 - tail) / n_boot)
    if below < tail - delta or above < tail - delta:
        return {**entry, "verdict": "lead", "leader": other if below < tail - delta else reference}
    if min(below, above) <= tail + delta:
        return {**entry, "verdict": "borderline"}
    return {**entry, "verdict": "no clear winner"}


def budget_table(points: pd.DataFrame, quality: str, budgets, n_boot: int = N_BOOT, seed: int = 0,
                 reference_class: str = "ConvNet") -> list[dict]:
    """For each budget: the best checkpoint of each class with cost <= budget, the gaps to the
    reference class (ViT - ConvNet, Hybrid - ConvNet) with their exact bootstrap interval and
    verdict (gap_verdict), and the winner: the best class only where it leads every other class
    with at least MIN_CHECKPOINTS there, else None. The bootstrap resamples checkpoints within
    each class and is computed exactly (best_distribution), so a gap depends on its two classes
    only and on no seed; `seed` is kept for the analyses that do sample."""
    sign = 1.0 if higher_is_better(quality) else -1.0
    order = {c: i for i, c in enumerate(CLASSES)}
    classes = {c: g.reset_index(drop=True) for c, g in sorted(points.groupby("arch_class"),
                                                               key=lambda item: (order.get(item[0], 99), item[0]))}
    rows = []
    for budget in budgets:
        best, dists = {}, {}
        for arch_class, group in classes.items():
            cost = group["cost"].to_numpy(float)
            oriented = sign * group["quality"].to_numpy(float)
            i = _best_under(cost, oriented, budget)
            if i is None:
                continue
            best[arch_class] = {"checkpoint": group.at[i, "checkpoint"], "quality": float(group.at[i, "quality"]),
                                "cost": float(cost[i]), "source": group.at[i, "source"],
                                "n_under_budget": int((cost <= budget).sum())}
            dists[arch_class] = best_distribution(cost, oriented, budget)
        gaps = {}
        if reference_class in best:
            for other in best:
                if other == reference_class:
                    continue
                gaps[f"{other}-{reference_class}"] = gap_verdict(
                    GapDistribution.of(dists[other], dists[reference_class]),
                    best[other]["quality"] - best[reference_class]["quality"],
                    best[other]["n_under_budget"], best[reference_class]["n_under_budget"], other,
                    reference_class, sign > 0, n_boot)
        winner, state = _clear_winner(best, dists, sign, n_boot)
        rows.append({"budget": float(budget), "best": best, "gaps": gaps, "winner": winner, "winner_verdict": state})
    return rows


def _clear_winner(best: dict, dists: dict, sign: float, n_boot: int) -> tuple[str | None, str]:
    """The best class under the budget and the verdict on it: 'lead' only where it leads every
    other class that has MIN_CHECKPOINTS there (gap_verdict's rule); a class with fewer does not
    count, unless it is the best, which makes the verdict 'too few'."""
    if not best:
        return None, "no clear winner"
    top = max(best, key=lambda c: sign * best[c]["quality"])
    if best[top]["n_under_budget"] < MIN_CHECKPOINTS:
        return None, "too few"
    states = set()
    for other in best:
        if other == top or best[other]["n_under_budget"] < MIN_CHECKPOINTS:
            continue
        verdict = gap_verdict(GapDistribution.of(dists[top], dists[other]),
                              sign * (best[top]["quality"] - best[other]["quality"]),
                              best[top]["n_under_budget"], best[other]["n_under_budget"], top, other, True, n_boot)
        states.add(verdict["verdict"])
    if states <= {"lead"}:
        return top, "lead"
    return None, "no clear winner" if "no clear winner" in states else "borderline"


def bound_text(value: float, digits: int = 2) -> str:
    """A signed number with `digits` decimals, or more where those would hide its sign (-0.004
    is '-0.004', never '-0.00'); exactly 0 is '0'."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return "—"
    while round(abs(value), digits) == 0 and digits < 6:
        digits += 1
    return f"{value:+.{digits}f}"


def with_ci(value: float, low: float, high: float) -> str:
    """'+1.30 [+0.80, +1.75]': an estimate with its interval, as every page and the CLI print it;
    each bound with enough digits to show its sign."""
    return f"{bound_text(value)} [{bound_text(low)}, {bound_text(high)}]"


def verdict_label(gap: dict | None) -> str:
    """A gap's verdict in words: 'ViT leads', 'borderline', 'no clear winner', 'n = 2: too few'."""
    if not gap:
        return "—"
    if gap.get("leader"):
        return f"{gap['leader']} leads"
    if gap.get("verdict") == "too few":
        return f"n = {min(gap['n'].values())}: too few"
    return gap.get("verdict") or "no clear winner"


def gap_leader(gap: dict, other: str, reference: str, higher_is_better: bool = True) -> str | None:
    """Who wins by the interval alone (other - reference): a class leads only when the 95% CI
    excludes 0 in its favour; otherwise no one does. gap_verdict adds the Monte-Carlo band and
    the small-n rule on top of this."""
    low, high = gap["ci_low"], gap["ci_high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    if low > 0:
        return other if higher_is_better else reference
    if high < 0:
        return reference if higher_is_better else other
    return None


# -- matched pairs ------------------------------------------------------------------------------
def wilson_interval(wins: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = wins / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low, high = holding(centre - half, centre + half, p)
    return (max(low, 0.0), min(high, 1.0))


MATCHINGS = {"fair": "one-to-one, best tag per architecture",
             "one-to-one": "one-to-one, every tag",
             "nearest": "nearest, a checkpoint may match many"}


def architecture_of(checkpoint: str) -> str:
    return checkpoint.split(".", 1)[0]


def best_per_architecture(points: pd.DataFrame, quality: str) -> pd.DataFrame:
    """One point per (class, architecture): its best tag (and resolution) on this metric, so
    near-identical checkpoints of one architecture count once."""
    if points.empty:
        return points
    oriented = _oriented(points, quality)
    ranked = points.assign(_arch=points["checkpoint"].map(architecture_of), _oriented=oriented).sort_values(
        ["_oriented", "cost", "checkpoint"], ascending=[False, True, True], kind="stable")
    return ranked.drop_duplicates(["arch_class", "_arch"]).drop(columns=["_arch", "_oriented"])


def matched_pairs(points: pd.DataFrame, quality: str, tolerance: float = 0.10,
                  left: str = "ViT", right: str = "ConvNet", match_on: str | None = None,
                  matching: str = "fair") -> dict:
    """Each `left` point with a `right` point near in log-cost, if within ±tolerance (and, with
    `match_on`, sharing that column's value, e.g. pretrain_data); the per-pair difference
    (left - right) and the share of pairs each class wins (Wilson CI).

    matching: 'nearest' pairs each left point with its nearest right point (one ConvNet may be
    the match of many); 'one-to-one' uses each checkpoint at most once (closest pairs first);
    'fair' (default) is one-to-one over the best tag of each architecture."""
    if matching not in MATCHINGS:
        raise AnalysisError(f"Unknown matching {matching!r}; use one of {', '.join(MATCHINGS)}.")
    sign = 1.0 if higher_is_better(quality) else -1.0

    def pair_in(group: pd.DataFrame) -> list[dict]:
        if matching == "nearest":
            return _pairs_in(group, left, right, tolerance, sign)
        if matching == "fair":  # within a match_on group: the best tag per architecture *there*
            group = best_per_architecture(group, quality)
        return _one_to_one_pairs_in(group, left, right, tolerance, sign)
    if match_on:
        pairs = [p for _, g in points.groupby(match_on, dropna=False) for p in pair_in(g)]
    else:
        pairs = pair_in(points)
    return {**_pair_summary(pairs, quality, left, right, tolerance, match_on), "matching": matching}


def share_by_matching(points: pd.DataFrame, quality: str, tolerance: float = 0.10, left: str = "ViT",
                      right: str = "ConvNet", match_on: str | None = None) -> list[dict]:
    """How the win share moves between the matchings: one row per matching."""
    rows = []
    for matching, label in MATCHINGS.items():
        result = matched_pairs(points, quality, tolerance, left, right, match_on, matching)
        rows.append({"matching": matching, "label": label, "n_pairs": result["n_pairs"],
                     "share": result["share"][left], "share_ci": result["share_ci"][left],
                     "distinct_" + right.lower(): len({p[right.lower()] for p in result["pairs"]})})
    return rows


def _pair_row(left: str, right: str, a: pd.Series, b: pd.Series) -> dict:
    l_name, r_name = left.lower(), right.lower()
    return {l_name: a["checkpoint"], r_name: b["checkpoint"], f"{l_name}_cost": float(a["cost"]),
            f"{r_name}_cost": float(b["cost"]), f"{l_name}_quality": float(a["quality"]),
            f"{r_name}_quality": float(b["quality"]), "difference": float(a["quality"] - b["quality"])}


def _one_to_one_pairs_in(points: pd.DataFrame, left: str, right: str, tolerance: float,
                         sign: float = 1.0) -> list[dict]:
    """Caliper matching without replacement: every (left, right) pair within ±tolerance, taken
    closest in log-cost first (ties: the stronger right checkpoint, then names), each checkpoint
    used at most once."""
    a = points[points["arch_class"] == left].reset_index(drop=True)
    b = points[points["arch_class"] == right].reset_index(drop=True)
    if not len(a) or not len(b):
        return []
    log_a, log_b = np.log(a["cost"].to_numpy(float)), np.log(b["cost"].to_numpy(float))
    distance = np.abs(log_a[:, None] - log_b[None, :])
    i, j = np.nonzero(distance <= math.log(1 + tolerance))
    order = np.lexsort((b["checkpoint"].to_numpy()[j], a["checkpoint"].to_numpy()[i],
                        -sign * b["quality"].to_numpy(float)[j], distance[i, j]))
    used_a, used_b, pairs = set(), set(), []
    for k in order:
        if i[k] in used_a or j[k] in used_b:
            continue
        used_a.add(i[k])
        used_b.add(j[k])
        pairs.append((i[k], j[k]))
    return [_pair_row(left, right, a.iloc[x], b.iloc[y]) for x, y in sorted(pairs)]


def _pairs_in(points: pd.DataFrame, left: str, right: str, tolerance: float, sign: float = 1.0) -> list[dict]:
    """Vectorised nearest-in-log-cost match. Checkpoints of `right` at exactly the same cost (one
    architecture under several tags) are one candidate: the best of them, so the match does not
    depend on row order."""
    a = points[points["arch_class"] == left]
    b = points[points["arch_class"] == right]
    if not len(a) or not len(b):
        return []
    b = b.assign(_oriented=sign * b["quality"].to_numpy(float)).sort_values(
        ["cost", "_oriented", "checkpoint"], ascending=[True, False, True], kind="stable")
    b = b.drop_duplicates("cost", keep="first")
    sorted_b = np.log(b["cost"].to_numpy(float))
    x = np.log(a["cost"].to_numpy(float))
    k = np.searchsorted(sorted_b, x)
    below, above = np.clip(k - 1, 0, len(sorted_b) - 1), np.clip(k, 0, len(sorted_b) - 1)
    # the nearer neighbour; on a tie the cheaper one (as a scan from below would pick)
    nearest = np.where(np.abs(sorted_b[above] - x) < np.abs(sorted_b[below] - x), above, below)
    keep = np.abs(sorted_b[nearest] - x) <= math.log(1 + tolerance)
    match = nearest[keep]
    l_name, r_name = left.lower(), right.lower()
    a_kept = a[keep]
    a_quality, b_quality = a_kept["quality"].to_numpy(float), b["quality"].to_numpy(float)[match]
    return [{l_name: ca, r_name: cb, f"{l_name}_cost": float(xa), f"{r_name}_cost": float(xb),
             f"{l_name}_quality": float(qa), f"{r_name}_quality": float(qb), "difference": float(qa - qb)}
            for ca, cb, xa, xb, qa, qb in zip(a_kept["checkpoint"], b["checkpoint"].to_numpy()[match],
                                              a_kept["cost"], b["cost"].to_numpy(float)[match], a_quality, b_quality,
                                              strict=True)]


def _pair_summary(pairs: list[dict], quality: str, left: str, right: str, tolerance: float,
                  match_on: str | None) -> dict:
    sign = 1.0 if higher_is_better(quality) else -1.0
    n = len(pairs)
    left_wins = sum(1 for p in pairs if sign * p["difference"] > 0)
    right_wins = sum(1 for p in pairs if sign * p["difference"] < 0)
    return {"left": left, "right": right, "tolerance": tolerance, "match_on": match_on,
            "n_pairs": n, "pairs": pairs,
            "wins": {left: left_wins, right: right_wins, "tie": n - left_wins - right_wins},
            "share": {left: left_wins / n if n else math.nan, right: right_wins / n if n else math.nan},
            "share_ci": {left: wilson_interval(left_wins, n), right: wilson_interval(right_wins, n)},
            "mean_difference": float(np.mean([p["difference"] for p in pairs])) if n else math.nan}


# -- scaling laws -------------------------------------------------------------------------------
def error_of(frame: pd.DataFrame, quality: str) -> np.ndarray:
    """The quantity that falls with scale: 100 - accuracy, or the metric itself (ECE, NLL)."""
    q = frame["quality"].to_numpy(float)
    return 100.0 - q if higher_is_better(quality) else q


def _power_fit(log_c: np.ndarray, log_e: np.ndarray) -> tuple[float, float, float]:
    slope, intercept = np.polyfit(log_c, log_e, 1)
    predicted = intercept + slope * log_c
    total = ((log_e - log_e.mean()) ** 2).sum()
    r2 = 1 - ((log_e - predicted) ** 2).sum() / total if total > 0 else math.nan
    return float(intercept), float(slope), float(r2)


@dataclass
class PowerFit:
    arch_class: str
    n_points: int
    a: float
    b: float
    r2: float
    b_ci: tuple[float, float]
    cost_range: tuple[float, float]
    boot: np.ndarray  # (n_boot, 2) intercepts and slopes

    def as_dict(self) -> dict:
        return {"arch_class": self.arch_class, "n_points": self.n_points, "a": self.a, "b": self.b,
                "r2": self.r2, "b_ci": list(self.b_ci), "cost_range": list(self.cost_range)}


def fit_power(frame: pd.DataFrame, quality: str, n_boot: int = 1000, seed: int = 0,
              arch_class: str = "") -> PowerFit:
    """log(error) = a + b log(cost), with a bootstrap (resampling points) CI of b."""
    error = error_of(frame, quality)
    keep = error > 0
    log_c = np.log(frame["cost"].to_numpy(float)[keep])
    log_e = np.log(error[keep])
    if len(log_c) < 3 or np.ptp(log_c) == 0:
        raise AnalysisError(f"{arch_class or 'this class'} has {len(log_c)} usable points; a fit needs "
                            "at least 3 at different costs.")
    a, b, r2 = _power_fit(log_c, log_e)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(log_c), size=(n_boot, len(log_c)))
    x, y = log_c[idx], log_e[idx]
    xm, ym = x.mean(axis=1, keepdims=True), y.mean(axis=1, keepdims=True)
    sxx = ((x - xm) ** 2).sum(axis=1)
    valid = sxx > 0
    slopes = np.where(valid, ((x - xm) * (y - ym)).sum(axis=1) / np.where(valid, sxx, 1), np.nan)
    intercepts = ym[:, 0] - slopes * xm[:, 0]
    boot = np.column_stack([intercepts, slopes])[valid]
    low, high = percentile_interval(boot[:, 1], b)
    return PowerFit(arch_class, int(len(log_c)), a, b, r2, (float(low), float(high)),
                    (float(np.exp(log_c.min())), float(np.exp(log_c.max()))), boot)


def fit_saturating(frame: pd.DataFrame, quality: str) -> dict:
    """error = E_inf + A * cost^-alpha (scipy least squares in log space of the residual error)."""
    from scipy.optimize import curve_fit
    cost = frame["cost"].to_numpy(float)
    error = error_of(frame, quality)
    if len(cost) < 4:
        raise AnalysisError("A saturating fit needs at least 4 points.")

    def law(c, e_inf, log_a, alpha):
        return e_inf + np.exp(log_a) * c ** (-alpha)
    start = (max(error.min() * 0.5, 1e-6), math.log(max(error.max(), 1e-6)), 0.3)
    try:
        params, _ = curve_fit(law, cost, error, p0=start, bounds=([0, -50, 0], [error.min(), 50, 5]),
                              maxfev=20000)
    except (RuntimeError, ValueError) as e:
        raise AnalysisError(f"The saturating law did not converge on these points ({e}).") from None
    predicted = law(cost, *params)
    total = ((error - error.mean()) ** 2).sum()
    return {"e_inf": float(params[0]), "A": float(math.exp(params[1])), "alpha": float(params[2]),
            "r2": float(1 - ((error - predicted) ** 2).sum() / total) if total > 0 else math.nan}


UNRELIABLE_CROSSOVER = "no reliable crossover in the data's range"
MAX_CROSSOVER_DECADES = 2.0


def reliable_crossover(ci, low: float, high: float) -> bool:
    """A crossover is shown only when its 95% CI spans at most two decades of cost and lies
    within the cost range both classes cover; otherwise the fits do not locate it."""
    ci_low, ci_high = ci
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)) or ci_low <= 0:
        return False
    return math.log10(ci_high / ci_low) <= MAX_CROSSOVER_DECADES and low <= ci_low and ci_high <= high


def crossover(fit_1: PowerFit, fit_2: PowerFit) -> dict:
    """Where two power-law fits cross: log c* = (a2 - a1) / (b1 - b2), with a CI from pairing
    their bootstrap draws; 'none in range' when it falls outside both classes' observed costs."""
    low = max(fit_1.cost_range[0], fit_2.cost_range[0])
    high = min(fit_1.cost_range[1], fit_2.cost_range[1])
    result = {"classes": [fit_1.arch_class, fit_2.arch_class], "range": [low, high]}
    if fit_1.b == fit_2.b:
        return {**result, "crossover": None, "note": "parallel fits: no crossover"}
    log_c = (fit_2.a - fit_1.a) / (fit_1.b - fit_2.b)
    n = min(len(fit_1.boot), len(fit_2.boot))
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = (fit_2.boot[:n, 0] - fit_1.boot[:n, 0]) / (fit_1.boot[:n, 1] - fit_2.boot[:n, 1])
    c = float(np.exp(log_c))
    low_log, high_log = percentile_interval(draws, log_c)
    # widened again in cost units: exp of two nearly equal logs need not keep their order
    ci = list(holding(float(np.exp(low_log)), float(np.exp(high_log)), c))
    if not (low <= c <= high):
        return {**result, "crossover": None, "crossover_ci": ci, "unconstrained_crossover": c,
                "note": "no crossover in range"}
    if not reliable_crossover(ci, low, high):
        return {**result, "crossover": None, "crossover_ci": ci, "unreliable_crossover": c,
                "note": UNRELIABLE_CROSSOVER}
    cheaper_wins = fit_1.arch_class if fit_1.b > fit_2.b else fit_2.arch_class
    return {**result, "crossover": c, "crossover_ci": ci,
            "note": f"{cheaper_wins} has the lower error below the crossover"}


def scaling(points: pd.DataFrame, quality: str, on: str = "frontier", law: str = "power",
            n_boot: int = 1000, seed: int = 0, curves: bool = False) -> dict:
    """Per-class scaling fits (on frontier points by default) and the crossovers between classes.
    `curves` adds, for drawing, each fit and its 95% band on 40 costs across the class's range,
    and the fitted points with their error."""
    if on not in ("frontier", "all"):
        raise AnalysisError("--on takes 'frontier' or 'all'.")
    data = frontier(points, quality) if on == "frontier" else points
    fits, saturating, skipped = {}, {}, {}
    for arch_class, group in data.groupby("arch_class", sort=True):
        try:
            fits[arch_class] = fit_power(group, quality, n_boot, seed, arch_class)
            if law == "saturating":
                saturating[arch_class] = fit_saturating(group, quality)
        except AnalysisError as e:
            skipped[arch_class] = str(e)
    names = sorted(fits)
    crossings = [crossover(fits[x], fits[y]) for i, x in enumerate(names) for y in names[i + 1:]]
    result = {"on": on, "law": law, "fits": {c: f.as_dict() for c, f in fits.items()},
              "saturating": saturating, "crossovers": crossings, "skipped": skipped}
    if curves:
        frames = []
        for arch_class, fit in fits.items():
            grid = np.geomspace(*fit.cost_range, 40)
            mid, low, high = fit_band(fit, grid)
            frames.append(pd.DataFrame({"cost": grid, "fit": mid, "low": low, "high": high,
                                        "arch_class": arch_class}))
        result["curves"] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        result["points"] = data.assign(error=error_of(data, quality))
    return result


# -- summaries for people ------------------------------------------------------------------------------
def fit_band(fit: PowerFit, costs: np.ndarray, level: float = 95.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fitted error and its bootstrap band at the given costs."""
    log_c = np.log(np.asarray(costs, dtype=float))
    draws = fit.boot[:, :1] + fit.boot[:, 1:] * log_c[None, :]
    mid = fit.a + fit.b * log_c
    low, high = percentile_band(draws, mid, level)
    fitted = np.exp(mid)
    return fitted, np.minimum(np.exp(low), fitted), np.maximum(np.exp(high), fitted)


def _ceil_2_digits(value: float) -> float:
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return float(f"{math.ceil(round(value / step, 9)) * step:.2g}")


def log_budgets(points: pd.DataFrame, n: int = 16) -> list[float]:
    """Budgets spread evenly in log space over the observed costs, rounded *up* to 2 significant
    digits, so the lowest budget admits the cheapest point and the highest admits them all."""
    low, high = points["cost"].min(), points["cost"].max()
    raw = np.geomspace(low, high, n)
    return sorted({_ceil_2_digits(v) for v in raw})


def verdict_runs(rows: list[dict], other: str = "ViT", reference: str = "ConvNet") -> list[list[dict]]:
    """Consecutive budgets with the same verdict and leader (gap_verdict's rule), each a list of
    gaps with their budget."""
    key = f"{other}-{reference}"
    runs: list[list[dict]] = []
    for row in rows:
        gap = row["gaps"].get(key)
        if gap is None:
            continue
        entry = {**gap, "budget": row["budget"], "verdict": gap.get("verdict", "no clear winner"),
                 "leader": gap.get("leader")}
        if runs and (runs[-1][0]["verdict"], runs[-1][0]["leader"]) == (entry["verdict"], entry["leader"]):
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs


def lead_text(entry: dict, other: str, reference: str) -> tuple[str, str]:
    """(leader's plural, lead with interval): a lead is the leader's quality minus the other's,
    so 'ConvNets lead by +3.60 [+2.10, +5.00]' reads ConvNet − ViT."""
    if entry["leader"] == other:
        return f"{other}s", with_ci(entry["gap"], entry["ci_low"], entry["ci_high"])
    return f"{reference}s", with_ci(-entry["gap"], -entry["ci_high"], -entry["ci_low"])


def _gaps_at(ends: list[dict], other: str, reference: str, unit: str) -> str:
    """'ViT − ConvNet -0.14 [-0.55, +0.23] at 42 GFLOPs to +0.62 [-0.03, +1.06] at 400 GFLOPs'."""
    said = [f"{with_ci(e['gap'], e['ci_low'], e['ci_high'])} at {e['budget']:g}{unit}" for e in ends]
    return f"{other} − {reference} " + " to ".join(said)


def verdict(rows: list[dict], other: str = "ViT", reference: str = "ConvNet", unit: str = "") -> list[str]:
    """Plain sentences per run of budgets with one verdict, every number with its interval:
    'up to 20 GFLOPs: ConvNets lead, by +3.80 [+2.40, +5.10] points at 2.1 GFLOPs to +3.10
    [+1.90, +4.20] at 20 GFLOPs'. A run of several budgets quotes its first and last."""
    runs = verdict_runs(rows, other, reference)
    sentences = []
    for i, run in enumerate(runs):
        first, last = run[0]["budget"], run[-1]["budget"]
        if i == 0:
            where = f"up to {last:g}{unit}"
        elif i == len(runs) - 1:
            where = f"from {first:g}{unit}"
        else:
            where = f"at {first:g}{unit}" if first == last else f"from {first:g} to {last:g}{unit}"
        ends = [run[0]] if len(run) == 1 else [run[0], run[-1]]
        state = run[0]["verdict"]
        if state == "lead":
            who, lead = lead_text(run[0], other, reference)
            if len(run) == 1:
                said = f"{who} lead by {lead} points at {first:g}{unit}"
            else:
                said = (f"{who} lead, by {lead} points at {first:g}{unit} to "
                        f"{lead_text(run[-1], other, reference)[1]} at {last:g}{unit}")
        elif state == "too few":
            short = [f"{c}s n = {n}" for c, n in run[0]["n"].items() if n < MIN_CHECKPOINTS]
            said = f"too few to judge ({', '.join(short)}; a verdict needs {MIN_CHECKPOINTS} of each)"
        elif state == "borderline":
            said = f"borderline, a bound within Monte-Carlo error of 0 ({_gaps_at(ends, other, reference, unit)})"
        else:
            said = f"no clear winner ({_gaps_at(ends, other, reference, unit)})"
        sentences.append(f"{where}: {said}")
    return sentences
