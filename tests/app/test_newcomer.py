"""What a newcomer misread, stumbled on or could not find (issue 35), each on the shipped data:
the text a page shows, checked through AppTest (layout is the browser test's)."""
import json
import re

import pandas as pd
import pytest

from tests.app.test_app import full_app_db, open_page, run_page_env  # noqa: F401  (fixtures)
from tests.conftest import run_cli


def _links(at) -> list:
    return [el.proto for el in at.get("page_link")]


def test_the_training_compute_caption_links_to_the_list_of_those_left_out(full_app_db):
    at = open_page("pages/frontier.py", {"cost": "train_flops"})
    assert not at.exception, at.exception
    [link] = [p for p in _links(at) if p.page == "catalog"]
    assert "show=no-training-compute" in link.query_string and "zoo=imagenet" in link.query_string

    listed = open_page("pages/catalog.py", dict(kv.split("=") for kv in link.query_string.split("&")))
    assert not listed.exception, listed.exception
    [table] = [d.value for d in listed.dataframe if "why" in d.value.columns]
    assert {"arch_class", "checkpoint", "why"} <= set(table.columns)
    assert set(table["arch_class"]) >= {"ConvNet", "ViT"} and table["why"].str.len().gt(10).all()
    # the same list as the CLI's, and none of them has an estimate
    cli = run_cli("catalog", "training-compute", "--missing", "--zoo", "imagenet", "--json", db=full_app_db)
    assert cli.returncode == 0, cli.stderr
    records = json.loads(cli.stdout)
    assert sorted(r["checkpoint"] for r in records) == sorted(table["checkpoint"])
    estimated = json.loads(run_cli("catalog", "training-compute", "--json", db=full_app_db).stdout)
    has_flops = {r["checkpoint"] for r in estimated if r["train_flops"] is not None}
    assert not has_flops & set(table["checkpoint"])


def test_catalog_training_compute_missing_prints_class_tag_and_why_and_refuses_a_bad_class(full_app_db):
    shown = run_cli("catalog", "training-compute", "--missing", "--class", "vit", db=full_app_db)
    assert shown.returncode == 0, shown.stderr
    first, header, row = shown.stdout.splitlines()[:3]
    assert re.match(r"[\d,]+ checkpoints have no training-compute estimate \(ViT [\d,]+\):", first)
    assert header.split()[:2] == ["class", "checkpoint"] and header.endswith("why")
    assert row.startswith("ViT ")
    bad = run_cli("catalog", "training-compute", "--missing", "--class", "transformers", db=full_app_db)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "Unknown class 'transformers'; choose one of ConvNet, ViT, Hybrid, MLP." in bad.stderr


def test_a_typed_budget_is_answered_at_exactly_that_value_and_kept_in_the_url(full_app_db):
    at = open_page("pages/frontier.py", {"budget": "400"})  # not a step of the slider's grid (380, 510)
    assert not at.exception, at.exception
    assert at.number_input(key="budget_typed").value == 400
    assert at.select_slider(key="budget_pick").value != 400  # the grid's nearest step, for browsing
    assert any(s.value == "Best of each class at ≤ 400 GFLOPs" for s in at.subheader)
    at.number_input(key="budget_typed").set_value(250.0).run()
    assert any(s.value == "Best of each class at ≤ 250 GFLOPs" for s in at.subheader)
    assert at.query_params["budget"] == ["250"] or at.query_params["budget"] == "250"
    slider = at.select_slider(key="budget_pick")
    slider.set_value(float(slider.options[10])).run()  # the slider still moves the budget, and the box follows
    assert at.number_input(key="budget_typed").value == float(slider.options[10])

    budget = open_page("pages/budget.py", {"cost": "train_flops", "budget": "1e20"})
    assert not budget.exception, budget.exception
    table = budget.dataframe[0].value
    assert (table["budget (FLOPs)"] == "1.00e+20").sum() == 1


def _chart_data(chart) -> dict:
    import pyarrow as pa
    return {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets}


def test_when_heatmaps_count_the_class_then_convnet_and_colour_only_a_lead(full_app_db):
    at = open_page("pages/when.py")
    assert not at.exception, at.exception
    heatmaps = at.get("vega_lite_chart")
    assert len(heatmaps) >= 2
    for chart in heatmaps:
        cells = _chart_data(chart)["cells"]
        [other] = set(cells["class"])
        for row in cells[cells["label"].str.contains(r"\+ \d+$")].itertuples():
            a, b = (int(n) for n in re.search(r"n = (\d+) \+ (\d+)$", row.label).groups())
            assert (a, b) == (getattr(row, f"n_{other}"), row.n_ConvNet), row.label
        assert set(cells.loc[cells["shade"] == "leads", "verdict"]) <= {f"{other} leads", "ConvNet leads"}
        assert (cells.loc[cells["verdict"].isin(["no clear winner", "borderline"]), "shade"] == "no clear winner").all()
        spec = json.loads(chart.proto.spec)
        coloured = [layer for layer in spec["layer"] if layer.get("encoding", {}).get("color", {}).get("field") == "gap"]
        assert [layer["transform"] for layer in coloured] == [[{"filter": "datum.shade === 'leads'"}]]
    assert {"leads", "no clear winner"} <= set(pd.concat(_chart_data(c)["cells"] for c in heatmaps)["shade"])


def test_too_few_budgets_are_grey_hollow_and_break_the_line_and_the_band(full_app_db):
    at = open_page("pages/overview.py", {"zoo": "image-text"})
    assert not at.exception, at.exception
    [chart] = at.get("vega_lite_chart")
    gaps = _chart_data(chart)["gaps"]
    assert gaps["too_few"].any() and (~gaps["too_few"]).any()
    spec = json.loads(chart.proto.spec)
    line, band = (next(la for la in spec["layer"] if _mark(la) == kind) for kind in ("line", "area"))
    for drawn in (line, band):  # judged budgets only, one path per run of them
        assert drawn["transform"] == [{"filter": "!datum.too_few"}] and drawn["encoding"]["detail"]["field"] == "segment"
    [hollow] = [la for la in spec["layer"] if la.get("transform") == [{"filter": "datum.too_few"}]]
    assert hollow["mark"]["filled"] is False and hollow["encoding"]["color"] == {"value": "#999999"}
    for _, runs in gaps.sort_values("budget").groupby("comparison"):
        judged = runs[~runs["too_few"]]
        for _, segment in judged.groupby("segment"):  # no segment spans a too-few budget
            low, high = segment["budget"].min(), segment["budget"].max()
            between = runs[(runs["budget"] > low) & (runs["budget"] < high)]
            assert not between["too_few"].any()


def test_a_too_few_budget_between_two_judged_runs_splits_them():
    from ui.charts import judged_segments
    gaps = pd.DataFrame({"comparison": ["ViT-ConvNet"] * 5 + ["Hybrid-ConvNet"] * 2,
                         "budget": [1, 2, 3, 4, 5, 1, 2], "too_few": [False, False, True, False, False, False, False]})
    segments = judged_segments(gaps.iloc[::-1], "comparison")[::-1]  # any row order
    assert segments[0] == segments[1] != segments[3] == segments[4] and segments[5] == segments[6] != segments[0]


def _mark(layer) -> str:
    return layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]


def test_scaling_shows_where_the_lines_cross_its_interval_and_why_it_is_not_a_crossover(full_app_db):
    at = open_page("pages/scaling.py")
    assert not at.exception, at.exception
    [said] = [m.value.replace("\\", "") for m in at.markdown if m.value.startswith("- ConvNet / ViT")]
    found = re.search(r"cross at ([\d.,]+) GFLOPs, but the 95% interval of that estimate runs from ([\d.e-]+) GFLOPs "
                      r"to ([\d.e-]+) GFLOPs \(([\d.]+) decades\): a crossover is located only when its interval "
                      r"spans at most 2 decades", said)
    assert found, said
    at_, low, high = (float(found[i].replace(",", "")) for i in (1, 2, 3))
    assert low < at_ < high and 100 < at_ < 200  # ~149 GFLOPs on the shipped data
    [chart] = at.get("vega_lite_chart")
    crossings = _chart_data(chart)["crossings"].set_index("arch_class")
    assert crossings.loc["ViT", "crossover"] == __import__("pytest").approx(at_, rel=0.01)
    points = _chart_data(chart)["points"]
    band = crossings.loc["ViT", ["band_low", "band_high"]]
    assert points["cost"].min() <= band["band_low"] <= at_ <= band["band_high"] <= points["cost"].max()
    spec = json.loads(chart.proto.spec)
    assert any(_mark(la) == "rule" and la["encoding"]["x"]["field"] == "crossover" for la in spec["layer"])
    assert any(_mark(la) == "rect" and la["encoding"]["x"]["field"] == "band_low" for la in spec["layer"])


def test_every_page_with_best_of_class_intervals_says_once_how_they_are_drawn(full_app_db):
    from ui.widgets import INTERVAL_NOTE
    for page in ("pages/overview.py", "pages/budget.py", "pages/when.py", "pages/robustness.py"):
        at = open_page(page, {"ood": "imagenet-r"} if "robustness" in page else None)
        assert not at.exception, at.exception
        notes = [c.value for c in at.caption if c.value == INTERVAL_NOTE]
        assert len(notes) == 1, page
    assert "percentile interval of the exact bootstrap of each class's best under the budget" in INTERVAL_NOTE


def _failed_job(store, job: str, error: str, spec: dict | None = None):
    spec = spec or {"kind": "bench", "checkpoint": "test_vit.r160_in1k", "device": "cpu", "precision": "fp32",
                    "batch_size": 2, "channels_last": False, "compile": False, "img_size": None}
    store.enqueue_job(job, "bench", spec, f"key-{job}", f"bench {spec['checkpoint']}", "cpu", requested_by="cli:me")
    store.register_worker("w", "host", 1, "cpu", False)
    claimed = store.claim_job("w", "cpu")
    store.finish_job(claimed["id"], "w", "failed", error)


def test_a_failed_job_reads_plainly_and_can_be_retried_or_cleared(run_page_env):
    from engine.store import Store
    store = Store(run_page_env)
    _failed_job(store, "f1", "Weights missing: run `hf download timm/x` with the same *HF_HUB_CACHE*.")
    at = open_page("pages/run.py")
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert error == r"Weights missing\: run `hf download timm/x` with the same \*HF\_HUB\_CACHE\*\."
    [retry] = [b for b in at.button if b.label == "Retry"]
    retry.click().run()
    frame = store.jobs_frame()
    assert list(frame["state"]) == ["queued", "failed"]  # a new job, the failed one as it was
    assert store.job(frame["id"][0])["spec"] == store.job("f1")["spec"]
    [clear] = [b for b in at.button if b.label == "Clear"]
    clear.click().run()
    assert list(store.jobs_frame()["id"]) == [frame["id"][0]]  # hidden from the list
    assert store.job("f1")["state"] == "failed" and "f1" in set(store.jobs_frame(cleared=True)["id"])
    assert not [e.value for e in at.run().error]


def test_jobs_retry_and_clear_from_the_cli(run_page_env):
    from engine.store import Store
    store = Store(run_page_env)
    _failed_job(store, "f2", "it broke")
    retried = run_cli("jobs", "retry", "f2", "--json", db=run_page_env)
    assert retried.returncode == 0, retried.stderr
    answer = json.loads(retried.stdout)
    assert answer["outcome"] == "queued" and store.job(answer["job"])["spec"] == store.job("f2")["spec"]
    again = run_cli("jobs", "retry", answer["job"], db=run_page_env)  # not failed: refused in one line
    assert again.returncode != 0 and f"Job {answer['job']} is queued; only a failed job can be retried." in again.stderr
    missing = run_cli("jobs", "retry", "nope", db=run_page_env)
    assert missing.returncode != 0 and "There is no job 'nope'" in missing.stderr and "Traceback" not in missing.stderr
    cleared = run_cli("jobs", "clear", "f2", db=run_page_env)
    assert cleared.returncode == 0, cleared.stderr
    listed = run_cli("jobs", "list", "--json", db=run_page_env)
    assert [r["id"] for r in json.loads(listed.stdout)] == [answer["job"]]
    assert "f2" in [r["id"] for r in json.loads(run_cli("jobs", "list", "--json", "--cleared", db=run_page_env).stdout)]


def test_missing_weights_are_reported_before_the_model_code_loads(catalog_db, tmp_path):
    """The CLI took 11 s (importing torch, timm) to say the weights were not cached."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    (tmp_path / "imgs" / "n01440764").mkdir(parents=True)
    script = ("import sys; from engine.cli.main import main\n"
              "code = main(sys.argv[1:])\n"
              "print('loaded:', sorted(m for m in ('torch', 'timm', 'open_clip') if m in sys.modules))\n")
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-hub")}
    for command in (["eval", "resnet50.a1_in1k", "--data", str(tmp_path / "imgs")],
                    ["probe", "resnet50.a1_in1k", "--data", str(tmp_path / "imgs")],
                    ["zeroshot", "open_clip:convnext_base_w.laion2b_s13b_b82k", "--data", str(tmp_path / "imgs")]):
        done = subprocess.run([sys.executable, "-c", script, *command, "--db", str(catalog_db)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert "is not in the local Hub cache" in done.stderr and "HF_HUB_OFFLINE is set" in done.stderr, done.stderr
        assert "loaded: []" in done.stdout, (command, done.stdout)


NUMBER_CELL = re.compile(r"[-+]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?")
FLOP_CELL = re.compile(r"\d\.\d\de[-+]\d\d")


@pytest.mark.parametrize("query", [{}, {"cost": "train_flops"}, {"zoo": "image-text"}])
def test_every_table_formats_its_numbers_with_flops_in_one_format_and_units(full_app_db, query):
    """Raw 21-digit integers (117716202499128980000) and mixed formats (537946196460503500000
    beside 9.5235e21) were in the tables: every FLOP count is now 1.18e+20, in a numeric column
    (sorting still sorts by value) or in text built with the same format."""
    from ui.tables import FLOP_FORMAT
    seen = 0
    for page in ("pages/budget.py", "pages/checkpoint.py", "pages/training_crosscheck.py", "pages/catalog.py",
                 "pages/robustness.py", "pages/when.py", "pages/scaling.py", "pages/seed_paper.py"):
        at = open_page(page, dict(query))
        assert not at.exception, (page, at.exception)
        for table in at.dataframe:
            config, frame = json.loads(table.proto.columns), table.value
            for name in frame.columns:
                values = frame[name]
                if pd.api.types.is_bool_dtype(values):
                    continue
                if pd.api.types.is_numeric_dtype(values):
                    large = values.dropna().abs().max() >= 1e7 if values.notna().any() else False
                    flops = "flops" in str(name).lower() and "gflops" not in str(name).lower()
                    fmt = config.get(str(name), {}).get("type_config", {}).get("format")
                    if flops or large:
                        assert fmt == FLOP_FORMAT, (page, name, fmt)
                        seen += 1
                    elif pd.api.types.is_float_dtype(values):
                        assert fmt, (page, name)  # ours (NUMBER_FORMAT) or the page's own
                    if flops:
                        assert "FLOPs" in config[str(name)]["label"], (page, name)
                    continue
                for cell in values.dropna().astype(str):
                    inner = re.search(r"\(([^()]*)\)$", cell)
                    for text in (cell, inner[1] if inner else ""):
                        if NUMBER_CELL.fullmatch(text) and ("e" in text or len(text.replace(",", "")) > 12):
                            assert FLOP_CELL.fullmatch(text), (page, name, cell)
                            seen += 1
    assert seen


def test_fitted_widths_fit_the_page_and_keep_the_answer_whole():
    from ui import tables
    frame = pd.DataFrame({"budget (GFLOPs)": ["0.049", "1,200"], "ViT − ConvNet": ["+0.71 [-0.35, +1.67]"] * 2,
                          "note": ["a long explanation " * 8, pd.NA], "names": [["a", "b"], None],
                          "share": [0.5, float("nan")], "flops": [1.2e20, 3.4e21]})
    config = tables.column_config(frame)
    config["share"] = {"type_config": {"format": "percent"}}  # a named format, as a page may set
    widths = tables.fit_widths(frame, config, list(frame.columns), 560, keep=("budget (GFLOPs)", "ViT − ConvNet"))
    assert sum(widths.values()) <= 560 and min(widths.values()) >= tables.MIN_WIDTH
    natural = tables.fit_widths(frame, config, list(frame.columns), 10_000)
    assert widths["ViT − ConvNet"] == natural["ViT − ConvNet"] and widths["note"] < natural["note"]
