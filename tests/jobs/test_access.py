"""Who may run: the runners and admins lists, the per-user queue limit, the shell's attribution."""
import getpass
import json

import pytest

from engine.jobs import access
from tests.conftest import run_cli

CHECKPOINT = "resnet18.a1_in1k"


def test_runners_lists_are_checked_and_malformed_entries_refused(monkeypatch):
    people = access.parse_people("alice@lab.org, @dept.lab.org  bob@x.io", "MATCHUP_RUNNERS")
    assert "ALICE@lab.org" in people and "zed@dept.lab.org" in people and "zed@lab.org" not in people
    with pytest.raises(access.AccessError, match="MATCHUP_RUNNERS holds 'alice@'"):
        access.parse_people("bob@x.io, alice@", "MATCHUP_RUNNERS")
    monkeypatch.setenv("MATCHUP_ADMINS", "lab.org")
    with pytest.raises(access.AccessError, match="MATCHUP_ADMINS holds 'lab.org'.*@lab.org"):
        access.check_lists()
    verified = access.identity_from_claims({"sub": "a", "email": "alice@lab.org", "email_verified": True})
    assert access.decide(verified, people, access.People()).allowed
    unverified = access.identity_from_claims({"sub": "a", "email": "alice@lab.org"})
    decision = access.decide(unverified, people, access.People())
    assert not decision.allowed and "verified" in decision.why
    assert unverified.requested_by.startswith("sub:")


def test_a_user_may_queue_only_so_many_jobs(store, monkeypatch):
    from engine.jobs.job_specs import JobError
    from engine.jobs.submit import enqueue
    monkeypatch.setenv("MATCHUP_MAX_QUEUED_PER_USER", "2")
    for size in (8, 16):
        enqueue(store, {"kind": "bench", "checkpoint": CHECKPOINT, "batch_size": size}, requested_by="alice@lab.org")
    with pytest.raises(JobError, match="alice@lab.org already has 2 jobs queued or running.*MATCHUP_MAX_QUEUED_PER_USER"):
        enqueue(store, {"kind": "bench", "checkpoint": CHECKPOINT, "batch_size": 32}, requested_by="alice@lab.org")
    enqueue(store, {"kind": "bench", "checkpoint": CHECKPOINT, "batch_size": 32}, requested_by="bob@lab.org")
    assert store.jobs_frame()["requested_by"].value_counts().to_dict() == {"alice@lab.org": 2, "bob@lab.org": 1}


def test_the_shell_records_its_os_user(tmp_path):
    db = tmp_path / "cli.duckdb"
    added = run_cli("jobs", "add", "bench", CHECKPOINT, "--batch-size", "8", db=db)
    assert added.returncode == 0, added.stderr
    listed = run_cli("jobs", "list", "--json", db=db)
    [job] = json.loads(listed.stdout)
    assert job["requested_by"] == f"cli:{getpass.getuser()}"
    assert f"cli:{getpass.getuser()}" in run_cli("jobs", "list", db=db).stdout


def test_a_malformed_runners_list_stops_the_app_at_start_naming_the_entry(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    from tests.conftest import ROOT
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "m.duckdb"))
    monkeypatch.setenv("MATCHUP_RUNNERS", "alice@lab.org, bob@")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    import re
    assert any("MATCHUP_RUNNERS holds 'bob@'" in re.sub(r"\\(.)", r"\1", e.value) for e in at.error)


def test_the_servers_own_machine_is_told_apart_from_the_network():
    from ui.access import is_loopback
    for local in (None, "127.0.0.1", "127.0.1.1", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(local), local
    for remote in ("10.1.2.3", "::ffff:10.1.2.3", "192.168.0.7", "2001:db8::1", "fe80::1%eth0", "not an address"):
        assert not is_loopback(remote), remote
