"""Write docs/cli.md from the CLI's parsers (every command's --help). Run it after changing a
command's options; tests/test_cli_reference.py fails until the committed page matches.

    python tools/cli_reference.py
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.cli import reference  # noqa: E402

if __name__ == "__main__":
    target = ROOT / "docs" / "cli.md"
    target.write_text(reference.markdown())
    print(f"wrote {target.relative_to(ROOT)}")
