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
    """No test may write the project's own data/matchup.duckdb or data/cache."""
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "default.duckdb"))
    monkeypatch.setenv("MATCHUP_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "matchup.duckdb", lock_timeout_s=30)


@pytest.fixture(scope="session")
def catalog_db(tmp_path_factory) -> Path:
    """A database with the catalog (and no published results) refreshed once per session; tests
    copy it before writing."""
    path = tmp_path_factory.mktemp("catalog") / "catalog.duckdb"
    catalog.refresh(Store(path), load_published=False)
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


# -- a temporary Hub cache with tiny timm checkpoints, and generated ImageNet-style images ----------
TINY_CHECKPOINTS = ("test_vit.r160_in1k", "test_convnext.r160_in1k", "test_resnet.r160_in1k")
SYNSETS = ("n01440764", "n01443537", "n01484850", "n01491361")  # tench, goldfish, shark, tiger shark


def write_hub_checkpoint(cache: Path, checkpoint: str, seed: int = 0, revision: str | None = None,
                         poison=None) -> str:
    """A checkpoint laid out as huggingface_hub caches it: refs/main -> snapshots/<sha>/."""
    import hashlib
    import timm
    import torch
    from safetensors.torch import save_file
    revision = revision or hashlib.sha1(f"{checkpoint}-{seed}".encode()).hexdigest()
    repo = cache / f"models--timm--{checkpoint}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = timm.create_model(checkpoint.split(".")[0], pretrained=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if poison:
        poison(state)
    save_file(state, str(snapshot / "model.safetensors"))
    return revision


def make_image_folder(root: Path, synsets=SYNSETS, per_class: int = 3, size=(500, 375), seed: int = 0,
                      flat: bool = False, names=None) -> list[Path]:
    """Noise-and-gradient JPEGs, one folder per synset (or flat)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    paths = []
    for c, synset in enumerate(synsets):
        folder = root if flat else root / synset
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = size
            base = np.linspace(0, 255, w)[None, :, None] * np.array([1.0, 0.5 + 0.1 * c, 0.2])[None, None, :]
            pixels = np.clip(base + rng.normal(0, 60, (h, w, 3)), 0, 255).astype("uint8")
            name = names.pop(0) if names else f"{synset}_{i}.JPEG"
            path = folder / name
            Image.fromarray(pixels).save(path, quality=90)
            paths.append(path)
    return paths


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("hub")
    for seed, checkpoint in enumerate(TINY_CHECKPOINTS):
        write_hub_checkpoint(cache, checkpoint, seed)
    return cache


@pytest.fixture
def offline_hub(monkeypatch, hub_cache) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub_cache


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("val")
    make_image_folder(root)
    return root


@pytest.fixture(autouse=True)
def _no_embedded_worker(monkeypatch):
    """Apps under test run no worker of their own unless a test starts one on purpose."""
    monkeypatch.setenv("MATCHUP_NO_EMBEDDED_WORKER", "1")


@pytest.fixture(autouse=True)
def _no_sync_network(monkeypatch):
    """No test reaches timm's repository: a sync goes to a closed loopback port."""
    monkeypatch.setenv("MATCHUP_TIMM_RESULTS_URL", "http://127.0.0.1:9")


@pytest.fixture(scope="session")
def full_db(catalog_db, shared_results, tmp_path_factory) -> Path:
    """The catalog plus all of timm's published CSVs (skips where ../shared is absent)."""
    path = tmp_path_factory.mktemp("full") / "full.duckdb"
    shutil.copy(catalog_db, path)
    catalog.import_dir(Store(path), shared_results)
    return path
