"""Where the checkout's folders are. Modules ask here rather than counting `..` from their own
file, so moving a module never moves a path."""
from __future__ import annotations

import os
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parent
REPO_ROOT = ENGINE_DIR.parent
DATA_DIR = REPO_ROOT / "data"
SNAPSHOT_DIR = DATA_DIR / "published"  # the shipped snapshot of timm's published results


def snapshot_dir() -> Path:
    """$MATCHUP_SNAPSHOT_DIR, else data/published in the project."""
    return Path(os.environ.get("MATCHUP_SNAPSHOT_DIR") or SNAPSHOT_DIR)
