"""Percentile intervals that always hold their own estimate.

A bootstrap percentile can land a few units in the last place beside the point estimate when the
resamples collapse onto it (noise-free or tied data), and which side depends on the processor's
maths library. Every interval Matchup reports is widened to its estimate here, so "the interval
contains the estimate" holds by construction, not by luck.
"""
from __future__ import annotations

import math

import numpy as np


def percentile_interval(draws, estimate: float, level: float = 95.0) -> tuple[float, float]:
    """(low, high): the central `level`% of the finite draws, widened to hold `estimate`;
    (nan, nan) when there is no finite draw or no finite estimate."""
    values = np.asarray(draws, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values) or not math.isfinite(estimate):
        return math.nan, math.nan
    tail = (100.0 - level) / 2
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(min(low, estimate)), float(max(high, estimate))


def percentile_band(draws: np.ndarray, estimates: np.ndarray, level: float = 95.0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile_interval for draws of shape (n_draws, n_points) around `estimates`."""
    tail = (100.0 - level) / 2
    low, high = np.percentile(draws, [tail, 100.0 - tail], axis=0)
    return np.minimum(low, estimates), np.maximum(high, estimates)


def holding(low: float, high: float, estimate: float) -> tuple[float, float]:
    """An interval computed elsewhere (a t-interval, a Wilson interval), widened to hold its estimate."""
    if not all(math.isfinite(v) for v in (low, high, estimate)):
        return low, high
    return min(low, estimate), max(high, estimate)
