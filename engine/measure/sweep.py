"""Sweeps: many checkpoints evaluated on one set, overnight, on one GPU or fanned out with Ray.

A sweep is planned before anything is spent (`plan`: groups, images, counted FLOPs, estimated
time and where each estimate comes from, downloads, decoded-cache disk). Running it is `eval` at
scale: the same cache key, the same row, so a sweep result is an eval result; checkpoints already
in the store are skipped; each result is committed as soon as it is finished, so a sweep stopped
by a crash, kill -9 or Ctrl-C resumes where it stopped; one checkpoint's failure (gated, offline
and not cached, out of memory at batch 1, a head that cannot score the 1k classes) is listed with
its reason and the others go on. With Ray, each checkpoint is a task; the driver is the only
process that writes the store.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import pandas as pd

from engine.catalog import hub, taxonomy, timm_models
from engine.errors import MatchupError
from engine.measure import cluster, decoded, evaluate
from engine.measure.datasets import EvalDataset
from engine.store import Store

log = logging.getLogger(__name__)

UTILISATION = 0.4  # share of peak assumed when only counted FLOPs are known
# Dense peak TFLOP/s by device name fragment and precision (vendor data sheets; SXM parts).
PEAK_TFLOPS = {
    "h200": {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0},
    "h100": {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0},
    "a100": {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5},
    "l40s": {"bf16": 362.0, "fp16": 362.0, "fp32": 91.6},
    "4090": {"bf16": 165.0, "fp16": 165.0, "fp32": 82.6},
    "cpu": {"bf16": 0.1, "fp16": 0.1, "fp32": 0.1},
}


class SweepError(MatchupError):
    """A sweep cannot be planned or run as asked; the message says what to change."""


# -- what to sweep ------------------------------------------------------------------------------------
@dataclass
class Selection:
    """The Run page's filters, plus a FLOP budget and explicit lists; empty filters keep all."""
    classes: list[str] | None = None
    families: list[str] | None = None
    data_scales: list[str] | None = None
    max_params_m: float | None = None
    max_gflops: float | None = None
    checkpoints: list[str] | None = None
    from_file: str | None = None
    published_only: bool = False  # only checkpoints timm publishes ImageNet results for
    zoo: str = "imagenet"         # or "image-text": OpenCLIP checkpoints (zero-shot sweeps)


def _named(selection: Selection) -> list[str]:
    names = list(selection.checkpoints or [])
    if selection.from_file:
        from engine import options
        text = options.text_file(selection.from_file, "--from-file")
        names += [line.split("#", 1)[0].strip() for line in text.splitlines()]
    names = [n for n in dict.fromkeys(names) if n]
    for name in names:  # an unknown id: a clear error with close names
        if selection.zoo == "image-text":
            from engine.measure import zeroshot
            zeroshot.spec_of(name)
        else:
            hub.pretrained_cfg(name)
    return names


def select(store: Store, selection: Selection) -> list[str]:
    """The checkpoint ids a selection names, in catalog order (explicit lists keep their order)."""
    for value, allowed, option in ((selection.classes, taxonomy.ARCH_CLASSES, "--class"),
                                   (selection.data_scales, ("≈1M", "≈10M", "≈100M", "≥1B"), "--data-scale")):
        unknown = [v for v in value or [] if v not in allowed]
        if unknown:
            raise SweepError(f"{option} {', '.join(unknown)} is not one of {', '.join(allowed)}.")
    for value, option in ((selection.max_params_m, "--max-params"), (selection.max_gflops, "--max-gflops")):
        if value is not None and not value > 0:
            raise SweepError(f"{option} must be a positive number, not {value}.")
    frame = timm_models.list_checkpoints(store, zoo=selection.zoo)
    if frame.empty:
        raise SweepError("The catalog is empty: run `python -m engine catalog refresh` first.")
    named = _named(selection)
    if named and selection.zoo == "image-text":  # hf-hub:ORG/REPO ids need not be in the catalog
        return named
    if named:
        frame = frame.set_index("checkpoint").loc[[n for n in named if n in set(frame["checkpoint"])]].reset_index()
    elif "test" not in (selection.families or []):
        frame = frame[frame["family"] != "test"]  # timm's toy models only when asked for
    frame = timm_models.filter_checkpoints(frame, selection.classes, selection.families, selection.data_scales,
                                       selection.max_params_m)
    if selection.max_gflops is not None:
        costs = store.eval_compute(selection.zoo).set_index("checkpoint")["flops"] / 1e9
        frame = frame[frame["checkpoint"].map(costs) <= selection.max_gflops]
    if selection.published_only:
        frame = frame[frame["imagenet_top1"].notna()]
    if frame.empty:
        raise SweepError("No checkpoint matches this selection; widen the filters (`python -m "
                         "engine catalog list` shows what exists).")
    return frame["checkpoint"].tolist()


# -- the plan -----------------------------------------------------------------------------------------
def _peak(device: str, precision: str) -> tuple[float, str] | None:
    lowered = device.lower()
    for fragment, peaks in PEAK_TFLOPS.items():
        if fragment in lowered:
            return peaks[precision] * 1e12, fragment
    return None


def _nearest_published(store: Store, device: str) -> str | None:
    """The published benchmark file of the device nearest to `device`: a CPU file for a CPU,
    else the newest plain AMP GPU file (Blackwell, the closest to a datacenter GPU)."""
    sources = store.published_benchmark_sources()
    if sources.empty:
        return None
    is_cpu = sources["device"].str.startswith("cpu")
    wanted = sources[is_cpu] if "cpu" in device.lower() else sources[~is_cpu]
    return wanted["source_file"].iloc[0] if not wanted.empty else None


def _weights_cached(checkpoint: str) -> bool:
    try:
        return evaluate.cached_revision(checkpoint) is not None
    except MatchupError:
        return False


@dataclass
class Plan:
    device: str
    precision: str
    n_images: int
    checkpoints: list[dict]              # one per selected checkpoint: what will happen and its cost
    groups: list[dict]                   # per pixel group: checkpoints to run, decoded-cache state
    total_flops: float = 0.0             # counted FLOPs of the checkpoints to run × images
    estimated_seconds: float = 0.0
    estimate_sources: dict = field(default_factory=dict)
    download_bytes: float = 0.0
    decoded_cache_bytes: int = 0         # every group's entry, written in turn
    decoded_cache_peak_bytes: int = 0    # the largest entry: the least budget that caches every group
    nearest_published: str | None = None
    unestimated: list[str] = field(default_factory=list)

    def to_run(self) -> list[str]:
        return [c["checkpoint"] for c in self.checkpoints if c["status"] == "to run"]

    def as_dict(self) -> dict:
        return asdict(self)


def plan(store: Store, checkpoints: list[str], dataset: EvalDataset | None, settings: evaluate.EvalSettings,
         n_images: int | None = None, estimate_for: str | None = None) -> Plan:
    """What a sweep would do and cost, before anything is downloaded or decoded. Time per
    checkpoint comes from benchmarks measured here on this device, else the nearest published
    benchmark file, else counted FLOPs at UTILISATION of the device's peak; each row says which."""
    from engine.measure.profile import device_name, resolve_device
    if dataset is not None:
        settings = evaluate.effective(settings, dataset)
        dataset = dataset.limit(settings.limit)
        n_images = len(dataset)
    if not n_images or n_images < 1:
        raise SweepError("A plan needs images: --data DIR, or --images N with --dry-run.")
    device = estimate_for or device_name(resolve_device(settings.device))
    published = _nearest_published(store, device)
    rates = store.throughputs(device, settings.precision, published)
    measured = {(r.arch, r.img_size): r.images_per_sec for r in rates[rates["source"] == "measured"].itertuples()}
    from_file = {(r.arch, r.img_size): r.images_per_sec for r in rates[rates["source"] == "published"].itertuples()}
    compute = store.eval_compute().set_index("checkpoint")
    peak = _peak(device, settings.precision)
    cache = None
    if dataset is not None and settings.decoded_cache and settings.decoded_cache_gb != 0:
        try:
            cache = decoded.DecodedCache(budget_bytes=0)
        except OSError:  # an unusable cache: the plan counts every group as to decode
            cache = None
    rows, groups = [], {}
    for checkpoint in checkpoints:
        row = {"checkpoint": checkpoint, "status": "to run", "reason": None, "group": None,
               "gflops": None, "images_per_sec": None, "estimate_source": None, "seconds": None,
               "weights_cached": None, "download_bytes": 0.0}
        try:
            entry = evaluate.prepare(checkpoint, dataset or _any_imagenet())
        except MatchupError as e:
            rows.append({**row, "status": "skip", "reason": str(e)})
            continue
        config = entry["config"]
        pixels = decoded.pixel_key(config)
        row["group"] = f"{pixels[0][1]}x{pixels[0][2]} {pixels[1]} crop {pixels[2]:g} {pixels[3]}"
        found = evaluate.lookup(store, checkpoint, dataset, settings) if dataset is not None else None
        if found is not None:
            rows.append({**row, **_summary_row(found, "in the store"), "group": row["group"]})
            continue
        facts = compute.loc[checkpoint] if checkpoint in compute.index else None
        flops = float(facts["flops"]) if facts is not None and pd.notna(facts["flops"]) else None
        where = (facts["arch"], int(facts["img_size"])) if facts is not None else None
        if where in measured:
            rate, source = measured[where], f"measured here on {device}"
        elif where in from_file:
            rate, source = from_file[where], f"published: {published}"
        elif flops and peak:
            rate, source = peak[0] * UTILISATION / flops, f"counted FLOPs at {UTILISATION:.0%} of {peak[1]} peak"
        else:
            rate, source = None, None
        cached = _weights_cached(checkpoint)
        params = float(facts["params"]) if facts is not None and pd.notna(facts["params"]) else None
        row.update(gflops=flops / 1e9 if flops else None, images_per_sec=rate, estimate_source=source,
                   seconds=n_images / rate if rate else None, weights_cached=cached,
                   download_bytes=0.0 if cached else (4.0 * params if params else math.nan))
        rows.append(row)
        group = groups.setdefault(row["group"], {"group": row["group"], "checkpoints": [], "n_images": n_images,
                                                 "decoded_bytes": decoded.DecodedCache.nbytes(n_images, config),
                                                 "decoded_cache": "to write"})
        group["checkpoints"].append(checkpoint)
        if cache is not None and cache.has(decoded.DecodedCache.key(dataset, config)):
            group["decoded_cache"] = "cached"
    running = [r for r in rows if r["status"] == "to run"]
    result = Plan(device, settings.precision, n_images, rows, list(groups.values()), nearest_published=published)
    result.total_flops = sum((r["gflops"] or 0) * 1e9 * n_images for r in running)
    result.estimated_seconds = sum(r["seconds"] or 0 for r in running)
    result.unestimated = [r["checkpoint"] for r in running if r["seconds"] is None]
    for r in running:
        kind = (r["estimate_source"] or "no estimate").split(":")[0].split(" on ")[0].split(" at ")[0]
        result.estimate_sources[kind] = result.estimate_sources.get(kind, 0) + 1
    result.download_bytes = sum(r["download_bytes"] for r in running if not math.isnan(r["download_bytes"]))
    result.decoded_cache_bytes = sum(g["decoded_bytes"] for g in groups.values() if g["decoded_cache"] == "to write")
    result.decoded_cache_peak_bytes = max((g["decoded_bytes"] for g in groups.values()), default=0)
    return result


def cluster_schedule(the_plan: Plan, nodes: int, gpus_per_node: int) -> dict:
    """The plan's wall time on `nodes` machines of `gpus_per_node` GPUs each, from the same
    per-checkpoint estimates: preprocessing groups, largest first, each to the node where it would
    finish earliest (a group stays on one node, so its images are decoded once, into that node's
    own cache), and within a node each checkpoint, largest first, to its least loaded GPU. Also the
    decoded-cache disk each node needs (its groups' entries). Checkpoints without an estimate count
    zero seconds and are listed."""
    seconds = {c["checkpoint"]: c["seconds"] or 0.0 for c in the_plan.checkpoints if c["status"] == "to run"}
    groups = sorted(the_plan.groups, key=lambda g: -sum(seconds.get(c, 0.0) for c in g["checkpoints"]))
    gpus = [[0.0] * gpus_per_node for _ in range(nodes)]
    disk = [0] * nodes
    placed: list[list[str]] = [[] for _ in range(nodes)]

    def packed(loads: list[float], group: dict) -> list[float]:
        loads = list(loads)
        for checkpoint in sorted(group["checkpoints"], key=lambda c: -seconds.get(c, 0.0)):
            loads[loads.index(min(loads))] += seconds.get(checkpoint, 0.0)
        return loads
    for group in groups:
        options = [(max(packed(gpus[n], group)), disk[n], n) for n in range(nodes)]
        _, _, node = min(options)
        gpus[node] = packed(gpus[node], group)
        disk[node] += group["decoded_bytes"] if group["decoded_cache"] == "to write" else 0
        placed[node].append(group["group"])
    wall = max((max(loads) for loads in gpus), default=0.0)
    return {"nodes": nodes, "gpus_per_node": gpus_per_node, "device": the_plan.device,
            "wall_seconds": wall, "one_gpu_seconds": the_plan.estimated_seconds,
            "per_node": [{"node": n, "groups": placed[n], "busy_seconds": max(gpus[n]),
                          "decoded_cache_bytes": disk[n]} for n in range(nodes)],
            "decoded_cache_bytes_per_node_max": max(disk, default=0), "unestimated": list(the_plan.unestimated)}


def _any_imagenet():
    """A stand-in set for planning without data: the 1k classes, no images."""
    return EvalDataset("plan#imagenet", "imagenet", [], [], "plan", "plan")


# -- running ------------------------------------------------------------------------------------------
@dataclass
class SweepReport:
    results: list[dict]   # per checkpoint: status done | in the store | failed | skip, metrics or reason
    seconds: float
    interrupted: bool = False

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.results)


def _summary_row(row: dict, status: str) -> dict:
    details = row.get("details") or {}
    return {"checkpoint": row["checkpoint"], "status": status, "top1": row.get("top1"),
            "top5": row.get("top5"), "n_images": row.get("n_images"),
            "images_per_sec": row.get("images_per_sec"), "skipped_images": details.get("skipped_images", 0),
            "pixels_from": details.get("pixels_from"), "error": None}


class _Progress:
    """One bar for the whole sweep: images × checkpoints, with checkpoints done / total. A pass
    feeding k models over `done` images counts k × done until its checkpoints finish."""

    def __init__(self, n_checkpoints: int, n_images: int, enabled: bool):
        from tqdm import tqdm
        self.n_images, self.total, self.finished, self.current = n_images, n_checkpoints, 0, 0
        self.bar = tqdm(total=n_checkpoints * n_images, unit="img", desc=self._desc(), disable=not enabled,
                        smoothing=0.1)

    def _desc(self) -> str:
        return f"sweep {self.finished}/{self.total} checkpoints"

    def _draw(self) -> None:
        self.bar.n = min(self.bar.total, self.finished * self.n_images + self.current)
        self.bar.refresh()

    def pass_progress(self, state: dict) -> None:
        self.current = state["done"] * len(state["checkpoints"])
        self._draw()

    def checkpoint_finished(self) -> None:
        self.finished += 1
        self.current = max(0, self.current - self.n_images)
        self.bar.set_description(self._desc(), refresh=False)
        self._draw()

    def close(self):
        self.bar.close()


def run(store: Store, the_plan: Plan, dataset: EvalDataset, settings: evaluate.EvalSettings,
        show_progress: bool = True, ray_address: str | None = None, gpus_per_task: float = 1.0,
        on_result: Callable | None = None) -> SweepReport:
    """Run a plan: locally, or as Ray tasks when `ray_address` is given ("local" starts one)."""
    started = time.perf_counter()
    settings = evaluate.effective(settings, dataset)
    results = {c["checkpoint"]: ({k: c.get(k) for k in _summary_row({"checkpoint": None}, "")} |
                                 {"status": c["status"], "error": c["reason"]})
               for c in the_plan.checkpoints if c["status"] != "to run"}
    to_run = the_plan.to_run()
    progress = _Progress(len(to_run), the_plan.n_images, show_progress)

    def finished(row: dict, status: str, node: str | None = None) -> None:
        results[row["checkpoint"]] = {**_summary_row(row, status), **({"node": node} if node else {})}
        progress.checkpoint_finished()
        if on_result is not None:
            on_result(results[row["checkpoint"]])

    def failed(checkpoint: str, message: str) -> None:
        results[checkpoint] = {"checkpoint": checkpoint, "status": "failed", "error": message}
        progress.checkpoint_finished()
        if on_result is not None:
            on_result(results[checkpoint])

    interrupted = False
    try:
        if to_run and ray_address is not None:
            _run_on_ray(store, to_run, dataset, settings, ray_address, gpus_per_task, finished, failed)
        elif to_run:
            evaluate.evaluate(store, to_run, dataset, settings, progress=progress.pass_progress,
                              on_error=failed,
                              on_result=lambda row: finished(row, "in the store" if row["cached"] else "done"))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    order = [c["checkpoint"] for c in the_plan.checkpoints]
    rows = [results.get(c, {"checkpoint": c, "status": "not run", "error": None}) for c in order]
    return SweepReport(rows, time.perf_counter() - started, interrupted)


# -- Ray ----------------------------------------------------------------------------------------------
def evaluate_on_worker(checkpoint: str, data: dict, settings: dict) -> dict:
    """One checkpoint, on whichever Ray worker runs it: no store access; the rows go back to the
    driver, with the node it ran on (where its pixel group's decoded cache now is)."""
    import ray
    from engine.measure import datasets
    out = {"checkpoint": checkpoint, "rows": [], "error": None,
           "node": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None}
    eval_settings = evaluate.EvalSettings(**settings)
    try:
        dataset = datasets.open_dataset(**data).limit(eval_settings.limit)
        entry = evaluate.prepare(checkpoint, dataset)
        evaluate.evaluate_group([entry], dataset, eval_settings,
                                on_row=lambda row, cached: out["rows"].append((row, cached)),
                                on_error=lambda _c, message: out.update(error=message),
                                cache=evaluate.open_cache(eval_settings))
    except MatchupError as e:
        out["error"] = str(e)
    return out


def _run_on_ray(store: Store, checkpoints: list[str], dataset: EvalDataset, settings: evaluate.EvalSettings,
                address: str, gpus_per_task: float, finished: Callable, failed: Callable) -> None:
    cluster.connect(address)
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    on_gpu = settings.device.startswith("cuda")
    candidates = cluster.check_device("cuda" if on_gpu else "cpu", address)
    folder = dataset.opened_with.get("path") if not str(dataset.opened_with.get("path", "")).startswith("hfds/") else None
    good, left_out = cluster.preflight(candidates, [folder] if folder else [], checkpoints)
    for line in left_out:
        log.warning("%s", line)
    if not good:
        raise SweepError(f"No node of the Ray cluster at {address} can run this sweep: {' '.join(left_out)} "
                         f"{cluster.missing_hint()}")
    remote = ray.remote(max_retries=2)(evaluate_on_worker)
    resources = {"num_gpus": gpus_per_task if on_gpu else 0, "num_cpus": 1}
    task = remote.options(**resources, **cluster.on_nodes(good, candidates))
    data = dataset.opened_with  # each worker opens the same set (a shared or identical path)
    remote_settings = {**asdict(settings), "device": "cuda" if on_gpu else settings.device}
    groups: dict[tuple, list[str]] = {}
    for checkpoint in checkpoints:
        groups.setdefault(decoded.pixel_key(evaluate.data_config(hub.pretrained_cfg(checkpoint))), []).append(checkpoint)
    # A group's first checkpoint decodes its images into the decoded cache of the node it runs on;
    # the rest of the group is then sent to that node (soft affinity: elsewhere only if that node
    # is gone or full), so the decode-once saving holds on a cluster without a shared cache.
    refs, rest = {}, {}
    for members in groups.values():
        first = task.remote(members[0], data, remote_settings)
        refs[first], rest[first] = members[0], members[1:]
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            checkpoint = refs[ready[0]]
            followers = rest.pop(ready[0], [])
            try:
                out = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - the worker died on every retry
                out = None
                failed(checkpoint, f"its Ray task failed after retries ({type(e).__name__}: "
                                   f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}); "
                                   "run the sweep again to retry it")
            if followers:
                node = (out or {}).get("node")
                placed = remote.options(**resources, scheduling_strategy=NodeAffinitySchedulingStrategy(
                    node, soft=True)) if node else task
                for follower in followers:
                    ref = placed.remote(follower, data, remote_settings)
                    refs[ref] = follower
                    pending.append(ref)
            if out is None:
                continue
            if out["error"] and not out["rows"]:
                failed(checkpoint, out["error"])
                continue
            for row, cached in out["rows"]:
                if not cached:
                    store.put_eval(row)  # the driver is the only writer
                finished(row, "in the store" if cached else "done", out.get("node"))  # the Ray node it ran on
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
