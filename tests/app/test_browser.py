"""End to end in a real browser: `streamlit run app.py` on a free local port, driven by Playwright
with Debian's Chromium. Screenshots of every page go to test-artifacts/."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
PAGES = {"overview": "", "frontier": "frontier", "budget": "budget", "when": "when", "robustness": "robustness",
         "scaling": "scaling",
         "seed_paper": "seed_paper", "checkpoint": "checkpoint", "crosscheck": "crosscheck",
         "training_crosscheck": "training_crosscheck", "results": "results", "catalog": "catalog"}
CHART_PAGES = {"overview", "frontier", "when", "robustness", "scaling", "seed_paper", "crosscheck", "catalog"}

if not (os.path.exists(CHROMIUM) and shutil.which("streamlit")):
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser test: .ci/run installs chromium and playwright")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db, extra_env: dict | None = None, port: int | None = None,
           address: str | None = "127.0.0.1") -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` over DB on a free local port (or `port`, on `address`; None:
    Streamlit's default, every interface on a dual-stack socket), once it answers its health check."""
    port = port or _free_port()
    env = {**os.environ, "MATCHUP_DB": str(db), "MATCHUP_TIMM_RESULTS_URL": "http://127.0.0.1:9",
           "MATCHUP_NO_EMBEDDED_WORKER": "1", **(extra_env or {})}
    env = {k: v for k, v in env.items() if v != ""}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), *(["--server.address", address] if address else []),
         "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    pytest.fail("streamlit did not start within 90 s")


@pytest.fixture(scope="module")
def app_db(full_db, tmp_path_factory):
    db = tmp_path_factory.mktemp("browser") / "app.duckdb"
    shutil.copy(full_db, db)
    return db


@pytest.fixture(scope="module")
def app_url(app_db):
    server, url = _serve(app_db)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    return page


# Each drawn mark (point or heatmap cell) of each chart, against its chart's plot area (the root
# frame's background in Vega's SVG): how many marks, and how many reach outside it.
MARKS_INSIDE = """() => Array.from(document.querySelectorAll('.vega-embed svg.marks')).map(svg => {
  const area = svg.querySelector('g.role-frame.root > g > path.background').getBoundingClientRect();
  const marks = Array.from(svg.querySelectorAll('g.mark-symbol.role-mark path, g.mark-rect.role-mark path'));
  const outside = marks.map(m => m.getBoundingClientRect()).filter(r =>
    r.left < area.left - 0.5 || r.right > area.right + 0.5 || r.top < area.top - 0.5 || r.bottom > area.bottom + 0.5);
  return {marks: marks.length, outside: outside.length};
})"""


@pytest.mark.parametrize("name", ["seed_paper", "when", "robustness"])
def test_every_plotted_point_lies_inside_its_chart(browser, app_url, name):
    page = _open(browser, f"{app_url}/{PAGES[name]}")
    page.wait_for_selector(".vega-embed svg.marks g.role-mark", timeout=60_000)
    page.wait_for_timeout(1000)
    charts = page.evaluate(MARKS_INSIDE)
    assert charts and all(c["marks"] > 0 for c in charts), charts
    assert all(c["outside"] == 0 for c in charts), charts
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_draws_without_an_exception(browser, app_url, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page = _open(browser, f"{app_url}/{PAGES[name]}")
    if name in CHART_PAGES:
        page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=60_000)
    else:
        page.wait_for_selector("[data-testid='stDataFrame']", timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


@pytest.mark.parametrize("name", ["overview", "frontier"])
def test_a_new_viewer_fetches_no_file_the_page_does_not_need(browser, app_url, name):
    """Every file a fresh browser fetches costs the demo server CPU (bench/load_bench.py): the
    shared sidebar must not pull in the code font (inline code) or the emoji plugin (an
    "hh:mm:ss" reads as an :emoji: code) for decoration."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    fetched = []
    page.on("requestfinished", lambda request: fetched.append(request.url))
    page.goto(f"{app_url}/{PAGES[name]}")
    page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=60_000)
    page.wait_for_timeout(1000)
    assert any("/static/js/" in url for url in fetched)  # the recording works
    assert not [url for url in fetched if "SourceCodeVF" in url or "remark-emoji" in url]
    assert page.get_by_text("catalog refreshed").count() == 1  # the caption is still there
    context.close()


# The manual's screenshots (docs/img/), each the first 1280 × 1200 px of a page on the shipped
# data, with the sentence or table it is there to show. The sidebar's database line (a temporary
# path, the time of the refresh) is hidden, so an unchanged page gives the same picture.
DOCS_IMG = ROOT / "docs" / "img"
DOCS_SCREENSHOTS = {"overview": ("", "ViT vs ConvNet"), "frontier": ("frontier", "Best of each class"),
                    "budget": ("budget", "Each class against ConvNets"), "image_text": ("?zoo=image-text", "on LAION")}
HIDE_DATABASE_LINE = "[data-testid='stSidebar'] [data-testid='stCaptionContainer'] {visibility: hidden}"


def _differs(png: bytes, path) -> bool:
    """Whether PNG differs from the picture at PATH by more than anti-aliasing noise: a missing
    file, another size, or over 50 pixels with a channel more than 24 levels apart."""
    import io

    from PIL import Image, ImageChops
    if not path.exists():
        return True
    new, old = Image.open(io.BytesIO(png)).convert("RGB"), Image.open(path).convert("RGB")
    if new.size != old.size:
        return True
    changed = ImageChops.difference(new, old).convert("L").point(lambda v: 255 if v > 24 else 0)
    return changed.histogram()[255] > 50


@pytest.mark.parametrize("name", list(DOCS_SCREENSHOTS))
def test_the_manuals_screenshots_show_todays_app(browser, app_url, name):
    path, shown = DOCS_SCREENSHOTS[name]
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    page.goto(f"{app_url}/{path}")
    page.wait_for_selector(".vega-embed svg, [data-testid='stDataFrame']", timeout=60_000)
    page.get_by_text(shown).first.wait_for(timeout=60_000)
    page.add_style_tag(content=HIDE_DATABASE_LINE)
    page.wait_for_timeout(1500)  # charts finish drawing
    assert page.locator("[data-testid='stException']").count() == 0
    png = page.screenshot()
    page.close()
    if _differs(png, DOCS_IMG / f"{name}.png"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        (DOCS_IMG / f"{name}.png").write_bytes(png)


def test_the_budget_answer_is_in_view_at_1280_px(browser, app_url):
    """ViT vs ConvNet (budget, both bests, the gap with its interval, the verdict) without
    horizontal scrolling on a 1280 px screen. The grid's accessible header lists the columns it
    draws: the five come first and a sixth is drawn after them, so all five are fully in view."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/budget")
    table = page.locator("[data-testid='stDataFrame']", has=page.locator("th", has_text="ViT vs ConvNet")).first
    table.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(500)
    headers = [h.text_content() for h in table.locator("th").all()]
    assert headers[:5] == ["budget (GFLOPs)", "ViT best", "ConvNet best", "ViT − ConvNet", "ViT vs ConvNet"], headers
    assert len(headers) > 5, headers
    cells = [c.text_content() for c in table.locator("td").all()]
    assert "None" not in cells and "nan" not in cells
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_moving_the_budget_slider_changes_the_table(browser, app_url):
    page = _open(browser, f"{app_url}/frontier")
    table = page.locator(".st-key-best_under_budget table")
    table.wait_for(timeout=60_000)
    before = table.inner_text()
    slider = page.locator("[data-testid='stSlider'] input[type='range']").first
    slider.focus()
    for _ in range(8):  # eight steps to a lower budget, as a keyboard user moves it
        page.keyboard.press("ArrowLeft")
    # retried until the rerun for the new budget has drawn the table (a glance mid-rerun can see the old one)
    sync_api.expect(table).not_to_have_text(before, timeout=60_000)
    assert "budget=" in page.url
    page.close()


def test_a_shared_link_is_the_first_visit_to_a_fresh_server(browser, app_db):
    """The first request a server sees is a page's URL with parameters (a link in a paper):
    the app's own navigation and sidebar are shown, not Streamlit's listing of pages/, and the
    link's parameters set the controls."""
    server, url = _serve(app_db)
    try:
        page = _open(browser, f"{url}/frontier?cost=params_m&budget=30")
        page.wait_for_selector(".vega-embed svg", timeout=60_000)
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "Budget match" in nav and "FLOP cross-check" in nav
        assert "shared" not in nav and "app" not in nav.split()
        assert page.get_by_role("combobox", name="Cost").input_value() == "parameters (M)"
        assert "cost=params_m" in page.url
        assert page.locator("[data-testid='stException']").count() == 0
        page.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_fresh_install_offline_opens_on_the_full_published_data(browser, tmp_path):
    """The README's first command on a new clone with no network: an empty database, the Hub
    offline, timm's repository unreachable. The first page is the Overview drawn from every
    published result (the shipped snapshot), and the navigation is the app's own throughout."""
    from engine.catalog import snapshot
    rows = snapshot.read_provenance()["tables"]["published_results"]["rows"]
    server, url = _serve(tmp_path / "new.duckdb", {"HF_HUB_OFFLINE": "1"})
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        # the catalog is built and the snapshot loaded under a status line; the app's own
        # navigation is already there (it is sent before any slow work)
        page.get_by_text("Building the checkpoint catalog").or_(page.get_by_text("Catalog built")) \
            .first.wait_for(timeout=60_000)
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "Budget match" in nav and "FLOP cross-check" in nav, nav
        assert "shared" not in nav and "app" not in nav.split()
        page.wait_for_selector("[data-testid='stMain'] h1", timeout=120_000)
        page.get_by_text(f"{rows:,} published results").first.wait_for(timeout=60_000)
        page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=60_000)
        assert "No points" not in page.locator("[data-testid='stMain']").inner_text()
        assert "shipped snapshot" in page.locator("[data-testid='stSidebar']").inner_text()
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(ARTIFACTS / "first_start.png"), full_page=True)
        page.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_clicking_a_frontier_point_opens_its_checkpoint_page(browser, app_url):
    page = _open(browser, f"{app_url}/frontier")
    points = page.locator(".vega-embed svg g.mark-symbol path")
    points.first.wait_for(timeout=60_000)
    # the frontier lines and the budget rule are drawn above the dots; a click that lands on
    # them selects nothing, so try points from the topmost down until one opens its page
    for i in range(points.count() - 1, points.count() - 20, -1):
        points.nth(i).click(force=True)
        try:
            page.wait_for_url("**/checkpoint?checkpoint=*", timeout=3_000)
            break
        except sync_api.TimeoutError:
            continue
    checkpoint = page.url.split("checkpoint=")[1]
    chosen = page.get_by_role("combobox", name="Checkpoint")
    chosen.wait_for(timeout=60_000)
    assert chosen.input_value() == urllib.parse.unquote(checkpoint)
    assert checkpoint != "convnext_tiny.in12k_ft_in1k"  # the page's default: the click must pick
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_a_queued_evaluation_runs_and_appears_on_the_frontier(browser, app_db, tmp_path):
    """From the Run page: pick a checkpoint, queue an evaluation, watch the app's embedded worker
    finish it, then find it on the Frontier as measured here."""
    from tests.conftest import make_image_folder, write_hub_checkpoint
    checkpoint = "mobilenetv3_small_050.lamb_in1k"  # a real catalog entry, small enough for a CPU
    hub = tmp_path / "hub"
    write_hub_checkpoint(hub, checkpoint)  # seeded random weights: the test is about the plumbing
    roots = tmp_path / "sets"
    make_image_folder(roots / "val", per_class=2)
    db = tmp_path / "run.duckdb"
    shutil.copy(app_db, db)
    server, url = _serve(db, {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "MATCHUP_DATA_ROOTS": str(roots),
                              "MATCHUP_HEARTBEAT_S": "0.5", "MATCHUP_NO_EMBEDDED_WORKER": ""})
    try:
        page = _open(browser, f"{url}/run")
        picker = page.locator("[data-testid='stMultiSelect']", has_text="Checkpoints").locator("input")
        picker.click()
        picker.fill(checkpoint)
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        for attempt in range(3):  # a rerun that lands mid-typing replaces the input: type again
            data = page.get_by_role("combobox", name="Evaluation set")
            data.click()
            data.fill(str(roots / "val"))
            page.keyboard.press("Enter")
            page.keyboard.press("Tab")
            try:
                page.wait_for_function("(v) => { const i = document.querySelector('input[aria-label=\"Evaluation set\"]');"
                                       " return i && i.value === v && document.activeElement !== i; }",
                                       arg=str(roots / "val"), timeout=20_000)
                break
            except sync_api.TimeoutError:
                if attempt == 2:
                    raise
        queue = page.get_by_role("button", name="Queue 1 job(s)")
        queue.wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        queue.click()
        page.get_by_text(f"queued · eval {checkpoint}").or_(page.get_by_text(f"running · eval {checkpoint}")) \
            .first.wait_for(timeout=60_000)
        done = page.get_by_text(f"done · eval {checkpoint}")
        done.wait_for(timeout=180_000)
        assert "top-1" in done.inner_text() and "on 8 images" in done.inner_text()
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(ARTIFACTS / "run.png"), full_page=True)
        page.close()
        frontier = _open(browser, f"{url}/frontier?source=measured+here")
        table = frontier.locator(".st-key-best_under_budget table")
        table.wait_for(timeout=60_000)
        assert checkpoint in table.inner_text() and "measured here" in table.inner_text()
        frontier.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_searching_a_name_on_the_frontier_highlights_it_and_the_chart_exports(browser, app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(f"{app_url}/frontier")
    page.wait_for_selector(".vega-embed svg.marks g.role-mark", timeout=60_000)
    assert page.get_by_text("Deploy", exact=True).count() == 0  # config.toml: viewer toolbar
    assert page.get_by_label("Find a checkpoint or family (highlighted)").count() == 0  # tools on demand
    page.get_by_text("Chart tools: find, filter, colour, export").click()
    box = page.get_by_label("Find a checkpoint or family (highlighted)")
    box.wait_for(timeout=30_000)
    box.fill("eva02_base")
    box.press("Enter")
    page.wait_for_function("() => Array.from(document.querySelectorAll('.vega-embed svg.marks g.mark-text text'))"
                           ".some(t => t.textContent.startsWith('eva02_base'))", timeout=30_000)
    page.wait_for_timeout(500)
    labels = page.eval_on_selector_all(".vega-embed svg.marks g.mark-text text", "ts => ts.map(t => t.textContent)")
    assert labels and all(label.startswith("eva02_base") for label in labels if label.startswith("eva02"))
    assert "eva02_base" in page.url  # the search is in the shareable link
    page.screenshot(path=str(ARTIFACTS / "frontier_find.png"), full_page=True)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Chart as SVG").click()
    svg = open(download.value.path()).read()
    assert svg.startswith("<svg") and "eva02_base" in svg
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Data as CSV").click()
    assert open(download.value.path()).readline().startswith("checkpoint,arch_class,family")
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


# -- issue 35: a 1280 px screen (a laptop at a lab demo) ---------------------------------------------
CLIPPED_SELECTS = """() => {
  const out = [];
  for (const box of document.querySelectorAll('[data-testid="stSelectbox"], [data-testid="stMultiSelect"]')) {
    const label = (box.querySelector('label') || {}).innerText || '';
    for (const el of box.querySelectorAll('input, span, div')) {
      const text = el.tagName === 'INPUT' ? el.value : el.innerText;
      const style = getComputedStyle(el);
      const clips = el.tagName === 'INPUT' || style.overflowX !== 'visible' || style.textOverflow === 'ellipsis';
      if (clips && text && text.trim() && el.scrollWidth > el.clientWidth + 1) out.push(label + ': ' + text);
    }
  }
  return out;
}"""
SIDEWAYS_TABLES = """() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller'))
  .filter(s => s.scrollWidth > s.clientWidth + 1)
  .map(s => Array.from(s.closest('[data-testid="stDataFrame"]').querySelectorAll('th')).map(h => h.textContent).join(' | '))"""
# Where each page's answer is: a sentence, a table or the chart that is the answer.
ANSWERS = {"overview": "[data-testid='stMarkdownContainer'] strong", "frontier": ".st-key-best_under_budget",
           "budget": "[data-testid='stDataFrame']", "when": ".vega-embed", "robustness": ".vega-embed",
           "scaling": ".st-key-crossovers", "seed_paper": ".vega-embed", "checkpoint": "[data-testid='stMetric']",
           "catalog": "[data-testid='stMetric']"}


@pytest.mark.parametrize("zoo", ["imagenet", "image-text"])
def test_at_1280_px_nothing_is_cut_no_table_scrolls_sideways_and_the_answer_is_on_the_first_screen(
        browser, app_url, zoo):
    problems = []
    for name in (PAGES if zoo == "imagenet" else ANSWERS):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{app_url}/{PAGES[name]}?zoo={zoo}")
        page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
        if name in ANSWERS:
            page.wait_for_selector(ANSWERS[name], timeout=60_000)
        else:
            page.wait_for_selector("[data-testid='stDataFrame'], .vega-embed", timeout=60_000)
        page.wait_for_timeout(800)
        problems += [f"{name}: select box cut: {c}" for c in page.evaluate(CLIPPED_SELECTS)]
        problems += [f"{name}: table scrolls sideways: {t}" for t in page.evaluate(SIDEWAYS_TABLES)]
        if name in ANSWERS:
            top = page.locator(ANSWERS[name]).first.bounding_box()["y"]
            if top > 900 - 40:
                problems.append(f"{name}: the answer starts at {top:.0f} px, below the first screen")
        assert page.locator("[data-testid='stException']").count() == 0, name
        page.close()
    assert not problems, "\n".join(problems)
