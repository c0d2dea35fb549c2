"""A sweep against separate evaluations: the decoded-image cache, cold and warm.

    python bench/sweep_bench.py [--images 1000] [--batch-size 64] [--workers 2] [--rounds 2]

Generates 1,000 ImageNet-layout JPEGs (500x375) and a temporary Hub cache holding six small
checkpoints that share their pixel preprocessing (224, bicubic, crop 0.875) with seeded random
weights (no internet here; speed and the prediction check do not depend on trained weights).

- separate: six `eval` runs, one checkpoint each, each decoding every image (the decoded cache off,
  as before it existed);
- sweep, cold: one sweep over the six on an empty decoded cache (one decoding pass feeds the first
  four models and writes the cache; the other two read it);
- sweep, warm: the same sweep into a new database with the decoded cache filled (no decoding).

Target (issue 12): warm sweep <= 0.4x the separate runs, with identical predictions. Each round
runs the three in turn, so drift on a shared machine hits all alike; medians are reported.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the six cheapest checkpoints that share one pixel preprocessing: decoding weighs most beside them
CHECKPOINTS = ("lcnet_050.ra2_in1k", "mobilenetv3_small_050.lamb_in1k", "mobilenetv3_small_075.lamb_in1k",
               "mobilenetv3_small_100.lamb_in1k", "mnasnet_small.lamb_in1k", "lcnet_075.ra2_in1k")
TARGET = 0.4


def model_only_seconds(n_images: int, batch_size: int, channels_last: bool) -> float:
    """The six forwards alone over n random images: what no cache can take away."""
    import timm
    import torch
    layout = torch.channels_last if channels_last else torch.contiguous_format
    total = 0.0
    for checkpoint in CHECKPOINTS:
        model = timm.create_model(checkpoint.split(".")[0]).eval().to(memory_format=layout)
        batch = torch.randn(batch_size, 3, 224, 224).contiguous(memory_format=layout)
        with torch.inference_mode():
            model(batch)
            started = time.perf_counter()
            for start in range(0, n_images, batch_size):
                model(batch[:min(batch_size, n_images - start)])
            total += time.perf_counter() - started
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC for every run (mobile ConvNets run 1.5-3x faster so on a CPU)")
    args = parser.parse_args()

    from bench.generated import offline_set
    tmp, dataset = offline_set("matchup-sweep-bench-", CHECKPOINTS, args.images)
    from engine.catalog import refresh
    from engine.measure import evaluate, sweep
    from engine.store import Store
    catalog_db = tmp / "catalog.duckdb"
    refresh.refresh(Store(catalog_db), load_published=False)
    counter = iter(range(1000))

    def fresh_store() -> Store:
        path = tmp / f"run-{next(counter)}.duckdb"
        shutil.copy(catalog_db, path)
        return Store(path)

    separate_settings = evaluate.EvalSettings(batch_size=args.batch_size, workers=args.workers, decoded_cache=False,
                                              channels_last=args.channels_last)
    sweep_settings = evaluate.EvalSettings(batch_size=args.batch_size, workers=args.workers,
                                           channels_last=args.channels_last)

    def run_sweep() -> tuple[float, dict]:
        store = fresh_store()
        started = time.perf_counter()
        the_plan = sweep.plan(store, list(CHECKPOINTS), dataset, sweep_settings)
        report = sweep.run(store, the_plan, dataset, sweep_settings, show_progress=False)
        seconds = time.perf_counter() - started
        assert {r["status"] for r in report.results} == {"done"}, report.results
        rows = store.table_frame("evals")
        import json
        return seconds, {r["checkpoint"]: (json.loads(r["details"])["predictions"], json.loads(r["details"])["pixels_from"])
                         for r in rows.to_dict("records")}

    print(f"{len(dataset)} JPEGs 500x375, batch {args.batch_size}, {args.workers} workers, CPU "
          f"({os.cpu_count()} cores); {len(CHECKPOINTS)} checkpoints sharing 224 bicubic crop 0.875; "
          f"{'channels_last' if args.channels_last else 'NCHW'}")
    separate, cold, warm = [], [], []
    identical = True
    for _ in range(args.rounds):
        store = fresh_store()
        started = time.perf_counter()
        reference = {}
        for checkpoint in CHECKPOINTS:
            [row] = evaluate.evaluate(store, [checkpoint], dataset, separate_settings)
            reference[checkpoint] = row["details"]["predictions"]
        separate.append(time.perf_counter() - started)
        shutil.rmtree(tmp / "cache", ignore_errors=True)
        seconds, cold_rows = run_sweep()
        cold.append(seconds)
        seconds, warm_rows = run_sweep()
        warm.append(seconds)
        assert {p for _, p in warm_rows.values()} == {"decoded cache"}
        identical &= all(cold_rows[c][0] == reference[c] == warm_rows[c][0] for c in CHECKPOINTS)
    floor = model_only_seconds(len(dataset), args.batch_size, args.channels_last)
    base = statistics.median(separate)
    print(f"{'separate evaluations (6 x decode)':<36}{base:8.2f} s")
    print(f"{'model-only forward (the floor)':<36}{floor:8.2f} s   ratio {floor / base:.2f}")
    for name, times in (("sweep, cold decoded cache", cold), ("sweep, warm decoded cache", warm)):
        value = statistics.median(times)
        print(f"{name:<36}{value:8.2f} s   ratio {value / base:.2f}")
    print(f"target: warm sweep <= {TARGET}x separate; predictions identical in every run: {identical}")
    shell(tmp, catalog_db, args)


def shell(tmp: Path, catalog_db: Path, args) -> None:
    """The same comparison as a user runs it: six `python -m engine eval` commands (decoded cache
    off) against one `python -m engine sweep` command, cold then warm; each includes starting
    Python and importing torch and timm."""
    import subprocess
    common = ["--data", str(tmp / "val"), "--batch-size", str(args.batch_size), "--workers", str(args.workers),
              *(["--channels-last"] if args.channels_last else [])]

    def timed(db: Path, cache: Path, *argv) -> float:
        env = {**os.environ, "MATCHUP_CACHE": str(cache)}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "engine", "--db", str(db), *argv, *common, "--json"], cwd=ROOT,
                       env=env, check=True, capture_output=True)
        return time.perf_counter() - started

    separate, cold, warm = [], [], []
    for round_ in range(args.rounds):
        cache = tmp / f"shell-cache-{round_}"
        separate.append(sum(timed(tmp / f"shell-eval-{round_}-{i}.duckdb", tmp / "no-cache", "eval", checkpoint,
                                  "--decoded-cache-gb", "0") for i, checkpoint in enumerate(CHECKPOINTS)))
        for name, times in ((f"cold-{round_}", cold), (f"warm-{round_}", warm)):
            db = tmp / f"shell-sweep-{name}.duckdb"
            shutil.copy(catalog_db, db)
            times.append(timed(db, cache, "sweep", "--checkpoints", ",".join(CHECKPOINTS)))
    base = statistics.median(separate)
    print(f"from the shell: {'6 x python -m engine eval':<28}{base:8.2f} s")
    for name, times in (("sweep, cold decoded cache", cold), ("sweep, warm decoded cache", warm)):
        value = statistics.median(times)
        print(f"from the shell: {name:<28}{value:8.2f} s   ratio {value / base:.2f}")


if __name__ == "__main__":
    main()
