"""`eval`, `zeroshot` and `probe`: accuracy of checkpoints on the user's own images.
"""
from __future__ import annotations

import sys

from engine import options
from engine.catalog import hub
from engine.cli.common import eval_options, frame_records, pass_bars, print_json, say_what_was_read
from engine.store import Store


def cmd_probe(args, store: Store) -> int:
    """Linear probe of each checkpoint's frozen features on a labelled folder (engine.probe)."""
    hub.require_cached(store, args.models)  # before the model code loads
    import pandas as pd
    from tqdm import tqdm
    from engine.measure import probe
    data = probe.open_folder(args.data, file_rule=args.file_rule)
    val = probe.open_folder(args.val, file_rule=args.file_rule) if args.val else None
    settings = probe.ProbeSettings(folds=args.folds, shots=args.shots, seed=args.seed, device=args.device,
                                   precision=args.precision, batch_size=args.batch_size, strict=args.strict,
                                   **({"workers": args.workers} if args.workers is not None else {}))
    counts = ", ".join(f"{c} {n}" for c, n in zip(data.classes, pd.Series(data.labels).value_counts(sort=False)
                                                   .sort_index(), strict=True))
    print(f"{len(data)} images in {len(data.classes)} classes in {data.root} ({counts})"
          + (f"; validation: {len(val)} images in {val.root}" if val else ""), file=sys.stderr)
    rows = []
    for checkpoint in args.models:
        bar = tqdm(total=len(data), unit="img", desc=checkpoint, disable=args.json)

        def progress(done, total, bar=bar):
            bar.n = done
            bar.refresh()
        row, cached = probe.probe_one(store, checkpoint, data, settings, val, progress)
        bar.close()
        rows.append({**{k: v for k, v in row.items() if k != "details"}, "cached": cached})
    summary = pd.DataFrame(rows)
    if args.json:
        print_json(frame_records(summary))
        return 0
    for row in rows:
        how = {"kfold": f"{row['folds']}-fold", "shots": f"{row['shots']} shots x {probe.SHOT_REPEATS} seeds",
               "val": "on --val"}[row["protocol"]]
        print(f"{row['checkpoint']}: linear probe ({how}, {row['n_images']} images, {row['n_classes']} classes, "
              f"{row['feature_dim']}-d {row['feature_source'].replace('_', '-')} features): accuracy "
              f"{row['accuracy']:.2f} [{row['accuracy_low']:.2f}, {row['accuracy_high']:.2f}], balanced "
              f"{row['balanced_accuracy']:.2f}, macro-F1 {row['macro_f1']:.2f}, NLL {row['nll']:.3f}"
              + (f"; {row['skipped_images']} undecodable images skipped" if row["skipped_images"] else "")
              + (" (cached)" if row["cached"] else ""))
    return 0


def cmd_eval(args, store: Store) -> int:
    hub.require_cached(store, args.models)  # before the model code loads
    import pandas as pd
    from engine.measure import datasets, evaluate
    dataset = datasets.open_dataset(args.data, labels=args.labels, variant=args.variant, file_rule=args.file_rule)
    settings = evaluate.EvalSettings(device=args.device, precision=args.precision,
                                     batch_size=args.batch_size, limit=args.limit,
                                     channels_last=args.channels_last, decoded_cache_gb=args.decoded_cache_gb,
                                     strict=args.strict,
                                     **({"workers": args.workers} if args.workers is not None else {}))
    say_what_was_read(dataset, args)
    bars = {}
    rows = evaluate.evaluate(store, args.models, dataset, settings, force=args.force,
                             progress=pass_bars(bars, args.json))
    for bar in bars.values():
        bar.close()
    summary = pd.DataFrame([{**{k: v for k, v in row.items() if k != "details"},
                             "skipped_images": (row.get("details") or {}).get("skipped_images", 0),
                             "skipped_paths": (row.get("details") or {}).get("skipped_paths") or []}
                            for row in rows])
    if args.json:
        print_json(frame_records(summary))
        return 0
    print(summary[["checkpoint", "n_images", "top1", "top5", "nll", "ece", "img_size",
                   "images_per_sec", "cached"]].to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    for row in rows:
        skipped = row["details"].get("skipped_paths") or []
        if skipped:
            print(f"{row['checkpoint']}: {row['details']['skipped_images']} images could not be decoded and "
                  f"were skipped (first: {skipped[0]}); every path is in the result's details")
    return 0


def cmd_zeroshot(args, store: Store) -> int:
    """Zero-shot accuracy of image-text checkpoints on a folder of classes (engine.measure.zeroshot)."""
    hub.require_cached(store, args.models)  # before the model code loads
    import pandas as pd
    from engine.measure import evaluate, zeroshot
    dataset = zeroshot.open_folder(args.data, classnames=args.classnames, file_rule=args.file_rule)
    settings = evaluate.EvalSettings(device=args.device, precision=args.precision, batch_size=args.batch_size,
                                     limit=args.limit, channels_last=args.channels_last,
                                     decoded_cache_gb=args.decoded_cache_gb, strict=args.strict,
                                     **({"workers": args.workers} if args.workers is not None else {}))
    say_what_was_read(dataset, args)
    print(f"{dataset.num_classes} classes ({dataset.classnames_from}): "
          f"{', '.join(dataset.classnames[:5])}{' ...' if dataset.num_classes > 5 else ''}", file=sys.stderr)
    if dataset.pairing:  # the names file, paired with the folders: what each folder's prompts will say
        print(f"class folders and the names their prompts use:\n{dataset.pairing}", file=sys.stderr)
    bars = {}
    rows = zeroshot.zeroshot(store, args.models, dataset, templates=args.templates, settings=settings,
                             force=args.force, progress=pass_bars(bars, args.json))
    for bar in bars.values():
        bar.close()
    summary = pd.DataFrame([{**{k: v for k, v in row.items() if k not in ("details", "classnames", "templates")},
                             "n_templates": len(row["templates"]),
                             "text_embeddings": row["details"].get("text_embeddings")} for row in rows])
    if args.json:
        print_json(frame_records(summary))
        return 0
    print(summary[["checkpoint", "n_images", "n_classes", "top1", "top5", "balanced_accuracy", "templates_name",
                   "img_size", "images_per_sec", "cached"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def add_parsers(commands, common) -> None:
    """`eval`, `zeroshot` and `probe`."""
    ev = commands.add_parser("eval", parents=[common], help="accuracy of Hub checkpoints on your data")
    ev.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint id arch.tag")
    eval_options(ev, data_required=True)
    ev.add_argument("--force", action="store_true", help="recompute even when cached")
    ev.add_argument("--json", action="store_true")

    zs = commands.add_parser("zeroshot", parents=[common],
                             help="zero-shot accuracy of image-text (OpenCLIP) checkpoints on your own classes")
    zs.add_argument("models", nargs="+", metavar="MODEL",
                    help="open_clip:<model>.<tag> (catalog list --zoo image-text) or open_clip:hf-hub:ORG/REPO")
    zs.add_argument("--data", required=True, help="a folder with one sub-folder of images per class "
                    "(its name is the class name; ImageNet synset folders get the 1000 ImageNet names)")
    zs.add_argument("--classnames", metavar="FILE",
                    help="one `folder<TAB>name` line per class folder (or one name per line, in the folders' sorted order)")
    zs.add_argument("--templates", metavar="NAME|FILE",
                    help="a template set (imagenet1k, cifar10, ...: CLIP Benchmark's) or a file of one template "
                         "per line with {c} for the class name (default: imagenet1k for synset folders, else cifar10)")
    zs.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    zs.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (autocast)")
    zs.add_argument("--batch-size", type=options.arg("batch_size"), default=128)
    zs.add_argument("--workers", type=options.arg("workers"), help="DataLoader workers (default: min(4, cores))")
    zs.add_argument("--limit", type=options.arg("limit"), help="a fixed sample of N images")
    zs.add_argument("--channels-last", action="store_true")
    zs.add_argument("--file-rule", choices=("matchup", "timm"), default="matchup", help="which files make the set")
    zs.add_argument("--strict", action="store_true", help="fail on the first undecodable image")
    zs.add_argument("--decoded-cache-gb", type=options.arg("decoded_cache_gb"),
                    help="budget of the decoded-image cache (0: decode every time)")
    zs.add_argument("--force", action="store_true", help="recompute even when cached")
    zs.add_argument("--json", action="store_true")

    pr = commands.add_parser("probe", parents=[common], help="linear probe of frozen features on your labelled folder")
    pr.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint id arch.tag")
    pr.add_argument("--data", required=True, help="a folder with one sub-folder of images per class")
    pr.add_argument("--val", help="a validation folder with the same class sub-folders (else k-fold)")
    pr.add_argument("--folds", type=options.arg("folds"), default=5, help="stratified folds (default 5)")
    pr.add_argument("--shots", type=options.arg("shots"), help="few-shot: K training images per class, 5 seeds")
    pr.add_argument("--seed", type=options.arg("seed"), default=0)
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    pr.add_argument("--batch-size", type=options.arg("batch_size"), default=64)
    pr.add_argument("--workers", type=options.arg("workers"))
    pr.add_argument("--file-rule", default="matchup", choices=("matchup", "timm"),
                    help="which files make the set (as for eval)")
    pr.add_argument("--strict", action="store_true", help="fail at the first undecodable image")
    pr.add_argument("--json", action="store_true")
