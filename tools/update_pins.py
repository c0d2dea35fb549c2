"""Update the exact pins: install the newest releases requirements*.in allow, then write each
direct dependency's installed version to requirements*.txt. Run the tests after it.

    python tools/update_pins.py && python -m pytest -q

The app pins what it was tested with (a DuckDB major release once removed an API under it);
this is the one way those pins move. Only direct dependencies are pinned, by name, exactly.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = {"requirements.in": ("requirements.txt", None), "requirements-dev.in": ("requirements-dev.txt", "-r requirements.txt")}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def direct_dependencies(path: Path) -> list[str]:
    """The distribution names a .in file asks for, in its order."""
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-") and (m := REQUIREMENT.match(line)):
            names.append(m.group(1))
    return names


def pinned(source: Path, header: str | None) -> str:
    lines = [f"# Exact versions Matchup is tested with, written by tools/update_pins.py from {source.name}.",
             f"# Change {source.name} and run `python tools/update_pins.py && python -m pytest -q`."]
    if header:
        lines.append(header)
    lines += [f"{name}=={importlib.metadata.version(name)}" for name in direct_dependencies(source)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-install", action="store_true",
                        help="write the pins from what is installed now, without upgrading")
    args = parser.parse_args()
    sources = [ROOT / name for name in FILES]
    if not args.no_install:
        command = [sys.executable, "-m", "pip", "install", "--upgrade"]
        for source in sources:
            command += ["-r", str(source)]
        subprocess.run(command, check=True)
    importlib.invalidate_caches()
    for source in sources:
        target, header = FILES[source.name]
        (ROOT / target).write_text(pinned(source, header))
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
