"""One rule per numeric option, the same from the CLI, the queue and the library; one key per
measurement; links with bad parameters open the documented defaults."""
import pytest

from engine import options
from engine.__main__ import main
from engine.jobs import job_specs
from engine.measure import datasets, evaluate
from engine.measure.evaluate import EvalSettings


@pytest.mark.parametrize("argv, said", [
    (["eval", "test_vit.r160_in1k", "--data", "X", "--workers", "-1"], "--workers must be a whole number"),
    (["eval", "test_vit.r160_in1k", "--data", "X", "--batch-size", "0"], "--batch-size must be a whole number"),
    (["eval", "test_vit.r160_in1k", "--data", "X", "--limit", "1.5"], "--limit must be a positive whole number"),
    (["sweep", "--data", "X", "--max-gflops", "-3"], "--max-gflops must be a positive number"),
    (["sweep", "--data", "X", "--batch-size", "nan"], "--batch-size must be a whole number"),
    (["bench", "resnet18", "--batch-size", "-4"], "--batch-size must be a whole number"),
    (["profile", "resnet18", "--img-size", "0"], "--img-size must be a resolution"),
    (["analyze", "pairs", "--cost", "gflops", "--quality", "imagenet.top1", "--tolerance", "5"],
     "--tolerance must be a fraction"),
    (["analyze", "budget", "--cost", "gflops", "--quality", "imagenet.top1", "--n-boot", "0"],
     "--n-boot must be a whole number"),
])
def test_bad_numbers_are_one_line_from_the_cli(argv, said, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["--db", str(tmp_path / "m.duckdb"), *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_budgets_follow_the_same_rule(capsys, tmp_path):
    code = main(["--db", str(tmp_path / "m.duckdb"), "analyze", "budget", "--cost", "gflops", "--quality",
                 "imagenet.top1", "--budgets", "1,-5"])
    assert code == 2 and "--budgets must be positive numbers in cost units, not '-5'" in capsys.readouterr().err


@pytest.mark.parametrize("field, value", [("workers", -1), ("batch_size", 0), ("limit", 0), ("batch_size", "8x")])
def test_the_queue_and_the_library_use_the_same_rule(field, value, offline_hub, image_folder, store):
    spec = {"kind": "eval", "checkpoint": "test_vit.r160_in1k", "data": str(image_folder), field: value}
    with pytest.raises(options.OptionError) as queued:
        job_specs.normalize(spec)
    with pytest.raises(options.OptionError) as library:
        evaluate.evaluate(store, ["test_vit.r160_in1k"], datasets.open_dataset(image_folder),
                          EvalSettings(**{"workers": 0, field: value}))
    assert str(queued.value) == str(library.value)
    assert str(queued.value).startswith(options.RULES[field].flag + " must be")


def test_a_limit_of_the_whole_set_is_the_same_measurement(offline_hub, image_folder, store):
    dataset = datasets.open_dataset(image_folder)
    [first] = evaluate.evaluate(store, ["test_vit.r160_in1k"], dataset, EvalSettings(batch_size=6, workers=0))
    [again] = evaluate.evaluate(store, ["test_vit.r160_in1k"], dataset,
                                EvalSettings(batch_size=6, workers=0, limit=len(dataset) + 100))
    assert again["cached"] and again["cache_key"] == first["cache_key"] and store.count("evals") == 1
    spec = {"kind": "eval", "checkpoint": "test_vit.r160_in1k", "data": str(image_folder), "limit": 10_000}
    whole = {**spec, "limit": None}
    assert job_specs.request_key(job_specs.normalize(spec))[0] == job_specs.request_key(job_specs.normalize(whole))[0]
