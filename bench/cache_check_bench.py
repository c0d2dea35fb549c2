"""What the keyed checksums cost on the decoded cache's read path (issue 36).

    python bench/cache_check_bench.py [--images 2000] [--size 224] [--rounds 5]

Reads a decoded-cache entry of N random 3x224x224 images in batches of 64 through `Entry.read`
(the keyed HMAC-SHA256 of each image checked as it is read), beside the same batches checked
with the CRC-32 that entries used before, and beside reading with no check at all. Medians of
the rounds, as images per second and as ratios in the same process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="matchup-cache-check-"))
    os.environ.update(MATCHUP_CACHE=str(tmp / "cache"), MATCHUP_CACHE_KEY=str(tmp / "cache.key"))
    from engine.measure import decoded
    cache = decoded.DecodedCache(budget_bytes=1 << 40)
    shape = (args.images, 3, args.size, args.size)
    made_from = {"dataset_fingerprint": "bench", "files_sha256": "bench", "n_images": args.images,
                 "pixels": [[3, args.size, args.size], "bicubic", 0.875, "center"], "shape": list(shape), "dtype": "uint8"}
    writer = cache.writer("b" * 32, args.images, {"input_size": shape[1:]}, made_from)
    rng = np.random.default_rng(0)
    for start in range(0, args.images, 256):
        stop = min(start + 256, args.images)
        writer.write(range(start, stop), rng.integers(0, 256, (stop - start, *shape[1:]), dtype=np.uint8),
                     [True] * (stop - start))
    writer.commit()
    entry = cache.get("b" * 32, made_from)
    crcs = np.fromiter((zlib.crc32(np.ascontiguousarray(entry.images[i])) for i in range(args.images)), np.uint32)

    def keyed():
        for start in range(0, args.images, 64):
            entry.read(start, min(start + 64, args.images))

    def crc32():
        for start in range(0, args.images, 64):
            block = np.array(entry.images[start:start + 64])
            found = np.fromiter((zlib.crc32(np.ascontiguousarray(i)) for i in block), np.uint32, count=len(block))
            assert np.array_equal(found, crcs[start:start + 64])

    def unchecked():
        for start in range(0, args.images, 64):
            np.array(entry.images[start:start + 64])
    times = {name: [] for name in ("unchecked", "crc32", "keyed")}
    for _ in range(args.rounds):
        for name, run in (("unchecked", unchecked), ("crc32", crc32), ("keyed", keyed)):
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in median.items():
        print(f"{name:>9}: {args.images / seconds:8.0f} images/s  ({seconds / median['unchecked']:.2f}x unchecked)")
    print(f"keyed / crc32: {median['keyed'] / median['crc32']:.2f}x the read time")


if __name__ == "__main__":
    main()
