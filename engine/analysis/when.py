"""When does each class win, and is it the architecture or the pre-training data?

The budget gaps of engine.analysis split by pre-training data scale (≈1M, ≈10M, ≈100M, ≥1B
images), and the Overview's verdicts told with the data behind a lead: a ViT lead built only
on checkpoints pre-trained on far more data than the ConvNets they beat says little about the
architecture. Pure functions over the points of engine.analysis.
"""
from __future__ import annotations

import math

import pandas as pd

from engine.analysis import budget_match, pairing, points_table
from engine.catalog.objectives import OBJECTIVES
from engine.catalog.taxonomy import DATA_SCALES

COMPARISONS = (("ViT", "ConvNet"), ("Hybrid", "ConvNet"))


GROUPINGS = {"data_scale": "pre-training data scale", "pretrain_data": "pre-training data",
             "objective": "pre-training objective"}


def groups_of(points: pd.DataFrame, by: str) -> list[str]:
    """The rows of the grid: every data scale; or each pre-training dataset on which ConvNets
    and another compared class were both trained (most checkpoints first)."""
    if by == "data_scale":
        return list(DATA_SCALES)
    if by not in GROUPINGS:
        raise points_table.AnalysisError(f"Unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}.")
    present = points.groupby(by)["arch_class"].agg(set)
    both = [g for g, classes in present.items()
            if any(other in classes and reference in classes for other, reference in COMPARISONS)]
    sizes = points.groupby(by)["checkpoint"].nunique()
    return sorted(both, key=lambda g: (-sizes[g], g))


def gap_grid(points: pd.DataFrame, quality: str, budgets, n_boot: int = budget_match.N_BOOT, seed: int = 0,
             by: str = "data_scale") -> list[dict]:
    """One cell per (group, budget, comparison), a group being a data scale (`by="data_scale"`)
    or a pre-training dataset (`by="pretrain_data"`, e.g. LAION-2B for the image-text zoo): the
    gap (best of one class minus best of the other with cost <= budget, both pre-trained on that
    group's data), its bootstrap CI, the number of checkpoints of each class behind it and the
    verdict. A cell where a class has no checkpoint has gap None: nothing to compare, not a tie."""
    cells = []
    for scale in groups_of(points, by):
        part = points[points[by] == scale]
        rows = budget_match.budget_table(part, quality, budgets, n_boot, seed) if not part.empty else [
            {"budget": float(b), "best": {}, "gaps": {}} for b in budgets]
        for row in rows:
            for other, reference in COMPARISONS:
                gap = row["gaps"].get(f"{other}-{reference}")
                best = row["best"]
                cell = {by: scale, "group": scale, "budget": row["budget"], "comparison": f"{other} − {reference}",
                        "class": other, "reference": reference,
                        "n_" + other: best.get(other, {}).get("n_under_budget", 0),
                        "n_" + reference: best.get(reference, {}).get("n_under_budget", 0),
                        "gap": None, "ci_low": None, "ci_high": None, "leader": None, "verdict": None}
                cell["n_checkpoints"] = cell["n_" + other] + cell["n_" + reference]
                if gap is not None:
                    cell.update(gap=gap["gap"], ci_low=gap["ci_low"], ci_high=gap["ci_high"],
                                leader=gap["leader"], verdict=gap["verdict"])
                cells.append(cell)
    return cells


def _scales_of(checkpoints: set[str], points: pd.DataFrame) -> list[str]:
    found = set(points.loc[points["checkpoint"].isin(checkpoints), "data_scale"].dropna())
    return [s for s in DATA_SCALES if s in found]


def _objectives_of(checkpoints: set[str], points: pd.DataFrame) -> list[str]:
    if "objective" not in points:
        return []
    found = set(points.loc[points["checkpoint"].isin(checkpoints), "objective"].dropna())
    return [o for o in OBJECTIVES if o in found]


def _scale_text(scales: list[str]) -> str:
    return (" or ".join(scales) + " images") if scales else "unknown data"


def _same_group_text(points: pd.DataFrame, quality: str, budgets: list, other: str, reference: str, by: str,
                     n_boot: int, seed: int) -> str:
    """'ViTs lead at ≈1M; no clear winner at ≥1B': the verdict within each group (a data scale,
    an objective) over the run's budgets only (the grid bootstraps per group)."""
    same = [c for c in gap_grid(points, quality, budgets, n_boot, seed, by)
            if c["comparison"] == f"{other} − {reference}" and c["gap"] is not None]
    if not same:
        return f"no {GROUPINGS[by]} has both classes under these budgets"
    groups = list(dict.fromkeys(c["group"] for c in same))
    parts = []
    for who in (other, reference):
        at = [g for g in groups if any(c["leader"] == who and c["group"] == g for c in same)]
        if at:
            parts.append(f"{who}s lead at {', '.join(at)}")
    for state in ("borderline", "no clear winner", "too few"):
        at = [g for g in groups if not any(c["leader"] for c in same if c["group"] == g)
              and any(c["verdict"] == state and c["group"] == g for c in same)]
        if at:
            parts.append(f"{state} at {', '.join(at)}")
    return "; ".join(parts)


def explained_verdict(points: pd.DataFrame, quality: str, budgets, other: str = "ViT",
                      reference: str = "ConvNet", unit: str = "", n_boot: int = budget_match.N_BOOT, seed: int = 0,
                      rows: list[dict] | None = None) -> list[str]:
    """The Overview's sentences (budget_match.verdict), each lead followed by the data and the
    pre-training objective behind it: where the leading class's best checkpoints and the other's
    were pre-trained at different scales (or with different objectives), the verdict at the same
    scale (objective) over the same budgets. `rows`: the budget table of these points and
    budgets, if the caller has it."""
    rows = rows if rows is not None else budget_match.budget_table(points, quality, budgets, n_boot, seed)
    runs = budget_match.verdict_runs(rows, other, reference)
    sentences = []
    for run, sentence in zip(runs, budget_match.verdict(rows, other, reference, unit), strict=True):
        leader = run[0]["leader"]
        if leader is None:
            sentences.append(sentence)
            continue
        trailer = reference if leader == other else other
        by_budget = {r["budget"]: r["best"] for r in rows}
        lead_best = {by_budget[r["budget"]][leader]["checkpoint"] for r in run}
        trail_best = {by_budget[r["budget"]][trailer]["checkpoint"] for r in run}
        in_run = [r["budget"] for r in run]
        lead_scales, trail_scales = _scales_of(lead_best, points), _scales_of(trail_best, points)
        if lead_scales == trail_scales:
            said = sentence + f" (both pre-trained on {_scale_text(lead_scales)})"
        else:
            said = (f"{sentence}, the leading {leader}s pre-trained on {_scale_text(lead_scales)}, the {trailer}s on "
                    f"{_scale_text(trail_scales)}; at the same data scale: "
                    + _same_group_text(points, quality, in_run, other, reference, "data_scale", n_boot, seed))
        lead_objectives, trail_objectives = _objectives_of(lead_best, points), _objectives_of(trail_best, points)
        if lead_objectives and trail_objectives and lead_objectives != trail_objectives:
            said += (f"; the leading {leader}s pre-trained with {' or '.join(lead_objectives)}, the {trailer}s "
                     f"{' or '.join(trail_objectives)}; at the same objective: "
                     + _same_group_text(points, quality, in_run, other, reference, "objective", n_boot, seed))
        sentences.append(said)
    return sentences


def same_data_pairs(points: pd.DataFrame, quality: str, tolerance: float = 0.10, left: str = "ViT",
                    right: str = "ConvNet") -> dict:
    """Matched pairs over all checkpoints, and restricted to pairs with the same pre-training data
    (e.g. both ImageNet-21k → 1k), side by side: how much of a win share the data explains."""
    return {"all": pairing.matched_pairs(points, quality, tolerance, left, right),
            "same_data": pairing.matched_pairs(points, quality, tolerance, left, right, match_on="pretrain_data")}


def when(points: pd.DataFrame, quality: str, budgets=None, tolerance: float = 0.10, n_boot: int = budget_match.N_BOOT,
         seed: int = 0, by: str = "data_scale") -> dict:
    """Everything the When page and `analyze when` show; `by`: group by data scale or by
    pre-training dataset."""
    budgets = list(budgets) if budgets else budget_match.log_budgets(points, n=8)
    pairs = {f"{left}-{right}": same_data_pairs(points, quality, tolerance, left, right)
             for left, right in COMPARISONS}
    return {"budgets": budgets, "cells": gap_grid(points, quality, budgets, n_boot, seed, by), "pairs": pairs,
            "n_boot": n_boot, "seed": seed, "tolerance": tolerance, "by": by}


SHADES = ("leads", "no clear winner", "too few", "no data")  # how a heatmap cell is filled


def cells_frame(cells: list[dict]) -> pd.DataFrame:
    """The grid as a frame for a heatmap: a text label per cell (gap and CI, or blank) whose
    counts are always the class's then the reference's ("n = 12 + 40": 12 ViTs, 40 ConvNets),
    and a shade: coloured by the gap only where a class leads, one neutral fill for no clear
    winner (and borderline), grey for too few."""
    frame = pd.DataFrame(cells)
    if frame.empty:
        return frame

    def label(row):
        if row["gap"] is None or (isinstance(row["gap"], float) and math.isnan(row["gap"])):
            return ""
        counts = [int(row["n_" + row["class"]]), int(row["n_" + row["reference"]])]
        if row["verdict"] == "too few":
            return f"n = {min(counts)}:\ntoo few"
        text = budget_match.bound_text
        return (f"{text(row['gap'], 1)}\n[{text(row['ci_low'], 1)}, {text(row['ci_high'], 1)}]\n"
                f"n = {counts[0]} + {counts[1]}")
    frame["label"] = frame.apply(label, axis=1)
    frame["gap"] = frame["gap"].astype(float)
    frame["verdict"] = [("no data" if gap != gap else f"{leader} leads" if isinstance(leader, str) else verdict)
                        for gap, leader, verdict in zip(frame["gap"], frame["leader"], frame["verdict"], strict=True)]
    frame["too_few"] = frame["verdict"] == "too few"
    frame["shade"] = ["no data" if gap != gap else "too few" if few else "leads" if isinstance(leader, str)
                      else "no clear winner"
                      for gap, few, leader in zip(frame["gap"], frame["too_few"], frame["leader"], strict=True)]
    if "data_scale" in frame:
        frame["data_scale"] = pd.Categorical(frame["data_scale"], categories=list(DATA_SCALES), ordered=True)
    return frame.assign(budget_label=frame["budget"].map(lambda b: f"{b:g}"))

