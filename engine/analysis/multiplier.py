"""The compute multiplier at equal accuracy: for an accuracy level, the cheapest checkpoint of each
class that reaches it and the ratio of their costs (ViT over ConvNet), with an exact bootstrap
interval and the budget gaps' verdict rule.

The seed paper states its result this way ("ViT-G/14 needs about 2.5x the compute of NFNet-F7+
to match it"); the budget gap is the same frontier read the other way. As for the gaps, the
bootstrap resamples each class's checkpoints and is computed exactly (the cheapest of a resample
that reaches the level has a known distribution), so no seed moves a bound. Pure functions.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.analysis import budget_match
from engine.analysis.points_table import CLASSES, AnalysisError, higher_is_better

COMPARISONS = (("ViT", "ConvNet"), ("Hybrid", "ConvNet"), ("MLP", "ConvNet"))


def _reaches(quality: np.ndarray, level: float, higher: bool) -> np.ndarray:
    return quality >= level if higher else quality <= level


def cheapest_distribution(cost: np.ndarray, reaches: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The distribution of −log(cost of the cheapest checkpoint that reaches the level) over
    bootstrap resamples of the class's n checkpoints, given that a resample holds one: the budget
    bootstrap's best-of-a-class distribution, with "under the budget" read as "reaches the level"
    and quality as cheapness."""
    return budget_match.best_distribution(np.where(reaches, 0.0, 1.0), -np.log(cost), 0.0)


def ratio_verdict(other: tuple, reference: tuple, ratio: float, n_other: int, n_reference: int, other_name: str,
                  reference_name: str, n_boot: int = budget_match.N_BOOT) -> dict:
    """The ratio other/reference with its 95% interval and verdict: gap_verdict on the log ratio,
    oriented so that positive means `other` is cheaper. 'lead' means the leader needs less compute
    (the interval excludes 1x); 'too few' where a class has fewer than MIN_CHECKPOINTS checkpoints
    that reach the level."""
    dist = budget_match.GapDistribution.of(other, reference)  # −log c_other + log c_reference
    gap = budget_match.gap_verdict(dist, math.log(ratio), n_other, n_reference, other_name, reference_name,
                                   higher_is_better=False, n_boot=n_boot)
    return {"ratio": float(ratio), "ci_low": float(math.exp(gap["ci_low"])), "ci_high": float(math.exp(gap["ci_high"])),
            "verdict": gap["verdict"], "cheaper": gap["leader"], "n": gap["n"],
            "p_ratio_le_1": gap["p_gap_le_0"], "p_ratio_ge_1": gap["p_gap_ge_0"]}


def multiplier_table(points: pd.DataFrame, quality: str, levels, reference_class: str = "ConvNet",
                     n_boot: int = budget_match.N_BOOT) -> list[dict]:
    """For each level: the cheapest checkpoint of each class that reaches it (quality ≥ level, or
    ≤ for a lower-is-better metric) and, for each other class, its cost over the reference class's
    with interval and verdict. A class that reaches no level is absent from that level's row."""
    higher = higher_is_better(quality)
    groups = budget_match.by_class(points)
    rows = []
    for level in levels:
        cheapest, dists = {}, {}
        for arch_class, group in groups.items():
            cost, q = group["cost"].to_numpy(float), group["quality"].to_numpy(float)
            reaches = _reaches(q, float(level), higher)
            if not reaches.any():
                continue
            i = int(np.flatnonzero(reaches)[np.argmin(cost[reaches])])
            cheapest[arch_class] = {"checkpoint": group.at[i, "checkpoint"], "cost": float(cost[i]),
                                    "quality": float(q[i]), "n_reaching": int(reaches.sum()), "n": int(len(cost))}
            dists[arch_class] = cheapest_distribution(cost, reaches)
        ratios = {}
        if reference_class in cheapest:
            for other in cheapest:
                if other == reference_class:
                    continue
                ratios[f"{other}/{reference_class}"] = ratio_verdict(
                    dists[other], dists[reference_class], cheapest[other]["cost"] / cheapest[reference_class]["cost"],
                    cheapest[other]["n_reaching"], cheapest[reference_class]["n_reaching"], other, reference_class,
                    n_boot)
        rows.append({"level": float(level), "cheapest": cheapest, "ratios": ratios})
    return rows


def parse_levels(text: str | None, points: pd.DataFrame, quality: str) -> list[float]:
    """--levels '60,70,80' (junk refused, naming it), or by default the round levels that at
    least two classes reach: every 5 points (every point on a range under 15)."""
    reached = best_reached(points, quality)
    if text:
        levels = []
        for part in str(text).split(","):
            try:
                value = float(part.strip())
            except ValueError:
                raise AnalysisError(f"--levels takes comma-separated numbers in {quality}'s units, e.g. 60,70,80; "
                                    f"{part.strip()!r} is not one. {_reached_text(reached, quality)}") from None
            if not math.isfinite(value):
                raise AnalysisError(f"--levels: {part.strip()!r} is not a finite number. {_reached_text(reached, quality)}")
            levels.append(value)
        return sorted(set(levels), reverse=not higher_is_better(quality))
    if len(reached) < 2:
        raise AnalysisError(f"A multiplier needs two classes with points; {_reached_text(reached, quality)}")
    higher = higher_is_better(quality)
    low, high = float(points["quality"].min()), float(points["quality"].max())
    second = sorted(reached.values(), reverse=higher)[1]  # the level a second class still reaches
    step = 5.0 if high - low >= 15 else 1.0
    # from where every class has a checkpoint of its own below the level (lower, each class's
    # cheapest reaching it is just its cheapest, whatever the level)
    worst = points.groupby("arch_class")["quality"].min().max() if higher else \
        points.groupby("arch_class")["quality"].max().min()
    if higher:
        grid = np.arange(math.floor(worst / step) * step, second + 1e-9, step)
    else:
        grid = np.arange(math.ceil(worst / step) * step, second - 1e-9, -step)
    return [float(v) for v in grid]


def best_reached(points: pd.DataFrame, quality: str) -> dict[str, float]:
    """The best quality each class reaches."""
    best = points.groupby("arch_class")["quality"].max() if higher_is_better(quality) else \
        points.groupby("arch_class")["quality"].min()
    return {c: float(best[c]) for c in CLASSES if c in best}


def _reached_text(reached: dict, quality: str) -> str:
    return ("Best reached: " + ", ".join(f"{c} {v:.2f}" for c, v in reached.items()) + f" ({quality})."
            if reached else "No class has points.")


def check_levels(points: pd.DataFrame, quality: str, levels) -> None:
    """An accuracy level that no class reaches is refused, naming what is reachable."""
    reached = best_reached(points, quality)
    higher = higher_is_better(quality)
    out = [lv for lv in levels if not any((v >= lv) if higher else (v <= lv) for v in reached.values())]
    if out:
        raise AnalysisError(f"No class reaches {', '.join(f'{lv:g}' for lv in out)} in {quality}. "
                            f"{_reached_text(reached, quality)}")


def ratio_text(r: dict) -> str:
    """'2.2x [1.1x, 4.0x]'."""
    return f"{_x(r['ratio'])} [{_x(r['ci_low'])}, {_x(r['ci_high'])}]"


def _x(value: float) -> str:
    return f"{value:.3g}×" if math.isfinite(value) else "—"


def verdict_label(r: dict | None, other: str, reference: str) -> str:
    """'ViTs cheaper', 'ConvNets cheaper', 'borderline', 'no clear winner', 'n = 2: too few'."""
    if not r:
        return "—"
    if r["cheaper"]:
        return f"{r['cheaper']}s cheaper"
    if r["verdict"] == "too few":
        return f"n = {min(r['n'].values())}: too few"
    return r["verdict"]


def sentences(rows: list[dict], other: str = "ViT", reference: str = "ConvNet", what: str = "",
              cost_label: str = "compute") -> list[str]:
    """One sentence per run of levels with the same verdict: 'to reach 70 to 75 zero-shot ImageNet
    on LAION-2B, ViTs need 2.17× [1.4×, 3.1×] to 2.5× [..] the training compute of ConvNets'."""
    key = f"{other}/{reference}"
    runs: list[list[tuple[float, dict]]] = []
    for row in rows:
        r = row["ratios"].get(key)
        if r is None:
            continue
        state = (r["verdict"], r["cheaper"])
        if runs and (runs[-1][0][1]["verdict"], runs[-1][0][1]["cheaper"]) == state:
            runs[-1].append((row["level"], r))
        else:
            runs.append([(row["level"], r)])
    said = []
    for run in runs:
        (first, r0), (last, r1) = run[0], run[-1]
        where = f"to reach {first:g}{what}" if first == last else f"to reach {first:g} to {last:g}{what}"
        ends = ratio_text(r0) if first == last else f"{ratio_text(r0)} at {first:g} to {ratio_text(r1)} at {last:g}"
        if r0["verdict"] == "too few":
            short = [f"{c}s n = {n}" for c, n in r0["n"].items() if n < budget_match.MIN_CHECKPOINTS]
            said.append(f"{where}: too few to judge ({', '.join(short)} reach it; a verdict needs "
                        f"{budget_match.MIN_CHECKPOINTS} of each)")
        elif r0["cheaper"]:
            state = f"{r0['cheaper']}s are cheaper"
            said.append(f"{where}, {other}s need {ends} the {cost_label} of {reference}s ({state})")
        else:
            said.append(f"{where}, {other}s need {ends} the {cost_label} of {reference}s ({r0['verdict']}: the "
                        "interval holds 1×)")
    return said


def default_levels(points: pd.DataFrame, quality: str) -> list[float]:
    """parse_levels' default grid, or none where fewer than two classes have points (nothing to
    compare: not an error on a page). Callers pass every class's points, so that showing or hiding
    a class never moves the levels a ratio is read at."""
    try:
        return parse_levels(None, points, quality)
    except AnalysisError:
        return []
