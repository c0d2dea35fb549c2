"""Matched pairs: a ViT and a ConvNet of about the same cost, compared one to one; the share each
class wins, with Wilson intervals.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.analysis.points_table import AnalysisError, _oriented, higher_is_better
from engine.intervals import holding


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
