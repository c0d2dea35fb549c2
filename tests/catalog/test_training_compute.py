"""Training compute from sourced recipes: the convention check, exact recipes, the loader's
refusals, the store, the CLI contract and the axis."""
import json
import shutil

import pandas as pd
import pytest

from engine.__main__ import main
from engine.catalog import timm_models, training_compute as tc
from engine.store import Store


@pytest.fixture(scope="module")
def shipped_compute() -> pd.DataFrame:
    import timm
    return timm_models.shipped_compute_frame(timm.__version__)


def flops_of(compute: pd.DataFrame):
    table = {(a, int(s), int(n)): float(f) for a, s, n, f, e in zip(
        compute["arch"], compute["img_size"], compute["num_classes"], compute["flops"], compute["error"], strict=True)
        if pd.isna(e)}
    return lambda arch, res, n: table.get((arch, int(res), int(1000 if n == -1 else n)))


def test_the_vit_paper_pretraining_exaflops_are_reproduced_within_5_percent(shipped_compute):
    """Dosovitskiy et al. 2021, Table 6: 3 × forward FLOPs (our count, 224 px) × 303M × epochs."""
    check = tc.vit_paper_check(shipped_compute)
    assert len(check) == 12 and check["ratio"].notna().all()
    assert check["ratio"].between(0.95, 1.05).all(), check
    vits = check[check["model"].str.startswith("ViT-")]
    assert vits["ratio"].between(0.99, 1.03).all()  # the transformers land within 3%


def test_resnet_strikes_back_a1_a2_a3_exact_from_epochs_and_train_resolution(shipped_compute):
    book = tc.load_recipes()
    flops = flops_of(shipped_compute)
    for tag, epochs, res in (("a1_in1k", 600, 224), ("a2_in1k", 300, 224), ("a3_in1k", 100, 160)):
        recipe = tc.recipe_for(book, "resnet50", tag)
        [stage] = recipe
        assert (stage["epochs"], stage["train_res"]) == (epochs, res)
        checkpoint = {"checkpoint": f"resnet50.{tag}", "arch": "resnet50", "input_h": 224, "num_classes": 1000}
        found = tc.estimate_one(checkpoint, recipe, flops, book.datasets)
        expected = 3 * flops("resnet50", res, 1000) * 1_281_167 * epochs
        assert found["train_flops"] == pytest.approx(expected, rel=1e-12)
        assert found["samples_seen"] == 1_281_167 * epochs and found["finetune_flops"] == 0
    # A3 trains at 160: its per-sample cost is the 160-px count, not the 224-px eval size
    assert flops("resnet50", 160, 1000) < 0.6 * flops("resnet50", 224, 1000)


def _stage(**values) -> dict:
    base = {c: "" for c in tc.COLUMNS}
    base.update(stage=1, stage_kind="pretrain", dataset="imagenet-1k", epochs=None, samples=None, train_res=None,
                objective="supervised", mask_ratio=None, multiplier=1.0, source="a test", confidence="exact")
    base.update(values)
    return base


def test_a_distilled_and_a_masked_modelling_recipe():
    forward = {("student", 224): 10e9, ("teacher", 224): 30e9}
    flops = lambda arch, res, n: forward.get((arch, res))  # noqa: E731
    datasets = tc.load_datasets()
    checkpoint = {"checkpoint": "student.t", "arch": "student", "input_h": 224, "num_classes": 1000}
    distilled = tc.estimate_one(checkpoint, [_stage(epochs=300, train_res=224, objective="distillation",
                                                    teacher="teacher@224")], flops, datasets)
    samples = 300 * 1_281_167
    assert distilled["train_flops"] == pytest.approx((3 * 10e9 + 30e9) * samples)  # + one teacher forward
    masked = tc.estimate_one(checkpoint, [_stage(epochs=1600, train_res=224, objective="mim", mask_ratio=0.75,
                                                 decoder="8x512@16"),
                                          _stage(stage=2, stage_kind="finetune", epochs=100, train_res=224)],
                             flops, datasets)
    decoder = 8 * 196 * (24 * 512 ** 2 + 4 * 196 * 512)
    pretrain = (3 * 10e9 * 0.25 + 3 * decoder) * 1600 * 1_281_167
    assert masked["pretrain_flops"] == pytest.approx(pretrain)
    assert masked["finetune_flops"] == pytest.approx(3 * 10e9 * 100 * 1_281_167)
    assert masked["train_flops"] == pytest.approx(masked["pretrain_flops"] + masked["finetune_flops"])
    # an unstated train resolution uses the pretrained config's input size and says so
    guessed = tc.estimate_one(checkpoint, [_stage(epochs=10)], flops, datasets)
    assert guessed["confidence"] == "assumed" and "pretrained config's 224 px" in guessed["note"]
    # a stage of unpublished length leaves the total unknown, never defaulted
    partial = tc.estimate_one(checkpoint, [_stage(epochs=10, train_res=224),
                                           _stage(stage=2, stage_kind="finetune", train_res=224)], flops, datasets)
    assert partial["train_flops"] is None and partial["pretrain_flops"] is not None and not partial["complete"]


BAD_ROWS = {
    "no source": {"source": ""},
    "zero epochs": {"epochs": "0"},
    "negative epochs": {"epochs": "-5"},
    "unknown dataset": {"dataset": "imagenet-42k"},
}


@pytest.mark.parametrize("why", [*BAD_ROWS, "duplicate"])
def test_bad_recipe_rows_are_refused_naming_the_row_and_the_catalog_still_loads(why, tmp_path, catalog_db, monkeypatch, capsys):
    good = {**{c: "" for c in tc.COLUMNS}, "tag": "a1_in1k", "arch_pattern": "resnet50", "stage": "1",
            "stage_kind": "pretrain", "dataset": "imagenet-1k", "epochs": "600", "train_res": "224",
            "objective": "supervised", "source": "RSB", "confidence": "exact"}
    bad = {**good, "tag": "a2_in1k", **BAD_ROWS.get(why, {})}
    rows = [good, bad] + ([bad] if why == "duplicate" else [])
    path = tmp_path / "recipes.csv"
    pd.DataFrame(rows, columns=tc.COLUMNS).to_csv(path, index=False)
    book = tc.load_recipes(path)
    assert len(book.refused) == 1 and "a2_in1k" in book.refused[0] and "resnet50" in book.refused[0]
    assert list(book.by_tag) == ["a1_in1k"]  # the good recipe stays
    monkeypatch.setenv("MATCHUP_RECIPES", str(path))
    db = tmp_path / "m.duckdb"
    shutil.copy(catalog_db, db)
    assert main(["--db", str(db), "catalog", "refresh"]) == 0
    captured = capsys.readouterr()
    [warning] = [line for line in captured.err.splitlines() if "recipe" in line]
    assert warning.startswith("warning: 1 training recipe row(s) refused") and "a2_in1k" in warning
    assert "(1 from their own of 1 sourced recipes" in captured.out


def test_refresh_fills_the_table_and_the_cli_contract(catalog_db, tmp_path, capsys):
    db = tmp_path / "m.duckdb"
    shutil.copy(catalog_db, db)
    store = Store(db)
    frame = store.training_compute_frame()
    assert len(frame) == store.count("checkpoints")  # every checkpoint, known or not
    assert main(["--db", str(db), "catalog", "training-compute", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    keys = {"checkpoint", "train_flops", "pretrain_flops", "finetune_flops", "samples_seen", "confidence", "sources"}
    assert all(keys <= set(r) for r in records)
    by_id = {r["checkpoint"]: r for r in records}
    a3 = by_id["resnet50.a3_in1k"]
    assert a3["train_flops"] > 1e17 and a3["confidence"] in tc.CONFIDENCES and a3["sources"]
    assert a3["stages"][0]["train_res"] == 160
    unknown = [r for r in records if r["train_flops"] is None]
    assert unknown and all(r["confidence"] is None or r["note"] for r in unknown)


def test_training_compute_is_a_cost_axis(full_db, tmp_path, capsys):
    db = tmp_path / "m.duckdb"
    shutil.copy(full_db, db)
    assert main(["--db", str(db), "analyze", "budget", "--cost", "train_flops", "--quality", "imagenet.top1",
                 "--budgets", "1e19,1e21", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["cost"] == "train_flops" and payload["n_points"] > 500
    assert {"ConvNet", "ViT"} <= set(payload["budgets"][-1]["best"])


HOSTILE_CELLS = {  # issue 36: each bounded and refused by its row; before, they stored inf or stopped the refresh
    "b1": {"epochs": "1e300"}, "b2": {"multiplier": "1e300"}, "b3": {"samples": "1e300", "epochs": ""},
    "b4": {"decoder": "1x64@0", "objective": "mim", "mask_ratio": "0.75"},
    "b5": {"crops": "1234567890123456789012345678901234567890x224"}, "b6": {"crops": "2x99999"},
    "b7": {"mask_ratio": "abc", "objective": "mim"}, "b8": {"train_res": "100000"},
    "b9": {"teacher": "deit3_base_patch16_384@0", "objective": "distillation"},
    "b10": {"length_range": "1e5e5-2"}, "b11": {"stage": "1e300"},
}


def test_every_numeric_recipe_cell_is_bounded_and_one_bad_row_leaves_the_rest(tmp_path, catalog_db, monkeypatch, capsys):
    good = {**{c: "" for c in tc.COLUMNS}, "tag": "a1_in1k", "arch_pattern": "resnet50", "stage": "1",
            "stage_kind": "pretrain", "dataset": "imagenet-1k", "epochs": "600", "train_res": "224",
            "objective": "supervised", "source": "RSB", "confidence": "exact"}
    rows = [good] + [{**good, "tag": tag, **cells} for tag, cells in HOSTILE_CELLS.items()]
    path = tmp_path / "recipes.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    book = tc.load_recipes(path)
    assert list(book.by_tag) == ["a1_in1k"] and len(book.refused) == len(HOSTILE_CELLS)
    for tag, said in zip(HOSTILE_CELLS, book.refused, strict=True):
        assert f"({tag}, resnet50" in said, said
    assert "epochs must be a positive number from 0.001 to 10000, not 1e300" in book.refused[0]
    assert "decoder patch must be a positive number from 1 to 1024, not 0" in book.refused[3]
    monkeypatch.setenv("MATCHUP_RECIPES", str(path))
    db = tmp_path / "m.duckdb"
    shutil.copy(catalog_db, db)
    assert main(["--db", str(db), "catalog", "refresh"]) == 0
    captured = capsys.readouterr()
    assert f"warning: {len(HOSTILE_CELLS)} training recipe row(s) refused" in captured.err
    assert "Traceback" not in captured.err and "(1 from their own of 1 sourced recipes" in captured.out
    from engine.store import Store
    with Store(db).connect() as con:
        assert con.execute("SELECT count(*) FROM training_compute WHERE NOT isfinite(train_flops)").fetchone()[0] == 0
        assert con.execute("SELECT train_flops FROM training_compute WHERE checkpoint = 'resnet50.a1_in1k'"
                           ).fetchone()[0] > 0
