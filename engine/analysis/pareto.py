"""Per class, the Pareto frontier of quality against cost: the best a class offers at each budget.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from engine.analysis.points_table import _oriented


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
