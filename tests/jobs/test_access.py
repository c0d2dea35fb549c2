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


# -- hostile identities and sessions (issue 36) ---------------------------------------------------------
def test_look_alike_addresses_never_pass_the_runners_list():
    runners = access.parse_people("kate@partner.org, @kth.se, @lab.org", "MATCHUP_RUNNERS")
    admins = access.parse_people("kate@partner.org", "MATCHUP_ADMINS")

    def decided(email):
        return access.decide(access.identity_from_claims({"sub": "x", "email": email, "email_verified": True}),
                             runners, admins)
    assert decided("Kate@Partner.ORG").admin and decided("ann@lab.org").allowed and decided("ann@KTH.se").allowed
    for email, why in (("\u212aate@partner.org", "not on this server's runners list"),   # a Kelvin sign, not k
                       ("eve@\u212ath.se", "look-alike character is refused"),
                       ("mallory@evil.com@lab.org", "2 '@' signs"),
                       ("mallory@evil.com\nbob@lab.org", "U\\+000A"),
                       ("mallory@evil.com bob@lab.org", "U\\+0020"),
                       ("eve\u200b@lab.org", "U\\+200B"),
                       ("eve@lab.org\u202e", "U\\+202E")):
        decision = decided(email)
        assert not decision.allowed and not decision.admin, email
        assert __import__("re").search(why, decision.why), (email, decision.why)
    assert "\u212aate@partner.org" not in admins and "eve@\u212ath.se" not in runners


def test_a_session_signed_in_before_its_identitys_last_sign_out_cannot_act(store):
    alice = access.identity_from_claims({"sub": "a", "email": "alice@lab.org", "email_verified": True,
                                         "iat": 1_000_000})
    assert alice.signed_in_at == 1_000_000
    assert store.last_sign_out(alice.requested_by) is None
    assert access.signed_out_since(alice, None) is None
    signed_out = store.record_sign_out(alice.requested_by)
    assert store.last_sign_out("alice@lab.org") == pytest.approx(signed_out)
    assert "older than your last sign-out" in access.signed_out_since(alice, signed_out)
    again = access.identity_from_claims({"sub": "a", "email": "alice@lab.org", "email_verified": True,
                                         "iat": int(signed_out) + 5})
    assert access.signed_out_since(again, signed_out) is None
    no_time = access.identity_from_claims({"sub": "a", "email": "alice@lab.org", "email_verified": True})
    assert access.signed_out_since(no_time, signed_out) is not None


def test_forwarded_addresses_trusted_means_no_run_controls_for_the_loopback(monkeypatch):
    from ui import access as ui_access
    for trusted, untrusted in (("*", True), ("10.0.0.0/8,127.0.0.1", True), ("127.0.0.1", False), ("", False)):
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", trusted)
        assert (ui_access.loopback_untrusted() is not None) == untrusted, trusted


def test_a_session_without_a_socket_peer_is_not_the_servers_own_machine(monkeypatch):
    """Streamlit's agent API serves sessions with no peer address: never taken for the loopback."""
    from streamlit.runtime import context as runtime_context
    from streamlit.runtime.agent.interaction import _RequestContext
    from ui import access as ui_access
    monkeypatch.setattr(runtime_context, "_get_client_context", lambda: _RequestContext([("host", "lab")]))
    assert ui_access.remote_address() == ui_access.NO_PEER
