"""What every command shares: JSON output (a contract), comma-separated lists, what was read and
the progress bars, the evaluation options of eval and sweep.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from engine import options
from engine.catalog.taxonomy import DATA_SCALES
from engine.errors import MatchupError


def jsonable(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return value


def frame_records(frame) -> list[dict]:
    return [{k: jsonable(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def print_json(payload) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def batch_size_arg(value: str):
    """A benchmark's batch size: 'auto', or the rule every batch size follows."""
    return value if value == "auto" else options.arg("batch_size")(value)


def say_what_was_read(dataset, args) -> None:
    """Which files made the set, per extension, and by which rule (on stderr: stdout may be JSON)."""
    from engine.measure.datasets import extension_counts
    counts = ", ".join(f"{n} {ext or '(none)'}" for ext, n in extension_counts(dataset.files).items())
    print(f"{len(dataset)} images in {args.data} ({counts}); file rule: {args.file_rule}; hidden files "
          "and folders are ignored", file=sys.stderr)


def pass_bars(bars: dict, quiet: bool):
    """A progress callback drawing one bar per decoding pass, named after the checkpoints it
    feeds (eval and zeroshot); the caller closes `bars`."""
    from tqdm import tqdm

    def progress(state):
        name = ", ".join(state["checkpoints"])
        if name not in bars:
            for other in bars.values():
                other.close()
            bars[name] = tqdm(total=state["total"], unit="img", desc=name, disable=quiet)
        bars[name].n = state["done"]
        bars[name].set_postfix(img_s=f"{state['images_per_sec']:.1f}")
    return progress


def csv_list(value: str | None, cast=str, flag: str = "this option", choices=None) -> list | None:
    """A comma-separated option; None when it was not given. Given but naming nothing (`''`,
    `,`) is refused: an empty list never means everything. With `choices`, a value outside them
    is refused, naming the valid ones (a typo must not quietly select nothing)."""
    if value is None:
        return None
    items = [cast(v.strip()) for v in value.split(",") if v.strip()]
    if not items:
        raise MatchupError(f"{flag} names nothing ({value!r}); leave it out for all, or name one or more.")
    if choices is not None:
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise MatchupError(f"{flag} {', '.join(map(repr, unknown))}: not a value it takes; use one or more of "
                               f"{', '.join(choices)} (comma-separated).")
    return items


DATA_SCALE_CHOICES = (*DATA_SCALES, "unknown")  # unknown: checkpoints whose data's size is not known


def source_choices(points) -> list[str]:
    """What --source takes: published, measured here, or a paper's source id among the points."""
    papers = sorted(s for s in points["source"].dropna().unique() if s not in ("published", "measured here"))
    return ["published", "measured here", *papers]


def eval_options(parser: argparse.ArgumentParser, data_required: bool) -> None:
    """What `eval` and `sweep` share: the set, its labels, and how to run the models."""
    parser.add_argument("--data", required=data_required,
                        help="ImageNet-style folder, flat folder + --labels, or hfds/NAME[:SPLIT]")
    parser.add_argument("--labels", help="labels file (CSV/txt: file -> synset or index; ReaL JSON)")
    parser.add_argument("--variant", default="imagenet",
                        help="imagenet, imagenet-a, imagenet-r, imagenet-v2, sketch or real")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (autocast)")
    parser.add_argument("--batch-size", type=options.arg("batch_size"), default=128)
    parser.add_argument("--workers", type=options.arg("workers"), help="DataLoader workers (default: min(4, cores))")
    parser.add_argument("--limit", type=options.arg("limit"), help="evaluate a fixed sample of N images")
    parser.add_argument("--channels-last", action="store_true", help="NHWC models (ConvNets: faster)")
    parser.add_argument("--file-rule", choices=("matchup", "timm"), default="matchup",
                        help="which files make the set: matchup (every image type, nested folders) or timm "
                             "(.jpg/.jpeg/.png, as timm's folder reader; to reproduce published numbers)")
    parser.add_argument("--strict", action="store_true",
                        help="fail on the first undecodable image (default: skip, count and list them)")
    parser.add_argument("--decoded-cache-gb", type=options.arg("decoded_cache_gb"),
                        help="budget of the decoded-image cache in $MATCHUP_CACHE (default: half the free "
                             "disk; 0: decode every time)")
