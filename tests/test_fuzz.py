"""A fuzz harness that keeps "no input reaches a traceback" true (issue 22): generated CLI
arguments over every command (in process), environment values, queue specs and page URLs through
AppTest, with a fixed seed and a bounded time. An outcome is fine when it is a result or one
clear line (exit 0 or 2, a MatchupError, an info/error box); an unexpected error (exit 1, an
exception escaping, a traceback or an exception box) fails the test with the input that caused it."""
import json
import random
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from engine import options
from engine.__main__ import main
from engine.errors import MatchupError
from engine.jobs import submit
from engine.store import Store
from tests.conftest import ROOT

SEED = 22
WEIRD = ["", " ", "-1", "0", "1e309", "nan", "inf", "-inf", "abc", "1,2,,3", ",", "'; DROP TABLE jobs; --",
         "../../etc/passwd", "/proc/self/mem", "/dev/null", "💥", "a" * 300, "\t", "%s%s", "{}", "[]",
         "resnet50", "resnet50.a1_in1k", "test_vit.r160_in1k", "open_clip:RN50.openai", "imagenet.top1",
         "gflops", "train_flops", "ConvNet,ViT", "≈1M", "999999999999999999999", "0.0001", "1e-30"]
COSTS = ["gflops", "params_m", "train_flops", "latency_ms", "ms_per_img", "paper_gflops", "watts"]
QUALITIES = ["imagenet.top1", "sketch.top1", "imagenet-a.top1", "imagenet.ece", "probe:x.acc", "nope"]


def pick(rng, *pools):
    return rng.choice(rng.choice(pools))


def cli_inputs(rng: random.Random, data: str, n: int) -> list[list[str]]:
    """Arguments for every command group, mixing valid values with WEIRD ones."""
    argvs = []
    for _ in range(n):
        w = lambda *pools: pick(rng, WEIRD, *pools)  # noqa: E731
        kind = rng.choice(["analyze", "analyze", "analyze", "catalog", "profile", "eval", "probe", "sweep",
                           "jobs", "db", "bench", "worker"])
        if kind == "analyze":
            argv = ["analyze", rng.choice(["frontier", "budget", "pairs", "scaling", "when", "robustness"]),
                    "--cost", w(COSTS), "--quality", w(QUALITIES)]
            for flag, pool in (("--budgets", ["1,5,20", "400", "1e19"]), ("--classes", ["ConvNet,ViT"]),
                               ("--data-scale", ["≈1M"]), ("--tolerance", ["0.1", "2"]), ("--n-boot", ["10"]),
                               ("--seed", ["0", "3"]), ("--img-size", ["224-384", "x-y"]), ("--law", ["power"]),
                               ("--on", ["all"]), ("--matching", ["fair", "nearest"])):
                if rng.random() < 0.3:
                    argv += [flag, w(pool)]
        elif kind == "catalog":
            argv = ["catalog", rng.choice(["list", "training-compute", "import"])]
            argv += [w([data])] if argv[1] == "import" else (["--class", w(["ViT"])] if rng.random() < 0.3 else [])
        elif kind == "profile":
            argv = ["profile", w(["no_such_model", "resnet_nope"])] + (["--img-size", w(["7", "9000"])]
                                                                       if rng.random() < 0.5 else [])
        elif kind == "eval":
            argv = ["eval", w(["no_such.model"]), "--data", w([data, "hfds/nope"]), "--limit", w(["2"]),
                    "--batch-size", w(["0", "4"]), "--precision", w(["fp16", "int4"]), "--device", w(["cuda:7", "cpu"])]
        elif kind == "probe":
            argv = ["probe", w(["no_such.model"]), "--data", w([data]), "--folds", w(["1", "2"]),
                    "--shots", w(["0"]), "--seed", w(["0"])]
        elif kind == "sweep":
            argv = ["sweep", "--data", w([data]), "--dry-run", "--checkpoints", w(["resnet50.a1_in1k"]),
                    "--max-gflops", w(["1"])]
        elif kind == "jobs":
            argv = rng.choice([["jobs", "list", "--limit", w(["5"])], ["jobs", "cancel", w(["0000"])],
                               ["jobs", "add", "eval", w(["no.model"]), "--data", w([data]), "--batch-size", w(["8"])]])
        elif kind == "bench":
            argv = ["bench", w(["no_such_model"]), "--batch-size", w(["0", "auto"]), "--precision", w(["fp16"])]
        elif kind == "worker":
            argv = ["worker", "--once", "--poll", w(["0.1"]), "--device", w(["cuda:9", "cpu"])]
        else:
            argv = ["db", rng.choice(["info", "export"])] + ([w([data + "/out"])] if rng.random() < 0.5 else [])
        argvs.append(argv)
    return argvs


@pytest.fixture(scope="module")
def fuzz_db(catalog_db, tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb"
    shutil.copy(catalog_db, db)
    return db


def test_cli_inputs_never_reach_a_traceback(fuzz_db, tmp_path, capsys, monkeypatch, offline_hub):
    monkeypatch.setenv("MATCHUP_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)  # `db export <odd name>` writes a folder of that name here, never in the checkout
    rng = random.Random(SEED)
    argvs = cli_inputs(rng, str(tmp_path), 700)
    codes = {}
    for argv in argvs:
        try:
            code = main(["--db", str(fuzz_db), *argv])
        except SystemExit as stop:  # argparse's own usage error: one line, exit 2
            code = stop.code
        err = capsys.readouterr().err
        assert code in (0, 2), (argv, code, err[-2000:])
        assert "Traceback" not in err, (argv, err[-2000:])
        codes[code] = codes.get(code, 0) + 1
    assert not (tmp_path / "logs").exists()  # nothing unexpected was logged either
    assert codes.get(2, 0) > 100 and sum(codes.values()) == 700


def test_environment_values_never_reach_a_traceback(tmp_path, capsys, monkeypatch):
    rng = random.Random(SEED + 1)
    for _ in range(150):
        name = rng.choice(options.ENVIRONMENT)
        monkeypatch.setenv(name, rng.choice(WEIRD + ["2", "30", "0.5"]))
        code = main(["--db", str(tmp_path / "m.duckdb"), "jobs", "list"])
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err, (name, err)
        monkeypatch.delenv(name)


def test_queue_specs_never_reach_a_traceback(fuzz_db, tmp_path, offline_hub, image_folder):
    rng = random.Random(SEED + 2)
    store = Store(fuzz_db)
    values = WEIRD + [str(image_folder), 4, -3, 0.5, None, True, [], {}, 10 ** 30]
    outcomes = {"queued": 0, "refused": 0}
    plausible = {"data": [str(image_folder)], "device": ["cpu", "auto"], "precision": ["fp32", "bf16"],
                 "batch_size": [8, "auto"], "limit": [4], "folds": [2, 5], "shots": [1], "seed": [0, 7],
                 "img_size": [160, 224], "workers": [0], "file_rule": ["matchup", "timm"], "labels": [None],
                 "val": [None], "variant": ["imagenet"]}
    for _ in range(300):
        spec = {"kind": rng.choice(["eval", "probe", "bench"]) if rng.random() < 0.85 else rng.choice(WEIRD),
                "checkpoint": rng.choice(["test_vit.r160_in1k", "resnet50.a1_in1k"]) if rng.random() < 0.7
                else rng.choice(WEIRD)}
        for key in plausible:  # mostly plausible values, so the deeper rules are reached too
            if rng.random() < 0.5:
                spec[key] = rng.choice(plausible[key]) if rng.random() < 0.6 else rng.choice(values)
        try:
            submit.enqueue(store, spec, roots=[image_folder.parent] if rng.random() < 0.5 else None)
            outcomes["queued"] += 1
        except MatchupError as e:
            assert str(e) and "\n" not in str(e).strip(), (spec, str(e))
            outcomes["refused"] += 1
    assert outcomes["refused"] > 150 and sum(outcomes.values()) == 300


URL_KEYS = {"cost": COSTS, "metric": QUALITIES, "classes": ["ConvNet", "Transformer", "ViT"],
            "scale": ["≈1M", "?"], "source": ["both", "measured here", "x"], "budget": ["nan", "5", "-1", "1e400"],
            "tolerance": ["0.1", "abc"], "matching": ["fair", "x"], "find": ["eva02", "![x](p.png)", ""],
            "params": ["0:100", "a:b", "5:1"], "res": ["224:384", "x"], "ood": ["imagenet-a", "x"],
            "checkpoint": ["resnet50.a1_in1k", "no.such"], "utilisation": ["0.4", "9"], "tools": ["1", "x"],
            "on": ["all", "x"], "table": ["evals", "x"], "colour": ["family", "x"]}
PAGES = ["pages/overview.py", "pages/frontier.py", "pages/budget.py", "pages/when.py", "pages/robustness.py",
         "pages/scaling.py", "pages/seed_paper.py", "pages/checkpoint.py", "pages/training_crosscheck.py",
         "pages/results.py", "pages/catalog.py", "pages/crosscheck.py"]


def test_page_urls_never_show_an_exception(full_db, tmp_path, monkeypatch):
    db = tmp_path / "full.duckdb"
    shutil.copy(full_db, db)
    monkeypatch.setenv("MATCHUP_DB", str(db))
    rng = random.Random(SEED + 3)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    for _ in range(60):
        page = rng.choice(PAGES)
        at.switch_page(page)
        at.query_params.clear()
        for key in rng.sample(list(URL_KEYS), rng.randint(1, 5)):
            at.query_params[key] = rng.choice(URL_KEYS[key])
        url = json.dumps({"page": page, **{k: v for k, v in at.query_params.items()}})
        at.run()
        assert not at.exception, (url, at.exception)
        assert not [e.value for e in at.error if "Unexpected" in e.value], url
