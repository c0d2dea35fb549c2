"""Zero-shot classification of image-text checkpoints: fidelity to CLIP Benchmark, the text cache,
bad input. A tiny seeded CLIP in a temporary Hub cache (conftest.write_open_clip_checkpoint)."""
import json
import shutil

import pytest

from engine.catalog import image_text
from engine.measure import evaluate, zeroshot
from tests.conftest import TINY_CLIP_REPO, make_image_folder, run_cli

TINY = f"open_clip:hf-hub:{TINY_CLIP_REPO}"
CLASSES = ("cat", "dog", "golden_retriever")
SETTINGS = evaluate.EvalSettings(workers=0, batch_size=5)


def colour_folder(root, per_class=4, seed=0):
    """Noisy red, green and blue JPEGs, one folder per class: the tiny model tells them apart."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    for colour, name in zip(((220, 40, 40), (40, 200, 60), (50, 60, 220)), CLASSES, strict=True):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.array(colour)[None, None, :] * rng.uniform(0.5, 1.2) + rng.normal(0, 40, (48, 64, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(root / name / f"{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    return colour_folder(tmp_path_factory.mktemp("pets"))


def test_predictions_equal_clip_benchmark_image_by_image(offline_clip_hub, class_folder, store, tmp_path):
    import open_clip
    import torch
    import torchvision
    from clip_benchmark.metrics import zeroshot_classification as cb
    from sklearn.metrics import balanced_accuracy_score
    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of a {c}.\na blurry photo of a {c}.\nart of the {c}.\n")
    dataset = zeroshot.open_folder(class_folder)
    [row] = zeroshot.zeroshot(store, [TINY], dataset, templates=str(templates), settings=SETTINGS)
    ours = row["details"]["predictions"]

    snapshot = next((offline_clip_hub / f"models--{TINY_CLIP_REPO.replace('/', '--')}" / "snapshots").iterdir())
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{snapshot}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{snapshot}")
    classnames = [c.replace("_", " ") for c in CLASSES]
    classifier = cb.zero_shot_classifier(model.eval(), tokenizer, classnames,
                                         templates.read_text().splitlines(), "cpu", amp=False)
    images = torchvision.datasets.ImageFolder(str(class_folder), transform=preprocess)
    logits, true = cb.run_classification(model, classifier, torch.utils.data.DataLoader(images, batch_size=5),
                                         "cpu", amp=False)
    theirs = logits.argmax(dim=1).tolist()
    assert [str(p) for p in dataset.files] == [p for p, _ in images.samples]
    assert len(set(theirs)) > 1          # a model that predicts one class would prove little
    assert ours == theirs
    assert row["top1"] == pytest.approx(100 * (logits.argmax(dim=1) == true).float().mean().item())
    assert row["balanced_accuracy"] == pytest.approx(100 * balanced_accuracy_score(true, theirs))
    assert row["classnames"] == classnames and row["n_classes"] == 3


def test_prompts_encoded_once_then_cached_for_new_images(offline_clip_hub, class_folder, store, tmp_path):
    first = zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(class_folder), settings=SETTINGS)[0]
    assert first["details"]["text_embeddings"] == "encoded" and first["templates_name"] == zeroshot.DEFAULT_TEMPLATES
    cached = list(zeroshot.text_cache_dir().glob("*.pt"))
    assert len(cached) == 1
    before = cached[0].stat().st_mtime_ns
    other = tmp_path / "more"
    colour_folder(other, per_class=2, seed=7)
    second = zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(other), settings=SETTINGS)[0]
    assert second["details"]["text_embeddings"] == "cached" and not second["cached"]
    assert cached[0].stat().st_mtime_ns == before and len(list(zeroshot.text_cache_dir().glob("*.pt"))) == 1
    # the same run again is a stored result; other templates are another measurement
    assert zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(other), settings=SETTINGS)[0]["cached"]
    third = zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(other), templates="imagenet1k", settings=SETTINGS)[0]
    assert not third["cached"] and third["details"]["text_embeddings"] == "encoded"
    # an edited cache entry is a miss, never a wrong classifier
    for path in zeroshot.text_cache_dir().glob("*.pt"):
        path.write_bytes(path.read_bytes()[:-64] + bytes(64))
    again = zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(other), settings=SETTINGS, force=True)[0]
    assert again["details"]["text_embeddings"] == "encoded" and again["top1"] == second["top1"]


def test_synset_folders_are_scored_among_the_1000_imagenet_classes(offline_clip_hub, image_folder, store):
    dataset = zeroshot.open_folder(image_folder)
    assert dataset.num_classes == 1000 and dataset.imagenet and dataset.classnames[0] == "tench"
    assert dataset.targets[0] == 0 and dataset.zeroshot_id == image_folder.name  # a subset: not `imagenet1k`
    assert zeroshot.resolve_templates(None, True)[0] == "imagenet1k"
    assert len(zeroshot.resolve_templates(None, True)[1]) == 80


def test_cli_json_rows_are_named_like_eval(offline_clip_hub, class_folder, tmp_path):
    db = tmp_path / "cli.duckdb"
    out = run_cli("zeroshot", TINY, "--data", str(class_folder), "--workers", "0", "--json", db=db)
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert {"top1", "top5", "balanced_accuracy", "n_images", "n_classes"} <= set(row)
    assert row["n_images"] == 12 and row["n_classes"] == 3 and 0 <= row["top1"] <= 100


# -- bad input ---------------------------------------------------------------------------------------
def test_class_names_empty_or_duplicated_after_normalisation_are_refused(tmp_path):
    make_image_folder(tmp_path / "a", synsets=("Golden_Retriever", "golden  retriever"), per_class=1, size=(8, 8))
    with pytest.raises(zeroshot.ZeroShotError, match="same name after normalisation"):
        zeroshot.open_folder(tmp_path / "a")
    make_image_folder(tmp_path / "b", synsets=("cat", "__"), per_class=1, size=(8, 8))
    with pytest.raises(zeroshot.ZeroShotError, match="empty name"):
        zeroshot.open_folder(tmp_path / "b")
    names = tmp_path / "names.txt"
    names.write_text("a cat\n\n")
    with pytest.raises(zeroshot.ZeroShotError, match="has 1 names but there are 2"):
        zeroshot.open_folder(tmp_path / "b", classnames=names)
    names.write_text("a cat\nA  Cat\n")
    with pytest.raises(zeroshot.ZeroShotError, match="same name"):
        zeroshot.open_folder(tmp_path / "b", classnames=names)
    names.write_text("a cat\na dog\n")
    assert zeroshot.open_folder(tmp_path / "b", classnames=names).classnames == ["a cat", "a dog"]


def test_unknown_template_set_and_bad_template_files_are_refused(tmp_path):
    with pytest.raises(zeroshot.ZeroShotError, match="neither a template set nor a file.*imagenet1k"):
        zeroshot.resolve_templates("imagenet", False)
    bad = tmp_path / "t.txt"
    bad.write_text("a photo of a thing\n")
    with pytest.raises(zeroshot.ZeroShotError, match="no \\{c\\}"):
        zeroshot.resolve_templates(str(bad), False)
    bad.write_text("a {c} in {place}\n")
    with pytest.raises(zeroshot.ZeroShotError, match="only \\{c\\} may stand in braces"):
        zeroshot.resolve_templates(str(bad), False)


def test_unknown_model_or_tag_lists_close_names():
    with pytest.raises(image_text.ImageTextError, match="close names: .*ViT-B-32"):
        zeroshot.spec_of("open_clip:ViT-B-33.openai")
    with pytest.raises(image_text.ImageTextError, match="no pretrained tag 'laion2b_s34b_b80k'.*laion2b_s34b_b79k"):
        zeroshot.spec_of("open_clip:ViT-B-32.laion2b_s34b_b80k")
    with pytest.raises(zeroshot.ZeroShotError, match="not an image-text checkpoint.*eval"):
        zeroshot.spec_of("resnet50.a1_in1k")


def test_openai_tags_get_quickgelu_and_their_own_preprocessing():
    openai = zeroshot.spec_of("open_clip:ViT-B-32.openai")
    assert openai.quick_gelu and openai.repo_id == "timm/vit_base_patch32_clip_224.openai"
    assert not zeroshot.spec_of("open_clip:ViT-B-32.laion2b_s34b_b79k").quick_gelu
    siglip = zeroshot.pixel_config(zeroshot.spec_of("open_clip:ViT-B-16-SigLIP.webli"))
    assert siglip["mean"] == (0.5, 0.5, 0.5) and siglip["crop_mode"] == "squash"
    assert zeroshot.pixel_config(zeroshot.spec_of("open_clip:ViT-L-14-336.openai"))["input_size"] == (3, 336, 336)


def test_weights_not_cached_offline_get_evals_message(offline_clip_hub, class_folder, store, tmp_path, monkeypatch):
    empty = tmp_path / "empty-hub"
    shutil.copytree(offline_clip_hub, empty)
    for blob in empty.rglob("open_clip_model.safetensors"):
        blob.unlink()
    monkeypatch.setenv("HF_HUB_CACHE", str(empty))
    with pytest.raises(zeroshot.hub.HubError, match="not in the local Hub cache.*HF_HUB_OFFLINE is set.*hf download"):
        zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(class_folder), settings=SETTINGS)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM zeroshots").fetchone()[0] == 0


# -- jobs and sweeps -----------------------------------------------------------------------------------
def test_a_zero_shot_job_runs_on_a_worker_then_is_answered_from_the_store(offline_clip_hub, class_folder, store):
    from engine.jobs import job_specs, runner, submit
    spec = {"kind": "zeroshot", "checkpoint": TINY, "data": str(class_folder), "templates": "imagenet1k",
            "workers": 0}
    queued = submit.enqueue(store, spec)
    assert queued["outcome"] == "queued"
    assert runner.Worker(store, "cpu").run(once=True) == 1
    [job] = store.jobs_frame().itertuples()
    assert job.state == "done" and job.result_zeroshot_classes == 3 and 0 <= job.result_zeroshot_top1 <= 100
    again = submit.enqueue(store, spec)
    assert again["outcome"] == "cached" and again["result"]["templates_name"] == "imagenet1k"
    with pytest.raises(job_specs.JobError, match="not an image-text checkpoint id"):
        submit.enqueue(store, {**spec, "checkpoint": "resnet50.a1_in1k"})
    with pytest.raises(image_text.ImageTextError, match="close names"):
        submit.enqueue(store, {**spec, "checkpoint": "open_clip:ViT-B-33.openai"})


def test_sweep_zeroshot_runs_the_selection_and_resumes(offline_clip_hub, class_folder, catalog_db, tmp_path):
    db = tmp_path / "sweep.duckdb"
    shutil.copy(catalog_db, db)
    args = ("sweep", "--zeroshot", str(class_folder), "--checkpoints", f"{TINY},open_clip:RN50.openai",
            "--workers", "0", "--json")
    first = run_cli(*args, db=db)
    results = {r["checkpoint"]: r for r in json.loads(first.stdout)["results"]}
    assert results[TINY]["status"] == "done"
    assert results["open_clip:RN50.openai"]["status"] == "failed"  # not in the temporary Hub cache
    assert "not in the local Hub cache" in results["open_clip:RN50.openai"]["error"]
    assert first.returncode == 1
    second = run_cli(*args, db=db)
    assert {r["checkpoint"]: r["status"] for r in json.loads(second.stdout)["results"]}[TINY] == "in the store"
    planned = run_cli("sweep", "--zeroshot", str(class_folder), "--class", "ConvNet", "--max-gflops", "15",
                      "--dry-run", "--json", db=db)
    chosen = json.loads(planned.stdout)["checkpoints"]  # the image towers' counted GFLOPs: RN50s (10.8), no ConvNeXt
    assert "open_clip:RN50.openai" in chosen and not any("convnext" in c for c in chosen)
    refused = run_cli("sweep", "--zeroshot", str(class_folder), "--checkpoints", TINY, "--ray", db=db)
    assert refused.returncode == 2 and "--ray fans out eval sweeps only" in refused.stderr
