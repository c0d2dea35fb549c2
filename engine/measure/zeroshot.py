"""Zero-shot classification of image-text (OpenCLIP) checkpoints on the user's own classes.

As CLIP Benchmark does it: a class's text embedding is the normalised mean of its prompts'
normalised embeddings (one prompt per template, `{c}` replaced by the class name), and an image's
logits are 100 x its normalised image embedding times the class embeddings. The image loop is
eval's own (engine.evaluate.evaluate_group): the same decoding, decoded-image cache and device
path, with "image tower + class embeddings" as the model. Text embeddings of a (checkpoint,
revision, class names, templates, precision) are encoded once and kept under $MATCHUP_CACHE/text
with their provenance and a content hash, so new images never re-encode the prompts.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable

from engine.catalog import hub, image_text
from engine.errors import MatchupError
from engine.measure import cache_mac, datasets, decoded, eval_batches, evaluate
from engine.measure.datasets import EvalDataset
from engine.paths import DATA_DIR
from engine.store import cache_key

log = logging.getLogger(__name__)

PROMPTS_JSON = DATA_DIR / "zeroshot_prompts.json"
DEFAULT_TEMPLATES = "cifar10"   # CLIP's 18 general "a photo of a {c}." prompts, for folders not ImageNet
LOGIT_SCALE = 100.0             # CLIP Benchmark's; top-k and balanced accuracy do not depend on it
HF_HUB = "hf-hub:"
HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HUB_CONFIG = "open_clip_config.json"
TEXT_BATCH = 256
MAX_CLASSNAMES_BYTES = 10_000_000
MAX_TEMPLATES = 1000          # templates in one file (CLIP's ImageNet set has 80)
MAX_TEMPLATE_CHARS = 1000     # characters in one template (the text tower reads ~77 tokens anyway)
MAX_TEMPLATES_BYTES = 2_000_000


class ZeroShotError(MatchupError):
    """A zero-shot run cannot start as asked; the message says what to do."""


# -- class names and templates -----------------------------------------------------------------------
@lru_cache(maxsize=1)
def prompts() -> dict:
    """The shipped template sets and ImageNet class names (CLIP Benchmark's, see the file's source)."""
    return json.loads(PROMPTS_JSON.read_text())


def template_sets() -> list[str]:
    return sorted(prompts()["templates"])


def normalised(name: str) -> str:
    """How class names are compared: NFKC, underscores as spaces, whitespace runs as one, case folded."""
    return " ".join(unicodedata.normalize("NFKC", name).replace("_", " ").split()).casefold()


def display_name(folder: str) -> str:
    """The class name a folder gives the prompts: as written, underscores read as spaces."""
    return " ".join(unicodedata.normalize("NFC", folder).replace("_", " ").split())


def check_classnames(names: list[str], where: str) -> list[str]:
    """Refuse an empty class name, or two names that are one after normalisation (the classifier
    could not tell them apart)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = normalised(name)
        if not key:
            raise ZeroShotError(f"Class {i + 1} of {where} has an empty name ({name!r}); a prompt needs a "
                                "name. Rename that folder, or give --classnames FILE with one name per class.")
        if key in seen:
            j = seen[key]
            raise ZeroShotError(f"Classes {j + 1} ({names[j]!r}) and {i + 1} ({name!r}) of {where} are the same "
                                f"name after normalisation ({key!r}: case, underscores and spaces ignored), so the "
                                "zero-shot classifier cannot tell them apart. Rename one, or give --classnames FILE.")
        seen[key] = i
    return list(names)


def read_classnames(path: str | Path, folders: list[str], what: str) -> tuple[list[str], str, str]:
    """A class-names file, UTF-8, for the folders `folders` (in sorted order). Each line is either
    `folder<TAB>name` (the file maps folders to names, in any order: the safe form), or a plain
    name; a plain list is paired with the folders in Python's sorted order and refused where a name
    is another folder's name (the list was written in another order). Returns (names in folder
    order, a label with the file's hash, the pairing as one line per class)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ZeroShotError(f"--classnames {path}: no such file. Give a UTF-8 text file with one line per class: "
                            f"`folder<TAB>name`, or one name per line in the sorted order of {what}.")
    if path.stat().st_size > MAX_CLASSNAMES_BYTES:
        raise ZeroShotError(f"--classnames {path} is over {MAX_CLASSNAMES_BYTES // 1_000_000} MB: not a file of "
                            "class names.")
    raw = path.read_bytes()
    if b"\0" in raw:
        raise ZeroShotError(f"--classnames {path} holds a NUL byte: it is not a text file of class names.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ZeroShotError(f"--classnames {path} is not UTF-8 text (byte {e.start}); save it as UTF-8.") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    label = f"file {path.name} sha256:{hashlib.sha256(raw).hexdigest()[:16]}"
    tabbed = ["\t" in line for line in lines]
    if any(tabbed):
        names = _mapped_names(path, lines, folders, tabbed)
        return names, label, _pairing(folders, names)
    names = [n.strip() for n in lines]
    if len(names) != len(folders):
        raise ZeroShotError(f"--classnames {path} has {len(names)} names but there are {len(folders)} {what}; "
                            "give one line per class, best as `folder<TAB>name` (then the order does not matter).")
    by_folder = {normalised(display_name(f)): i for i, f in enumerate(folders)}
    for i, name in enumerate(names):
        j = by_folder.get(normalised(name))
        if j is not None and j != i:
            raise ZeroShotError(
                f"--classnames {path}, line {i + 1} ({name!r}) is paired with folder {folders[i]!r} by the sorted "
                f"order of the folders, but it is the name of folder {folders[j]!r}: the list was written in "
                "another order (`ls` sorts ignoring case, Python does not), so every prompt would go to the wrong "
                "folder. Write the file as `folder<TAB>name` lines, one per folder, and the order cannot be wrong.")
    return names, label, _pairing(folders, names)


def _mapped_names(path: Path, lines: list[str], folders: list[str], tabbed: list[bool]) -> list[str]:
    """`folder<TAB>name` lines as names in folder order; every folder named exactly once."""
    if not all(tabbed):
        first = tabbed.index(False)
        raise ZeroShotError(f"--classnames {path}, line {first + 1} ({lines[first]!r}) has no tab, but other lines "
                            "do: write every line as `folder<TAB>name`.")
    mapped: dict[str, str] = {}
    for i, line in enumerate(lines, 1):
        folder, _, name = line.partition("\t")
        if folder not in folders:
            raise ZeroShotError(f"--classnames {path}, line {i}: there is no class folder {folder!r}; the folders are "
                                f"{', '.join(folders[:8])}{' ...' if len(folders) > 8 else ''}.")
        if folder in mapped:
            raise ZeroShotError(f"--classnames {path}, line {i} names folder {folder!r} a second time.")
        mapped[folder] = name.strip()
    missing = [f for f in folders if f not in mapped]
    if missing:
        raise ZeroShotError(f"--classnames {path} gives no name for folder(s) {', '.join(missing[:8])}: "
                            "write one `folder<TAB>name` line for every class folder.")
    return [mapped[f] for f in folders]


def _pairing(folders: list[str], names: list[str]) -> str:
    return "\n".join(f"  {folder} -> {name}" for folder, name in zip(folders, names, strict=True))


def check_template(template: str, where: str) -> None:
    """Only `{c}` may stand in braces (no attribute, index, conversion or format spec: each would
    put something other than the class name in the prompt), at least once; `{{` and `}}` are
    literal braces; no NUL; at most MAX_TEMPLATE_CHARS characters."""
    import string
    if "\0" in template:
        raise ZeroShotError(f"{where} holds a NUL byte; a template is one line of text with {{c}} for the class name.")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ZeroShotError(f"{where} is {len(template):,} characters long; a template may have at most "
                            f"{MAX_TEMPLATE_CHARS} (the text tower reads about 77 tokens).")
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as e:
        raise ZeroShotError(f"{where} ({template!r}) has an unmatched brace ({e}); write a literal brace as "
                            "{{ or }}.") from None
    wrong = [f"{{{n}{'!' + c if c else ''}{':' + sp if sp else ''}}}" for n, sp, c in fields
             if (n, sp, c) != ("c", "", None)]
    if wrong:
        raise ZeroShotError(f"{where} ({template!r}): only {{c}} may stand in braces, not {', '.join(wrong)}; "
                            "write a literal brace as {{ or }}.")
    if not fields:
        raise ZeroShotError(f"{where} ({template!r}) has no {{c}} where the class name goes.")


def fill(template: str, name: str) -> str:
    """A checked template (check_template) with the class name in place of each `{c}`."""
    return template.format(c=name)


def resolve_templates(spec: str | None, imagenet: bool) -> tuple[str, list[str]]:
    """(name, templates): a shipped set by name (`imagenet1k` for ImageNet synset folders and
    DEFAULT_TEMPLATES for others when none is given), or a file of one template per line with
    `{c}` where the class name goes (at most MAX_TEMPLATES lines of MAX_TEMPLATE_CHARS)."""
    sets = prompts()["templates"]
    if spec is None:
        spec = "imagenet1k" if imagenet else DEFAULT_TEMPLATES
    if spec in sets:
        return spec, list(sets[spec])
    path = Path(str(spec)).expanduser()
    if not path.is_file():
        raise ZeroShotError(f"--templates {spec!r} is neither a template set nor a file. Sets: "
                            f"{', '.join(template_sets())}; or give a text file with one template per line, "
                            "{c} where the class name goes (e.g. `a photo of a {c}.`).")
    if path.stat().st_size > MAX_TEMPLATES_BYTES:
        raise ZeroShotError(f"--templates {path} is {path.stat().st_size:,} bytes; a templates file may hold at most "
                            f"{MAX_TEMPLATES_BYTES:,} ({MAX_TEMPLATES} templates of up to {MAX_TEMPLATE_CHARS} "
                            "characters).")
    raw = path.read_bytes()
    try:
        lines = [line.strip() for line in raw.decode("utf-8-sig").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise ZeroShotError(f"--templates {path} is not UTF-8 text; save it as UTF-8.") from None
    if not lines:
        raise ZeroShotError(f"--templates {path} holds no template; write one per line, e.g. `a photo of a {{c}}.`")
    if len(lines) > MAX_TEMPLATES:
        raise ZeroShotError(f"--templates {path} holds {len(lines):,} templates; at most {MAX_TEMPLATES} are taken "
                            "(CLIP's ImageNet set has 80).")
    for i, line in enumerate(lines, 1):
        check_template(line, f"--templates {path}, line {i}")
    return f"file {path.name} sha256:{hashlib.sha256(raw).hexdigest()[:16]}", lines


# -- the images and their classes ------------------------------------------------------------------
@dataclass
class ZeroShotDataset(EvalDataset):
    classnames: list[str] = field(default_factory=list)
    classnames_from: str = ""
    zeroshot_id: str = ""      # the metric name on the pages: zeroshot:<id>.top1
    imagenet: bool = False     # ImageNet synset folders: the 1000 classes and CLIP Benchmark's templates
    pairing: str = ""          # with --classnames: each folder and the name its prompts use, one per line

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


def open_folder(path: str | Path, classnames: str | Path | None = None, file_rule: str = "matchup") -> ZeroShotDataset:
    """A folder with one sub-folder of images per class. Folder names are the class names (as
    written, underscores read as spaces), or `classnames` gives one per folder in sorted order.
    ImageNet synset folders (n01440764, ...) are scored among all 1000 ImageNet classes with CLIP
    Benchmark's class names, labelled through timm's ImageNet info as `eval` labels them."""
    from dataclasses import asdict
    if file_rule not in datasets.FILE_RULES:
        raise ZeroShotError(f"Unknown file rule {file_rule!r}; use matchup or timm.")
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ZeroShotError(f"{root} is not a folder. Point --data at a folder with one sub-folder of images per "
                            "class (the folder's name is the class name).")
    folders = datasets.class_folders(root)
    if not folders:
        raise ZeroShotError(f"{root} has no class folders; zero-shot reads one sub-folder of images per class, "
                            "named after the class.")
    opened_with = {"path": str(root), "classnames": str(Path(classnames).resolve()) if classnames else None,
                   "file_rule": file_rule}
    if all(datasets.SYNSET.match(f.name) for f in folders):
        base = datasets.open_dataset(root, file_rule=file_rule)
        names, how = list(prompts()["imagenet1k_classnames"]), "CLIP Benchmark's ImageNet-1k class names"
        pairing = ""
        if classnames:  # (CLIP's own list is used as it is: it names two classes `missile`)
            names, how, pairing = read_classnames(classnames, list(datasets.imagenet_synsets()),
                                                  "the 1000 ImageNet-1k synsets (synset folders are scored among all 1000)")
            check_classnames(names, f"--classnames {classnames}")
        fields = {k: v for k, v in asdict(base).items() if k not in ("hf_dataset",)}
        fields.update(id=f"{root}#zeroshot", variant="zeroshot", label_map=f"{base.label_map}; names: {how}",
                      fingerprint=hashlib.sha256(f"{base.fingerprint}|{how}".encode()).hexdigest(),
                      opened_with=opened_with)
        return ZeroShotDataset(**fields, classnames=names, classnames_from=how, imagenet=True, pairing=pairing,
                               zeroshot_id="imagenet1k" if len(folders) == 1000 else root.name)
    if len(folders) < 2:
        raise ZeroShotError(f"{root} has one class folder ({folders[0].name!r}); zero-shot among one class is always "
                            "right, so it measures nothing. Give a folder with at least two class sub-folders.")
    pairing = ""
    if classnames:
        names, how, pairing = read_classnames(classnames, [f.name for f in folders],
                                              f"the class folders in {root}")
    else:
        names, how = [display_name(f.name) for f in folders], "folder names"
    check_classnames(names, f"the class folders of {root}" if not classnames else f"--classnames {classnames}")
    files, targets, unreadable = [], [], {}
    apart = datasets.walked_apart(root, folders)
    for index, folder in enumerate(folders):
        for image in datasets.images_under(folder, file_rule, seen=apart - {os.path.realpath(folder)},
                                           skipped=unreadable):
            files.append(image)
            targets.append(index)
    if not files:
        raise ZeroShotError(f"No images found under the class folders of {root}.")
    label_map = f"{len(names)} class folders -> zero-shot class names ({how})"
    fingerprint = datasets.fingerprint_of(root, files, f"zeroshot|{file_rule}|{label_map}|{json.dumps(names)}")
    return ZeroShotDataset(f"{root}#zeroshot", "zeroshot", files, targets, label_map, fingerprint,
                           opened_with=opened_with, unreadable=unreadable, classnames=names,
                           classnames_from=how, zeroshot_id=root.name, pairing=pairing)


# -- checkpoints -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """Where an image-text checkpoint's weights are and how open_clip must build it."""
    checkpoint: str
    model: str            # an open_clip model name, or hf-hub:ORG/REPO
    tag: str | None
    repo_id: str
    candidates: tuple[str, ...]
    quick_gelu: bool      # the tag was trained with QuickGELU (OpenAI's weights): forced on
    preprocess: tuple     # the tag's own preprocessing overrides, as (key, value) pairs


REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def spec_of(checkpoint: str) -> Spec:
    """`open_clip:<model>.<tag>` (a pair open_clip lists) or `open_clip:hf-hub:ORG/REPO` (a Hub repo
    with open_clip_config.json)."""
    import open_clip
    if not image_text.is_image_text(checkpoint):
        raise ZeroShotError(f"{checkpoint!r} is not an image-text checkpoint; zero-shot takes OpenCLIP ids "
                            "`open_clip:<model>.<tag>`, e.g. open_clip:ViT-B-32.laion2b_s34b_b79k "
                            "(`python -m engine catalog list --zoo image-text`). ImageNet classifiers go to `eval`.")
    body = checkpoint[len(image_text.ID_PREFIX):]
    if body.startswith(HF_HUB):
        repo = body[len(HF_HUB):].strip("/")
        if not REPO.match(repo):
            raise ZeroShotError(f"{checkpoint!r}: {repo!r} is not a Hub repo name (ORG/REPO).")
        return Spec(checkpoint, body, None, repo, HUB_WEIGHTS, False, ())
    model, tag = image_text.split_id(checkpoint)
    cfg = open_clip.get_pretrained_cfg(model, tag) or {}
    location = (cfg.get("hf_hub") or "").strip()
    if not location:
        raise ZeroShotError(f"{checkpoint}'s weights are not on the Hugging Face Hub (OpenCLIP downloads them "
                            f"from {cfg.get('url') or 'elsewhere'}); Matchup loads Hub checkpoints only.")
    parts = location.strip("/").split("/")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:]) or "open_clip_pytorch_model.bin"
    safe = ("open_clip_model.safetensors" if filename == "open_clip_pytorch_model.bin" else
            filename.rsplit(".", 1)[0] + ".safetensors" if filename.endswith((".bin", ".pth", ".pt")) else None)
    candidates = tuple(x for x in (safe, filename) if x)
    preprocess = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()
                       if k in ("mean", "std", "interpolation", "resize_mode"))
    return Spec(checkpoint, model, tag, repo, candidates, bool(cfg.get("quick_gelu")), preprocess)


def _hub_config(spec: Spec) -> dict:
    weights = hub.resolve_file(spec.checkpoint, spec.repo_id, [HUB_CONFIG], loader="open_clip")
    try:
        config = json.loads(weights.path.read_text())
        config["model_cfg"]["vision_cfg"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ZeroShotError(f"{spec.repo_id}'s {HUB_CONFIG} is not an OpenCLIP config ({type(e).__name__}: {e}); "
                            "delete its snapshot folder and fetch it again.") from None
    return config


def pixel_config(spec: Spec) -> dict:
    """The checkpoint's eval preprocessing as eval's pixel config: open_clip's resize of the
    shortest side to the image size then a centre crop is timm's crop_pct 1.0 centre crop
    (`squash` resizes both sides). Known before any weights are read, for grouping."""
    import open_clip
    if spec.model.startswith(HF_HUB):
        config = _hub_config(spec)
        vision, pp = config["model_cfg"]["vision_cfg"], dict(config.get("preprocess_cfg") or {})
    else:
        model_cfg = open_clip.get_model_config(spec.model) or {}
        vision, pp = model_cfg.get("vision_cfg", {}), {**model_cfg.get("preprocess_cfg", {}), **dict(spec.preprocess)}
    size = pp.get("size") or vision.get("image_size", 224)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    mode = pp.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        raise ZeroShotError(f"{spec.checkpoint} resizes images by {mode!r}, which Matchup's eval pipeline does "
                            "not reproduce; it cannot be evaluated here yet.")
    return {"input_size": (3, int(h), int(w)), "crop_pct": 1.0, "crop_mode": "squash" if mode == "squash" else "center",
            "interpolation": pp.get("interpolation", "bicubic"),
            "mean": tuple(float(x) for x in pp.get("mean", open_clip.OPENAI_DATASET_MEAN)),
            "std": tuple(float(x) for x in pp.get("std", open_clip.OPENAI_DATASET_STD))}


def cached_revision(spec: Spec) -> str | None:
    """The revision of the weights in the local Hub cache, without the network."""
    from huggingface_hub import try_to_load_from_cache
    for filename in spec.candidates:
        path = try_to_load_from_cache(spec.repo_id, filename, cache_dir=hub.cache_dir())
        if isinstance(path, str):
            return os.path.basename(os.path.dirname(path))
    return None


def load(spec: Spec):
    """(open_clip model in eval mode, tokenizer, HubWeights), built from the resolved local file."""
    import open_clip
    weights = hub.resolve_file(spec.checkpoint, spec.repo_id, list(spec.candidates), loader="open_clip")
    hub._check_weights_file(weights.path)
    try:
        if spec.model.startswith(HF_HUB):
            _hub_config(spec)
            name = f"local-dir:{weights.path.parent}"
            model = open_clip.create_model(name)
        else:
            name = spec.model
            model = open_clip.create_model(name, pretrained=str(weights.path), force_quick_gelu=spec.quick_gelu,
                                           force_preprocess_cfg=dict(spec.preprocess) or None)
        tokenizer = open_clip.get_tokenizer(name)
    except MatchupError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure here means this file is unusable here
        raise hub.HubError(
            f"The weights file {weights.path} ({weights.repo_id} at {weights.revision[:12]}) could not be loaded "
            f"into {spec.checkpoint}: {type(e).__name__}: {hub._load_failure(e)}. It was not used. If it is "
            "corrupt, delete that snapshot folder and fetch it again.") from None
    return model.eval(), tokenizer, weights


# -- text embeddings, cached -------------------------------------------------------------------------
def text_cache_dir() -> Path:
    return decoded.cache_root() / "text"


def _entry_content(provenance: str, tensor) -> tuple[bytes, ...]:
    """What a text-cache entry's keyed checksum covers: its provenance and its tensor, dtype and shape."""
    array = tensor.contiguous().numpy()
    return provenance.encode(), f"{array.dtype}{list(array.shape)}".encode(), array.tobytes()


def check_prompts_differ(tokenizer, tokens, texts: list[str], classnames: list[str], templates: list[str]) -> None:
    """Every template must give each class different tokens: where the text tower's context cuts
    the class name off (a long template, names that differ only near their end), every class would
    get the same prompt and the run would report chance as a result. Refused, naming the template."""
    import torch
    rows = tokens.view(len(classnames), len(templates), -1)
    for t, template in enumerate(templates):
        _, inverse, counts = torch.unique(rows[:, t], dim=0, return_inverse=True, return_counts=True)
        if len(counts) == len(classnames):
            continue
        twin = int(counts.argmax())
        a, b = [int(i) for i in (inverse == twin).nonzero().flatten()[:2]]
        context = getattr(tokenizer, "context_length", rows.shape[-1])
        length = ""
        encode = getattr(tokenizer, "encode", None)
        if callable(encode):
            try:
                length = f" (the prompt for {classnames[a]!r} is {len(encode(texts[a * len(templates) + t])) + 2} tokens)"
            except Exception:  # noqa: BLE001 - the length is only a detail of the message
                length = ""
        raise ZeroShotError(
            f"Template {template!r} gives classes {classnames[a]!r} and {classnames[b]!r} the same tokens: the text "
            f"tower reads only {context} tokens{length}, and the class names differ only beyond that, so the "
            "classifier could not tell them apart. Put {c} earlier in the template, shorten it, or give shorter "
            "class names (--classnames).")


def class_embeddings(model, tokenizer, provenance: dict, classnames: list[str], templates: list[str],
                     device, precision: str) -> tuple[object, str]:
    """(D x C class embeddings, how they were had: "encoded" or "cached"). The cache entry holds
    its provenance and a keyed checksum of both (cache_mac); a changed, unreadable or unkeyed
    entry is a miss."""
    import torch
    import torch.nn.functional as F
    key = cache_key(provenance)
    path = text_cache_dir() / f"{key}.pt"
    wanted = json.dumps(provenance, sort_keys=True)
    if path.exists():
        try:
            entry = torch.load(path, weights_only=True, map_location="cpu")
            embeddings = entry["embeddings"]
            if (entry["provenance"] == wanted and isinstance(embeddings, torch.Tensor)
                    and embeddings.dtype == torch.float32 and tuple(embeddings.shape[1:]) == (len(classnames),)
                    and cache_mac.verify(entry["mac"], *_entry_content(wanted, embeddings))):
                return embeddings.to(device), "cached"
            log.warning("The text-embedding cache entry %s does not hold what it says; encoding again.", path)
        except Exception as e:  # noqa: BLE001 - any unreadable entry is a miss
            log.warning("The text-embedding cache entry %s cannot be read (%s); encoding again.", path, type(e).__name__)
    texts = [fill(template, name) for name in classnames for template in templates]
    tokens = tokenizer(texts)
    check_prompts_differ(tokenizer, tokens, texts, classnames, templates)
    chunks = []
    with torch.inference_mode(), eval_batches.autocast_for(precision, device):
        for start in range(0, len(texts), TEXT_BATCH):
            chunks.append(F.normalize(model.encode_text(tokens[start:start + TEXT_BATCH].to(device)).float(), dim=-1))
    per_prompt = torch.cat(chunks).view(len(classnames), len(templates), -1)
    classes = F.normalize(per_prompt.mean(dim=1), dim=-1).T.contiguous()   # D x C
    stored = classes.cpu()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"provenance": wanted, "mac": cache_mac.mac(*_entry_content(wanted, stored)),
                    "embeddings": stored}, buffer)
        partial = path.with_suffix(f".partial{os.getpid()}")
        partial.write_bytes(buffer.getvalue())
        os.replace(partial, path)
    except OSError as e:
        log.warning("The text embeddings could not be cached in %s (%s); they will be encoded again next time.",
                    path.parent, e.strerror or e)
    return classes, "encoded"


@lru_cache(maxsize=1)
def _head_class():
    """The head's torch module class, defined on first use (this module imports without torch)."""
    import torch
    import torch.nn.functional as F

    class ZeroShotHead(torch.nn.Module):
        """Image tower + class embeddings = logits: what eval's image loop runs as the model."""

        def __init__(self, model, classifier):
            super().__init__()
            self.clip = model
            self.register_buffer("classifier", classifier)

        def forward(self, images):
            features = F.normalize(self.clip.encode_image(images), dim=-1)
            return LOGIT_SCALE * features @ self.classifier.to(features.dtype)

    return ZeroShotHead


def zeroshot_head(model, classifier):
    return _head_class()(model, classifier).eval()


# -- the run -------------------------------------------------------------------------------------------
def zeroshot_key(spec: Spec, revision: str, dataset: ZeroShotDataset, config: dict, templates: tuple[str, list[str]],
                 settings: evaluate.EvalSettings) -> tuple[str, dict]:
    """What a zero-shot number depends on, the class names and templates included."""
    from importlib import metadata
    payload = {"kind": "zeroshot", "checkpoint": spec.checkpoint, "revision": revision,
               "dataset_fingerprint": dataset.fingerprint, "classnames": list(dataset.classnames),
               "templates_name": templates[0], "templates": list(templates[1]),
               "img_size": list(config["input_size"]), "crop_mode": config["crop_mode"],
               "interpolation": config["interpolation"], "mean": list(config["mean"]), "std": list(config["std"]),
               "quick_gelu": spec.quick_gelu, "precision": settings.precision, "limit": settings.limit,
               "logit_scale": LOGIT_SCALE, "open_clip_version": metadata.version("open_clip_torch")}
    return cache_key(payload), payload


def balanced_accuracy(correct: list[int], total: list[int]) -> float:
    """Mean recall over the classes that have images (scikit-learn's balanced_accuracy_score)."""
    recalls = [c / t for c, t in zip(correct, total, strict=True) if t]
    return 100 * sum(recalls) / len(recalls)


def _stored_row(row: dict, dataset: ZeroShotDataset, text_how: str) -> dict:
    """eval's finished row as a zeroshots row."""
    details = dict(row["details"])
    return {"cache_key": row["cache_key"], "checkpoint": row["checkpoint"], "hub_revision": row["hub_revision"],
            "dataset_id": dataset.zeroshot_id, "dataset_name": Path(dataset.opened_with["path"]).name,
            "dataset_root": dataset.opened_with["path"], "dataset_fingerprint": dataset.fingerprint,
            "classnames": details.pop("classnames"), "templates_name": details.pop("templates_name"),
            "templates": details.pop("templates"), "img_size": row["img_size"], "crop_mode": row["crop_mode"],
            "interpolation": row["interpolation"], "precision": row["precision"], "device_name": row["device_name"],
            "n_images": row["n_images"], "n_classes": dataset.num_classes, "top1": row["top1"], "top5": row["top5"],
            "balanced_accuracy": balanced_accuracy(details["per_class_correct"], details["per_class_total"]),
            "seconds": row["seconds"], "images_per_sec": row["images_per_sec"],
            "skipped_images": details["skipped_images"], "torch_version": row["torch_version"],
            "open_clip_version": details["open_clip_version"], "cuda_version": row["cuda_version"],
            "details": {**details, "nll": row["nll"], "ece": row["ece"], "text_embeddings": text_how,
                        "classnames_from": dataset.classnames_from, "label_map": dataset.label_map},
            "created_at": datetime.now(timezone.utc).replace(tzinfo=None)}


def _stored(store, spec: Spec, config: dict, dataset: ZeroShotDataset, chosen: tuple[str, list[str]],
            settings: evaluate.EvalSettings) -> dict | None:
    revision = cached_revision(spec)
    return store.zeroshot_result(zeroshot_key(spec, revision, dataset, config, chosen, settings)[0]) if revision else None


def lookup(store, checkpoint: str, dataset: ZeroShotDataset, templates: str | None,
           settings: evaluate.EvalSettings) -> dict | None:
    """The stored result of this request when the weights in the local Hub cache were already
    measured this way; None otherwise. No weights loaded, no network."""
    settings = evaluate.effective(settings, dataset)
    dataset = dataset.limit(settings.limit)
    spec = spec_of(checkpoint)
    return _stored(store, spec, pixel_config(spec), dataset, resolve_templates(templates, dataset.imagenet), settings)


def zeroshot(store, checkpoints: list[str], dataset: ZeroShotDataset, templates: str | None = None,
             settings: evaluate.EvalSettings | None = None, force: bool = False, progress: Callable | None = None,
             cancel: Callable | None = None, on_error: Callable | None = None,
             on_result: Callable | None = None) -> list[dict]:
    """Zero-shot top-1/top-5/balanced accuracy of each checkpoint on the folder's classes; one row
    per checkpoint, stored as soon as it is finished (cached results come back at once). With
    `on_error(checkpoint, message)` a failing checkpoint becomes {"checkpoint", "error"}."""
    settings = evaluate.effective(settings or evaluate.EvalSettings(), dataset)
    evaluate.check_settings(settings)
    dataset = dataset.limit(settings.limit)
    chosen = resolve_templates(templates, dataset.imagenet)
    device = evaluate.resolve_device(settings.device)
    results: dict[str, dict] = {}
    text_how: dict[str, str] = {}

    def failed(checkpoint, message):
        results[checkpoint] = {"checkpoint": checkpoint, "error": message}
        on_error(checkpoint, message)

    def done(row, cached):
        if not cached:
            store.put_zeroshot(_stored_row(row, dataset, text_how.get(row["checkpoint"], "")))
            row = store.zeroshot_result(row["cache_key"])
        results[row["checkpoint"]] = {**row, "cached": cached}
        if on_result is not None:
            on_result(results[row["checkpoint"]])

    def loader(spec: Spec, config: dict):
        def load_entry():
            model, tokenizer, weights = load(spec)
            key, payload = zeroshot_key(spec, weights.revision, dataset, config, chosen, settings)
            if store.zeroshot_result(key) is not None and not force:
                return model, weights, 0, key, payload   # found by eval's loop: no text to encode
            provenance = {"checkpoint": spec.checkpoint, "revision": weights.revision,
                          "classnames": list(dataset.classnames), "templates": list(chosen[1]),
                          "precision": settings.precision, "quick_gelu": spec.quick_gelu,
                          "open_clip_version": payload["open_clip_version"]}
            classifier, how = class_embeddings(model.to(device), tokenizer, provenance, dataset.classnames,
                                               chosen[1], device, settings.precision)
            text_how[spec.checkpoint] = how
            return zeroshot_head(model, classifier), weights, 0, key, payload
        return load_entry

    groups: dict[tuple, list[dict]] = {}
    for checkpoint in checkpoints:
        try:
            spec = spec_of(checkpoint)
            config = pixel_config(spec)
        except MatchupError as e:
            if on_error is None:
                raise
            failed(checkpoint, str(e))
            continue
        found = None if force else _stored(store, spec, config, dataset, chosen, settings)
        if found is not None:
            done(found, True)
            continue
        groups.setdefault(decoded.pixel_key(config), []).append(
            {"checkpoint": checkpoint, "config": config, "load": loader(spec, config)})
    evaluate.run_groups(groups, dataset, settings, done, failed if on_error else None,
                        (lambda key: None) if force else store.zeroshot_result, results, progress, cancel, force)
    return [results[c] for c in checkpoints]
