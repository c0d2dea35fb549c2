"""What trained this checkpoint: its parent's training plus its own stages.

A fine-tuned checkpoint's recipe lists its own stages (and, where the source gives them, the
pre-training it started from); a pre-trained checkpoint (`*.in21k`, `*.laion2b`, `*.lvd142m`,
...) often has no recipe of its own, but it *is* the first stages of its fine-tuned children, so
it takes them (children that share one pre-training run give it one value; children that disagree
give it their range). timm's copy of an OpenCLIP image tower carries the whole image-text training
of its linked (model, tag), the text tower included: the tower was trained as part of it. A child
with no recipe of its own is its parent's training plus a missing stage per dataset its tag
names (`_ft_in12k_in1k`), a lower bound (training_ranges). A recipe may name its parent
explicitly (`parent` column); a parent chain that loops is refused, naming the row.

`resolve` is the one function that answers "what trained this checkpoint", for the estimator,
the Checkpoint page and the CLI. Pure: no SQL, no UI.
"""
from __future__ import annotations

import statistics

import pandas as pd

from engine.catalog.training_compute import (DATASET_WORDS, RecipeBook, finish, missing_stage, recipe_for,
                                             unbounded_stage, unknown)
OPEN_CLIP_STAGE = "the whole image-text training of {pair} (both towers: this image tower was trained as part of it)"


class LineageError(ValueError):
    """A parent chain that cannot be followed (a loop); the message names the row."""


def _suffix_words(parent_tag: str, child_tag: str) -> list[str] | None:
    """The dataset words a child's tag adds to its parent's (`in21k` -> `in21k_ft_in1k`: [in1k]),
    or None when the child's tag does not extend the parent's by a fine-tune."""
    if not child_tag.startswith(parent_tag + "_"):
        return None
    words = child_tag[len(parent_tag) + 1:].split("_")
    if words[0] != "ft" and words[0] not in DATASET_WORDS:
        return None
    found = [w for w in words if w in DATASET_WORDS]
    return found or None


class Lineage:
    """Resolves every checkpoint's training from the estimates of their own recipes (`own`,
    checkpoint -> row), the image-text zoo's (`zoo`, open_clip id -> row), the links from timm
    checkpoints to OpenCLIP pairs and the recipe book."""

    def __init__(self, checkpoints: pd.DataFrame, own: dict[str, dict], book: RecipeBook,
                 links: dict[str, str] | None = None, zoo: dict[str, dict] | None = None, flops=None):
        self.facts = {r["checkpoint"]: r for r in checkpoints.to_dict("records")}
        self.own, self.book, self.zoo = own, book, zoo or {}
        self.links = links or {}
        self.flops = flops or (lambda arch, res, num_classes: None)
        self.by_arch: dict[str, list[dict]] = {}
        for fact in self.facts.values():
            self.by_arch.setdefault(fact["arch"], []).append(fact)
        self.memo: dict[str, dict] = {}
        self.refused: list[str] = []

    # -- relations ---------------------------------------------------------------------------------
    def _recipe(self, checkpoint: str) -> list[dict] | None:
        fact = self.facts[checkpoint]
        return recipe_for(self.book, fact["arch"], fact["tag"])

    def explicit_parent(self, checkpoint: str) -> str | None:
        recipe = self._recipe(checkpoint)
        return (recipe[0].get("parent") or None) if recipe else None

    def implicit_parent(self, checkpoint: str) -> tuple[str, list[str]] | None:
        """The same architecture's checkpoint whose tag is the longest proper prefix of this one's
        extended by a fine-tune, and the dataset words of the extension."""
        fact = self.facts[checkpoint]
        best = None
        for other in self.by_arch.get(fact["arch"], []):
            words = _suffix_words(other["tag"], fact["tag"])
            if words and (best is None or len(other["tag"]) > len(best[0]["tag"])):
                best = (other, words)
        return (best[0]["checkpoint"], best[1]) if best else None

    def children(self, checkpoint: str) -> list[tuple[str, list[str]]]:
        """Checkpoints of the same architecture fine-tuned from this one that have a recipe of
        their own without an explicit parent, with their extension's dataset words."""
        fact = self.facts[checkpoint]
        found = []
        for other in self.by_arch.get(fact["arch"], []):
            words = _suffix_words(fact["tag"], other["tag"])
            if words and self._recipe(other["checkpoint"]) and not self.explicit_parent(other["checkpoint"]):
                if self.implicit_parent(other["checkpoint"])[0] == checkpoint:
                    found.append((other["checkpoint"], words))
        return found

    # -- resolution --------------------------------------------------------------------------------
    def resolve(self, checkpoint: str, chain: tuple[str, ...] = ()) -> dict:
        """This checkpoint's estimate row over its whole lineage (`lineage`: how it was found)."""
        if checkpoint in self.memo:
            return self.memo[checkpoint]
        if checkpoint in chain:
            loop = " -> ".join([*chain[chain.index(checkpoint):], checkpoint])
            fact = self.facts[chain[-1]]
            raise LineageError(f"training_recipes.csv (tag {fact['tag']}, {fact['arch']}): the lineage loops: {loop}")
        if checkpoint not in self.facts:
            return unknown(checkpoint, f"unknown: {checkpoint} is not in the catalog")
        try:
            row = self._resolve(checkpoint, (*chain, checkpoint))
        except LineageError as e:
            if chain:
                raise
            self.refused.append(str(e))
            row = unknown(checkpoint, f"unknown: {e}")
        self.memo[checkpoint] = row
        return row

    def _resolve(self, checkpoint: str, chain: tuple[str, ...]) -> dict:
        if checkpoint in self.links:
            return self._open_clip_tower(checkpoint)
        own = self.own.get(checkpoint)
        recipe = self._recipe(checkpoint)
        if recipe:
            parent = self.explicit_parent(checkpoint)
            if parent:
                return self._on_parent(checkpoint, parent, own["stages"], chain, explicit=True)
            implicit = self.implicit_parent(checkpoint)
            if implicit and implicit[0] in self.links:
                rest = list(own["stages"])
                while rest and rest[0]["objective"] == "contrastive":
                    rest.pop(0)  # the parent's image-text training, counted whole from its pair
                return self._on_parent(checkpoint, implicit[0], rest, chain, explicit=False)
            return own
        from_children = self._from_children(checkpoint, chain)
        if from_children is not None:
            return from_children
        implicit = self.implicit_parent(checkpoint)
        if implicit:
            return self._on_parent(checkpoint, implicit[0], self._missing_stages(checkpoint, implicit[1]),
                                   chain, explicit=False)
        return own or unknown(checkpoint)

    def _open_clip_tower(self, checkpoint: str) -> dict:
        pair = self.links[checkpoint]
        found = self.zoo.get(pair)
        if found is None or not found.get("stages") or found.get("train_flops_low") is None:
            why = (found or {}).get("note") or "no training-compute estimate"
            return unknown(checkpoint, f"unknown: linked to OpenCLIP {pair}, which has no training-compute estimate "
                                       f"({why})", [f"timm's copy of the image tower of {pair}"])
        stages = [{**s, "from": pair} for s in found["stages"]]
        return finish(checkpoint, stages, [OPEN_CLIP_STAGE.format(pair=pair)],
                      [f"timm's copy of the image tower of {pair}: " + OPEN_CLIP_STAGE.format(pair=pair)])

    def _on_parent(self, checkpoint: str, parent: str, own_stages: list[dict], chain, explicit: bool) -> dict:
        above = self.resolve(parent, chain)
        how = "named by its recipe" if explicit else "its tag extends the parent's"
        if not above["stages"] or above["train_flops_low"] is None:
            missing = unbounded_stage(0, "pretrain", f"{parent}'s training", "lineage",
                                      f"the parent {parent} has no estimate", f"the parent {parent} is unknown")
            return finish(checkpoint, [missing, *own_stages], [f"parent {parent} unknown: a lower bound"],
                          [f"parent {parent} ({how}), whose training is unknown"])
        inherited = [{**s, "from": s.get("from") or parent} for s in above["stages"]]
        own = [{**s, "stage": len(inherited) + i + 1} for i, s in enumerate(own_stages)]
        return finish(checkpoint, inherited + own, [above.get("note") or ""],
                      [f"parent {parent} ({how})", *above.get("lineage", [])])

    def _from_children(self, checkpoint: str, chain) -> dict | None:
        """A pre-trained checkpoint as the shared first stages of its fine-tuned children."""
        candidates = []
        for child, words in self.children(checkpoint):
            stages = self.own[child]["stages"]
            mine = stages[:len(stages) - len(words)]
            if mine and all(s["flops"] is not None for s in mine):
                candidates.append((child, mine))
        if not candidates:
            return None
        totals = [sum(s["flops"] for s in mine) for _, mine in candidates]
        middle = statistics.median_low(totals)
        child, chosen = candidates[totals.index(middle)]
        stages = [{**s, "from": child} for s in chosen]
        names = ", ".join(c for c, _ in candidates)
        if max(totals) > min(totals) * (1 + 1e-9):
            low = min(sum(s["flops_low"] for s in mine) for _, mine in candidates)
            high = max(sum(s["flops_high"] for s in mine) for _, mine in candidates)
            row = finish(checkpoint, stages, [f"its children disagree on its training: {min(totals):.2g}-"
                                              f"{max(totals):.2g} FLOPs; their range is its range"],
                         [f"the first stages of its fine-tuned children ({names})"])
            return {**row, "train_flops_low": min(low, row["train_flops_low"]),
                    "train_flops_high": max(high, row["train_flops_high"])}
        return finish(checkpoint, stages, [],
                      [f"the first stages of its fine-tuned child{'ren' if len(candidates) > 1 else ''} ({names})"])

    def _missing_stages(self, checkpoint: str, words: list[str]) -> list[dict]:
        """One missing stage per dataset word of a child's tag (training_compute.missing_stage)."""
        fact = self.facts[checkpoint]
        return [missing_stage(fact, i + 1, "finetune" if i == len(words) - 1 else "intermediate", DATASET_WORDS[w],
                              self.flops, self.book.ranges) for i, w in enumerate(words)]


def resolve_all(checkpoints: pd.DataFrame, own: pd.DataFrame, book: RecipeBook, links: dict[str, str] | None = None,
                zoo: pd.DataFrame | None = None, flops=None) -> tuple[pd.DataFrame, list[str]]:
    """Every checkpoint's estimate over its lineage, and the refusals (loops) to report."""
    zoo_rows = {r["checkpoint"]: r for r in zoo.to_dict("records")} if zoo is not None and not zoo.empty else {}
    lineage = Lineage(checkpoints, {r["checkpoint"]: r for r in own.to_dict("records")}, book, links, zoo_rows, flops)
    rows = [lineage.resolve(c) for c in checkpoints["checkpoint"]]
    return pd.DataFrame(rows), list(dict.fromkeys(lineage.refused))

