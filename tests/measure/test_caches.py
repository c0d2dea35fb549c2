"""Caches never change a number; odd folders are walked safely (issue 22). Tiny checkpoints in a
temporary offline Hub cache, images written here."""
import errno
import json
import logging
import os
import shutil
import signal

import numpy as np
import pytest

from engine.measure import datasets, decoded, evaluate, probe
from engine.measure.evaluate import EvalSettings
from engine.store import Store
from tests.conftest import SYNSETS

FAST = EvalSettings(batch_size=4, workers=0)
CHECKPOINT = "test_vit.r160_in1k"


def ppm_folder(root, seed: int, per_class: int = 3, size=(64, 48)):
    """Raw PPM images (a fixed header: rewriting one with other pixels keeps its byte size)."""
    rng = np.random.default_rng(seed)
    for synset in SYNSETS[:2]:
        (root / synset).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            write_ppm(root / synset / f"{synset}_{i}.ppm", rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return root


def write_ppm(path, pixels: np.ndarray, in_place: bool = False):
    data = f"P6 {pixels.shape[1]} {pixels.shape[0]} 255\n".encode() + pixels.tobytes()
    if in_place:  # same inode, same size: only the content (and the mtime) change
        with open(path, "r+b") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def predictions(folder, store_path, force=False, **settings) -> list[int]:
    [row] = evaluate.evaluate(Store(store_path), [CHECKPOINT], datasets.open_dataset(folder),
                              EvalSettings(batch_size=4, workers=0, **settings), force=force)
    return row["details"]["predictions"]


def entry_folder():
    [folder] = [p for p in (decoded.cache_root() / "decoded").iterdir() if not p.name.startswith(".")]
    return folder


def test_new_pixels_under_old_names_and_sizes_never_give_the_old_result(offline_hub, tmp_path):
    folder = ppm_folder(tmp_path / "set", seed=0)
    old = predictions(folder, tmp_path / "a.duckdb")
    rng = np.random.default_rng(99)
    stats = {}
    for path in sorted(folder.rglob("*.ppm")):
        stats[path] = path.stat()
        write_ppm(path, rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), in_place=True)
    reference = predictions(shutil.copytree(folder, tmp_path / "copy"), tmp_path / "ref.duckdb")
    assert reference != old  # the new pixels predict otherwise
    # rewritten files have another mtime: another fingerprint, so even a plain eval misses every cache
    assert predictions(folder, tmp_path / "a.duckdb") == reference
    # a careless user restores each file's mtime (same name, size, inode, mtime): --force still
    # recomputes from the images, never from the decoded cache, and --decoded-cache-gb 0 too
    for path, status in stats.items():
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    fooled = datasets.open_dataset(folder)
    assert predictions(folder, tmp_path / "b.duckdb", force=True) == reference
    assert predictions(folder, tmp_path / "c.duckdb", force=True, decoded_cache_gb=0) == reference
    assert fooled.fingerprint == datasets.open_dataset(folder).fingerprint


def test_no_cache_reads_or_writes_with_a_zero_budget(offline_hub, tmp_path):
    folder = ppm_folder(tmp_path / "set", seed=1)
    predictions(folder, tmp_path / "a.duckdb", decoded_cache_gb=0)
    assert not (decoded.cache_root() / "decoded").exists() or not list((decoded.cache_root() / "decoded").iterdir())


def _flip(folder):
    path = folder / "images.u8"
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64])
    path.write_bytes(bytes(data))


def _zero(folder):
    path = folder / "images.u8"
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(bytes(5000))


def _truncate(folder):
    os.truncate(folder / "images.u8", (folder / "images.u8").stat().st_size // 2)


def _edit_meta(change):
    def edit(folder):
        meta = json.loads((folder / "meta.json").read_text())
        change(meta)
        (folder / "meta.json").write_text(json.dumps(meta))
    return edit


DAMAGE = {
    "bytes flipped": _flip, "bytes zeroed": _zero, "truncated": _truncate,
    "fewer images": _edit_meta(lambda m: m["provenance"].update(n_images=m["provenance"]["n_images"] - 3)),
    "another shape": _edit_meta(lambda m: m["provenance"].update(shape=[m["provenance"]["shape"][0], 3, 80, 80])),
    "images marked bad": _edit_meta(lambda m: m["bad"].update({"0": "x", "1": "y"})),
    "garbled meta": lambda folder: (folder / "meta.json").write_text("{not json"),
    # metadata of the wrong JSON shape: each one a miss, never an AttributeError or RecursionError
    "meta a list": lambda folder: (folder / "meta.json").write_text("[1, 2]"),
    "meta null": lambda folder: (folder / "meta.json").write_text("null"),
    "meta a string": lambda folder: (folder / "meta.json").write_text('"meta"'),
    "meta 200,000 deep": lambda folder: (folder / "meta.json").write_text("[" * 200_000 + "]" * 200_000),
    "a non-integer key": _edit_meta(lambda m: m["bad"].update({"one": "x"})),
    "floats as checks": _edit_meta(lambda m: m.update(image_checks=[0.5] * len(m["image_checks"]))),
}


def _resign(folder, key_file):
    """An attacker who can write the cache and knows the checksum's algorithm, not this user's key:
    new pixels, checksums recomputed with another key."""
    from engine.measure import cache_mac
    _flip(folder)
    meta = json.loads((folder / "meta.json").read_text())
    images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="r", shape=tuple(meta["provenance"]["shape"]))
    saved = os.environ["MATCHUP_CACHE_KEY"]
    os.environ["MATCHUP_CACHE_KEY"] = str(key_file)
    try:
        meta["image_checks"] = [int(c) for c in cache_mac.image_macs(images)]
        meta["meta_mac"] = cache_mac.mac(decoded._meta_body(meta))
    finally:
        os.environ["MATCHUP_CACHE_KEY"] = saved
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_decoded_cache_entry_is_a_miss_and_the_number_stands(damage, offline_hub, image_folder, tmp_path, caplog):
    clean = predictions(image_folder, tmp_path / "a.duckdb")
    DAMAGE[damage](entry_folder())
    with caplog.at_level(logging.WARNING, logger="matchup"):
        again = predictions(image_folder, tmp_path / "b.duckdb")  # a new store: only the pixel cache could answer
    assert again == clean
    assert any("decoded-image cache entry" in r.message for r in caplog.records)
    assert predictions(image_folder, tmp_path / "c.duckdb") == clean  # rebuilt, and read again


def test_a_flipped_byte_is_one_line_and_a_rebuilt_entry_not_a_traceback(offline_hub, image_folder, tmp_path):
    from tests.conftest import run_cli
    first = run_cli("eval", CHECKPOINT, "--data", str(image_folder), "--workers", "2", "--json", db=tmp_path / "a.duckdb")
    assert first.returncode == 0, first.stderr
    _flip(entry_folder())
    again = run_cli("eval", CHECKPOINT, "--data", str(image_folder), "--workers", "2", "--json", db=tmp_path / "b.duckdb")
    assert again.returncode == 0 and json.loads(again.stdout)[0]["top1"] == json.loads(first.stdout)[0]["top1"]
    said = [line for line in again.stderr.splitlines() if "decoded-image cache entry" in line]
    assert len(said) == 1 and "do not match their checksums" in said[0], again.stderr
    assert "Traceback" not in again.stderr and "Error" not in again.stderr.replace(said[0], ""), again.stderr


def test_an_entry_signed_without_this_users_key_is_a_miss(offline_hub, image_folder, tmp_path, caplog):
    """Write access to the cache is not trust: pixels planted with checksums recomputed under another
    key are a miss; the key lives outside the cache, readable by its owner only."""
    from engine.measure import cache_mac
    clean = predictions(image_folder, tmp_path / "a.duckdb")
    key = cache_mac.key_path()
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    assert decoded.cache_root().resolve() not in key.resolve().parents
    _resign(entry_folder(), tmp_path / "attacker.key")
    with caplog.at_level(logging.WARNING, logger="matchup"):
        again = predictions(image_folder, tmp_path / "b.duckdb")
    assert again == clean
    assert any("not written with this user's key" in r.message for r in caplog.records)


def _feature_entry(tmp_path, seed=2):
    folder = ppm_folder(tmp_path / "set", seed=seed, per_class=5)
    settings = probe.ProbeSettings(batch_size=4, workers=0)
    first = probe.extract(CHECKPOINT, probe.open_folder(folder), settings)
    [path] = (decoded.cache_root() / "features").glob("*.npz")
    with np.load(path) as stored:
        contents = {k: stored[k] for k in stored.files}
    return folder, settings, first, path, contents


def _with_meta(change):
    def edit(contents):
        meta = json.loads(str(contents["meta"]))
        change(meta)
        return {**contents, "meta": json.dumps(meta)}
    return edit


FEATURE_DAMAGE = {
    "rows shuffled": lambda c: {**c, "features": c["features"][::-1].copy()},
    "values perturbed": lambda c: {**c, "features": c["features"] + 0.5},
    "a NaN": lambda c: {**c, "features": np.where(np.arange(c["features"].size).reshape(c["features"].shape) == 7,
                                                  np.nan, c["features"]).astype(np.float32)},
    "skipped edited": _with_meta(lambda m: m.update(skipped={"0": "x", "1": "y"})),
    "source edited": _with_meta(lambda m: m.update(source="pooled")),
    "meta a list": lambda c: {**c, "meta": "[1, 2]"},
    "meta null": lambda c: {**c, "meta": "null"},
    "meta 200,000 deep": lambda c: {**c, "meta": "[" * 200_000 + "]" * 200_000},
    "floats as indices": lambda c: {**c, "kept": c["kept"].astype(np.float64)},
}


@pytest.mark.parametrize("damage", list(FEATURE_DAMAGE))
def test_a_damaged_feature_cache_entry_is_a_miss(damage, offline_hub, tmp_path, caplog):
    folder, settings, first, path, contents = _feature_entry(tmp_path)
    np.savez(path, **FEATURE_DAMAGE[damage](contents))
    with caplog.at_level(logging.WARNING, logger="matchup"):
        again = probe.extract(CHECKPOINT, probe.open_folder(folder), settings)
    assert not again.from_cache and np.array_equal(again.features, first.features)
    assert again.skipped == first.skipped and again.source == first.source
    assert any("feature cache entry" in r.message for r in caplog.records)


@pytest.mark.parametrize("damage", ["a bad CRC", "truncated", "empty"])
def test_a_damaged_feature_file_is_a_miss(damage, offline_hub, tmp_path, caplog):
    folder, settings, first, path, _ = _feature_entry(tmp_path, seed=6)
    data = bytearray(path.read_bytes())
    if damage == "a bad CRC":  # a byte inside the first member's data: the zip's CRC no longer holds
        data[120] ^= 0xFF
    path.write_bytes(bytes(data[:len(data) // 2]) if damage == "truncated" else b"" if damage == "empty" else bytes(data))
    with caplog.at_level(logging.WARNING, logger="matchup"):
        again = probe.extract(CHECKPOINT, probe.open_folder(folder), settings)
    assert not again.from_cache and np.array_equal(again.features, first.features)
    assert probe.extract(CHECKPOINT, probe.open_folder(folder), settings).from_cache  # rebuilt


@pytest.mark.parametrize("where", ["a file", "a folder under a file"])
def test_an_unusable_cache_location_means_running_without_it(where, offline_hub, image_folder, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("MATCHUP_CACHE", str(blocker if where == "a file" else blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="matchup"):
        rows = predictions(image_folder, tmp_path / "a.duckdb")
    assert len(rows) == 12 and any("cannot be used" in r.message for r in caplog.records)
    folder = ppm_folder(tmp_path / "probe-set", seed=3)
    features = probe.extract(CHECKPOINT, probe.open_folder(folder), probe.ProbeSettings(batch_size=4, workers=0))
    assert len(features.features) == 6  # the probe runs too, without its feature cache


def test_a_full_disk_leaves_no_entry_and_no_partial_files(offline_hub, image_folder, tmp_path, monkeypatch, caplog):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(decoded.os, "posix_fallocate", no_space)
    with caplog.at_level(logging.WARNING, logger="matchup"):
        first = predictions(image_folder, tmp_path / "a.duckdb")
    assert len(first) == 12 and any("not written" in r.message for r in caplog.records)
    assert not list((decoded.cache_root() / "decoded").iterdir())  # no entry, no .partial
    real = decoded.shutil.disk_usage
    monkeypatch.setattr(decoded.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    assert predictions(image_folder, tmp_path / "b.duckdb") == first
    assert not list((decoded.cache_root() / "decoded").iterdir())


def test_one_groups_fault_fails_only_that_group(offline_hub, image_folder, tmp_path, monkeypatch):
    real = evaluate.evaluate_group

    def faulty(entries, *args, **kwargs):
        if entries[0]["checkpoint"] == "test_resnet.r160_in1k":  # its own pixel group (bilinear)
            raise ValueError("cannot reshape array of size 0")
        return real(entries, *args, **kwargs)
    monkeypatch.setattr(evaluate, "evaluate_group", faulty)
    errors = {}
    rows = evaluate.evaluate(Store(tmp_path / "a.duckdb"), ["test_resnet.r160_in1k", "test_vit.r160_in1k"],
                             datasets.open_dataset(image_folder), FAST,
                             on_error=lambda c, m: errors.__setitem__(c, m))
    assert rows[1]["n_images"] == 12 and "cannot reshape" in errors["test_resnet.r160_in1k"]


# -- folders ------------------------------------------------------------------------------------------------
def test_a_symlink_loop_and_links_between_classes_are_walked_once(offline_hub, tmp_path):
    folder = ppm_folder(tmp_path / "set", seed=4)
    (folder / SYNSETS[0] / "loop").symlink_to("..")  # back to the root: every class again
    (folder / SYNSETS[0] / "twin").symlink_to(folder / SYNSETS[1])  # into another class
    (folder / SYNSETS[1] / "self").symlink_to(".")
    dataset = datasets.open_dataset(folder)
    assert len(dataset) == 6 and len(set(dataset.files)) == 6
    data = probe.open_folder(folder)
    assert len(data) == 6 and data.labels == [0, 0, 0, 1, 1, 1]


def test_pipes_and_dead_links_are_skipped_and_counted_not_read(offline_hub, tmp_path, store):
    folder = ppm_folder(tmp_path / "set", seed=5)
    os.mkfifo(folder / SYNSETS[0] / "waiting.ppm")  # opening it would block forever
    (folder / SYNSETS[1] / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    signal.alarm(120)  # a hang fails the test instead of the suite
    try:
        dataset = datasets.open_dataset(folder)
        assert len(dataset) == 6 and len(dataset.unreadable) == 2
        [row] = evaluate.evaluate(store, [CHECKPOINT], dataset, FAST)
        data = probe.open_folder(folder)
        result, _ = probe.probe_one(store, CHECKPOINT, data, probe.ProbeSettings(folds=2, batch_size=4, workers=0))
    finally:
        signal.alarm(0)
    assert row["n_images"] == 6 and row["details"]["skipped_images"] == 2
    reasons = " ".join(row["details"]["skipped_paths"])
    assert "waiting.ppm: not a regular file" in reasons and "gone.jpg: a link to nothing" in reasons
    assert result["skipped_images"] == 2
    with pytest.raises(evaluate.EvalError, match="waiting.ppm is not a regular file"):
        evaluate.evaluate(store, [CHECKPOINT], dataset, EvalSettings(batch_size=4, workers=0, strict=True), force=True)


def test_two_folders_with_one_name_are_two_metrics(catalog_store):
    from engine.analysis import points_table
    from tests.measure.test_probe import _stored_probe
    _stored_probe(catalog_store, "resnet50.a1_in1k", 91.0, dataset="train", fingerprint="aaaaaa11")
    _stored_probe(catalog_store, "vit_base_patch16_224.augreg2_in21k_ft_in1k", 60.0, dataset="train",
                  fingerprint="bbbbbb22")
    points = points_table.assemble_points(catalog_store.analysis_inputs())
    metrics = set(points.loc[points["quality_metric"].str.startswith("probe:"), "quality_metric"])
    assert {"probe:train~aaaaaa.acc", "probe:train~bbbbbb.acc"} <= metrics and "probe:train.acc" not in metrics
    one = points_table.select(points, "gflops", "probe:train~aaaaaa.acc")
    assert set(one["checkpoint"]) == {"resnet50.a1_in1k"}  # never compared with the other folder's task

