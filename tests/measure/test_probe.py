"""Linear probe on the user's own folder: tiny checkpoints from a temporary Hub cache, generated
datasets (separable by colour; random labels), checked against an independent computation."""
import json

import numpy as np
import pytest

from engine.__main__ import main
from engine.catalog import hub
from engine.measure import probe
from engine.measure.probe import ProbeError, ProbeSettings

FAST = {"batch_size": 16, "workers": 0}


def colour_folder(root, classes=("red", "green", "blue"), per_class=12, seed=0, size=(96, 72), shuffle_labels=False):
    """Noisy images whose class is their dominant colour (or, shuffled, nothing at all)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200), "grey": (120, 120, 120)}
    images = []
    for name in classes:
        for i in range(per_class):
            w, h = size
            pixels = np.clip(np.array(colours[name])[None, None, :] + rng.normal(0, 40, (h, w, 3)), 0, 255)
            images.append((name, i, pixels.astype("uint8")))
    if shuffle_labels:
        order = rng.permutation(len(images))
        images = [(images[j][0], i, images[k][2]) for i, (j, k) in enumerate(zip(range(len(images)), order))]
    for name, i, pixels in images:
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name / f"{name}_{i}.png")
    return root


@pytest.fixture
def colours(tmp_path):
    return colour_folder(tmp_path / "colours")


def test_separable_classes_reach_high_accuracy_and_the_row_is_stored(store, offline_hub, colours):
    data = probe.open_folder(colours)
    row, cached = probe.probe_one(store, "test_vit.r160_in1k", data, ProbeSettings(folds=3, **FAST))
    assert not cached and row["protocol"] == "kfold" and row["folds"] == 3
    assert row["accuracy"] >= 90 and row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
    assert row["n_images"] == 36 and row["n_classes"] == 3 and row["feature_dim"] > 0
    assert row["feature_source"] == "pre_logits" and row["skipped_images"] == 0
    stored = store.table_frame("probes")
    assert list(stored["checkpoint"]) == ["test_vit.r160_in1k"] and stored["accuracy"].iloc[0] == row["accuracy"]
    again, cached = probe.probe_one(store, "test_vit.r160_in1k", data, ProbeSettings(folds=3, **FAST))
    assert cached and again["cache_key"] == row["cache_key"] and store.count("probes") == 1


def test_random_labels_stay_near_chance(store, offline_hub, tmp_path):
    data = probe.open_folder(colour_folder(tmp_path / "noise", classes=("red", "green", "blue", "grey"),
                                           per_class=15, seed=3, shuffle_labels=True))
    row, _ = probe.probe_one(store, "test_convnext.r160_in1k", data, ProbeSettings(folds=5, **FAST))
    # chance is 25% over 4 classes; with 60 images the accuracy of a fold varies by about ±15 points
    assert row["accuracy"] < 50


def test_the_probe_equals_an_independent_computation(offline_hub, colours):
    """Features from timm directly (its own transform, forward_features + forward_head(pre_logits))
    and scikit-learn with the same folds and grid give the same accuracy."""
    import timm
    import torch
    from PIL import Image
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    checkpoint = "test_resnet.r160_in1k"
    data = probe.open_folder(colours)
    ours = probe.fit(probe.extract(checkpoint, data, ProbeSettings(**FAST)).features, np.array(data.labels),
                     data.classes, folds=4, seed=1)
    weights = hub.resolve(checkpoint)
    model = timm.create_model(checkpoint, pretrained=True,
                              pretrained_cfg_overlay={"file": str(weights.path), "source": ""}).eval()
    config = timm.data.resolve_data_config(model=model, use_test_size=True)
    transform = timm.data.create_transform(**config, is_training=False)
    with torch.inference_mode():
        batch = torch.stack([transform(Image.open(f).convert("RGB")) for f in data.files])
        features = model.forward_head(model.forward_features(batch), pre_logits=True).numpy()
    labels = np.array(data.labels)
    accuracies = []
    for train, test in StratifiedKFold(4, shuffle=True, random_state=1).split(features, labels):
        inner = StratifiedKFold(3, shuffle=True, random_state=1)
        clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=list(probe.C_GRID), cv=inner,
                                                                   scoring="neg_log_loss", max_iter=2000,
                                                                   l1_ratios=(0.0,), use_legacy_attributes=False))
        clf.fit(features[train], labels[train])
        accuracies.append(100 * accuracy_score(labels[test], clf.predict(features[test])))
    assert ours["accuracy"]["mean"] == pytest.approx(np.mean(accuracies), abs=1e-6)
    assert [r["accuracy"] for r in ours["runs"]] == pytest.approx(accuracies, abs=1e-6)


def test_features_are_cached_and_a_changed_dataset_is_a_miss(offline_hub, colours, monkeypatch):
    settings = ProbeSettings(**FAST)
    first = probe.extract("test_vit.r160_in1k", probe.open_folder(colours), settings)
    assert not first.from_cache

    def no_model(checkpoint):
        raise AssertionError("the model was loaded on a cache hit")
    monkeypatch.setattr(hub, "load_model", no_model)
    again = probe.extract("test_vit.r160_in1k", probe.open_folder(colours), settings)
    assert again.from_cache and np.array_equal(again.features, first.features)
    colour_folder(colours, classes=("red",), per_class=13)  # one more red image: another dataset
    with pytest.raises(AssertionError, match="loaded on a cache hit"):
        probe.extract("test_vit.r160_in1k", probe.open_folder(colours), settings)


def test_few_shot_with_a_fixed_seed_is_reproducible(offline_hub, colours):
    features = probe.extract("test_vit.r160_in1k", probe.open_folder(colours), ProbeSettings(**FAST)).features
    labels = np.array(probe.open_folder(colours).labels)
    classes = ["blue", "green", "red"]
    one = probe.fit(features, labels, classes, shots=4, seed=7)
    two = probe.fit(features, labels, classes, shots=4, seed=7)
    other = probe.fit(features, labels, classes, shots=4, seed=8)
    assert one["runs"] == two["runs"] and one["protocol"] == "shots" and len(one["runs"]) == probe.SHOT_REPEATS
    assert one["runs"] != other["runs"]
    with pytest.raises(ProbeError, match="no image left to test"):
        probe.fit(features, labels, classes, shots=12)


def test_bad_folders_are_refused_with_the_class_named(tmp_path, offline_hub, store):
    one = colour_folder(tmp_path / "one", classes=("red",))
    with pytest.raises(ProbeError, match="at least two classes.*only 'red'"):
        probe.open_folder(one)
    few = colour_folder(tmp_path / "few", classes=("red", "green"), per_class=6)
    for extra in range(2):
        (few / "blue").mkdir(exist_ok=True)
        colour_folder(tmp_path / "tmp", classes=("blue",), per_class=2)
    for image in (tmp_path / "tmp" / "blue").iterdir():
        image.rename(few / "blue" / image.name)
    with pytest.raises(ProbeError, match=r"'blue' \(2\) have fewer.*--folds 2"):
        probe.probe_one(store, "test_vit.r160_in1k", probe.open_folder(few), ProbeSettings(folds=5, **FAST))
    assert store.count("probes") == 0
    val = colour_folder(tmp_path / "val", classes=("red", "grey"), per_class=3)
    with pytest.raises(ProbeError, match=r"only in training \['blue', 'green'\], only in validation \['grey'\]"):
        probe.probe_one(store, "test_vit.r160_in1k", probe.open_folder(few), ProbeSettings(**FAST),
                        val=probe.open_folder(val))
    with pytest.raises(ProbeError, match="is not a folder"):
        probe.open_folder(tmp_path / "missing")


def test_undecodable_images_are_skipped_and_counted_or_refused_with_strict(tmp_path, offline_hub, store):
    data_root = colour_folder(tmp_path / "damaged")
    good = next((data_root / "red").iterdir())
    (data_root / "red" / "truncated.png").write_bytes(good.read_bytes()[:100])
    (data_root / "green" / "empty.png").write_bytes(b"")
    (data_root / "blue" / "notes.png").write_text("not an image")
    data = probe.open_folder(data_root)
    row, _ = probe.probe_one(store, "test_vit.r160_in1k", data, ProbeSettings(folds=3, **FAST))
    assert row["skipped_images"] == 3 and row["n_images"] == 36
    assert sum("truncated.png" in p for p in row["details"]["skipped_paths"]) == 1
    with pytest.raises(ProbeError, match="cannot be decoded.*--strict"):
        probe.probe_one(store, "test_convnext.r160_in1k", data, ProbeSettings(folds=3, strict=True, **FAST))
    assert list(store.table_frame("probes")["checkpoint"]) == ["test_vit.r160_in1k"]


def test_non_finite_features_are_refused_and_nothing_is_stored(tmp_path, monkeypatch, colours, store):
    from tests.conftest import write_hub_checkpoint
    cache = tmp_path / "hub"

    def poison(state):
        for name, tensor in state.items():
            if name.endswith("weight") and tensor.dim() == 4:
                tensor.fill_(float("nan"))
                break
    write_hub_checkpoint(cache, "test_resnet.r160_in1k", 0, poison=poison)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProbeError, match="non-finite features"):
        probe.probe_one(store, "test_resnet.r160_in1k", probe.open_folder(colours), ProbeSettings(**FAST))
    assert store.count("probes") == 0


def test_a_model_without_a_head_gives_pooled_features(offline_hub, colours, monkeypatch):
    import timm
    real = hub.load_model

    def headless(checkpoint):
        model, weights = real(checkpoint)
        model.reset_classifier(0)
        return model, weights
    monkeypatch.setattr(hub, "load_model", headless)
    features = probe.extract("test_convnext.r160_in1k", probe.open_folder(colours), ProbeSettings(**FAST))
    assert features.source == "pooled" and features.features.shape[1] == timm.create_model("test_convnext").num_features


def test_probe_cli_and_its_json(tmp_path, offline_hub, colours, capsys):
    db = tmp_path / "cli.duckdb"
    assert main(["--db", str(db), "probe", "test_vit.r160_in1k", "--data", str(colours), "--folds", "3",
                 "--batch-size", "16", "--workers", "0", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["checkpoint"] == "test_vit.r160_in1k" and row["dataset_name"] == "colours" and row["accuracy"] >= 90
    assert main(["--db", str(db), "probe", "test_vit.r160_in1k", "--data", str(tmp_path / "nothing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def _stored_probe(store, checkpoint, accuracy, dataset="cells", protocol="kfold", shots=None, fingerprint="f"):
    """A finished probe row as probe_one writes it (the computation is tested above)."""
    from datetime import datetime
    row = {"cache_key": f"{checkpoint}-{dataset}-{protocol}", "checkpoint": checkpoint, "hub_revision": "r",
           "dataset_name": dataset, "dataset_root": f"/data/{dataset}", "dataset_fingerprint": fingerprint,
           "n_images": 1200, "n_classes": 8, "classes": json.dumps([str(i) for i in range(8)]), "protocol": protocol,
           "folds": 5 if protocol == "kfold" else None, "shots": shots, "seed": 0, "feature_dim": 768,
           "feature_source": "pre_logits", "img_size": 224, "extract_seconds": 1.0, "skipped_images": 0,
           "details": {}, "created_at": datetime(2026, 11, 28)}
    for metric, value in (("accuracy", accuracy), ("balanced_accuracy", accuracy - 1), ("macro_f1", accuracy - 2),
                          ("nll", 0.5)):
        row.update({metric: value, f"{metric}_low": value - 1, f"{metric}_high": value + 1})
    store.put_probe(row)


def test_probe_results_are_quality_metrics_on_every_cost_axis(catalog_store):
    from engine.analysis import budget_match, points_table
    _stored_probe(catalog_store, "resnet50.a1_in1k", 91.0)
    _stored_probe(catalog_store, "vit_base_patch16_224.augreg2_in21k_ft_in1k", 94.0)
    _stored_probe(catalog_store, "resnet50.a1_in1k", 70.0, protocol="shots", shots=10)
    points = points_table.assemble_points(catalog_store.analysis_inputs())
    chosen = points_table.select(points, "gflops", "probe:cells.acc")
    assert set(chosen["checkpoint"]) == {"resnet50.a1_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k"}
    assert set(chosen["source"]) == {"measured here"}
    assert chosen.set_index("checkpoint").loc["resnet50.a1_in1k", "quality"] == 91.0
    assert points_table.select(points, "gflops", "probe:cells@10shot.acc")["quality"].tolist() == [70.0]
    assert not points_table.higher_is_better("probe:cells.nll")
    [row] = budget_match.budget_table(chosen, "probe:cells.acc", [1000], n_boot=50)
    assert row["best"]["ViT"]["quality"] == 94.0 and row["best"]["ConvNet"]["quality"] == 91.0


def test_pages_offer_probe_metrics_and_say_how_they_were_measured(catalog_db, tmp_path, monkeypatch):
    import shutil

    from engine.store import Store
    from tests.app.test_app import open_page
    db = tmp_path / "probes.duckdb"
    shutil.copy(catalog_db, db)
    store = Store(db)
    _stored_probe(store, "resnet50.a1_in1k", 91.0)
    _stored_probe(store, "convnext_tiny.fb_in22k_ft_in1k", 92.5)
    _stored_probe(store, "vit_base_patch16_224.augreg2_in21k_ft_in1k", 94.0)
    monkeypatch.setenv("MATCHUP_DB", str(db))
    for page in ("pages/frontier.py", "pages/budget.py"):
        at = open_page(page, {"metric": "probe:cells.acc"})
        assert not at.exception, at.exception
        assert "probe:cells.acc" in at.selectbox(key="metric").options
        assert at.selectbox(key="metric").value == "probe:cells.acc"
        assert any("Linear probe on your folder “cells”: 5 folds, 1,200 images in 8 classes" in c.value
                   for c in at.caption), [c.value for c in at.caption]
    at = open_page("pages/checkpoint.py", {"checkpoint": "resnet50.a1_in1k"})
    assert not at.exception
    probes = [d.value for d in at.dataframe if "dataset_name" in d.value.columns]
    assert probes and probes[0]["accuracy"].tolist() == [91.0]


def test_sweep_probe_resumes_and_skips_what_is_stored(tmp_path, offline_hub, colours, capsys):
    db = tmp_path / "sweep.duckdb"
    from engine.catalog import refresh
    from engine.store import Store
    refresh.refresh(Store(db), load_published=False)
    args = ["--db", str(db), "sweep", "--probe", str(colours), "--checkpoints",
            "test_vit.r160_in1k,test_resnet.r160_in1k,test_vit.r160_in1k", "--folds", "3", "--batch-size", "16",
            "--workers", "0", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)["results"]
    assert [r["status"] for r in first] == ["done", "done"]  # the repeated id once
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)["results"]
    assert [r["status"] for r in again] == ["cached", "cached"] and Store(db).count("probes") == 2
    assert main([*args[:-1], "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["to_run"] == [] and sorted(plan["stored"]) == ["test_resnet.r160_in1k", "test_vit.r160_in1k"]
    # DESIGN.md's spelling: --probe as a flag over --data
    assert main(["--db", str(db), "sweep", "--probe", "--data", str(colours), "--checkpoints", "test_vit.r160_in1k",
                 "--folds", "3", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stored"] == ["test_vit.r160_in1k"]


def test_a_queued_probe_runs_on_a_worker_and_is_stored(store, offline_hub, colours):
    from engine.jobs import runner, submit
    answer = submit.enqueue(store, {"kind": "probe", "checkpoint": "test_convnext.r160_in1k", "data": str(colours),
                                  "folds": 3, "batch_size": 16, "workers": 0})
    assert answer["outcome"] == "queued"
    assert submit.enqueue(store, {"kind": "probe", "checkpoint": "test_convnext.r160_in1k", "data": str(colours),
                                "folds": 3, "batch_size": 16, "workers": 0})["outcome"] == "attached"
    assert runner.Worker(store, device="cpu").run(once=True) == 1
    frame = store.jobs_frame()
    assert list(frame["state"]) == ["done"] and frame["result_probe_accuracy"].iloc[0] >= 90
    assert "probe test_convnext.r160_in1k on colours (3 folds" in frame["label"].iloc[0]
    again = submit.enqueue(store, {"kind": "probe", "checkpoint": "test_convnext.r160_in1k", "data": str(colours),
                                 "folds": 3, "batch_size": 16, "workers": 0})
    assert again["outcome"] == "cached"
    from engine.errors import MatchupError
    with pytest.raises(MatchupError, match="--folds must be"):
        submit.enqueue(store, {"kind": "probe", "checkpoint": "test_convnext.r160_in1k", "data": str(colours), "folds": 1})


def test_the_run_page_queues_one_probe_per_checkpoint(catalog_db, tmp_path, monkeypatch, offline_hub, colours):
    import shutil

    from engine.store import Store
    from tests.app.test_app import open_page
    db = tmp_path / "run.duckdb"
    shutil.copy(catalog_db, db)
    monkeypatch.setenv("MATCHUP_DB", str(db))
    monkeypatch.setenv("MATCHUP_DATA_ROOTS", str(colours.parent))
    at = open_page("pages/run.py")
    at.radio(key="run_kind").set_value("probe").run()
    at.multiselect(key="run_checkpoints").set_value(["test_vit.r160_in1k", "test_resnet.r160_in1k"]).run()
    at.selectbox(key="run_probe_data").set_value(colours).run()
    at.number_input(key="run_folds").set_value(3).run()
    [queue_button] = [b for b in at.button if b.label.startswith("Queue")]
    queue_button.click().run()
    assert not at.exception and not at.error
    frame = Store(db).jobs_frame()
    assert sorted(frame["kind"]) == ["probe", "probe"] and set(frame["state"]) == {"queued"}
    assert all("(3 folds" in label for label in frame["label"])


def test_checkpoints_that_share_a_preprocessing_decode_the_folder_once(offline_hub, colours, monkeypatch):
    """The second checkpoint reads eval's decoded-image cache that the first one filled."""
    from engine.measure import evaluate
    settings = ProbeSettings(**FAST)
    first = probe.extract("test_vit.r160_in1k", probe.open_folder(colours), settings)
    assert not first.from_cache

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")
    monkeypatch.setattr(evaluate, "decoding_batches", no_decoding)
    same_pixels = [c for c in ("test_convnext.r160_in1k", "test_resnet.r160_in1k")
                   if evaluate.data_config(hub.pretrained_cfg(c)) == first.config]
    assert same_pixels, "the tiny checkpoints share timm's default preprocessing"
    second = probe.extract(same_pixels[0], probe.open_folder(colours), settings)
    assert len(second.features) == len(first.features) and not second.from_cache


def test_a_given_validation_folder_is_the_test_set(store, offline_hub, colours, tmp_path):
    """--val: trained on the folder, tested on the other one; the interval comes from resampling
    the validation images and holds the point estimate."""
    val = probe.open_folder(colour_folder(tmp_path / "val", per_class=6, seed=5))
    row, _ = probe.probe_one(store, "test_vit.r160_in1k", probe.open_folder(colours), ProbeSettings(**FAST), val=val)
    assert row["protocol"] == "val" and row["folds"] is None and row["val_fingerprint"] == val.fingerprint
    assert len(row["details"]["runs"]) == 1 and row["accuracy"] == pytest.approx(row["details"]["runs"][0]["accuracy"])
    for metric in ("accuracy", "balanced_accuracy", "macro_f1", "nll"):
        assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
    assert row["accuracy"] >= 90
