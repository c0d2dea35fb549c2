"""`profile` and `bench`: what a model costs, counted (params, FLOPs) and measured here (speed, memory).
"""
from __future__ import annotations

import json
import sys

from engine import options
from engine.cli.common import batch_size_arg, frame_records, print_json
from engine.errors import MatchupError
from engine.store import Store


def _compute_row(result: dict) -> dict:
    import torch
    import timm
    from datetime import datetime, timezone
    from engine.measure.flops import COUNTER
    by_module = result.get("flops_by_module")
    return {**result, "counter": f"{COUNTER} ({result['device']})",
            "flops_by_module": json.dumps(by_module) if by_module is not None else None,
            "torch_version": torch.__version__, "timm_version": timm.__version__,
            "created_at": datetime.now(timezone.utc).replace(tzinfo=None)}


def cmd_profile(args, store: Store) -> int:
    import pandas as pd
    from tqdm import tqdm
    from engine.measure import flops
    if args.crosscheck:
        summary = flops.crosscheck_summary(store.compute_crosscheck())
        if args.json:
            print_json(summary)
            return 0
        if not summary["pairs"]:
            print("no pairs to compare: import published benchmarks (`catalog import DIR`) and "
                  "count (`profile --all`) first")
            return 0
        print(f"{summary['pairs']} (arch, img_size) pairs with counted and published MACs; "
              f"{summary['share_within_tolerance']:.1%} agree ({summary['tolerance']}); "
              f"{summary['share_within_3pct_strict']:.1%} within 3% strictly")
        print("ratio counted/published: " + ", ".join(
            f"{k} {v:.3f}" for k, v in summary["ratio_quantiles"].items()))
        for o in summary["outliers"]:
            print(f"  {o['arch']} @{o['img_size']} ({o['arch_class']}): counted {o['counted_gmacs']:.3f}"
                  f" vs published {o['published_gmacs']:.2f} GMACs (x{o['ratio']:.2f}): {o['reason']}")
        return 0
    if args.all == bool(args.models):
        raise MatchupError("Name one or more models, or pass --all for every pretrained "
                           "architecture/resolution pair the catalog needs.")
    if args.models:
        results = [_compute_row(flops.count_strict(name, args.img_size).as_dict())
                   for name in tqdm(args.models, desc="counting", unit="model", disable=args.json)]
        store.upsert_compute(pd.DataFrame(results))
    else:
        if store.count("checkpoints") == 0:
            raise MatchupError("The catalog is empty: run `python -m engine catalog refresh` "
                               "(and `catalog import DIR` for published resolutions) first.")
        from engine.catalog.refresh import training_count_targets
        targets = pd.concat([store.compute_targets(missing_only=not args.force),
                             training_count_targets(store, missing_only=not args.force)], ignore_index=True)
        targets = targets.drop_duplicates(["arch", "img_size", "num_classes"])
        rows = list(targets[["arch", "img_size", "img_width", "num_classes"]].itertuples(
            index=False, name=None))
        rows = [(a, int(h), int(w), int(n)) for a, h, w, n in rows]
        results, batch = [], []
        bar = tqdm(total=len(rows), desc="counting", unit="model", disable=args.json)
        for result in flops.count_many(rows, jobs=args.jobs):
            bar.update(1)
            batch.append(_compute_row(result))
            if len(batch) >= 100:  # each row is complete; batches keep progress on interruption
                store.upsert_compute(pd.DataFrame(batch))
                results += batch
                batch = []
        store.upsert_compute(pd.DataFrame(batch))
        results += batch
        bar.close()
        if args.write_shipped:
            from engine.catalog.refresh import write_shipped_compute
            from engine.catalog.timm_models import SHIPPED_COMPUTE_CSV
            n = write_shipped_compute(store)
            print(f"wrote {n} rows to {SHIPPED_COMPUTE_CSV}", file=sys.stderr)
    frame = pd.DataFrame(results)
    if args.json:
        print_json(frame_records(frame.drop(columns=["created_at"], errors="ignore")))
        return 0
    if frame.empty:
        print("nothing to count: every needed pair is already counted (--force recounts)")
        return 0
    ok = frame[frame["error"].isna()]
    if args.models:
        shown = ok.assign(gflops=ok["flops"] / 1e9, params_m=ok["params"] / 1e6)
        print(shown[["arch", "img_size", "num_classes", "params_m", "gflops"]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"))
    else:
        print(f"counted {len(ok)} of {len(frame)} pairs; {len(frame) - len(ok)} failed "
              "(kept with their reason in the compute table)")
    return 0


def cmd_bench(args, store: Store) -> int:
    import pandas as pd
    from tqdm import tqdm
    from engine.measure import profile
    specs = [profile.BenchSpec(model=name, device=args.device, precision=args.precision,
                               batch_size=args.batch_size, channels_last=args.channels_last,
                               compile=args.compile, img_size=args.img_size,
                               max_memory_mb=args.max_memory_mb)
             for name in args.models]
    for spec in specs:  # every bad input is refused before anything runs
        profile.bench_key(spec)
    rows = [profile.bench(store, spec, force=args.force)
            for spec in tqdm(specs, desc="benchmarking", unit="model", disable=args.json)]
    frame = pd.DataFrame(rows)
    if args.json:
        print_json(frame_records(frame))
        return 0
    frame["ms_per_img"] = 1000 / frame["throughput"]
    print(frame[["checkpoint", "img_size", "batch_size", "precision", "device_name", "throughput",
                 "ms_per_img", "latency_p50_ms", "latency_p90_ms", "peak_memory_mb", "cached"]]
          .to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
    for row in rows:
        if row["error"]:
            print(f"{row['checkpoint']}: {row['error']}", file=sys.stderr)
    return 0


def add_parsers(commands, common) -> None:
    """`profile` and `bench`."""
    prof = commands.add_parser("profile", parents=[common], help="count params and FLOPs")
    prof.add_argument("models", nargs="*", metavar="MODEL", help="arch or arch.tag")
    prof.add_argument("--all", action="store_true", help="every pair the catalog needs")
    prof.add_argument("--img-size", type=options.arg("img_size"), help="count at this resolution instead")
    prof.add_argument("--jobs", type=int, help="worker processes for --all (default: all cores)")
    prof.add_argument("--force", action="store_true", help="recount pairs already counted")
    prof.add_argument("--crosscheck", action="store_true",
                      help="compare counted MACs with timm's published infer_gmacs")
    prof.add_argument("--write-shipped", action="store_true",
                      help="after --all, write the compute table to data/compute.csv")
    prof.add_argument("--json", action="store_true")

    bench = commands.add_parser("bench", parents=[common],
                                help="measure throughput, latency and memory on this machine")
    bench.add_argument("models", nargs="+", metavar="MODEL", help="arch or arch.tag")
    bench.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    bench.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16")
    bench.add_argument("--batch-size", type=batch_size_arg, default="auto",
                       help="images per step for throughput, or 'auto' (largest power of two "
                            "that fits, from 1024 on GPU, 64 on CPU)")
    bench.add_argument("--img-size", type=options.arg("img_size"))
    bench.add_argument("--channels-last", action="store_true")
    bench.add_argument("--compile", action="store_true", help="torch.compile the model")
    bench.add_argument("--max-memory-mb", type=options.arg("max_memory_mb"),
                       help="record models whose weights need more than this as out of memory "
                            "(default: the memory free on the device)")
    bench.add_argument("--force", action="store_true", help="measure again even when cached")
    bench.add_argument("--json", action="store_true")
