"""Linear probe: feature extraction against eval on the same data, and fitting time (issue 15).

    python bench/probe_bench.py [--images 512] [--batch-size 32] [--workers 2] [--rounds 2]

1. Feature extraction images/s against `eval`'s images/s for the same checkpoint and the same
   generated folder (one pipeline: eval's decoding, the checkpoint's transform), in this
   process, alternating, median of the rounds; eval runs without its decoded-image cache and
   the probe without its feature cache, so both decode every image. Target: within 10%.
2. Fitting the probe (standardise + LogisticRegressionCV over 5 C values, 3 inner folds) on
   10,000 x 768 synthetic features in 10 classes with 5 outer folds. Target: under 30 s.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHECKPOINT = "resnet18.a1_in1k"  # timm's own architecture, random weights in a temporary Hub cache


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fit-only", action="store_true")
    args = parser.parse_args()
    if not args.fit_only:
        extraction(args)
    fitting()


def extraction(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="matchup-probe-bench-"))
    os.environ.update(HF_HUB_CACHE=str(tmp / "hub"), HF_HUB_OFFLINE="1", MATCHUP_CACHE=str(tmp / "cache"))
    from engine.measure import datasets, evaluate, probe
    from engine.store import Store
    from tests.conftest import SYNSETS, make_image_folder, write_hub_checkpoint
    write_hub_checkpoint(tmp / "hub", CHECKPOINT)
    folder = tmp / "data"
    make_image_folder(folder, synsets=SYNSETS, per_class=args.images // len(SYNSETS))
    data = probe.open_folder(folder)
    dataset = datasets.open_dataset(folder)
    eval_rates, probe_rates = [], []
    for round_ in range(args.rounds):
        store = Store(tmp / f"bench{round_}.duckdb")
        started = time.perf_counter()
        evaluate.evaluate(store, [CHECKPOINT], dataset, evaluate.EvalSettings(
            batch_size=args.batch_size, workers=args.workers, decoded_cache=False), force=True)
        eval_rates.append(len(dataset) / (time.perf_counter() - started))
        shutil.rmtree(probe.cache_root() / "features", ignore_errors=True)
        started = time.perf_counter()
        probe.extract(CHECKPOINT, data, probe.ProbeSettings(batch_size=args.batch_size, workers=args.workers))
        probe_rates.append(len(data) / (time.perf_counter() - started))
    e, p = statistics.median(eval_rates), statistics.median(probe_rates)
    print(f"{CHECKPOINT}, {len(data)} generated JPEGs 500x375, batch {args.batch_size}, {args.workers} workers, CPU")
    print(f"  eval (model load + decode + forward + metrics):      {e:7.1f} img/s  (rounds {[round(r, 1) for r in eval_rates]})")
    print(f"  probe features (model load + decode + forward):      {p:7.1f} img/s  (rounds {[round(r, 1) for r in probe_rates]})")
    print(f"  ratio probe / eval: {p / e:.2f}  (target: within 10%, 0.90-1.10)")


def fitting() -> None:
    import numpy as np

    from engine.measure import probe
    rng = np.random.default_rng(0)
    n, dim, classes = 10_000, 768, 10
    centres = rng.normal(0, 1, (classes, dim))
    labels = rng.integers(0, classes, n)
    features = (centres[labels] * 0.15 + rng.normal(0, 1, (n, dim))).astype(np.float32)
    started = time.perf_counter()
    result = probe.fit(features, labels, [str(c) for c in range(classes)], folds=5, seed=0)
    took = time.perf_counter() - started
    print(f"fit: {n} x {dim} features, {classes} classes, 5 folds x (3 inner folds x {len(probe.C_GRID)} C): "
          f"{took:.1f} s (target < 30 s); accuracy {result['accuracy']['mean']:.1f}%")


if __name__ == "__main__":
    main()
