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


# -- hostile input (issue 36) ------------------------------------------------------------------------
def test_a_names_file_maps_folders_by_tab_and_a_list_in_another_order_is_refused(tmp_path):
    """`ls` lists apple, Banana, cherry; Python sorts Banana first. A plain list written in `ls`'s
    order would send every prompt to the wrong folder: refused. `folder<TAB>name` cannot be wrong."""
    make_image_folder(tmp_path / "fruit", synsets=("apple", "Banana", "cherry"), per_class=1, size=(8, 8))
    names = tmp_path / "names.txt"
    names.write_text("apple\nBanana\ncherry\n")
    with pytest.raises(zeroshot.ZeroShotError, match="line 1 \\('apple'\\) is paired with folder 'Banana'.*"
                                                     "folder<TAB>name"):
        zeroshot.open_folder(tmp_path / "fruit", classnames=names)
    names.write_text("cherry\ta red cherry\napple\ta green apple\nBanana\ta ripe banana\n")
    opened = zeroshot.open_folder(tmp_path / "fruit", classnames=names)
    assert opened.classnames == ["a ripe banana", "a green apple", "a red cherry"]   # folder order: Banana, apple, cherry
    assert "  Banana -> a ripe banana" in opened.pairing
    for text, error in (("apple\tx\nBanana\ty\n", "no name for folder\\(s\\) cherry"),
                        ("apple\tx\nBanana\ty\ncherry\tz\nkiwi\tw\n", "no class folder 'kiwi'"),
                        ("apple\tx\napple\ty\ncherry\tz\n", "names folder 'apple' a second time"),
                        ("apple\tx\nBanana y\ncherry\tz\n", "line 2 .* has no tab")):
        names.write_text(text)
        with pytest.raises(zeroshot.ZeroShotError, match=error):
            zeroshot.open_folder(tmp_path / "fruit", classnames=names)
    names.write_text("a banana\nan apple\na cherry\n")   # a plain list naming no other folder: paired, and said
    assert zeroshot.open_folder(tmp_path / "fruit", classnames=names).pairing.splitlines()[0] == "  Banana -> a banana"


def test_only_c_may_stand_in_braces_and_templates_are_bounded(tmp_path):
    path = tmp_path / "t.txt"
    for template in ("a {c.__class__}", "a {c!r}", "a {c[0]}", "a {c:>5}", "a {c.upper}", "a {{c}}",
                     "a {c:>400000000}", "{0} {c}", "a {c"):
        path.write_text(template + "\n")
        with pytest.raises(zeroshot.ZeroShotError, match="only \\{c\\} may stand in braces|no \\{c\\}|unmatched brace"):
            zeroshot.resolve_templates(str(path), False)
    path.write_bytes(b"a photo of a {c}\x00.\n")
    with pytest.raises(zeroshot.ZeroShotError, match="NUL"):
        zeroshot.resolve_templates(str(path), False)
    path.write_text("a {c} " + "x" * 2000 + "\n")
    with pytest.raises(zeroshot.ZeroShotError, match="at most 1000"):
        zeroshot.resolve_templates(str(path), False)
    path.write_text("a {c}.\n" * (zeroshot.MAX_TEMPLATES + 1))
    with pytest.raises(zeroshot.ZeroShotError, match=f"at most {zeroshot.MAX_TEMPLATES}"):
        zeroshot.resolve_templates(str(path), False)
    with open(path, "wb") as f:   # 20 MB: refused by its size, never read
        f.truncate(20_000_000)
    with pytest.raises(zeroshot.ZeroShotError, match="a templates file may hold at most"):
        zeroshot.resolve_templates(str(path), False)
    path.write_text("a {{literal}} {c}, a {c}\n")
    name, [template] = zeroshot.resolve_templates(str(path), False)
    assert zeroshot.fill(template, "cat") == "a {literal} cat, a cat"


def test_a_one_class_folder_is_refused(tmp_path):
    make_image_folder(tmp_path / "one", synsets=("cat",), per_class=2, size=(8, 8))
    with pytest.raises(zeroshot.ZeroShotError, match="one class folder \\('cat'\\).*at least two"):
        zeroshot.open_folder(tmp_path / "one")
    from engine.measure import probe
    with pytest.raises(probe.ProbeError, match="at least two classes"):
        probe.open_folder(tmp_path / "one")


def test_class_names_cut_off_by_the_context_are_refused_not_scored(offline_clip_hub, tmp_path, store):
    folder = colour_folder(tmp_path / "colours", per_class=1)
    long = tmp_path / "long.txt"
    long.write_text("a photo of " + "a very " * 40 + "{c}.\n")   # {c} after ~80 tokens: every class reads the same
    with pytest.raises(zeroshot.ZeroShotError, match="gives classes 'cat' and 'dog' the same tokens.*reads only 77 tokens"):
        zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(folder), templates=str(long), settings=SETTINGS)
    names = tmp_path / "names.txt"
    prefix = "an animal that " + "is very " * 40
    names.write_text("".join(f"{c}\t{prefix}{c}\n" for c in CLASSES))
    with pytest.raises(zeroshot.ZeroShotError, match="the same tokens"):
        zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(folder, classnames=names), settings=SETTINGS)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM zeroshots").fetchone()[0] == 0
    assert not list(zeroshot.text_cache_dir().glob("*.pt"))


def test_a_users_folder_never_takes_a_published_tasks_name_and_two_folders_of_one_name_stay_apart(
        offline_clip_hub, tmp_path, store):
    from engine.analysis import points_table
    two = colour_folder(tmp_path / "a" / "imagenet1k", per_class=1)
    pets_a = colour_folder(tmp_path / "b" / "mine", per_class=1)
    pets_b = colour_folder(tmp_path / "c" / "mine", per_class=2, seed=3)
    for folder in (two, pets_a, pets_b):
        zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(folder), settings=SETTINGS)
    with store.connect() as con:  # the columns analysis_inputs reads (the tiny model is not in a catalog)
        frame = con.execute("""SELECT checkpoint, dataset_id, dataset_fingerprint, n_classes, created_at, top1, top5,
                                      balanced_accuracy, json_extract_string(details, '$.label_map') AS label_map
                               FROM zeroshots""").df()
    tops = set(points_table._zeroshot_rows(frame)["quality_metric"]) - {None}
    tops = {m for m in tops if m.endswith(".top1")}
    fingerprints = [zeroshot.open_folder(f).fingerprint[:6] for f in (two, pets_a, pets_b)]
    assert "zeroshot:imagenet1k.top1" not in tops and len(set(fingerprints)) == 3
    assert tops == {f"zeroshot:{n}~{fp}.top1" for n, fp in zip(("imagenet1k", "mine", "mine"), fingerprints, strict=True)}


def test_measured_results_take_a_task_name_only_when_they_are_that_task():
    """The rule behind the metric names: a published task's name stays only with its own data (the
    1000 ImageNet synset folders), and two sets evaluated as one variant are two metrics."""
    import pandas as pd
    from engine.analysis import points_table
    taken = frozenset({"imagenet1k"})
    labels = points_table.dataset_labels(pd.Series(["imagenet1k", "imagenet1k"]), pd.Series(["abcdef99", "abcdef99"]),
                                         taken, pd.Series([True, True]))
    assert list(labels) == ["imagenet1k", "imagenet1k"]
    evals = pd.DataFrame({"checkpoint": ["a", "b"], "arch": "x", "arch_class": "ViT", "family": "x",
                          "pretrain_data": "x", "data_scale": "x", "num_classes": 1000, "zoo": "imagenet",
                          "img_size": 224, "variant": "imagenet", "dataset_fingerprint": ["111111aa", "222222bb"],
                          "top1": [80.0, 10.0], "top5": [90.0, 20.0], "ece": 0.1, "nll": 1.0})
    metrics = set(points_table._eval_rows(evals)["quality_metric"])
    assert {"imagenet~111111.top1", "imagenet~222222.top1"} <= metrics and "imagenet.top1" not in metrics
    assert "imagenet.top1" in set(points_table._eval_rows(evals.iloc[:1])["quality_metric"])


def test_text_embeddings_planted_without_the_key_are_a_miss(offline_clip_hub, class_folder, store, tmp_path, monkeypatch):
    import torch
    from engine.measure import cache_mac
    first = zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(class_folder), settings=SETTINGS)[0]
    [path] = zeroshot.text_cache_dir().glob("*.pt")
    entry = torch.load(path, weights_only=True)
    planted = entry["embeddings"].flip(1).contiguous()   # every class gets another's embedding
    with monkeypatch.context() as m:   # the attacker knows the format, not this user's key
        m.setenv("MATCHUP_CACHE_KEY", str(tmp_path / "attacker.key"))
        entry.update(embeddings=planted, mac=cache_mac.mac(*zeroshot._entry_content(entry["provenance"], planted)))
    torch.save(entry, path)
    again = zeroshot.zeroshot(store, [TINY], zeroshot.open_folder(class_folder), settings=SETTINGS, force=True)[0]
    assert again["details"]["text_embeddings"] == "encoded" and again["top1"] == first["top1"]
