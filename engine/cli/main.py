"""The CLI's entry: one parser assembled from each command group's module; a known failure is one
line, never a traceback wall. `--json` output is a contract.
"""
from __future__ import annotations

import argparse
import sys

from engine import options
from engine.cli import accuracy, analyze, catalog, cost, db, jobs, sweep
from engine.errors import MatchupError
from engine.store import Store

GROUPS = (catalog, cost, accuracy, sweep, analyze, jobs, db)  # the order `python -m engine --help` lists them


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one paragraph (the error, how to see the options), never
    the usage wall; subcommands' parsers are of this class too."""

    def error(self, message: str):
        hint = ""
        if "required: MODEL" in message or "unrecognized arguments: -" in message or "expected one argument" in message:
            hint = (" A checkpoint id or value that starts with '-' goes after `--` (e.g. `python -m engine eval "
                    "--data DIR -- -my-model`).")
        self.exit(2, f"error: {self.prog}: {message.rstrip('.')}.{hint} See `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS,
                        help="DuckDB file (default: $MATCHUP_DB, else data/matchup.duckdb)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an unexpected error (it is always logged)")
    parser = Parser(prog="python -m engine", parents=[common],
                                     description="Matchup engine: ConvNets vs ViTs at matched compute.")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The CLI: a known failure is one line (exit 2); anything unexpected is one line and a log
    file with its traceback (exit 1; --debug prints the traceback too)."""
    args = build_parser().parse_args(argv)
    try:
        options.check_environment()
        store = Store(getattr(args, "db", None))
        return {"catalog": catalog.cmd_catalog, "profile": cost.cmd_profile, "bench": cost.cmd_bench,
                "eval": accuracy.cmd_eval, "zeroshot": accuracy.cmd_zeroshot, "probe": accuracy.cmd_probe,
                "sweep": sweep.cmd_sweep, "analyze": analyze.cmd_analyze, "db": db.cmd_db,
                "jobs": jobs.cmd_jobs, "worker": jobs.cmd_worker}[args.command](args, store)
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
