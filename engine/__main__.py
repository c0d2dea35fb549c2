"""The CLI: `python -m engine ...`, a thin layer over the library. `--json` output is a contract."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

from engine import options
from engine.errors import MatchupError
from engine.store import Store


def _jsonable(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def _records(frame) -> list[dict]:
    return [{k: _jsonable(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _print_json(payload) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _import_summary(report, as_json: bool, seconds: float) -> int:
    if as_json:
        _print_json({"imported": report.imported, "skipped": report.skipped,
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
            _print_json({**report.__dict__, "seconds": round(seconds, 3)})
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
    if args.action == "training-compute":
        frame = store.training_compute_frame()
        records = [{"checkpoint": r["checkpoint"], "train_flops": r["train_flops"],
                    "pretrain_flops": r["pretrain_flops"], "finetune_flops": r["finetune_flops"],
                    "samples_seen": r["samples_seen"], "confidence": r["confidence"],
                    "sources": json.loads(r["sources"]) if isinstance(r["sources"], str) else [],
                    "stages": json.loads(r["stages"]) if isinstance(r["stages"], str) else [],
                    "arch_class": r["arch_class"], "note": r["note"]}
                   for r in _records(frame)]
        if args.json:
            _print_json(records)
            return 0
        known = frame[frame["train_flops"].notna()]
        print(f"training compute: {len(known)} of {len(frame)} checkpoints estimated "
              f"({', '.join(f'{c} {n}' for c, n in known['confidence'].value_counts().items())})")
        shown = known.assign(train=known["train_flops"].map(lambda v: f"{v:.3g}"))
        print(shown[["checkpoint", "arch_class", "train", "confidence"]].to_string(index=False))
        return 0
    if args.action == "snapshot" and args.open_clip_source:
        from pathlib import Path
        from engine.catalog import image_text_published
        provenance = image_text_published.write_snapshot(Path(args.open_clip_source),
                                                         Path(args.out) if args.out else None,
                                                         args.open_clip_commit)
        if args.json:
            _print_json(provenance)
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
            _print_json(provenance)
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
            _print_json(_records(frame))
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


def _compute_row(result: dict) -> dict:
    import torch
    import timm
    from datetime import datetime, timezone
    from engine.measure.profile import COUNTER
    by_module = result.get("flops_by_module")
    return {**result, "counter": f"{COUNTER} ({result['device']})",
            "flops_by_module": json.dumps(by_module) if by_module is not None else None,
            "torch_version": torch.__version__, "timm_version": timm.__version__,
            "created_at": datetime.now(timezone.utc).replace(tzinfo=None)}


def cmd_profile(args, store: Store) -> int:
    import pandas as pd
    from tqdm import tqdm
    from engine.measure import profile
    if args.crosscheck:
        summary = profile.crosscheck_summary(store.compute_crosscheck())
        if args.json:
            _print_json(summary)
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
        results = [_compute_row(profile.count_strict(name, args.img_size).as_dict())
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
        for result in profile.count_many(rows, jobs=args.jobs):
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
            from engine.catalog.timm_models import SHIPPED_COMPUTE_CSV
            from engine.catalog.refresh import write_shipped_compute
            n = write_shipped_compute(store)
            print(f"wrote {n} rows to {SHIPPED_COMPUTE_CSV}", file=sys.stderr)
    frame = pd.DataFrame(results)
    if args.json:
        _print_json(_records(frame.drop(columns=["created_at"], errors="ignore")))
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


def _batch_size(value: str):
    """A benchmark's batch size: 'auto', or the rule every batch size follows."""
    return value if value == "auto" else options.arg("batch_size")(value)


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
        _print_json(_records(frame))
        return 0
    frame["ms_per_img"] = 1000 / frame["throughput"]
    print(frame[["checkpoint", "img_size", "batch_size", "precision", "device_name", "throughput",
                 "ms_per_img", "latency_p50_ms", "latency_p90_ms", "peak_memory_mb", "cached"]]
          .to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
    for row in rows:
        if row["error"]:
            print(f"{row['checkpoint']}: {row['error']}", file=sys.stderr)
    return 0


def _say_what_was_read(dataset, args) -> None:
    """Which files made the set, per extension, and by which rule (on stderr: stdout may be JSON)."""
    from engine.measure.datasets import extension_counts
    counts = ", ".join(f"{n} {ext or '(none)'}" for ext, n in extension_counts(dataset.files).items())
    print(f"{len(dataset)} images in {args.data} ({counts}); file rule: {args.file_rule}; hidden files "
          "and folders are ignored", file=sys.stderr)


def cmd_probe(args, store: Store) -> int:
    """Linear probe of each checkpoint's frozen features on a labelled folder (engine.probe)."""
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
        _print_json(_records(summary))
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


def _pass_bars(bars: dict, quiet: bool):
    """A progress callback drawing one bar per decoding pass, named after the checkpoints it
    feeds (eval and zeroshot); the caller closes `bars`."""
    from tqdm import tqdm

    def progress(state):
        name = ", ".join(state["checkpoints"])
        if name not in bars:
            for other in bars.values():
                other.close()
            bars[name] = tqdm(total=state["total"], unit="img", desc=name, disable=quiet)
        bars[name].n = state["done"]
        bars[name].set_postfix(img_s=f"{state['images_per_sec']:.1f}")
    return progress


def cmd_eval(args, store: Store) -> int:
    import pandas as pd
    from engine.measure import datasets, evaluate
    dataset = datasets.open_dataset(args.data, labels=args.labels, variant=args.variant, file_rule=args.file_rule)
    settings = evaluate.EvalSettings(device=args.device, precision=args.precision,
                                     batch_size=args.batch_size, limit=args.limit,
                                     channels_last=args.channels_last, decoded_cache_gb=args.decoded_cache_gb,
                                     strict=args.strict,
                                     **({"workers": args.workers} if args.workers is not None else {}))
    _say_what_was_read(dataset, args)
    bars = {}
    rows = evaluate.evaluate(store, args.models, dataset, settings, force=args.force,
                             progress=_pass_bars(bars, args.json))
    for bar in bars.values():
        bar.close()
    summary = pd.DataFrame([{**{k: v for k, v in row.items() if k != "details"},
                             "skipped_images": (row.get("details") or {}).get("skipped_images", 0),
                             "skipped_paths": (row.get("details") or {}).get("skipped_paths") or []}
                            for row in rows])
    if args.json:
        _print_json(_records(summary))
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
    import pandas as pd
    from engine.measure import evaluate
    from engine.measure import zeroshot
    dataset = zeroshot.open_folder(args.data, classnames=args.classnames, file_rule=args.file_rule)
    settings = evaluate.EvalSettings(device=args.device, precision=args.precision, batch_size=args.batch_size,
                                     limit=args.limit, channels_last=args.channels_last,
                                     decoded_cache_gb=args.decoded_cache_gb, strict=args.strict,
                                     **({"workers": args.workers} if args.workers is not None else {}))
    _say_what_was_read(dataset, args)
    print(f"{dataset.num_classes} classes ({dataset.classnames_from}): "
          f"{', '.join(dataset.classnames[:5])}{' ...' if dataset.num_classes > 5 else ''}", file=sys.stderr)
    bars = {}
    rows = zeroshot.zeroshot(store, args.models, dataset, templates=args.templates, settings=settings,
                             force=args.force, progress=_pass_bars(bars, args.json))
    for bar in bars.values():
        bar.close()
    summary = pd.DataFrame([{**{k: v for k, v in row.items() if k not in ("details", "classnames", "templates")},
                             "n_templates": len(row["templates"]),
                             "text_embeddings": row["details"].get("text_embeddings")} for row in rows])
    if args.json:
        _print_json(_records(summary))
        return 0
    print(summary[["checkpoint", "n_images", "n_classes", "top1", "top5", "balanced_accuracy", "templates_name",
                   "img_size", "images_per_sec", "cached"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


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


def cmd_sweep(args, store: Store) -> int:
    from engine.measure import datasets, evaluate, sweep
    selection = sweep.Selection(classes=_csv_list(args.classes, flag="--classes"), families=_csv_list(args.families, flag="--families"),
                                data_scales=_csv_list(args.data_scales, flag="--data-scale"), max_params_m=args.max_params,
                                max_gflops=args.max_gflops, checkpoints=_csv_list(args.checkpoints, flag="--checkpoints"),
                                from_file=args.from_file, published_only=args.published_only)
    if args.probe is not None:
        return _sweep_probe(args, store, sweep.select(store, selection))
    if args.zeroshot is not None:
        selection.zoo = "image-text"
        return _sweep_zeroshot(args, store, sweep.select(store, selection))
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
        _say_what_was_read(dataset, args)
    if not args.dry_run:
        evaluate.check_settings(settings)
    checkpoints = sweep.select(store, selection)
    the_plan = sweep.plan(store, checkpoints, dataset, settings, n_images=args.images,
                          estimate_for=args.estimate_for if args.dry_run else None)
    if args.dry_run:
        if args.json:
            _print_json(the_plan.as_dict())
        else:
            _print_plan(the_plan)
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
        _print_json({"plan": {k: v for k, v in the_plan.as_dict().items() if k != "checkpoints"},
                     "results": _records(frame), "seconds": round(report.seconds, 3),
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
        stored = [c for c in checkpoints if probe.lookup(store, c, data, settings) is not None]
        payload = {"checkpoints": checkpoints, "stored": stored, "to_run": [c for c in checkpoints if c not in stored]}
        if args.json:
            _print_json(payload)
        else:
            print(f"{len(payload['to_run'])} to probe, {len(stored)} already stored")
        return 0
    bar = tqdm(total=len(checkpoints), unit="ckpt", disable=args.json)
    report = probe.probe_many(store, checkpoints, data, settings, on_result=lambda *_: bar.update(1))
    bar.close()
    return _print_report(pd.DataFrame(report), args.json)


def _sweep_zeroshot(args, store: Store, checkpoints: list[str]) -> int:
    """sweep --zeroshot DIR: zero-shot runs of every selected image-text checkpoint, resumable
    (stored results are skipped), sharing decoding passes and the decoded-image cache as eval's do."""
    import pandas as pd
    from tqdm import tqdm
    from engine.measure import evaluate
    from engine.measure import zeroshot
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
    stored = [c for c in checkpoints if zeroshot.lookup(store, c, data, args.templates, settings) is not None]
    if args.dry_run:
        payload = {"checkpoints": checkpoints, "stored": stored, "to_run": [c for c in checkpoints if c not in stored]}
        if args.json:
            _print_json(payload)
        else:
            print(f"{len(payload['to_run'])} to run, {len(stored)} already stored")
        return 0
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
        _print_json({"results": _records(frame)})
    else:
        print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
        for row in frame[frame["status"] == "failed"].itertuples():
            print(f"failed {row.checkpoint}: {row.error}", file=sys.stderr)
    return 1 if (frame["status"] == "failed").any() else 0


def cmd_jobs(args, store: Store) -> int:
    from engine import jobs
    if args.action == "add":
        base = {"kind": args.kind, "device": args.device, "precision": args.precision,
                "channels_last": args.channels_last}
        if args.kind == "eval":
            if not args.data:
                raise jobs.JobError("`jobs add eval` needs --data DIR (the evaluation set).")
            base.update(data=args.data, labels=args.labels, variant=args.variant, limit=args.limit,
                        workers=args.workers,
                        batch_size=128 if args.batch_size == "auto" else args.batch_size)
        elif args.kind == "zeroshot":
            if not args.data:
                raise jobs.JobError("`jobs add zeroshot` needs --data DIR (a folder with one sub-folder per class).")
            base.update(data=args.data, classnames=args.classnames, templates=args.templates, limit=args.limit,
                        workers=args.workers, batch_size=128 if args.batch_size == "auto" else args.batch_size)
        elif args.kind == "probe":
            if not args.data:
                raise jobs.JobError("`jobs add probe` needs --data DIR (a folder with one sub-folder per class).")
            base.update(data=args.data, val=args.val, folds=args.folds, shots=args.shots, seed=args.seed,
                        workers=args.workers, batch_size=64 if args.batch_size == "auto" else args.batch_size)
        else:
            base.update(batch_size=args.batch_size, img_size=args.img_size, compile=args.compile)
        specs = [jobs.normalize({**base, "checkpoint": m}) for m in args.models]  # all checked first
        from engine.jobs import access
        answers = [jobs.enqueue(store, spec, requested_by=access.cli_user()) for spec in specs]
        rows = [{"checkpoint": a["spec"]["checkpoint"], "outcome": a["outcome"], "job": a["job"]}
                for a in answers]
        if args.json:
            _print_json(rows)
        else:
            for row in rows:
                print(f"{row['checkpoint']}: {row['outcome']}" + (f" (job {row['job']})" if row["job"] else
                                                                  " (already measured; see the Checkpoint page)"))
        return 0
    if args.action == "list":
        store.requeue_stale(jobs.job_timeout_s(), jobs.MAX_ATTEMPTS)
        frame = store.jobs_frame(limit=args.limit)
        if args.json:
            _print_json(_records(frame))
            return 0
        if frame.empty:
            print("No jobs. Queue one with `python -m engine jobs add eval MODEL --data DIR`.")
            return 0
        frame["progress"] = (frame["progress"].fillna(0) * 100).round().astype(int).astype(str) + "%"
        print(frame[["id", "state", "progress", "label", "requested_by", "worker", "error"]].to_string(
            index=False, na_rep="-"))
        return 0
    state = jobs.cancel(store, args.job, admin=True)  # the shell is trusted
    if state is None:
        raise jobs.JobError(f"There is no job {args.job!r}; `python -m engine jobs list` shows their ids.")
    print({"cancelled": f"{args.job}: cancelled", "running": f"{args.job}: asked to stop; its worker stops "
           "at its next heartbeat and stores nothing"}.get(state, f"{args.job} is already {state}; nothing to cancel"))
    return 0


def cmd_worker(args, store: Store) -> int:
    from engine import jobs
    worker = jobs.Worker(store, device=args.device, embedded=args.embedded)
    print(f"worker {worker.id} on {worker.device}" + (" (until the queue is empty)" if args.once else ""),
          file=sys.stderr)
    ran = worker.run(once=args.once, poll_s=args.poll)
    print(f"worker {worker.id}: ran {ran} job(s)", file=sys.stderr)
    return 0


def _csv_list(value: str | None, cast=str, flag: str = "this option") -> list | None:
    """A comma-separated option; None when it was not given. Given but naming nothing (`''`,
    `,`) is refused: an empty list never means everything."""
    if value is None:
        return None
    items = [cast(v.strip()) for v in value.split(",") if v.strip()]
    if not items:
        raise MatchupError(f"{flag} names nothing ({value!r}); leave it out for all, or name one or more.")
    return items


def _size_range(value: str | None):
    if not value:
        return None
    low, _, high = value.partition("-")
    try:
        return (int(low), int(high or low))
    except ValueError:
        raise MatchupError(f"--img-size takes MIN-MAX pixels, e.g. 224-384, not {value!r}.") from None


def cmd_analyze(args, store: Store) -> int:
    from engine.analysis import budget_match, pairing, pareto, points_table, scaling_fits
    budgets = [options.check("budget", b) for b in _csv_list(args.budgets, flag="--budgets") or []]  # checked before any work
    bench_source = args.bench_source
    if args.cost == "ms_per_img" and bench_source is None:
        sources = store.published_benchmark_sources()
        if sources.empty:
            raise MatchupError("--cost ms_per_img needs published benchmarks (`catalog import DIR`) "
                               "or --bench-source here (measured with `bench`).")
        bench_source = sources["source_file"].iloc[0]
    points = points_table.assemble_points(store.analysis_inputs(), bench_source=bench_source)
    if args.kind == "robustness":
        return _analyze_robustness(args, points, budgets, bench_source)
    if args.cost is None:
        raise MatchupError(f"analyze {args.kind} needs --cost ({', '.join(points_table.COST_METRICS)}).")
    try:
        filters = dict(data_scales=_csv_list(args.data_scale, flag="--data-scale"), families=_csv_list(args.families, flag="--families"),
                       sources=_csv_list(args.source, flag="--source"), img_size_range=_size_range(args.img_size),
                       data_sources=_csv_list(args.pretrain_data, flag="--pretrain-data"))
        chosen = points_table.select(points, args.cost, args.quality, classes=_csv_list(args.classes, flag="--classes"), **filters)
        # default budgets span every class's points: which classes are compared never moves them
        all_classes = points_table.select(points, args.cost, args.quality, **filters)
        n_boot = args.n_boot or (1000 if args.kind == "scaling" else budget_match.N_BOOT)
        header = {"analysis": args.kind, "cost": args.cost, "quality": args.quality,
                  "bench_source": bench_source if args.cost == "ms_per_img" else None,
                  "n_points": int(len(chosen)),
                  "higher_is_better": points_table.higher_is_better(args.quality)}
        if args.kind == "frontier":
            front = pareto.frontier(chosen, args.quality)
            payload = {**header, "classes": {
                c: _records(g[["checkpoint", "cost", "quality", "source", "family", "data_scale"]])
                for c, g in front.groupby("arch_class")}}
        elif args.kind == "budget":
            if not budgets:
                raise MatchupError("analyze budget needs --budgets, e.g. --budgets 1,5,20,100")
            payload = {**header, "n_boot": n_boot, "seed": args.seed,
                       "budgets": budget_match.budget_table(chosen, args.quality, budgets, n_boot, args.seed)}
        elif args.kind == "pairs":
            match_on = "pretrain_data" if args.same_data else None
            payload = {**header, **pairing.matched_pairs(chosen, args.quality, args.tolerance, match_on=match_on,
                                                          matching=args.matching),
                       "share_by_matching": pairing.share_by_matching(chosen, args.quality, args.tolerance,
                                                                       match_on=match_on)}
        elif args.kind == "when":
            from engine.analysis import when
            payload = {**header, **when.when(chosen, args.quality, budgets or budget_match.log_budgets(all_classes, n=8),
                                              args.tolerance, n_boot, args.seed, by=args.by)}
            payload["verdicts"] = {other: when.explained_verdict(chosen, args.quality, payload["budgets"], other,
                                                                 reference, n_boot=n_boot, seed=args.seed)
                                   for other, reference in when.COMPARISONS}
        else:
            payload = {**header, **scaling_fits.scaling(chosen, args.quality, on=args.on, law=args.law,
                                                    n_boot=n_boot, seed=args.seed)}
    except points_table.AnalysisError as e:
        raise MatchupError(str(e)) from None
    if args.json:
        _print_json(_clean(payload))
        return 0
    _print_analysis(payload)
    return 0


def _analyze_robustness(args, points, budgets: list[float], bench_source) -> int:
    """analyze robustness --quality OOD.top1 [--cost C [--budgets ...]]: the trend, effective
    robustness per checkpoint, class and data scale; with --cost, the budget gap on the OOD metric."""
    from engine.analysis import budget_match, points_table, robustness
    ood, _, metric = args.quality.partition(".")
    if ood not in robustness.OOD_SETS and ood not in robustness.IMAGE_TEXT_OOD:
        raise MatchupError(f"analyze robustness takes --quality <OOD set>.top1 with the set one of "
                           f"{', '.join([*robustness.OOD_SETS, *robustness.IMAGE_TEXT_OOD])}; not {args.quality!r}.")
    try:
        n_boot = args.n_boot or robustness.ROBUSTNESS_N_BOOT
        result = (robustness.image_text_robustness(points, ood, n_boot, args.seed) if ood in robustness.IMAGE_TEXT_OOD
                  else robustness.robustness(points[points["zoo"] != "image-text"], ood, metric or "top1", n_boot,
                                             args.seed))
        shown = result["points"]
        for column, wanted in (("arch_class", _csv_list(args.classes, flag="--classes")), ("data_scale", _csv_list(args.data_scale, flag="--data-scale")),
                               ("family", _csv_list(args.families, flag="--families"))):
            if wanted:
                shown = shown[shown[column].isin(wanted)]
        payload = {"analysis": "robustness", "quality": args.quality, "ood": ood, "x": result["x"], "y": result["y"],
                   "trend": result["trend"], "note": result["note"], "n_points": int(len(shown)),
                   "n_boot": n_boot, "seed": args.seed,
                   "by_class": robustness.summary(shown, ["arch_class"], n_boot, args.seed),
                   "by_class_and_scale": robustness.summary(shown, ["arch_class", "data_scale"], n_boot, args.seed),
                   "checkpoints": _records(shown.assign(data_scale=shown["data_scale"].astype(str))[
                       ["checkpoint", "arch_class", "data_scale", "pretrain_data", "id_accuracy", "ood_accuracy",
                        "effective_robustness"]])}
        if args.cost:
            filters = dict(data_scales=_csv_list(args.data_scale, flag="--data-scale"), families=_csv_list(args.families, flag="--families"))
            chosen = points_table.select(points, args.cost, result["y"], classes=_csv_list(args.classes, flag="--classes"), **filters)
            budgets = budgets or budget_match.log_budgets(points_table.select(points, args.cost, result["y"], **filters), 6)
            payload.update(cost=args.cost, bench_source=bench_source if args.cost == "ms_per_img" else None,
                           budgets=budget_match.budget_table(chosen, result["y"], budgets, budget_match.N_BOOT
                                                         if args.n_boot is None else args.n_boot, args.seed))
    except points_table.AnalysisError as e:
        raise MatchupError(str(e)) from None
    if args.json:
        _print_json(_clean(payload))
        return 0
    t = payload["trend"]
    print(f"robustness: {payload['y']} against {payload['x']} ({payload['n_points']} checkpoints); trend on "
          f"{t['fitted_on']} only (n={t['n_points']}): logit(OOD) = {t['intercept']:.3f} + {t['slope']:.3f} "
          f"logit(ID), R² {t['r2']:.2f}")
    if payload["note"]:
        print(f"  note: {payload['note']}")
    for row in payload["by_class"]:
        print(f"  {row['arch_class']}: effective robustness "
              f"{budget_match.with_ci(row['mean'], row['ci_low'], row['ci_high'])} points, n={row['n']}")
    for row in payload.get("budgets", []):
        gaps = "; ".join(f"{k} {budget_match.with_ci(g['gap'], g['ci_low'], g['ci_high'])} {budget_match.verdict_label(g)}"
                         for k, g in row["gaps"].items())
        print(f"  budget {row['budget']:g}: {gaps}")
    return 0


def _clean(value):
    """JSON-safe: NaN -> null, tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return _jsonable(value)


def _print_analysis(p: dict) -> None:
    from engine.analysis import budget_match
    print(f"{p['analysis']}: {p['quality']} against {p['cost']} ({p['n_points']} points)")
    if p["analysis"] == "frontier":
        for arch_class, rows in p["classes"].items():
            steps = ", ".join(f"{r['checkpoint']} ({r['cost']:.3g}, {r['quality']:.2f})" for r in rows)
            print(f"  {arch_class}: {steps}")
    elif p["analysis"] == "budget":
        for row in p["budgets"]:
            best = "; ".join(f"{c} {b['quality']:.2f} ({b['checkpoint']})" for c, b in row["best"].items())
            gaps = "; ".join(f"{k} {budget_match.with_ci(g['gap'], g['ci_low'], g['ci_high'])} {budget_match.verdict_label(g)}"
                             for k, g in row["gaps"].items())
            print(f"  budget {row['budget']:g}: {gaps}; {best}; best class: "
                  f"{row['winner'] or row['winner_verdict']}")
    elif p["analysis"] == "pairs":
        left, right = p["left"], p["right"]
        print(f"  {p['n_pairs']} pairs within ±{p['tolerance']:.0%} ({p['matching']} matching): {left} wins "
              f"{p['wins'][left]}, {right} wins {p['wins'][right]}, ties {p['wins']['tie']}; "
              f"{left} share {p['share'][left]:.2f} CI {p['share_ci'][left]}")
        for row in p["share_by_matching"]:
            print(f"    {row['label']}: {row['n_pairs']} pairs, {left} share {row['share']:.2f}")
    elif p["analysis"] == "when":
        for cell in p["cells"]:
            if cell["gap"] is not None:
                print(f"  {cell['group']} ≤{cell['budget']:g} {cell['comparison']}: "
                      f"{budget_match.with_ci(cell['gap'], cell['ci_low'], cell['ci_high'])} n={cell['n_checkpoints']} "
                      f"{budget_match.verdict_label(cell) if cell['verdict'] != 'too few' else 'too few'}")
        for key, both in p["pairs"].items():
            for scope, pairs in (("all", both["all"]), ("same data", both["same_data"])):
                left = pairs["left"]
                print(f"  pairs {key} ({scope}): {pairs['n_pairs']}, {left} share {pairs['share'][left]:.2f} "
                      f"CI [{pairs['share_ci'][left][0]:.2f}, {pairs['share_ci'][left][1]:.2f}]")
        for other, sentences in p["verdicts"].items():
            for sentence in sentences:
                print(f"  {other} vs ConvNet: {sentence}")
    else:
        for arch_class, fit in p["fits"].items():
            print(f"  {arch_class}: log(error) = {fit['a']:.3f} {fit['b']:+.3f} log(cost), R² {fit['r2']:.2f}, "
                  f"slope CI [{fit['b_ci'][0]:.3f}, {fit['b_ci'][1]:.3f}], n={fit['n_points']}")
        for c in p["crossovers"]:
            where = f"{c['crossover']:.3g}" if c.get("crossover") else c["note"]
            print(f"  crossover {c['classes'][0]} / {c['classes'][1]}: {where}")


def cmd_db(args, store: Store) -> int:
    if args.action == "info":
        info = store.info()
        if args.json:
            _print_json(info)
            return 0
        print(f"database: {info['path']} ({info['size_bytes'] / 1e6:.1f} MB)")
        print(f"schema version: {info['schema_version']}")
        print(f"catalog: refreshed {info['catalog_refreshed_at'] or 'never'}"
              f" (timm {info['catalog_timm_version'] or '-'})")
        from engine.catalog.timm_published import describe_published
        print("published results: " + (describe_published(info["published"]) or "none loaded"))
        for table, n in info["tables"].items():
            print(f"  {table:<22} {n:>8} rows")
        joins = info["joins"]
        print(f"joins: {joins['imagenet_results_joined']} ImageNet published results joined to "
              f"checkpoints ({joins['published_results_joined']} on all datasets); "
              f"{joins['published_benchmarks_joined']} of {info['tables']['published_benchmarks']} "
              f"benchmark rows joined to an architecture; "
              f"{joins['checkpoints_without_class']} checkpoints without a class")
        return 0
    if args.action == "export":
        written = store.export(args.dir)
        for path in written:
            print(path)
        return 0
    raise AssertionError(args.action)


def _eval_options(parser: argparse.ArgumentParser, data_required: bool) -> None:
    """What `eval` and `sweep` share: the set, its labels, and how to run the models."""
    parser.add_argument("--data", required=data_required,
                        help="ImageNet-style folder, flat folder + --labels, or hfds/NAME[:SPLIT]")
    parser.add_argument("--labels", help="labels file (CSV/txt: file -> synset or index; ReaL JSON)")
    parser.add_argument("--variant", default="imagenet",
                        help="imagenet, imagenet-a, imagenet-r, imagenet-v2, sketch or real")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (autocast)")
    parser.add_argument("--batch-size", type=options.arg("batch_size"), default=128)
    parser.add_argument("--workers", type=options.arg("workers"), help="DataLoader workers (default: min(4, cores))")
    parser.add_argument("--limit", type=options.arg("limit"), help="evaluate a fixed sample of N images")
    parser.add_argument("--channels-last", action="store_true", help="NHWC models (ConvNets: faster)")
    parser.add_argument("--file-rule", choices=("matchup", "timm"), default="matchup",
                        help="which files make the set: matchup (every image type, nested folders) or timm "
                             "(.jpg/.jpeg/.png, as timm's folder reader; to reproduce published numbers)")
    parser.add_argument("--strict", action="store_true",
                        help="fail on the first undecodable image (default: skip, count and list them)")
    parser.add_argument("--decoded-cache-gb", type=options.arg("decoded_cache_gb"),
                        help="budget of the decoded-image cache in $MATCHUP_CACHE (default: half the free "
                             "disk; 0: decode every time)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS,
                        help="DuckDB file (default: $MATCHUP_DB, else data/matchup.duckdb)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an unexpected error (it is always logged)")
    parser = argparse.ArgumentParser(prog="python -m engine", parents=[common],
                                     description="Matchup engine: ConvNets vs ViTs at matched compute.")
    commands = parser.add_subparsers(dest="command", required=True)

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
    p.add_argument("--json", action="store_true")
    p = cat_actions.add_parser("training-compute", parents=[common],
                               help="each checkpoint's training compute, with its recipe stages and sources")
    p.add_argument("--json", action="store_true")
    p = cat_actions.add_parser("list", parents=[common], help="checkpoints with class, params, published top-1")
    p.add_argument("--class", dest="arch_class", help="ConvNet, ViT, Hybrid or MLP")
    p.add_argument("--zoo", choices=("imagenet", "image-text"),
                   help="ImageNet classifiers (timm) or image-text models (OpenCLIP); default both")
    p.add_argument("--json", action="store_true")

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
    bench.add_argument("--batch-size", type=_batch_size, default="auto",
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

    ev = commands.add_parser("eval", parents=[common], help="accuracy of Hub checkpoints on your data")
    ev.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint id arch.tag")
    _eval_options(ev, data_required=True)
    ev.add_argument("--force", action="store_true", help="recompute even when cached")
    ev.add_argument("--json", action="store_true")

    zs = commands.add_parser("zeroshot", parents=[common],
                             help="zero-shot accuracy of image-text (OpenCLIP) checkpoints on your own classes")
    zs.add_argument("models", nargs="+", metavar="MODEL",
                    help="open_clip:<model>.<tag> (catalog list --zoo image-text) or open_clip:hf-hub:ORG/REPO")
    zs.add_argument("--data", required=True, help="a folder with one sub-folder of images per class "
                    "(its name is the class name; ImageNet synset folders get the 1000 ImageNet names)")
    zs.add_argument("--classnames", metavar="FILE", help="one class name per line, in the sorted order of the folders")
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
    _eval_options(sw, data_required=False)
    sw.add_argument("--compile", action="store_true", help="torch.compile each model")
    sw.add_argument("--dry-run", action="store_true", help="print the plan and spend nothing")
    sw.add_argument("--zeroshot", nargs="?", const="", metavar="DIR",
                    help="zero-shot runs of image-text checkpoints on this class folder (or on --data)")
    sw.add_argument("--classnames", metavar="FILE", help="--zeroshot: one class name per line, in folder order")
    sw.add_argument("--templates", metavar="NAME|FILE", help="--zeroshot: a template set or file (as for zeroshot)")
    sw.add_argument("--probe", nargs="?", const="", metavar="DIR",
                    help="linear probes on this labelled folder (or on --data) instead of evaluations")
    sw.add_argument("--folds", type=options.arg("folds"), default=5, help="--probe: stratified folds")
    sw.add_argument("--shots", type=options.arg("shots"), help="--probe: K training images per class")
    sw.add_argument("--seed", type=options.arg("seed"), default=0, help="--probe: the folds' and shots' seed")
    sw.add_argument("--images", type=options.arg("images"), help="--dry-run without --data: plan for N images")
    sw.add_argument("--estimate-for", metavar="DEVICE", help="--dry-run: estimate time for this device name (e.g. H100)")
    sw.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                    help="fan out with Ray: alone, a local Ray over this machine; or a cluster's address")
    sw.add_argument("--gpus-per-task", type=options.arg("gpus_per_task"), default=1.0, help="with --ray: GPUs per checkpoint (may be fractional)")
    sw.add_argument("--json", action="store_true")

    an = commands.add_parser("analyze", parents=[common], help="frontiers, budgets, pairs, scaling")
    an.add_argument("kind", choices=("frontier", "budget", "pairs", "scaling", "when", "robustness"))
    an.add_argument("--cost",
                    help="gflops, params_m, latency_ms, ms_per_img or pretrain_tpu_v4_core_hours")
    an.add_argument("--quality", required=True, help="<dataset>.<metric>, e.g. imagenet.top1")
    an.add_argument("--budgets", help="comma-separated budgets in cost units (budget)")
    an.add_argument("--classes", help="comma-separated classes, e.g. ConvNet,ViT")
    an.add_argument("--data-scale", help="comma-separated buckets: ≈1M,≈10M,≈100M,≥1B")
    an.add_argument("--families", help="comma-separated families, e.g. convnext,vit")
    an.add_argument("--source", help="published, measured here, or a paper source id")
    an.add_argument("--pretrain-data", help="comma-separated pre-training data, e.g. LAION-2B (same-data comparisons)")
    an.add_argument("--by", default="data_scale", choices=("data_scale", "pretrain_data"),
                    help="when: group by data scale or by pre-training data (the image-text zoo shares LAION-2B)")
    an.add_argument("--img-size", help="resolution range MIN-MAX, e.g. 224-384")
    an.add_argument("--bench-source", help="published benchmark file for ms_per_img, or 'here'")
    an.add_argument("--tolerance", type=options.arg("tolerance"), default=0.10, help="pairs: ±cost tolerance")
    an.add_argument("--same-data", action="store_true", help="pairs: only within the same pre-training data")
    an.add_argument("--matching", choices=("fair", "one-to-one", "nearest"), default="fair",
                    help="pairs: fair (one-to-one over each architecture's best tag, default), one-to-one "
                         "(each checkpoint at most once), nearest (a ConvNet may match many)")
    an.add_argument("--on", default="frontier", choices=("frontier", "all"), help="scaling: fit 'frontier' or 'all' points")
    an.add_argument("--law", default="power", choices=("power", "saturating"),
                    help="scaling: 'power' or 'saturating' (adds E_inf)")
    an.add_argument("--n-boot", type=options.arg("n_boot"),
                    help="bootstrap resamples (default: 10000 per class and budget for budget and when, "
                         "2000 for robustness means, 1000 for scaling fits)")
    an.add_argument("--seed", type=options.arg("seed"), default=0)
    an.add_argument("--json", action="store_true")

    jb = commands.add_parser("jobs", parents=[common], help="queue evaluations and benchmarks for workers")
    jb_actions = jb.add_subparsers(dest="action", required=True)
    p = jb_actions.add_parser("add", parents=[common], help="queue one job per model (same options as eval/bench)")
    p.add_argument("kind", choices=("eval", "bench", "probe", "zeroshot"))
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--data", help="eval: evaluation set (folder or hfds/NAME:SPLIT); probe, zeroshot: class folder")
    p.add_argument("--classnames", metavar="FILE", help="zeroshot: one class name per line, in folder order")
    p.add_argument("--templates", metavar="NAME|FILE", help="zeroshot: a template set or file")
    p.add_argument("--val", help="probe: a validation folder with the same classes")
    p.add_argument("--folds", type=options.arg("folds"), default=5, help="probe: stratified folds")
    p.add_argument("--shots", type=options.arg("shots"), help="probe: K training images per class")
    p.add_argument("--seed", type=options.arg("seed"), default=0, help="probe: the folds' and shots' seed")
    p.add_argument("--labels")
    p.add_argument("--variant", default="imagenet")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, or auto (any worker)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--batch-size", type=_batch_size, default="auto")
    p.add_argument("--workers", type=options.arg("workers"))
    p.add_argument("--limit", type=options.arg("limit"))
    p.add_argument("--img-size", type=options.arg("img_size"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--json", action="store_true")
    p = jb_actions.add_parser("list", parents=[common], help="jobs, newest first")
    p.add_argument("--limit", type=options.arg("jobs_limit"), default=50)
    p.add_argument("--json", action="store_true")
    p = jb_actions.add_parser("cancel", parents=[common], help="cancel a queued job or stop a running one")
    p.add_argument("job")

    wk = commands.add_parser("worker", parents=[common], help="run queued jobs")
    wk.add_argument("--device", default="auto", help="cpu or cuda:N (default: cuda:0 if present, else cpu)")
    wk.add_argument("--once", action="store_true", help="exit when no job is left for this device")
    wk.add_argument("--poll", type=options.arg("poll"), default=1.0, help="seconds between looks at an empty queue")
    wk.add_argument("--embedded", action="store_true", help=argparse.SUPPRESS)

    db = commands.add_parser("db", parents=[common], help="the database file")
    db_actions = db.add_subparsers(dest="action", required=True)
    p = db_actions.add_parser("info", parents=[common], help="row counts, schema version, path and size")
    p.add_argument("--json", action="store_true")
    p = db_actions.add_parser("export", parents=[common], help="write every table as Parquet into DIR")
    p.add_argument("dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The CLI: a known failure is one line (exit 2); anything unexpected is one line and a log
    file with its traceback (exit 1; --debug prints the traceback too)."""
    args = build_parser().parse_args(argv)
    try:
        options.check_environment()
        store = Store(getattr(args, "db", None))
        return {"catalog": cmd_catalog, "profile": cmd_profile, "bench": cmd_bench, "eval": cmd_eval, "zeroshot": cmd_zeroshot, "probe": cmd_probe,
                "sweep": cmd_sweep, "analyze": cmd_analyze, "db": cmd_db,
                "jobs": cmd_jobs, "worker": cmd_worker}[args.command](args, store)
    except MatchupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback wall for the user
        from engine.errors import unexpected_line
        if getattr(args, "debug", False):
            import traceback
            traceback.print_exc()
        print(f"error: {unexpected_line(e, 'python -m engine ' + ' '.join(argv or sys.argv[1:]))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
