"""Keyed checksums for everything under $MATCHUP_CACHE (decoded pixels, probe features, text
embeddings). A plain CRC or SHA-256 proves only that an entry was not damaged by accident: anyone
who can write the cache folder can recompute it for pixels or features of their own. So every
checksum is keyed with a secret kept outside the cache, created on first use and readable by its
owner only; an entry written without the key does not verify, and is a miss.

The trust model: whoever can read the key file can write entries that are believed; whoever can
only write the cache folder cannot. The key lives at $MATCHUP_CACHE_KEY, else
$XDG_CONFIG_HOME/matchup/cache.key (~/.config/matchup/cache.key). Where it cannot be kept (a
read-only home), a key for this process alone is used: entries are trusted only by the run that
wrote them, and that is said once.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

import numpy as np

log = logging.getLogger("matchup")
KEY_BYTES = 32
_keys: dict[str, bytes] = {}


def key_path() -> Path:
    """Where the cache key is kept (outside the cache)."""
    explicit = os.environ.get("MATCHUP_CACHE_KEY")
    if explicit:
        return Path(explicit).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser()
    return config / "matchup" / "cache.key"


def _read_or_create(path: Path) -> bytes:
    """The key in `path`, made (mode 0600, never replaced) when there is none."""
    try:
        key = path.read_bytes()
        if len(key) >= KEY_BYTES:
            return key
        raise OSError(f"{path} holds {len(key)} bytes, fewer than a key's {KEY_BYTES}")
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read_or_create(path)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(KEY_BYTES))
    return path.read_bytes()


def key() -> bytes:
    """This user's cache key (created on first use); a key for this process alone when none can be kept."""
    path = key_path()
    found = _keys.get(str(path))
    if found is None:
        try:
            found = _read_or_create(path)
        except OSError as e:
            log.warning("The cache key %s cannot be read or made (%s); this run trusts only the cache entries it "
                        "writes itself. Set MATCHUP_CACHE_KEY to a file path this user can write.", path,
                        e.strerror or e)
            found = secrets.token_bytes(KEY_BYTES)
        _keys[str(path)] = found
    return found


def mac(*parts: bytes) -> str:
    """A keyed SHA-256 (HMAC) of the parts, each length-prefixed so that no two splits collide."""
    digest = hmac.new(key(), digestmod=hashlib.sha256)
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def verify(expected: object, *parts: bytes) -> bool:
    return isinstance(expected, str) and hmac.compare_digest(expected, mac(*parts))


def image_macs(images: np.ndarray) -> np.ndarray:
    """A keyed 64-bit checksum of each image's bytes (the first 8 bytes of its HMAC-SHA256)."""
    secret = key()
    return np.fromiter((int.from_bytes(hmac.digest(secret, np.ascontiguousarray(image), "sha256")[:8], "little")
                        for image in images), dtype=np.uint64, count=len(images))
