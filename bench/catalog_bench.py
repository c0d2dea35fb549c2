"""Catalog refresh, published-results import and first-start times against their targets.

    python bench/catalog_bench.py [--results DIR] [--repeat 3] [--no-browser]

Each step runs on a fresh temporary database. Beside each time stands a floor measured in the
same process: for refresh, reading every pretrained config from timm's registry; for import,
reading every CSV with pandas; for the shipped snapshot's load, reading its Parquet files with
pandas. The ratio says how much the store adds over the bare work. The end-to-end CLI times
include starting Python and importing torch and timm.

First start (issue 11's target: < 10 s, of which the snapshot load < 1 s): `streamlit run
app.py` on an empty database with no network (HF_HUB_OFFLINE=1, timm's repository at a closed
port), timed from launching the server to the Overview drawn in headless Chromium with every
published result loaded; beside it, the same for a one-chart Streamlit app (the floor).
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
REFRESH_TARGET_S, IMPORT_TARGET_S, SNAPSHOT_TARGET_S, FIRST_START_TARGET_S = 5.0, 10.0, 1.0, 10.0
OVERVIEW_DRAWN = """(rows) => {
    const h = document.querySelector("[data-testid='stMain'] h1");
    const chart = document.querySelector(".vega-embed canvas, .vega-embed svg");
    const side = document.querySelector("[data-testid='stSidebar']");
    return h && h.innerText.includes("ConvNet or ViT") && chart && side
        && side.innerText.includes(rows.toLocaleString("en-US") + " published results")
        && !document.querySelector("[data-testid='stStatusWidget']");
}"""


def first_start_seconds(rounds: int) -> tuple[float, float, float]:
    """Median seconds from launching the server to a drawn Overview with all published results on an
    empty database, offline; the same for a one-chart app; and the page part alone (goto -> drawn)."""
    import os
    from playwright.sync_api import sync_playwright
    from bench.app_bench import ARGS, BASELINE_APP, serve
    from engine.catalog import snapshot
    rows = snapshot.read_provenance()["tables"]["published_results"]["rows"]
    floor_dir = Path(tempfile.mkdtemp(prefix="matchup-floor-"))
    (floor_dir / "baseline.py").write_text(BASELINE_APP)
    app, floor, page_only = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for i in range(rounds):
            db = Path(tempfile.mkdtemp(prefix="matchup-first-")) / "new.duckdb"
            env = {**os.environ, "MATCHUP_DB": str(db), "HF_HUB_OFFLINE": "1",
                   "MATCHUP_TIMM_RESULTS_URL": "http://127.0.0.1:9", "MATCHUP_NO_EMBEDDED_WORKER": "1"}
            env.pop("MATCHUP_PUBLISHED_DIR", None)
            for script, cwd, times in (("app.py", ROOT, app), ("baseline.py", floor_dir, floor)):
                started = time.perf_counter()
                server, url = serve(script, cwd, env)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    opened = time.perf_counter()
                    page.goto(url)
                    if script == "app.py":
                        page.wait_for_function(OVERVIEW_DRAWN, arg=rows, timeout=120_000)
                        page_only.append(time.perf_counter() - opened)
                    else:
                        page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=120_000)
                    times.append(time.perf_counter() - started)
                    page.close()
                finally:
                    server.terminate()
                    server.wait(timeout=30)
        browser.close()
    return statistics.median(app), statistics.median(floor), statistics.median(page_only)


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
    parser.add_argument("--no-browser", action="store_true", help="skip the first-start timing")
    args = parser.parse_args()
    results = Path(args.results)

    started = time.perf_counter()
    import pandas as pd
    import timm
    import timm.models
    import_s = time.perf_counter() - started
    from engine.catalog import refresh, timm_published
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
    refresh_s = _median_time(lambda: refresh.refresh(refresh_stores.pop(), load_published=False), args.repeat)
    from engine.catalog import snapshot
    snapshot_stores = [fresh_store() for _ in range(args.repeat)]
    for store in snapshot_stores:
        refresh.refresh(store, load_published=False)
    snapshot_s = _median_time(lambda: snapshot.load(snapshot_stores.pop()), args.repeat)
    parquet_s = _median_time(lambda: [pd.read_parquet(snapshot.snapshot_dir() / name)
                                      for name in snapshot.TABLE_FILES.values()], args.repeat)
    registry_s = _median_time(registry_floor, args.repeat)
    import_stores = [fresh_store() for _ in range(args.repeat)]
    import_s_ = _median_time(lambda: timm_published.import_dir(import_stores.pop(), results), args.repeat)
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
    print(f"{'shipped snapshot load':<34}{snapshot_s:>10.3f}{SNAPSHOT_TARGET_S:>10.1f}"
          f"{parquet_s:>10.3f}{snapshot_s / parquet_s:>9.1f}")
    print(f"{'python -m engine catalog refresh':<34}{cli_refresh_s:>10.3f}{REFRESH_TARGET_S:>10.1f}")
    print(f"{'python -m engine catalog import':<34}{cli_import_s:>10.3f}{IMPORT_TARGET_S:>10.1f}")
    if not args.no_browser:
        app_s, floor_s, page_s = first_start_seconds(args.repeat)
        print(f"{'first start, offline, in Chromium':<34}{app_s:>10.3f}{FIRST_START_TARGET_S:>10.1f}"
              f"{floor_s:>10.3f}{app_s / floor_s:>9.1f}")
        print(f"{'  of which goto -> Overview drawn':<34}{page_s:>10.3f}")


if __name__ == "__main__":
    main()
