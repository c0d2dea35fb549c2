import json

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from timm.data import create_transform, resolve_data_config

from engine.catalog import hub
from engine.catalog.hub import HubError
from engine.measure import datasets, eval_batches, evaluate
from engine.measure.datasets import DatasetError
from engine.measure.evaluate import EvalCancelled, EvalError, EvalSettings
from tests.conftest import SYNSETS, TINY_CHECKPOINTS, make_image_folder, run_cli, write_hub_checkpoint

FAST = EvalSettings(batch_size=5, workers=0)


def independent_predictions(checkpoint, cache, files, subset=None):
    """timm's own transform and a plain loop: the reference the engine must equal."""
    model = timm.create_model(checkpoint.split(".")[0], pretrained=False,
                              pretrained_cfg=timm.models.get_pretrained_cfg(checkpoint)).eval()
    snapshot = next((cache / f"models--timm--{checkpoint}" / "snapshots").iterdir())
    model.load_state_dict(load_file(str(snapshot / "model.safetensors")))
    transform = create_transform(**resolve_data_config(model=model, use_test_size=True))
    top1, top5 = [], []
    with torch.inference_mode():
        for path in files:
            logits = model(transform(Image.open(path).convert("RGB"))[None])[0]
            if subset is not None:
                logits = logits[subset]
            top1.append(int(logits.argmax()))
            top5.append(logits.topk(5).indices.tolist())
    return top1, top5


def test_engine_accuracy_equals_an_independent_timm_loop(offline_hub, image_folder, store):
    dataset = datasets.open_dataset(image_folder)
    targets = [SYNSETS.index(p.parent.name) for p in dataset.files]
    targets = [datasets.imagenet_synsets()[SYNSETS[t]] for t in targets]
    rows = evaluate.evaluate(store, list(TINY_CHECKPOINTS), dataset, FAST)
    for checkpoint, row in zip(TINY_CHECKPOINTS, rows):
        top1, top5 = independent_predictions(checkpoint, offline_hub, dataset.files)
        assert row["details"]["predictions"] == top1
        assert row["top1"] == pytest.approx(100 * sum(p == t for p, t in zip(top1, targets)) / len(targets))
        assert row["top5"] == pytest.approx(100 * sum(t in p for p, t in zip(top5, targets)) / len(targets))
        assert row["n_images"] == 12 and row["cached"] is False
        assert row["hub_revision"] == (offline_hub / f"models--timm--{checkpoint}" / "refs" / "main").read_text()
        assert 0 <= row["ece"] <= 1 and row["nll"] > 0
        assert sum(row["details"]["per_class_total"]) == 12


def test_checkpoints_with_the_same_preprocessing_share_one_decoding_pass(offline_hub, image_folder, store):
    rows = evaluate.evaluate(store, ["test_vit.r160_in1k", "test_convnext.r160_in1k", "test_resnet.r160_in1k"],
                             datasets.open_dataset(image_folder), FAST)
    assert rows[0]["details"]["shared_pass_with"] == ["test_convnext.r160_in1k"]  # same transform
    assert rows[2]["details"]["shared_pass_with"] == []  # bilinear: a pass of its own


@pytest.mark.parametrize("checkpoint", [
    *TINY_CHECKPOINTS, "convnext_base.fb_in22k_ft_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k",
    "efficientnet_b3.ra2_in1k", "deit3_base_patch16_224.fb_in22k_ft_in1k", "resnet50.tv_in1k",
])
def test_preprocessing_is_what_validate_py_builds_for_each_checkpoint(checkpoint):
    cfg = timm.models.get_pretrained_cfg(checkpoint)
    with torch.device("meta"):
        model = timm.create_model(checkpoint, pretrained=False)
    validate_args = {"img_size": None, "input_size": None, "crop_pct": None, "crop_mode": None,
                     "interpolation": "", "mean": None, "std": None}  # validate.py's defaults
    expected = resolve_data_config(validate_args, model=model, use_test_size=True)
    ours = evaluate.data_config(cfg)
    assert ours == expected
    test_size = cfg.test_input_size or cfg.input_size
    assert ours["input_size"] == test_size
    assert ours["crop_pct"] == (cfg.test_crop_pct or cfg.crop_pct)
    assert ours["interpolation"] == cfg.interpolation
    assert str(eval_batches.make_transform(ours)) == str(create_transform(
        ours["input_size"], is_training=False, use_prefetcher=True, interpolation=ours["interpolation"],
        mean=ours["mean"], std=ours["std"], crop_pct=ours["crop_pct"], crop_mode=ours["crop_mode"]))


def test_imagenet_a_slices_logits_to_its_200_classes(offline_hub, tmp_path, store):
    subset = datasets.class_subset("imagenet-a")
    synsets = list(datasets.imagenet_synsets())
    chosen = [synsets[subset[0]], synsets[subset[57]], synsets[subset[199]]]
    make_image_folder(tmp_path / "a", synsets=chosen, per_class=2)
    dataset = datasets.open_dataset(tmp_path / "a", variant="imagenet-a")
    assert dataset.num_classes == 200
    assert dataset.subset_targets() == [0, 0, 57, 57, 199, 199]
    [row] = evaluate.evaluate(store, ["test_convnext.r160_in1k"], dataset, FAST)
    top1, _ = independent_predictions("test_convnext.r160_in1k", offline_hub, dataset.files, subset)
    assert row["details"]["predictions"] == top1   # indices into the 200 kept classes
    assert len(row["details"]["per_class_total"]) == 200
    not_in_r = next(i for i in range(1000) if i not in set(datasets.class_subset("imagenet-r")))
    make_image_folder(tmp_path / "outside", synsets=[synsets[not_in_r]], per_class=1)
    with pytest.raises(DatasetError, match="outside the 200 classes of imagenet-r"):
        datasets.open_dataset(tmp_path / "outside", variant="imagenet-r")


def test_second_request_is_a_cache_hit_without_loading_the_model(offline_hub, image_folder, store):
    dataset = datasets.open_dataset(image_folder)
    [first] = evaluate.evaluate(store, ["test_vit.r160_in1k"], dataset, FAST)
    weights = hub.resolve("test_vit.r160_in1k").path
    original = weights.read_bytes()
    weights.write_bytes(b"not loadable")  # a cache hit must not touch the weights
    try:
        [again] = evaluate.evaluate(store, ["test_vit.r160_in1k"], dataset, FAST)
        assert again["cached"] is True and again["cache_key"] == first["cache_key"]
        with pytest.raises(HubError, match="corrupt"):
            evaluate.evaluate(store, ["test_vit.r160_in1k"], dataset, FAST, force=True)
    finally:
        weights.write_bytes(original)
    assert store.count("evals") == 1


def test_changed_dataset_is_a_cache_miss(offline_hub, tmp_path, store):
    make_image_folder(tmp_path / "val", per_class=2)
    [first] = evaluate.evaluate(store, ["test_resnet.r160_in1k"], datasets.open_dataset(tmp_path / "val"), FAST)
    make_image_folder(tmp_path / "val", synsets=SYNSETS[:1], per_class=3, seed=5)  # one more image
    [second] = evaluate.evaluate(store, ["test_resnet.r160_in1k"], datasets.open_dataset(tmp_path / "val"), FAST)
    assert second["cached"] is False and second["cache_key"] != first["cache_key"]
    assert (first["n_images"], second["n_images"]) == (8, 9)


def test_flat_folder_with_a_labels_file(offline_hub, tmp_path, store):
    files = make_image_folder(tmp_path / "flat", synsets=SYNSETS[:2], per_class=2, flat=True)
    (tmp_path / "labels.csv").write_text("filename,label\n" + "".join(
        f"{p.name},{SYNSETS[0] if i < 2 else 391}\n" for i, p in enumerate(files)))
    dataset = datasets.open_dataset(tmp_path / "flat", labels=tmp_path / "labels.csv")
    assert sorted(dataset.targets) == [0, 0, 391, 391]
    (tmp_path / "labels.txt").write_text("".join(f"{p.name} 7\n" for p in files[:3]))
    with pytest.raises(DatasetError, match="have no label"):
        datasets.open_dataset(tmp_path / "flat", labels=tmp_path / "labels.txt")


def test_real_labels_score_against_the_multi_label_sets(offline_hub, tmp_path, store):
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (2, 3, 5, 6)]
    make_image_folder(tmp_path / "real", synsets=SYNSETS[:2], per_class=2, flat=True, names=list(names))
    dataset = datasets.open_dataset(tmp_path / "real", variant="real")
    table = json.loads((__import__("importlib").resources.files("timm.data") / "_info" /
                        "imagenet_real_labels.json").read_text())
    real = [table[int(p.name[15:23]) - 1] for p in dataset.files]
    [row] = evaluate.evaluate(store, ["test_vit.r160_in1k"], dataset, FAST)
    top1, top5 = independent_predictions("test_vit.r160_in1k", offline_hub, dataset.files)
    scored = [(p, t5, r) for p, t5, r in zip(top1, top5, real) if r]
    assert row["details"]["real_n_images"] == len(scored)
    assert row["top1"] == pytest.approx(100 * sum(p in r for p, _, r in scored) / len(scored))
    assert row["top5"] == pytest.approx(100 * sum(any(t in r for t in t5) for _, t5, r in scored) / len(scored))


# -- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("number", [0, 50_001, 99_999_999])
def test_real_file_numbers_outside_the_table_are_refused_with_the_file_named(tmp_path, number):
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (2, number)]
    make_image_folder(tmp_path / "real", synsets=SYNSETS[:1], per_class=2, flat=True, names=list(names))
    with pytest.raises(DatasetError) as err:
        datasets.open_dataset(tmp_path / "real", variant="real")
    assert f"ILSVRC2012_val_{number:08d}.JPEG" in str(err.value) and "1 to 50000" in str(err.value)


def test_unknown_checkpoint_suggests_close_names():
    with pytest.raises(HubError) as err:
        hub.pretrained_cfg("test_vit.r16_in1k")
    assert "test_vit.r160_in1k" in str(err.value)


def test_offline_and_not_cached_names_the_missing_files(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError) as err:
        hub.load_model("test_vit.r160_in1k")
    message = str(err.value)
    assert "HF_HUB_OFFLINE is set" in message and "model.safetensors" in message
    assert "hf download timm/test_vit.r160_in1k" in message


def test_corrupt_weights_file_is_named_and_not_used(monkeypatch, tmp_path):
    cache = tmp_path / "hub"
    write_hub_checkpoint(cache, "test_resnet.r160_in1k")
    path = next(cache.rglob("model.safetensors"))
    path.write_bytes(path.read_bytes()[:200])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError) as err:
        hub.load_model("test_resnet.r160_in1k")
    assert str(path) in str(err.value) and "corrupt" in str(err.value)


class _FakeHub:
    """A loopback stand-in for the Hub's HTTP error responses (huggingface_hub maps them)."""

    def __init__(self, status: int, code: str):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Length", "0")
                self.end_headers()
            do_HEAD = do_GET = _answer

            def log_message(self, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.mark.parametrize("status,code,expected", [
    (401, "GatedRepo", "accept its licence"),
    (404, "RepoNotFound", "The Hub has no repo timm/test_vit.r160_in1k"),
])
def test_gated_and_missing_repos_say_what_to_do(monkeypatch, tmp_path, status, code, expected):
    fake = _FakeHub(status, code)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    try:
        with pytest.raises(HubError) as err:
            hub.resolve("test_vit.r160_in1k")
    finally:
        fake.server.shutdown()
    assert expected in str(err.value)
    if code == "GatedRepo":
        assert "HF_TOKEN" in str(err.value)


def test_non_finite_logits_fail_the_run_and_store_nothing(monkeypatch, tmp_path, image_folder, store):
    cache = tmp_path / "hub"
    write_hub_checkpoint(cache, "test_resnet.r160_in1k", poison=lambda sd: sd["fc.weight"].fill_(float("nan")))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EvalError, match="non-finite logits") as err:
        evaluate.evaluate(store, ["test_resnet.r160_in1k"], datasets.open_dataset(image_folder), FAST)
    assert store.count("evals") == 0
    assert "Try --precision fp32" not in str(err.value) and "weights file" in str(err.value)  # it is fp32


def test_a_head_that_does_not_fit_names_the_tensor_and_shapes(monkeypatch, tmp_path):
    import safetensors.torch
    cache = tmp_path / "hub"
    write_hub_checkpoint(cache, "test_resnet.r160_in1k")
    path = next(cache.rglob("model.safetensors"))
    state = safetensors.torch.load_file(str(path))
    state["fc.weight"] = torch.zeros(10, state["fc.weight"].shape[1])  # a 10-class head in a 1k checkpoint
    state["fc.bias"] = torch.zeros(10)
    safetensors.torch.save_file(state, str(path))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError) as err:
        hub.load_model("test_resnet.r160_in1k")
    assert "size mismatch for fc.weight" in str(err.value) and "[10, " in str(err.value) and "[1000, " in str(err.value)


def test_hub_cache_refs_pointing_outside_the_cache_get_a_plain_message(monkeypatch, tmp_path):
    cache = tmp_path / "hub"
    write_hub_checkpoint(cache, "test_vit.r160_in1k")
    (cache / "models--timm--test_vit.r160_in1k" / "refs" / "main").write_text("../../../../../../etc")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="refs point outside the cache") as err:
        hub.resolve("test_vit.r160_in1k")
    assert "models--timm--test_vit.r160_in1k" in str(err.value)


def test_head_that_does_not_predict_imagenet_1k_is_refused(image_folder):
    cfg = timm.models.get_pretrained_cfg("vit_base_patch16_224.augreg_in21k")
    model = timm.create_model("test_vit", pretrained=False, num_classes=cfg.num_classes)
    with pytest.raises(EvalError, match="ImageNet-21k head"):
        evaluate.check_head("vit_base_patch16_224.augreg_in21k", cfg, model, datasets.open_dataset(image_folder))
    headless = timm.create_model("test_vit", pretrained=False, num_classes=0)
    with pytest.raises(EvalError, match="feature extractor"):
        evaluate.check_head("x", cfg, headless, datasets.open_dataset(image_folder))


class _OutOfMemoryPast(torch.nn.Module):
    """Runs like a linear layer but, like a full GPU, fails on batches larger than `limit`."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.linear = limit, torch.nn.Linear(4, 3)

    def forward(self, x):
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.linear(x)


def test_out_of_memory_halves_the_batch_and_gives_the_same_logits():
    model, images, chunk = _OutOfMemoryPast(limit=3), torch.randn(10, 4), [10]
    logits = evaluate._forward(model, images, chunk)
    assert chunk == [2]
    assert torch.allclose(logits, model.linear(images))


def test_cancel_stops_the_run_and_stores_nothing(offline_hub, image_folder, store):
    seen = []
    with pytest.raises(EvalCancelled):
        evaluate.evaluate(store, ["test_vit.r160_in1k"], datasets.open_dataset(image_folder), FAST,
                          progress=seen.append, cancel=lambda: len(seen) >= 1)
    assert seen[0]["done"] == 5 and seen[0]["total"] == 12
    assert store.count("evals") == 0


def test_bad_dataset_paths_and_variants_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="is not a folder"):
        datasets.open_dataset(tmp_path / "nope")
    make_image_folder(tmp_path / "flat", flat=True, per_class=1)
    with pytest.raises(DatasetError, match="--labels FILE"):
        datasets.open_dataset(tmp_path / "flat")
    with pytest.raises(DatasetError, match="Unknown variant"):
        datasets.open_dataset(tmp_path / "flat", variant="imagenet-z")
    (tmp_path / "bad" / "not_a_synset").mkdir(parents=True)
    with pytest.raises(DatasetError, match="neither an ImageNet-1k synset"):
        datasets.open_dataset(tmp_path / "bad")


def test_eval_cli_runs_offline_and_reports_json(offline_hub, image_folder, tmp_path):
    db = tmp_path / "m.duckdb"
    done = run_cli("eval", "test_vit.r160_in1k", "--data", str(image_folder), "--limit", "6",
                   "--batch-size", "4", "--workers", "1", "--json", db=db)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert row["n_images"] == 6 and row["cached"] is False
    again = run_cli("eval", "test_vit.r160_in1k", "--data", str(image_folder), "--limit", "6", "--json", db=db)
    assert json.loads(again.stdout)[0]["cached"] is True
    missing = run_cli("eval", "test_vit.r16_in1k", "--data", str(image_folder), db=db)
    assert missing.returncode == 2 and "Did you mean" in missing.stderr and "Traceback" not in missing.stderr


def test_hugging_face_dataset_through_timms_reader(offline_hub, tmp_path, monkeypatch, store):
    hf = pytest.importorskip("datasets")
    import numpy as np
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (120, 150, 3), dtype=np.uint8)) for _ in range(4)]
    labels = [0, 1, 391, 0]
    files = []
    for i, image in enumerate(images):  # the same pixels as files, for the independent loop
        files.append(tmp_path / f"{i}.png")
        image.save(files[-1])
    features = hf.Features({"image": hf.Image(), "label": hf.ClassLabel(num_classes=1000)})
    (tmp_path / "ds" / "data").mkdir(parents=True)
    hf.Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(
        str(tmp_path / "ds" / "data" / "validation-00000-of-00001.parquet"))
    dataset = datasets.open_dataset(f"hfds/{tmp_path / 'ds'}:validation")
    assert dataset.targets == labels
    [row] = evaluate.evaluate(store, ["test_vit.r160_in1k"], dataset, FAST)
    top1, _ = independent_predictions("test_vit.r160_in1k", offline_hub, files)
    assert row["details"]["predictions"] == top1 and row["n_images"] == 4


def test_hugging_face_dataset_without_the_package_says_how_to_install(tmp_path):
    import subprocess
    import sys
    from tests.conftest import ROOT
    code = ("import sys; sys.modules['datasets'] = None\n"
            "from engine.measure import datasets\n"
            "try:\n    datasets.open_dataset('hfds/imagenet-1k')\n"
            "except datasets.DatasetError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "needs the optional package 'datasets'" in done.stdout and "pip install datasets" in done.stdout
