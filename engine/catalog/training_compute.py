"""Training compute: what it cost to train each checkpoint, from its recipe and the project's FLOPs.

The seed paper's budget is training compute. Here it is estimated the way DESIGN.md fixes it:
per stage, 3 × forward FLOPs (the project's one count, at the stage's *train* resolution) ×
samples seen × the stage's per-step multipliers; a distillation teacher's forward per sample;
masked image modelling at its visible fraction plus its decoder; image-text pre-training counts
the image tower (and the text tower where the recipe names one); stages summed. Recipes are data
(data/training_recipes.csv), each stage with the source it was checked at; dataset sizes too
(data/training_datasets.csv). A checkpoint without a recipe is unknown, never filled with a
default. Pure functions over the catalog and the FLOP counts: no SQL, no UI.
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine.paths import DATA_DIR

RECIPES_CSV = DATA_DIR / "training_recipes.csv"
DATASETS_CSV = DATA_DIR / "training_datasets.csv"
COLUMNS = ["tag", "arch_pattern", "stage", "stage_kind", "dataset", "epochs", "samples", "train_res",
           "objective", "mask_ratio", "decoder", "teacher", "crops", "multiplier", "text_tower", "source",
           "confidence", "note"]
# Optional columns (a file without them loads as before): `network`, the timm architecture that
# ran the stage where it is not the checkpoint's own (Swin-B window12_384's 224-px IN-22k
# pre-training ran the window-7 network); `parent`, a checkpoint whose whole training precedes
# this recipe's stages (engine.catalog.lineage); `length_range`, LOW-HIGH in the stage's unit
# (epochs or samples), the range an assumed length rests on.
OPTIONAL_COLUMNS = ["network", "parent", "length_range"]
STAGE_KINDS = ("pretrain", "intermediate", "finetune")
# mim: masked tokens dropped, the encoder sees the visible fraction (MAE, FCMAE, Hiera);
# mim_full: masked tokens replaced by a mask token, the encoder sees every token (BEiT, EVA-02).
OBJECTIVES = ("supervised", "distillation", "semi_supervised", "mim", "mim_full", "self_distillation",
              "contrastive")
CONFIDENCES = ("exact", "paper", "assumed")  # strongest first
BACKWARD_FACTOR = 3  # forward + backward ≈ 3 forwards (DESIGN.md)
DECODER = re.compile(r"^(\d+)x(\d+)@(\d+)$")  # DEPTHxWIDTH@PATCH: transformer blocks over every patch
CROPS = re.compile(r"^\d+x\d+(\+\d+x\d+)*$")  # e.g. 2x224+10x96
TEACHER = re.compile(r"^([a-z0-9_]+)@(\d+)$")  # a timm architecture (or a FROZEN_NETWORKS one) at a resolution
NETWORK = re.compile(r"^[a-z0-9_]+$")
CHECKPOINT_ID = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
LENGTH_RANGE = re.compile(r"^\s*([0-9.eE+]+)\s*-\s*([0-9.eE+]+)\s*$")


def dall_e_encoder_flops(res: int) -> float:
    """Forward FLOPs (2 per multiply-add) of the DALL-E dVAE encoder, BEiT's frozen tokenizer,
    at `res` px, counted by hand from github.com/openai/DALL-E dall_e/encoder.py: a 7×7 input
    conv to 256 channels; four groups of two bottleneck blocks (3×3, 3×3, 3×3 convs at a quarter
    of the width, then 1×1; a 1×1 shortcut where the width changes) at widths 256, 512, 1024,
    2048, a 2×2 max-pool after each of the first three; a 1×1 conv to the 8192-token vocabulary."""
    def conv(k, c_in, c_out, side):
        return 2.0 * k * k * c_in * c_out * side * side
    side, total, width_in = res, conv(7, 3, 256, res), 256
    for group, width in enumerate((256, 512, 1024, 2048)):
        for block in range(2):
            c_in = width_in if block == 0 else width
            hidden = width // 4
            total += (conv(3, c_in, hidden, side) + 2 * conv(3, hidden, hidden, side) + conv(1, hidden, width, side)
                      + (conv(1, c_in, width, side) if c_in != width else 0.0))
        width_in = width
        if group < 3:
            side //= 2
    return total + conv(1, 2048, 8192, side)


# Frozen networks that run per training sample and are not timm architectures: name -> FLOPs at a
# resolution. A recipe names one as a teacher, `name@RES`.
FROZEN_NETWORKS = {"dall_e_dvae_encoder": dall_e_encoder_flops}


class RecipeError(ValueError):
    """A recipe row that cannot be used; the message names the row."""


@dataclass(frozen=True)
class Dataset:
    images: int | None  # None: no count found, so its stages must give samples
    exact: bool  # False: the count as a source rounds it ("303M")


@dataclass
class RecipeBook:
    """The recipes that loaded, one group of stages per (tag, arch_pattern), and what was refused."""
    stages: pd.DataFrame
    datasets: dict[str, Dataset]
    refused: list[str] = field(default_factory=list)

    def __post_init__(self):
        from engine.catalog.training_ranges import RangeRules
        self.by_tag: dict[str, dict[str, list[dict]]] = {}
        records = self.stages.sort_values(["tag", "arch_pattern", "stage"]).to_dict("records")
        for stage in records:
            for column in OPTIONAL_COLUMNS:
                stage.setdefault(column, None)
            self.by_tag.setdefault(stage["tag"], {}).setdefault(stage["arch_pattern"], []).append(stage)
        self.ranges = RangeRules.from_stages(records, {n: d.images for n, d in self.datasets.items()})

    def refused_line(self) -> str:
        """One line for the catalog's report: how many recipe groups were refused, the first why."""
        if not self.refused:
            return ""
        return (f"{len(self.refused)} training recipe row(s) refused (their checkpoints stay unknown); "
                f"first: {self.refused[0]}")


def load_datasets(path: Path | None = None) -> dict[str, Dataset]:
    """Dataset name -> its training images (or image-text pairs); each has its source in the file."""
    path = Path(path or DATASETS_CSV)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = {}
    for row in frame.itertuples():
        if not row.source.strip():
            raise RecipeError(f"{path.name}: dataset {row.name!r} has no source")
        out[row.name] = Dataset(int(row.images) if row.images else None, row.exact == "yes")
    return out


# Every numeric cell's range: a value outside is refused, naming the row (no recipe trains longer,
# larger or on more crops than these; a typo of a few digits must not become a stored estimate).
BOUNDS = {"stage": (1, 100), "epochs": (1e-3, 10_000), "samples": (1, 1e13), "train_res": (16, 4096),
          "multiplier": (1e-3, 100), "crop count": (1, 1000), "crop resolution": (16, 4096),
          "decoder depth": (1, 100), "decoder width": (1, 16384), "decoder patch": (1, 1024),
          "teacher resolution": (16, 4096), "length_range bound": (1e-3, 1e13)}


def _number(text: str, what: str, where: str, integer: bool = False) -> float | None:
    """A numeric cell: finite, positive, within BOUNDS[what]; RecipeError naming the row otherwise."""
    if text == "":
        return None
    try:
        value = float(text)
    except (ValueError, OverflowError):
        raise RecipeError(f"{where}: {what} {text!r} is not a number") from None
    low, high = BOUNDS.get(what, (0, math.inf))
    if not math.isfinite(value) or value <= 0 or not low <= value <= high:
        raise RecipeError(f"{where}: {what} must be a positive number from {low:g} to {high:g}, not {text}")
    if integer and not value.is_integer():
        raise RecipeError(f"{where}: {what} must be a whole number, not {text}")
    return value


def _check_row(row: dict, datasets: dict[str, Dataset], where: str) -> dict:
    """The row with typed values; RecipeError naming the row for anything unusable."""
    if not row["source"].strip():
        raise RecipeError(f"{where}: no source (every stage says where it was checked)")
    if row["stage_kind"] not in STAGE_KINDS:
        raise RecipeError(f"{where}: stage_kind {row['stage_kind']!r} is not one of {', '.join(STAGE_KINDS)}")
    if row["objective"] not in OBJECTIVES:
        raise RecipeError(f"{where}: objective {row['objective']!r} is not one of {', '.join(OBJECTIVES)}")
    if row["confidence"] not in CONFIDENCES:
        raise RecipeError(f"{where}: confidence {row['confidence']!r} is not one of {', '.join(CONFIDENCES)}")
    if row["dataset"] not in datasets:
        raise RecipeError(f"{where}: unknown dataset {row['dataset']!r} (add it to {DATASETS_CSV.name} with "
                          "its image count and source)")
    epochs = _number(row["epochs"], "epochs", where)
    samples = _number(row["samples"], "samples", where)
    if epochs is not None and samples is not None:
        raise RecipeError(f"{where}: give epochs or samples, not both")
    if epochs is not None and datasets[row["dataset"]].images is None:
        raise RecipeError(f"{where}: {row['dataset']} has no image count, so this stage must give samples")
    typed = {**row, "stage": int(_number(row["stage"], "stage", where, integer=True) or 0),
             "epochs": epochs, "samples": samples,
             "train_res": _number(row["train_res"], "train_res", where, integer=True),
             "multiplier": _number(row["multiplier"], "multiplier", where) or 1.0,
             "mask_ratio": None}
    if row["mask_ratio"]:
        try:
            ratio = float(row["mask_ratio"])
        except ValueError:
            raise RecipeError(f"{where}: mask_ratio {row['mask_ratio']!r} is not a number") from None
        if not 0 <= ratio < 1:
            raise RecipeError(f"{where}: mask_ratio must be in [0, 1), not {row['mask_ratio']}")
        typed["mask_ratio"] = ratio
    if row["objective"] == "mim" and typed["mask_ratio"] is None:
        raise RecipeError(f"{where}: a mim stage needs its mask_ratio (the fraction of patches dropped)")
    if row["decoder"] and not DECODER.match(row["decoder"]):
        raise RecipeError(f"{where}: decoder {row['decoder']!r} is not DEPTHxWIDTH@PATCH, e.g. 8x512@16")
    if row["decoder"]:
        for what, text in zip(("decoder depth", "decoder width", "decoder patch"), DECODER.match(row["decoder"]).groups(),
                              strict=True):
            _number(text, what, where, integer=True)
    if row["crops"] and not CROPS.match(row["crops"]):
        raise RecipeError(f"{where}: crops {row['crops']!r} is not COUNTxRES[+COUNTxRES], e.g. 2x224+10x96")
    for part in row["crops"].split("+") if row["crops"] else []:
        count, res = part.split("x")
        _number(count, "crop count", where, integer=True)
        _number(res, "crop resolution", where, integer=True)
    for teacher in (row.get("teacher") or "").split("+"):
        found = TEACHER.match(teacher.strip())
        if found:
            _number(found[2], "teacher resolution", where, integer=True)
    if row.get("network") and not NETWORK.match(row["network"]):
        raise RecipeError(f"{where}: network {row['network']!r} is not a timm architecture name")
    if row.get("parent") and not CHECKPOINT_ID.match(row["parent"]):
        raise RecipeError(f"{where}: parent {row['parent']!r} is not a checkpoint id (arch.tag)")
    typed["length_range"] = None
    if row.get("length_range"):
        found = LENGTH_RANGE.match(row["length_range"])
        try:
            bounds = [_number(x, "length_range bound", where) for x in found.groups()] if found else None
        except RecipeError:
            bounds = None
        if not bounds or not all(math.isfinite(b) and b > 0 for b in bounds):
            raise RecipeError(f"{where}: length_range {row['length_range']!r} is not LOW-HIGH with both bounds "
                              "positive, e.g. 100-300")
        if bounds[0] > bounds[1]:
            raise RecipeError(f"{where}: length_range {row['length_range']!r} has low > high")
        typed["length_range"] = tuple(bounds)
    return typed


def load_recipes(path: Path | None = None, datasets: dict[str, Dataset] | None = None) -> RecipeBook:
    """Every recipe group that checks out; a group with any unusable row is refused whole (a
    recipe missing a stage would be a wrong number), with the row named. Default: the shipped
    data/training_recipes.csv ($MATCHUP_RECIPES names another file)."""
    path = Path(path or os.environ.get("MATCHUP_RECIPES") or RECIPES_CSV)
    datasets = load_datasets() if datasets is None else datasets
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise RecipeError(f"{path.name} lacks the columns {', '.join(missing)}")
    for column in OPTIONAL_COLUMNS:
        if column not in raw.columns:
            raw[column] = ""
    refused, bad_groups, rows = [], set(), []
    for number, row in enumerate(raw[COLUMNS + OPTIONAL_COLUMNS].to_dict("records"), start=2):
        where = f"{path.name} line {number} ({row['tag']}, {row['arch_pattern']}, stage {row['stage']})"
        try:
            rows.append(_check_row(row, datasets, where))
        except RecipeError as e:
            refused.append(str(e))
            bad_groups.add((row["tag"], row["arch_pattern"]))
        except (ValueError, TypeError, OverflowError, ZeroDivisionError) as e:  # one bad row never stops the others
            refused.append(f"{where}: cannot be read ({type(e).__name__}: {e})")
            bad_groups.add((row["tag"], row["arch_pattern"]))
    every = COLUMNS + OPTIONAL_COLUMNS
    frame = pd.DataFrame(rows, columns=every) if rows else pd.DataFrame(columns=every)
    frame = frame.astype(object).where(frame.notna(), None)  # an empty value is None, never NaN
    for (tag, pattern), group in frame.groupby(["tag", "arch_pattern"]):
        if len({p or "" for p in group["parent"]}) > 1:
            refused.append(f"{path.name}: the stages of tag {tag}, arch_pattern {pattern} name different parents")
            bad_groups.add((tag, pattern))
    duplicated = frame[frame.duplicated(["tag", "arch_pattern", "stage"], keep=False)]
    for (tag, pattern, stage), _ in duplicated.groupby(["tag", "arch_pattern", "stage"]):
        refused.append(f"{path.name}: two rows claim tag {tag}, arch_pattern {pattern}, stage {stage}")
        bad_groups.add((tag, pattern))
    keep = ~frame.set_index(["tag", "arch_pattern"]).index.isin(list(bad_groups))
    stages = frame[keep].sort_values(["tag", "arch_pattern", "stage"]).reset_index(drop=True)
    return RecipeBook(stages, datasets, refused)


def _specificity(pattern: str) -> tuple[int, int]:
    """A narrower arch_pattern wins: more literal characters, then fewer wildcards."""
    wild = sum(pattern.count(c) for c in "*?[")
    return (len(pattern) - wild, -wild)


def recipe_for(book: RecipeBook, arch: str, tag: str) -> list[dict] | None:
    """The stages of the narrowest recipe whose tag is the checkpoint's and whose pattern matches
    its architecture, in order; None when there is none (the checkpoint stays unknown)."""
    recipes = book.by_tag.get(tag)
    if not recipes:
        return None
    patterns = [p for p in recipes if p == arch or (any(c in p for c in "*?[") and fnmatch.fnmatchcase(arch, p))]
    return recipes[max(patterns, key=_specificity)] if patterns else None


# -- what the estimate needs counted -----------------------------------------------------------------
def crops_of(stage: dict, default_res: int) -> list[tuple[int, int]]:
    """(count, resolution) of what the student runs per sample: its crops, else one view."""
    if stage["crops"]:
        return [(int(c), int(r)) for c, r in (part.split("x") for part in stage["crops"].split("+"))]
    return [(1, int(stage["train_res"] or default_res))]


def teachers_of(stage: dict) -> list[tuple[str, int]] | None:
    """(timm architecture, resolution) of each teacher ('a@224+b@384'), when every one is a timm
    architecture the project can count; None otherwise (no teacher, or one it cannot count)."""
    parts = [TEACHER.match(p.strip()) for p in (stage["teacher"] or "").split("+")]
    if not stage["teacher"] or not all(parts):
        return None
    return [(m[1], int(m[2])) for m in parts]


def needed_counts(book: RecipeBook, checkpoints: pd.DataFrame) -> set[tuple[str, int, int]]:
    """(arch, resolution, num_classes) forward counts the estimates need: each stage's student at
    its train resolution (and crops), each countable teacher with its default head."""
    needed = set()
    for row in checkpoints.itertuples():
        recipe = recipe_for(book, row.arch, row.tag)
        if recipe is None:
            continue
        for stage in recipe:
            for _, res in crops_of(stage, int(row.input_h)):
                needed.add((stage.get("network") or row.arch, res, int(row.num_classes)))
            for teacher in teachers_of(stage) or []:
                if teacher[0] not in FROZEN_NETWORKS:
                    needed.add((teacher[0], teacher[1], -1))  # -1: the teacher's own default head
    return needed


# -- the estimate ----------------------------------------------------------------------------------------
def decoder_flops(decoder: str, res: int) -> float:
    """Forward FLOPs of a DEPTHxWIDTH@PATCH transformer decoder over every patch at `res`: per
    block 24·d² per token (qkv, projection, 4× MLP; 2 FLOPs per multiply-add) plus 4·N·d
    per token for attention."""
    depth, width, patch = (int(x) for x in DECODER.match(decoder).groups())
    tokens = (res // patch) ** 2
    return depth * tokens * (24 * width ** 2 + 4 * tokens * width)


def _weakest(confidences) -> str:
    order = {c: i for i, c in enumerate(CONFIDENCES)}
    return max(confidences, key=lambda c: order.get(c, len(order)))


def estimate_one(checkpoint: dict, recipe: list[dict], flops, datasets: dict[str, Dataset], rules=None) -> dict:
    """One checkpoint's training compute from its recipe. `flops(arch, res, num_classes)` gives a
    forward count or None; `rules` (the book's RangeRules) gives each stage its range. A stage
    whose length no source gives is missing: the total is then a lower bound (training_ranges)."""
    from engine.catalog.training_ranges import RangeRules, stage_range
    rules = rules or RangeRules()
    stages, notes = [], []
    default_res = int(checkpoint["input_h"])
    for stage in recipe:
        said = []
        confidence = stage["confidence"]
        network = stage.get("network") or checkpoint["arch"]
        if network != checkpoint["arch"]:
            said.append(f"counted with the network that ran: {network}")
        if not stage["train_res"] and not stage["crops"]:
            said.append(f"train resolution not stated: the pretrained config's {default_res} px")
            confidence = "assumed"
        dataset = datasets[stage["dataset"]]
        samples = (stage["samples"] if stage["samples"] is not None else
                   stage["epochs"] * dataset.images if stage["epochs"] is not None else None)
        if stage["epochs"] is not None and not dataset.exact and confidence == "exact":
            confidence = "paper"  # exact epochs over a dataset whose size a source rounds
        student = 0.0
        for count, res in crops_of(stage, default_res):
            forward = flops(network, res, int(checkpoint["num_classes"]))
            if forward is None:
                student = None
                said.append(f"no FLOP count of {network} at {res} px")
                break
            # mim drops the masked tokens (the encoder sees the visible fraction: MAE, Hiera);
            # mim_full runs every token (BEiT, EVA-02; FCMAE as its paper ran it, dense on TPU)
            visible = 1 - stage["mask_ratio"] if stage["objective"] == "mim" else 1.0
            student += count * BACKWARD_FACTOR * forward * visible
            if stage["decoder"]:
                student += BACKWARD_FACTOR * decoder_flops(stage["decoder"], res)
        per_sample = None if student is None else student * stage["multiplier"]
        teachers = teachers_of(stage)
        for arch, res in teachers or []:
            forward = FROZEN_NETWORKS[arch](res) if arch in FROZEN_NETWORKS else flops(arch, res, -1)
            if forward is None:
                per_sample = None
                said.append(f"no FLOP count of the teacher {arch} at {res} px")
            elif per_sample is not None:
                per_sample += forward  # a teacher (or frozen tokenizer) runs forward only, once per sample
        if stage["teacher"] and teachers is None and stage["teacher"] != "self":
            said.append(f"teacher {stage['teacher']!r} not counted (not a timm architecture)")
            confidence = "assumed"
        if stage["objective"] == "contrastive":
            said.append("image tower only" if not stage["text_tower"] else f"text tower {stage['text_tower']}")
        if samples is None:
            said.append("length not published")
        total = per_sample * samples if per_sample is not None and samples is not None else None
        entry = {"stage": int(stage["stage"]), "kind": stage["stage_kind"], "dataset": stage["dataset"],
                 "epochs": stage["epochs"], "samples": samples, "train_res": stage["train_res"] or default_res,
                 "objective": stage["objective"], "network": network, "flops_per_sample": per_sample,
                 "flops": total, "confidence": confidence, "source": stage["source"], "note": "; ".join(said)}
        length = (rules.length_bounds({**stage, "confidence": confidence}, samples, dataset.images)
                  if samples is not None else None)
        stages.append(stage_range(entry, length, rules.longest_for(stage["stage_kind"], stage["dataset"])))
        notes += said
    return finish(checkpoint["checkpoint"], stages, notes)


def finish(checkpoint: str, stages: list[dict], notes: list[str], lineage: list[str] | None = None) -> dict:
    """The estimate row of one checkpoint from its ranged stages (training_ranges.summarize)."""
    from engine.catalog.training_ranges import summarize

    def total_of(kinds):
        part = [s for s in stages if s["kind"] in kinds]
        if not part:
            return 0.0
        return sum(s["flops"] for s in part) if all(s["flops"] is not None for s in part) else None
    samples = [s["samples"] for s in stages]
    summary = summarize(stages)
    return {"checkpoint": checkpoint, **summary,
            "pretrain_flops": total_of({"pretrain"}),
            "finetune_flops": total_of({"intermediate", "finetune"}),
            "samples_seen": sum(samples) if samples and all(s is not None for s in samples) else None,
            "n_stages": len(stages), "stages": stages,
            "confidence": _weakest(s["confidence"] for s in stages) if stages else None,
            "sources": sorted({s["source"] for s in stages}),
            "note": "; ".join(dict.fromkeys(n for n in notes if n)), "lineage": list(lineage or [])}


# Tag words that name a training dataset: the words after `ft` name one fine-tune stage each
# (`in21k_ft_in12k_in1k`: an ImageNet-12k then an ImageNet-1k stage).
DATASET_WORDS = {"in1k": "imagenet-1k", "in12k": "imagenet-12k", "in21k": "imagenet-22k", "in22k": "imagenet-22k"}


def tag_finetunes(tag: str) -> list[str]:
    """The datasets of the fine-tune stages a tag names after `ft`, in order."""
    words = tag.split("_")
    if "ft" not in words:
        return []
    return [DATASET_WORDS[w] for w in words[words.index("ft") + 1:] if w in DATASET_WORDS]


def unbounded_stage(number: int, kind: str, dataset: str, source: str, note: str, why: str) -> dict:
    """A stage that ran but that nothing here can count or bound (an unknown parent's training, an
    image tower's initialisation trained elsewhere): 0 at the low end, no high end, so a total
    holding it is a lower bound only."""
    return {"stage": number, "kind": kind, "dataset": dataset, "epochs": None, "samples": None, "flops": None,
            "flops_per_sample": None, "confidence": "assumed", "source": source, "note": note, "missing": True,
            "flops_low": 0.0, "flops_high": None, "range_note": why}


def missing_stage(checkpoint: dict, number: int, kind: str, dataset: str, flops, rules) -> dict:
    """A stage the tag names and no source gives the length of: 0 at the low end, the longest
    documented stage of its kind on its dataset at the high end, at the checkpoint's input size."""
    res = int(checkpoint["input_h"])
    forward = flops(checkpoint["arch"], res, int(checkpoint["num_classes"]))
    per_sample = BACKWARD_FACTOR * forward if forward is not None else None
    longest, why = rules.longest_for(kind, dataset)
    return {"stage": number, "kind": kind, "dataset": dataset, "epochs": None, "samples": None, "train_res": res,
            "objective": "supervised", "network": checkpoint["arch"], "flops_per_sample": per_sample, "flops": None,
            "confidence": "assumed", "source": f"the tag {checkpoint['tag']!r} names this stage; no source gives its length",
            "note": "length not published", "missing": True, "flops_low": 0.0,
            "flops_high": per_sample * longest if per_sample is not None and longest else None,
            "range_note": "length not given by any source: " + why
            + ("" if forward is not None else f"; no FLOP count of {checkpoint['arch']} at {res} px")}


def with_tag_stages(checkpoint: dict, row: dict, flops, rules) -> dict:
    """A recipe that lists fewer fine-tune stages than its tag names (`sbb_e200_in12k_ft_in1k`
    with only its ImageNet-12k stage) lacks them: they are added as missing stages, so the total
    is never complete with a stage at 0."""
    named = tag_finetunes(checkpoint["tag"])
    listed = [s for s in row["stages"] if s["kind"] != "pretrain"]
    if len(listed) >= len(named):
        return row
    stages = list(row["stages"])
    extra = named[len(listed):]
    for i, dataset in enumerate(extra):
        kind = "finetune" if i == len(extra) - 1 else "intermediate"
        stages.append(missing_stage(checkpoint, len(stages) + 1, kind, dataset, flops, rules))
    said = [row["note"], f"the tag names {len(named)} fine-tune stage(s), the recipe gives {len(listed)}"]
    return finish(checkpoint["checkpoint"], stages, said, row.get("lineage"))


UNKNOWN_NOTE = "unknown: no sourced recipe for this tag and architecture"


def unknown(checkpoint: str, note: str = UNKNOWN_NOTE, lineage: list[str] | None = None) -> dict:
    """The row of a checkpoint whose training is not known: never a default."""
    return {"checkpoint": checkpoint, "train_flops": None, "train_flops_low": None, "train_flops_high": None,
            "complete": False, "missing_stages": "", "placement": None, "pretrain_flops": None,
            "finetune_flops": None, "samples_seen": None, "n_stages": 0, "stages": [], "confidence": None,
            "sources": [], "note": note, "lineage": list(lineage or [])}


def forward_table(compute: pd.DataFrame, default_heads: dict[str, int] | None = None):
    """flops(arch, res, num_classes) over the counted compute rows (num_classes -1: the
    architecture's default head)."""
    counted = compute[compute["error"].isna() & (compute["img_size"] == compute["img_width"])]
    table = {(a, int(s), int(n)): float(f) for a, s, n, f in
             zip(counted["arch"], counted["img_size"], counted["num_classes"], counted["flops"], strict=True)}
    heads = default_heads or {}

    def flops(arch: str, res: int, num_classes: int):
        if num_classes == -1:
            num_classes = heads.get(arch, 1000)
        return table.get((arch, int(res), int(num_classes)))
    return flops


def estimate(checkpoints: pd.DataFrame, compute: pd.DataFrame, book: RecipeBook,
             default_heads: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per checkpoint from its own recipe: its estimate, or unknown (train_flops None, no
    recipe) — never a default. Lineage (parents, children, OpenCLIP towers) is resolved on top of
    these by engine.catalog.lineage. `compute`: the counted forward FLOPs (arch, img_size,
    num_classes, flops, error); `default_heads`: an architecture's default number of classes."""
    flops = forward_table(compute, default_heads)
    rows = []
    for checkpoint in checkpoints.to_dict("records"):
        recipe = recipe_for(book, checkpoint["arch"], checkpoint["tag"])
        rows.append(unknown(checkpoint["checkpoint"]) if recipe is None else with_tag_stages(
            checkpoint, estimate_one(checkpoint, recipe, flops, book.datasets, book.ranges), flops, book.ranges))
    return pd.DataFrame(rows)


def as_table(estimates: pd.DataFrame) -> pd.DataFrame:
    """The estimates as the store's training_compute rows (stages, sources, lineage as JSON)."""
    out = estimates.assign(stages=estimates["stages"].map(lambda s: json.dumps(s, default=float)),
                           sources=estimates["sources"].map(json.dumps))
    if "lineage" in out:
        out["lineage"] = out["lineage"].map(lambda v: json.dumps(list(v) if isinstance(v, list | tuple) else []))
    return out




# -- the coverage bracket of unknown checkpoints ------------------------------------------------------------
COVERAGE_EPOCHS = (100, 1000)  # a checkpoint without an estimate trained somewhere in here (a bracket, never an estimate)
# The catalog's pre-training data labels whose size data/training_datasets.csv gives.
DATA_LABELS = {"ImageNet-1k": "imagenet-1k", "ImageNet-21k": "imagenet-22k", "ImageNet-12k": "imagenet-12k",
               "JFT-300M": "jft-300m", "LAION-2B": "laion-2b", "LAION-400M": "laion-400m",
               "OpenAI WIT-400M": "openai-wit-400m", "YFCC-100M": "yfcc-100m", "YFCC-15M": "yfcc-15m",
               "Instagram-1B": "instagram-1b", "Instagram-3.6B (SWAG)": "instagram-3.6b", "DataComp-1B": "datacomp-1b",
               "WebLI": "webli", "LVD-142M": "lvd-142m", "Merged-30M": "merged-30m", "Merged-38M": "merged-38m",
               "LAION-5B": "laion-5b", "DFN-2B": "dfn-2b", "DFN-5B": "dfn-5b", "MetaCLIP-2.5B": "metaclip-2.5b",
               "MetaCLIP-400M": "metaclip-400m", "MetaCLIP 2.5B": "metaclip-2.5b", "MetaCLIP 400M": "metaclip-400m"}


def coverage_bracket(checkpoint: dict, flops, datasets: dict[str, Dataset]) -> tuple[float | None, float | None, str]:
    """(low, high, how) training FLOPs of a checkpoint without an estimate, were it trained
    COVERAGE_EPOCHS of its stated pre-training data at its train (input) resolution: the
    coverage check's bracket. (None, None, why) where the data's size or a FLOP count is missing."""
    name = DATA_LABELS.get(checkpoint.get("pretrain_data") or "")
    dataset = datasets.get(name) if name else None
    if dataset is None or not dataset.images:
        return None, None, f"no size known for its pre-training data ({checkpoint.get('pretrain_data') or 'not stated'})"
    res, test = int(checkpoint["input_h"]), checkpoint.get("test_h")
    forward = flops(checkpoint["arch"], res, int(checkpoint["num_classes"]))
    how = f"{COVERAGE_EPOCHS[0]}-{COVERAGE_EPOCHS[1]} epochs of {name} at {res} px"
    if forward is None and test is not None and not pd.isna(test):
        counted = flops(checkpoint["arch"], int(test), int(checkpoint["num_classes"]))
        forward = counted * (res / int(test)) ** 2 if counted is not None else None
        how += f" (its count at {int(test)} px scaled by area)"
    if forward is None:
        return None, None, f"no FLOP count of {checkpoint['arch']} at {res} px"
    per_epoch = BACKWARD_FACTOR * forward * dataset.images
    return per_epoch * COVERAGE_EPOCHS[0], per_epoch * COVERAGE_EPOCHS[1], how


def bracket_of(checkpoint: dict, estimate: dict, flops, datasets: dict[str, Dataset]) -> tuple:
    """The coverage check's bracket of a checkpoint left off the axis: COVERAGE_EPOCHS of its data,
    never below what its known stages already cost (a lower bound), and its own range where it
    has one; (None, None, None) for a placed checkpoint."""
    if not pd.isna(estimate["train_flops"]):
        return None, None, None
    low, high, how = coverage_bracket(checkpoint, flops, datasets)
    known_low, known_high = estimate.get("train_flops_low"), estimate.get("train_flops_high")
    if known_low is None or pd.isna(known_low):
        return low, high, how
    if known_high is not None and not pd.isna(known_high):
        return known_low, known_high, "its lower-bound range (a stage's length unknown)"
    if low is None:
        return None, None, how
    return max(low, known_low), max(high, known_low), how + ", and at least its known stages"


# -- the convention check ----------------------------------------------------------------------------------
VIT_PAPER_CSV = DATA_DIR / "reference" / "vit_paper_compute.csv"


def vit_paper_counts(path: Path = VIT_PAPER_CSV) -> set[tuple[str, int, int]]:
    """(arch, resolution, num_classes) the ViT-paper check needs counted."""
    paper = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {(row["arch"], int(row["resolution"]), 1000) for row in paper.to_dict("records") if row["arch"]}


def vit_paper_check(compute: pd.DataFrame, datasets: dict[str, Dataset] | None = None,
                    path: Path = VIT_PAPER_CSV) -> pd.DataFrame:
    """The ViT paper's Table 6 (pre-training exaFLOPs of its JFT-300M runs) against this estimator
    on the same recipes: one supervised stage of `epochs` over JFT-300M at 224 px, for each row
    whose network timm has. `ratio` = estimate / paper."""
    datasets = load_datasets() if datasets is None else datasets
    paper = pd.read_csv(path, dtype=str, keep_default_na=False)
    paper = paper[paper["arch"] != ""]
    counted = compute[compute["error"].isna()]
    table = {(a, int(s), int(n)): float(f) for a, s, n, f in
             zip(counted["arch"], counted["img_size"], counted["num_classes"], counted["flops"], strict=True)}
    rows = []
    for row in paper.to_dict("records"):
        res = int(row["resolution"])
        recipe = [{"tag": "jft", "arch_pattern": row["arch"], "stage": 1, "stage_kind": "pretrain",
                                "dataset": row["dataset"], "epochs": float(row["epochs"]), "samples": None,
                                "train_res": res, "objective": "supervised", "mask_ratio": None, "decoder": "",
                                "teacher": "", "crops": "", "multiplier": 1.0, "text_tower": "",
                                "source": row["source"], "confidence": "paper", "note": ""}]
        checkpoint = {"checkpoint": row["arch"], "arch": row["arch"], "input_h": res, "num_classes": 1000}
        found = estimate_one(checkpoint, recipe, lambda a, r, n: table.get((a, int(r), int(n))), datasets)
        ours = found["train_flops"] / 1e18 if found["train_flops"] is not None else None
        rows.append({"model": row["model"], "arch": row["arch"], "epochs": float(row["epochs"]),
                     "paper_exaflops": float(row["pretrain_exaflops"]), "estimate_exaflops": ours,
                     "ratio": ours / float(row["pretrain_exaflops"]) if ours is not None else None})
    return pd.DataFrame(rows)


# -- the cross-check against published figures -------------------------------------------------------------
PUBLISHED_CSV = DATA_DIR / "reference" / "published_training_compute.csv"
# Peak dense throughput of the accelerators published figures count in, and the seconds in their
# unit. TPU v3: 123 TFLOP/s bf16 per chip, two TensorCores (cloud.google.com/tpu/docs/v3); TPU v4:
# 275 per chip, two cores (cloud.google.com/tpu/docs/v4); V100: 125 tensor TFLOP/s
# (developer.nvidia.com, "Programming Tensor Cores in CUDA 9"); A100: 312 TFLOP/s bf16 dense.
UNITS = {"flops": (1.0, 1.0), "tpu_v3_core_days": (123e12 / 2, 86400), "tpu_v4_core_hours": (275e12 / 2, 3600),
         "v100_gpu_hours": (125e12, 3600), "v100_gpu_days": (125e12, 86400), "a100_gpu_hours": (312e12, 3600)}
OUTLIER = 2.0  # an estimate beyond 2× (or below ½) of the published figure needs a stated reason


def crosscheck(estimates: pd.DataFrame, paper: pd.DataFrame, utilisation: float = 0.4,
               path: Path = PUBLISHED_CSV) -> pd.DataFrame:
    """Each published training-compute figure beside this project's estimate of the same thing
    (a checkpoint's pre-training, fine-tuning or all stages; or a ViT-paper run via
    `vit_paper_check`). Accelerator time becomes FLOPs at the accelerator's peak × `utilisation`;
    `implied_utilisation` is the estimate over the figure at peak. `outlier`: beyond 2× either way."""
    published = pd.read_csv(path, dtype=str, keep_default_na=False)
    by_checkpoint = estimates.set_index("checkpoint")
    rows = []
    for row in published.to_dict("records"):
        peak, seconds = UNITS[row["unit"]]
        value = float(row["value"])
        at_peak = value if row["unit"] == "flops" else value * seconds * peak
        figure_flops = at_peak if row["unit"] == "flops" else at_peak * utilisation
        if row["estimate_of"].startswith("vit_paper:"):
            model, epochs = row["estimate_of"].split(":", 1)[1].rsplit("@", 1)
            match = paper[(paper["model"] == model) & (paper["epochs"] == float(epochs))]
            ours = float(match["estimate_exaflops"].iloc[0]) * 1e18 if len(match) and pd.notna(
                match["estimate_exaflops"].iloc[0]) else None
        elif row["estimate_of"] in by_checkpoint.index:
            column = {"pretrain": "pretrain_flops", "finetune": "finetune_flops", "train": "train_flops"}[row["covers"]]
            value_here = by_checkpoint.at[row["estimate_of"], column]
            ours = float(value_here) if pd.notna(value_here) else None
        else:
            ours = None
        ratio = ours / figure_flops if ours is not None else None
        rows.append({**row, "published_flops": figure_flops, "estimate_flops": ours, "ratio": ratio,
                     "implied_utilisation": ours / at_peak if ours is not None and row["unit"] != "flops" else None,
                     "outlier": ratio is not None and not 1 / OUTLIER <= ratio <= OUTLIER})
    return pd.DataFrame(rows)
