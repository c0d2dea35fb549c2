"""Each checkpoint's pre-training objective: from its lineage's recipe where one is sourced, else
from what its tag (or architecture name) states, else unknown.

The seed paper's follow-up asks whether the answer changes for self-supervised pre-training, so
the objective is a dimension like the data: pages filter and group by it. A recipe's stage names
the objective it trained with; the pre-training objective is that of the last pre-training stage
(Noisy Student's student, not its supervised teacher), an intermediate or fine-tuning stage
never counts. Pure functions: no SQL, no UI.
"""
from __future__ import annotations

import json
import re

UNKNOWN = "unknown"
# A recipe's objective (training_recipes.csv) -> the name pages show.
RECIPE_OBJECTIVES = {
    "supervised": "supervised",
    "distillation": "distillation",
    "semi_supervised": "semi-supervised pseudo-labels",
    "mim": "masked image modelling",
    "mim_full": "masked image modelling",
    "self_distillation": "self-distillation",
    "contrastive": "image-text contrastive",
}
OBJECTIVES = tuple(dict.fromkeys(RECIPE_OBJECTIVES.values())) + (UNKNOWN,)
SELF_SUPERVISED = ("masked image modelling", "self-distillation")
# What a tag or architecture name states, first match wins (a token, not a substring: `.mae`,
# `fcmae_ft_in1k`, `dinov2`; never `madeup`).
TAG_RULES = (
    (re.compile(r"(^|[._])ns_jft"), "semi-supervised pseudo-labels"),
    (re.compile(r"(^|[._])(fc)?mae($|[._])|(^|[._])mim($|[._])|(^|[._])fcmae"), "masked image modelling"),
    (re.compile(r"(^|[._])dino(v[23])?($|[._])|(^|[._])lvd"), "self-distillation"),
    (re.compile(r"(^|[._])(clip|laion|openai|siglip2?|webli|metaclip|dfn|datacomp)"), "image-text contrastive"),
    (re.compile(r"distill"), "distillation"),
)


def from_stages(stages) -> str | None:
    """The objective of the last pre-training stage that names one (stages: the stored JSON or
    its list); None where no stage does."""
    if isinstance(stages, str):
        stages = json.loads(stages) if stages else []
    named = [s.get("objective") for s in stages or [] if s.get("kind") == "pretrain" and s.get("objective")]
    return RECIPE_OBJECTIVES.get(named[-1], named[-1]) if named else None


def from_name(arch: str, tag: str | None) -> str | None:
    """What the tag states (`.mae`, `.fcmae`, `.dino`, `clip`, `laion`, `openai`, `ns_jft`), else
    what the architecture's name does (`vit_base_patch14_dinov2`, `deit_base_distilled_...`)."""
    for text in (tag or "", arch or ""):
        for pattern, objective in TAG_RULES:
            if pattern.search(text.lower()):
                return objective
    return None


def objective(arch: str, tag: str | None, stages=None, zoo: str = "imagenet") -> str:
    """The checkpoint's pre-training objective, one of OBJECTIVES. Every image-text model is
    trained image-text contrastive (OpenCLIP's zoo)."""
    if zoo == "image-text":
        return "image-text contrastive"
    return from_stages(stages) or from_name(arch, tag) or UNKNOWN
