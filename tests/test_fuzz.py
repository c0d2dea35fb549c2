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


# -- issue 36: the prompt, class-name and cache-metadata grammars ------------------------------------------
PROMPT_PIECES = ["a photo of a ", "{c}", "{c}", ".", " of the ", "{{", "}}", "{", "}", "{c.__class__}", "{c!r}",
                 "{c!s}", "{c[0]}", "{c:>5}", "{c:>400000000}", "{c.upper}", "{0}", "{}", "{x}", "\x00", "é",
                 "💥", "{{c}}", "\t", "%s", "{c}" * 3, "x" * 600]
PLAIN_PIECES = ["a photo of a ", "{c}", "{c}", ".", " of the ", "{{", "}}", "é", "%s"]


def _filled(template: str, name: str) -> str:
    """What a template must say, by an independent reading: {c} is the name, {{ and }} are braces."""
    out, i = [], 0
    while i < len(template):
        if template.startswith("{{", i) or template.startswith("}}", i):
            out.append(template[i])
            i += 2
        elif template.startswith("{c}", i):
            out.append(name)
            i += 3
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def test_templates_are_taken_only_as_written_or_refused_in_one_line(tmp_path):
    from engine.measure import zeroshot
    rng = random.Random(SEED + 4)
    path = tmp_path / "templates.txt"
    outcomes = {"taken": 0, "refused": 0}
    for _ in range(400):
        lines = ["".join(rng.choice(PROMPT_PIECES if rng.random() < 0.3 else PLAIN_PIECES)
                         for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 3))]
        path.write_bytes("\n".join(lines).encode())
        try:
            _, templates = zeroshot.resolve_templates(str(path), False)
        except zeroshot.ZeroShotError as e:
            assert str(e) and "\n" not in str(e), (lines, str(e))
            outcomes["refused"] += 1
            continue
        for template in templates:
            assert "{c}" in template and "\x00" not in template and len(template) <= zeroshot.MAX_TEMPLATE_CHARS
            assert zeroshot.fill(template, "golden retriever") == _filled(template, "golden retriever"), template
        outcomes["taken"] += 1
    assert outcomes["taken"] > 40 and outcomes["refused"] > 100


def test_class_names_files_pair_every_folder_rightly_or_are_refused(tmp_path):
    from engine.measure import zeroshot
    from tests.conftest import make_image_folder
    folders = ["apple", "Banana", "cherry", "dog_house"]
    make_image_folder(tmp_path / "set", synsets=folders, per_class=1, size=(8, 8))
    ordered = sorted(folders)   # the folders' order: Banana, apple, cherry, dog_house
    names = ["apple", "Banana", "cherry", "dog house", "a ripe banana", "an apple", "", "  ", "\x00", "x\ty",
             "Cherry", "💥", "a" * 200]
    rng = random.Random(SEED + 5)
    path = tmp_path / "names.txt"
    outcomes = {"taken": 0, "refused": 0}
    for _ in range(250):
        shuffled = rng.sample(folders, len(folders))
        if rng.random() < 0.5:   # folder<TAB>name, sometimes missing, doubled or unknown folders
            chosen = {f: rng.choice(names) for f in shuffled}
            lines = [f"{f}\t{n}" for f, n in chosen.items()]
            if rng.random() < 0.3:
                lines.append(rng.choice(["kiwi\tx", f"{folders[0]}\tagain", "no tab here"]))
            if rng.random() < 0.2:
                lines.pop(0)
        elif rng.random() < 0.5:  # a plain list of new names (a wrong count now and then)
            lines = rng.sample(names[4:6] + ["a cherry", "a kennel", "fruit", "pet"], rng.choice([3, 4, 4, 4]))
        else:                    # a plain list in some order, folder names among it
            lines = [rng.choice(names + folders) for _ in range(rng.choice([3, 4, 4, 5]))]
        path.write_bytes("\n".join(lines).encode())
        try:
            opened = zeroshot.open_folder(tmp_path / "set", classnames=path)
        except zeroshot.ZeroShotError as e:
            assert str(e) and "Traceback" not in str(e), (lines, str(e))
            outcomes["refused"] += 1
            continue
        outcomes["taken"] += 1
        pairs = dict(zip(ordered, opened.classnames, strict=True))
        if "\t" in lines[0]:     # the file's own mapping, whatever its order
            assert all(pairs[f] == n.strip() for f, _, n in (line.partition("\t") for line in lines)), lines
        else:                    # a plain list never names another folder
            own = {zeroshot.normalised(zeroshot.display_name(f)): f for f in ordered}
            assert all(own.get(zeroshot.normalised(n), f) == f for f, n in pairs.items()), lines
    assert outcomes["taken"] > 20 and outcomes["refused"] > 50


def _json_value(rng: random.Random, depth: int = 0):
    """A random JSON value: what a damaged or hostile cache metadata file may hold."""
    kind = rng.choice(["null", "bool", "int", "float", "str", "list", "dict"] if depth < 4 else ["int", "str", "null"])
    return {"null": lambda: None, "bool": lambda: rng.random() < 0.5,
            "int": lambda: rng.choice([0, -1, 3, 2 ** 64, 10 ** 30]),
            "float": lambda: rng.choice([0.5, -1e308, 1e-9]), "str": lambda: rng.choice(["", "x", "1", "0", "pooled"]),
            "list": lambda: [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
            "dict": lambda: {rng.choice(["format", "provenance", "bad", "image_checks", "meta_mac", "shape", "0",
                                         "one"]): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}}[kind]()


def _mutated(rng: random.Random, meta):
    """The real metadata with one part replaced by a random value (or a deep nesting, or garbage)."""
    roll = rng.random()
    if roll < 0.1:
        return "[" * 200_000 + "]" * 200_000
    if roll < 0.2:
        return rng.choice(["{not json", "", "\x00", "null", "[]", '"meta"', "1e999"])
    meta = json.loads(json.dumps(meta))
    target = meta
    path = [k for k in ("provenance", "bad") if isinstance(meta.get(k), dict) and rng.random() < 0.4]
    for key in path[:1]:
        target = meta[key]
    key = rng.choice(list(target) + ["extra"]) if target else "extra"
    target[key] = _json_value(rng)
    return json.dumps(meta)


def test_cache_metadata_of_any_shape_is_a_miss_never_a_crash(tmp_path):
    import numpy as np
    from engine.measure import decoded, probe
    rng = random.Random(SEED + 6)
    cache = decoded.DecodedCache(tmp_path / "cache", budget_bytes=1 << 30)
    config = {"input_size": (3, 8, 8)}
    made_from = {"dataset_fingerprint": "f", "files_sha256": "s", "n_images": 3, "pixels": [[3, 8, 8], "bicubic", 1.0,
                 "center"], "shape": [3, 3, 8, 8], "dtype": "uint8"}
    writer = cache.writer("k" * 32, 3, config, made_from)
    writer.write([0, 1, 2], np.arange(3 * 192, dtype=np.uint8).reshape(3, 3, 8, 8), [True, True, False])
    writer.mark_bad(2, "unreadable")
    meta_path = writer.commit() / "meta.json"
    original = meta_path.read_text()
    assert cache.get("k" * 32, made_from) is not None
    features = probe.Features("m", "r", np.ones((4, 5), np.float32), np.arange(4), {1: "x"}, "pre_logits", {}, 1.0, False)
    feature_from = {"n_images": 5, "what": "fuzz"}
    probe._write_cache("f" * 64, features, feature_from)
    feature_path = probe._cache_path("f" * 64)
    with np.load(feature_path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    feature_meta = json.loads(str(arrays["meta"]))
    misses = 0
    for _ in range(120):
        changed = _mutated(rng, json.loads(original))
        meta_path.parent.mkdir(exist_ok=True)
        if not (meta_path.parent / "images.u8").exists():   # a miss dropped the entry: put it back
            shutil.rmtree(meta_path.parent)
            writer = cache.writer("k" * 32, 3, config, made_from)
            writer.write([0, 1, 2], np.arange(3 * 192, dtype=np.uint8).reshape(3, 3, 8, 8), [True, True, False])
            writer.mark_bad(2, "unreadable")
            writer.commit()
        meta_path.write_text(changed)
        entry = cache.get("k" * 32, made_from)
        assert entry is None or changed == original, changed[:200]
        misses += entry is None
        np.savez(feature_path, **{**arrays, "meta": _mutated(rng, feature_meta),
                                  **({"kept": arrays["kept"].astype(rng.choice(["float64", "int8", "U1"]))}
                                     if rng.random() < 0.2 else {})})
        assert probe._read_cache("f" * 64, "m", "r", {}, feature_from) is None
        if rng.random() < 0.2:  # a damaged file: truncated, emptied or a flipped byte
            data = bytearray(feature_path.read_bytes()) if feature_path.exists() else bytearray(b"PK")
            flipped = bytes(data[:40]) + bytes([data[40] ^ 0xFF]) + bytes(data[41:]) if len(data) > 41 else b""
            feature_path.write_bytes(rng.choice([bytes(data[:len(data) // 2]), b"", flipped]))
            assert probe._read_cache("f" * 64, "m", "r", {}, feature_from) is None
    assert misses > 100
