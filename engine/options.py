"""Every numeric option checked once, by one rule each, wherever it comes from: the CLI (argparse
types), the job queue (`jobs.normalize`), the library (`evaluate.check_settings`) and the pages.
A bad value gets one sentence naming the option, the rule and the value, never a traceback from
torch or a second cached row for the same measurement."""
from __future__ import annotations

import argparse
import math
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
    "gpus_per_task": Rule("--gpus-per-task", float, 0, 64, "a number of GPUs above 0", low_open=True),
    "n_boot": Rule("--n-boot", int, 1, 1_000_000, "a whole number of bootstrap resamples, at least 1"),
    "seed": Rule("--seed", int, 0, 2**32 - 1, "a whole number from 0 to 4294967295"),
    "max_memory_mb": Rule("--max-memory-mb", float, 0, None, "a positive number of MB", low_open=True),
}


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
