"""Evaluation speed against timm's validate.py procedure, with identical predictions.

    python bench/eval_bench.py [--images 1000] [--batch-size 64] [--workers 2]

Generates an ImageNet-layout folder of 500x375 JPEGs and a temporary Hub cache holding
mobilenetv3_large_100.ra_in1k and efficientnet_b0.ra_in1k with seeded random weights (this
machine has no internet; speed and the prediction check do not depend on trained weights).
Both checkpoints share their preprocessing, so Matchup evaluates them in one decoding pass.

Baseline, per checkpoint, as validate.py does it: timm.create_model(pretrained=True),
resolve_data_config(use_test_size=True), timm.data.create_loader over an ImageDataset with the
prefetcher, one warm-up batch of random data, then an inference_mode loop over the loader that
computes the loss and top-1/top-5 of every batch.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHECKPOINTS = ("mobilenetv3_large_100.ra_in1k", "efficientnet_b0.ra_in1k")


def validate_py_procedure(checkpoint: str, root: Path, batch_size: int, workers: int) -> tuple[float, dict]:
    import timm
    import torch
    from timm.data import ImageDataset, create_loader, resolve_data_config
    from timm.utils import accuracy
    from engine.catalog import hub
    weights = hub.resolve(checkpoint)
    started = time.perf_counter()
    model = timm.create_model(checkpoint, pretrained=True,
                              pretrained_cfg_overlay={"file": str(weights.path), "source": ""}).eval()
    config = resolve_data_config({}, model=model, use_test_size=True)
    loader = create_loader(ImageDataset(str(root)), input_size=config["input_size"], batch_size=batch_size,
                           use_prefetcher=True, interpolation=config["interpolation"], mean=config["mean"],
                           std=config["std"], num_workers=workers, crop_pct=config["crop_pct"],
                           crop_mode=config["crop_mode"], device=torch.device("cpu"))
    criterion = torch.nn.CrossEntropyLoss()
    predictions = []
    with torch.inference_mode():
        model(torch.randn((batch_size,) + tuple(config["input_size"])))  # validate.py's warm-up batch
        for images, target in loader:
            output = model(images)
            criterion(output, target)
            accuracy(output, target, topk=(1, 5))
            predictions += output.argmax(dim=1).tolist()
    seconds = time.perf_counter() - started
    names = [Path(name).name for name in loader.dataset.filenames()]
    return seconds, dict(zip(names, predictions))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from bench.generated import offline_set
    tmp, dataset = offline_set("matchup-eval-bench-", CHECKPOINTS, args.images)
    from engine.measure import evaluate
    from engine.store import Store
    # the decoding path, as validate.py decodes: the decoded-image cache is sweep_bench.py's subject
    settings = evaluate.EvalSettings(batch_size=args.batch_size, workers=args.workers, decoded_cache=False)
    store = Store(tmp / "bench.duckdb")
    print(f"{len(dataset)} JPEGs 500x375, batch {args.batch_size}, {args.workers} workers, CPU "
          f"({os.cpu_count()} cores), checkpoints {', '.join(CHECKPOINTS)}")

    baseline, ours_sweep, ours_single = [], [], {c: [] for c in CHECKPOINTS}
    for _ in range(args.rounds):  # interleaved rounds: drift on a shared machine hits both alike
        times, base_predictions = {}, {}
        for checkpoint in CHECKPOINTS:
            times[checkpoint], base_predictions[checkpoint] = validate_py_procedure(
                checkpoint, tmp / "val", args.batch_size, args.workers)
        baseline.append(times)
        started = time.perf_counter()
        rows = evaluate.evaluate(store, list(CHECKPOINTS), dataset, settings, force=True)
        ours_sweep.append(time.perf_counter() - started)
        for checkpoint, row in zip(CHECKPOINTS, rows):
            ours_by_name = dict(zip((p.name for p in dataset.files), row["details"]["predictions"]))
            same = ours_by_name == base_predictions[checkpoint]
            print(f"  {checkpoint}: predictions identical to the validate.py procedure: {same}")
            started = time.perf_counter()
            evaluate.evaluate(store, [checkpoint], dataset, settings, force=True)
            ours_single[checkpoint].append(time.perf_counter() - started)

    n = len(dataset)
    for checkpoint in CHECKPOINTS:
        base = statistics.median(t[checkpoint] for t in baseline)
        ours = statistics.median(ours_single[checkpoint])
        print(f"{checkpoint:<32} validate.py procedure {n / base:7.1f} img/s   Matchup {n / ours:7.1f} img/s"
              f"   ratio {base / ours:.2f}")
    base_total = statistics.median(sum(t.values()) for t in baseline)
    sweep = statistics.median(ours_sweep)
    print(f"{'both (one shared decoding pass)':<32} validate.py procedure {2 * n / base_total:7.1f} img/s"
          f"   Matchup {2 * n / sweep:7.1f} img/s   ratio {base_total / sweep:.2f} (target >= 1.0)")

    answers = []
    for _ in range(5):
        started = time.perf_counter()
        [cached] = evaluate.evaluate(store, [CHECKPOINTS[0]], dataset, settings)
        answers.append((time.perf_counter() - started) * 1000)
        assert cached["cached"]
    print(f"a repeated request answered from DuckDB: median {statistics.median(answers):.1f} ms "
          f"over 5 (target < 50 ms)")


if __name__ == "__main__":
    main()
