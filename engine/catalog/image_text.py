"""The image-text zoo: every pretrained (model, tag) the installed OpenCLIP lists, as catalog rows.

OpenCLIP trained ConvNeXt and ViT image towers on the same data with the samples seen in the tag
(`laion2b_s13b_b82k` = 13B), and OpenAI's CLIP has ResNets and ViTs side by side on one dataset:
the cleanest same-data evidence on the question Matchup asks. A checkpoint's Matchup id is
`open_clip:<model>.<tag>`; its class is its image tower's (ResNet and ConvNeXt towers ConvNet;
ViT, EVA, SigLIP, CoCa and PE towers ViT; ViTamin and MobileCLIP's FastViT-MCi towers Hybrid, as
timm's own classes place them). Training compute is exact where the tag or a sourced recipe
(data/image_text_recipes.csv) gives the samples seen: 3 x (image + text forward FLOPs, counted
here at each stage's image size and text length) x samples, stage by stage; anything else is
unknown, never invented. Reads open_clip's registry offline; no SQL, no UI.
"""
from __future__ import annotations

import csv
import difflib
import fnmatch
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from engine.catalog import taxonomy
from engine.errors import MatchupError
from engine.paths import DATA_DIR

ID_PREFIX = "open_clip:"
ZOO = "image-text"
RECIPES_CSV = DATA_DIR / "image_text_recipes.csv"
TIMM_LINKS_CSV = DATA_DIR / "image_text_timm_links.csv"
COMPUTE_CSV = DATA_DIR / "image_text_compute.csv"
RECIPE_COLUMNS = ["model_pattern", "tag", "stage", "stage_kind", "dataset", "samples", "epochs", "image_size",
                  "text_length", "image_tower", "text_tower", "text_passes", "teacher", "source", "confidence",
                  "note"]
TOWER_STATES = {"trained": 3.0, "frozen": 1.0, "absent": 0.0}  # forward passes' worth per sample
BACKWARD_FACTOR = 3

# Tag -> the data it was trained on: (pattern on the tag, dataset name in training_datasets.csv,
# label). First match wins; the names are those the recipes use.
DATA_SOURCES = [
    (r"^openai$", "openai-wit-400m", "OpenAI WIT-400M"),
    (r"laion400m", "laion-400m", "LAION-400M"),
    (r"laion2b", "laion-2b", "LAION-2B"),
    (r"laion5b", "laion-5b", "LAION-5B"),
    (r"laion_aesthetic", "laion-a", "LAION-Aesthetics (900M of LAION-2B)"),
    (r"^datacomp_xl|^datacomp1b$|^datacomp_s34b", "datacomp-1b", "DataComp-1B"),
    (r"^datacomp_l_", "datacomp-l-140m", "DataComp-L (140M)"),
    (r"^datacomp_m_", "datacomp-m-14m", "DataComp-M (14M)"),
    (r"^datacomp_s_", "datacomp-s-1.4m", "DataComp-S (1.4M)"),
    (r"^commonpool_(s|m|l|xl)_(clip|laion|image|text|basic)_", "commonpool-{0}-{1}", "CommonPool-{0} ({1}-filtered)"),
    (r"^commonpool_(s|m|l|xl)_s", "commonpool-{0}", "CommonPool-{0} (unfiltered)"),
    (r"^yfcc15m$", "yfcc-15m", "YFCC-15M"),
    (r"^cc12m$", "cc-12m", "CC12M"),
    (r"^merged2b", "merged-2b", "Merged-2B (EVA-CLIP)"),
    (r"^webli$", "webli", "WebLI"),
    (r"^dfn2b", "dfn-2b", "DFN-2B"),
    (r"^dfn5b$", "dfn-5b", "DFN-5B"),
    (r"^dfndr2b$", "dfndr-2b", "DFNDR-2B (reinforced DFN-2B)"),
    (r"^datacompdr", "datacompdr-1b", "DataCompDR-1B (reinforced DataComp-1B)"),
    (r"^metaclip_400m$", "metaclip-400m", "MetaCLIP 400M"),
    (r"^metaclip_fullcc$", "metaclip-2.5b", "MetaCLIP 2.5B"),
    (r"^metaclip_altogether$", "metaclip-v1.2-online", "MetaCLIP Altogether"),
    (r"^metaclip2_worldwide$", "metaclip2-worldwide", "MetaCLIP 2 worldwide"),
    (r"^meta$", "metaclip-5.4b", "Meta PE data (MetaCLIP 5.4B)"),
    (r"^(v1|mrl)$", "laion-coco-nllb", "LAION-COCO-NLLB"),
]
SAMPLES_IN_TAG = re.compile(r"(?:^|_)s(\d+(?:\.\d+)?)([mb])(?:_|$)")
MULTIPLIERS = {"m": 1e6, "b": 1e9}


class ImageTextError(MatchupError):
    """An image-text checkpoint name or recipe that cannot be used; the message says what to do."""


def _open_clip():
    import open_clip
    return open_clip


def checkpoint_id(model: str, tag: str) -> str:
    return f"{ID_PREFIX}{model}.{tag}"


def is_image_text(name: str) -> bool:
    return str(name).startswith(ID_PREFIX)


@functools.lru_cache(maxsize=1)
def _pairs() -> tuple[tuple[str, str], ...]:
    return tuple((m, t) for m, t in _open_clip().list_pretrained())


def pairs() -> list[tuple[str, str]]:
    """Every pretrained (model, tag) the installed open_clip lists."""
    return list(_pairs())


def split_id(name: str) -> tuple[str, str]:
    """`open_clip:<model>.<tag>` -> (model, tag), checked against open_clip's registry; an unknown
    model or tag is an ImageTextError that lists close names."""
    text = str(name)
    body = text[len(ID_PREFIX):] if is_image_text(text) else text
    known = pairs()
    models = sorted({m for m, _ in known})
    model, _, tag = body.partition(".")
    if model not in models:
        close = difflib.get_close_matches(model, models, n=5, cutoff=0.5)
        raise ImageTextError(
            f"{text!r} is not an OpenCLIP model that the installed open_clip knows"
            + (f"; close names: {', '.join(close)}" if close else "")
            + ". Name an image-text checkpoint `open_clip:<model>.<tag>`, e.g. "
              "`open_clip:ViT-B-32.laion2b_s34b_b79k`; `python -m engine catalog list --zoo image-text` lists them.")
    tags = sorted(t for m, t in known if m == model)
    if tag not in tags:
        close = difflib.get_close_matches(tag, tags, n=5, cutoff=0.3) or tags[:5]
        raise ImageTextError(
            f"{text!r}: OpenCLIP model {model} has no pretrained tag {tag!r}; its tags include "
            f"{', '.join(close)}. Write it as `open_clip:{model}.<tag>`.")
    return model, tag


# -- what a model is ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def tower_of(model: str) -> dict:
    """The image tower: timm model name (for timm towers), a short kind, the image size, the text
    context length and whether the text tower is a Hugging Face model."""
    cfg = _open_clip().get_model_config(model) or {}
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    size = vision.get("image_size", 224)
    size = size[0] if isinstance(size, (list, tuple)) else size
    if vision.get("timm_model_name"):
        kind = vision["timm_model_name"]
    elif isinstance(vision.get("layers"), (list, tuple)):
        kind = "modified_resnet"
    else:
        kind = "vit"
    return {"timm_model": vision.get("timm_model_name"), "kind": kind, "image_size": int(size),
            "context_length": text.get("context_length") or 77, "hf_text": text.get("hf_model_name"),
            "coca": "multimodal_cfg" in cfg, "quick_gelu": bool(cfg.get("quick_gelu"))}


def class_and_family(model: str, tower: dict | None = None) -> tuple[str, str]:
    """The image tower's architecture class and family: a timm tower as timm's taxonomy places
    it (ConvNeXt ConvNet, EVA/SigLIP/PE ViT, ViTamin/FastViT-MCi Hybrid); OpenCLIP's own
    ModifiedResNet a ConvNet, its own VisionTransformer (CLIP, CoCa, CLIPA) a ViT."""
    tower = tower or tower_of(model)
    if tower["timm_model"]:
        timm_name = tower["timm_model"]
        module = _timm_module(timm_name)
        return taxonomy.arch_class(timm_name, module), taxonomy.family(timm_name)
    if tower["kind"] == "modified_resnet":
        return "ConvNet", "resnet"
    return "ViT", "coca" if tower["coca"] else "vit"


@functools.lru_cache(maxsize=1)
def _timm_modules() -> dict[str, str]:
    import timm.models
    return {arch: module for module in timm.models.list_modules() for arch in timm.list_models(module=module)}


def _timm_module(timm_name: str) -> str | None:
    return _timm_modules().get(timm_name)


def data_source(tag: str) -> tuple[str | None, str | None]:
    """The tag's training data: (dataset name, label); (None, None) when the tag does not say."""
    for pattern, name, label in DATA_SOURCES:
        if m := re.search(pattern, tag):
            groups = [g.upper() if g in ("s", "m", "l", "xl") else g for g in m.groups()]
            return name.format(*[g.lower() for g in m.groups()]), label.format(*groups)
    return None, None


def samples_in_tag(tag: str) -> float | None:
    """`..._s34b_...` -> 34e9 samples seen; None when the tag states no sample count."""
    m = SAMPLES_IN_TAG.search(tag)
    return float(m[1]) * MULTIPLIERS[m[2]] if m else None


# -- recipes ---------------------------------------------------------------------------------------------
def load_recipes(path: Path | None = None, datasets: dict | None = None) -> pd.DataFrame:
    """The sourced stage rows (data/image_text_recipes.csv); a row without a source, with an
    unknown dataset or tower state, or with both samples and epochs is an ImageTextError."""
    from engine.catalog import training_compute
    path = Path(path or RECIPES_CSV)
    datasets = datasets if datasets is not None else training_compute.load_datasets()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and list(rows[0]) != RECIPE_COLUMNS:
        raise ImageTextError(f"{path.name}: the columns must be {', '.join(RECIPE_COLUMNS)}")
    for i, row in enumerate(rows, start=2):
        where = f"{path.name} line {i}"
        if not row["source"].strip():
            raise ImageTextError(f"{where}: no source (every stage says where it was checked)")
        if row["dataset"] and row["dataset"] not in datasets:
            raise ImageTextError(f"{where}: unknown dataset {row['dataset']!r}")
        for tower in ("image_tower", "text_tower"):
            if row[tower] not in TOWER_STATES:
                raise ImageTextError(f"{where}: {tower} {row[tower]!r} is not one of {', '.join(TOWER_STATES)}")
        if row["samples"] and row["epochs"]:
            raise ImageTextError(f"{where}: give samples or epochs, not both")
    frame = pd.DataFrame(rows, columns=RECIPE_COLUMNS)
    for column in ("stage", "samples", "epochs", "image_size", "text_length", "text_passes"):
        frame[column] = pd.to_numeric(frame[column].replace("", None))
    return frame


def recipe_index(recipes: pd.DataFrame) -> dict[str, list[dict]]:
    """The recipe rows grouped by tag, built once: looking one checkpoint up in the frame costs
    milliseconds of pandas, and the catalog looks up every checkpoint on every refresh."""
    index: dict[str, list[dict]] = {}
    for row in recipes.to_dict("records"):
        index.setdefault(row["tag"], []).append(row)
    return index


def recipe_for(index: dict[str, list[dict]], model: str, tag: str) -> list[dict] | None:
    """The stages of the most specific pattern that matches (model, tag), in order; None if none.
    `index`: the recipes' `recipe_index`."""
    rows = [r for r in index.get(tag, ()) if fnmatch.fnmatchcase(model, r["model_pattern"])]
    if not rows:
        return None
    best = max({r["model_pattern"] for r in rows}, key=lambda p: (p == model, len(p.replace("*", ""))))
    return sorted((r for r in rows if r["model_pattern"] == best), key=lambda r: r["stage"])


def stages_for(model: str, tag: str, recipes: dict[str, list[dict]], datasets: dict,
               tower: dict | None = None) -> tuple[list[dict], str]:
    """The training stages of one checkpoint, from its sourced recipe or else from its tag (one
    stage: the tag's samples at the model's own image size and text length). Returns (stages,
    note); no stages when neither says how many samples were seen. `recipes`: the recipes'
    `recipe_index`; `tower`: the model's image_size and context_length (default: read from open_clip)."""
    tower = tower or tower_of(model)
    recipe = recipe_for(recipes, model, tag)
    if recipe is None:
        samples = samples_in_tag(tag)
        name, _ = data_source(tag)
        if samples is None:
            why = ("the tag gives epochs over a dataset whose epoch length OpenCLIP did not state"
                   if re.search(r"(?:^|_)e\d+(?:_|$)", tag) else "the tag states no samples seen")
            return [], f"training compute unknown: {why} and no sourced recipe gives them"
        return [{"stage": 1, "kind": "pretrain", "dataset": name, "samples": samples,
                 "image_size": tower["image_size"], "text_length": tower["context_length"],
                 "image_tower": "trained", "text_tower": "trained", "text_passes": 1.0,
                 "confidence": "exact", "source": f"the OpenCLIP tag {tag!r} (samples seen)", "note": ""}], ""
    stages, notes = [], []
    for row in recipe:
        if row["stage_kind"] == "upstream":  # an initialisation trained elsewhere: said, not counted
            notes.append(f"the {'image' if row['text_tower'] == 'absent' else 'initial'} weights come from "
                         f"an earlier run not counted here ({row['note'] or row['dataset']})")
            continue
        dataset = datasets.get(row["dataset"])
        samples = row["samples"]
        confidence = row["confidence"]
        if pd.isna(samples) and not pd.isna(row["epochs"]):
            images = dataset.images if dataset is not None else None
            samples = row["epochs"] * images if images else None
            if dataset is not None and not dataset.exact and confidence == "exact":
                confidence = "paper"
        stages.append({"stage": int(row["stage"]), "kind": row["stage_kind"], "dataset": row["dataset"],
                       "samples": None if samples is None or pd.isna(samples) else float(samples),
                       "image_size": int(row["image_size"]) if not pd.isna(row["image_size"]) else tower["image_size"],
                       "text_length": (int(row["text_length"]) if not pd.isna(row["text_length"])
                                       else tower["context_length"]),
                       "image_tower": row["image_tower"], "text_tower": row["text_tower"],
                       "text_passes": 1.0 if pd.isna(row["text_passes"]) else float(row["text_passes"]),
                       "confidence": confidence, "source": row["source"], "note": row["note"]})
    return stages, "; ".join(notes)


def count_targets(recipes: pd.DataFrame | None = None, datasets: dict | None = None) -> list[tuple[str, int, int]]:
    """(model, image size, text length) the catalog needs counted: every model at its own size
    (the inference axis) and every training stage's (size, text length)."""
    from engine.catalog import training_compute
    recipes = recipe_index(recipes if recipes is not None else load_recipes())
    datasets = datasets if datasets is not None else training_compute.load_datasets()
    targets = set()
    for model, tag in pairs():
        tower = tower_of(model)
        targets.add((model, tower["image_size"], int(tower["context_length"])))
        for stage in stages_for(model, tag, recipes, datasets)[0]:
            targets.add((model, stage["image_size"], stage["text_length"]))
    return sorted(targets)


def estimate_one(checkpoint: str, stages: list[dict], note: str, counts) -> dict:
    """One checkpoint's training compute, stage by stage: per sample, 3 forward passes' worth
    of each trained tower (1 of a frozen one) at the stage's image size and text length, the
    text side times its captions per sample. `counts(model, size, text_length)` -> the counted
    row (image_flops, text_flops, train_forward_flops) or None."""
    model = checkpoint[len(ID_PREFIX):].partition(".")[0]
    said = [note] if note else []
    out_stages = []
    for stage in stages:
        row = counts(model, stage["image_size"], stage["text_length"])
        per_sample = None
        if row is None:
            said.append(f"no FLOP count of {model} at {stage['image_size']} px and {stage['text_length']} tokens")
        else:
            text_side = row["train_forward_flops"] - row["image_flops"]  # text tower (+ CoCa's decoder)
            per_sample = (TOWER_STATES[stage["image_tower"]] * row["image_flops"]
                          + TOWER_STATES[stage["text_tower"]] * stage["text_passes"] * text_side)
        if stage["samples"] is None:
            said.append("length not published")
        flops = per_sample * stage["samples"] if per_sample is not None and stage["samples"] is not None else None
        out_stages.append({"stage": stage["stage"], "kind": stage["kind"], "dataset": stage["dataset"],
                           "epochs": None, "samples": stage["samples"], "train_res": stage["image_size"],
                           "text_length": stage["text_length"], "objective": "contrastive",
                           "image_tower": stage["image_tower"], "text_tower": stage["text_tower"],
                           "flops_per_sample": per_sample, "flops": flops, "confidence": stage["confidence"],
                           "source": stage["source"], "note": stage["note"]})
    known = bool(out_stages) and all(s["flops"] is not None for s in out_stages)
    order = ("exact", "paper", "assumed")
    samples = [s["samples"] for s in out_stages]
    return {"checkpoint": checkpoint,
            "train_flops": sum(s["flops"] for s in out_stages) if known else None,
            "pretrain_flops": sum(s["flops"] for s in out_stages if s["kind"] == "pretrain") if known else None,
            "finetune_flops": sum(s["flops"] for s in out_stages if s["kind"] != "pretrain") if known else None,
            "samples_seen": sum(samples) if samples and all(s is not None for s in samples) else None,
            "n_stages": len(out_stages), "stages": out_stages,
            "confidence": max((s["confidence"] for s in out_stages), key=order.index) if out_stages else None,
            "sources": sorted({s["source"] for s in out_stages}),
            "complete": known and not note, "note": "; ".join(dict.fromkeys(said))}


def estimate(counted: pd.DataFrame, catalog: pd.DataFrame, recipes: pd.DataFrame | None = None,
             datasets: dict | None = None) -> pd.DataFrame:
    """Every image-text checkpoint's training compute from the counted FLOPs (the
    image_text_compute rows) and the catalog (model, tag, image size, context length); unknown
    ones with why."""
    from engine.catalog import training_compute
    datasets = datasets if datasets is not None else training_compute.load_datasets()
    recipes = recipe_index(recipes if recipes is not None else load_recipes(datasets=datasets))
    ok = counted[counted["error"].isna()] if "error" in counted else counted
    table = {(m, int(s), int(t)): r for m, s, t, r in
             zip(ok["model"], ok["image_size"], ok["text_length"], ok.to_dict("records"), strict=True)}
    rows = []
    for entry in catalog.to_dict("records"):
        tower = {"image_size": int(entry["input_h"]), "context_length": int(entry["context_length"])}
        stages, note = stages_for(entry["model"], entry["tag"], recipes, datasets, tower)
        rows.append(estimate_one(entry["checkpoint"], stages, note, lambda m, s, t: table.get((m, int(s), int(t)))))
    return pd.DataFrame(rows, columns=["checkpoint", "train_flops", "pretrain_flops", "finetune_flops",
                                       "samples_seen", "n_stages", "stages", "confidence", "sources",
                                       "complete", "note"])


UPSTREAM_SAID = "come from an earlier run not counted here"


def with_ranges(estimates: pd.DataFrame, rules=None) -> pd.DataFrame:
    """The estimates with every stage ranged and every total summarized as the ImageNet zoo's
    (training_ranges): samples seen from a tag are exact, an assumed stage spans its analogy;
    an initialisation trained elsewhere and not counted is a missing stage, so such a total is a
    lower bound, never complete."""
    from engine.catalog.training_compute import finish, unbounded_stage
    from engine.catalog.training_ranges import RangeRules, stage_range
    rules = rules or RangeRules()  # an assumed length (samples seen by analogy) spans ×/÷ 2, as in the timm zoo
    rows = []
    for row in estimates.to_dict("records"):
        stages = [stage_range(s, rules.length_bounds({"confidence": s["confidence"]}, s["samples"], None)
                              if s["samples"] is not None else None, (None, "an image-text stage"))
                  for s in row["stages"]]
        if UPSTREAM_SAID in (row["note"] or ""):
            stages.insert(0, unbounded_stage(0, "pretrain", "an earlier run", "the recipe's upstream row", row["note"],
                                             "the initial weights' training is not counted"))
        rows.append(finish(row["checkpoint"], stages, [row["note"]] if row["note"] else []))
    return pd.DataFrame(rows)


# -- the catalog rows ---------------------------------------------------------------------------------
def timm_links(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """Matchup id -> (the timm checkpoint shipping the same image tower, the evidence)."""
    frame = pd.read_csv(path or TIMM_LINKS_CSV, dtype=str, keep_default_na=False)
    return {checkpoint_id(m, t): (c, e) for m, t, c, e in
            zip(frame["open_clip_model"], frame["open_clip_tag"], frame["timm_checkpoint"], frame["evidence"],
                strict=True)}


@dataclass
class Catalog:
    checkpoints: pd.DataFrame  # rows for the checkpoints table (zoo = image-text)
    details: pd.DataFrame      # rows for the image_text table (data source, samples, links)


def catalog_frames(timm_version: str, datasets: dict | None = None, recipes: pd.DataFrame | None = None) -> Catalog:
    """The catalog rows of every pretrained (model, tag) open_clip lists."""
    from engine.catalog import training_compute
    open_clip = _open_clip()
    datasets = datasets if datasets is not None else training_compute.load_datasets()
    recipes = recipe_index(recipes if recipes is not None else load_recipes(datasets=datasets))
    links = timm_links()
    rows, details = [], []
    towers: dict[str, dict] = {}
    for model, tag in pairs():
        tower = towers.setdefault(model, tower_of(model))
        arch_class, family = class_and_family(model, tower)
        cfg = open_clip.get_pretrained_cfg(model, tag) or {}
        name, label = data_source(tag)
        dataset = datasets.get(name) if name else None
        stages, note = stages_for(model, tag, recipes, datasets)
        samples = [s["samples"] for s in stages]
        seen = sum(samples) if samples and all(s is not None for s in samples) else None
        how = ("unknown: " + note.removeprefix("training compute unknown: ")) if not stages else (
            "the tag" if stages[0]["source"].startswith("the OpenCLIP tag") else "a sourced recipe")
        ident = checkpoint_id(model, tag)
        link = links.get(ident, (None, None))
        quick = bool(cfg.get("quick_gelu"))
        rows.append({
            "checkpoint": ident, "arch": f"{ID_PREFIX}{model}", "tag": tag, "module": "open_clip",
            "arch_class": arch_class, "family": family, "pretrain_data": label,
            "finetune_data": "MSCOCO captions" if tag.startswith("mscoco_finetuned") else None,
            "data_scale": taxonomy.data_scale(dataset.images) if dataset is not None and dataset.images else None,
            "hub_repo": (cfg.get("hf_hub") or "").strip("/") or None,
            "input_h": tower["image_size"], "input_w": tower["image_size"], "test_h": None, "test_w": None,
            "crop_pct": 1.0, "test_crop_pct": None,
            "crop_mode": "squash" if cfg.get("resize_mode") == "squash" else "center",
            "interpolation": cfg.get("interpolation", "bicubic"),
            "mean": [float(v) for v in cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)],
            "std": [float(v) for v in cfg.get("std", open_clip.OPENAI_DATASET_STD)],
            "num_classes": 0, "license": None, "timm_version": timm_version, "zoo": ZOO})
        details.append({
            "checkpoint": ident, "model": model, "tag": tag, "data_source": name, "data_label": label,
            "data_pairs": float(dataset.images) if dataset is not None and dataset.images else None,
            "samples_seen": seen, "samples_how": how,
            "quick_gelu": quick, "needs_quick_gelu_name": quick and not tower["quick_gelu"],
            "context_length": int(tower["context_length"]), "image_tower": tower["kind"],
            "text_tower": tower["hf_text"] or ("coca" if tower["coca"] else "clip"),
            "timm_checkpoint": link[0], "timm_link_evidence": link[1],
            "open_clip_version": open_clip.__version__})
    checkpoints = pd.DataFrame(rows)
    for column in ("test_h", "test_w", "num_classes"):
        checkpoints[column] = checkpoints[column].astype("Int64")
    return Catalog(checkpoints, pd.DataFrame(details))


CATALOG_CSV = DATA_DIR / "image_text_catalog.csv"
DETAIL_COLUMNS = ["checkpoint", "model", "tag", "data_source", "data_label", "data_pairs", "samples_seen",
                  "samples_how", "quick_gelu", "needs_quick_gelu_name", "context_length", "image_tower",
                  "text_tower", "timm_checkpoint", "timm_link_evidence", "open_clip_version"]


def installed_open_clip() -> str | None:
    """The installed open_clip's version, without importing it (an import takes seconds)."""
    from importlib import metadata
    try:
        return metadata.version("open_clip_torch")
    except metadata.PackageNotFoundError:
        return None


def write_shipped_catalog(path: Path | None = None, timm_version: str = "") -> int:
    """The image-text catalog as the project ships it (data/image_text_catalog.csv): what this
    open_clip lists, read once here so that a start or refresh need not import open_clip."""
    zoo = catalog_frames(timm_version)
    frame = zoo.checkpoints.drop(columns=["timm_version"]).merge(zoo.details.drop(columns=["tag"]), on="checkpoint")
    frame["mean"] = frame["mean"].map(lambda v: " ".join(repr(x) for x in v))
    frame["std"] = frame["std"].map(lambda v: " ".join(repr(x) for x in v))
    frame.to_csv(path or CATALOG_CSV, index=False)
    return len(frame)


def load_catalog(timm_version: str, path: Path | None = None) -> tuple[Catalog, str]:
    """The image-text catalog for the installed open_clip: the shipped file when it was written
    for this version (fast, offline), else read from open_clip itself. Returns it and a word
    on where it came from."""
    path = Path(path or CATALOG_CSV)
    installed = installed_open_clip()
    if installed is None:
        return Catalog(pd.DataFrame(), pd.DataFrame(columns=DETAIL_COLUMNS)), "open_clip is not installed"
    if path.exists():
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
        if not frame.empty and (frame["open_clip_version"].astype(str) == installed).all():
            frame["mean"] = frame["mean"].map(lambda v: [float(x) for x in str(v).split()])
            frame["std"] = frame["std"].map(lambda v: [float(x) for x in str(v).split()])
            for column in ("test_h", "test_w", "num_classes"):
                frame[column] = frame[column].astype("Int64")
            for column in ("quick_gelu", "needs_quick_gelu_name"):
                frame[column] = frame[column].astype(bool)
            checkpoints = frame.drop(columns=[c for c in DETAIL_COLUMNS if c not in ("checkpoint", "tag")]).assign(
                timm_version=timm_version)
            return Catalog(checkpoints, frame[DETAIL_COLUMNS]), f"shipped for open_clip {installed}"
    return catalog_frames(timm_version), f"read from open_clip {installed}"


# -- counted FLOPs, shipped ------------------------------------------------------------------------
COMPUTE_COLUMNS = ["model", "image_size", "text_length", "image_params", "text_params", "image_flops",
                   "text_flops", "train_forward_flops", "counter", "error", "torch_version", "open_clip_version",
                   "created_at"]


def shipped_compute(open_clip_version: str, path: Path | None = None) -> pd.DataFrame:
    """The project's own counts of image-text models for one open_clip version."""
    path = Path(path or COMPUTE_CSV)
    if not path.exists():
        return pd.DataFrame(columns=COMPUTE_COLUMNS)
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    frame = frame[frame["open_clip_version"].astype(str) == open_clip_version]
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    return frame.reset_index(drop=True)


def image_tower_compute(counted: pd.DataFrame, timm_version: str) -> pd.DataFrame:
    """Image-tower rows for the compute table (arch `open_clip:<model>`, no classifier head), so
    the image-text zoo shares the GFLOP and parameter axes: the inference cost of a zero-shot
    prediction is its image tower's (the class prompts are encoded once)."""
    ok = counted[counted["error"].isna()].drop_duplicates(["model", "image_size"])
    return pd.DataFrame({
        "arch": ID_PREFIX + ok["model"], "img_size": ok["image_size"].astype(int), "num_classes": 0,
        "img_width": ok["image_size"].astype(int), "params": ok["image_params"].astype("Int64"),
        "flops": ok["image_flops"], "macs": ok["image_flops"] / 2, "attention_flops": None,
        "flops_by_module": None, "reparameterizable": None, "counter": ok["counter"], "device": "meta",
        "error": None, "torch_version": ok["torch_version"], "timm_version": timm_version,
        "created_at": ok["created_at"]})
