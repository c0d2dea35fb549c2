"""Compute: the full FLOP count's time, the cross-check against published MACs, and the CPU
throughput methodology check against timm's own benchmark procedure.

    python bench/profile_bench.py [--results DIR] [--full-count] [--skip-methodology]

--full-count counts every pair the catalog needs on a fresh database (about 8 minutes on 2 cores);
without it, a 100-pair sample is timed and the full time extrapolated.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_RESULTS = ROOT.parent / "shared" / "reference" / "timm-results"
METHOD_MODELS = ("resnet18", "deit_tiny_patch16_224")
METHOD_BATCH = 16


def timm_procedure_throughput(arch: str, batch_size: int, warmup: int = 10, steps: int = 40) -> float:
    """The baseline: timm's benchmark procedure on CPU written out plainly. A randomly
    initialised model in eval mode, one random batch, 10 warm-up steps, then 40 timed steps
    measured with perf_counter around each forward; images/s = batch * steps / total time."""
    import timm
    import torch
    model = timm.create_model(arch, pretrained=False).eval()
    size = model.pretrained_cfg["input_size"]
    batch = torch.randn(batch_size, *size)
    with torch.no_grad():
        for _ in range(warmup):
            model(batch)
        total = 0.0
        for _ in range(steps):
            started = time.perf_counter()
            model(batch)
            total += time.perf_counter() - started
    return batch_size * steps / total


def methodology(rounds: int = 3) -> list[dict]:
    from engine.measure import profile
    rows = []
    for arch in METHOD_MODELS:
        ours, theirs = [], []
        for _ in range(rounds):  # interleaved, so drift on a shared machine hits both alike
            ours.append(profile.measure(profile.BenchSpec(arch, batch_size=METHOD_BATCH))["throughput"])
            theirs.append(timm_procedure_throughput(arch, METHOD_BATCH))
        rows.append({"arch": arch, "ours": statistics.median(ours), "timm": statistics.median(theirs)})
    return rows


def count_time(db: Path, full: bool) -> tuple[float, int, int]:
    """Seconds to count, pairs counted, pairs needed."""
    from engine.measure import flops
    from engine.store import Store
    store = Store(db)
    targets = store.compute_targets(missing_only=False)
    rows = [(a, int(h), int(w), int(n)) for a, h, w, n in
            targets[["arch", "img_size", "img_width", "num_classes"]].itertuples(index=False, name=None)]
    needed = len(rows)
    if not full:
        rows = rows[::max(1, len(rows) // 100)][:100]
    started = time.perf_counter()
    failures = sum(1 for r in flops.count_many(rows, jobs=None) if r["error"])
    seconds = time.perf_counter() - started
    if failures:
        print(f"  {failures} pairs failed to count (kept with their reason)")
    return seconds, len(rows), needed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default=str(DEFAULT_RESULTS))
    parser.add_argument("--full-count", action="store_true")
    parser.add_argument("--skip-methodology", action="store_true")
    args = parser.parse_args()

    from engine.catalog import refresh, timm_published
    from engine.measure import flops
    from engine.store import Store
    db = Path(tempfile.mkdtemp(prefix="matchup-bench-")) / "bench.duckdb"
    store = Store(db)
    refresh.refresh(store)
    timm_published.import_dir(store, args.results)

    seconds, counted, needed = count_time(db, args.full_count)
    full_estimate = seconds * needed / counted
    kind = "measured" if counted == needed else f"extrapolated from {counted} pairs"
    print(f"FLOP count of all {needed} pairs on {os.cpu_count()} cores: "
          f"{full_estimate / 60:.1f} min ({kind}; target < 10 min)")

    summary = flops.crosscheck_summary(store.compute_crosscheck())
    print(f"cross-check: {summary['pairs']} pairs, {summary['share_within_tolerance']:.1%} agree "
          f"({summary['tolerance']}; target >= 95%), {summary['share_within_3pct_strict']:.1%} "
          "within 3% strictly")
    print("  ratio counted/published: " + ", ".join(
        f"{k} {v:.3f}" for k, v in summary["ratio_quantiles"].items()))
    for o in summary["outliers"]:
        print(f"  {o['arch']} @{o['img_size']}: x{o['ratio']:.2f} ({o['reason']})")

    if not args.skip_methodology:
        print(f"CPU throughput, batch {METHOD_BATCH}, fp32: Matchup's bench vs timm's procedure "
              "(10 warm-up + 40 timed steps), median of 3 interleaved rounds")
        for row in methodology():
            print(f"  {row['arch']:<24} ours {row['ours']:8.1f} img/s   timm procedure "
                  f"{row['timm']:8.1f} img/s   ratio {row['ours'] / row['timm']:.3f} (target 0.9-1.1)")


if __name__ == "__main__":
    main()
