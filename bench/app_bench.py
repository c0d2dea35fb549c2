"""Browser timings of the app with the full published data (targets: first render < 2 s per
page, slider change < 300 ms).

    python bench/app_bench.py [--results DIR] [--rounds 3]

Starts `streamlit run app.py` on a free local port over a database holding the catalog, the
shipped FLOP counts and timm's published CSVs, opens each page in headless Chromium (Playwright)
and times navigation -> its chart drawn (or its table, on pages without a chart). The first
round includes the server's one-off work (imports, assembling the points); rounds after it show
what a user sees once the server is warm. Then it times a budget-slider step on Frontier:
key press -> the best-of-class table changed.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_RESULTS = ROOT.parent / "shared" / "reference" / "timm-results"
PAGES = {"overview": "", "frontier": "frontier", "budget": "budget", "when": "when", "robustness": "robustness",
         "scaling": "scaling",
         "seed_paper": "seed_paper", "checkpoint": "checkpoint", "crosscheck": "crosscheck",
         "results": "results", "catalog": "catalog"}
CHART_PAGES = {"overview", "frontier", "when", "robustness", "scaling", "seed_paper", "crosscheck", "catalog"}
NAV_LABELS = {"overview": "Overview", "frontier": "Frontier", "budget": "Budget match", "when": "When each wins",
              "robustness": "Robustness", "scaling": "Scaling",
              "seed_paper": "Seed paper", "checkpoint": "Checkpoint", "crosscheck": "FLOP cross-check",
              "results": "Results", "catalog": "Catalog"}
TITLES = {"overview": "ConvNet or ViT at your budget?", "frontier": "Pareto frontier per class",
          "budget": "Budget match", "when": "When does each class win?",
          "robustness": "Robustness at matched accuracy", "scaling": "Scaling laws",
          "seed_paper": "ConvNets Match Vision Transformers at Scale", "checkpoint": "Checkpoint",
          "crosscheck": "FLOP cross-check", "results": "Results", "catalog": "Checkpoint catalog"}
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


BASELINE_APP = """
import altair as alt
import streamlit as st
st.title("baseline")
st.altair_chart(alt.Chart({"values": [{"x": 1, "y": 2}]}).mark_point().encode(x="x:Q", y="y:Q"))
"""


def serve(script: str, cwd: Path, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`streamlit run SCRIPT` on a free local port, once it answers its health check."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1"],
                              cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    return server, url


def baseline_first_render(playwright, browser, rounds: int) -> float:
    """What any Streamlit page costs on this machine: start a minimal app and time it the same way."""
    folder = Path(tempfile.mkdtemp(prefix="matchup-baseline-"))
    (folder / "baseline.py").write_text(BASELINE_APP)
    server, url = serve("baseline.py", folder)
    try:
        values = []
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        for _ in range(rounds):
            page = context.new_page()
            started = time.perf_counter()
            page.goto(f"{url}/")
            page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=120_000)
            values.append(time.perf_counter() - started)
            page.close()
        return statistics.median(values[1:]) if len(values) > 1 else values[0]
    finally:
        server.terminate()
        server.wait(timeout=30)


def target_selector(name: str) -> str:
    return (".vega-embed canvas, .vega-embed svg" if name in CHART_PAGES
            else "[data-testid='stDataFrame']")


DRAWN = """([title, selector]) => {
    const h = document.querySelector("[data-testid='stMain'] h1");
    const drawn = document.querySelector(selector);
    return h && h.innerText.trim() === title && drawn && !drawn.closest("[data-stale='true']")
        && !document.querySelector("[data-testid='stStatusWidget']");
}"""


def sidebar_switches(context, url: str, rounds: int) -> dict[str, list[float]]:
    """How a user moves between pages once the app is open: a click on the sidebar link (no page
    load; the frontend stays, the server runs the new page)."""
    page = context.new_page()
    page.goto(f"{url}/")
    page.wait_for_function(DRAWN, arg=[TITLES["overview"], target_selector("overview")], timeout=120_000)
    times = {name: [] for name in PAGES}
    order = list(PAGES)[1:] + ["overview"]
    for _ in range(rounds):
        for name in order:
            link = page.locator("[data-testid='stSidebarNav'] a", has_text=NAV_LABELS[name]).first
            started = time.perf_counter()
            link.click()
            page.wait_for_function(DRAWN, arg=[TITLES[name], target_selector(name)], timeout=120_000)
            times[name].append(time.perf_counter() - started)
    page.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default=str(DEFAULT_RESULTS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from engine.catalog import refresh, timm_published
    from engine.store import Store
    db = Path(tempfile.mkdtemp(prefix="matchup-app-bench-")) / "app.duckdb"
    refresh.refresh(Store(db))
    timm_published.import_dir(Store(db), args.results)
    env = {**os.environ, "MATCHUP_DB": str(db), "MATCHUP_TIMM_RESULTS_URL": "http://127.0.0.1:9"}
    server, url = serve("app.py", ROOT, env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            times = {name: [] for name in PAGES}
            # one browser context, as one user's browser: its HTTP cache holds Streamlit's scripts
            # after the first page, so later rounds time the page, not the download of the frontend
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            for _ in range(args.rounds):
                for name, path in PAGES.items():
                    page = context.new_page()
                    started = time.perf_counter()
                    page.goto(f"{url}/{path}")
                    selector = (".vega-embed canvas, .vega-embed svg" if name in CHART_PAGES
                                else "[data-testid='stDataFrame']")
                    page.wait_for_selector(selector, timeout=120_000)
                    times[name].append(time.perf_counter() - started)
                    page.close()
            floor = baseline_first_render(p, browser, args.rounds)
            switches = sidebar_switches(context, url, args.rounds)
            print(f"first render (navigation -> chart or table drawn), {args.rounds} rounds; target < 2 s")
            print(f"  floor: a one-line Streamlit page with one Altair chart, same browser: {floor:.2f} s (warm median)")
            for name, values in times.items():
                warm = statistics.median(values[1:]) if len(values) > 1 else values[0]
                print(f"  {name:<11} cold {values[0]:5.2f} s   warm median {warm:5.2f} s")
            print("switching pages with the sidebar (click -> new page's title and chart or table drawn,"
                  " run finished), median over rounds")
            for name, values in switches.items():
                print(f"  {name:<11} {statistics.median(values):5.2f} s   max {max(values):5.2f} s")
            page = context.new_page()
            page.goto(f"{url}/frontier")
            table = page.locator(".st-key-best_under_budget table")
            table.wait_for(timeout=120_000)
            slider = page.locator("[data-testid='stSlider'] input[type='range']").first
            slider.focus()
            steps = []
            for _ in range(10):
                before = table.inner_text()
                started = time.perf_counter()
                page.keyboard.press("ArrowLeft")
                page.wait_for_function("(b) => { const t = document.querySelector(\".st-key-best_under_budget table\");"
                                       " return t && t.innerText !== b; }", arg=before, timeout=30_000)
                steps.append((time.perf_counter() - started) * 1000)
            print(f"budget slider step -> table updated: median {statistics.median(steps):.0f} ms, "
                  f"max {max(steps):.0f} ms over {len(steps)} steps; target < 300 ms")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
