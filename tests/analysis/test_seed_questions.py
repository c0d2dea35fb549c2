"""The seed's questions in its own forms: the compute multiplier at equal accuracy, the
pre-training objective as a dimension, and what pre-training buys each class. Planted answers
first, then the CLI on the real published data."""
import json

import numpy as np
import pandas as pd
import pytest

from engine.__main__ import main
from engine.analysis import multiplier, points_table, pretraining
from engine.catalog import objectives


def planted(rows) -> pd.DataFrame:
    """rows: (checkpoint, arch_class, cost, quality)."""
    frame = pd.DataFrame(rows, columns=["checkpoint", "arch_class", "cost", "quality"])
    return frame.assign(source="published", quality_metric="imagenet.top1", cost_metric="train_flops")


def curve(prefix: str, arch_class: str, scale: float, n: int = 60) -> list[tuple]:
    """A class whose quality rises with log cost; `scale` multiplies every cost."""
    cost = np.geomspace(1e18, 1e21, n)
    return [(f"{prefix}{i}", arch_class, c * scale, 60 + 8 * np.log10(c / 1e18)) for i, c in enumerate(cost)]


def test_a_class_that_needs_twice_the_compute_is_found_at_2x_with_an_interval_excluding_1x():
    points = planted(curve("c", "ConvNet", 1.0) + curve("v", "ViT", 2.0))
    rows = multiplier.multiplier_table(points, "imagenet.top1", [66, 72, 78])
    for row in rows:
        r = row["ratios"]["ViT/ConvNet"]
        assert r["ratio"] == pytest.approx(2.0)
        assert 1 < r["ci_low"] <= r["ratio"] <= r["ci_high"]
        assert r["verdict"] == "lead" and r["cheaper"] == "ConvNet"
        assert row["cheapest"]["ConvNet"]["quality"] >= row["level"] and row["cheapest"]["ViT"]["quality"] >= row["level"]
    said = multiplier.sentences(rows, what="% ImageNet top-1", cost_label="training compute")
    assert said == [f"to reach 66 to 78% ImageNet top-1, ViTs need {multiplier.ratio_text(rows[0]['ratios']['ViT/ConvNet'])} "
                    f"at 66 to {multiplier.ratio_text(rows[-1]['ratios']['ViT/ConvNet'])} at 78 the training compute "
                    "of ConvNets (ConvNets are cheaper)"]


def test_a_tie_holds_1x_and_too_few_gives_no_verdict():
    tie = planted(curve("c", "ConvNet", 1.0) + curve("v", "ViT", 1.0))
    [row] = multiplier.multiplier_table(tie, "imagenet.top1", [70])
    r = row["ratios"]["ViT/ConvNet"]
    assert r["ratio"] == 1 and r["ci_low"] < 1 < r["ci_high"] and r["verdict"] == "no clear winner"
    assert r["cheaper"] is None
    # three ViTs reach the level: a ratio, its interval, and no verdict
    few = planted(curve("c", "ConvNet", 1.0) + curve("v", "ViT", 2.0)[-3:])
    [row] = multiplier.multiplier_table(few, "imagenet.top1", [70])
    r = row["ratios"]["ViT/ConvNet"]
    assert r["verdict"] == "too few" and r["n"] == {"ViT": 3, "ConvNet": 35}
    assert r["ci_low"] <= r["ratio"] <= r["ci_high"]
    assert multiplier.verdict_label(r, "ViT", "ConvNet") == "n = 3: too few"
    assert "too few to judge (ViTs n = 3 reach it" in multiplier.sentences([row])[0]


def test_every_multiplier_interval_holds_its_estimate_and_no_seed_moves_it():
    rng = np.random.default_rng(3)
    rows = [(f"c{i}", "ConvNet", 10 ** rng.uniform(18, 21), rng.uniform(60, 85)) for i in range(40)]
    rows += [(f"v{i}", "ViT", 10 ** rng.uniform(18, 21), rng.uniform(60, 85)) for i in range(25)]
    points = planted(rows)
    table = multiplier.multiplier_table(points, "imagenet.top1", list(range(60, 86)))
    assert table == multiplier.multiplier_table(points.sample(frac=1, random_state=1), "imagenet.top1",
                                                list(range(60, 86)))  # exact: row order and no seed matter
    checked = 0
    for row in table:
        for r in row["ratios"].values():
            assert r["ci_low"] <= r["ratio"] <= r["ci_high"]
            checked += 1
    assert checked > 15


def test_levels_junk_and_unreachable_are_refused_naming_what_is_available():
    points = planted(curve("c", "ConvNet", 1.0) + curve("v", "ViT", 2.0))
    with pytest.raises(points_table.AnalysisError, match=r"'7o' is not one.*Best reached: ConvNet 84.00, ViT 84.00"):
        multiplier.parse_levels("60,7o", points, "imagenet.top1")
    with pytest.raises(points_table.AnalysisError, match=r"No class reaches 95 in imagenet.top1. Best reached"):
        multiplier.check_levels(points, "imagenet.top1", [80, 95])
    assert multiplier.parse_levels("80, 70", points, "imagenet.top1") == [70, 80]
    default = multiplier.parse_levels(None, points, "imagenet.top1")
    assert default == [60, 65, 70, 75, 80]  # every 5 points that both classes reach


@pytest.mark.parametrize("arch, tag, stages, expected", [
    ("vit_base_patch16_224", "mae", None, "masked image modelling"),
    ("convnextv2_base", "fcmae", None, "masked image modelling"),
    ("vit_small_patch16_224", "dino", None, "self-distillation"),
    ("vit_base_patch14_dinov2", "lvd142m", None, "self-distillation"),
    ("vit_base_patch16_clip_224", "laion2b", None, "image-text contrastive"),
    ("resnet50_clip_gap", "openai", None, "image-text contrastive"),
    ("tf_efficientnet_b0", "ns_jft_in1k", None, "semi-supervised pseudo-labels"),
    ("resnet50", "tv_in1k", None, "unknown"),
    ("madeup_net", "madeup_in1k", None, "unknown"),
    # a sourced recipe wins over the tag: the last pre-training stage's objective
    ("tf_efficientnet_b7", "ns_jft_in1k", json.dumps([
        {"kind": "pretrain", "objective": "supervised"}, {"kind": "pretrain", "objective": "semi_supervised"}]),
     "semi-supervised pseudo-labels"),
    ("convnextv2_base", "fcmae_ft_in22k_in1k", [
        {"kind": "pretrain", "objective": "mim_full"}, {"kind": "intermediate", "objective": "supervised"},
        {"kind": "finetune", "objective": "supervised"}], "masked image modelling"),
    ("resnet50", "a1_in1k", [{"kind": "pretrain", "objective": "supervised"}], "supervised"),
    # an unknown parent (a pre-training stage with no objective) falls back to the tag
    ("vit_base_patch16_clip_224", "laion2b_ft_in1k", [{"kind": "pretrain", "objective": None},
                                                      {"kind": "finetune", "objective": "supervised"}],
     "image-text contrastive"),
])
def test_objective_from_the_recipe_else_the_tag_else_unknown(arch, tag, stages, expected):
    assert objectives.objective(arch, tag, stages) == expected


def test_every_catalog_checkpoint_gets_an_objective_and_the_image_text_zoo_is_contrastive(full_db):
    from engine.store import Store
    points = points_table.assemble_points(Store(full_db).analysis_inputs())
    assert set(points["objective"].dropna()) <= set(objectives.OBJECTIVES)
    assert set(points.loc[points["zoo"] == "image-text", "objective"]) == {"image-text contrastive"}
    inputs = Store(full_db).analysis_inputs()["objectives"].set_index("checkpoint")
    row = inputs.loc["convnextv2_base.fcmae_ft_in22k_in1k"]
    assert objectives.objective(row["arch"], row["tag"], row["stages"]) == "masked image modelling"
    assert objectives.from_stages(row["stages"]) == "masked image modelling"  # from its recipe, not its tag


def pair_points(rows) -> pd.DataFrame:
    """rows: (checkpoint, arch, arch_class, pretrain_data, objective, quality)."""
    frame = pd.DataFrame(rows, columns=["checkpoint", "arch", "arch_class", "pretrain_data", "objective", "quality"])
    return frame.assign(img_size=224, cost=1.0, source="published", quality_metric="imagenet.top1",
                        cost_metric="gflops")


def test_pairs_by_architecture_give_each_class_its_gain_and_the_difference():
    rows = []
    for i, (vit_gain, conv_gain) in enumerate([(3.0, 1.0), (3.5, 0.8), (2.5, 1.2), (3.2, 1.1)]):
        rows += [(f"vit_{i}.in1k", f"vit_{i}", "ViT", "ImageNet-1k", "supervised", 80),
                 (f"vit_{i}.in1k_b", f"vit_{i}", "ViT", "ImageNet-1k", "supervised", 79),  # the best tag counts
                 (f"vit_{i}.in21k_ft_in1k", f"vit_{i}", "ViT", "ImageNet-21k", "supervised", 80 + vit_gain),
                 (f"conv_{i}.in1k", f"conv_{i}", "ConvNet", "ImageNet-1k", "supervised", 82),
                 (f"conv_{i}.in22k_ft_in1k", f"conv_{i}", "ConvNet", "ImageNet-21k", "supervised", 82 + conv_gain)]
    rows += [("vit_0_clip.laion2b_ft_in1k", "vit_base_patch16_clip_224", "ViT", "LAION-2B", "image-text contrastive",
              85.0),
             ("vit_base_patch16_224.augreg_in1k", "vit_base_patch16_224", "ViT", "ImageNet-1k", "supervised", 79.0),
             ("conv_0.mystery", "conv_0", "ConvNet", "ImageNet-21k", "unknown", 90.0)]
    result = pretraining.pretraining(pair_points(rows), "imagenet.top1")
    by_label = {r["pretraining"]: r for r in result["gains"]}
    in21k = by_label["ImageNet-21k, supervised"]
    assert in21k["classes"]["ViT"]["n_pairs"] == 4 and in21k["classes"]["ViT"]["mean_gain"] == pytest.approx(3.05)
    assert in21k["classes"]["ConvNet"]["mean_gain"] == pytest.approx(1.025)
    assert in21k["classes"]["ViT"]["ci_low"] < 3.05 < in21k["classes"]["ViT"]["ci_high"]
    diff = in21k["differences"]["ViT-ConvNet"]
    assert diff["difference"] == pytest.approx(2.025) and diff["ci_low"] > 0 and diff["verdict"] == "ViTs gain more"
    # timm's CLIP ViT-B/16 is ViT-B/16: paired with its ImageNet-1k baseline, one pair: no interval
    clip = by_label["LAION-2B, image-text contrastive"]["classes"]["ViT"]
    assert clip["n_pairs"] == 1 and clip["mean_gain"] == pytest.approx(6.0) and clip["ci_low"] is None
    assert pretraining.network("vit_base_patch16_clip_224") == "vit_base_patch16_224"
    assert pretraining.network("resnet50_clip") == "resnet50_clip"  # a different network keeps its name
    # an unknown objective is left out and counted
    assert result["n_left_out_unknown_objective"] == 1
    pair = next(p for p in result["pairs"] if p["checkpoint"] == "vit_0.in21k_ft_in1k")
    assert pair["baseline_checkpoint"] == "vit_0.in1k" and pair["gain"] == pytest.approx(3.0)
    assert result["sentences"][0].startswith("from ImageNet-1k, supervised to ImageNet-21k, supervised: ViTs gain "
                                             "+3.05 [")
    with pytest.raises(points_table.AnalysisError, match="No architecture here has both"):
        pretraining.pretraining(pair_points(rows[:1]), "imagenet.top1")


def run_json(capsys, *args) -> dict:
    assert main(["analyze", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_multiplier_pretraining_and_objective_on_the_published_data(full_db, monkeypatch, capsys):
    monkeypatch.setenv("MATCHUP_DB", str(full_db))
    out = run_json(capsys, "multiplier", "--cost", "train_flops", "--quality", "zeroshot:imagenet1k.top1",
                   "--pretrain-data", "LAION-2B", "--levels", "70")
    assert out["pretrain_data"] == "LAION-2B"
    [row] = out["levels"]
    r = row["ratios"]["ViT/ConvNet"]
    assert row["cheapest"]["ConvNet"]["checkpoint"] == "open_clip:convnext_base_w.laion2b_s13b_b82k"
    assert r["ratio"] == pytest.approx(row["cheapest"]["ViT"]["cost"] / row["cheapest"]["ConvNet"]["cost"])
    assert r["ci_low"] <= r["ratio"] <= r["ci_high"]
    out = run_json(capsys, "multiplier", "--cost", "gflops", "--quality", "imagenet.top1", "--levels", "80")
    assert out["pretrain_data"].startswith("mixed pre-training data")
    out = run_json(capsys, "pretraining", "--quality", "imagenet.top1")
    gains = {g["pretraining"]: g for g in out["gains"]}
    assert {"ViT", "ConvNet"} <= set(gains["ImageNet-21k, supervised"]["classes"])
    assert all(p["checkpoint"] and p["baseline_checkpoint"] for p in out["pairs"])
    out = run_json(capsys, "when", "--cost", "gflops", "--quality", "imagenet.top1", "--by", "objective",
                   "--budgets", "10")
    assert {"supervised"} <= {c["group"] for c in out["cells"]}
    out = run_json(capsys, "budget", "--cost", "gflops", "--quality", "imagenet.top1", "--budgets", "100",
                   "--objective", "masked image modelling")
    assert out["budgets"][0]["best"]  # masked-modelling checkpoints only
    for args, said in ((["multiplier", "--levels", "70,x"], "'x' is not one"),
                       (["multiplier", "--levels", "99.9"], "No class reaches 99.9"),
                       (["budget", "--budgets", "10", "--pretrain-data", "LAION-9B"], "--pretrain-data 'LAION-9B'"),
                       (["budget", "--budgets", "10", "--objective", "mae"], "available: supervised")):
        assert main(["analyze", *args, "--cost", "gflops", "--quality", "imagenet.top1"]) != 0
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    # robustness reads the same filters: restricted to one source, and a source it lacks refused
    out = run_json(capsys, "robustness", "--quality", "imagenet-r.top1", "--pretrain-data", "ImageNet-21k")
    assert out["checkpoints"] and {c["pretrain_data"] for c in out["checkpoints"]} == {"ImageNet-21k"}
    assert main(["analyze", "robustness", "--quality", "imagenet-r.top1", "--pretrain-data", "LAION-9B"]) != 0
    err = capsys.readouterr().err
    assert "--pretrain-data 'LAION-9B'" in err and "available: " in err and len(err.strip().splitlines()) == 1
