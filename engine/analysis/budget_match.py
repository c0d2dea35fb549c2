"""The best of each class under a budget, the gap between two classes with an exact bootstrap
interval, and the verdict the pages quote (lead, borderline, no clear winner, too few).

The bootstrap is computed exactly, not sampled, so no seed moves a bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.analysis.points_table import CLASSES, higher_is_better
from engine.intervals import holding


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


def by_class(points: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each class's points, in CLASSES' order (ConvNet first), others after by name."""
    order = {c: i for i, c in enumerate(CLASSES)}
    return {c: g.reset_index(drop=True) for c, g in sorted(points.groupby("arch_class"),
                                                           key=lambda item: (order.get(item[0], 99), item[0]))}


def budget_table(points: pd.DataFrame, quality: str, budgets, n_boot: int = N_BOOT, seed: int = 0,
                 reference_class: str = "ConvNet") -> list[dict]:
    """For each budget: the best checkpoint of each class with cost <= budget, the gaps to the
    reference class (ViT - ConvNet, Hybrid - ConvNet) with their exact bootstrap interval and
    verdict (gap_verdict), and the winner: the best class only where it leads every other class
    with at least MIN_CHECKPOINTS there, else None. The bootstrap resamples checkpoints within
    each class and is computed exactly (best_distribution), so a gap depends on its two classes
    only and on no seed; `seed` is kept for the analyses that do sample."""
    sign = 1.0 if higher_is_better(quality) else -1.0
    classes = by_class(points)
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


# -- summaries for people ------------------------------------------------------------------------------
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
