"""`catalog`: fill the catalog, import or sync published results, write the shipped snapshot, list
checkpoints and their training compute.
"""
from __future__ import annotations

import json
import sys
import time

from engine.cli.common import frame_records, print_json
from engine.store import Store


def _import_summary(report, as_json: bool, seconds: float) -> int:
    if as_json:
        print_json({"imported": report.imported, "skipped": report.skipped,
                     "failed": report.failed, "seconds": round(seconds, 3)})
    else:
        for name, why in report.skipped.items():
            print(f"warning: skipped {name}: {why}", file=sys.stderr)
        for name, error in report.failed.items():
            print(f"error: {error}", file=sys.stderr)
        rows = sum(report.imported.values())
        print(f"imported {len(report.imported)} files ({rows} rows) in {seconds:.2f} s; "
              f"skipped {len(report.skipped)}; failed {len(report.failed)}")
    return 1 if report.failed else 0


def cmd_catalog(args, store: Store) -> int:
    from engine.catalog import refresh, timm_models, timm_published
    started = time.perf_counter()
    if args.action == "refresh":
        report = refresh.refresh(store)
        seconds = time.perf_counter() - started
        if args.json:
            print_json({**report.__dict__, "seconds": round(seconds, 3)})
        else:
            print(f"catalog: {report.checkpoints - report.image_text_checkpoints} pretrained checkpoints of "
                  f"{report.architectures} architectures (timm {report.timm_version}), "
                  f"{report.reference_points} reference points, {report.compute_loaded} shipped "
                  f"FLOP counts, in {seconds:.2f} s")
            print(f"image-text zoo: {report.image_text_checkpoints} OpenCLIP checkpoints "
                  f"(open_clip {report.open_clip_version})")
            if report.published_error:
                print(f"warning: {report.published_error}", file=sys.stderr)
            else:
                print(f"published results: {report.published}")
            if report.image_text_error:
                print(f"warning: {report.image_text_error}", file=sys.stderr)
            elif report.image_text_published:
                print(f"OpenCLIP published results: {report.image_text_published}")
            print(report.training_compute)
            if report.recipes_refused:
                print(f"warning: {report.recipes_refused}", file=sys.stderr)
        return 0
    if args.action == "training-compute" and args.coverage:
        return _coverage(store.training_coverage(), args.json)
    if args.action == "training-compute" and args.missing:
        return _missing(store, args.arch_class, args.zoo, args.json)
    if args.action == "training-compute":
        from engine.catalog.training_ranges import range_text
        frame = store.training_compute_frame()
        records = [{"checkpoint": r["checkpoint"], "train_flops": r["train_flops"],
                    "train_flops_low": r["train_flops_low"], "train_flops_high": r["train_flops_high"],
                    "complete": r["complete"], "placement": r["placement"], "missing_stages": r["missing_stages"] or None,
                    "pretrain_flops": r["pretrain_flops"], "finetune_flops": r["finetune_flops"],
                    "samples_seen": r["samples_seen"], "confidence": r["confidence"],
                    "sources": json.loads(r["sources"]) if isinstance(r["sources"], str) else [],
                    "stages": json.loads(r["stages"]) if isinstance(r["stages"], str) else [],
                    "lineage": json.loads(r["lineage"]) if isinstance(r["lineage"], str) else [],
                    "arch_class": r["arch_class"], "note": r["note"]}
                   for r in frame_records(frame)]
        if args.json:
            print_json(records)
            return 0
        known = frame[frame["train_flops"].notna()]
        bounds = frame[frame["train_flops"].isna() & frame["train_flops_low"].notna()]
        print(f"training compute: {len(known)} of {len(frame)} checkpoints estimated "
              f"({', '.join(f'{c} {n}' for c, n in known['confidence'].value_counts().items())}); "
              f"{len(bounds)} more are lower bounds only")
        shown = known.assign(train=[range_text(v, lo, hi) for v, lo, hi in zip(
            known["train_flops"], known["train_flops_low"], known["train_flops_high"], strict=True)],
            complete=known["complete"].map({True: "complete", False: "bounded"}))
        print(shown[["checkpoint", "arch_class", "train", "confidence", "complete"]].to_string(index=False))
        return 0
    if args.action == "snapshot" and args.timm_registry:
        from pathlib import Path
        from engine.paths import DATA_DIR
        out = Path(args.out) if args.out else DATA_DIR
        registry = timm_models.write_shipped_registry(out)
        if args.json:
            print_json({"timm_version": registry.version, "architectures": len(registry.architectures),
                        "pretrained": len(registry.pretrained), "folder": str(out)})
        else:
            print(f"registry of timm {registry.version}: {len(registry.architectures)} architectures, "
                  f"{len(registry.pretrained)} pretrained checkpoints in {out} "
                  f"({time.perf_counter() - started:.1f} s)")
        return 0
    if args.action == "snapshot" and args.open_clip_source:
        from pathlib import Path
        from engine.catalog import image_text_published
        provenance = image_text_published.write_snapshot(Path(args.open_clip_source),
                                                         Path(args.out) if args.out else None,
                                                         args.open_clip_commit)
        if args.json:
            print_json(provenance)
        else:
            rows = sum(t["rows"] for t in provenance["tables"].values())
            print(f"snapshot of OpenCLIP {provenance['commit'][:8]}: {len(provenance['files'])} files, {rows} rows "
                  f"({time.perf_counter() - started:.1f} s)")
        return 0
    if args.action == "snapshot":
        from pathlib import Path
        from engine.catalog import snapshot
        provenance = snapshot.write(Path(args.out) if args.out else None,
                                    Path(args.source) if args.source else None, args.commit)
        if args.json:
            print_json(provenance)
        else:
            out = Path(args.out) if args.out else snapshot.snapshot_dir()
            size = sum((out / t["file"]).stat().st_size for t in provenance["tables"].values())
            rows = sum(t["rows"] for t in provenance["tables"].values())
            print(f"snapshot of timm {provenance['commit'][:8]}: {len(provenance['files'])} files, "
                  f"{rows} rows, {size / 1e6:.2f} MB of Parquet in {out} "
                  f"({time.perf_counter() - started:.1f} s)")
        return 0
    if args.action == "import":
        report = timm_published.import_dir(store, args.dir)
        return _import_summary(report, args.json, time.perf_counter() - started)
    if args.action == "sync":
        report = timm_published.sync(store, commit=args.commit)
        return _import_summary(report, args.json, time.perf_counter() - started)
    if args.action == "list":
        frame = timm_models.list_checkpoints(store, args.arch_class, args.zoo)
        if args.json:
            print_json(frame_records(frame))
        elif frame.empty:
            print("no checkpoints; run `python -m engine catalog refresh` first")
        else:
            # top1: ImageNet top-1 as published: the classifier's, or an image-text model's zero-shot
            frame = frame.assign(top1=frame["imagenet_top1"].fillna(frame["zeroshot_imagenet_top1"]))
            shown = frame[["checkpoint", "arch_class", "family", "pretrain_data", "params_m",
                           "top1"]].rename(columns={"arch_class": "class"})
            print(shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
        return 0
    raise AssertionError(args.action)


def _coverage(frame, as_json: bool) -> int:
    """`catalog training-compute --coverage`: the manual's coverage table (docs/training-compute.md), from one command."""
    if as_json:
        print_json(frame_records(frame))
        return 0
    total = frame[["checkpoints", "estimated", "lower_bound_only"]].sum()
    print(f"training-compute coverage of the {int(total['checkpoints']):,} checkpoints with a published ImageNet "
          f"top-1: {int(total['estimated']):,} estimated ({total['estimated'] / total['checkpoints']:.0%}), "
          f"{int(total['lower_bound_only'])} lower bounds only")
    shown = frame.assign(share=(frame["estimated"] / frame["checkpoints"]).map(lambda v: f"{v:.0%}"))
    print(shown.to_string(index=False))
    return 0


def _missing(store, arch_class: str | None, zoo: str | None, as_json: bool) -> int:
    """`catalog training-compute --missing`: the checkpoints the training-compute axis leaves out,
    with why (the list the app's captions count)."""
    from engine.catalog.timm_models import checked_class, checked_zoo
    from engine.catalog.training_ranges import flops_text
    frame = store.training_compute_missing(checked_class(arch_class), checked_zoo(zoo))
    if as_json:
        print_json(frame_records(frame))
        return 0
    counts = frame.groupby("arch_class").size()
    print(f"{len(frame):,} checkpoints have no training-compute estimate ("
          + ", ".join(f"{c} {n:,}" for c, n in counts.items()) + "):")
    width = max([len(c) for c in frame["checkpoint"]] + [10])
    print(f"{'class':8} {'checkpoint':{width}} {'top-1 (%)':>9} {'bound (FLOPs)':>13}  why")
    for r in frame.itertuples():
        top1 = "-" if r.published_top1 != r.published_top1 else f"{r.published_top1:.2f}"
        print(f"{r.arch_class:8} {r.checkpoint:{width}} {top1:>9} {flops_text(r.lower_bound_flops):>13}  {r.why}")
    return 0


def add_parsers(commands, common) -> None:
    """`catalog` and its actions."""
    cat = commands.add_parser("catalog", parents=[common], help="checkpoints and published results")
    cat_actions = cat.add_subparsers(dest="action", required=True)
    p = cat_actions.add_parser("refresh", parents=[common], help="fill checkpoints from the installed timm")
    p.add_argument("--json", action="store_true")
    p = cat_actions.add_parser("import", parents=[common], help="import timm's published CSVs from a folder")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true")
    p = cat_actions.add_parser("sync", parents=[common], help="download timm's published CSVs and import them")
    from engine.catalog.timm_published import TIMM_RESULTS_COMMIT
    p.add_argument("--commit", default=TIMM_RESULTS_COMMIT)
    p.add_argument("--json", action="store_true")
    p = cat_actions.add_parser("snapshot", parents=[common],
                               help="write the shipped snapshot of timm's published results (data/published)")
    p.add_argument("--from", dest="source", metavar="DIR",
                   help="timm's results/ folder at --commit (default: download it at --commit)")
    p.add_argument("--commit", default=TIMM_RESULTS_COMMIT, help="the timm commit the files are from")
    p.add_argument("--out", metavar="DIR", help="where to write (default: $MATCHUP_SNAPSHOT_DIR, else data/published)")
    from engine.catalog.image_text_published import OPEN_CLIP_COMMIT
    p.add_argument("--open-clip-from", dest="open_clip_source", metavar="DIR",
                   help="write the OpenCLIP snapshot instead (data/published/open_clip), from a folder holding "
                        "OpenCLIP's docs/ CSVs at --open-clip-commit")
    p.add_argument("--open-clip-commit", default=OPEN_CLIP_COMMIT, help="the open_clip commit the files are from")
    p.add_argument("--timm-registry", action="store_true",
                   help="write the installed timm's registry instead (data/timm_architectures.csv, "
                        "timm_pretrained.csv and timm_deprecated.csv; --out: another folder), so a first start "
                        "and an import need not import timm")
    p.add_argument("--json", action="store_true")
    p = cat_actions.add_parser("training-compute", parents=[common],
                               help="each checkpoint's training compute, with its recipe stages and sources")
    p.add_argument("--coverage", action="store_true",
                   help="how many checkpoints with a published ImageNet top-1 have an estimate, by class and data scale")
    p.add_argument("--missing", action="store_true",
                   help="list the checkpoints with no estimate: class, data, published top-1, lower bound, and why")
    p.add_argument("--class", dest="arch_class", help="with --missing: ConvNet, ViT, Hybrid or MLP")
    p.add_argument("--zoo", choices=("imagenet", "image-text"), help="with --missing: one zoo (default both)")
    p.add_argument("--json", action="store_true")
    p = cat_actions.add_parser("list", parents=[common], help="checkpoints with class, params, published top-1")
    p.add_argument("--class", dest="arch_class", help="ConvNet, ViT, Hybrid or MLP")
    p.add_argument("--zoo", choices=("imagenet", "image-text"),
                   help="ImageNet classifiers (timm) or image-text models (OpenCLIP); default both")
    p.add_argument("--json", action="store_true")
