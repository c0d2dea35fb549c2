import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import timm
import timm.models

from engine.catalog import image_text, image_text_published, refresh, taxonomy, timm_models, timm_published
from engine.catalog.timm_models import CatalogError
from engine.store import Store
from tests.conftest import ROOT, run_cli, write_open_clip_docs

RESULTS_HEADER = "model,img_size,top1,top1_err,top5,top5_err,param_count,crop_pct,interpolation\n"
BENCH_HEADER = ("model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size,"
                "param_count,infer_gmacs,infer_macts\n")


def write_results(folder: Path, name="results-imagenet.csv", rows=None, header=RESULTS_HEADER):
    rows = rows or [
        'resnet50.a1_in1k,288,81.2,18.8,95.1,4.9,25.56,1.0,bicubic',
        'vit_base_patch16_224.augreg2_in21k_ft_in1k,224,85.1,14.9,97.5,2.5,86.57,0.9,bicubic',
        'convnext_xxlarge.clip_laion2b_soup_ft_in1k,256,88.6,11.4,98.7,1.3,"1,014.45",1.0,bicubic',
    ]
    path = folder / name
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def write_benchmark(folder: Path, name="benchmark-infer-amp-nchw-pt240-cu124-rtx4090-dynamo.csv"):
    path = folder / name
    path.write_text(BENCH_HEADER + "resnet50,224,3000.5,85.3,256,25.56,4.11,11.11\n"
                    "gluon_resnet18_v1b,224,9000.0,28.4,256,11.69,1.82,2.48\n"
                    "vit_medium_patch16_reg4_256,256,1000.0,256.0,256,38.88,11.0,20.0\n")
    return path


# -- refresh ------------------------------------------------------------------------------------
def test_refresh_catalogs_every_pretrained_checkpoint_with_a_class(catalog_store):
    info = catalog_store.info()
    n = len(timm.list_pretrained())
    n_image_text = len(image_text.pairs())  # OpenCLIP's (model, tag) pairs: the image-text zoo
    assert n >= 1800 and n_image_text >= 150
    assert info["tables"]["checkpoints"] == n + n_image_text
    assert info["joins"]["checkpoints_without_class"] == 0
    counts = catalog_store.class_counts()
    assert set(counts["arch_class"]) == set(taxonomy.ARCH_CLASSES)
    assert counts["checkpoints"].sum() == n + n_image_text


def test_refresh_records_each_checkpoints_own_eval_config(catalog_store):
    with catalog_store.connect() as con:
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT checkpoint, input_h, test_h, crop_pct, test_crop_pct, crop_mode, interpolation,"
            " mean, std, num_classes, hub_repo, arch_class, pretrain_data FROM checkpoints").fetchall()}
    for name in ("convnext_base.fb_in22k_ft_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k",
                 "resnet50.a1_in1k", "test_vit.r160_in1k"):
        cfg = timm.models.get_pretrained_cfg(name)
        row = rows[name]
        assert row[0] == cfg.input_size[1]
        assert row[1] == (cfg.test_input_size[1] if cfg.test_input_size else None)
        assert row[2:6] == (cfg.crop_pct, cfg.test_crop_pct, cfg.crop_mode, cfg.interpolation)
        assert tuple(row[6]) == pytest.approx(cfg.mean) and tuple(row[7]) == pytest.approx(cfg.std)
        assert row[8] == cfg.num_classes and row[9] == cfg.hf_hub_id
    assert rows["convnext_base.fb_in22k_ft_in1k"][10:] == ("ConvNet", "ImageNet-21k")


def test_refresh_twice_replaces_rather_than_duplicates(catalog_store):
    refresh.refresh(catalog_store)  # the catalog again, and the shipped published results
    before = catalog_store.info()["tables"]
    assert before["published_results"] > 10_000
    refresh.refresh(catalog_store)
    assert catalog_store.info()["tables"] == before


def test_reference_points_keep_their_source(catalog_store):
    frame = timm_models.reference_points_frame()
    assert catalog_store.count("reference_points") == len(frame) > 0
    with catalog_store.connect() as con:
        assert con.execute("SELECT count(*) FROM reference_points WHERE source IS NULL").fetchone()[0] == 0
        f7 = con.execute("SELECT imagenet_top1, compute_value, compute_unit FROM reference_points "
                         "WHERE model LIKE 'NFNet-F7+ (8%'").fetchone()
    assert f7 == (90.3, 110000.0, "tpu_v4_core_hours")


# -- file names ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,expected", [
    ("results-imagenet.csv", ("results", {"dataset": "imagenet"})),
    ("results-imagenetv2-matched-frequency.csv", ("results", {"dataset": "imagenet-v2"})),
    ("results-imagenet-a-clean.csv", ("results", {"dataset": "imagenet-a-clean"})),
    ("benchmark-infer-amp-nchw-pt113-cu117-rtx3090.csv", ("benchmark", {
        "mode": "infer", "precision": "amp", "layout": "nchw", "torch": "1.13", "cuda": "11.7",
        "device": "rtx3090", "compiled": False})),
    ("benchmark-infer-amp_bf16-nchw-pt291-cu130-pro6000maxq-dynamo.csv", ("benchmark", {
        "mode": "infer", "precision": "amp_bf16", "layout": "nchw", "torch": "2.9.1", "cuda": "13.0",
        "device": "pro6000maxq", "compiled": True})),
    ("benchmark-infer-fp32-nchw-pt221-cpu-i9_10940x-dynamo.csv", ("benchmark", {
        "mode": "infer", "precision": "fp32", "layout": "nchw", "torch": "2.2.1", "cuda": None,
        "device": "cpu-i9_10940x", "compiled": True})),
    ("benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv", ("benchmark", {
        "mode": "train", "precision": "amp", "layout": "nhwc", "torch": "1.12", "cuda": "11.3",
        "device": "rtx3090", "compiled": False})),
    ("model_metadata-in1k.csv", None),
    ("benchmark-infer-amp.csv", None),
])
def test_file_name_says_what_a_published_file_holds(name, expected):
    parsed = timm_published.parse_file_name(name)
    assert (parsed and (parsed.kind, parsed.fields)) == expected


# -- import ----------------------------------------------------------------------------------
def test_import_loads_results_and_benchmarks_with_names_resolved(tmp_path, store):
    write_results(tmp_path)
    write_benchmark(tmp_path)
    report = timm_published.import_dir(store, tmp_path)
    assert report.imported == {"benchmark-infer-amp-nchw-pt240-cu124-rtx4090-dynamo.csv": 3,
                               "results-imagenet.csv": 3}
    with store.connect() as con:
        results = con.execute("SELECT checkpoint, dataset, top1, param_count FROM published_results "
                              "ORDER BY top1").fetchall()
        bench = con.execute("SELECT model, arch, device, torch, cuda, compiled, gmacs "
                            "FROM published_benchmarks ORDER BY model").fetchall()
    assert results[-1] == ("convnext_xxlarge.clip_laion2b_soup_ft_in1k", "imagenet", 88.6, 1014.45)
    # a deprecated name resolves through timm's map; a retired one through data/retired_archs.csv
    assert bench == [
        ("gluon_resnet18_v1b", "resnet18", "rtx4090", "2.4.0", "12.4", True, 1.82),
        ("resnet50", "resnet50", "rtx4090", "2.4.0", "12.4", True, 4.11),
        ("vit_medium_patch16_reg4_256", "vit_medium_patch16_reg4_256", "rtx4090", "2.4.0", "12.4", True, 11.0),
    ]


def test_reimport_replaces_that_files_rows(tmp_path, store):
    write_results(tmp_path)
    timm_published.import_dir(store, tmp_path)
    write_results(tmp_path, rows=['resnet50.a1_in1k,288,80.0,20.0,95.0,5.0,25.56,1.0,bicubic'])
    timm_published.import_dir(store, tmp_path)
    with store.connect() as con:
        assert con.execute("SELECT checkpoint, top1 FROM published_results").fetchall() == [
            ("resnet50.a1_in1k", 80.0)]


def test_csv_missing_a_required_column_lands_nothing_and_names_file_and_column(tmp_path, store):
    write_results(tmp_path)
    timm_published.import_dir(store, tmp_path)  # the good version first
    broken = tmp_path / "broken"
    broken.mkdir()
    write_results(broken, header=RESULTS_HEADER.replace("top1,", "topone,"))
    write_benchmark(broken)
    report = timm_published.import_dir(store, broken)
    assert list(report.failed) == ["results-imagenet.csv"]
    assert "results-imagenet.csv" in report.failed["results-imagenet.csv"]
    assert "'top1'" in report.failed["results-imagenet.csv"]
    assert list(report.imported) == ["benchmark-infer-amp-nchw-pt240-cu124-rtx4090-dynamo.csv"]
    with store.connect() as con:  # the earlier import of that file is untouched
        assert con.execute("SELECT count(*) FROM published_results").fetchone()[0] == 3


def test_non_number_in_a_numeric_column_lands_nothing(tmp_path, store):
    write_results(tmp_path, rows=['resnet50.a1_in1k,288,eighty,20.0,95.0,5.0,25.56,1.0,bicubic'])
    report = timm_published.import_dir(store, tmp_path)
    assert "'top1'" in report.failed["results-imagenet.csv"]
    assert store.count("published_results") == 0 and store.count("published_files") == 0


def test_unknown_file_name_is_skipped_with_a_warning(tmp_path):
    write_results(tmp_path)
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    (tmp_path / "benchmark-weird.csv").write_text("a,b\n1,2\n")
    db = tmp_path / "m.duckdb"
    done = run_cli("catalog", "import", str(tmp_path), db=db)
    assert done.returncode == 0, done.stderr
    assert "warning: skipped notes.csv" in done.stderr
    assert "warning: skipped benchmark-weird.csv" in done.stderr
    assert "imported 1 files" in done.stdout


def test_missing_column_makes_the_cli_fail_with_the_file_named(tmp_path):
    write_results(tmp_path, header=RESULTS_HEADER.replace("param_count", "params"))
    done = run_cli("catalog", "import", str(tmp_path), db=tmp_path / "m.duckdb")
    assert done.returncode == 1
    assert "results-imagenet.csv: required column 'param_count' is missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_import_of_a_folder_that_is_not_there_says_what_to_do(tmp_path, store):
    with pytest.raises(CatalogError, match="not a folder"):
        timm_published.import_dir(store, tmp_path / "nope")
    with pytest.raises(CatalogError, match="no results"):
        timm_published.import_dir(store, tmp_path)


def test_two_processes_importing_at_once_both_finish_without_duplicates(tmp_path):
    for dataset in ("imagenet", "sketch", "imagenet-real", "imagenet-a", "imagenet-r", "imagenet-v2x"):
        write_results(tmp_path, name=f"results-{dataset}.csv")
    for device in ("rtx3090", "rtx4090", "a100", "h100"):
        write_benchmark(tmp_path, name=f"benchmark-infer-amp-nchw-pt240-cu124-{device}.csv")
    db = tmp_path / "shared.duckdb"
    Store(db).info()
    import subprocess
    import sys
    procs = [subprocess.Popen([sys.executable, "-m", "engine", "--db", str(db), "catalog", "import",
                               str(tmp_path)], cwd=Path(__file__).resolve().parents[2],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outcomes = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outcomes
    info = Store(db).info()
    assert info["tables"]["published_results"] == 6 * 3
    assert info["tables"]["published_benchmarks"] == 4 * 3
    assert info["tables"]["published_files"] == 10


# -- the published data itself -------------------------------------------------------------------
def test_full_published_import_joins_results_and_benchmarks(shared_results, catalog_store):
    report = timm_published.import_dir(catalog_store, shared_results)
    assert not report.failed
    assert "model_metadata-in1k.csv" in report.skipped
    info = catalog_store.info()
    assert info["joins"]["imagenet_results_joined"] >= 1500
    assert info["tables"]["published_benchmarks"] > 25000
    assert info["joins"]["published_benchmarks_joined"] == info["tables"]["published_benchmarks"]
    listing = timm_models.list_checkpoints(catalog_store, "vit")
    vit_b = listing.set_index("checkpoint").loc["vit_base_patch16_224.augreg2_in21k_ft_in1k"]
    assert vit_b["imagenet_top1"] == pytest.approx(85.1, abs=0.2)
    assert vit_b["params_m"] == pytest.approx(86.6, abs=0.1)
    assert set(listing["arch_class"]) == {"ViT"}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_sync_downloads_the_pinned_commit_and_imports_it(shared_results, tmp_path, store, monkeypatch):
    commit = timm_published.TIMM_RESULTS_COMMIT
    mirror = tmp_path / "mirror" / commit / "results"
    mirror.mkdir(parents=True)
    for name in timm_published.TIMM_RESULTS_FILES:
        shutil.copy(shared_results / name, mirror / name)
    write_open_clip_docs(tmp_path / "mirror" / image_text_published.OPEN_CLIP_COMMIT / "docs")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(tmp_path / "mirror")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MATCHUP_OPEN_CLIP_RESULTS_URL", f"http://127.0.0.1:{server.server_port}")
    try:
        report = timm_published.sync(store, base_url=f"http://127.0.0.1:{server.server_port}")
        with pytest.raises(CatalogError, match="HTTP 404"):
            timm_published.sync(store, commit="0" * 40, base_url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert len(report.imported) == len(timm_published.TIMM_RESULTS_FILES) + 3 and not report.failed
    [synced] = store.image_text_provenance()
    assert synced["origin"] == "sync" and synced["commit"] == image_text_published.OPEN_CLIP_COMMIT
    assert synced["files"] == 3 and synced["rows"] == 2 * (39 + 12) + 2



def test_files_imported_together_are_one_provenance_entry_across_a_clock_second(tmp_path, store):
    """On a busy machine one import can span a clock second; its files stay one entry (it was two,
    which made the sync test above flaky under load)."""
    write_results(tmp_path)
    write_benchmark(tmp_path)
    write_open_clip_docs(tmp_path / "open_clip")
    timm_published.import_dir(store, tmp_path)
    image_text_published.import_dir(store, tmp_path / "open_clip", origin="sync",
                                    commit=image_text_published.OPEN_CLIP_COMMIT)
    with store.connect() as con:  # the last file of each import lands a second later
        for table, name in (("published_files", "results-imagenet.csv"),
                            ("published_image_text_files", image_text_published.RESULTS_FILE)):
            con.execute(f"UPDATE {table} SET imported_at = imported_at + INTERVAL 1 SECOND, "
                        "taken_at = taken_at + INTERVAL 1 SECOND WHERE source_file = ?", [name])
    [timm_files] = store.published_provenance()
    [open_clip_files] = store.image_text_provenance()
    assert timm_files["origin"] == "import" and timm_files["files"] == 2
    assert open_clip_files["origin"] == "sync" and open_clip_files["files"] == 3

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sync_offline_says_so_and_points_to_import(tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHUP_TIMM_RESULTS_URL", f"http://127.0.0.1:{_closed_port()}")
    done = run_cli("catalog", "sync", db=tmp_path / "m.duckdb")
    assert done.returncode == 2
    assert "offline" in done.stderr and "catalog import DIR" in done.stderr
    assert "Traceback" not in done.stderr


def test_sync_refuses_a_commit_that_is_not_a_sha(store):
    with pytest.raises(CatalogError, match="not a git commit"):
        timm_published.sync(store, commit="main; rm -rf /")


def test_filter_checkpoints_keeps_what_each_filter_allows(catalog_store):
    frame = timm_models.list_checkpoints(catalog_store)
    kept = timm_models.filter_checkpoints(frame, classes=["ViT"], data_scales=["≥1B"])
    assert len(kept) > 0 and set(kept["arch_class"]) == {"ViT"} and set(kept["data_scale"]) == {"≥1B"}
    assert len(timm_models.filter_checkpoints(frame)) == len(frame)
    small = timm_models.filter_checkpoints(frame, families=["resnet"], max_params_m=30)
    assert len(small) > 0 and (small["params_m"] <= 30).all() and set(small["family"]) == {"resnet"}


def test_provenance_is_one_line_per_origin_however_many_files():
    """An import of 30 files once printed 30 identical provenance lines in the sidebar."""
    entries = [{"origin": "import", "commit": None, "taken_at": f"2026-11-30T10:00:{i:02d}", "files": 1, "rows": 100}
               for i in range(30)] + [{"origin": "snapshot", "commit": "aa4b5850deadbeef", "taken_at": "2026-11-28T09:00:00",
                                       "files": 30, "rows": 42888}]
    text = timm_published.describe_published(entries)
    assert text == ("timm (commit unknown), imported from a folder on 2026-11-30 (30 files, 3,000 rows); "
                    "timm aa4b5850, shipped snapshot taken 2026-11-28 (30 files, 42,888 rows)")
    assert timm_published.describe_published(entries, counts=False).count("imported from a folder") == 1


def test_shipped_registry_is_the_installed_timms_own():
    """The copy a first start reads instead of importing timm says exactly what timm says."""
    shipped = timm_models.shipped_registry(timm_models.installed_timm())
    assert shipped is not None, ("data/timm_*.csv are not for the installed timm: "
                                 "run `python -m engine catalog snapshot --timm-registry`")
    own = timm_models.registry_from_timm()
    assert shipped.version == own.version == timm.__version__
    pd.testing.assert_frame_equal(shipped.architectures, own.architectures)
    pd.testing.assert_frame_equal(shipped.pretrained, own.pretrained)
    pd.testing.assert_frame_equal(shipped.deprecated, own.deprecated)


def test_registry_for_another_timm_or_damaged_is_not_used(tmp_path):
    result = run_cli("catalog", "snapshot", "--timm-registry", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pretrained"] == len(timm.list_pretrained())
    assert timm_models.shipped_registry(timm.__version__, tmp_path) is not None
    assert timm_models.shipped_registry("0.0.1", tmp_path) is None  # written for another timm
    pretrained = tmp_path / "timm_pretrained.csv"
    text = pretrained.read_text()
    pretrained.write_text(text.replace(",224,224,", ",two,224,", 1))  # a size that is not a number
    assert timm_models.shipped_registry(timm.__version__, tmp_path) is None
    pretrained.write_text(text.split("\n", 1)[0].replace("input_h,", "") + "\n")  # a column gone, no rows
    assert timm_models.shipped_registry(timm.__version__, tmp_path) is None
    pretrained.unlink()
    assert timm_models.shipped_registry(timm.__version__, tmp_path) is None


def test_published_import_resolves_names_without_importing_torch(tmp_path):
    write_results(tmp_path)
    script = ("import sys; from engine.store import Store; from engine.catalog import timm_published; "
              f"r = timm_published.import_dir(Store({str(tmp_path / 'new.duckdb')!r}), {str(tmp_path)!r}); "
              "print(r.imported, r.failed, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'results-imagenet.csv': 3} {} False"


def test_first_start_builds_the_catalog_without_importing_torch(tmp_path):
    """The shipped registry, FLOP counts and snapshots are enough: torch, timm and open_clip load
    later, when something is measured (importing them took seconds of the first start)."""
    script = ("import sys; from engine.store import Store; from engine.catalog import refresh; "
              f"r = refresh.refresh(Store({str(tmp_path / 'new.duckdb')!r})); "
              "print(r.checkpoints, r.published_error, r.image_text_error, "
              "sorted(m for m in ('torch', 'timm', 'open_clip') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(len(timm.list_pretrained()) + len(image_text.pairs())), "None", "None", "[]"]


def test_shipped_compute_holds_timms_counts_not_the_derived_image_tower_rows(catalog_store, tmp_path):
    every = catalog_store.compute_frame()
    towers = every["arch"].str.startswith(image_text.ID_PREFIX)
    assert towers.any() and (~towers).any()  # the refresh derived tower rows from image_text_compute.csv
    written = refresh.write_shipped_compute(catalog_store, tmp_path / "compute.csv")
    shipped = pd.read_csv(tmp_path / "compute.csv")
    assert written == len(shipped) == int((~towers).sum())
    assert not shipped["arch"].str.startswith(image_text.ID_PREFIX).any()
