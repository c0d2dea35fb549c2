"""A shared demo: N viewers at once on one `streamlit run app.py` with the full published data.

    python bench/load_bench.py [--viewers 25] [--steps 1]

Each viewer is its own browser context (a laptop in the room). All of them open the Frontier at
once, then each steps the budget slider. Reported: failures (timeouts, Streamlit exceptions),
open and step times (median, p95) and, the figure that decides how many viewers one server holds,
the server process's CPU seconds per open and per step, read from /proc/PID/stat around each
phase (the browsers share this machine's CPU, so their wall times measure them as much as the
server). Targets (issue 13): no failure at 25 viewers; server CPU <= 0.25 s per Frontier open
and <= 0.1 s per slider step.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.app_bench import ARGS, BASELINE_APP, serve  # noqa: E402

TABLE = ".st-key-best_under_budget table"  # the Frontier's best-of-each-class table
CHART = ".vega-embed canvas, .vega-embed svg"
CPU_TARGET_OPEN, CPU_TARGET_STEP = 0.25, 0.1


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


async def open_frontier(browser, url: str, timeout_ms: int):
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    started = time.perf_counter()
    try:
        await page.goto(f"{url}/frontier", timeout=timeout_ms)
        await page.wait_for_selector(TABLE, timeout=timeout_ms)
        await page.wait_for_selector(CHART, timeout=timeout_ms)
        failed = await page.locator("[data-testid='stException']").count() > 0
        return context, page, time.perf_counter() - started, "exception" if failed else None
    except Exception as e:  # noqa: BLE001 - a timeout or a crash: counted as a failure
        return context, page, time.perf_counter() - started, f"{type(e).__name__}"


async def step_slider(page, timeout_ms: int):
    table = page.locator(TABLE)
    before = await table.inner_text()
    slider = page.locator("[data-testid='stSlider'] input[type='range']").first
    started = time.perf_counter()
    try:
        await slider.focus()
        await page.keyboard.press("ArrowLeft")
        await page.wait_for_function("(b) => { const t = document.querySelector(\".st-key-best_under_budget table\");"
                                     " return t && t.innerText !== b; }", arg=before, timeout=timeout_ms)
        failed = await page.locator("[data-testid='stException']").count() > 0
        return time.perf_counter() - started, "exception" if failed else None
    except Exception as e:  # noqa: BLE001
        return time.perf_counter() - started, type(e).__name__


async def floor_cpu_per_open(browser, viewers: int, timeout_ms: int) -> float:
    """Server CPU per open of a one-chart Streamlit app (the app's Streamlit settings) by the same
    number of new browser contexts: what any Streamlit page costs (sessions, static files)."""
    folder = Path(tempfile.mkdtemp(prefix="matchup-load-floor-"))
    (folder / "baseline.py").write_text(BASELINE_APP)
    (folder / ".streamlit").mkdir()
    (folder / ".streamlit" / "config.toml").write_text((ROOT / ".streamlit" / "config.toml").read_text())
    server, url = serve("baseline.py", folder, {**os.environ})
    try:
        async def one():
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(url, timeout=timeout_ms)
            await page.wait_for_selector(CHART, timeout=timeout_ms)
            return context
        await (await one()).close()
        cpu = cpu_seconds(server.pid)
        contexts = await asyncio.gather(*(one() for _ in range(viewers)))
        used = (cpu_seconds(server.pid) - cpu) / viewers
        for context in contexts:
            await context.close()
        return used
    finally:
        server.terminate()
        server.wait(timeout=30)


async def run(url: str, pid: int, viewers: int, steps: int, timeout_ms: int) -> None:
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        warm = await open_frontier(browser, url, timeout_ms)  # the server's one-off work, not counted
        await warm[0].close()
        spy = None
        if os.environ.get("MATCHUP_PROFILE_SERVER"):  # py-spy record of the server's opens, to look into
            import subprocess
            spy = subprocess.Popen(["py-spy", "record", "-o", os.environ["MATCHUP_PROFILE_SERVER"], "-f", "raw", "--nonblocking", "--gil",
                                    "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1)
        cpu = cpu_seconds(pid)
        opened = await asyncio.gather(*(open_frontier(browser, url, timeout_ms) for _ in range(viewers)))
        open_cpu = (cpu_seconds(pid) - cpu) / viewers
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        open_times = [o[2] for o in opened]
        failures = [o[3] for o in opened if o[3]]
        step_times, step_cpu = [], []
        for _ in range(steps):
            live = [o for o in opened if not o[3]]
            cpu = cpu_seconds(pid)
            stepped = await asyncio.gather(*(step_slider(o[1], timeout_ms) for o in live))
            step_cpu.append((cpu_seconds(pid) - cpu) / max(1, len(live)))
            step_times += [s[0] for s in stepped]
            failures += [s[1] for s in stepped if s[1]]
        for context, *_ in opened:
            await context.close()
        floor = await floor_cpu_per_open(browser, viewers, timeout_ms)
        await browser.close()
    print(f"{viewers} viewers, each its own browser context, full published data")
    print(f"  failures: {len(failures)} {sorted(set(failures)) if failures else ''}")
    print(f"  open Frontier: median {statistics.median(open_times):.2f} s, p95 {p95(open_times):.2f} s (wall)")
    print(f"  slider step:   median {statistics.median(step_times):.2f} s, p95 {p95(step_times):.2f} s (wall)")
    print(f"  server CPU per open {open_cpu:.3f} s (target <= {CPU_TARGET_OPEN}), per slider step "
          f"{statistics.median(step_cpu):.3f} s (target <= {CPU_TARGET_STEP})")
    print(f"  floor: a one-chart Streamlit app, {viewers} new viewers: {floor:.3f} s server CPU per open")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, default=25)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=180)
    args = parser.parse_args()
    from engine.catalog import refresh
    from engine.store import Store
    db = Path(tempfile.mkdtemp(prefix="matchup-load-bench-")) / "app.duckdb"
    refresh.refresh(Store(db))  # the catalog and the shipped published results
    env = {**os.environ, "MATCHUP_DB": str(db), "MATCHUP_TIMM_RESULTS_URL": "http://127.0.0.1:9",
           "MATCHUP_NO_EMBEDDED_WORKER": "1"}
    server, url = serve("app.py", ROOT, env)
    try:
        asyncio.run(run(url, server.pid, args.viewers, args.steps, int(args.timeout_s * 1000)))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
