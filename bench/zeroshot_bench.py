"""Zero-shot image loop against eval on the same image tower: images/s, as a ratio.

    python bench/zeroshot_bench.py [--images 500] [--batch-size 64] [--workers 2] [--rounds 3]

A temporary offline Hub cache holds timm's vit_base_patch32_clip_224.laion2b_ft_in1k and an
OpenCLIP ViT-B-32 (the same ViT-B/32 image tower, 224 px, bicubic, OpenAI mean/std, crop 1.0),
both with seeded random weights; the set is generated JPEGs in ImageNet synset folders, so
zero-shot scores the 1000 ImageNet classes (one template, `a photo of a {c}.`). The prompts are
encoded once before timing (they are cached: the subject here is the image loop, which zero-shot
shares with eval: decoding, device path, metrics). Both decode every image (no decoded-image
cache) and run in interleaved rounds; the median of each is compared. Target: zero-shot images/s
within 10% of eval's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL_CHECKPOINT = "vit_base_patch32_clip_224.laion2b_ft_in1k"
CLIP_REPO = "matchup-bench/vit-b-32"


def write_open_clip_repo(cache: Path, model: str = "ViT-B-32") -> None:
    """An OpenCLIP model with seeded random weights, laid out as the Hub caches an OpenCLIP repo."""
    import open_clip
    import torch
    from safetensors.torch import save_file
    snapshot = cache / f"models--{CLIP_REPO.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot.parent.parent / "refs").mkdir(exist_ok=True)
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    config = {"model_cfg": open_clip.get_model_config(model),
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD),
                                 "interpolation": "bicubic", "resize_mode": "shortest"}}
    (snapshot / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    clip = open_clip.create_model(model)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(snapshot / "open_clip_model.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from bench.generated import offline_set
    tmp, dataset = offline_set("matchup-zeroshot-bench-", [EVAL_CHECKPOINT], args.images)
    write_open_clip_repo(Path(os.environ["HF_HUB_CACHE"]))
    from engine.measure import evaluate, zeroshot
    from engine.store import Store
    store = Store(tmp / "bench.duckdb")
    settings = evaluate.EvalSettings(batch_size=args.batch_size, workers=args.workers, decoded_cache=False)
    template = tmp / "template.txt"
    template.write_text("a photo of a {c}.\n")
    folder = zeroshot.open_folder(tmp / "val")
    checkpoint = f"open_clip:hf-hub:{CLIP_REPO}"
    started = time.perf_counter()
    zeroshot.zeroshot(store, [checkpoint], folder, templates=str(template), settings=settings)
    print(f"{len(dataset)} JPEGs 500x375 in {len(set(dataset.targets))} synset folders, "
          f"batch {args.batch_size}, {args.workers} workers, CPU ({os.cpu_count()} cores); prompts for the 1000 "
          f"ImageNet classes encoded once in {time.perf_counter() - started:.1f} s (cached from then on)")

    eval_times, zeroshot_times, eval_loop, zeroshot_loop = [], [], [], []
    for _ in range(args.rounds):  # interleaved: drift on a shared machine hits both alike
        started = time.perf_counter()
        [row] = evaluate.evaluate(store, [EVAL_CHECKPOINT], dataset, settings, force=True)
        eval_times.append(time.perf_counter() - started)
        eval_loop.append(row["images_per_sec"])
        started = time.perf_counter()
        [zs] = zeroshot.zeroshot(store, [checkpoint], folder, templates=str(template), settings=settings, force=True)
        zeroshot_times.append(time.perf_counter() - started)
        zeroshot_loop.append(zs["images_per_sec"])
        assert zs["details"]["text_embeddings"] == "cached"
    n = len(dataset)
    base, ours = statistics.median(eval_times), statistics.median(zeroshot_times)
    loop_base, loop_ours = statistics.median(eval_loop), statistics.median(zeroshot_loop)
    print(f"image loop (decode, forward, metrics; the rows' images_per_sec, median of {args.rounds}): "
          f"eval {loop_base:.1f} img/s, zero-shot {loop_ours:.1f} img/s, ratio {loop_ours / loop_base:.3f} "
          "(target >= 0.90)")
    print(f"end to end (model load included; zero-shot builds the text tower too): eval {n / base:.1f} img/s, "
          f"zero-shot {n / ours:.1f} img/s, ratio {base / ours:.3f}")


if __name__ == "__main__":
    main()
