"""The committed CLI reference is what the parsers print today: an option added, renamed or
re-worded without `python tools/cli_reference.py` fails here."""
from pathlib import Path

from engine.cli import reference

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_the_committed_cli_reference_matches_the_parsers():
    written = reference.markdown()
    assert PAGE.read_text() == written, "docs/cli.md is out of date: run `python tools/cli_reference.py`"
    assert written.count("\n## `python -m engine") == 25  # every command and action has its section


def test_a_changed_option_is_caught(monkeypatch):
    """The check itself: a parser whose help says something else makes a different page."""
    from engine.cli import main
    real = main.build_parser

    def changed():
        parser = real()
        parser.add_argument("--planted", help="an option the page does not document")
        return parser
    monkeypatch.setattr(main, "build_parser", changed)
    assert "--planted" in reference.markdown() and PAGE.read_text() != reference.markdown()
