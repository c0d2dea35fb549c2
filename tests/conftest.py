import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_RESULTS = ROOT.parent / "shared" / "reference" / "timm-results"
sys.path.insert(0, str(ROOT))

from engine import catalog  # noqa: E402
from engine.store import Store  # noqa: E402


@pytest.fixture(autouse=True)
def _no_default_db(monkeypatch, tmp_path):
    """No test may write the project's own data/matchup.duckdb."""
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "default.duckdb"))


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "matchup.duckdb", lock_timeout_s=30)


@pytest.fixture(scope="session")
def catalog_db(tmp_path_factory) -> Path:
    """A database with the catalog refreshed once per session; tests copy it before writing."""
    path = tmp_path_factory.mktemp("catalog") / "catalog.duckdb"
    catalog.refresh(Store(path))
    return path


@pytest.fixture
def catalog_store(catalog_db, tmp_path) -> Store:
    copy = tmp_path / "catalog-copy.duckdb"
    shutil.copy(catalog_db, copy)
    return Store(copy, lock_timeout_s=30)


@pytest.fixture(scope="session")
def shared_results() -> Path:
    if not (SHARED_RESULTS / "results-imagenet.csv").exists():
        pytest.skip(f"timm's published CSVs are not at {SHARED_RESULTS} (../shared/reference is "
                    "laid beside the repo on dev machines and in CI)")
    return SHARED_RESULTS


def run_cli(*args: str, db: Path | None = None, **kwargs):
    """`python -m engine ...` in a subprocess, as a user would run it."""
    import subprocess
    env = dict(os.environ)
    command = [sys.executable, "-m", "engine", *args] + (["--db", str(db)] if db else [])
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, **kwargs)
