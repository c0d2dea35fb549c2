"""Every numeric option checked once, by one rule each, wherever it comes from: the CLI (argparse
types), the job queue (`jobs.normalize`), the library (`evaluate.check_settings`) and the pages.
A bad value gets one sentence naming the option, the rule and the value, never a traceback from
torch or a second cached row for the same measurement."""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

from engine.errors import MatchupError


class OptionError(MatchupError, ValueError):
    """An option's value breaks its rule; the message names both."""


@dataclass(frozen=True)
class Rule:
    flag: str
    kind: type
    low: float
    high: float | None
    meaning: str
    low_open: bool = False  # low itself is not allowed (a positive real)

    def check(self, value):
        if isinstance(value, bool):  # True is an int to Python, never a batch size or a seed
            raise OptionError(f"{self.flag} must be {self.meaning}, not {value!r}.")
        try:
            number = self.kind(value)
            if isinstance(value, float) and self.kind is int and not value.is_integer():
                raise ValueError
            if isinstance(value, str) and self.kind is int and not value.strip().lstrip("+-").isdigit():
                raise ValueError
        except (TypeError, ValueError):
            raise OptionError(f"{self.flag} must be {self.meaning}, not {value!r}.") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise OptionError(f"{self.flag} must be {self.meaning}, not {value!r}.")
        too_low = number <= self.low if self.low_open else number < self.low
        if too_low or (self.high is not None and number > self.high):
            raise OptionError(f"{self.flag} must be {self.meaning}, not {value!r}.")
        return number


RULES = {
    "batch_size": Rule("--batch-size", int, 1, 65536, "a whole number of images per batch from 1 to 65536"),
    "workers": Rule("--workers", int, 0, 256, "a whole number of DataLoader workers from 0 to 256"),
    "limit": Rule("--limit", int, 1, None, "a positive whole number of images (leave it out for all)"),
    "img_size": Rule("--img-size", int, 16, 4096, "a resolution in pixels from 16 to 4096"),
    "folds": Rule("--folds", int, 2, 100, "a whole number of folds from 2 to 100"),
    "shots": Rule("--shots", int, 1, 100_000, "a whole number of training images per class, at least 1"),
    "budget": Rule("--budgets", float, 0, None, "positive numbers in cost units", low_open=True),
    "tolerance": Rule("--tolerance", float, 0, 1, "a fraction of the cost above 0 and at most 1", low_open=True),
    "max_params": Rule("--max-params", float, 0, None, "a positive number of million parameters", low_open=True),
    "max_gflops": Rule("--max-gflops", float, 0, None, "a positive number of GFLOPs", low_open=True),
    "images": Rule("--images", int, 1, None, "a positive whole number of images"),
    "decoded_cache_gb": Rule("--decoded-cache-gb", float, 0, None, "a size in GB, 0 or more"),
    "nodes": Rule("--nodes", int, 1, 10_000, "a whole number of nodes from 1 to 10000"),
    "gpus_per_node": Rule("--gpus-per-node", int, 1, 64, "a whole number of GPUs per node from 1 to 64"),
    "gpus_per_task": Rule("--gpus-per-task", float, 0, 64, "a number of GPUs above 0", low_open=True),
    "n_boot": Rule("--n-boot", int, 1, 1_000_000, "a whole number of bootstrap resamples, at least 1"),
    "seed": Rule("--seed", int, 0, 2**32 - 1, "a whole number from 0 to 4294967295"),
    "max_memory_mb": Rule("--max-memory-mb", float, 0, None, "a positive number of MB", low_open=True),
    "slots": Rule("--slots", int, 1, 10_000, "a whole number of jobs at once, from 1 to 10000"),
    "poll": Rule("--poll", float, 0.05, 3600, "seconds between looks at an empty queue, from 0.05 to 3600"),
    "jobs_limit": Rule("--limit", int, 1, 100_000, "a whole number of jobs to list, from 1 to 100000"),
    # the environment: read at start, refused there with the variable named
    "MATCHUP_JOB_TIMEOUT": Rule("MATCHUP_JOB_TIMEOUT", float, 1, 7 * 86400,
                                "seconds a running job's worker may stay silent, from 1 to 604800"),
    "MATCHUP_HEARTBEAT_S": Rule("MATCHUP_HEARTBEAT_S", float, 0.01, 3600,
                                "seconds between a worker's heartbeats, from 0.01 to 3600"),
    "MATCHUP_LOCK_TIMEOUT": Rule("MATCHUP_LOCK_TIMEOUT", float, 0.01, 86400,
                                 "seconds to wait for a locked database, from 0.01 to 86400"),
    "MATCHUP_MAX_QUEUED_PER_USER": Rule("MATCHUP_MAX_QUEUED_PER_USER", int, 1, 1_000_000,
                                        "a whole number of jobs one user may have queued or running, at least 1"),
}
ENVIRONMENT = ("MATCHUP_JOB_TIMEOUT", "MATCHUP_HEARTBEAT_S", "MATCHUP_LOCK_TIMEOUT", "MATCHUP_MAX_QUEUED_PER_USER")
TEXT_FILE_LIMIT = 16 * 2**20  # a labels file or a list of checkpoints, never a disk image


def check(name: str, value, optional: bool = True):
    """The value by `name`'s rule (None passes when optional); else an OptionError."""
    if value is None and optional:
        return None
    return RULES[name].check(value)


def arg(name: str):
    """An argparse `type` applying the rule: a bad value is argparse's one-line usage error."""
    def parse(text: str):
        try:
            return RULES[name].check(text)
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = name
    return parse


def env(name: str, default: float) -> float:
    """An environment variable by its rule; unset or empty: the default."""
    raw = os.environ.get(name, "").strip()
    return default if not raw else RULES[name].check(raw)


def check_environment() -> None:
    """Every numeric MATCHUP_* variable checked once at start: a bad value is one line naming it."""
    for name in ENVIRONMENT:
        raw = os.environ.get(name, "").strip()
        if raw:
            RULES[name].check(raw)


def text_file(path, what: str) -> str:
    """The text of a small UTF-8 file given as an option (a labels file, a list of ids): a
    folder, a special file, a huge or binary file is refused in one sentence, never read."""
    import stat
    from pathlib import Path
    path = Path(path)
    try:
        status = path.stat()
    except OSError as e:
        raise OptionError(f"{what} {path} cannot be read ({e.strerror or e}); give an existing text file.") from None
    if not stat.S_ISREG(status.st_mode):
        raise OptionError(f"{what} {path} is not a regular file; give a text file.")
    try:
        with open(path, "rb") as f:
            data = f.read(TEXT_FILE_LIMIT + 1)
    except OSError as e:
        raise OptionError(f"{what} {path} cannot be read ({e.strerror or e}); give a text file.") from None
    if len(data) > TEXT_FILE_LIMIT:
        raise OptionError(f"{what} {path} is larger than {TEXT_FILE_LIMIT // 2**20} MiB; give a text file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(f"{what} {path} is not UTF-8 text (a binary file?); give a text file.") from None
    if "\x00" in text:
        raise OptionError(f"{what} {path} holds NUL bytes (a binary file?); give a text file.")
    return text
