"""Evaluation sets: what images there are, their ImageNet-1k labels, and a fingerprint.

Labels always go through timm's ImageNet info (synset -> class index), never through folder
order, so a folder holding a subset of the classes is still labelled right. ImageNet-A and -R
are 200-class subsets: `class_subset` lists the 1k logits to keep, and targets index into it.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

from engine.errors import MatchupError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff", ".gif"}
# Which files make the set. "matchup": every image type PIL reads, in class folders and any folder
# below them (labelled by the class folder). "timm": what timm's folder reader (validate.py) takes:
# .jpg/.jpeg/.png only, each file labelled by the folder it sits in, for reproducing published
# numbers. Both skip hidden files and folders (.ipynb_checkpoints/, ._* AppleDouble files).
FILE_RULES = ("matchup", "timm")
TIMM_SUFFIXES = {".jpg", ".jpeg", ".png"}
VARIANTS = ("imagenet", "imagenet-a", "imagenet-r", "imagenet-v2", "sketch", "real")
SUBSET_VARIANTS = {"imagenet-a": "imagenet_a", "imagenet-r": "imagenet_r"}
SYNSET = re.compile(r"^n\d{8}$")
REAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")


class DatasetError(MatchupError):
    """An evaluation set cannot be read as asked."""


@lru_cache(maxsize=None)
def _info_lines(name: str) -> tuple[str, ...]:
    text = resources.files("timm.data").joinpath("_info", name).read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def imagenet_synsets() -> dict[str, int]:
    """Synset -> ImageNet-1k class index, from timm's ImageNet info."""
    from timm.data import ImageNetInfo
    return {synset: i for i, synset in enumerate(ImageNetInfo("imagenet-1k").label_names())}


def class_subset(variant: str) -> list[int] | None:
    """The 1k class indices a 200-class variant keeps, in timm's order."""
    prefix = SUBSET_VARIANTS.get(variant)
    return [int(x) for x in _info_lines(f"{prefix}_indices.txt")] if prefix else None


@dataclass
class EvalDataset:
    id: str
    variant: str
    files: list[Path]
    targets: list[int]               # ImageNet-1k class index per file (-1: unknown, ReaL only)
    label_map: str
    fingerprint: str
    class_subset: list[int] | None = None
    real_labels: list[list[int]] | None = field(default=None, repr=False)
    hf_dataset: object = field(default=None, repr=False)  # timm ImageDataset for hfds/ sets
    opened_with: dict = field(default_factory=dict)  # open_dataset's arguments: reopen it elsewhere
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> why it is no image (a pipe, a dead link)

    def load(self, index: int):
        """The image as RGB PIL, the way timm's datasets open it."""
        if self.hf_dataset is not None:
            return self.hf_dataset[index][0]
        from PIL import Image
        with open(self.files[index], "rb") as f:
            return Image.open(f).convert("RGB")

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return len(self.class_subset) if self.class_subset else 1000

    def subset_targets(self) -> list[int]:
        """Targets as indices into the logits the evaluator keeps."""
        if not self.class_subset:
            return list(self.targets)
        position = {c: i for i, c in enumerate(self.class_subset)}
        return [position[t] for t in self.targets]

    def limit(self, n: int | None) -> "EvalDataset":
        """A deterministic sample of n images spread over all classes (by hash of the path)."""
        if not n or n >= len(self.files):
            return self
        if n < 1:
            raise DatasetError(f"--limit must be a positive number of images, not {n}.")
        order = sorted(range(len(self.files)), key=lambda i: hashlib.sha1(
            self.files[i].name.encode()).hexdigest())[:n]
        order.sort()
        if self.hf_dataset is not None:
            raise DatasetError("--limit is not supported for Hugging Face datasets yet; use a "
                               "split expression such as validation[:1000].")
        return replace(self, files=[self.files[i] for i in order],
                       targets=[self.targets[i] for i in order],
                       real_labels=[self.real_labels[i] for i in order] if self.real_labels else None)


def _visible_files(folder: Path, seen: set[str], skipped: dict[str, str], suffixes: set[str]):
    """Every regular file under `folder` whose path holds no hidden part (a name starting with
    '.'). A folder link is followed once per real folder (`seen`: no loops, no folder read twice);
    a link to nothing or a special file (pipe, socket, device) with an image suffix is not read
    (opening a pipe would wait forever) but goes to `skipped` with the reason."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        skipped[str(folder)] = f"folder cannot be listed ({e.strerror or type(e).__name__})"
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=True):
                real = os.path.realpath(entry.path)
                if real not in seen:
                    seen.add(real)
                    yield from _visible_files(path, seen, skipped, suffixes)
            elif entry.is_file(follow_symlinks=True):
                yield path
            elif path.suffix.lower() in suffixes:
                skipped[str(path)] = ("a link to nothing (dangling symlink)" if entry.is_symlink() and not
                                      os.path.exists(entry.path) else "not a regular file (a pipe, socket or device)")
        except OSError as e:
            if path.suffix.lower() in suffixes:
                skipped[str(path)] = f"cannot be read ({e.strerror or type(e).__name__})"


def images_under(folder: Path, rule: str = "matchup", seen: set[str] | None = None,
                 skipped: dict[str, str] | None = None) -> list[Path]:
    """The image files under a folder by the file rule ("matchup": every image type PIL reads;
    "timm": timm's folder reader's types), hidden files and folders left out; eval and probe alike.
    `seen`: real paths of folders already walked (or walked apart, like other class folders);
    `skipped`: where files that cannot be images (dangling links, pipes) are reported."""
    suffixes = TIMM_SUFFIXES if rule == "timm" else IMAGE_SUFFIXES
    seen = set() if seen is None else seen
    seen.add(os.path.realpath(folder))
    skipped = {} if skipped is None else skipped
    return sorted(p for p in _visible_files(folder, seen, skipped, suffixes) if p.suffix.lower() in suffixes)


def class_folders(root: Path) -> list[Path]:
    """A set's class folders: its visible sub-folders (links to folders included)."""
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())


def fingerprint_of(root: Path, files: list[Path], extra: str) -> str:
    """What a cached result depends on in a data folder: each file's path, size, modification
    time (ns) and inode, plus `extra` (labels, file rule). Rewriting an image, even with the same
    name and size, changes it: eval, probe and the decoded-image cache miss."""
    digest = hashlib.sha256(extra.encode())
    for path in files:
        status = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{status.st_size}\0{status.st_mtime_ns}\0"
                      f"{status.st_ino}\n".encode())
    return digest.hexdigest()


def _label_to_index(label: str, where: str) -> int:
    label = label.strip()
    synsets = imagenet_synsets()
    if SYNSET.match(label):
        if label not in synsets:
            raise DatasetError(f"{where}: {label} is not an ImageNet-1k synset.")
        return synsets[label]
    if label.isdigit() and int(label) < 1000:
        return int(label)
    raise DatasetError(f"{where}: label {label!r} is neither an ImageNet-1k synset (n01440764) "
                       "nor a class index 0-999.")


def walked_apart(root: Path, folders: list[Path]) -> set[str]:
    """The real paths no class folder's walk may enter: the root and every class folder (a link
    back to them, or from one class into another, would read images twice under a wrong label)."""
    return {os.path.realpath(root), *(os.path.realpath(f) for f in folders)}


def _from_class_folders(root: Path, rule: str, skipped: dict[str, str]) -> tuple[list[Path], list[int]]:
    files, targets = [], []
    folders = class_folders(root)
    apart = walked_apart(root, folders)
    for folder in folders:
        index = _label_to_index(folder.name, f"folder {folder}")
        for image in images_under(folder, rule, seen=apart - {os.path.realpath(folder)}, skipped=skipped):
            files.append(image)
            # timm labels a file by the folder it sits in; Matchup by its class folder
            leaf = image.parent
            targets.append(index if rule != "timm" or leaf == folder else
                           _label_to_index(leaf.name, f"folder {leaf} (the timm file rule labels by leaf folder)"))
    return files, targets


def extension_counts(files: list[Path]) -> dict[str, int]:
    """Files read per extension, for the user to see what made the set."""
    counts: dict[str, int] = {}
    for path in files:
        counts[path.suffix] = counts.get(path.suffix, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _read_labels_file(path: Path) -> dict[str, str]:
    """file name -> label, from a CSV with a header or a whitespace-separated text file."""
    from engine import options
    text = options.text_file(path, "Labels file")
    rows: dict[str, str] = {}
    if path.suffix.lower() == ".csv":
        reader = csv.reader(text.splitlines())
        header = [h.strip().lower() for h in next(reader, [])]
        try:
            name_col = next(i for i, h in enumerate(header) if h in ("filename", "file", "image", "path", "name"))
            label_col = next(i for i, h in enumerate(header) if h in ("label", "class", "target", "synset", "class_index"))
        except StopIteration:
            raise DatasetError(f"{path}: the header needs a file column (filename/file/image/path) "
                               f"and a label column (label/class/target/synset); found {header}.") from None
        for row in reader:
            if row:
                rows[Path(row[name_col].strip()).name] = row[label_col]
    else:
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DatasetError(f"{path}:{number}: expected 'file_name label', got {line!r}.")
            rows[Path(parts[0]).name] = parts[1]
    if not rows:
        raise DatasetError(f"Labels file {path} holds no labels.")
    return rows


def _real_labels_for(files: list[Path], labels_json: Path | None) -> list[list[int]]:
    if labels_json is not None:
        try:
            table = json.loads(Path(labels_json).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DatasetError(f"ReaL labels {labels_json} cannot be read as JSON ({e}).") from None
    else:
        table = json.loads(resources.files("timm.data").joinpath("_info", "imagenet_real_labels.json").read_text())
    if not isinstance(table, list):
        raise DatasetError(f"ReaL labels {labels_json} must be a JSON list (one list of class indices "
                           "per validation image, in file-number order), as timm's imagenet_real_labels.json.")
    labels = []
    for path in files:
        match = REAL_NAME.search(path.name)
        if not match:
            raise DatasetError(f"ReaL labels are keyed by ImageNet validation file names "
                               f"(ILSVRC2012_val_00000001.JPEG); {path.name} is not one.")
        number = int(match.group(1))
        if not 1 <= number <= len(table):  # 0 would silently read the last image's labels
            raise DatasetError(f"{path}: file number {number} is outside the ReaL table, which labels "
                               f"validation images 1 to {len(table)}; remove the file or use --variant imagenet.")
        labels.append([int(c) for c in table[number - 1]])
    return labels


def open_dataset(path: str | Path, labels: str | Path | None = None, variant: str = "imagenet",
                 file_rule: str = "matchup") -> EvalDataset:
    """An ImageNet-style folder (one folder per synset or class index), or a flat folder with a
    labels file; `variant` picks the label conventions (A/R subsets, ReaL multi-labels);
    `file_rule` which files count (FILE_RULES)."""
    if variant not in VARIANTS:
        raise DatasetError(f"Unknown variant {variant!r}; use one of {', '.join(VARIANTS)}.")
    if file_rule not in FILE_RULES:
        raise DatasetError(f"Unknown file rule {file_rule!r}; use matchup (every image type, nested "
                           "folders) or timm (.jpg/.jpeg/.png, as timm's folder reader).")
    opened_with = {"path": str(path), "labels": str(labels) if labels else None, "variant": variant,
                   "file_rule": file_rule}
    if str(path).startswith("hfds/"):
        return replace(_hf_dataset(str(path)), opened_with=opened_with)
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder. Point --data at an ImageNet-style folder "
                           "(val/n01440764/*.JPEG ...) or a flat folder with --labels FILE.")
    has_class_folders = bool(class_folders(root))
    unreadable: dict[str, str] = {}
    if labels is not None and variant != "real":
        label_rows = _read_labels_file(Path(labels))
        files = images_under(root, file_rule, skipped=unreadable)
        unlabelled = [f.name for f in files if f.name not in label_rows]
        if unlabelled:
            raise DatasetError(f"{len(unlabelled)} images in {root} have no label in {labels} "
                               f"(first: {unlabelled[0]}).")
        targets = [_label_to_index(label_rows[f.name], f"{labels} ({f.name})") for f in files]
        label_map = f"labels file {Path(labels).name} sha256:{hashlib.sha256(Path(labels).read_bytes()).hexdigest()[:16]}"
    elif has_class_folders:
        files, targets = _from_class_folders(root, file_rule, unreadable)
        label_map = "class folders -> ImageNet-1k index (timm ImageNetInfo)"
        if file_rule == "timm" and any(f.parent.parent != root for f in files):
            label_map += "; nested files labelled by their own folder (timm's rule)"
    elif variant == "real":
        files, targets = images_under(root, file_rule, skipped=unreadable), None
        label_map = "ReaL"
    else:
        raise DatasetError(f"{root} has no class folders; give --labels FILE (CSV or txt: file "
                           "name -> synset or class index) for a flat folder.")
    if not files:
        raise DatasetError(f"No images found under {root}.")
    real = None
    if variant == "real":
        real = _real_labels_for(files, Path(labels) if labels else None)
        targets = targets or [(r[0] if r else -1) for r in real]
        label_map = f"ReaL multi-labels ({Path(labels).name if labels else 'timm imagenet_real_labels.json'})"
    subset = class_subset(variant)
    if subset:
        keep = set(subset)
        outside = [f for f, t in zip(files, targets) if t not in keep]
        if outside:
            raise DatasetError(f"{len(outside)} images of {root} are outside the 200 classes of "
                               f"{variant} (first: {outside[0]}); use --variant imagenet for them.")
        label_map += f"; logits sliced to the {len(subset)} {variant} classes"
    fingerprint = fingerprint_of(root, files, f"{variant}|{label_map}")
    opened_with.update(path=str(root), labels=str(Path(labels).resolve()) if labels else None)
    return EvalDataset(f"{root}#{variant}", variant, files, targets, label_map, fingerprint,
                       subset, real, opened_with=opened_with, unreadable=unreadable)


def _hf_dataset(spec: str) -> EvalDataset:
    """`hfds/NAME[:SPLIT]`: a Hugging Face dataset read by timm's hfds reader; its `label`
    column must hold ImageNet-1k class indices (as `imagenet-1k` on the Hub does)."""
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise DatasetError(f"{spec} is a Hugging Face dataset, which needs the optional package "
                           "'datasets': `pip install datasets`, then try again.") from None
    from timm.data import create_dataset
    name, _, split = spec.partition(":")
    split = split or "validation"
    try:
        dataset = create_dataset(name, root=None, split=split)
    except Exception as e:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot read it"
        raise DatasetError(f"Cannot open {name} split {split!r} through timm's hfds reader: "
                           f"{type(e).__name__}: {e}") from None
    reader = dataset.reader
    targets = [int(t) for t in reader.dataset[reader.label_key]]
    fingerprint = hashlib.sha256(f"{name}|{split}|{getattr(reader.dataset, '_fingerprint', '')}|"
                                 f"{len(targets)}".encode()).hexdigest()
    return EvalDataset(f"{name}:{split}#imagenet", "imagenet", [Path(f"{name}/{i}") for i in range(len(targets))],
                       targets, f"{name} label column (ImageNet-1k indices)", fingerprint,
                       hf_dataset=dataset)
