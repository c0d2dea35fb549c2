"""`sweep`: many checkpoints at once, planned first, decoded once, resumable, on one machine or Ray.
"""
from __future__ import annotations

import sys

from engine import options
from engine.cli.common import DATA_SCALE_CHOICES, csv_list, eval_options, frame_records, print_json, say_what_was_read
from engine.store import Store


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _flops(n: float) -> str:
    for unit, scale in (("EFLOPs", 1e18), ("PFLOPs", 1e15), ("TFLOPs", 1e12)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 1e9:.2f} GFLOPs"


def _print_plan(p) -> None:
    hours = p.estimated_seconds / 3600
    print(f"plan on {p.device} at {p.precision}: {len(p.to_run())} of {len(p.checkpoints)} checkpoints to run "
          f"on {p.n_images} images in {len(p.groups)} preprocessing groups")
    for g in p.groups:
        print(f"  group {g['group']}: {len(g['checkpoints'])} checkpoints; decoded cache "
              f"{g['decoded_cache']} ({_gib(g['decoded_bytes'])})")
    print(f"  counted FLOPs: {_flops(p.total_flops)}; estimated time: {hours:.2f} h "
          f"({', '.join(f'{k}: {v}' for k, v in p.estimate_sources.items())})"
          + (f"; no estimate for {len(p.unestimated)}" if p.unestimated else ""))
    print(f"  weights to download: {_gib(p.download_bytes)} (fp32 size from counted parameters where not in "
          f"the Hub cache); decoded-cache disk to write: {_gib(p.decoded_cache_bytes)} in all, the largest "
          f"group {_gib(p.decoded_cache_peak_bytes)} (a budget of that caches each group while it runs)")
    if p.nearest_published:
        print(f"  published throughput from {p.nearest_published} (nearest device)")
    skipped = [c for c in p.checkpoints if c["status"] == "skip"]
    for c in skipped:
        print(f"  skip {c['checkpoint']}: {c['reason']}")


def _print_cluster(c: dict) -> None:
    busiest = max(c["per_node"], key=lambda n: n["decoded_cache_bytes"])
    print(f"  on {c['nodes']} node(s) x {c['gpus_per_node']} GPU(s) ({c['device']}): about "
          f"{c['wall_seconds'] / 3600:.2f} h wall against {c['one_gpu_seconds'] / 3600:.2f} h on one GPU (groups largest "
          f"first, each on one node; checkpoints largest first on its GPUs); decoded-cache disk per node: up to "
          f"{_gib(c['decoded_cache_bytes_per_node_max'])} (node {busiest['node']}, "
          f"{len(busiest['groups'])} group(s))" + (f"; no estimate for {len(c['unestimated'])}" if c["unestimated"] else ""))


def cmd_sweep(args, store: Store) -> int:
    from engine.measure import datasets, evaluate, sweep
    selection = sweep.Selection(classes=csv_list(args.classes, flag="--classes"), families=csv_list(args.families, flag="--families"),
                                data_scales=csv_list(args.data_scales, flag="--data-scale", choices=DATA_SCALE_CHOICES), max_params_m=args.max_params,
                                max_gflops=args.max_gflops, checkpoints=csv_list(args.checkpoints, flag="--checkpoints"),
                                from_file=args.from_file, published_only=args.published_only)
    if args.probe is not None:
        return _sweep_probe(args, store, sweep.select(store, selection))
    if args.zeroshot is not None:
        selection.zoo = "image-text"
        return _sweep_zeroshot(args, store, sweep.select(store, selection))
    if (args.nodes or args.gpus_per_node) and not args.dry_run:
        raise sweep.SweepError("--nodes and --gpus-per-node plan a cluster run: use them with --dry-run.")
    if not args.data and not (args.dry_run and args.images):
        raise sweep.SweepError("`sweep` needs --data DIR (the evaluation set); a --dry-run can plan "
                               "for --images N without one.")
    settings = evaluate.EvalSettings(device=args.device, precision=args.precision, batch_size=args.batch_size,
                                     limit=args.limit, channels_last=args.channels_last, compile=args.compile,
                                     decoded_cache_gb=args.decoded_cache_gb, strict=args.strict,
                                     **({"workers": args.workers} if args.workers is not None else {}))
    dataset = (datasets.open_dataset(args.data, labels=args.labels, variant=args.variant, file_rule=args.file_rule)
               if args.data else None)
    if dataset is not None:
        say_what_was_read(dataset, args)
    if not args.dry_run:
        evaluate.check_settings(settings)
    checkpoints = sweep.select(store, selection)
    the_plan = sweep.plan(store, checkpoints, dataset, settings, n_images=args.images,
                          estimate_for=args.estimate_for if args.dry_run else None)
    if args.dry_run:
        cluster = (sweep.cluster_schedule(the_plan, args.nodes or 1, args.gpus_per_node or 1)
                   if args.nodes or args.gpus_per_node else None)
        if args.json:
            print_json({**the_plan.as_dict(), **({"cluster": cluster} if cluster else {})})
        else:
            _print_plan(the_plan)
            if cluster:
                _print_cluster(cluster)
        return 0

    if not args.json:
        _print_plan(the_plan)
    import contextlib
    # stdout is the --json contract: what Ray's raylet prints there goes to stderr
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        report = sweep.run(store, the_plan, dataset, settings, show_progress=not args.json,
                           ray_address=args.ray, gpus_per_task=args.gpus_per_task)
    frame = report.frame()
    failed = frame[frame["status"] == "failed"]
    if args.json:
        print_json({"plan": {k: v for k, v in the_plan.as_dict().items() if k != "checkpoints"},
                     "results": frame_records(frame), "seconds": round(report.seconds, 3),
                     "interrupted": report.interrupted})
    else:
        counts = frame["status"].value_counts().to_dict()
        if not frame.empty:
            shown = frame[[c for c in ("checkpoint", "status", "top1", "n_images", "images_per_sec",
                                       "skipped_images", "pixels_from") if c in frame.columns]]
            print(shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
        for row in failed.itertuples():
            print(f"failed {row.checkpoint}: {row.error}", file=sys.stderr)
        print(f"sweep: {', '.join(f'{n} {s}' for s, n in counts.items())} in {report.seconds:.1f} s"
              + ("; interrupted: run the same command again to resume" if report.interrupted else "")
              + ("; nothing to do: every checkpoint is already in the store"
                 if not the_plan.to_run() else ""))
    if report.interrupted:
        return 130
    return 1 if len(failed) else 0


def _print_resume_plan(checkpoints: list[str], lookup, verb: str, as_json: bool) -> int:
    """A dry run of a resumable sweep: which checkpoints are already stored, which would run."""
    stored = [c for c in checkpoints if lookup(c) is not None]
    payload = {"checkpoints": checkpoints, "stored": stored, "to_run": [c for c in checkpoints if c not in stored]}
    if as_json:
        print_json(payload)
    else:
        print(f"{len(payload['to_run'])} {verb}, {len(stored)} already stored")
    return 0


def _sweep_probe(args, store: Store, checkpoints: list[str]) -> int:
    """sweep --probe DIR: a linear probe of every selected checkpoint, resumable (stored results
    are skipped) and deduplicated like the sweep."""
    import pandas as pd
    from tqdm import tqdm
    from engine.measure import probe
    folder = args.probe or args.data
    if not folder:
        raise probe.ProbeError("`sweep --probe` needs the labelled folder: --probe DIR (or --probe --data DIR).")
    data = probe.open_folder(folder, file_rule=args.file_rule)
    settings = probe.ProbeSettings(folds=args.folds, shots=args.shots, seed=args.seed, device=args.device,
                                   precision=args.precision, batch_size=args.batch_size, strict=args.strict,
                                   **({"workers": args.workers} if args.workers is not None else {}))
    checkpoints = list(dict.fromkeys(checkpoints))
    print(f"probe sweep: {len(checkpoints)} checkpoints on {len(data)} images in {len(data.classes)} classes "
          f"({data.root})", file=sys.stderr)
    if args.dry_run:
        return _print_resume_plan(checkpoints, lambda c: probe.lookup(store, c, data, settings), "to probe", args.json)
    bar = tqdm(total=len(checkpoints), unit="ckpt", disable=args.json)
    report = probe.probe_many(store, checkpoints, data, settings, on_result=lambda *_: bar.update(1))
    bar.close()
    return _print_report(pd.DataFrame(report), args.json)


def _sweep_zeroshot(args, store: Store, checkpoints: list[str]) -> int:
    """sweep --zeroshot DIR: zero-shot runs of every selected image-text checkpoint, resumable
    (stored results are skipped), sharing decoding passes and the decoded-image cache as eval's do."""
    import pandas as pd
    from tqdm import tqdm
    from engine.measure import evaluate, zeroshot
    folder = args.zeroshot or args.data
    if args.ray is not None:
        raise zeroshot.ZeroShotError("`sweep --zeroshot` runs on this machine (one decoding pass feeds several "
                                     "checkpoints); --ray fans out eval sweeps only. Drop --ray.")
    if not folder:
        raise zeroshot.ZeroShotError("`sweep --zeroshot` needs the class folder: --zeroshot DIR (or --zeroshot --data DIR).")
    data = zeroshot.open_folder(folder, classnames=args.classnames, file_rule=args.file_rule)
    settings = evaluate.EvalSettings(device=args.device, precision=args.precision, batch_size=args.batch_size,
                                     limit=args.limit, channels_last=args.channels_last,
                                     decoded_cache_gb=args.decoded_cache_gb, strict=args.strict,
                                     **({"workers": args.workers} if args.workers is not None else {}))
    print(f"zero-shot sweep: {len(checkpoints)} checkpoints on {len(data)} images in {data.num_classes} classes "
          f"({data.opened_with['path']})", file=sys.stderr)
    if args.dry_run:
        return _print_resume_plan(checkpoints, lambda c: zeroshot.lookup(store, c, data, args.templates, settings),
                                  "to run", args.json)
    bar = tqdm(total=len(checkpoints), unit="ckpt", disable=args.json)
    report = []

    def finished(row):
        report.append({"checkpoint": row["checkpoint"], "status": "in the store" if row["cached"] else "done",
                       "top1": row["top1"], "top5": row["top5"], "balanced_accuracy": row["balanced_accuracy"],
                       "n_images": row["n_images"], "images_per_sec": row["images_per_sec"], "error": None})
        bar.update(1)

    def failed(checkpoint, message):
        report.append({"checkpoint": checkpoint, "status": "failed", "error": message})
        bar.update(1)
    zeroshot.zeroshot(store, checkpoints, data, templates=args.templates, settings=settings,
                      on_error=failed, on_result=finished)
    bar.close()
    return _print_report(pd.DataFrame(report), args.json)


def _print_report(frame, as_json: bool) -> int:
    """A probe or zero-shot sweep's rows (JSON or a table, failures on stderr); its exit code."""
    if as_json:
        print_json({"results": frame_records(frame)})
    else:
        print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
        for row in frame[frame["status"] == "failed"].itertuples():
            print(f"failed {row.checkpoint}: {row.error}", file=sys.stderr)
    return 1 if (frame["status"] == "failed").any() else 0


def add_parsers(commands, common) -> None:
    """`sweep`."""
    sw = commands.add_parser("sweep", parents=[common], help="evaluate many checkpoints: plan, decode once, resume")
    sw.add_argument("--class", dest="classes", help="comma-separated classes: ConvNet,ViT,Hybrid,MLP")
    sw.add_argument("--family", dest="families", help="comma-separated families, e.g. convnext,vit")
    sw.add_argument("--data-scale", dest="data_scales", help="comma-separated buckets: ≈1M,≈10M,≈100M,≥1B")
    sw.add_argument("--max-params", type=options.arg("max_params"), help="at most this many million parameters")
    sw.add_argument("--max-gflops", type=options.arg("max_gflops"), help="at most this many counted GFLOPs per image")
    sw.add_argument("--checkpoints", help="comma-separated checkpoint ids (instead of, or narrowed by, the filters)")
    sw.add_argument("--from-file", help="a text file with one checkpoint id per line")
    sw.add_argument("--published-only", action="store_true",
                    help="only checkpoints timm publishes ImageNet results for")
    eval_options(sw, data_required=False)
    sw.add_argument("--compile", action="store_true", help="torch.compile each model")
    sw.add_argument("--dry-run", action="store_true", help="print the plan and spend nothing")
    sw.add_argument("--zeroshot", nargs="?", const="", metavar="DIR",
                    help="zero-shot runs of image-text checkpoints on this class folder (or on --data)")
    sw.add_argument("--classnames", metavar="FILE", help="--zeroshot: one `folder<TAB>name` line per class folder (or names in folder order)")
    sw.add_argument("--templates", metavar="NAME|FILE", help="--zeroshot: a template set or file (as for zeroshot)")
    sw.add_argument("--probe", nargs="?", const="", metavar="DIR",
                    help="linear probes on this labelled folder (or on --data) instead of evaluations")
    sw.add_argument("--folds", type=options.arg("folds"), default=5, help="--probe: stratified folds")
    sw.add_argument("--shots", type=options.arg("shots"), help="--probe: K training images per class")
    sw.add_argument("--seed", type=options.arg("seed"), default=0, help="--probe: the folds' and shots' seed")
    sw.add_argument("--images", type=options.arg("images"), help="--dry-run without --data: plan for N images")
    sw.add_argument("--nodes", type=options.arg("nodes"),
                    help="--dry-run: plan the wall time on N nodes (with --gpus-per-node; default 1 each)")
    sw.add_argument("--gpus-per-node", type=options.arg("gpus_per_node"), help="--dry-run: GPUs on each node")
    sw.add_argument("--estimate-for", metavar="DEVICE", help="--dry-run: estimate time for this device name (e.g. H100)")
    sw.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                    help="fan out with Ray: alone, a local Ray over this machine; or a cluster's address")
    sw.add_argument("--gpus-per-task", type=options.arg("gpus_per_task"), default=1.0, help="with --ray: GPUs per checkpoint (may be fractional)")
    sw.add_argument("--json", action="store_true")
