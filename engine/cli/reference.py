"""The CLI reference page, written from the parsers themselves (every command's `--help`), so the
documented options are the ones that exist: `python tools/cli_reference.py` writes docs/cli.md, and
a test fails when the committed page differs from what the parsers print."""
from __future__ import annotations

import argparse
import os

WIDTH = "100"  # argparse wraps at $COLUMNS: fixed, so the page is the same on every terminal


def _commands(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{path} {name}")
    return found


def markdown() -> str:
    """Every command's help, in the order `--help` lists them, as one Markdown page."""
    from engine.cli.main import build_parser
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        commands = _commands(build_parser(), "python -m engine")
        parts = ["# Command line reference", "",
                 "Every command of `python -m engine` with its `--help`, written from the parsers by "
                 "`python tools/cli_reference.py` (a test fails when this page and the parsers differ).", ""]
        for path, parser in commands:
            parts += [f"## `{path}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before
    return "\n".join(parts)
