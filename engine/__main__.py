"""The CLI: `python -m engine ...`, a thin layer over the library. `--json` output is a contract."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

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
    from engine import catalog
    started = time.perf_counter()
    if args.action == "refresh":
        report = catalog.refresh(store)
        seconds = time.perf_counter() - started
        if args.json:
            _print_json({**report.__dict__, "seconds": round(seconds, 3)})
        else:
            print(f"catalog: {report.checkpoints} pretrained checkpoints of "
                  f"{report.architectures} architectures (timm {report.timm_version}), "
                  f"{report.reference_points} reference points, in {seconds:.2f} s")
        return 0
    if args.action == "import":
        report = catalog.import_dir(store, args.dir)
        return _import_summary(report, args.json, time.perf_counter() - started)
    if args.action == "sync":
        report = catalog.sync(store, commit=args.commit)
        return _import_summary(report, args.json, time.perf_counter() - started)
    if args.action == "list":
        frame = catalog.list_checkpoints(store, args.arch_class)
        if args.json:
            _print_json(_records(frame))
        elif frame.empty:
            print("no checkpoints; run `python -m engine catalog refresh` first")
        else:
            shown = frame[["checkpoint", "arch_class", "family", "pretrain_data", "params_m",
                           "imagenet_top1"]].rename(columns={"arch_class": "class",
                                                             "imagenet_top1": "top1"})
            print(shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
        return 0
    raise AssertionError(args.action)


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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS,
                        help="DuckDB file (default: $MATCHUP_DB, else data/matchup.duckdb)")
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
    from engine.catalog import TIMM_RESULTS_COMMIT
    p.add_argument("--commit", default=TIMM_RESULTS_COMMIT)
    p.add_argument("--json", action="store_true")
    p = cat_actions.add_parser("list", parents=[common], help="checkpoints with class, params, published top-1")
    p.add_argument("--class", dest="arch_class", help="ConvNet, ViT, Hybrid or MLP")
    p.add_argument("--json", action="store_true")

    db = commands.add_parser("db", parents=[common], help="the database file")
    db_actions = db.add_subparsers(dest="action", required=True)
    p = db_actions.add_parser("info", parents=[common], help="row counts, schema version, path and size")
    p.add_argument("--json", action="store_true")
    p = db_actions.add_parser("export", parents=[common], help="write every table as Parquet into DIR")
    p.add_argument("dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = Store(getattr(args, "db", None))
    try:
        return {"catalog": cmd_catalog, "db": cmd_db}[args.command](args, store)
    except MatchupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
