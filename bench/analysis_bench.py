"""Analysis times over the full published data (targets: < 200 ms each, bootstrap < 1 s; the
When and Robustness analyses of issue 14: < 200 ms each).

    python bench/analysis_bench.py [--results DIR] [--repeat 5]

Builds a database from the installed timm, the shipped FLOP counts and timm's published CSVs,
then times each analysis on ImageNet top-1 against counted GFLOPs, with all ~1,500 checkpoints
and all six datasets' points assembled. Floor, in the same process: reading the inputs
from DuckDB (`store.analysis_inputs()`).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_RESULTS = ROOT.parent / "shared" / "reference" / "timm-results"


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default=str(DEFAULT_RESULTS))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from engine.analysis import budget_match, pairing, pareto, points_table, robustness, scaling_fits, when
    from engine.catalog import refresh, timm_published
    from engine.store import Store
    store = Store(Path(tempfile.mkdtemp(prefix="matchup-analysis-")) / "bench.duckdb")
    refresh.refresh(store)
    timm_published.import_dir(store, args.results)
    inputs = store.analysis_inputs()
    points = points_table.assemble_points(inputs)
    chosen = points_table.select(points, "gflops", "imagenet.top1")
    budgets = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]
    print(f"{len(points)} points in all; {len(chosen)} with imagenet.top1 against gflops "
          f"({chosen['checkpoint'].nunique()} checkpoints)")
    rows = [
        ("read inputs from DuckDB (floor)", lambda: store.analysis_inputs()),
        ("assemble points (all metrics)", lambda: points_table.assemble_points(inputs)),
        ("frontier", lambda: pareto.frontier(chosen, "imagenet.top1")),
        ("budget, 10 budgets, 1000 resamples", lambda: budget_match.budget_table(chosen, "imagenet.top1", budgets)),
        ("pairs (ViT vs ConvNet, ±10%)", lambda: pairing.matched_pairs(chosen, "imagenet.top1")),
        ("scaling, frontier, 1000 resamples", lambda: scaling_fits.scaling(chosen, "imagenet.top1")),
        ("scaling, all points, saturating law", lambda: scaling_fits.scaling(chosen, "imagenet.top1", on="all", law="saturating")),
        ("when: 8 budgets x 4 data scales + pairs", lambda: when.when(chosen, "imagenet.top1")),
        ("when: Overview verdict with its data", lambda: when.explained_verdict(
            chosen, "imagenet.top1", budget_match.log_budgets(chosen))),
        *[(f"robustness: {ood}", lambda ood=ood: robustness.robustness(points, ood))
          for ood in robustness.OOD_SETS],
    ]
    for name, fn in rows:
        print(f"  {name:<40} {median_ms(fn, args.repeat):8.1f} ms")


if __name__ == "__main__":
    main()
