"""The seed paper's claims, each with a verdict computed from the reference points that carry it.

Smith et al. 2023 (ConvNets Match Vision Transformers at Scale) and the ConvNeXt paper it builds
on make three comparisons the Seed paper page states; each verdict here is recomputed from
data/reference/paper_facts.csv, with the rows it rests on, so a changed fact changes the verdict.
"""
from __future__ import annotations

import re

import pandas as pd

MATCH_TOLERANCE = 0.5  # top-1 points within which two models "match"
FLOP_TOLERANCE = 0.10  # ConvNeXt/Swin pairs are FLOP-matched when within ±10% GFLOPs
LAW_R2 = 0.9  # a class "follows a log-log law" when the fit explains this much and its slope CI is below 0
# The paper's budget is TPU-v4 core hours. On the training-FLOP axis a core hour is the core's bf16
# peak (a v4 chip: 275 TFLOP/s and two TensorCores, cloud.google.com/tpu/docs/v4) for an hour, times
# a utilisation the page states and the reader can change.
TPU_V4_CORE_PEAK_FLOPS = 275e12 / 2
DEFAULT_UTILISATION = 0.4


def compare(difference: float, tolerance: float = MATCH_TOLERANCE) -> str:
    """The one rule every claim here is judged by: 'ahead' or 'behind' by more than the
    tolerance, else 'matches' (a +0.05-point difference is a match, never 'ahead')."""
    if difference > tolerance:
        return "ahead"
    if difference < -tolerance:
        return "behind"
    return "matches"


def _row(reference: pd.DataFrame, source: str, model: str) -> dict | None:
    found = reference[(reference["source"] == source) & (reference["model"] == model)]
    return found.iloc[0].to_dict() if len(found) else None


def _checked(claim: str, holds: bool, text: str, difference: float, rows: list[str]) -> dict:
    return {"claim": claim, "holds": bool(holds), "verdict": ("holds" if holds else "does not hold") + ": " + text,
            "difference": float(difference), "rows": rows}


def _cite(row: dict) -> str:
    return f"{row['source']}: {row['model']} ({row['pretrain_data']})"


def convnext_vs_swin(reference: pd.DataFrame) -> dict:
    """Liu et al. 2022: ConvNeXt beats Swin in every FLOP-matched pair (same size, resolution and
    pre-training data)."""
    rows = reference[reference["source"] == "liu2022_convnext"]
    pattern = re.compile(r"^(Swin|ConvNeXt)-([TSBL]) @(\d+)$")
    keyed = {}
    for row in rows.to_dict("records"):
        match = pattern.match(row["model"])
        if match:
            keyed[(match[1], match[2], match[3], row["pretrain_data"])] = row
    pairs = []
    for (arch, size, res, data), swin in sorted(keyed.items()):
        convnext = keyed.get(("ConvNeXt", size, res, data))
        if arch != "Swin" or convnext is None:
            continue
        matched = abs(convnext["gflops"] / swin["gflops"] - 1) <= FLOP_TOLERANCE
        pairs.append({"pair": f"{size} @{res}, {data}", "convnext_top1": convnext["imagenet_top1"],
                      "swin_top1": swin["imagenet_top1"], "convnext_gflops": convnext["gflops"],
                      "swin_gflops": swin["gflops"], "flop_matched": bool(matched),
                      "difference": float(convnext["imagenet_top1"] - swin["imagenet_top1"]),
                      "rows": [_cite(convnext), _cite(swin)]})
    matched = [p for p in pairs if p["flop_matched"]]
    counts = {word: sum(compare(p["difference"]) == word for p in matched) for word in ("ahead", "matches", "behind")}
    holds = bool(matched) and counts["behind"] == 0
    return {"claim": "ConvNeXt matches or beats Swin in every FLOP-matched pair (Liu et al. 2022)",
            "verdict": ("holds" if holds else "does not hold") + f": of {len(matched)} FLOP-matched pairs "
                       f"(±{FLOP_TOLERANCE:.0%} GFLOPs), ConvNeXt is ahead in {counts['ahead']}, matches in "
                       f"{counts['matches']} (within ±{MATCH_TOLERANCE} points) and is behind in {counts['behind']}; "
                       f"differences {min((p['difference'] for p in matched), default=float('nan')):+.2f} to "
                       f"{max((p['difference'] for p in matched), default=float('nan')):+.2f} points",
            "holds": holds, "pairs": pairs, "rows": [r for p in pairs for r in p["rows"]]}


def nfnet_matches_vit_g(reference: pd.DataFrame) -> dict:
    """Smith et al. 2023: NFNet-F7+ matches ViT-g/14 at about 110-120k TPU-v4 core hours."""
    nfnet = _row(reference, "smith2023_convnets_match", "NFNet-F7+ (8 pre-training epochs)")
    vit = _row(reference, "smith2023_convnets_match", "ViT-g/14 (Zhai et al. 2022, as cited)")
    claim = "NFNet-F7+ matches ViT-g/14 at about 110-120k TPU-v4 core hours"
    if nfnet is None or vit is None:
        return {"claim": claim, "verdict": "not checkable: a reference row is missing", "holds": None, "rows": []}
    difference = nfnet["imagenet_top1"] - vit["imagenet_top1"]
    holds = compare(difference) == "matches" and nfnet["compute_value"] <= vit["compute_value"]
    return _checked(claim, holds, f"NFNet-F7+ {nfnet['imagenet_top1']:.2f}% at {nfnet['compute_value']:,.0f} core "
                    f"hours, ViT-g/14 {vit['imagenet_top1']:.2f}% at {vit['compute_value']:,.0f} ({difference:+.2f} "
                    f"points; a match is within ±{MATCH_TOLERANCE} points at no more compute)",
                    difference, [_cite(nfnet), _cite(vit)])


def vit_g_only_matches_at_280k(reference: pd.DataFrame) -> dict:
    """Smith et al. 2023: ViT-G/14, at about 280k TPU-v4 core hours (2.5× NFNet-F7+'s compute),
    reaches about what the best NFNet does: by the one rule, a match, not a lead."""
    vit = _row(reference, "smith2023_convnets_match", "ViT-G/14 (Zhai et al. 2022, as cited)")
    nfnets = reference[(reference["source"] == "smith2023_convnets_match") & (reference["arch_class"] == "ConvNet")
                       & (reference["compute_unit"] == "tpu_v4_core_hours") & reference["imagenet_top1"].notna()]
    claim = "ViT-G/14 at about 280k TPU-v4 core hours only matches the best NFNet"
    if vit is None or nfnets.empty:
        return {"claim": claim, "verdict": "not checkable: a reference row is missing", "holds": None, "rows": []}
    best = nfnets.loc[nfnets["imagenet_top1"].idxmax()].to_dict()
    difference = vit["imagenet_top1"] - best["imagenet_top1"]
    ratio = vit["compute_value"] / best["compute_value"]
    holds = compare(difference) == "matches" and ratio > 1
    return _checked(claim, holds, f"ViT-G/14 {vit['imagenet_top1']:.2f}% at {vit['compute_value']:,.0f} core hours "
                    f"against the best NFNet, {best['model']}, {best['imagenet_top1']:.2f}% at "
                    f"{best['compute_value']:,.0f}: {difference:+.2f} points, {compare(difference)} (within "
                    f"±{MATCH_TOLERANCE} points) for {ratio:.1f}× the compute",
                    difference, [_cite(vit), _cite(best)])


LAW_NOT_IN_PAPER_ROWS = ("not testable here: the paper states its law as a figure (held-out JFT-4B loss against "
                         "pre-training compute, a straight line on log-log axes) and its text gives no loss values "
                         "to refit")


def paper_law(reference: pd.DataFrame) -> dict:
    """The paper's law form, log(held-out loss) = a + b·log(compute): what its own numbers allow."""
    return {"claim": "Held-out loss falls as a power law of pre-training compute (log-log linear)", "holds": None,
            "verdict": LAW_NOT_IN_PAPER_ROWS, "rows": ["smith2023_convnets_match: Fig. 2 only"]}


def paper_claims(reference: pd.DataFrame) -> list[dict]:
    """Part one of the Seed paper page: the paper's claims, checked from its own reported numbers."""
    return [convnext_vs_swin(reference), nfnet_matches_vit_g(reference), vit_g_only_matches_at_280k(reference),
            paper_law(reference)]


# -- part two: what the public zoo says on the same questions ---------------------------------------
ZOO_QUALITY = "imagenet.top1"
ZOO_COST = "train_flops"
ZOO_SAME_DATA = "LAION-2B"  # the largest pre-training source with ConvNets and ViTs both, fine-tuned on ImageNet
MULTIPLIER_LEVELS = (85.0, 87.0)  # the paper's regime: ImageNet top-1 of the best models a lab trains


def _zoo(points: pd.DataFrame, data: str | None) -> pd.DataFrame:
    from engine.analysis import points_table
    return points_table.select(points, ZOO_COST, ZOO_QUALITY, classes=["ConvNet", "ViT"], zoo="imagenet",
                               data_sources=[data] if data else None)


def _data_text(data: str | None) -> str:
    return f"on {data}" if data else "over mixed pre-training data"


def zoo_match_at_scale(points: pd.DataFrame) -> list[dict]:
    """'At the same training compute, ConvNets match ViTs at scale': the budget gap at the zoo's
    three largest training-compute budgets, same data (LAION-2B) and mixed, with intervals."""
    from engine.analysis import budget_match, points_table
    out = []
    for data in (ZOO_SAME_DATA, None):
        claim = f"At the same training compute, ConvNets match ViTs at scale ({_data_text(data)})"
        try:
            chosen = _zoo(points, data)
        except points_table.AnalysisError as e:
            out.append({"claim": claim, "holds": None, "verdict": f"not testable here: {e}", "rows": []})
            continue
        budgets = budget_match.log_budgets(chosen, 8)[-3:]
        rows = budget_match.budget_table(chosen, ZOO_QUALITY, budgets)
        gaps = [(r["budget"], r["gaps"].get("ViT-ConvNet")) for r in rows]
        judged = [(b, g) for b, g in gaps if g and g["verdict"] != "too few"]
        said = "; ".join(f"≤{b:.2g} FLOPs: ViT − ConvNet {budget_match.with_ci(g['gap'], g['ci_low'], g['ci_high'])} "
                         f"({budget_match.verdict_label(g)})" for b, g in gaps if g)
        if not judged:
            out.append({"claim": claim, "holds": None, "verdict": f"not testable here: too few checkpoints of a class "
                        f"at the largest budgets ({said or 'no gap'})", "rows": []})
            continue
        holds = all(g["verdict"] != "lead" or g["leader"] == "ConvNet" for _, g in judged)
        out.append({"claim": claim, "holds": holds,
                    "verdict": ("holds" if holds else "does not hold") + f": {said} (a match: no ViT lead, the "
                               "interval holding 0 or ConvNets ahead)",
                    "rows": [f"zoo: {ZOO_QUALITY} against {ZOO_COST}, {_data_text(data)}, {len(chosen)} checkpoints"]})
    return out


def zoo_multiplier(points: pd.DataFrame) -> list[dict]:
    """The paper's second form: the compute a ViT needs to match the best ConvNets, as a multiplier
    with its interval, at the accuracies of the paper's regime."""
    from engine.analysis import multiplier, points_table
    out = []
    for data in (ZOO_SAME_DATA, None):
        claim = (f"ViTs need more training compute than ConvNets to reach the same ImageNet accuracy "
                 f"(the paper: ViT-G/14 about 2.5x NFNet-F7+; {_data_text(data)})")
        try:
            chosen = _zoo(points, data)
        except points_table.AnalysisError as e:
            out.append({"claim": claim, "holds": None, "verdict": f"not testable here: {e}", "rows": []})
            continue
        rows = multiplier.multiplier_table(chosen, ZOO_QUALITY, MULTIPLIER_LEVELS)
        parts, states = [], []
        for row in rows:
            r = row["ratios"].get("ViT/ConvNet")
            if r is None:
                reached = ", ".join(row["cheapest"]) or "no class"
                parts.append(f"{row['level']:g}%: only {reached} reach it")
                continue
            parts.append(f"{row['level']:g}%: ViT ÷ ConvNet {multiplier.ratio_text(r)} "
                         f"({multiplier.verdict_label(r, 'ViT', 'ConvNet')})")
            if r["verdict"] != "too few":
                states.append(r["cheaper"])
        if not states:
            out.append({"claim": claim, "holds": None, "rows": [],
                        "verdict": "not testable here: " + "; ".join(parts) + " (too few checkpoints of a class "
                                   "reach these accuracies)"})
            continue
        holds = all(s == "ConvNet" for s in states)
        verdict = "holds" if holds else ("does not hold" if any(s == "ViT" for s in states) else "not shown")
        out.append({"claim": claim, "holds": holds,
                    "verdict": f"{verdict}: " + "; ".join(parts) + " (exact bootstrap intervals; a class is cheaper "
                               "only where the interval excludes 1x)",
                    "rows": [f"zoo: {ZOO_QUALITY} against {ZOO_COST}, {_data_text(data)}, {len(chosen)} checkpoints"]})
    return out


def scaling_law_on_the_zoo(points: pd.DataFrame, cost: str = ZOO_COST) -> dict:
    """The paper's law is held-out pre-training loss against pre-training compute; no zoo
    checkpoint publishes its loss, so the law itself is not testable here. The nearest form the zoo
    can test, said as such: log(ImageNet error) = a + b·log(training compute), fitted on each
    class's frontier (analysis.scaling); a class follows it when R² ≥ LAW_R2 with a slope interval
    below 0."""
    from engine.analysis import points_table, scaling_fits
    claim = ("ConvNets follow a log-log scaling law in training compute, as ViTs do (the paper's law: held-out "
             "loss, not testable here; nearest: ImageNet error)")
    try:
        chosen = points_table.select(points, cost, ZOO_QUALITY, classes=["ConvNet", "ViT"], zoo="imagenet")
        fits = scaling_fits.scaling(chosen, ZOO_QUALITY, on="frontier")["fits"]
    except points_table.AnalysisError as e:
        return {"claim": claim, "verdict": f"not testable here: {e}", "holds": None, "rows": [], "fits": {}}
    if set(fits) != {"ConvNet", "ViT"}:
        return {"claim": claim, "verdict": "not testable here: a class has too few frontier points for a fit",
                "holds": None, "rows": [], "fits": fits}
    follows = {c: f["r2"] >= LAW_R2 and f["b_ci"][1] < 0 for c, f in fits.items()}
    holds = all(follows.values())
    said = "; ".join(f"{c}s: b = {f['b']:+.3f} [{f['b_ci'][0]:+.3f}, {f['b_ci'][1]:+.3f}], R² {f['r2']:.2f} on "
                     f"{f['n_points']} frontier points" for c, f in sorted(fits.items()))
    return {"claim": claim, "holds": holds, "fits": fits,
            "verdict": ("holds" if holds else "does not hold") + f" in the nearest form: log(ImageNet error) = a + "
                       f"b·log({cost}); {said} (the rule: R² ≥ {LAW_R2} and a slope interval below 0). The paper's "
                       "law, held-out loss against pre-training compute, is not testable here: no checkpoint in the "
                       "zoo publishes its pre-training loss",
            "rows": [f"zoo: scaling fit on the frontier, {ZOO_QUALITY} against {cost}"]}


def zoo_convnext_vs_swin(points: pd.DataFrame) -> dict:
    """Liu et al.'s claim on timm's own checkpoints: ConvNeXt against Swin of the same size,
    resolution and pre-training data, at counted GFLOPs; the mean difference with a t interval."""
    from engine.analysis import points_table, pretraining
    claim = "ConvNeXt matches or beats Swin of the same size, resolution and pre-training data (timm's checkpoints)"
    try:
        chosen = points_table.select(points, "gflops", ZOO_QUALITY, zoo="imagenet")
    except points_table.AnalysisError as e:
        return {"claim": claim, "holds": None, "verdict": f"not testable here: {e}", "rows": []}
    pattern = re.compile(r"^(convnext|swin)_(tiny|small|base|large)(?:_patch4_window\d+)?(?:_(\d+))?$")
    keyed: dict = {}
    for row in chosen.itertuples():
        match = pattern.match(str(row.arch))
        if not match:
            continue
        key = (match[1], match[2], int(row.img_size), row.pretrain_data)
        if key not in keyed or row.quality > keyed[key].quality:
            keyed[key] = row
    pairs = []
    for (arch, size, res, data), swin in sorted(keyed.items()):
        convnext = keyed.get(("convnext", size, res, data))
        if arch == "swin" and convnext is not None:
            pairs.append({"pair": f"{size} @{res}, {data}", "difference": float(convnext.quality - swin.quality),
                          "rows": [convnext.checkpoint, swin.checkpoint],
                          "gflops_ratio": float(convnext.cost / swin.cost)})
    diffs = [p["difference"] for p in pairs]
    mean, low, high = pretraining.mean_interval(diffs) if diffs else (None, None, None)
    if low is None:
        return {"claim": claim, "holds": None, "rows": [p for q in pairs for p in q["rows"]],
                "verdict": f"not testable here: {len(pairs)} ConvNeXt/Swin pairs of the same size, resolution and data"}
    holds = high > 0 and low > -MATCH_TOLERANCE  # not behind by more than the match tolerance
    ratios = [p["gflops_ratio"] for p in pairs]
    return {"claim": claim, "holds": bool(holds), "pairs": pairs,
            "verdict": ("holds" if holds else "does not hold") + f": ConvNeXt − Swin {mean:+.2f} [{low:+.2f}, "
                       f"{high:+.2f}] points over {len(pairs)} pairs (95% t interval; differences "
                       f"{min(diffs):+.2f} to {max(diffs):+.2f}; ConvNeXt ÷ Swin GFLOPs {min(ratios):.2f} to "
                       f"{max(ratios):.2f}; a match: the interval reaches above 0 and not below −{MATCH_TOLERANCE})",
            "rows": [" vs ".join(p["rows"]) for p in pairs]}


def zoo_claims(points: pd.DataFrame) -> list[dict]:
    """Part two of the Seed paper page: the same questions asked of the public zoo, computed here
    with intervals on the training-compute axis, same-data where the zoo allows."""
    return [*zoo_match_at_scale(points), *zoo_multiplier(points), scaling_law_on_the_zoo(points),
            zoo_convnext_vs_swin(points)]


def claims(reference: pd.DataFrame, points: pd.DataFrame | None = None) -> list[dict]:
    """The paper's claims from its own rows; with the zoo's points, the zoo's answers too."""
    return paper_claims(reference) + (zoo_claims(points) if points is not None else [])


def figure_points(reference: pd.DataFrame) -> pd.DataFrame:
    """The paper's figure: ImageNet top-1 error against pre-training compute, NFNets and ViTs as
    two series, with the y domain padded to cover every point on a log axis."""
    seed = reference[(reference["compute_unit"] == "tpu_v4_core_hours") & reference["imagenet_top1"].notna()
                     & reference["compute_value"].notna()].copy()
    seed["error"] = 100 - seed["imagenet_top1"]
    seed["series"] = seed["model"].map(lambda m: "NFNet" if m.startswith("NFNet") else
                                       ("ViT" if m.startswith(("ViT", "SoViT")) else "other"))
    return seed.reset_index(drop=True)


def log_domain(values: pd.Series, pad: float = 0.15) -> list[float]:
    """A log-axis domain that covers every value with a margin (a fraction of the log range,
    at least 2% of the value), so no point sits on or beyond the chart's edge."""
    import math
    low, high = math.log10(values.min()), math.log10(values.max())
    margin = max((high - low) * pad, 0.01)
    return [10 ** (low - margin), 10 ** (high + margin)]


def core_hours_to_flops(core_hours, utilisation: float = DEFAULT_UTILISATION):
    """TPU-v4 core hours as training FLOPs: hours × 3600 s × a core's bf16 peak × utilisation."""
    return core_hours * 3600 * TPU_V4_CORE_PEAK_FLOPS * utilisation


def on_training_axis(reference: pd.DataFrame, zoo: pd.DataFrame, utilisation: float = DEFAULT_UTILISATION) -> pd.DataFrame:
    """The paper's NFNet and ViT points (pre-training TPU-v4 core hours converted to FLOPs) beside
    the zoo's ConvNets and ViTs with an estimated training compute (`zoo`: points on the
    train_flops axis for imagenet.top1), ImageNet top-1 error on both."""
    paper = figure_points(reference)
    paper = paper[paper["series"] != "other"]
    paper = pd.DataFrame({"name": paper["model"], "train_flops": core_hours_to_flops(paper["compute_value"], utilisation),
                          "error": paper["error"], "series": "paper: " + paper["series"],
                          "source": paper["source"]})
    zoo = zoo[zoo["arch_class"].isin(["ConvNet", "ViT"])]
    zoo = pd.DataFrame({"name": zoo["checkpoint"], "train_flops": zoo["cost"], "error": 100 - zoo["quality"],
                        "series": "zoo: " + zoo["arch_class"], "source": zoo["source"]})
    return pd.concat([zoo, paper], ignore_index=True)
