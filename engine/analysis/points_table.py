"""The table every analysis reads: one row per (checkpoint, quality metric, cost metric), assembled
from the catalog, published and measured results, then selected by cost, quality and filters.

Pure functions over DataFrames: no SQL, no UI.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from engine.catalog import image_text_published, objectives
from engine.catalog.training_ranges import PLACED_MIDDLE, range_text

CLASSES = ("ConvNet", "ViT", "Hybrid", "MLP")
COST_METRICS = ("gflops", "params_m", "train_flops", "latency_ms", "ms_per_img", "pretrain_tpu_v4_core_hours",
                "paper_gflops")
# train_flops: each checkpoint's training compute, estimated from its sourced recipe (all stages;
# engine.training_compute); a checkpoint without one is left out of that axis, never defaulted.
# gflops are counted here, one convention for all checkpoints. Papers report "FLOPs" in their own
# conventions (ConvNeXt's and NFNet's are multiply-adds, ViT-G's are real FLOPs), so a paper's
# numbers stay on their own axis, paper_gflops, and are compared only with each other.
TOY_FAMILIES = ("test",)  # timm's test_* models: tiny nets for unit tests, not candidates
LOWER_IS_BETTER_SUFFIXES = (".ece", ".nll", ".error")
DATASET_OF_VARIANT = {"imagenet": "imagenet", "imagenet-a": "imagenet-a", "imagenet-r": "imagenet-r",
                      "imagenet-v2": "imagenet-v2", "sketch": "sketch", "real": "imagenet-real"}
POINT_COLUMNS = ["checkpoint", "arch", "arch_class", "family", "pretrain_data", "objective", "data_scale",
                 "img_size", "source", "quality_metric", "quality", "cost_metric", "cost", "zoo", "cost_low",
                 "cost_high", "cost_range"]
# objective: the pre-training objective (engine.catalog.objectives), `unknown` where neither a
# recipe nor the tag states it; empty for a paper's reference rows.
# cost_low / cost_high: the range of a cost that is an estimate (train_flops: training_ranges), NaN elsewhere.
# The coverage check's rows: checkpoints without a training-compute estimate, their cost the bracket of
# COVERAGE_EPOCHS of their stated data (cost_low..cost_high; `cost` = cost_low). Never an estimate: no
# page draws them and `select` gives them only when asked for by this name.
UNESTIMATED = "train_flops_unestimated"
ZOOS = ("imagenet", "image-text")  # ImageNet classifiers (timm) | image-text models (OpenCLIP)
UNKNOWN_SCALE = "unknown"  # a data-scale filter value: the data's size is not known
UNKNOWN_OBJECTIVE = objectives.UNKNOWN


class AnalysisError(ValueError):
    """The request cannot be answered from these points; the message says why."""


def higher_is_better(quality_metric: str) -> bool:
    return not quality_metric.endswith(LOWER_IS_BETTER_SUFFIXES)


def _quality_rows(frame: pd.DataFrame, dataset_col: str, source: str) -> pd.DataFrame:
    rows = []
    for metric in ("top1", "top5", "ece", "nll"):
        if metric in frame.columns:
            part = frame[frame[metric].notna()].copy()
            part["quality_metric"] = part[dataset_col] + "." + metric
            part["quality"] = part[metric]
            rows.append(part)
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows, ignore_index=True)
    out["source"] = source if source != "measured" else "measured here"
    return out


def _eval_rows(evals: pd.DataFrame) -> pd.DataFrame:
    """Evaluations measured here as quality rows, named by their variant's task (`imagenet.top1`);
    two sets evaluated as one variant are two tasks (`imagenet~3f9a1c.top1`, dataset_labels)."""
    measured = evals.assign(dataset=evals["variant"].map(DATASET_OF_VARIANT).fillna(evals["variant"]))
    if "dataset_fingerprint" in measured:
        measured["dataset"] = dataset_labels(measured["dataset"], measured["dataset_fingerprint"])
    return _quality_rows(measured, "dataset", "measured")


PROBE_METRICS = {"accuracy": "acc", "balanced_accuracy": "balanced_acc", "macro_f1": "macro_f1", "nll": "nll"}


def probe_metric_name(dataset_name: str, protocol: str, shots=None) -> str:
    """probe:<dataset>[@Kshot|@val]: the quality-metric prefix of a linear probe's results."""
    if protocol in ("kfold", "val"):
        return f"probe:{dataset_name}" + ("@val" if protocol == "val" else "")
    return f"probe:{dataset_name}@{int(shots)}shot"


def dataset_labels(names: pd.Series, fingerprints: pd.Series, taken: frozenset[str] = frozenset(),
                   is_task: pd.Series | None = None) -> pd.Series:
    """Each measured result's dataset as metric names show it: its name, or, where datasets of one
    name hold different images (two folders called `train`) or the name is a published task's and
    the data is not that task (a 2-class folder called `imagenet1k`), the name and its fingerprint's
    first six characters (`train~3f9a1c`), so two tasks are never read as one."""
    frame = pd.DataFrame({"name": names.astype(str), "fp": fingerprints.astype(str)})
    counts = frame.groupby("name")["fp"].transform("nunique")
    task = pd.Series(False, index=names.index) if is_task is None else is_task.fillna(False).astype(bool)
    return pd.Series([name if n <= 1 and (name not in taken or own) else f"{name}~{fp[:6]}" for name, fp, n, own in
                      zip(frame["name"], frame["fp"], counts, task, strict=True)], index=names.index)


def probe_dataset_labels(probes: pd.DataFrame) -> pd.Series:
    """Each probe's dataset as metric names show it (dataset_labels): its folder name, or its name
    and fingerprint where folders of one name hold different images."""
    return dataset_labels(probes["dataset_name"], probes["dataset_fingerprint"])


def _probe_rows(probes: pd.DataFrame) -> pd.DataFrame:
    """Linear-probe results as quality rows (probe:<dataset>.acc, .balanced_acc, .macro_f1, .nll);
    the newest result per checkpoint and metric."""
    latest = probes.sort_values("created_at").copy()
    latest["prefix"] = [probe_metric_name(d, p, s) for d, p, s in
                        zip(probe_dataset_labels(latest), latest["protocol"], latest["shots"], strict=True)]
    return _newest_rows(latest, PROBE_METRICS)


def _newest_rows(latest: pd.DataFrame, metrics: dict[str, str]) -> pd.DataFrame:
    """Measured results (sorted oldest first, with a metric `prefix`) as quality rows: the newest
    per checkpoint and prefix, one row per metric column that has a value."""
    latest = latest.drop_duplicates(["checkpoint", "prefix"], keep="last")
    rows = []
    for column, short in metrics.items():
        part = latest[latest[column].notna()].copy()
        part["quality_metric"] = part["prefix"] + "." + short
        part["quality"] = part[column]
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out["source"] = "measured here"
    return out


ZEROSHOT_METRICS = {"top1": "top1", "top5": "top5", "balanced_accuracy": "balanced_acc"}


def _zeroshot_rows(zeroshots: pd.DataFrame) -> pd.DataFrame:
    """Zero-shot runs measured here as quality rows (zeroshot:<dataset>.top1, .top5,
    .balanced_acc); the newest per checkpoint and metric. A folder of the 1000 ImageNet classes
    is `imagenet1k`, as OpenCLIP's published table names it."""
    latest = zeroshots.sort_values("created_at").copy()
    if "dataset_fingerprint" in latest:
        imagenet = ((latest["dataset_id"] == "imagenet1k") & (latest["n_classes"] == 1000)
                    & latest["label_map"].fillna("").str.contains("ImageNet-1k index", regex=False))
        latest["dataset_id"] = dataset_labels(latest["dataset_id"], latest["dataset_fingerprint"],
                                              image_text_published.task_names(), imagenet)
    latest["prefix"] = "zeroshot:" + latest["dataset_id"]
    return _newest_rows(latest, ZEROSHOT_METRICS)


def _objectives(frame: pd.DataFrame | None) -> dict[str, str]:
    """checkpoint -> pre-training objective, from its stored recipe stages and its tag."""
    if frame is None or frame.empty:
        return {}
    return {c: objectives.objective(a, t, s, z) for c, a, t, s, z in
            zip(frame["checkpoint"], frame["arch"], frame["tag"], frame["stages"], frame["zoo"], strict=True)}


def assemble_points(inputs: dict[str, pd.DataFrame], bench_source: str | None = None) -> pd.DataFrame:
    """One row per (checkpoint, quality metric, cost metric), with `source` kept.

    inputs: published (published results + checkpoint facts), evals (measured, + facts),
    compute, published_benchmarks, benchmarks (measured), reference (paper facts).
    `bench_source` picks the published benchmark file for ms_per_img ('here' = measured)."""
    published = inputs.get("published", pd.DataFrame())
    measured = inputs.get("evals", pd.DataFrame())
    quality = []
    if not published.empty:
        quality.append(_quality_rows(published, "dataset", "published"))
    if not measured.empty:
        quality.append(_eval_rows(measured))
    probes = inputs.get("probes", pd.DataFrame())
    if not probes.empty:
        quality.append(_probe_rows(probes))
    image_text = inputs.get("image_text_published", pd.DataFrame())
    if not image_text.empty:
        quality.append(image_text.rename(columns={"metric": "quality_metric", "value": "quality"})
                       .assign(source="published"))
    zeroshots = inputs.get("zeroshots", pd.DataFrame())
    if not zeroshots.empty:
        quality.append(_zeroshot_rows(zeroshots))
    quality = [q for q in quality if not q.empty]
    frames = []
    if quality:
        q = pd.concat(quality, ignore_index=True)
        keys = ["checkpoint", "arch", "arch_class", "family", "pretrain_data", "data_scale", "img_size",
                "num_classes", "source", "quality_metric", "quality", "zoo"]
        q = q.assign(zoo=q["zoo"].fillna("imagenet") if "zoo" in q else "imagenet")[keys]
        q = q.assign(objective=q["checkpoint"].map(_objectives(inputs.get("objectives"))).fillna(UNKNOWN_OBJECTIVE))
        compute = inputs.get("compute", pd.DataFrame())
        if not compute.empty:
            c = compute[compute["error"].isna()][["arch", "img_size", "num_classes", "flops", "params"]]
            joined = q.merge(c, on=["arch", "img_size", "num_classes"], how="inner")
            frames.append(joined.assign(cost_metric="gflops", cost=joined["flops"] / 1e9))
            frames.append(joined.assign(cost_metric="params_m", cost=joined["params"] / 1e6))
        training = inputs.get("training_compute", pd.DataFrame())
        if not training.empty:
            training = training.reindex(columns=["checkpoint", "train_flops", "train_flops_low", "train_flops_high",
                                                 "placement", "bracket_low", "bracket_high"])
            joined = q.merge(training, on="checkpoint", how="inner")
            known = joined[joined["train_flops"].notna()]
            known = known.assign(cost_metric="train_flops", cost=known["train_flops"],
                                 cost_low=known["train_flops_low"].fillna(known["train_flops"]),
                                 cost_high=known["train_flops_high"].fillna(known["train_flops"]))
            frames.append(known.assign(cost_range=[
                range_text(v, lo, hi) + (" (placed at the middle of a lower bound's range)" if p == PLACED_MIDDLE else "")
                for v, lo, hi, p in zip(known["cost"], known["cost_low"], known["cost_high"], known["placement"],
                                        strict=True)]))
            unknown = joined[joined["train_flops"].isna() & joined["bracket_low"].notna()]
            frames.append(unknown.assign(cost_metric=UNESTIMATED, cost=unknown["bracket_low"],
                                         cost_low=unknown["bracket_low"], cost_high=unknown["bracket_high"]))
        bench = inputs.get("published_benchmarks", pd.DataFrame())
        if bench_source not in (None, "here") and not bench.empty:
            b = bench[bench["source_file"] == bench_source][["arch", "img_size", "samples_per_sec"]]
            b = b.groupby(["arch", "img_size"], as_index=False)["samples_per_sec"].max()
            joined = q.merge(b, on=["arch", "img_size"], how="inner")
            frames.append(joined.assign(cost_metric="ms_per_img", cost=1000 / joined["samples_per_sec"]))
        here = inputs.get("benchmarks", pd.DataFrame())
        if not here.empty:
            h = here[here["error"].isna()].groupby(["arch", "img_size"], as_index=False).agg(
                latency=("latency_p50_ms", "min"), throughput=("throughput", "max"))
            joined = q.merge(h, on=["arch", "img_size"], how="inner")
            frames.append(joined.assign(cost_metric="latency_ms", cost=joined["latency"]))
            if bench_source == "here":
                frames.append(joined.assign(cost_metric="ms_per_img", cost=1000 / joined["throughput"]))
    reference = inputs.get("reference", pd.DataFrame())
    if not reference.empty:
        ref = reference[reference["imagenet_top1"].notna()].copy()
        ref = ref.assign(checkpoint=ref["model"], family=None, data_scale=None, img_size=None,
                         source=ref["source"], quality_metric="imagenet.top1", quality=ref["imagenet_top1"],
                         zoo="imagenet")
        for metric, values in (("paper_gflops", ref["gflops"]), ("params_m", ref["params_m"]),
                               ("pretrain_tpu_v4_core_hours",
                                ref["compute_value"].where(ref["compute_unit"] == "tpu_v4_core_hours"))):
            part = ref.assign(cost_metric=metric, cost=values)
            frames.append(part[part["cost"].notna()])
    if not frames:
        return pd.DataFrame(columns=POINT_COLUMNS)
    points = pd.concat([f.reindex(columns=POINT_COLUMNS) for f in frames if not f.empty], ignore_index=True)
    return points[(points["cost"] > 0) & points["quality"].notna()].reset_index(drop=True)


def select(points: pd.DataFrame, cost: str, quality: str, classes=None, data_scales=None,
           families=None, sources=None, img_size_range=None, include_toys: bool = False,
           zoo: str | None = None, data_sources=None, objectives=None) -> pd.DataFrame:
    """The points for one cost and one quality metric, after the filters. `data_scales` may
    hold "unknown" (checkpoints whose data's size is not known); `data_sources` filters on the
    pre-training data by name (the "same data" view); `objectives` on the pre-training objective."""
    if cost not in COST_METRICS and cost != UNESTIMATED:
        raise AnalysisError(f"Unknown cost {cost!r}; use one of {', '.join(COST_METRICS)}.")
    chosen = points[(points["cost_metric"] == cost) & (points["quality_metric"] == quality)]
    if zoo:
        chosen = chosen[chosen["zoo"] == zoo]
    if not include_toys:
        chosen = chosen[~chosen["family"].isin(TOY_FAMILIES)]
    if classes:
        chosen = chosen[chosen["arch_class"].isin(classes)]
    if data_scales:
        chosen = chosen[chosen["data_scale"].fillna(UNKNOWN_SCALE).isin(data_scales)]
    if data_sources:
        chosen = chosen[chosen["pretrain_data"].isin(data_sources)]
    if objectives:
        chosen = chosen[chosen["objective"].isin(objectives)]
    if families:
        chosen = chosen[chosen["family"].isin(families)]
    if sources:
        chosen = chosen[chosen["source"].isin(sources) | chosen["source"].apply(
            lambda s: ("published" in sources and s not in ("published", "measured here")))]
    if img_size_range:
        low, high = img_size_range
        chosen = chosen[chosen["img_size"].isna() | chosen["img_size"].between(low, high)]
    if chosen.empty:
        available = sorted(points.loc[points["cost_metric"] == cost, "quality_metric"].unique())
        raise AnalysisError(f"No points with cost {cost} and quality {quality} after the filters. "
                            f"Qualities available with {cost}: {', '.join(available[:12]) or 'none'}.")
    return chosen.reset_index(drop=True)


def _oriented(frame: pd.DataFrame, quality: str) -> np.ndarray:
    """Quality where higher is always better (lower-is-better metrics are negated)."""
    q = frame["quality"].to_numpy(dtype=float)
    return q if higher_is_better(quality) else -q
