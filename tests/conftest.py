import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_RESULTS = ROOT.parent / "shared" / "reference" / "timm-results"
sys.path.insert(0, str(ROOT))

from engine.catalog import refresh, timm_published  # noqa: E402
from engine.store import Store  # noqa: E402


@pytest.fixture(autouse=True)
def _no_default_db(monkeypatch, tmp_path):
    """No test may write the project's own data/matchup.duckdb, data/cache or the user's cache key."""
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "default.duckdb"))
    monkeypatch.setenv("MATCHUP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MATCHUP_CACHE_KEY", str(tmp_path / "key" / "cache.key"))


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "matchup.duckdb", lock_timeout_s=30)


@pytest.fixture(scope="session")
def catalog_db(tmp_path_factory) -> Path:
    """A database with the catalog (and no published results) refreshed once per session; tests
    copy it before writing."""
    path = tmp_path_factory.mktemp("catalog") / "catalog.duckdb"
    refresh.refresh(Store(path), load_published=False)
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
    monkeypatch.setenv("MATCHUP_OPEN_CLIP_RESULTS_URL", "http://127.0.0.1:9")


@pytest.fixture(scope="session")
def full_db(catalog_db, shared_results, tmp_path_factory) -> Path:
    """The catalog plus all of timm's published CSVs (skips where ../shared is absent) and the
    shipped OpenCLIP snapshot (the image-text zoo's published results)."""
    from engine.catalog import image_text_published
    path = tmp_path_factory.mktemp("full") / "full.duckdb"
    shutil.copy(catalog_db, path)
    timm_published.import_dir(Store(path), shared_results)
    image_text_published.load_snapshot(Store(path))
    return path


# -- a tiny OpenCLIP model in the temporary Hub cache (image-text zoo) -----------------------------
TINY_CLIP_REPO = "matchup-test/tiny-clip"
TINY_CLIP_CONFIG = {
    "model_cfg": {"embed_dim": 32,
                  "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}},
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                       "interpolation": "bicubic", "resize_mode": "shortest"}}


def write_open_clip_checkpoint(cache: Path, repo_id: str = TINY_CLIP_REPO, seed: int = 0) -> Path:
    """A tiny CLIP (ViT image tower, transformer text tower) with seeded weights, laid out as the
    Hub caches an OpenCLIP repo: open_clip_config.json + open_clip_model.safetensors."""
    import hashlib
    import json
    import open_clip
    import torch
    from safetensors.torch import save_file
    revision = hashlib.sha1(f"{repo_id}-{seed}".encode()).hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "open_clip_config.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG["model_cfg"])
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(snapshot / "open_clip_model.safetensors"))
    return snapshot


@pytest.fixture(scope="session")
def clip_hub(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("clip-hub")
    write_open_clip_checkpoint(cache, seed=3)  # seed 3: its predictions on test_zeroshot's images vary by class
    return cache


@pytest.fixture
def offline_clip_hub(monkeypatch, clip_hub) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(clip_hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return clip_hub


def write_open_clip_docs(folder: Path, models=(("ViT-B-32", "laion2b_s34b_b79k"), ("convnext_base_w", "laion2b_s13b_b82k"))) -> Path:
    """OpenCLIP's three docs/ tables in their published layout, with made-up numbers."""
    from engine.catalog import image_text_published as published
    folder.mkdir(parents=True, exist_ok=True)
    zeroshot_columns = [published.AVERAGE_COLUMN, *published.TASKS]
    lines = [",".join(["name", "pretrained", "params (M)", "FLOPs (B)", *zeroshot_columns])]
    lines += [",".join([m, t, "151.3", "14.8", *(f"{0.5 + 0.01 * i:.4f}" for i in range(len(zeroshot_columns)))])
              for m, t in models]
    (folder / published.RESULTS_FILE).write_text("\n".join(lines) + "\n")
    retrieval = [f"{d} {side} retr. R@{k}" for d in ("Flickr", "MSCOCO") for side in ("image", "text") for k in (1, 5, 10)]
    lines = [",".join(["name", "pretrained", "params (M)", "FLOPs (B)", "Average score", *retrieval])]
    lines += [",".join([m, t, "151.3", "14.8", "0.6", *("0.7" for _ in retrieval)]) for m, t in models]
    (folder / published.RETRIEVAL_FILE).write_text("\n".join(lines) + "\n")
    lines = ["model,image_size,image_width,text_width,embed_dim,mparams,image_mparams,text_mparams,gflops,image_gflops,text_gflops"]
    lines += [f"{m},224,768,512,512,151.28,87.85,63.43,14.78,8.82,5.96" for m, _ in models]
    (folder / published.PROFILE_FILE).write_text("\n".join(lines) + "\n")
    return folder
