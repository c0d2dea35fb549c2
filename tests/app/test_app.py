import re
import shutil

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

PAGES = ["pages/overview.py", "pages/frontier.py", "pages/budget.py", "pages/when.py", "pages/robustness.py",
         "pages/scaling.py",
         "pages/seed_paper.py", "pages/checkpoint.py", "pages/crosscheck.py", "pages/training_crosscheck.py",
         "pages/run.py",
         "pages/results.py", "pages/catalog.py"]


def open_page(page: str, query: dict | None = None) -> AppTest:
    """The page as a shared link opens it: that page, with the link's query parameters."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if page == "pages/overview.py":  # the default page: the link's parameters are there from the start
        for key, value in (query or {}).items():
            at.query_params[key] = value
        return at.run()
    at.run()  # app.py: catalog, navigation
    at.switch_page(page)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def best_under_budget(at: AppTest) -> dict[str, list[str]]:
    """The Frontier's best-of-each-class table (Markdown), column by column, unescaped."""
    import re
    [table] = [m.value for m in at.markdown if m.value.startswith("| class |")]
    rows = [[re.sub(r"\\(.)", r"\1", cell.strip()) for cell in line.strip("| ").split(" | ")]
            for line in table.splitlines() if not line.startswith("|---")]
    return {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}


def texts(at: AppTest) -> str:
    parts = ([str(df.value.to_dict()) for df in at.dataframe] + [str(t.value.to_dict()) for t in at.table]
             + [m.value for m in at.markdown])
    return "\n".join(parts)


@pytest.fixture
def full_app_db(full_db, tmp_path, monkeypatch):
    copy = tmp_path / "full.duckdb"
    shutil.copy(full_db, copy)
    monkeypatch.setenv("MATCHUP_DB", str(copy))
    return copy


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_db(page, tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "empty.duckdb"))
    at = open_page(page)
    assert not at.exception, at.exception


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_the_published_data(page, full_app_db):
    at = open_page(page)
    assert not at.exception, at.exception
    assert not at.error


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_image_text_zoo(page, full_app_db):
    at = open_page(page, {"zoo": "image-text", "checkpoint": "open_clip:convnext_base_w.laion2b_s13b_b82k"})
    assert not at.exception, at.exception
    assert not at.error


def test_a_new_install_opens_on_the_full_published_data_offline(tmp_path, monkeypatch):
    """An empty database gets the catalog and the shipped snapshot in one step, with no network
    (HF offline; a sync would go to a closed port): the Overview draws the gap, not "no points"."""
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "empty.duckdb"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = open_page("pages/overview.py")
    assert not at.exception, at.exception
    assert not at.info, [i.value for i in at.info]
    from engine.catalog import snapshot
    from engine.store import Store
    tables = snapshot.read_provenance()["tables"]
    rows, bench_rows = tables["published_results"]["rows"], tables["published_benchmarks"]["rows"]
    assert Store(tmp_path / "empty.duckdb").count("published_results") == rows
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert (f"{rows:,} published results and {bench_rows:,} published benchmark rows (timm aa4b5850, shipped "
            "snapshot taken") in sidebar
    assert any("ViT vs ConvNet" in m.value for m in at.markdown)  # the verdict sentences


def test_a_missing_snapshot_leaves_the_catalog_and_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "empty.duckdb"))
    monkeypatch.setenv("MATCHUP_SNAPSHOT_DIR", str(tmp_path / "no-snapshot-here"))
    overview = open_page("pages/overview.py")  # AppTest shows app.py's sidebar on the default page
    assert not overview.exception, overview.exception
    [warning] = [w.value for w in overview.sidebar.warning]
    assert "is missing" in warning and "catalog import DIR" in warning and "\n" not in warning
    assert any("catalog import DIR" in i.value for i in overview.info)
    at = open_page("pages/catalog.py")
    import timm
    assert sum(int(m.value) for m in at.metric) == len(timm.list_pretrained())


def test_frontier_budget_cost_and_metric_change_the_numbers(full_app_db):
    at = open_page("pages/frontier.py")
    before = texts(at)
    slider = at.select_slider(key="budget_pick")
    options = slider.options
    slider.set_value(options[len(options) // 4]).run()
    after_budget = texts(at)
    assert after_budget != before
    at.selectbox(key="cost").set_value("params_m").run()
    after_cost = texts(at)
    assert after_cost != after_budget and not at.exception
    at.selectbox(key="metric").set_value("sketch.top1").run()
    assert texts(at) != after_cost and not at.exception


def test_budget_page_table_follows_the_budget(full_app_db):
    at = open_page("pages/budget.py")
    before = at.dataframe[0].value.copy()
    slider = at.select_slider(key="budget_pick")
    slider.set_value(slider.options[2]).run()
    assert not at.dataframe[0].value.equals(before)


def test_what_viewers_of_one_view_share_is_computed_once_per_server(full_app_db):
    """A room of laptops on one view: the selection and what pages derive from it (frontier,
    best under a budget) are computed once; a chart filter's subset is computed for itself."""
    import gc

    from engine.analysis import budget_match
    from ui import loaders
    calls = []

    def counted(frame, metric, budgets):
        calls.append(len(frame))
        return budget_match.budget_table(frame, metric, budgets, n_boot=50)

    view = ("gflops", "imagenet.top1", {"classes": ["ConvNet", "ViT"], "data_scales": [], "sources": None})
    chosen = loaders.selection(None, *view)
    assert loaders.selection(None, *view) is chosen  # a second viewer gets the same frame
    first = loaders.derived(chosen, counted, "imagenet.top1", (10.0,))
    assert loaders.derived(loaders.selection(None, *view), counted, "imagenet.top1", (10.0,)) is first
    assert calls == [len(chosen)]
    assert first == budget_match.budget_table(chosen, "imagenet.top1", [10.0], n_boot=50)  # the same answer
    loaders.derived(chosen, counted, "imagenet.top1", (20.0,))  # another budget is another result
    subset = chosen[chosen["family"] == "resnet"]
    for _ in range(2):
        loaders.derived(subset, counted, "imagenet.top1", (10.0,))
    assert calls == [len(chosen)] * 2 + [len(subset)] * 2
    with pytest.raises(TypeError, match="module-level"):
        loaders.derived(chosen, eval("lambda f: f", {"__name__": "__main__"}))  # noqa: S307 - as a page defines it
    # the selection's cache lets go of it: its derived results go with it, a new one starts afresh
    loaders._selection.clear()
    del chosen, first
    gc.collect()
    loaders.derived(loaders.selection(None, *view), counted, "imagenet.top1", (10.0,))
    assert len(calls) == 5


def test_a_markdown_table_keeps_each_cell_as_written():
    """Checkpoint names and sources go into the Frontier's Markdown table: no cell may split on a
    '|', turn '_' into emphasis, '$' into maths or ':26:' into an emoji code."""
    import re

    from ui import widgets
    cells = {"checkpoint": "vit_base_patch16_224.augreg2_in21k_ft_in1k", "note": "a|b at 07:26:13, $5 *x*"}
    header, rule, row = widgets.markdown_table([cells]).splitlines()
    assert rule == "|---|---|"
    parts = re.split(r"(?<!\\) \| ", row.strip("| "))  # split on unescaped separators only
    assert [re.sub(r"\\(.)", r"\1", part) for part in parts] == list(cells.values())
    assert not re.search(r"(?<!\\)[_*$:]", row)  # every character Markdown would read is escaped
    assert widgets.markdown_table([]) == ""


ANALYSIS_PAGES = ["pages/overview.py", "pages/frontier.py", "pages/budget.py", "pages/when.py", "pages/scaling.py"]


@pytest.mark.parametrize("page", ANALYSIS_PAGES)
def test_ms_per_image_cost_axis_renders_on_every_analysis_page(page, full_app_db):
    """The published-benchmark device picker runs a query DuckDB 2.0 refused: a BinderException
    on every page that offers the ms-per-image axis."""
    at = open_page(page, {"cost": "ms_per_img"})
    assert not at.exception, at.exception
    assert at.selectbox(key="cost").value == "ms_per_img"
    assert at.selectbox(key="device").value.startswith("benchmark-infer-amp-nchw-")
    assert not at.error


def test_query_params_restore_the_view(full_app_db):
    at = open_page("pages/frontier.py", {"cost": "params_m", "metric": "imagenet-r.top1",
                                         "classes": ["ConvNet", "ViT"], "budget": "20"})
    assert at.selectbox(key="cost").value == "params_m"
    assert at.selectbox(key="metric").value == "imagenet-r.top1"
    assert at.multiselect(key="classes").value == ["ConvNet", "ViT"]
    assert at.select_slider(key="budget_pick").value == pytest.approx(20, rel=0.3)
    assert set(best_under_budget(at)["class"]) <= {"ConvNet", "ViT"}
    assert at.query_params["cost"] == ["params_m"] or at.query_params["cost"] == "params_m"


def test_bad_link_parameters_open_each_controls_documented_default(full_app_db):
    at = open_page("pages/frontier.py", {"cost": "watts", "metric": "imagenet.nonsense",
                                         "classes": ["Transformer"], "budget": "nan"})
    assert not at.exception, at.exception
    assert at.selectbox(key="cost").value == "gflops"
    assert at.selectbox(key="metric").value == "imagenet.top1"  # the default, not the list's first
    assert at.multiselect(key="classes").value == ["ConvNet", "ViT", "Hybrid"]
    options = at.select_slider(key="budget_pick").options
    assert float(at.select_slider(key="budget_pick").value) == float(options[len(options) // 2])
    page = open_page("pages/checkpoint.py", {"checkpoint": "no_such.checkpoint"})
    assert page.selectbox(key="checkpoint").value == "convnext_tiny.in12k_ft_in1k"


def test_checkpoint_page_shows_provenance(full_app_db):
    at = open_page("pages/checkpoint.py", {"checkpoint": "convnext_base.fb_in22k_ft_in1k"})
    assert at.selectbox(key="checkpoint").value == "convnext_base.fb_in22k_ft_in1k"
    assert "ConvNet" in [m.value for m in at.metric]
    [published] = [df.value for df in at.dataframe if {"dataset", "source_file"} <= set(df.value.columns)]
    imagenet = published[published["source_file"] == "results-imagenet.csv"]
    from engine.store import Store
    stored = Store(full_app_db).checkpoint_detail("convnext_base.fb_in22k_ft_in1k")["published"]
    assert sorted(imagenet["top1"]) == sorted(stored[stored["dataset"] == "imagenet"]["top1"])
    assert len(imagenet) >= 1


def test_app_shows_a_plain_error_for_an_unusable_db(tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path))  # a directory
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.error and "Cannot open the Matchup database" in at.error[0].value


def test_crosscheck_page_lists_outliers_with_reasons(full_app_db):
    at = open_page("pages/crosscheck.py")
    values = {m.label: m.value for m in at.metric}
    assert int(values["matched pairs"]) > 1000
    outliers = at.dataframe[0].value
    assert len(outliers) > 0 and outliers["reason"].notna().all()


def test_checkpoint_page_for_a_config_without_test_size(catalog_db, tmp_path, monkeypatch):
    """Most pretrained configs have no test_input_size: the page shows the train-time size."""
    copy = tmp_path / "catalog.duckdb"
    shutil.copy(catalog_db, copy)
    monkeypatch.setenv("MATCHUP_DB", str(copy))
    import timm
    config = timm.get_pretrained_cfg("mobilenetv3_small_050.lamb_in1k").to_dict()
    assert config.get("test_input_size") is None
    at = open_page("pages/checkpoint.py", {"checkpoint": "mobilenetv3_small_050.lamb_in1k"})
    assert not at.exception, at.exception
    sizes = {m.label: m.value for m in at.metric}
    assert sizes["eval size"] == f"{config['input_size'][1]} px"


@pytest.fixture
def run_page_env(catalog_db, tmp_path, monkeypatch, offline_hub, image_folder):
    copy = tmp_path / "catalog.duckdb"
    shutil.copy(catalog_db, copy)
    monkeypatch.setenv("MATCHUP_DB", str(copy))
    monkeypatch.setenv("MATCHUP_DATA_ROOTS", str(image_folder.parent))
    monkeypatch.delenv("MATCHUP_READONLY", raising=False)
    return copy


def test_run_page_queues_the_chosen_checkpoints(run_page_env, image_folder):
    at = open_page("pages/run.py")
    assert not at.exception, at.exception
    at.multiselect(key="run_checkpoints").set_value(["test_vit.r160_in1k", "test_resnet.r160_in1k"]).run()
    assert str(image_folder) in [str(o) for o in at.selectbox(key="run_data").options]
    at.selectbox(key="run_data").set_value(str(image_folder)).run()
    at.number_input(key="run_limit").set_value(8).run()
    [queue_button] = [b for b in at.button if b.label.startswith("Queue")]
    queue_button.click().run()
    assert not at.exception and not at.error
    from engine.store import Store
    frame = Store(run_page_env).jobs_frame()
    assert sorted(frame["label"].str.split().str[1]) == ["test_resnet.r160_in1k", "test_vit.r160_in1k"]
    assert set(frame["state"]) == {"queued"}
    assert sum("queued" in m.value for m in at.markdown) == 2
    # the embedded worker is off in tests (MATCHUP_NO_EMBEDDED_WORKER): the page says so
    assert any("embedded worker is off" in c.value for c in at.caption)
    assert not any("The app starts one" in c.value for c in at.caption)
    cancel = [b for b in at.button if b.label == "Cancel"][0]
    cancel.click().run()
    assert sorted(Store(run_page_env).jobs_frame()["state"]) == ["cancelled", "queued"]


def test_run_page_plans_a_sweep_then_queues_one_job_per_checkpoint(run_page_env, image_folder):
    at = open_page("pages/run.py")
    at.radio(key="run_kind").set_value("sweep").run()
    at.multiselect(key="run_classes").set_value(["ViT"]).run()
    at.multiselect(key="run_families").set_value(["test"]).run()
    at.selectbox(key="run_data").set_value(str(image_folder)).run()
    assert not [b for b in at.button if b.label.startswith("Queue")]  # no queueing before the plan
    [plan_button] = [b for b in at.button if b.label == "Plan the sweep"]
    plan_button.click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    [plan] = [df.value for df in at.dataframe if "estimate_source" in df.value.columns]
    assert sorted(plan["checkpoint"]) == ["test_vit.r160_in1k", "test_vit2.r160_in1k", "test_vit3.r160_in1k"]
    assert set(plan["status"]) == {"to run"} and plan["estimate_source"].notna().all()
    assert any("**Plan:** 3 of 3 checkpoints" in m.value for m in at.markdown)
    at.button(key="queue_sweep").click().run()
    from engine.store import Store
    frame = Store(run_page_env).jobs_frame()
    assert sorted(frame["label"].str.split().str[1]) == sorted(plan["checkpoint"])
    assert set(frame["state"]) == {"queued"}


def test_read_only_demo_hides_run_controls(run_page_env, monkeypatch):
    monkeypatch.setenv("MATCHUP_READONLY", "1")
    at = open_page("pages/run.py")
    assert not at.exception
    assert any("read-only demo" in i.value for i in at.info)
    assert not [b for b in at.button if b.label.startswith("Queue") or b.label == "Cancel"]
    assert len(at.multiselect) == 0 and len(at.radio) == 0  # no checkpoint picker, no job kind


def test_run_page_says_it_waits_while_another_process_holds_the_db(run_page_env, monkeypatch):
    import subprocess
    import sys
    import time
    monkeypatch.setenv("MATCHUP_LOCK_TIMEOUT", "5")
    at = open_page("pages/run.py")
    assert not at.exception
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time\n"
                               "con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
                               str(run_page_env)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        at.run()
        waited = time.monotonic() - started
        assert not at.exception, at.exception
        assert any("Waiting for the database" in w.value for w in at.warning)
        assert waited < 5  # the page answered before the store's own lock timeout ran out
    finally:
        holder.kill()
        holder.wait()
    at.run()
    assert not any("Waiting for the database" in w.value for w in at.warning)


def test_results_page_runs_read_only_sql(full_app_db):
    at = open_page("pages/results.py")
    at.text_area(key="sql").set_value("SELECT checkpoint, top1 FROM published_results "
                                      "WHERE dataset = 'imagenet' ORDER BY top1 DESC LIMIT 5").run()
    assert not at.exception and not at.error
    frame = at.dataframe[0].value
    assert list(frame.columns) == ["checkpoint", "top1"] and len(frame) == 5
    assert frame["top1"].is_monotonic_decreasing
    at.text_area(key="sql").set_value("DELETE FROM published_results").run()
    assert at.error and "Only SELECT" in at.error[0].value
    from engine.store import Store
    assert Store(full_app_db).count("published_results") > 10_000


def test_when_robustness_and_overview_say_what_data_is_behind_a_lead(full_app_db):
    at = open_page("pages/when.py")
    assert not at.exception, at.exception
    assert len(at.get("vega_lite_chart")) == 2  # ViT − ConvNet and Hybrid − ConvNet heatmaps
    pairs = at.dataframe[0].value
    assert list(pairs["pairs"]) == ["all pairs", "same pre-training data"] * 2
    all_n, same_n = pairs["n"].iloc[0], pairs["n"].iloc[1]
    assert 0 < same_n < all_n
    at = open_page("pages/robustness.py", {"ood": "imagenet-a"})
    assert not at.exception, at.exception
    assert "ResNet-50" in at.warning[0].value and "by construction" in at.warning[0].value
    assert any("Published results carry no ECE" in c.value for c in at.caption)
    assert {"ConvNet", "ViT"} <= set(at.dataframe[0].value["arch_class"])
    at = open_page("pages/robustness.py", {"ood": "not-a-set"})  # a bad link: the control's default
    assert not at.exception and at.selectbox(key="ood").value == "imagenet-v2"
    overview = texts(open_page("pages/overview.py"))
    assert "pre-trained on" in overview and "at the same data scale" in overview


def test_scaling_never_prints_a_crossover_it_cannot_locate(full_app_db):
    import re
    for cost in ("gflops", "params_m"):
        at = open_page("pages/scaling.py", {"cost": cost})
        assert not at.exception, at.exception
        for line in (m.value for m in at.markdown if " / " in m.value):
            found = re.search(r"95% CI ([\d.e+-]+)–([\d.e+-]+)", line)
            if found:
                assert float(found[2]) / float(found[1]) <= 100, line
            else:
                assert "no reliable crossover" in line or "no crossover in range" in line or "parallel" in line, line


GRID_QUALITIES = ["imagenet.top1", "imagenet-a.top5", "sketch.top1", "imagenet-real.top1"]


@pytest.mark.parametrize("page", ANALYSIS_PAGES)
def test_no_control_combination_fails(page, full_app_db):
    """Every cost axis × a sample of quality metrics × every published benchmark file, on the full
    published data: no exception, no error; an axis without data says in one line how to fill it."""
    from ui.widgets import COST_LABELS
    at = open_page(page)
    tried = 0
    for cost in COST_LABELS:
        at.selectbox(key="cost").set_value(cost).run()
        assert not at.exception, (cost, at.exception)
        devices = at.selectbox(key="device").options if cost == "ms_per_img" else [None]
        for device in devices:
            if device is not None:
                at.selectbox(key="device").set_value(device).run()
                assert not at.exception, (cost, device, at.exception)
            metrics = at.selectbox(key="metric").options
            sample = [m for m in GRID_QUALITIES if m in metrics] if device in (None, devices[0]) else metrics[:1]
            for metric in sample:
                at.selectbox(key="metric").set_value(metric).run()
                tried += 1
                assert not at.exception, (cost, device, metric, at.exception)
                assert not at.error, (cost, device, metric, [e.value for e in at.error])
            if cost == "latency_ms":  # nothing benchmarked here in this database
                assert any("nothing has been benchmarked here yet" in i.value for i in at.info), [i.value for i in at.info]
    assert tried > 20


def test_frontier_and_scaling_chart_tools_from_a_link(full_app_db):
    import re
    at = open_page("pages/frontier.py", {"find": "eva02", "family": ["convnext", "eva"], "params": "0:100",
                                         "colour": "family"})
    assert not at.exception, at.exception
    found = [c.value for c in at.caption if "highlighted" in c.value]
    assert found and int(re.search(r"(\d+) point", found[0])[1]) > 0
    best = best_under_budget(at)
    assert all(name.split("_")[0] in ("convnext", "convnextv2", "eva02") or name.startswith(("convnext", "eva"))
               for name in best["checkpoint"])
    assert at.selectbox(key="colour").value == "family"
    low, high = at.slider(key="params").value
    assert 0 < low < 2 and high == 100.0  # the link's 0:100 clamped to the data's span
    assert {b.label for b in at.get("download_button")} >= {"Chart as SVG", "Chart as PNG", "Data as CSV"}
    # a link whose ranges are not numbers opens the full span, without an exception
    at = open_page("pages/scaling.py", {"params": "abc:def", "q": "90:10", "find": "resnet50."})
    assert not at.exception, at.exception
    assert any("highlighted" in c.value for c in at.caption)
    low, high = at.slider(key="params").value
    assert low < 2 and high > 1000  # the full span


def test_server_config_is_fit_for_a_lab_demo():
    """No usage statistics (a demo must not call out), no Deploy button or developer menu, no
    per-rerun file watching; read through Streamlit's own config loader from the repo root."""
    import subprocess
    import sys
    code = ("import streamlit.config as c; c.get_config_options(force_reparse=True); "
            "print(c.get_option('browser.gatherUsageStats'), c.get_option('client.toolbarMode'), "
            "c.get_option('server.fileWatcherType'), c.get_option('runner.postScriptGC'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "viewer", "none", "False"]


# -- issue 21: what a newcomer hit ------------------------------------------------------------------
def test_the_budget_resets_when_the_cost_axis_changes(full_app_db):
    """5 GFLOPs once became 4.6 M params, then 4.3 ms/img: a budget means nothing on another axis."""
    at = open_page("pages/frontier.py")
    slider = at.select_slider(key="budget_pick")
    slider.set_value(slider.options[5]).run()
    at.selectbox(key="cost").set_value("params_m").run()
    options = at.select_slider(key="budget_pick").options
    assert float(at.select_slider(key="budget_pick").value) == float(options[len(options) // 2])
    # a link that names both keeps its budget
    linked = open_page("pages/frontier.py", {"cost": "params_m", "budget": str(options[3])})
    assert float(linked.select_slider(key="budget_pick").value) == float(options[3])


def test_the_overview_speaks_in_intervals_for_every_selected_class(full_app_db):
    at = open_page("pages/overview.py", {"classes": ["ConvNet", "ViT", "Hybrid", "MLP"]})
    assert not at.exception, at.exception
    mixed = " (mixed pre-training data)"  # every verdict on a mix of pre-training data says so
    sentences = {m.value.split(" — ")[0]: m.value for m in at.markdown if f" vs ConvNet{mixed}** — " in m.value}
    assert set(sentences) == {f"**ViT vs ConvNet{mixed}**", f"**Hybrid vs ConvNet{mixed}**", f"**MLP vs ConvNet{mixed}**"}
    text = " ".join(sentences.values())
    assert "±" not in text and "lead by 0.0" not in text and re.search(r"lead(, by| by) [+-]\d+\.\d+ \[", text)
    # hiding Hybrids and MLPs leaves the ViT sentence as it was (issue 21: invariance)
    two = open_page("pages/overview.py", {"classes": ["ConvNet", "ViT"]})
    [vit] = [m.value for m in two.markdown if m.value.startswith(f"**ViT vs ConvNet{mixed}**")]
    assert vit == sentences[f"**ViT vs ConvNet{mixed}**"]
    # the compute multiplier too: its levels never move with the classes shown
    [multiplier] = [m.value for m in at.markdown if m.value.startswith(f"**ViT over ConvNet{mixed}**")]
    assert [m.value for m in two.markdown if m.value.startswith(f"**ViT over ConvNet{mixed}**")] == [multiplier]


def test_budget_table_is_pairwise_first_and_has_no_none(full_app_db):
    at = open_page("pages/budget.py")
    table = at.dataframe[0].value
    table = table.data if hasattr(table, "data") else table  # a Styler's frame
    assert list(table.columns[:5]) == ["budget (GFLOPs)", "ViT best", "ConvNet best", "ViT − ConvNet", "ViT vs ConvNet"]
    assert "best class" in table.columns and table.columns[-1].endswith("checkpoint")
    assert not table.isna().any().any() and not table.astype(str).isin(["None", "nan"]).any().any()
    verdicts = set(table["ViT vs ConvNet"])
    assert verdicts <= {"ViT leads", "ConvNet leads", "borderline", "no clear winner", "—"} | {
        v for v in verdicts if v.endswith(": too few")}


def test_nothing_measured_here_says_how_to_measure_not_to_import(full_app_db):
    at = open_page("pages/overview.py", {"source": "measured here"})
    assert not at.exception
    [info] = [i.value for i in at.info]
    assert "Nothing measured on this machine" in info and "catalog import" not in info


def test_the_queue_shows_an_error_only_for_the_job_that_failed(run_page_env):
    from engine.store import Store
    store = Store(run_page_env)
    for job, outcome in (("a", "failed"), ("b", "done")):
        store.enqueue_job(job, "bench", {"kind": "bench", "checkpoint": f"m{job}"}, f"key-{job}", f"bench m{job}", "cpu")
    for job, outcome in (("a", "failed"), ("b", "done")):
        store.register_worker("w", "host", 1, "cpu", False) if job == "a" else None
        claimed = store.claim_job("w", "cpu")
        store.finish_job(claimed["id"], "w", outcome, "it broke" if outcome == "failed" else None)
    at = open_page("pages/run.py")
    assert [e.value for e in at.error] == ["it broke"]  # never "nan" under the finished job


def test_find_labels_never_overlap_and_the_rest_are_listed():
    """Found points spread over a chart and a tight cluster of them: labels go only where they
    overlap neither another label nor another found point; the cluster cannot all be labelled,
    and every found point is either labelled or listed beside the chart."""
    import numpy as np
    import pandas as pd

    from ui import chart_tools
    rng = np.random.default_rng(0)
    spread = pd.DataFrame({"checkpoint": [f"net_{i}.a" for i in range(20)],
                           "cost": np.geomspace(0.1, 1000, 20), "quality": np.linspace(60, 90, 20)})
    cluster = pd.DataFrame({"checkpoint": [f"twin_{i}.a" for i in range(12)],
                            "cost": 5 * np.exp(rng.normal(0, 0.01, 12)), "quality": 75 + rng.normal(0, 0.05, 12)})
    shown = pd.concat([spread, cluster], ignore_index=True)
    found, rest = chart_tools.place_labels(shown, shown)
    labelled = {name for column in chart_tools.LABEL_COLUMNS for name in found[column] if name}
    assert len(labelled) + len(rest) == len(shown) and labelled.isdisjoint(rest)
    assert len(labelled) >= 15 and any(name.startswith("twin") for name in rest)
    assert (found[chart_tools.LABEL_COLUMNS].astype(bool).sum(axis=1) <= 1).all()  # one spot per point
    boxes = [b for b in found["label_box"] if b is not None]
    assert len(boxes) == len(labelled)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
        assert 0 <= a[0] and a[2] <= chart_tools.LABEL_BOX[0] and 0 <= a[1] and a[3] <= chart_tools.LABEL_BOX[1]


# -- issue 23: training compute on the pages --------------------------------------------------------------
def test_the_training_compute_axis_counts_what_it_leaves_out(full_app_db):
    at = open_page("pages/overview.py", {"cost": "train_flops"})
    assert not at.exception, at.exception
    [note] = [c.value for c in at.caption if "left out for want of one" in c.value]
    counts = dict(re.findall(r"(ConvNet|ViT|Hybrid) ([\d,]+) of", note))
    assert set(counts) >= {"ConvNet", "ViT"} and all(int(v.replace(",", "")) > 0 for v in counts.values())
    assert any("ViT vs ConvNet" in m.value for m in at.markdown)  # a verdict at matched training compute


def test_training_compute_pages_state_their_numbers_and_reasons(full_app_db):
    at = open_page("pages/training_crosscheck.py")
    assert not at.exception, at.exception
    paper, published = at.dataframe[0].value, at.dataframe[1].value
    assert paper["ratio"].between(0.95, 1.05).all()
    assert (published.loc[published["outlier"], "reason"] != "").all() and published["outlier"].any()
    assert not at.warning  # every outlier has its reason
    seed = open_page("pages/seed_paper.py", {"utilisation": "0.5"})
    assert not seed.exception, seed.exception
    assert any("× 50% utilisation" in c.value for c in seed.caption)
    card = open_page("pages/checkpoint.py", {"checkpoint": "deit_base_patch16_384.fb_in1k"})
    stages = [df.value for df in card.dataframe if "FLOPs low" in df.value.columns]
    assert any("FLOPs per sample" in df.value.columns for df in card.dataframe)  # in the stages' details
    assert stages and list(stages[0]["kind"]) == ["pretrain", "finetune"] and stages[0]["source"].str.len().min() > 10


# -- issue 33: training compute over the lineage, as a range, verdicts with their footing ------------------
FOOTING = re.compile(r"(holds within every estimate's range|could change: .+ with every \w+ estimate at its)")


def test_every_verdict_on_the_training_compute_axis_says_its_footing(full_app_db):
    overview = open_page("pages/overview.py", {"cost": "train_flops"})
    assert not overview.exception, overview.exception
    [note] = [m.value for m in overview.markdown if m.value.startswith("*Footing of ViT vs ConvNet*")]
    assert FOOTING.search(note) and ("unestimated" in note)
    budget = open_page("pages/budget.py", {"cost": "train_flops"})
    assert not budget.exception, budget.exception
    table = budget.dataframe[0].value
    compared = table[table["ViT − ConvNet"] != "—"]
    assert len(compared) >= 5 and compared["ViT footing"].map(lambda t: bool(FOOTING.search(t))).all()
    when = open_page("pages/when.py", {"cost": "train_flops"})
    assert not when.exception, when.exception
    assert any(m.value.startswith("*Footing of ViT vs ConvNet*") for m in when.markdown)
    frontier = open_page("pages/frontier.py", {"cost": "train_flops"})
    assert not frontier.exception, frontier.exception
    # on another axis no footing is written
    gflops = open_page("pages/overview.py", {"cost": "gflops"})
    assert not any(m.value.startswith("*Footing") for m in gflops.markdown)


def test_the_checkpoint_page_shows_the_range_the_lineage_and_the_missing_stage(full_app_db):
    card = open_page("pages/checkpoint.py", {"checkpoint": "vit_huge_patch14_clip_224.laion2b_ft_in1k"})
    assert not card.exception, card.exception
    [head] = [m.value for m in card.markdown if "FLOPs**" in m.value and "[" in m.value]
    assert re.search(r"\*\*3\.7e22 \[3\.3e22, 4\.0e22\] FLOPs\*\*", head), head
    assert "incomplete" in head and "finetune on imagenet-1k" in head and "geometric middle" in head
    assert any(m.value.startswith("What trained it: ") and "open_clip:ViT-H-14.laion2b_s32b_b79k" in m.value
               for m in card.markdown)
    [stages] = [df.value for df in card.dataframe if "FLOPs low" in df.value.columns]
    assert stages["FLOPs"].iloc[0] == pytest.approx(3.7e22, rel=0.01) and pd.isna(stages["FLOPs"].iloc[-1])


def captions(at: AppTest) -> str:
    return "\n".join(re.sub(r"\\(.)", r"\1", c.value) for c in at.caption)


@pytest.mark.parametrize("page", [*ANALYSIS_PAGES, "pages/robustness.py"])
def test_one_pre_training_data_source_restricts_every_analysis_page_in_both_zoos(page, full_app_db):
    """The sidebar's Pre-training data: the image-text zoo opens on LAION-2B (never a silent mix),
    the ImageNet zoo on the mix said as such; a chosen source is what the page draws and says."""
    from engine.store import Store
    from ui.widgets import ALL_DATA
    for zoo, default, other in (("imagenet", ALL_DATA, "ImageNet-21k"), ("image-text", "LAION-2B", "OpenAI WIT-400M")):
        at = open_page(page, {"zoo": zoo})
        assert not at.exception and not at.error, (zoo, at.exception, [e.value for e in at.error])
        assert at.selectbox(key="data").value == default, zoo
        said = captions(at)
        assert ("Pre-training data: LAION-2B" in said or "same pre-training data, LAION-2B" in said) if zoo == "image-text" \
            else "mixed" in said, said
        at.selectbox(key="data").set_value(other).run()
        assert not at.exception and not at.error, (zoo, other, at.exception, [e.value for e in at.error])
        assert other in captions(at)
        if page == "pages/budget.py":  # the checkpoints the table names were all pre-trained on that source
            table = at.dataframe[0].value
            table = table.data if hasattr(table, "data") else table
            named = {v for c in table.columns if c.endswith(" checkpoint") for v in table[c] if v != "—"}
            with Store(full_app_db).connect() as con:
                data = set(con.execute("SELECT DISTINCT pretrain_data FROM checkpoints WHERE checkpoint IN "
                                       f"({','.join('?' * len(named))})", list(named)).fetchdf()["pretrain_data"])
            assert named and data == {other}, data
        at.selectbox(key="data").set_value(ALL_DATA).run()
        assert not at.exception and "mixed" in captions(at)


def test_switching_zoo_moves_cost_metric_and_data_to_that_zoos_own(full_app_db):
    at = open_page("pages/overview.py")
    assert (at.selectbox(key="cost").value, at.selectbox(key="metric").value) == ("gflops", "imagenet.top1")
    at.selectbox(key="zoo").set_value("image-text").run()
    assert not at.exception, at.exception
    assert (at.selectbox(key="cost").value, at.selectbox(key="metric").value,
            at.selectbox(key="data").value) == ("train_flops", "zeroshot:imagenet1k.top1", "LAION-2B")
    said = texts(at)
    assert "ViT vs ConvNet on LAION\\-2B" in said
    assert "to reach 70" in said and "% zero\\-shot ImageNet on LAION\\-2B, ViTs need" in said
    at.selectbox(key="zoo").set_value("imagenet").run()
    assert (at.selectbox(key="cost").value, at.selectbox(key="metric").value) == ("gflops", "imagenet.top1")
    assert "ViT vs ConvNet (mixed pre-training data)" in texts(at).replace("\\", "")
    # a link names its own cost: kept
    at = open_page("pages/overview.py", {"zoo": "image-text", "cost": "gflops"})
    assert at.selectbox(key="cost").value == "gflops" and at.selectbox(key="data").value == "LAION-2B"


def test_budget_match_has_the_multiplier_table_and_when_what_pre_training_buys(full_app_db):
    at = open_page("pages/budget.py", {"cost": "train_flops", "levels": "80,85"})
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "level" in getattr(d.value, "columns", []))
    assert list(table["level"]) == ["80", "85"] and "ViT ÷ ConvNet" in table.columns
    assert all("×" in v for v in table["ViT ÷ ConvNet"] if v != "—")
    for typed, said in (("7o", "'7o' is not one"), ("99.9", "No class reaches 99.9")):
        at = open_page("pages/budget.py", {"levels": typed})
        assert not at.exception and any(said in re.sub(r"\\(.)", r"\1", i.value) for i in at.info), typed
    at = open_page("pages/when.py")
    assert not at.exception, at.exception
    gains = next(d.value for d in at.dataframe if "pre-training" in getattr(d.value, "columns", []))
    assert "ImageNet-21k, supervised" in set(gains["pre-training"]) and "ViT − ConvNet" in gains.columns
    assert any(m.value.startswith("From ImageNet\\-1k, supervised to ImageNet\\-21k, supervised") for m in at.markdown)


def test_the_seed_paper_page_has_the_papers_numbers_and_the_zoos_answer_apart(full_app_db):
    at = open_page("pages/seed_paper.py")
    assert not at.exception and not at.error, at.exception
    headers = [h.value for h in at.header]
    assert headers[0].startswith("Part 1") and headers[1].startswith("Part 2")
    claims = [re.sub(r"\\(.)", r"\1", m.value) for m in at.markdown if m.value.startswith("**")]
    assert any("not testable here" in c and "loss" in c for c in claims)
    zoo = [c for c in claims if "training compute" in c or "timm's checkpoints" in c]
    assert len(zoo) >= 4 and all("[" in c or "not testable here" in c for c in zoo)
