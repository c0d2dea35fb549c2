"""GPU figures for issue 12: the eval pipeline against the model alone, and a 10-checkpoint sweep.

    python bench/gpu_bench.py [--images 4096] [--batch-size 256] [--device cuda] [--precision bf16]

For resnet50, convnext_tiny, vit_base_patch16_224 and efficientnet_b0 with seeded random weights
(a temporary offline Hub cache; speed does not depend on trained weights), at bf16 autocast and
channels_last:
- model only: forward images/s on a resident batch of the model's input size (CUDA-synchronised);
- pipeline, decoding: `eval` over generated 500x375 JPEGs, DataLoader workers decoding (cold);
- pipeline, decoded cache: the same `eval` again, reading the decoded-image cache (warm).
Target: pipeline >= 0.85x model-only. Then a sweep of 10 checkpoints (several pixel groups),
timed end to end. It also runs on a CPU (--device cpu) to check the script itself.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = ("resnet50.a1_in1k", "convnext_tiny.fb_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k",
          "efficientnet_b0.ra_in1k")
SWEEP = MODELS + ("resnet18.a1_in1k", "convnext_nano.in12k_ft_in1k", "vit_small_patch16_224.augreg_in21k_ft_in1k",
                  "deit_small_patch16_224.fb_in1k", "mobilenetv3_large_100.ra_in1k", "regnety_016.tv2_in1k")
TARGET = 0.85


def model_only(checkpoint: str, device: str, precision: str, batch_size: int, steps: int) -> float:
    import timm
    import torch
    from engine.catalog import hub
    from engine.measure import evaluate
    config = evaluate.data_config(hub.pretrained_cfg(checkpoint))
    model = timm.create_model(checkpoint.split(".")[0]).eval().to(device, memory_format=torch.channels_last)
    batch = torch.randn(batch_size, *config["input_size"], device=device).contiguous(memory_format=torch.channels_last)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode(), torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
        for _ in range(3):
            model(batch)
        sync()
        started = time.perf_counter()
        for _ in range(steps):
            model(batch)
        sync()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16")
    args = parser.parse_args()
    import timm
    known = set(timm.list_pretrained())
    sweep_ids = [c for c in SWEEP if c in known]  # the machine's timm may be another version
    from bench.generated import offline_set
    tmp, dataset = offline_set("matchup-gpu-bench-", sweep_ids, args.images, n_classes=16)
    import torch
    from engine.measure import evaluate, sweep
    from engine.measure.profile import device_name, resolve_device
    from engine.store import Store
    settings = evaluate.EvalSettings(device=args.device, precision=args.precision, batch_size=args.batch_size,
                                     workers=args.workers, channels_last=True)
    print(f"{device_name(resolve_device(args.device))}; torch {torch.__version__}; {len(dataset)} JPEGs 500x375; "
          f"batch {args.batch_size}; {args.workers} workers; {args.precision}; channels_last")
    print(f"{'checkpoint':<44}{'model img/s':>12}{'decoding':>10}{'ratio':>7}{'cached':>10}{'ratio':>7}")
    steps = max(5, len(dataset) // args.batch_size)
    for checkpoint in [m for m in MODELS if m in known]:
        alone = model_only(checkpoint, args.device, args.precision, args.batch_size, steps)
        rates = []
        for _ in range(2):  # cold (decoding, fills the cache), then warm (reads it)
            [row] = evaluate.evaluate(Store(tmp / f"{time.time_ns()}.duckdb"), [checkpoint], dataset, settings)
            rates.append(row["images_per_sec"])
        print(f"{checkpoint:<44}{alone:>12.0f}{rates[0]:>10.0f}{rates[0] / alone:>7.2f}{rates[1]:>10.0f}"
              f"{rates[1] / alone:>7.2f}")
    print(f"target: pipeline >= {TARGET}x model-only")
    store = Store(tmp / "sweep.duckdb")  # running needs no catalog
    started = time.perf_counter()
    the_plan = sweep.plan(store, sweep_ids, dataset, settings)
    report = sweep.run(store, the_plan, dataset, settings, show_progress=False)
    seconds = time.perf_counter() - started
    statuses = {}
    for r in report.results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    print(f"sweep of {len(sweep_ids)} checkpoints in {len(the_plan.groups)} pixel groups on {len(dataset)} images: "
          f"{seconds:.1f} s ({statuses}); {len(sweep_ids) * len(dataset) / seconds:.0f} checkpoint-images/s")
    for r in report.results:
        if r["status"] != "done":
            print(f"  {r['checkpoint']}: {r['status']} {r.get('error') or ''}")


if __name__ == "__main__":
    main()
