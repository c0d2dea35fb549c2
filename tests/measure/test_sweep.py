"""Sweeps on tiny checkpoints in a temporary offline Hub cache: three pixel groups (160 bicubic,
160 bilinear, 224 bicubic), results equal separate evaluations, resume after kill -9, the
decoded-image cache and its budget, failures that do not stop the others, undecodable images."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine.measure import datasets, decoded, evaluate, sweep
from engine.measure.evaluate import EvalSettings
from engine.store import Store
from tests.conftest import ROOT, make_image_folder, run_cli, write_hub_checkpoint

GROUPS = {  # checkpoint -> its pixel group; test_efficientnet has other mean/std than test_vit: same group
    "test_vit.r160_in1k": "160 bicubic", "test_convnext.r160_in1k": "160 bicubic",
    "test_efficientnet.r160_in1k": "160 bicubic", "test_nfnet.r160_in1k": "160 bicubic",
    "test_vit2.r160_in1k": "160 bicubic", "test_resnet.r160_in1k": "160 bilinear",
    "mobilenetv3_small_050.lamb_in1k": "224 bicubic",
}
CHECKPOINTS = list(GROUPS)
FAST = EvalSettings(batch_size=8, workers=0)


@pytest.fixture(scope="module")
def sweep_hub(tmp_path_factory):
    cache = tmp_path_factory.mktemp("sweep-hub")
    for seed, checkpoint in enumerate(CHECKPOINTS):
        write_hub_checkpoint(cache, checkpoint, seed)
    return cache


@pytest.fixture
def offline(monkeypatch, sweep_hub):
    monkeypatch.setenv("HF_HUB_CACHE", str(sweep_hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return sweep_hub


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-val")
    make_image_folder(root, per_class=4, size=(200, 150))
    return root


def _sweep(store, images, settings=FAST, checkpoints=CHECKPOINTS, **kwargs):
    dataset = datasets.open_dataset(images)
    chosen = sweep.select(store, sweep.Selection(checkpoints=list(checkpoints)))
    return sweep.run(store, sweep.plan(store, chosen, dataset, settings), dataset, settings,
                     show_progress=False, **kwargs)


def test_sweep_results_equal_separate_evaluations_image_for_image(offline, images, catalog_store, tmp_path):
    report = _sweep(catalog_store, images)
    assert [r["status"] for r in report.results] == ["done"] * len(CHECKPOINTS)
    separate = Store(tmp_path / "separate.duckdb")
    dataset = datasets.open_dataset(images)
    uncached = EvalSettings(batch_size=8, workers=0, decoded_cache=False)
    for checkpoint in CHECKPOINTS:
        [alone] = evaluate.evaluate(separate, [checkpoint], dataset, uncached)
        [swept] = [r for r in catalog_store.table_frame("evals").to_dict("records") if r["checkpoint"] == checkpoint]
        details = json.loads(swept["details"])
        assert alone["cache_key"] == swept["cache_key"]  # same key, same row: a sweep result is an eval result
        assert alone["details"]["predictions"] == details["predictions"]
        assert (alone["top1"], alone["top5"], alone["n_images"]) == (swept["top1"], swept["top5"], swept["n_images"])
        assert alone["nll"] == pytest.approx(swept["nll"], rel=1e-6)
    pixels = {json.loads(d)["pixels_from"] for d in catalog_store.table_frame("evals")["details"]}
    assert pixels == {"decoded here", "decoded cache"}  # the fifth model of a group reads the cache


def test_each_image_is_decoded_once_per_group_and_reused_later(offline, images, catalog_store, tmp_path):
    _sweep(catalog_store, images)
    rows = {r["checkpoint"]: json.loads(r["details"]) for r in catalog_store.table_frame("evals").to_dict("records")}
    n = len(datasets.open_dataset(images))
    passes = {}  # group -> the decoding passes it took (each: the models it fed)
    for checkpoint, details in rows.items():
        if details["decoded_images"]:
            assert details["decoded_images"] == n
            passes.setdefault(GROUPS[checkpoint], set()).add(frozenset([checkpoint, *details["shared_pass_with"]]))
    assert {group: len(p) for group, p in passes.items()} == {"160 bicubic": 1, "160 bilinear": 1, "224 bicubic": 1}
    assert rows["test_vit2.r160_in1k"]["decoded_images"] == 0
    assert rows["test_vit2.r160_in1k"]["pixels_from"] == "decoded cache"
    assert len(decoded.DecodedCache().entries()) == 3
    # a later eval of the same set with a checkpoint already decoded for: no decoding at all
    other = Store(tmp_path / "later.duckdb")
    [row] = evaluate.evaluate(other, ["test_convnext.r160_in1k"], datasets.open_dataset(images), FAST)
    assert row["details"]["decoded_images"] == 0 and row["details"]["pixels_from"] == "decoded cache"
    assert row["details"]["predictions"] == rows["test_convnext.r160_in1k"]["predictions"]


def test_a_second_sweep_does_nothing_and_says_so(offline, images, catalog_store):
    _sweep(catalog_store, images, checkpoints=CHECKPOINTS[:2])
    before = catalog_store.table_frame("evals")
    command = [sys.executable, "-m", "engine", "--db", str(catalog_store.path), "sweep", "--data", str(images),
               "--checkpoints", ",".join(CHECKPOINTS[:2]), "--batch-size", "8", "--workers", "0"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "nothing to do: every checkpoint is already in the store" in done.stdout
    assert catalog_store.table_frame("evals").equals(before)


def test_kill_9_mid_sweep_then_resume_finishes_without_duplicates(offline, catalog_store, tmp_path):
    root = tmp_path / "val"
    make_image_folder(root, per_class=30, size=(300, 220))
    command = [sys.executable, "-m", "engine", "--db", str(catalog_store.path), "sweep", "--data", str(root),
               "--checkpoints", ",".join(CHECKPOINTS), "--batch-size", "4", "--workers", "0", "--json"]
    process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if Store(catalog_store.path, lock_timeout_s=30).count("evals") >= 1:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the sweep ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    partway = Store(catalog_store.path).count("evals")
    assert 1 <= partway < len(CHECKPOINTS)
    again = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    statuses = [r["status"] for r in result["results"]]
    assert statuses.count("in the store") == partway and statuses.count("done") == len(CHECKPOINTS) - partway
    evals = Store(catalog_store.path).table_frame("evals")
    assert len(evals) == len(CHECKPOINTS) and evals["checkpoint"].is_unique
    assert (evals["n_images"] == 120).all()


def test_the_decoded_cache_keeps_its_budget(offline, images, catalog_store):
    dataset = datasets.open_dataset(images)
    one_group = decoded.DecodedCache.nbytes(len(dataset), evaluate.data_config(
        evaluate.hub.pretrained_cfg("mobilenetv3_small_050.lamb_in1k")))
    budget_gb = (one_group + 1) / 1e9  # room for the largest group, not for two
    settings = EvalSettings(batch_size=8, workers=0, decoded_cache_gb=budget_gb)
    report = _sweep(catalog_store, images, settings, checkpoints=["test_vit.r160_in1k", "test_resnet.r160_in1k",
                                                                "mobilenetv3_small_050.lamb_in1k"])
    assert {r["status"] for r in report.results} == {"done"}
    cache = decoded.DecodedCache(budget_bytes=int(budget_gb * 1e9))
    assert cache.total_bytes() <= budget_gb * 1e9
    [(folder, size, _)] = cache.entries()  # the least recently used groups were evicted
    assert size >= one_group - decoded.META_ALLOWANCE
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["provenance"]["shape"][2:] == [224, 224]
    too_small = EvalSettings(batch_size=8, workers=0, decoded_cache_gb=1e-6)
    [row] = evaluate.evaluate(Store(catalog_store.path.with_name("x.duckdb")), ["test_resnet.r160_in1k"], dataset,
                              too_small)
    assert row["details"]["pixels_from"] == "decoded here"  # the set does not fit: decoded, not cached


def test_partial_entries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    root = tmp_path / "cache" / "decoded"
    dead, live = root / ".abc.1234.partial", root / ".def.5678.partial"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "images.u8").write_bytes(b"\0" * 100)
    old = time.time() - decoded.ABANDONED_AFTER_S - 60
    os.utime(dead, (old, old))
    decoded.DecodedCache(tmp_path / "cache")
    assert not dead.exists() and live.exists()


def test_failing_checkpoints_are_listed_and_the_others_go_on(offline, images, catalog_store, monkeypatch, tmp_path):
    hub = tmp_path / "hub"  # this test's own copy: it poisons one checkpoint
    shutil.copytree(offline, hub, symlinks=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    write_hub_checkpoint(hub, "test_nfnet.r160_in1k", seed=3,
                         poison=lambda sd: [v.fill_(float("nan")) for k, v in sd.items() if k.startswith("head")])
    import torch
    real_load = evaluate.hub.load_model

    class _FullGpu(torch.nn.Module):  # out of memory at any batch size, as a model too big for the GPU
        def __init__(self, model):
            super().__init__()
            self.model, self.num_classes = model, model.num_classes

        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def load(checkpoint):
        model, weights = real_load(checkpoint)
        return (_FullGpu(model) if checkpoint == "test_convnext.r160_in1k" else model), weights
    monkeypatch.setattr(evaluate.hub, "load_model", load)
    chosen = ["test_vit.r160_in1k", "test_convnext.r160_in1k", "test_nfnet.r160_in1k", "resnet50.a1_in1k",
              "vit_base_patch16_224.augreg_in21k", "test_resnet.r160_in1k"]
    report = _sweep(catalog_store, images, checkpoints=chosen)
    by = {r["checkpoint"]: r for r in report.results}
    assert by["test_vit.r160_in1k"]["status"] == by["test_resnet.r160_in1k"]["status"] == "done"
    assert "out of memory at batch size 1" in by["test_convnext.r160_in1k"]["error"]
    assert "non-finite logits" in by["test_nfnet.r160_in1k"]["error"]
    assert "not in the local Hub cache" in by["resnet50.a1_in1k"]["error"]
    assert by["vit_base_patch16_224.augreg_in21k"]["status"] == "skip"
    assert "ImageNet-21k head" in by["vit_base_patch16_224.augreg_in21k"]["error"]
    assert sorted(catalog_store.table_frame("evals")["checkpoint"]) == ["test_resnet.r160_in1k", "test_vit.r160_in1k"]


def _damage(folder):
    """A truncated JPEG, a zero-byte file and a text file named .JPEG among good images."""
    good = sorted((folder / "n01440764").iterdir())[0]
    (folder / "n01440764" / "truncated.JPEG").write_bytes(good.read_bytes()[:400])
    (folder / "n01443537" / "empty.JPEG").write_bytes(b"")
    (folder / "n01484850" / "notes.JPEG").write_text("not an image")
    return ["truncated.JPEG", "empty.JPEG", "notes.JPEG"]


def test_undecodable_images_are_skipped_counted_and_listed_in_eval_and_sweep(offline, images, catalog_store, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(images, damaged)
    names = _damage(damaged)
    clean = evaluate.evaluate(Store(tmp_path / "clean.duckdb"), ["test_vit.r160_in1k"],
                              datasets.open_dataset(images), FAST)[0]
    [row] = evaluate.evaluate(Store(tmp_path / "eval.duckdb"), ["test_vit.r160_in1k"],
                              datasets.open_dataset(damaged), FAST)
    assert row["n_images"] == clean["n_images"] and row["details"]["skipped_images"] == 3
    assert sorted(p.split(":")[0].rsplit("/", 1)[-1] for p in row["details"]["skipped_paths"]) == sorted(names)
    assert row["details"]["predictions"] == clean["details"]["predictions"]
    report = _sweep(catalog_store, damaged, checkpoints=["test_vit.r160_in1k", "test_vit2.r160_in1k",
                                                       "test_convnext.r160_in1k", "test_efficientnet.r160_in1k",
                                                       "test_nfnet.r160_in1k"])
    assert {r["skipped_images"] for r in report.results} == {3}  # the cached pixels keep the list too
    done = subprocess.run([sys.executable, "-m", "engine", "--db", str(tmp_path / "cli.duckdb"), "eval",
                           "test_vit.r160_in1k", "--data", str(damaged), "--batch-size", "8", "--workers", "1"],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "3 images could not be decoded" in done.stdout
    as_json = subprocess.run([sys.executable, "-m", "engine", "--db", str(tmp_path / "cli.duckdb"), "eval",
                              "test_vit.r160_in1k", "--data", str(damaged), "--json"],
                             cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    [result] = json.loads(as_json.stdout)  # what the plain output says, the JSON says too (issue 21)
    assert result["skipped_images"] == 3 and sorted(p.split(":")[0].rsplit("/", 1)[-1]
                                                   for p in result["skipped_paths"]) == sorted(names)


def test_strict_fails_on_the_first_undecodable_image_and_stores_nothing(offline, images, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(images, damaged)
    _damage(damaged)
    strict = EvalSettings(batch_size=8, workers=0, strict=True)
    store = Store(tmp_path / "strict.duckdb")
    with pytest.raises(evaluate.EvalError, match="truncated.JPEG cannot be decoded"):
        evaluate.evaluate(store, ["test_vit.r160_in1k"], datasets.open_dataset(damaged), strict)
    evaluate.evaluate(store, ["test_vit.r160_in1k"], datasets.open_dataset(damaged), FAST)  # fills the cache
    with pytest.raises(evaluate.EvalError, match="--strict stops at the first"):  # the cached pixels keep the list
        evaluate.evaluate(store, ["test_vit2.r160_in1k"], datasets.open_dataset(damaged), strict)
    assert list(store.table_frame("evals")["checkpoint"]) == ["test_vit.r160_in1k"]
    done = subprocess.run([sys.executable, "-m", "engine", "--db", str(tmp_path / "cli.duckdb"), "eval",
                           "test_convnext.r160_in1k", "--data", str(damaged), "--strict", "--workers", "0"],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 2 and "cannot be decoded" in done.stderr and "Traceback" not in done.stderr


def test_hidden_files_and_folders_are_ignored_and_the_file_rule_is_stated(tmp_path):
    root = tmp_path / "val"
    make_image_folder(root, synsets=("n01440764", "n01443537"), per_class=2, size=(64, 48))
    junk = root / ".ipynb_checkpoints"  # a notebook's folder beside the classes: not a class
    junk.mkdir()
    (junk / "copy.jpg").write_bytes((root / "n01440764" / "n01440764_0.JPEG").read_bytes())
    (root / "n01440764" / "._n01440764_0.JPEG").write_bytes(b"\0\5\x16\7 AppleDouble")
    (root / "n01443537" / ".DS_Store").write_bytes(b"junk")
    from PIL import Image
    Image.new("RGB", (64, 48)).save(root / "n01443537" / "extra.webp")
    nested = root / "n01443537" / "n01484850"
    nested.mkdir()
    Image.new("RGB", (64, 48)).save(nested / "deep.png")
    ours = datasets.open_dataset(root)
    assert len(ours) == 6 and datasets.extension_counts(ours.files) == {".JPEG": 4, ".webp": 1, ".png": 1}
    assert ours.targets[ours.files.index(nested / "deep.png")] == datasets.imagenet_synsets()["n01443537"]
    timm_rule = datasets.open_dataset(root, file_rule="timm")  # as timm's folder reader: no .webp, leaf labels
    assert datasets.extension_counts(timm_rule.files) == {".JPEG": 4, ".png": 1}
    assert timm_rule.targets[timm_rule.files.index(nested / "deep.png")] == datasets.imagenet_synsets()["n01484850"]
    (root / "n01443537" / "misc").mkdir()
    Image.new("RGB", (64, 48)).save(root / "n01443537" / "misc" / "x.jpg")
    with pytest.raises(datasets.DatasetError, match="misc"):
        datasets.open_dataset(root, file_rule="timm")
    done = subprocess.run([sys.executable, "-m", "engine", "--db", str(tmp_path / "m.duckdb"), "sweep", "--data",
                           str(root), "--checkpoints", "test_vit.r160_in1k", "--dry-run"],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    assert "7 images in" in done.stderr and "file rule: matchup" in done.stderr and ".webp" in done.stderr


def test_dry_run_numbers_add_up_and_spend_nothing(offline, images, catalog_store, tmp_path):
    dataset = datasets.open_dataset(images)
    chosen = CHECKPOINTS + ["vit_base_patch16_224.augreg_in21k"]
    command = [sys.executable, "-m", "engine", "--db", str(catalog_store.path), "sweep", "--data", str(images),
               "--checkpoints", ",".join(chosen), "--dry-run", "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    compute = catalog_store.eval_compute().set_index("checkpoint")["flops"]
    assert plan["n_images"] == len(dataset) == 16
    assert plan["total_flops"] == pytest.approx(sum(compute[c] for c in CHECKPOINTS) * len(dataset))
    assert plan["estimated_seconds"] == pytest.approx(sum(c["seconds"] for c in plan["checkpoints"] if c["seconds"]))
    assert sorted(len(g["checkpoints"]) for g in plan["groups"]) == [1, 1, 5]
    assert sum(g["decoded_bytes"] for g in plan["groups"]) == plan["decoded_cache_bytes"] == 16 * 3 * (
        2 * 160 * 160 + 224 * 224) + 3 * decoded.META_ALLOWANCE
    assert all(c["estimate_source"] for c in plan["checkpoints"] if c["status"] == "to run")
    assert plan["download_bytes"] == 0  # every checkpoint is in the Hub cache
    [skipped] = [c for c in plan["checkpoints"] if c["status"] == "skip"]
    assert "ImageNet-21k head" in skipped["reason"]
    assert catalog_store.count("evals") == 0 and not decoded.DecodedCache().entries()


def test_dry_run_for_another_device_without_data(offline, catalog_store):
    chosen = ["resnet50.a1_in1k", "convnext_tiny.fb_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k"]
    settings = EvalSettings(precision="bf16")
    plan = sweep.plan(catalog_store, chosen, None, settings, n_images=50_000, estimate_for="NVIDIA H100 80GB HBM3")
    assert plan.device == "NVIDIA H100 80GB HBM3" and plan.n_images == 50_000
    assert {c["estimate_source"] for c in plan.checkpoints} == {"counted FLOPs at 40% of h100 peak"}
    resnet = next(c for c in plan.checkpoints if c["checkpoint"] == "resnet50.a1_in1k")
    assert resnet["seconds"] == pytest.approx(50_000 * resnet["gflops"] * 1e9 / (989e12 * 0.4))
    assert plan.download_bytes > 4 * 80e6  # none of them is cached: fp32 size from counted parameters
    assert plan.decoded_cache_peak_bytes == decoded.DecodedCache.nbytes(50_000, {"input_size": (3, 288, 288)})


def test_checkpoints_whose_weights_are_not_on_the_hub_are_skipped_not_crashed(offline, images, catalog_store):
    plan = sweep.plan(catalog_store, ["gcvit_tiny.in1k", "test_vit.r160_in1k"], datasets.open_dataset(images), FAST)
    skipped, kept = plan.checkpoints
    assert skipped["status"] == "skip" and "no Hugging Face Hub repo" in skipped["reason"]
    assert kept["status"] == "to run"
    with pytest.raises(evaluate.hub.HubError, match="no Hugging Face Hub repo"):
        evaluate.evaluate(catalog_store, ["gcvit_tiny.in1k"], datasets.open_dataset(images), FAST)


@pytest.mark.parametrize("selection, message", [
    (sweep.Selection(classes=["Transformer"]), "--class Transformer is not one of"),
    (sweep.Selection(max_gflops=0), "--max-gflops must be a positive number"),
    (sweep.Selection(checkpoints=["resnet50.not_a_tag"]), "is not a pretrained checkpoint"),
    (sweep.Selection(from_file="/no/such/list.txt"), "cannot be read (No such file"),
    (sweep.Selection(classes=["ViT"], max_params_m=0.001), "No checkpoint matches"),
])
def test_bad_selections_are_refused_with_what_to_change(selection, message, catalog_store):
    with pytest.raises(Exception) as err:
        sweep.select(catalog_store, selection)
    assert message in str(err.value)


def test_selection_filters_match_the_run_page(catalog_store, tmp_path):
    chosen = sweep.select(catalog_store, sweep.Selection(classes=["ConvNet"], families=["resnet"], max_gflops=4.0))
    costs = catalog_store.eval_compute().set_index("checkpoint")["flops"]
    assert len(chosen) >= 3 and all(c.startswith("resnet") and costs[c] <= 4e9 for c in chosen)
    listed = tmp_path / "list.txt"
    listed.write_text("# two of them\ntest_vit.r160_in1k\nresnet18.a1_in1k  # a comment\n")
    assert sweep.select(catalog_store, sweep.Selection(from_file=str(listed))) == ["test_vit.r160_in1k", "resnet18.a1_in1k"]


def test_a_dry_run_plans_the_wall_time_on_a_cluster_keeping_groups_on_one_node(offline, catalog_store):
    """Issue 37 (planning): largest first, a preprocessing group on one node, its checkpoints over
    that node's GPUs; the decoded-cache disk each node needs."""
    def row(name, seconds):
        return {"checkpoint": name, "status": "to run", "seconds": seconds}
    checkpoints = [row("a1", 40), row("a2", 30), row("a3", 20), row("b1", 50), row("c1", 10), row("c2", 10),
                   {"checkpoint": "d1", "status": "to run", "seconds": None}]
    groups = [{"group": "A", "checkpoints": ["a1", "a2", "a3"], "decoded_bytes": 300, "decoded_cache": "to write"},
              {"group": "B", "checkpoints": ["b1"], "decoded_bytes": 200, "decoded_cache": "to write"},
              {"group": "C", "checkpoints": ["c1", "c2", "d1"], "decoded_bytes": 100, "decoded_cache": "cached"}]
    the_plan = sweep.Plan("H100", "bf16", 1000, checkpoints, groups, estimated_seconds=160, unestimated=["d1"])
    one = sweep.cluster_schedule(the_plan, 1, 1)
    assert one["wall_seconds"] == 160 and one["per_node"][0]["decoded_cache_bytes"] == 500
    two = sweep.cluster_schedule(the_plan, 2, 2)
    # A (90 s) first: node 0, GPUs 40 | 30+20; B (50 s): node 1; C (20 s): node 1, 50 | 10+10
    assert two["wall_seconds"] == 50 and [n["groups"] for n in two["per_node"]] == [["A"], ["B", "C"]]
    assert [n["decoded_cache_bytes"] for n in two["per_node"]] == [300, 200]  # C's entry is already cached
    assert two["decoded_cache_bytes_per_node_max"] == 300 and two["unestimated"] == ["d1"]
    many = sweep.cluster_schedule(the_plan, 8, 8)
    assert many["wall_seconds"] == 50  # the largest checkpoint bounds it: a group is never split across nodes


def test_the_cluster_plan_from_the_command_line(offline, catalog_store):
    args = ["sweep", "--checkpoints",
            "resnet50.a1_in1k,convnext_tiny.fb_in1k,vit_base_patch16_224.augreg2_in21k_ft_in1k", "--dry-run",
            "--images", "50000", "--estimate-for", "H100", "--precision", "bf16"]
    single = json.loads(run_cli(*args, "--json", db=catalog_store.path).stdout)
    done = run_cli(*args, "--nodes", "2", "--gpus-per-node", "2", "--json", db=catalog_store.path)
    assert done.returncode == 0, done.stderr
    cluster = json.loads(done.stdout)["cluster"]
    seconds = sorted((c["seconds"] for c in single["checkpoints"]), reverse=True)
    assert cluster["one_gpu_seconds"] == pytest.approx(sum(seconds))
    assert cluster["wall_seconds"] == pytest.approx(seconds[0])  # three groups on four GPUs: the largest alone
    refused = run_cli("sweep", "--checkpoints", "resnet50.a1_in1k", "--nodes", "2", "--data", ".",
                      db=catalog_store.path)
    assert refused.returncode == 2 and "use them with --dry-run" in refused.stderr
