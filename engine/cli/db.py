"""`db`: the database file (row counts, schema version; export as Parquet).
"""
from __future__ import annotations

from engine.cli.common import print_json
from engine.store import Store


def cmd_db(args, store: Store) -> int:
    if args.action == "info":
        info = store.info()
        if args.json:
            print_json(info)
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


def add_parsers(commands, common) -> None:
    """`db` and its actions."""
    db = commands.add_parser("db", parents=[common], help="the database file")
    db_actions = db.add_subparsers(dest="action", required=True)
    p = db_actions.add_parser("info", parents=[common], help="row counts, schema version, path and size")
    p.add_argument("--json", action="store_true")
    p = db_actions.add_parser("export", parents=[common], help="write every table as Parquet into DIR")
    p.add_argument("dir")
