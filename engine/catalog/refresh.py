"""Fill the catalog offline on the first start and on `catalog refresh`: timm's and OpenCLIP's
checkpoints, the shipped FLOP counts and published snapshots, and the training-compute estimates.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from engine.catalog.timm_models import (SHIPPED_COMPUTE_CSV, _architectures_frame, _checkpoints_frame, load_registry,
                                        reference_points_frame, shipped_compute_frame)
from engine.store import Store


@dataclass
class RefreshReport:
    checkpoints: int
    architectures: int
    reference_points: int
    timm_version: str
    compute_loaded: int = 0
    published: str = ""              # what happened to the shipped published-results snapshot
    published_error: str | None = None  # why it was not loaded (missing, damaged, newer)
    training_compute: str = ""       # how many checkpoints have a training-compute estimate
    recipes_refused: str = ""        # one line on recipe rows refused, if any
    image_text_checkpoints: int = 0  # of `checkpoints`, the OpenCLIP ones (the image-text zoo)
    open_clip_version: str | None = None
    image_text_published: str = ""   # what happened to the shipped OpenCLIP snapshot
    image_text_error: str | None = None


def _image_text_architectures(checkpoints: pd.DataFrame) -> pd.DataFrame:
    """One architectures row per OpenCLIP model (its image tower's class; no classifier head)."""
    first = checkpoints.groupby("arch", as_index=False).agg(
        module=("module", "first"), arch_class=("arch_class", "first"), family=("family", "first"),
        n_pretrained=("checkpoint", "size"), default_input_h=("input_h", "first"),
        default_input_w=("input_w", "first"))
    return first.assign(registered=True, note=None, default_num_classes=0)


def refresh(store: Store, load_published: bool = True) -> RefreshReport:
    """Fill `checkpoints`, `architectures` and `reference_points` from the installed timm and
    OpenCLIP, offline, load the shipped FLOP counts for these versions (counts made here are
    kept) and the shipped snapshots of timm's and OpenCLIP's published results (never over rows
    from sync or import). A snapshot that cannot be loaded leaves the catalog in place and says
    why in the report."""
    from engine.catalog import image_text
    registry = load_registry()  # the shipped copy for this timm: no torch import on a first start
    timm_version = registry.version
    architectures = _architectures_frame(registry)
    checkpoints = _checkpoints_frame(architectures, registry)
    zoo, _ = image_text.load_catalog(timm_version)
    if not zoo.checkpoints.empty:
        architectures = pd.concat([architectures, _image_text_architectures(zoo.checkpoints)[architectures.columns]],
                                  ignore_index=True)
    if not zoo.checkpoints.empty:
        checkpoints = pd.concat([checkpoints, zoo.checkpoints[checkpoints.columns]], ignore_index=True)
    reference = reference_points_frame()
    store.replace_catalog(architectures, checkpoints, reference, timm_version, image_text=zoo.details)
    open_clip_version = image_text.installed_open_clip()
    store.upsert_image_text_compute(image_text.shipped_compute(str(open_clip_version)), keep_existing=True)
    loaded = store.upsert_compute(shipped_compute_frame(timm_version), keep_existing=True)
    loaded += store.upsert_compute(image_text.image_tower_compute(store.image_text_compute_frame(), timm_version),
                                   keep_existing=True)
    report = RefreshReport(len(checkpoints), len(architectures), len(reference), timm_version, loaded,
                           image_text_checkpoints=len(zoo.checkpoints), open_clip_version=open_clip_version)
    report.training_compute, report.recipes_refused = refresh_training_compute(store)
    store.mark_catalog_complete(timm_version)
    if load_published:
        from engine.catalog import image_text_published, snapshot
        try:
            report.published = snapshot.load(store).message
        except snapshot.SnapshotError as e:
            report.published_error = str(e)
        try:
            report.image_text_published = image_text_published.load_snapshot(store)
        except image_text_published.PublishedError as e:
            report.image_text_error = str(e)
    return report


def refresh_training_compute(store: Store) -> tuple[str, str]:
    """Estimate every checkpoint's training compute over its lineage (engine.catalog.lineage) from
    the shipped recipes and the counted FLOPs, as a range, and store it; unknown ones stay unknown
    with their coverage bracket. Returns what to say: how many were estimated, and one line on
    refused recipe rows and lineages (empty when none)."""
    from engine.catalog import image_text, lineage, training_compute
    try:
        book = training_compute.load_recipes()
    except (training_compute.RecipeError, OSError, ValueError) as e:
        return "training compute not estimated", f"training recipes not loaded: {e}"
    inputs = store.training_compute_inputs()
    heads = dict(zip(inputs["heads"]["arch"], inputs["heads"]["default_num_classes"].fillna(1000).astype(int),
                     strict=True))
    own = training_compute.estimate(inputs["checkpoints"], inputs["compute"], book, heads)
    try:
        zoo = image_text.with_ranges(image_text.estimate(store.image_text_compute_frame(), store.image_text_catalog(),
                                                         datasets=book.datasets))
    except (image_text.ImageTextError, OSError, ValueError) as e:
        zoo, refused = pd.DataFrame(), [f"image-text training recipes not loaded: {e}"]
    else:
        refused = []
    links = dict(zip(inputs["links"]["timm_checkpoint"][::-1], inputs["links"]["checkpoint"][::-1], strict=True))
    flops = training_compute.forward_table(inputs["compute"], heads)
    estimates, loops = lineage.resolve_all(inputs["checkpoints"], own, book, links, zoo, flops)
    brackets = [training_compute.bracket_of(c, e, flops, book.datasets) for c, e in
                zip(inputs["checkpoints"].to_dict("records"), estimates.to_dict("records"), strict=True)]
    estimates = estimates.assign(bracket_low=[b[0] for b in brackets], bracket_high=[b[1] for b in brackets],
                                 bracket_note=[b[2] for b in brackets])
    both = pd.concat([estimates, zoo], ignore_index=True) if not zoo.empty else estimates
    store.replace_training_compute(training_compute.as_table(both))
    known = int(estimates["train_flops"].notna().sum())
    bounds = int((estimates["train_flops"].isna() & estimates["train_flops_low"].notna()).sum())
    zoo_known = int(zoo["train_flops"].notna().sum()) if not zoo.empty else 0
    line = "; ".join(x for x in (book.refused_line(), *refused,
                                 f"{len(loops)} lineage(s) refused; first: {loops[0]}" if loops else "") if x)
    through = int((estimates["train_flops"].notna() & estimates["lineage"].map(bool)).sum())
    return (f"training compute estimated for {known} of {len(estimates)} ImageNet-zoo checkpoints "
            f"({known - through} from their own of {book.stages.groupby(['tag', 'arch_pattern']).ngroups} sourced "
            f"recipes, {through} through their lineage; {bounds} more are lower bounds only), and for "
            f"{zoo_known} of {len(zoo)} image-text checkpoints (samples seen from the tag or a sourced recipe)", line)


def training_count_targets(store: Store, missing_only: bool = True) -> pd.DataFrame:
    """(arch, img_size, img_width, num_classes) the training-compute estimates need counted: each
    recipe stage's student at its train resolution, each countable teacher with its default head."""
    from engine.catalog import training_compute
    inputs = store.training_compute_inputs()
    heads = dict(zip(inputs["heads"]["arch"], inputs["heads"]["default_num_classes"].fillna(1000).astype(int),
                     strict=True))
    needed = training_compute.needed_counts(training_compute.load_recipes(), inputs["checkpoints"])
    needed |= training_compute.vit_paper_counts()  # the convention check's networks
    frame = pd.DataFrame(sorted((a, r, r, heads.get(a, 1000) if n == -1 else n) for a, r, n in needed),
                         columns=["arch", "img_size", "img_width", "num_classes"])
    if missing_only and not frame.empty:
        counted = inputs["compute"]
        counted = counted[counted["error"].isna()][["arch", "img_size", "num_classes"]].assign(_have=True)
        frame = frame.merge(counted, on=["arch", "img_size", "num_classes"], how="left")
        frame = frame[frame["_have"].isna()].drop(columns="_have")
    return frame.reset_index(drop=True)


def write_shipped_compute(store: Store, path: Path = SHIPPED_COMPUTE_CSV) -> int:
    """Write the counted compute table as the project's shipped measurement: timm's architectures
    only (the OpenCLIP image-tower rows are derived from data/image_text_compute.csv at refresh)."""
    from engine.catalog.image_text import ID_PREFIX
    frame = store.compute_frame()
    frame = frame[~frame["arch"].str.startswith(ID_PREFIX)]
    frame.to_csv(path, index=False)
    return len(frame)
