"""What the app writes inside a checkout (its database, caches, the sign-in secrets) is ignored by
git: after a first start and a sign-in configuration, `git status` of the checkout stays clean, so
nobody commits `.streamlit/secrets.toml` by accident."""
import os
import shutil
import subprocess
import sys

from tests.conftest import ROOT

FIRST_START = ("from streamlit.testing.v1 import AppTest; at = AppTest.from_file('app.py', default_timeout=180).run(); "
               "assert not at.exception, at.exception; print('errors:', [e.value for e in at.error])")
SECRETS = """[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "a-long-random-string"
client_id = "matchup"
client_secret = "not-for-git"
server_metadata_url = "https://login.example.org/.well-known/openid-configuration"
"""


def _git(folder, *args):
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=folder,
                          check=True, capture_output=True, text=True).stdout


def test_first_start_and_sign_in_configuration_leave_git_status_clean(tmp_path):
    checkout = tmp_path / "checkout"
    tracked = _git(ROOT, "ls-files", "-z").split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    _git(checkout, "init", "-q")
    _git(checkout, "add", "-A")
    _git(checkout, "commit", "-q", "-m", "as tracked")

    env = {k: v for k, v in os.environ.items() if k not in ("MATCHUP_DB", "MATCHUP_CACHE")}
    started = subprocess.run([sys.executable, "-c", FIRST_START], cwd=checkout, env=env,
                             capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr[-2000:]
    assert (checkout / "data" / "matchup.duckdb").exists(), "the first start wrote its database elsewhere"
    (checkout / ".streamlit").mkdir(exist_ok=True)
    (checkout / ".streamlit" / "secrets.toml").write_text(SECRETS)
    (checkout / "data" / "cache" / "decoded" / "k").mkdir(parents=True)
    (checkout / "data" / "cache" / "decoded" / "k" / "meta.json").write_text("{}")

    assert _git(checkout, "status", "--porcelain", "--untracked-files=all") == ""
