"""Catalog refresh and published-results import times against DESIGN.md's targets.

    python bench/catalog_bench.py [--results DIR] [--repeat 3]

Each step runs on a fresh temporary database. Beside each time stands a floor measured in the
same process: for refresh, reading every pretrained config from timm's registry; for import,
reading every CSV with pandas. The ratio says how much the store adds over the bare work.
The end-to-end CLI times include starting Python and importing torch and timm.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_RESULTS = ROOT.parent / "shared" / "reference" / "timm-results"
REFRESH_TARGET_S, IMPORT_TARGET_S = 5.0, 10.0


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default=str(DEFAULT_RESULTS))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = Path(args.results)

    started = time.perf_counter()
    import pandas as pd
    import timm
    import timm.models
    import_s = time.perf_counter() - started
    from engine import catalog
    from engine.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="matchup-bench-"))
    counter = iter(range(10_000))

    def fresh_store() -> Store:
        store = Store(tmp / f"bench-{next(counter)}.duckdb")
        store.info()  # create and migrate outside the timed region
        return store

    def registry_floor():
        for name in timm.list_pretrained():
            timm.models.get_pretrained_cfg(name)

    def csv_floor():
        for path in sorted(results.glob("*.csv")):
            pd.read_csv(path, dtype=str)

    refresh_stores = [fresh_store() for _ in range(args.repeat)]
    refresh_s = _median_time(lambda: catalog.refresh(refresh_stores.pop()), args.repeat)
    registry_s = _median_time(registry_floor, args.repeat)
    import_stores = [fresh_store() for _ in range(args.repeat)]
    import_s_ = _median_time(lambda: catalog.import_dir(import_stores.pop(), results), args.repeat)
    csv_s = _median_time(csv_floor, args.repeat)

    cli_db = tmp / "cli.duckdb"
    def cli(*argv):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "engine", "--db", str(cli_db), *argv], cwd=ROOT,
                       check=True, capture_output=True)
        return time.perf_counter() - started
    cli_refresh_s = cli("catalog", "refresh")
    cli_import_s = cli("catalog", "import", str(results))

    n_files = len(list(results.glob("*.csv")))
    print(f"timm {timm.__version__}; {len(timm.list_pretrained())} pretrained checkpoints; "
          f"{n_files} CSV files in {results}")
    print(f"import torch+timm (once per process): {import_s:.2f} s")
    print(f"{'step':<34}{'median s':>10}{'target s':>10}{'floor s':>10}{'x floor':>9}")
    print(f"{'catalog refresh (in process)':<34}{refresh_s:>10.3f}{REFRESH_TARGET_S:>10.1f}"
          f"{registry_s:>10.3f}{refresh_s / registry_s:>9.1f}")
    print(f"{'catalog import (in process)':<34}{import_s_:>10.3f}{IMPORT_TARGET_S:>10.1f}"
          f"{csv_s:>10.3f}{import_s_ / csv_s:>9.1f}")
    print(f"{'python -m engine catalog refresh':<34}{cli_refresh_s:>10.3f}{REFRESH_TARGET_S:>10.1f}")
    print(f"{'python -m engine catalog import':<34}{cli_import_s:>10.3f}{IMPORT_TARGET_S:>10.1f}")


if __name__ == "__main__":
    main()
