"""How much a verdict on the training-compute axis rests on estimates: two checks per budget,
computed exactly like the verdict itself (budget_match's exact bootstrap and one verdict rule).

- *estimates*: does the verdict hold when every estimate moves within its range? Each class is
  put at its most favourable end (its estimates at their low ends, the other class's at their
  high ends) and at its least favourable; the best under a budget only grows as a class's points
  get cheaper, so these two extremes bound every movement within the ranges.
- *coverage*: does it hold with the checkpoints that have no estimate, put in at any length
  between COVERAGE_EPOCHS of their stated data (a bracket, never an estimate)? The same two
  extremes: one class's unestimated checkpoints at the bracket's cheap end and the other's at its
  dear end, then the other way round.
A check `holds` when both extremes give the reported verdict (its state and leader); else it
`could change`, with the reason in words. Pure functions over the points: no SQL, no UI.
"""
from __future__ import annotations

import pandas as pd

from engine.analysis.budget_match import N_BOOT, budget_table, verdict_label, with_ci
from engine.catalog.training_compute import COVERAGE_EPOCHS

HOLDS, COULD_CHANGE = "holds", "could change"


def _state(gap: dict | None) -> tuple:
    """(verdict, leader); no comparison at all (a class with nothing under the budget) reads as 'too few'."""
    return (gap.get("verdict"), gap.get("leader")) if gap else ("too few", None)


def _gaps_at(points: pd.DataFrame, quality: str, budgets: list[float], other: str, reference: str,
             n_boot: int) -> list[dict | None]:
    """The other − reference gap at each budget, from one budget table over the two classes."""
    two = points[points["arch_class"].isin([other, reference])]
    if two.empty:
        return [None] * len(budgets)
    return [row["gaps"].get(f"{other}-{reference}") for row in budget_table(two, quality, budgets, n_boot)]


def _moved(points: pd.DataFrame, favoured: str, other_class: str) -> pd.DataFrame:
    """Every estimate at its end most favourable to `favoured`: its checkpoints cheapest, the other's dearest."""
    cost = points["cost"].where(~points["arch_class"].eq(favoured), points["cost_low"].fillna(points["cost"]))
    cost = cost.where(~points["arch_class"].eq(other_class), points["cost_high"].fillna(points["cost"]))
    return points.assign(cost=cost)


def _with_unestimated(points: pd.DataFrame, unestimated: pd.DataFrame, favoured: str, other_class: str) -> pd.DataFrame:
    """The points plus the unestimated checkpoints: `favoured`'s at the bracket's cheap end, the other's at its dear end."""
    extra = unestimated[unestimated["arch_class"].isin([favoured, other_class])]
    extra = extra.assign(cost=extra["cost_low"].where(extra["arch_class"].eq(favoured), extra["cost_high"]))
    return pd.concat([points, extra], ignore_index=True) if not extra.empty else points


def _reason(gap: dict | None, how: str) -> str:
    if not gap:
        return f"could change: too few to compare {how}"
    said = verdict_label(gap)
    if gap.get("verdict") in ("lead", "borderline", "no clear winner"):
        said += f" ({with_ci(gap['gap'], gap['ci_low'], gap['ci_high'])})"
    return f"could change: {said} {how}"


def _check(reported: dict, scenarios: list[tuple[dict | None, str]]) -> dict:
    for gap, how in scenarios:
        if _state(gap) != _state(reported):
            return {"state": COULD_CHANGE, "reason": _reason(gap, how)}
    return {"state": HOLDS, "reason": ""}


def _few(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:2])
    return shown + (f" and {len(names) - 2} more" if len(names) > 2 else "")


def footings(points: pd.DataFrame, unestimated: pd.DataFrame | None, quality: str, budgets: list[float],
             reported: list[dict], other: str, reference: str = "ConvNet", n_boot: int = N_BOOT) -> list[dict]:
    """The estimates and coverage checks of the reported gaps (other − reference) at each budget:
    each extreme is one budget table over every budget (the extremes do not depend on the budget)."""
    moved = [(_gaps_at(_moved(points, favoured, against), quality, budgets, other, reference, n_boot),
              f"with every {favoured} estimate at its low end and every {against} at its high end")
             for favoured, against in ((other, reference), (reference, other))]
    unestimated = unestimated if unestimated is not None else points.iloc[:0]
    mine = unestimated[unestimated["arch_class"].isin([other, reference])]
    counts = {c: int(n) for c, n in mine.groupby("arch_class")["checkpoint"].nunique().items()}
    n_out = sum(counts.values())
    added = [(favoured, _gaps_at(_with_unestimated(points, mine, favoured, against), quality, budgets, other,
                                 reference, n_boot)) for favoured, against in ((other, reference), (reference, other))]
    out = []
    for i, (budget, gap) in enumerate(zip(budgets, reported, strict=True)):
        estimates = _check(gap, [(gaps[i], how) for gaps, how in moved])
        if estimates["state"] == HOLDS:
            estimates["reason"] = "holds within every estimate's range"
        scenarios = []
        for favoured, gaps in added:
            entering = mine[(mine["arch_class"] == favoured) & (mine["cost_low"] <= budget)]
            entering = entering.sort_values("quality", ascending=False)["checkpoint"].drop_duplicates().tolist()
            scenarios.append((gaps[i], f"if the unestimated {favoured}s ({_few(entering)}) trained about "
                                       f"{COVERAGE_EPOCHS[0]} epochs" if entering else
                              f"with the unestimated {favoured}s at {COVERAGE_EPOCHS[0]} epochs"))
        coverage = {**_check(gap, scenarios), "unestimated": dict(counts)}
        if coverage["state"] == HOLDS:
            coverage["reason"] = (f"holds with the {n_out} unestimated checkpoints at "
                                  f"{COVERAGE_EPOCHS[0]}–{COVERAGE_EPOCHS[1]:,} epochs" if n_out
                                  else "no unestimated checkpoints")
        out.append({"estimates_check": estimates, "coverage_check": coverage})
    return out


def footing(points: pd.DataFrame, unestimated: pd.DataFrame | None, quality: str, budget: float, reported: dict,
            other: str, reference: str = "ConvNet", n_boot: int = N_BOOT) -> dict:
    """The estimates and coverage checks of one reported gap (other − reference at `budget`)."""
    return footings(points, unestimated, quality, [budget], [reported], other, reference, n_boot)[0]


def add_footing(rows: list[dict], points: pd.DataFrame, unestimated: pd.DataFrame | None, quality: str,
                reference: str = "ConvNet", n_boot: int = N_BOOT) -> list[dict]:
    """budget_table rows with each gap's estimates_check and coverage_check (training-compute axis)."""
    for key in dict.fromkeys(k for row in rows for k in row["gaps"]):
        other = key.split("-")[0]
        having = [row for row in rows if key in row["gaps"]]
        checks = footings(points, unestimated, quality, [r["budget"] for r in having], [r["gaps"][key] for r in having],
                          other, reference, n_boot)
        for row, check in zip(having, checks, strict=True):
            row["gaps"][key].update(check)
    return rows


def footing_text(gap: dict) -> str:
    """'holds within every estimate's range; holds with the 394 unestimated checkpoints at
    100–1,000 epochs', or the reason it could change: the sentence the pages write after a verdict."""
    parts = [gap[k]["reason"] for k in ("estimates_check", "coverage_check") if gap.get(k) and gap[k].get("reason")]
    return "; ".join(parts)
