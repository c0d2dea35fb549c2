"""The one error type the CLI and the app show as a plain paragraph instead of a traceback, and
where the traceback of anything unexpected goes instead of the user's screen."""
from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path


class MatchupError(Exception):
    """A failure the user can act on; its message says what to do."""


def log_dir() -> Path:
    """$MATCHUP_LOG_DIR, else matchup/ in the system's temporary folder."""
    return Path(os.environ.get("MATCHUP_LOG_DIR") or Path(tempfile.gettempdir()) / "matchup")


def log_unexpected(error: BaseException, where: str) -> Path | None:
    """Write an unexpected error's traceback to a log file and return its path (None when even
    that cannot be written): the user sees one line and where the details are."""
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(f"{where}\n\n" + "".join(traceback.format_exception(error)))
        return path
    except OSError:
        return None


def unexpected_line(error: BaseException, where: str) -> str:
    """'Unexpected ValueError: ... The details are in /tmp/matchup/error-....log.' (logged)."""
    path = log_unexpected(error, where)
    first = (str(error).strip().splitlines() or [""])[0][:300]
    said = f"Unexpected {type(error).__name__}" + (f": {first}" if first else "")
    return (f"{said}. Nothing was stored. The details are in {path}; please report it with that file."
            if path else f"{said}. Nothing was stored; please report it.")
