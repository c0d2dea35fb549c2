"""No input reaches a traceback (issue 22): environment values, options, files, databases, the SQL
box, user text shown on pages, and the last line of defence of the CLI and the app."""
import hashlib
import os
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.__main__ import main
from engine.store import Store
from tests.conftest import ROOT


def one_line_error(capsys, code, expected_code=2) -> str:
    err = capsys.readouterr().err.strip()
    assert code == expected_code, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.endswith(errors[0]) and "Traceback" not in err, err
    return errors[0]


def argparse_refusal(capsys, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    return err


@pytest.mark.parametrize("name", ("MATCHUP_JOB_TIMEOUT", "MATCHUP_HEARTBEAT_S", "MATCHUP_LOCK_TIMEOUT"))
@pytest.mark.parametrize("value", ["abc", "nan", "inf", "0", "-1"])
def test_bad_environment_values_are_refused_at_start_with_the_variable_named(name, value, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(name, value)
    err = one_line_error(capsys, main(["--db", str(tmp_path / "m.duckdb"), "jobs", "list"]))
    assert name in err and "from" in err  # the variable and its valid range


@pytest.mark.parametrize("argv", [["worker", "--poll", "0"], ["worker", "--poll", "-1"], ["worker", "--poll", "nan"],
                                  ["analyze", "scaling", "--cost", "gflops", "--quality", "imagenet.top1", "--law", "foo"],
                                  ["analyze", "budget", "--quality", "imagenet.top1", "--seed", "-1"],
                                  ["probe", "x", "--data", ".", "--seed", "-1"], ["jobs", "list", "--limit", "0"]])
def test_bad_options_are_refused_in_one_line(argv, capsys):
    err = argparse_refusal(capsys, argv)
    assert argv[-2] in err  # names the option


def test_an_empty_explicit_list_is_refused_not_read_as_everything(catalog_db, tmp_path, capsys):
    db = tmp_path / "m.duckdb"
    shutil.copy(catalog_db, db)
    for argv in (["sweep", "--checkpoints", "", "--data", str(tmp_path), "--dry-run"],
                 ["analyze", "budget", "--cost", "gflops", "--quality", "imagenet.top1", "--budgets", "1",
                  "--classes", ","]):
        err = one_line_error(capsys, main(["--db", str(db), *argv]))
        assert "names nothing" in err


@pytest.mark.parametrize("what", ["binary", "/proc/self/mem", "a folder"])
def test_labels_and_id_files_that_are_no_text_are_refused(what, tmp_path, capsys, image_folder, catalog_db):
    path = {"binary": tmp_path / "labels.txt", "/proc/self/mem": "/proc/self/mem", "a folder": tmp_path}[what]
    if what == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    err = one_line_error(capsys, main(["--db", str(tmp_path / "m.duckdb"), "eval", "resnet50.a1_in1k", "--data",
                                       str(image_folder), "--labels", str(path)]))
    assert "Labels file" in err
    db = tmp_path / "c.duckdb"
    shutil.copy(catalog_db, db)
    err = one_line_error(capsys, main(["--db", str(db), "sweep", "--from-file", str(path), "--data",
                                       str(image_folder), "--dry-run"]))
    assert "--from-file" in err


def test_db_export_quotes_its_path_and_refuses_a_file(store, tmp_path, capsys):
    store.count("jobs")  # a migrated database
    odd = tmp_path / "it's; DROP TABLE jobs; --"
    assert main(["--db", str(store.path), "db", "export", str(odd)]) == 0
    capsys.readouterr()
    assert (odd / "jobs.parquet").is_file() and store.count("jobs") == 0
    assert set(store.info()["tables"]) == set(__import__("engine.store", fromlist=["TABLES"]).TABLES)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    err = one_line_error(capsys, main(["--db", str(store.path), "db", "export", str(blocker)]))
    assert "Cannot export to" in err


def test_damaged_and_unreachable_databases_get_one_line(tmp_path, capsys, store):
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(os.urandom(64 * 1024))
    assert "Cannot open the Matchup database" in one_line_error(capsys, main(["--db", str(corrupt), "db", "info"]))
    one_line_error(capsys, main(["--db", "/proc/matchup-cannot-live-here.duckdb", "db", "info"]))
    # a schema version row that disagrees with the tables: refused, the file left as it was
    store.count("jobs")
    with store.transaction() as con:
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    before = hashlib.sha256(store.path.read_bytes()).hexdigest()
    err = one_line_error(capsys, main(["--db", str(store.path), "db", "info"]))
    assert "schema version" in err and "left unchanged" in err
    assert hashlib.sha256(store.path.read_bytes()).hexdigest() == before


def test_an_unexpected_error_is_one_line_and_a_log_file(monkeypatch, tmp_path, capsys):
    from engine.cli import db as cli  # the command group that `db info` runs
    monkeypatch.setenv("MATCHUP_LOG_DIR", str(tmp_path / "logs"))

    def broken(args, store):
        raise ValueError("cannot reshape array of size 0 into shape (3,224,224)")
    monkeypatch.setattr(cli, "cmd_db", broken)
    err = one_line_error(capsys, main(["--db", str(tmp_path / "m.duckdb"), "db", "info"]), expected_code=1)
    assert "Unexpected ValueError: cannot reshape" in err
    [log] = (tmp_path / "logs").glob("error-*.log")
    assert "Traceback" in log.read_text() and str(log) in err
    main(["--db", str(tmp_path / "m.duckdb"), "db", "info", "--debug"])
    assert "Traceback" in capsys.readouterr().err  # --debug shows it as well


def test_a_page_error_is_one_line_not_a_traceback(monkeypatch, tmp_path, full_db):
    copy = tmp_path / "full.duckdb"
    shutil.copy(full_db, copy)
    monkeypatch.setenv("MATCHUP_DB", str(copy))
    monkeypatch.setenv("MATCHUP_LOG_DIR", str(tmp_path / "logs"))
    from ui import loaders

    def broken(*args, **kwargs):
        raise KeyError("budget")
    monkeypatch.setattr(loaders, "budget_grid", broken)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "Unexpected KeyError" in error and "error\\-" in error  # the log file named (escaped for Markdown)


def test_a_refresh_cut_short_is_finished_by_the_next_start(catalog_db, tmp_path, monkeypatch):
    db = tmp_path / "m.duckdb"
    shutil.copy(catalog_db, db)
    store = Store(db)
    with store.transaction() as con:  # what kill -9 between the catalog step and the FLOP counts leaves
        con.execute("DELETE FROM compute")
        con.execute("DELETE FROM training_compute")
        con.execute("DELETE FROM meta WHERE key = 'catalog_complete'")
    assert not store.catalog_complete()
    monkeypatch.setenv("MATCHUP_DB", str(db))
    monkeypatch.setenv("MATCHUP_SNAPSHOT_DIR", str(tmp_path / "no-snapshot"))  # only the catalog steps matter here
    AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert store.catalog_complete() and store.count("compute") > 1500 and store.count("training_compute") > 1500


def test_the_sql_box_takes_joins_long_queries_and_refuses_nul(full_db):
    from engine.store.query import QueryError
    store = Store(full_db)
    frame = store.read_only_query("SELECT a.checkpoint, b.checkpoint FROM checkpoints a JOIN checkpoints b "
                                  "USING (arch) LIMIT 5")
    assert list(frame.columns) == ["checkpoint", "checkpoint_2"] and len(frame) == 5
    long = "SELECT 1 AS one -- " + "x" * 3_000_000
    assert store.read_only_query(long)["one"].tolist() == [1]
    with pytest.raises(QueryError, match="NUL byte"):
        store.read_only_query("SELECT 1\x00")


def test_probe_intervals_with_few_folds_stay_inside_the_metric(tmp_path):
    from engine.measure import probe
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 6)
    features = rng.normal(0, 1, (18, 8)) + labels[:, None] * 0.3
    result = probe.fit(features, labels, ["a", "b", "c"], folds=2)
    for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
        m = result[metric]
        assert 0 <= m["low"] <= m["mean"] <= m["high"] <= 100, (metric, m)
    assert 0 <= result["nll"]["low"] <= result["nll"]["mean"] <= result["nll"]["high"]


def test_user_text_is_shown_literally_on_the_run_page(catalog_db, tmp_path, monkeypatch, offline_hub):
    from engine.jobs import submit
    from tests.conftest import make_image_folder
    hostile = tmp_path / "roots" / "evil ![x](http:pixel.png) <img src=x> **bold**"
    make_image_folder(hostile)
    db = tmp_path / "m.duckdb"
    shutil.copy(catalog_db, db)
    monkeypatch.setenv("MATCHUP_DB", str(db))
    monkeypatch.setenv("MATCHUP_DATA_ROOTS", str(tmp_path / "roots"))
    monkeypatch.delenv("MATCHUP_READONLY", raising=False)
    submit.enqueue(Store(db), {"kind": "eval", "checkpoint": "test_vit.r160_in1k", "data": str(hostile), "limit": 4},
                 roots=[tmp_path / "roots"])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/run.py").run()
    [label] = [m.value for m in at.markdown if "queued" in m.value]
    import re
    unescaped = re.compile(r"(?<!\\)(!\[|<img|\*\*bold)")
    assert not unescaped.search(label) and "\\!\\[x\\]\\(http" in label  # shown as written, escaped for Markdown
    find = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    find.switch_page("pages/frontier.py")
    find.query_params["find"] = "![x](http://127.0.0.1:9/p.png)"
    find.run()
    found = [c.value for c in find.caption if "point(s) highlighted" in c.value]
    assert found and not unescaped.search(found[0])


# -- issue 36: the third probe -------------------------------------------------------------------------
def test_csv_exports_never_carry_a_formula():
    """OWASP's rule for every CSV a page offers: a text cell starting with = + - @ tab or CR is
    prefixed with ', numbers stay numbers; and no page writes CSV any other way."""
    import ast
    import csv
    import io
    import pandas as pd
    from ui.tables import csv_text
    frame = pd.DataFrame({"dataset_name": ["=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(A1)", "\tx", "\ry", "pets"],
                          "top1": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], "=HYPERLINK(\"x\")": list("abcdefg")})
    rows = list(csv.reader(io.StringIO(csv_text(frame), newline="")))
    assert rows[0] == ["dataset_name", "top1", "'=HYPERLINK(\"x\")"]
    assert [r[0] for r in rows[1:]] == ["'=cmd|' /C calc'!A0", "'+1", "'-2+3", "'@SUM(A1)", "'\tx", "'\ry", "pets"]
    assert rows[1][1] == "-1.5"
    for path in [*sorted((ROOT / "ui").glob("*.py")), *sorted((ROOT / "pages").glob("*.py"))]:
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute) and n.attr == "to_csv"]
        assert path.name == "tables.py" or not calls, f"{path.name} writes CSV without ui.tables.csv_text"


def test_with_forwarded_addresses_trusted_the_loopback_gets_no_run_controls(catalog_db, tmp_path, monkeypatch):
    db = tmp_path / "m.duckdb"
    shutil.copy(catalog_db, db)
    monkeypatch.setenv("MATCHUP_DB", str(db))
    monkeypatch.delenv("MATCHUP_READONLY", raising=False)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/run.py").run()
    assert not at.exception and not at.radio
    assert any("trusts forwarded addresses" in i.value and "FORWARDED_ALLOW_IPS" in i.value for i in at.info)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/run.py").run()
    assert not at.exception and at.radio(key="run_kind")
