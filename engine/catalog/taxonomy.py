"""Checkpoint -> architecture class, family and pre-training data.

The class comes from the timm module that defines the architecture (data/timm_module_classes.csv,
the project's own map) plus a few per-name overrides for modules that mix designs. Pre-training
data is read from the checkpoint's pretrained tag, e.g. `laion2b_ft_in12k_in1k`.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from engine.paths import DATA_DIR

MODULE_MAP_CSV = DATA_DIR / "timm_module_classes.csv"
RETIRED_ARCHS_CSV = DATA_DIR / "retired_archs.csv"

ARCH_CLASSES = ("ConvNet", "ViT", "Hybrid", "MLP")

# (module, arch-name regex, class, why): where one timm module holds more than one design.
NAME_OVERRIDES: list[tuple[str, str, str, str]] = [
    ("metaformer", r"^caformer_", "Hybrid", "CAFormer: conv stages + attention stages"),
    ("mobilenetv3", r"^mobilenetv4_hybrid_", "Hybrid", "MobileNetV4 hybrid: UIB convs + mobile MQA"),
    ("fastvit", r"^fastvit_(t8|t12|s12)$", "ConvNet", "FastViT T8/T12/S12: RepMixer only, no attention"),
]


@lru_cache(maxsize=1)
def module_classes() -> dict[str, str]:
    """timm module name -> architecture class."""
    with open(MODULE_MAP_CSV, newline="") as f:
        return {row["module"]: row["arch_class"] for row in csv.DictReader(f)}


@lru_cache(maxsize=1)
def retired_archs() -> dict[str, dict[str, str]]:
    """Architectures in timm's older benchmark files that the installed timm no longer registers."""
    with open(RETIRED_ARCHS_CSV, newline="") as f:
        return {row["arch"]: row for row in csv.DictReader(f)}


class UnknownModuleError(KeyError):
    """A timm module the class map does not cover: add it to data/timm_module_classes.csv."""


def arch_class(arch: str, module: str) -> str:
    for override_module, pattern, cls, _why in NAME_OVERRIDES:
        if module == override_module and re.search(pattern, arch):
            return cls
    try:
        return module_classes()[module]
    except KeyError:
        raise UnknownModuleError(
            f"timm module {module!r} (architecture {arch!r}) is not in {MODULE_MAP_CSV.name}; "
            "add a row with its arch_class") from None


_FAMILY_PREFIXES = re.compile(r"^(tf_|legacy_|gluon_|dm_|eca_|timm_)+")


def family(arch: str) -> str:
    """A coarse family from the architecture name: resnet50d -> resnet, swinv2_base -> swinv2;
    timm's tiny test_* models form their own family, 'test'."""
    if arch.startswith("test_"):
        return "test"
    stem = _FAMILY_PREFIXES.sub("", arch) or arch
    first = stem.split("_", 1)[0]
    match = re.match(r"[a-z]+v\d+|[a-z]+", first)
    return match.group(0) if match else first


@dataclass(frozen=True)
class DataSource:
    name: str
    images: float  # approximate number of training images (or image-text pairs)


def _ds(name: str, images: float) -> DataSource:
    return DataSource(name, images)


IN1K = _ds("ImageNet-1k", 1.28e6)
# (tag regex, data). Matched at `_`-boundaries anywhere in the tag; a tag may name a chain,
# e.g. laion2b -> in12k -> in1k. Vendor VLM encoders name no data; they say "undisclosed".
_DATA_PATTERNS: list[tuple[str, DataSource | None]] = [
    (r"in1k|dino|fb_dino|mae|fcmae", IN1K),
    (r"in12k", _ds("ImageNet-12k", 11.8e6)),
    (r"in21k|in22k|inw21k", _ds("ImageNet-21k", 14.2e6)),
    (r"laion2b", _ds("LAION-2B", 2.3e9)),
    (r"laiona", _ds("LAION-Aesthetics (LAION-2B subset)", 9.0e8)),
    (r"laion400m", _ds("LAION-400M", 4.0e8)),
    (r"openai", _ds("OpenAI WIT-400M", 4.0e8)),
    (r"datacomp1b", _ds("DataComp-1B", 1.4e9)),
    (r"datacompxl", _ds("DataComp-XL", 12.8e9)),
    (r"dfn2b|dfn2b_s39b", _ds("DFN-2B", 2.0e9)),
    (r"dfn5b", _ds("DFN-5B", 5.0e9)),
    (r"mclip2_dfndr2b", _ds("DFNDR-2B", 2.0e9)),
    (r"mclip|mclip_lt", _ds("DataCompDR-1B", 1.3e9)),
    (r"apple_pt|apple_pt_dist", _ds("DFN-2B+ (AIMv2 mix)", 1.2e10)),
    (r"metaclip_2pt5b|metaclip_altogether", _ds("MetaCLIP-2.5B", 2.5e9)),
    (r"metaclip_400m", _ds("MetaCLIP-400M", 4.0e8)),
    (r"metaclip2_worldwide", _ds("MetaCLIP-2 worldwide", 2.9e10)),
    (r"webli|webli_i18n|pali\d?_\w+", _ds("WebLI", 1.0e10)),
    (r"jft|jft300m", _ds("JFT-300M", 3.0e8)),
    (r"jft3b", _ds("JFT-3B", 3.0e9)),
    (r"jft4b", _ds("JFT-4B", 4.0e9)),
    (r"ig1b|seer", _ds("Instagram-1B", 9.4e8)),
    (r"swag", _ds("Instagram-3.6B (SWAG)", 3.6e9)),
    (r"yfcc100m", _ds("YFCC-100M", 1.0e8)),
    (r"yfcc15m", _ds("YFCC-15M", 1.5e7)),
    (r"cc12m", _ds("CC12M", 1.2e7)),
    (r"lvd142m", _ds("LVD-142M", 1.42e8)),
    (r"lvd1689m|dinov3_lvd1689m|eupe_lvd1689m", _ds("LVD-1689M", 1.689e9)),
    (r"sat493m", _ds("SAT-493M", 4.93e8)),
    (r"merged2b", _ds("Merged-2B (EVA-CLIP)", 2.0e9)),
    (r"m38m", _ds("Merged-38M", 3.8e7)),
    (r"m30m", _ds("Merged-30M", 3.0e7)),
    (r"sa1b", _ds("SA-1B", 1.1e7)),
    (r"bamboo", _ds("Bamboo", 6.9e7)),
    (r"msft_florence2", _ds("FLD-5B", 1.26e8)),
    (r"c_radio", _ds("DataComp-1B", 1.4e9)),
    (r"gemma\w*|qwen\w*|deepseek\w*|robbyant|ogvl\w*", None),
]
# Where the tag names no data but the architecture's paper does: (arch regex, data).
_ARCH_DATA: list[tuple[str, DataSource]] = [
    (r"sapiens2", _ds("Humans-1B (Sapiens2)", 1.0e9)),
    (r"^vit_pe_", _ds("MetaCLIP-5.4B (Perception Encoder)", 5.4e9)),
    (r"^sam2?_", _ds("SA-1B", 1.1e7)),
    (r"^beit3_", _ds("BEiT-3 mix (ImageNet-21k + 21M pairs)", 3.5e7)),
]
_COMPILED = [(re.compile(rf"(?:^|_)(?:{p})(?=_|$)"), ds) for p, ds in _DATA_PATTERNS]
UNDISCLOSED = "undisclosed"
UNKNOWN = "unknown"

DATA_SCALES = ("≈1M", "≈10M", "≈100M", "≥1B")


def data_scale(images: float | None) -> str | None:
    """Nearest power of ten in log space; everything from ~300M up is '≥1B'."""
    if not images:
        return None
    exponent = min(max(round(math.log10(images)), 6), 9)
    return DATA_SCALES[exponent - 6]


@dataclass(frozen=True)
class PretrainData:
    pretrain_data: str
    finetune_data: str | None
    data_scale: str | None


def parse_pretrain(tag: str, num_classes: int | None = None, arch: str = "") -> PretrainData:
    """The largest data the checkpoint saw (pre-training) and the last one (fine-tuning)."""
    hits: list[tuple[int, DataSource | None]] = []
    for pattern, source in _COMPILED:
        hits += [(m.start(), source) for m in pattern.finditer(tag or "")]
    hits.sort(key=lambda hit: hit[0])
    chain = [source for _, source in hits if source is not None]
    if not chain:
        for pattern, source in _ARCH_DATA:
            if re.search(pattern, arch):
                return PretrainData(source.name, None, data_scale(source.images))
        if any(source is None for _, source in hits):
            return PretrainData(UNDISCLOSED, None, None)
        if num_classes in (21841, 21842, 21843):
            return PretrainData("ImageNet-21k", None, data_scale(14.2e6))
        if num_classes == 11821:
            return PretrainData("ImageNet-12k", None, data_scale(11.8e6))
        return PretrainData(UNKNOWN, None, None)
    biggest = max(chain, key=lambda s: s.images)
    last = chain[-1]
    return PretrainData(biggest.name, last.name if last is not biggest else None,
                        data_scale(biggest.images))


def split_checkpoint(checkpoint: str) -> tuple[str, str]:
    """`arch.tag` -> (arch, tag)."""
    arch, _, tag = checkpoint.partition(".")
    return arch, tag
