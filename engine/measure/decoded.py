"""The decoded-image cache: each evaluation set's images, decoded and preprocessed once per pixel
preprocessing (size, interpolation, crop), kept as one memory-mapped uint8 array on disk.

Decoding JPEGs costs more than a small model's forward pass, so a sweep decodes every image once
per group of checkpoints that see the same pixels, and every later checkpoint, sweep or `eval`
reads the array instead. Mean/std normalisation happens on the device, so it never splits a
group. An entry is written under a temporary name and renamed when complete: a crash leaves no
half entry. A size budget evicts the least recently used entries.

An entry proves what it holds: meta.json records its provenance (the dataset's fingerprint, the
hash of its file list, the pixel preprocessing, shape and dtype), a keyed checksum of every image
and a keyed checksum of itself (engine.measure.cache_mac: an entry written without this user's
key is a miss). A read that finds anything else (another provenance, a truncated array, an edited
or unreadable meta.json of any shape) is a miss; an image whose bytes no longer match its checksum
stops the read (CorruptEntry) and the caller decodes again. A cache that cannot be written (read-only, not a folder, full)
means running without it.

    $MATCHUP_CACHE/decoded/<key>/images.u8   (N, 3, H, W) uint8
    $MATCHUP_CACHE/decoded/<key>/meta.json   provenance, checksums, undecodable images
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.measure import cache_mac
from engine.paths import DATA_DIR
from engine.store import cache_key

log = logging.getLogger("matchup")
FORMAT = 3  # meta.json layout; an entry of another layout is a miss (2: unkeyed CRC-32s)
FREE_DISK_MARGIN = 1 << 30  # never fill the disk: leave this much free after an entry

DEFAULT_ROOT = DATA_DIR / "cache"
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


class CorruptEntry(Exception):
    """Images of a cache entry no longer match their checksums: the entry is dropped, the pixels
    decoded again."""


def corrupt_line(key: str) -> str:
    """What a CorruptEntry is told as: one line. (Raised in a DataLoader worker, the exception comes
    back with the worker's whole traceback as its message.)"""
    return (f"decoded-image cache entry {key}: images do not match their checksums; the entry is dropped and "
            "the images decoded again.")


def provenance(dataset, config: dict) -> dict:
    """What an entry must have been made from to be read for this dataset and preprocessing."""
    files = [str(f) for f in dataset.files] if dataset.hf_dataset is None else [str(len(dataset))]
    made_from = {"dataset_fingerprint": dataset.fingerprint,
                 "files_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest(),
                 "n_images": len(dataset), "pixels": list(pixel_key(config)),
                 "shape": [len(dataset), 3, *config["input_size"][1:]], "dtype": "uint8"}
    return json.loads(json.dumps(made_from))  # as meta.json holds it (tuples become lists)


def _meta_body(meta: dict) -> bytes:
    return json.dumps({k: v for k, v in meta.items() if k != "meta_mac"}, sort_keys=True).encode()


def image_checks(images: np.ndarray) -> np.ndarray:
    """Each image's keyed checksum (cache_mac.image_macs)."""
    return cache_mac.image_macs(images)


@dataclass
class Entry:
    """A complete cached group: its images (read-only memmap), the images that failed to decode,
    and each image's keyed checksum (checked as batches are read)."""
    key: str
    path: Path
    images: np.memmap
    bad: dict[int, str]  # index -> why it could not be decoded
    checks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))

    def __len__(self) -> int:
        return len(self.images)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Images start..stop, checked against their checksums; CorruptEntry when one differs."""
        block = np.array(self.images[start:stop])
        if not np.array_equal(image_checks(block), self.checks[start:stop]):
            raise CorruptEntry(f"decoded-image cache entry {self.key}: images {start}-{stop - 1} do not match "
                               "their checksums")
        return block


class DecodedCache:
    """The cache under `root`, kept within `budget_bytes` (default: half the free disk)."""

    def __init__(self, root: Path | None = None, budget_bytes: int | None = None):
        """OSError when the cache cannot be used at all (not a folder, cannot be made)."""
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
    def get(self, key: str, expected: dict | None = None) -> Entry | None:
        """The complete entry made from `expected` (provenance()), marked as just used; None when
        absent, made from something else, truncated or garbled (a miss, said once)."""
        folder = self.root / key
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            return None
        entry = None
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT or not cache_mac.verify(
                    meta.get("meta_mac"), _meta_body(meta)):
                problem = "its meta.json was changed, is from another version or was not written with this user's key"
            elif expected is not None and meta["provenance"] != expected:
                problem = "it was made from other images or another preprocessing"
            else:
                shape = tuple(int(n) for n in meta["provenance"]["shape"])
                checks = np.asarray(meta["image_checks"], dtype=np.uint64)
                bad = {int(k): str(v) for k, v in meta["bad"].items()}
                if (folder / "images.u8").stat().st_size != int(np.prod(shape)):
                    problem = "its pixel file is truncated or padded"
                elif checks.shape != shape[:1]:
                    problem = "its checksums do not cover every image"
                else:
                    problem = None
                    entry = Entry(key, folder, np.memmap(folder / "images.u8", dtype=np.uint8, mode="r", shape=shape),
                                  bad, checks)
        except Exception as e:  # noqa: BLE001 - any unreadable entry, of any shape, is a miss
            problem = f"it cannot be read ({type(e).__name__})"
        if problem is not None:
            log.warning("decoded-image cache entry %s is not used: %s; the images are decoded again.", key, problem)
            self.discard(key)
            return None
        try:
            os.utime(meta_path)  # last used: what eviction orders by
        except OSError:
            pass  # a read-only cache still serves
        return entry

    def discard(self, key: str) -> None:
        """Drop an entry that is not what it should be (a later run rebuilds it)."""
        shutil.rmtree(self.root / key, ignore_errors=True)

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
        """A writer for a new entry (`made_from`: its provenance()), after making room; None when it
        cannot fit the budget or the disk, or the cache cannot be written (said once)."""
        nbytes = self.nbytes(n_images, config)
        if not self.fits(nbytes):
            return None
        try:
            self.make_room(nbytes, keep={key})
            free = shutil.disk_usage(self.root).free
            if free < nbytes + FREE_DISK_MARGIN:
                log.warning("decoded-image cache not written: %.1f GB needed, %.1f GB free on %s (at least "
                            "%.0f GB stay free); running without it.", nbytes / 1e9, free / 1e9, self.root,
                            FREE_DISK_MARGIN / 1e9)
                return None
            return Writer(self.root, key, (n_images, 3, *config["input_size"][1:]), made_from)
        except OSError as e:
            log.warning("decoded-image cache not written (%s: %s); running without it.", type(e).__name__, e)
            return None


class Writer:
    """Fills one entry under a temporary folder; `commit` publishes it atomically. The pixel file's
    blocks are allocated up front, so a disk that fills up fails here, never later in a memory-
    mapped write (SIGBUS)."""

    def __init__(self, root: Path, key: str, shape: tuple, made_from: dict):
        self.root, self.key, self.shape = root, key, shape
        self.tmp = root / f".{key}.{uuid.uuid4().hex[:8]}.partial"
        self.tmp.mkdir(parents=True)
        try:
            self._allocate(self.tmp / "images.u8", int(np.prod(shape)))
            self.images = np.memmap(self.tmp / "images.u8", dtype=np.uint8, mode="r+", shape=shape)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.checks = np.zeros(shape[0], dtype=np.uint64)
        self.bad: dict[int, str] = {}
        self.written = 0
        self.made_from = made_from

    @staticmethod
    def _allocate(path: Path, nbytes: int) -> None:
        with open(path, "wb") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, max(nbytes, 1))
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise  # ENOSPC and the like: no entry
                chunk = bytes(1 << 24)  # a file system without fallocate: write the zeros
                for start in range(0, nbytes, len(chunk)):
                    f.write(chunk[:min(len(chunk), nbytes - start)])
            f.truncate(nbytes)

    def write(self, indices, images, ok) -> None:
        """A batch of preprocessed uint8 images (N, 3, H, W) at dataset indices; `ok` False marks
        images that could not be decoded (their slots stay zero)."""
        for i, index in enumerate(indices):
            if ok[i]:
                self.images[index] = images[i]
            self.checks[index] = image_checks(self.images[index][None])[0]
            self.written += 1

    def mark_bad(self, index: int, why: str) -> None:
        self.bad[int(index)] = why

    def commit(self, replace: bool = False) -> Path | None:
        """Publish the entry; `replace` drops an older entry of the same key first (--force).
        None when it could not be written (the run goes on without it)."""
        if self.written != self.shape[0]:
            raise RuntimeError(f"decoded-cache entry {self.key}: {self.written} of {self.shape[0]} written")
        try:
            self.images.flush()
            del self.images
            meta = {"format": FORMAT, "provenance": self.made_from,
                    "bad": {str(k): v for k, v in sorted(self.bad.items())},
                    "image_checks": [int(c) for c in self.checks], "created_at": time.time()}
            meta["meta_mac"] = cache_mac.mac(_meta_body(meta))
            (self.tmp / "meta.json").write_text(json.dumps(meta))
            final = self.root / self.key
            if replace:
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(self.tmp, final)
            except OSError:  # another process published the same entry first: keep theirs
                shutil.rmtree(self.tmp, ignore_errors=True)
            return final
        except OSError as e:
            log.warning("decoded-image cache entry %s not written (%s: %s); the results stand.", self.key,
                        type(e).__name__, e)
            self.abort()
            return None

    def abort(self) -> None:
        self.images = None
        shutil.rmtree(self.tmp, ignore_errors=True)
