"""The decoded-image cache: each evaluation set's images, decoded and preprocessed once per pixel
preprocessing (size, interpolation, crop), kept as one memory-mapped uint8 array on disk.

Decoding JPEGs costs more than a small model's forward pass, so a sweep decodes every image once
per group of checkpoints that see the same pixels, and every later checkpoint, sweep or `eval`
reads the array instead. Mean/std normalisation happens on the device, so it never splits a
group. An entry is written under a temporary name and renamed when complete: a crash leaves no
half entry. A size budget evicts the least recently used entries.

    $MATCHUP_CACHE/decoded/<key>/images.u8   (N, 3, H, W) uint8
    $MATCHUP_CACHE/decoded/<key>/meta.json   shape, undecodable images, what it was made from
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.store import cache_key

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data" / "cache"
FREE_DISK_SHARE = 0.5  # the default budget: half the disk space free when the cache is opened
ABANDONED_AFTER_S = 6 * 3600  # a partial entry untouched this long has no live writer
META_ALLOWANCE = 1 << 16  # bytes counted for an entry's meta.json (its list of undecodable images)


def cache_root() -> Path:
    """$MATCHUP_CACHE, else data/cache in the project."""
    return Path(os.environ.get("MATCHUP_CACHE") or DEFAULT_ROOT).expanduser()


def pixel_key(config: dict) -> tuple:
    """What changes the pixels a model sees (not mean/std, applied on the device)."""
    return (tuple(config["input_size"]), config["interpolation"], float(config["crop_pct"]),
            config["crop_mode"])


@dataclass
class Entry:
    """A complete cached group: its images (read-only memmap) and the images that failed to decode."""
    key: str
    path: Path
    images: np.memmap
    bad: dict[int, str]  # index -> why it could not be decoded

    def __len__(self) -> int:
        return len(self.images)


class DecodedCache:
    """The cache under `root`, kept within `budget_bytes` (default: half the free disk)."""

    def __init__(self, root: Path | None = None, budget_bytes: int | None = None):
        self.root = Path(root or cache_root()) / "decoded"
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_abandoned()
        if budget_bytes is None:
            budget_bytes = int(shutil.disk_usage(self.root).free * FREE_DISK_SHARE) + self.total_bytes()
        self.budget_bytes = int(budget_bytes)

    def _remove_abandoned(self) -> None:
        """Partial entries of writers that died (kill -9, a crash) long ago free their disk."""
        cutoff = time.time() - ABANDONED_AFTER_S
        for folder in self.root.glob(".*.partial"):
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:
                pass

    @staticmethod
    def key(dataset, config: dict) -> str:
        """One entry per (evaluation set, its image selection, pixel preprocessing)."""
        return cache_key({"kind": "decoded", "dataset_fingerprint": dataset.fingerprint,
                          "files": [str(f) for f in dataset.files] if dataset.hf_dataset is None else len(dataset),
                          "pixels": list(pixel_key(config))})[:32]

    @staticmethod
    def nbytes(n_images: int, config: dict) -> int:
        """Disk an entry takes: its pixels, plus room for its meta.json."""
        _, height, width = config["input_size"]
        return n_images * 3 * height * width + META_ALLOWANCE

    # -- reading ---------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The complete entry, marked as just used; None when absent."""
        folder = self.root / key
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="r", shape=tuple(meta["shape"]))
        os.utime(folder / "meta.json")  # last used: what eviction orders by
        return Entry(key, folder, images, {int(k): v for k, v in meta["bad"].items()})

    def has(self, key: str) -> bool:
        """Whether a complete entry exists (without marking it used)."""
        return (self.root / key / "meta.json").is_file()

    def entries(self) -> list[tuple[Path, int, float]]:
        """(folder, bytes, last used) of every complete entry, least recently used first."""
        found = []
        for folder in self.root.iterdir():
            meta = folder / "meta.json"
            if folder.name.startswith(".") or not meta.is_file():
                continue
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            found.append((folder, size, meta.stat().st_mtime))
        return sorted(found, key=lambda e: e[2])

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    # -- writing ---------------------------------------------------------------------------------
    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.budget_bytes

    def make_room(self, nbytes: int, keep: set[str] = frozenset()) -> list[str]:
        """Evict least recently used entries until `nbytes` more fit in the budget."""
        evicted = []
        for folder, size, _ in self.entries():
            if self.total_bytes() + nbytes <= self.budget_bytes:
                break
            if folder.name in keep:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            evicted.append(folder.name)
        return evicted

    def writer(self, key: str, n_images: int, config: dict, made_from: dict) -> "Writer | None":
        """A writer for a new entry, after making room; None when the entry cannot fit."""
        nbytes = self.nbytes(n_images, config)
        if not self.fits(nbytes):
            return None
        self.make_room(nbytes, keep={key})
        return Writer(self.root, key, (n_images, 3, *config["input_size"][1:]), made_from)


class Writer:
    """Fills one entry under a temporary folder; `commit` publishes it atomically."""

    def __init__(self, root: Path, key: str, shape: tuple, made_from: dict):
        self.root, self.key, self.shape = root, key, shape
        self.tmp = root / f".{key}.{uuid.uuid4().hex[:8]}.partial"
        self.tmp.mkdir(parents=True)
        self.images = np.memmap(self.tmp / "images.u8", dtype=np.uint8, mode="w+", shape=shape)
        self.bad: dict[int, str] = {}
        self.written = 0
        self.made_from = made_from

    def write(self, indices, images, ok) -> None:
        """A batch of preprocessed uint8 images (N, 3, H, W) at dataset indices; `ok` False marks
        images that could not be decoded (their slots stay zero)."""
        for i, index in enumerate(indices):
            if ok[i]:
                self.images[index] = images[i]
            self.written += 1

    def mark_bad(self, index: int, why: str) -> None:
        self.bad[int(index)] = why

    def commit(self) -> Path:
        if self.written != self.shape[0]:
            raise RuntimeError(f"decoded-cache entry {self.key}: {self.written} of {self.shape[0]} written")
        self.images.flush()
        del self.images
        meta = {"shape": list(self.shape), "bad": {str(k): v for k, v in sorted(self.bad.items())},
                "created_at": time.time(), **self.made_from}
        (self.tmp / "meta.json").write_text(json.dumps(meta))
        final = self.root / self.key
        try:
            os.rename(self.tmp, final)
        except OSError:  # another process published the same entry first: keep theirs
            shutil.rmtree(self.tmp, ignore_errors=True)
        return final

    def abort(self) -> None:
        self.images = None
        shutil.rmtree(self.tmp, ignore_errors=True)
