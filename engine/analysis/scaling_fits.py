"""How each class scales: power-law (and saturating) fits of error against cost, their bootstrap
bands, and where two classes' curves cross.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.analysis.pareto import frontier
from engine.analysis.points_table import AnalysisError, higher_is_better
from engine.intervals import holding, percentile_band, percentile_interval


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


def _cost(value: float, unit: str) -> str:
    """149, 1,066, 0.158; 6.3e8 and 5.7e-9 outside [0.01, 10,000)."""
    if 0.01 <= abs(value) < 1e4:
        return (f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}") + unit
    mantissa, _, exponent = f"{value:.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}{unit}"


def crossover_text(c: dict, unit: str = "") -> str:
    """One crossover for reading, with the reason when it is not given: where the fitted lines
    cross and the estimate's interval, and why that interval does not locate it."""
    pair = f"{c['classes'][0]} / {c['classes'][1]}"
    low, high = c["range"]
    covered = f"the costs both classes cover, {_cost(low, unit)} to {_cost(high, unit)}"
    if c.get("crossover"):
        ci_low, ci_high = c["crossover_ci"]
        return (f"{pair} cross at {_cost(c['crossover'], unit)} (95% CI {_cost(ci_low, '')}–{_cost(ci_high, '')}); "
                f"{c['note']}")
    if c.get("unreliable_crossover"):
        ci_low, ci_high = c["crossover_ci"]
        decades = math.log10(ci_high / ci_low) if ci_low > 0 and math.isfinite(ci_high) else math.inf
        return (f"{pair}: {UNRELIABLE_CROSSOVER}. The fitted lines cross at {_cost(c['unreliable_crossover'], unit)}, "
                f"but the 95% interval of that estimate runs from {_cost(ci_low, unit)} to {_cost(ci_high, unit)} "
                f"({decades:.1f} decades): a crossover is located only when its interval spans at most "
                f"{MAX_CROSSOVER_DECADES:g} decades inside {covered}")
    if c.get("unconstrained_crossover"):
        return (f"{pair}: {c['note']}. The fitted lines would cross at {_cost(c['unconstrained_crossover'], unit)}, "
                f"outside {covered}")
    return f"{pair}: {c['note']}"


def crossings_frame(crossovers: list[dict], reference: str, low: float, high: float) -> pd.DataFrame | None:
    """Each class's crossing with `reference` that falls in the data's range, located or not:
    the estimate, its 95% interval, and that interval cut to [low, high] for drawing (None when
    there is none)."""
    rows = []
    for c in crossovers:
        if reference not in c["classes"] or len(set(c["classes"])) != 2:
            continue
        at = c.get("crossover") or c.get("unreliable_crossover")
        if not at:
            continue
        other = next(k for k in c["classes"] if k != reference)
        ci_low, ci_high = c["crossover_ci"]
        rows.append({"arch_class": other, "pair": f"{other} / {reference}", "crossover": at, "ci_low": ci_low,
                     "ci_high": ci_high, "band_low": max(ci_low, low), "band_high": min(ci_high, high),
                     "located": "yes" if c.get("crossover") else "no (interval too wide)"})
    return pd.DataFrame(rows) if rows else None


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


def fit_band(fit: PowerFit, costs: np.ndarray, level: float = 95.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fitted error and its bootstrap band at the given costs."""
    log_c = np.log(np.asarray(costs, dtype=float))
    draws = fit.boot[:, :1] + fit.boot[:, 1:] * log_c[None, :]
    mid = fit.a + fit.b * log_c
    low, high = percentile_band(draws, mid, level)
    fitted = np.exp(mid)
    return fitted, np.minimum(np.exp(low), fitted), np.maximum(np.exp(high), fitted)
