import json

import timm

from engine.__main__ import main
from engine.store import SCHEMA_VERSION
from tests.conftest import run_cli


def test_refresh_list_and_info_from_the_command_line(tmp_path, capsys):
    db = str(tmp_path / "m.duckdb")
    assert main(["--db", db, "catalog", "refresh", "--json"]) == 0
    refreshed = json.loads(capsys.readouterr().out)
    assert refreshed["image_text_checkpoints"] >= 150  # OpenCLIP's, in the same table (zoo image-text)
    assert refreshed["checkpoints"] == len(timm.list_pretrained()) + refreshed["image_text_checkpoints"]

    assert main(["catalog", "list", "--class", "hybrid", "--json", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed and {row["arch_class"] for row in listed} == {"Hybrid"}
    assert {"checkpoint", "arch_class", "family", "pretrain_data", "data_scale", "params_m",
            "imagenet_top1"} <= set(listed[0])

    assert main(["--db", db, "db", "info"]) == 0
    text = capsys.readouterr().out
    assert f"{refreshed['checkpoints']} rows" in text and f"schema version: {SCHEMA_VERSION}" in text
    assert "0 checkpoints without a class" in text


def test_unreadable_db_is_one_plain_paragraph_not_a_traceback(tmp_path):
    done = run_cli("db", "info", db=tmp_path)  # a directory
    assert done.returncode == 2
    assert done.stderr.startswith("error: Cannot open the Matchup database")
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_unknown_class_is_refused_with_the_choices(tmp_path, capsys):
    assert main(["--db", str(tmp_path / "m.duckdb"), "catalog", "list", "--class", "cnn"]) == 2
    assert "choose one of ConvNet, ViT, Hybrid, MLP" in capsys.readouterr().err


def test_usage_mistakes_are_one_paragraph_not_the_usage_wall(tmp_path, capsys):
    import pytest
    for argv, said in ((["eval", "m.a", "--data", str(tmp_path), "--limit", "0"], "--limit must be a positive"),
                       (["eval", "m.a", "--data", str(tmp_path), "--batch-size", "0"], "--batch-size must be"),
                       (["eval", "-my-model", "--data", str(tmp_path)], "goes after `--`"),
                       (["zeroshot", "--data", str(tmp_path), "-x"], "goes after `--`")):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and said in err, err
        assert "usage:" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


def test_unknown_filter_values_are_refused_naming_the_valid_ones(catalog_db, capsys):
    for argv, said in ((["--data-scale", "≥1B,unknown,bogus"], "--data-scale 'bogus': not a value it takes; use one "
                                                               "or more of ≈1M, ≈10M, ≈100M, ≥1B, unknown"),
                       (["--source", "published,nope"], "--source 'nope': not a value it takes; use one or more of "
                                                         "published, measured here, brock2021_nfnet")):
        code = main(["--db", str(catalog_db), "analyze", "frontier", "--cost", "paper_gflops", "--quality",
                     "imagenet.top1", *argv])
        assert code == 2 and said in capsys.readouterr().err
    assert main(["--db", str(catalog_db), "sweep", "--data-scale", "huge", "--dry-run"]) == 2
    assert "--data-scale 'huge'" in capsys.readouterr().err
    assert main(["--db", str(catalog_db), "analyze", "frontier", "--cost", "paper_gflops", "--quality",
                 "imagenet.top1", "--source", "published", "--json"]) == 0
