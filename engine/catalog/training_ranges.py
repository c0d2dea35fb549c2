"""Every training-compute estimate is a range, and a total that lacks a stage says so.

Per stage: an `exact` or `paper` recipe is good to the counting convention's own spread (3 ×
forward for forward + backward, one FLOP convention for all networks, dataset sizes a source
rounds); an `assumed` recipe (a length taken by analogy) spans the analogy it rests on: the
lengths of its documented siblings (same tag, stage and dataset, confidence exact or paper), or
the row's own `length_range`, else a factor ASSUMED_SPREAD either way, each on the length, times
the convention's spread of a paper recipe. A stage whose length no
source gives is *missing*: it adds 0 at the low end and, at the high end, the longest documented
stage of its kind on its dataset after pre-training elsewhere (stated). A total with a missing
stage is never complete; it is placed on the axis (at the geometric middle of its range) only
where that range is narrow (high ≤ NARROW × low), else left out and counted as missing.
Pure functions: no SQL, no UI.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

# The counting convention's own spread: the ViT paper's Table 6 (its JFT runs) against this
# estimator on the same recipes lands within 0.95-1.05 (engine.catalog.training_compute.vit_paper_check),
# so an exact recipe is good to ×/÷ 1.1; a paper recipe adds a dataset size a source rounds ("303M").
SPREAD = {"exact": 1.1, "paper": 1.25}
ASSUMED_SPREAD = 2.0  # an analogy with no documented sibling and no stated range: ×/÷ 2
NARROW = 2.0  # a lower-bound range this narrow is placed at its geometric middle
PLACED_MIDDLE = "geometric middle of a lower-bound range"
PLACED_ESTIMATE = "estimate"
LOWER_BOUND_ONLY = "lower bound only (range too wide to place)"


def _length(row: dict, images: int | None) -> float | None:
    if row.get("samples") is not None:
        return float(row["samples"])
    if row.get("epochs") is not None and images:
        return float(row["epochs"]) * images
    return None


@dataclass
class RangeRules:
    """What the recipe book documents: each (tag, stage, dataset)'s sourced lengths, and the
    longest documented stage of each (kind, dataset) that followed pre-training on other data."""
    siblings: dict[tuple, tuple[float, float, int]] = field(default_factory=dict)
    longest: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)

    @classmethod
    def from_stages(cls, stages: list[dict], images: dict[str, int | None]) -> "RangeRules":
        """`stages`: the recipe rows (tag, arch_pattern, stage, stage_kind, dataset, epochs,
        samples, confidence); `images`: dataset -> its image count (None: unknown)."""
        siblings: dict[tuple, list[float]] = {}
        longest: dict[tuple[str, str], tuple[float, str]] = {}
        by_group: dict[tuple, list[dict]] = {}
        for row in stages:
            by_group.setdefault((row["tag"], row["arch_pattern"]), []).append(row)
        for rows in by_group.values():
            rows = sorted(rows, key=lambda r: int(r["stage"]))
            for before, row in zip([None, *rows[:-1]], rows, strict=True):
                length = _length(row, images.get(row["dataset"]))
                if length is None or row["confidence"] not in SPREAD:
                    continue
                siblings.setdefault((row["tag"], int(row["stage"]), row["dataset"]), []).append(length)
                if before is not None and before["dataset"] != row["dataset"] and row["stage_kind"] != "pretrain":
                    key = (row["stage_kind"], row["dataset"])
                    if length > longest.get(key, (0.0, ""))[0]:
                        longest[key] = (length, f"{row['tag']} {row['arch_pattern']}")
        return cls({k: (min(v), max(v), len(v)) for k, v in siblings.items()}, longest)

    def length_bounds(self, row: dict, samples: float, images: int | None) -> tuple[float, float, str]:
        """(low, high) samples of a stage whose length is known, and why that range."""
        if row.get("length_range"):
            low, high = row["length_range"]
            unit = "samples" if row.get("samples") is not None else "epochs"
            scale = 1.0 if unit == "samples" else float(images or 0)
            return low * scale, high * scale, f"stated range {low:g}-{high:g} {unit}"
        if row.get("confidence") != "assumed":
            return samples, samples, ""
        sibling = self.siblings.get((row.get("tag"), int(row.get("stage") or 0), row.get("dataset")))
        if sibling:
            low, high, n = sibling
            return (min(low, samples), max(high, samples),
                    f"the lengths of {n} documented sibling(s) of this recipe")
        return samples / ASSUMED_SPREAD, samples * ASSUMED_SPREAD, f"an analogy: ×/÷ {ASSUMED_SPREAD:g}"

    def longest_for(self, kind: str, dataset: str) -> tuple[float | None, str]:
        """The longest documented (kind, dataset) stage after pre-training elsewhere: the
        high end of a stage no source gives the length of."""
        found = self.longest.get((kind, dataset))
        if found is None and kind in ("intermediate", "finetune"):  # a fine-tune either way on that dataset
            found = self.longest.get(("finetune" if kind == "intermediate" else "intermediate", dataset))
        if found is None:
            return None, f"no documented {kind} on {dataset} to bound it"
        return found[0], f"at most the longest documented {kind} on {dataset} ({found[0]:.3g} samples, {found[1]})"


def stage_range(stage: dict, length: tuple[float, float, str] | None, longest: tuple[float | None, str]) -> dict:
    """The stage with `flops_low` / `flops_high` and `missing`: `length` the (low, high, why)
    of a stage whose length is known; `longest` what bounds a missing one."""
    per_sample = stage.get("flops_per_sample")
    if stage.get("samples") is None:
        high = per_sample * longest[0] if per_sample is not None and longest[0] is not None else None
        return {**stage, "missing": True, "flops_low": 0.0, "flops_high": high,
                "range_note": "length not given by any source: " + longest[1]}
    if stage.get("flops") is None:
        return {**stage, "missing": False, "flops_low": None, "flops_high": None, "range_note": ""}
    spread = SPREAD.get(stage.get("confidence"), SPREAD["paper"])
    low_samples, high_samples, why = length or (stage["samples"], stage["samples"], "")
    ratio_low, ratio_high = low_samples / stage["samples"], high_samples / stage["samples"]
    note = why or f"{stage.get('confidence')} recipe: ×/÷ {spread:g}"
    return {**stage, "missing": False, "flops_low": stage["flops"] * ratio_low / spread,
            "flops_high": stage["flops"] * ratio_high * spread, "range_note": note}


def summarize(stages: list[dict]) -> dict:
    """A checkpoint's total from its ranged stages: train_flops (None where it cannot be
    placed), train_flops_low / _high, complete, the missing stages named, and how it is placed."""
    known = [s for s in stages if not s.get("missing")]
    missing = [s for s in stages if s.get("missing")]
    out = {"train_flops": None, "train_flops_low": None, "train_flops_high": None, "complete": False,
           "missing_stages": "; ".join(f"stage {s['stage']} ({s['kind']} on {s['dataset']})" for s in missing),
           "placement": None}
    if not stages or any(s.get("flops") is None for s in known):
        return out
    point = sum(s["flops"] for s in known)
    low = sum(s["flops_low"] for s in known)
    high_known = sum(s["flops_high"] for s in known)
    if not missing:
        return {**out, "train_flops": point, "train_flops_low": low, "train_flops_high": high_known,
                "complete": True, "placement": PLACED_ESTIMATE}
    extra = [s["flops_high"] for s in missing]
    if any(x is None for x in extra) or point <= 0:
        return {**out, "train_flops_low": low if point > 0 else None, "placement": LOWER_BOUND_ONLY}
    upper = point + sum(extra)
    placed = math.sqrt(point * upper) if upper <= NARROW * point else None
    return {**out, "train_flops": placed, "train_flops_low": low, "train_flops_high": high_known + sum(extra),
            "placement": PLACED_MIDDLE if placed is not None else LOWER_BOUND_ONLY}


def flops_text(value) -> str:
    """A FLOP count for reading: '1.9e19' (two significant digits, no '+'); '—' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    mantissa, _, exponent = f"{float(value):.1e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def range_text(value: float | None, low: float | None, high: float | None) -> str:
    """'1.9e19 [1.7e19, 2.1e19]', as the Checkpoint page, the Frontier tooltip and the CLI show it."""
    def fmt(x):
        return "?" if x is None or (isinstance(x, float) and math.isnan(x)) else flops_text(x)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if low is None or (isinstance(low, float) and math.isnan(low)):
            return "unknown"
        return f"≥ {fmt(low)}" + (f" (at most {fmt(high)})" if high is not None and not math.isnan(high) else "")
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"
