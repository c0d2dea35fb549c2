"""Training compute over each checkpoint's lineage, counted as executed, as a range (issue 33):
on the real catalog and recipes, and on planted recipes for the rules and the bad inputs."""
import json
import math

import pandas as pd
import pytest

from engine.catalog import lineage, training_compute as tc, training_ranges as tr


@pytest.fixture(scope="module")
def estimates(catalog_db) -> dict[str, dict]:
    from engine.store import Store
    frame = Store(catalog_db).training_compute_frame()
    rows = {}
    for row in frame.to_dict("records"):
        row["stages"] = json.loads(row["stages"]) if isinstance(row["stages"], str) else []
        row["lineage"] = json.loads(row["lineage"]) if isinstance(row["lineage"], str) else []
        rows[row["checkpoint"]] = row
    return rows


@pytest.fixture(scope="module")
def counted(catalog_db):
    from engine.store import Store
    return tc.forward_table(Store(catalog_db).training_compute_inputs()["compute"])


# -- lineage on the real catalog ------------------------------------------------------------------------
def test_a_pretrained_checkpoint_is_its_fine_tuned_childs_pretraining(estimates):
    for parent, child in (("tf_efficientnetv2_xl.in21k", "tf_efficientnetv2_xl.in21k_ft_in1k"),
                          ("vit_base_patch16_224.orig_in21k", "vit_base_patch16_224.orig_in21k_ft_in1k")):
        p, c = estimates[parent], estimates[child]
        assert p["train_flops"] == pytest.approx(c["pretrain_flops"], rel=1e-12) and p["complete"]
        assert p["train_flops"] < c["train_flops"] and child in p["lineage"][0]


def test_children_of_one_pretraining_run_share_it(estimates):
    # Swin-B 384's IN-22k pre-training ran the window-7 network at 224: the 224 model's run
    window7, window12 = (estimates[f"swin_base_patch4_{w}.ms_in22k_ft_in1k"]["stages"][0]
                         for w in ("window7_224", "window12_384"))
    assert window12["network"] == "swin_base_patch4_window7_224"
    assert window12["flops"] == pytest.approx(window7["flops"], rel=1e-12)
    assert estimates["swin_base_patch4_window7_224.ms_in22k"]["train_flops"] == pytest.approx(window7["flops"])
    assert estimates["swin_base_patch4_window12_384.ms_in22k"]["train_flops"] == pytest.approx(window7["flops"])
    # BEiT 224 and 384: one MIM pre-training and one IN-22k intermediate stage
    b224, b384 = (estimates[f"beit_base_patch16_{r}.in22k_ft_in22k_in1k"]["stages"] for r in (224, 384))
    assert [s["flops"] for s in b384[:2]] == pytest.approx([s["flops"] for s in b224[:2]], rel=1e-12)


def test_an_open_clip_tower_carries_its_pairs_whole_image_text_training(estimates):
    for tower, pair in (("vit_huge_patch14_clip_224.laion2b", "open_clip:ViT-H-14.laion2b_s32b_b79k"),
                        ("resnet50x64_clip.openai", "open_clip:RN50x64.openai")):
        t, p = estimates[tower], estimates[pair]
        assert (t["train_flops"], t["train_flops_low"], t["train_flops_high"]) == pytest.approx(
            (p["train_flops"], p["train_flops_low"], p["train_flops_high"]), rel=1e-12)
        assert "both towers" in t["lineage"][0] and pair in t["lineage"][0]
    # its fine-tuned child with no source for the fine-tune's length: a lower bound, placed (narrow)
    parent, child = estimates["vit_huge_patch14_clip_224.laion2b"], estimates["vit_huge_patch14_clip_224.laion2b_ft_in1k"]
    assert not child["complete"] and "finetune on imagenet-1k" in child["missing_stages"]
    assert child["placement"] == tr.PLACED_MIDDLE and child["train_flops_low"] == pytest.approx(parent["train_flops_low"])
    upper = child["train_flops_high"] - (parent["train_flops_high"] - parent["train_flops"])  # the points' upper end
    assert child["train_flops"] == pytest.approx(math.sqrt(parent["train_flops"] * upper), rel=1e-9)


def test_image_text_estimates_carry_the_same_ranges_as_the_imagenet_zoos(estimates):
    exact = estimates["open_clip:ViT-B-16.laion2b_s34b_b88k"]  # samples seen from the tag
    assert (exact["train_flops_low"] * 1.1, exact["train_flops_high"] / 1.1) == pytest.approx((exact["train_flops"],) * 2)
    analogy = estimates["open_clip:ViT-SO400M-16-SigLIP-i18n-256.webli"]  # 40B by analogy: ×/÷ 2 on the length, × 1.25
    assert [s["confidence"] for s in analogy["stages"]] == ["assumed"]
    assert (analogy["train_flops_low"] * 2.5, analogy["train_flops_high"] / 2.5) == pytest.approx(
        (analogy["train_flops"],) * 2)


def test_a_recipe_lacking_a_stage_its_tag_names_is_a_lower_bound_not_a_complete_total(estimates):
    for size in (256, 384, 448):
        so150 = estimates[f"vit_so150m2_patch16_reg1_gap_{size}.sbb_e200_in12k_ft_in1k"]
        assert not so150["complete"] and so150["missing_stages"] == "stage 2 (finetune on imagenet-1k)"
        assert so150["train_flops_low"] < so150["pretrain_flops"] < so150["train_flops_high"]
        assert pd.isna(so150["train_flops"]) or so150["train_flops"] > so150["pretrain_flops"]


# -- counted as executed: against hand computations ------------------------------------------------------
def test_the_dall_e_tokenizer_is_counted_by_hand():
    def conv(k, c_in, c_out, side):
        return 2 * k * k * c_in * c_out * side * side
    def block(c_in, c_out, side):  # 3x3, 3x3, 3x3 at a quarter width, 1x1 out, a 1x1 shortcut when widths differ
        h = c_out // 4
        return (conv(3, c_in, h, side) + conv(3, h, h, side) * 2 + conv(1, h, c_out, side)
                + (conv(1, c_in, c_out, side) if c_in != c_out else 0))
    hand = (conv(7, 3, 256, 112) + 2 * block(256, 256, 112) + block(256, 512, 56) + block(512, 512, 56)
            + block(512, 1024, 28) + block(1024, 1024, 28) + block(1024, 2048, 14) + block(2048, 2048, 14)
            + conv(1, 2048, 8192, 14))
    assert tc.dall_e_encoder_flops(112) == hand == 52_118_814_720


def test_beit_swin_and_fcmae_are_counted_as_they_ran(estimates, counted):
    beit = estimates["beit_base_patch16_224.in22k_ft_in22k_in1k"]["stages"][0]
    assert beit["flops_per_sample"] == pytest.approx(3 * counted("beit_base_patch16_224", 224, 1000)
                                                     + tc.dall_e_encoder_flops(112), rel=1e-12)
    assert 1.4 < beit["flops_per_sample"] / (3 * counted("beit_base_patch16_224", 224, 1000)) < 1.6  # a third was missing
    swin = estimates["swin_base_patch4_window12_384.ms_in22k_ft_in1k"]["stages"][0]
    old = 3 * counted("swin_base_patch4_window12_384", 224, 1000)  # the window-12 network at 224: not what ran
    assert swin["flops_per_sample"] == pytest.approx(3 * counted("swin_base_patch4_window7_224", 224, 1000))
    assert 1.4 < old / swin["flops_per_sample"] < 1.6
    # FCMAE dense (every pixel through the encoder) plus its decoder; MAE drops the masked 75%
    fcmae = estimates["convnextv2_base.fcmae_ft_in1k"]["stages"][0]
    assert fcmae["objective"] == "mim_full"
    assert fcmae["flops_per_sample"] == pytest.approx(3 * counted("convnextv2_base", 224, 1000)
                                                      + 3 * tc.decoder_flops("1x512@32", 224), rel=1e-12)


# -- the range and lower-bound rules on planted recipes -------------------------------------------------------
COLUMNS = tc.COLUMNS + tc.OPTIONAL_COLUMNS


def book_of(tmp_path, rows: list[dict]) -> tc.RecipeBook:
    base = {c: "" for c in COLUMNS}
    base.update(stage="1", stage_kind="pretrain", dataset="imagenet-1k", train_res="224", objective="supervised",
                source="a test", confidence="exact")
    path = tmp_path / "recipes.csv"
    pd.DataFrame([{**base, **r} for r in rows], columns=COLUMNS).to_csv(path, index=False)
    return tc.load_recipes(path)


def checkpoints(*ids: str) -> pd.DataFrame:
    return pd.DataFrame([{"checkpoint": i, "arch": i.split(".")[0], "tag": i.split(".")[1], "input_h": 224,
                          "num_classes": 1000} for i in ids])


FORWARD = 4e9  # a planted network: every architecture 4 GFLOPs at every resolution


def flat(arch, res, n):
    return FORWARD


def resolve(tmp_path, rows, ids, links=None, zoo=None):
    book = book_of(tmp_path, rows)
    frame = checkpoints(*ids)
    own = pd.DataFrame([tc.with_tag_stages(c, tc.estimate_one(c, r, flat, book.datasets, book.ranges), flat, book.ranges)
                        if (r := tc.recipe_for(book, c["arch"], c["tag"])) else tc.unknown(c["checkpoint"])
                        for c in frame.to_dict("records")])
    found, refused = lineage.resolve_all(frame, own, book, links or {}, zoo, flat)
    return found.set_index("checkpoint"), refused, book


def test_exact_paper_and_assumed_ranges(tmp_path):
    rows = [{"tag": "a_in1k", "arch_pattern": "net", "epochs": "300"},
            {"tag": "b_in1k", "arch_pattern": "net", "epochs": "300", "confidence": "paper"},
            {"tag": "c_in1k", "arch_pattern": "net", "epochs": "300", "confidence": "assumed"},
            {"tag": "c_in1k", "arch_pattern": "other", "epochs": "100"},  # c's documented sibling: 100 epochs
            {"tag": "d_in1k", "arch_pattern": "net", "epochs": "300", "confidence": "assumed"},
            {"tag": "e_in1k", "arch_pattern": "net", "epochs": "300", "confidence": "assumed", "length_range": "200-600"}]
    found, _, _ = resolve(tmp_path, rows, ["net.a_in1k", "net.b_in1k", "net.c_in1k", "net.d_in1k", "net.e_in1k"])
    point = 3 * FORWARD * 1_281_167 * 300
    ranges = {k: (found.at[k, "train_flops_low"] / point, found.at[k, "train_flops_high"] / point) for k in found.index}
    assert ranges["net.a_in1k"] == pytest.approx((1 / 1.1, 1.1))  # exact: the convention's spread
    assert ranges["net.b_in1k"] == pytest.approx((1 / 1.25, 1.25))
    assert ranges["net.c_in1k"] == pytest.approx((100 / 300 / 1.25, 1.25))  # over its sibling's 100 epochs
    assert ranges["net.d_in1k"] == pytest.approx((1 / 2 / 1.25, 2 * 1.25))  # nothing to span: ×/÷ 2 on the length
    assert ranges["net.e_in1k"] == pytest.approx((200 / 300 / 1.25, 600 / 300 * 1.25))
    assert all(found.at[k, "train_flops"] == pytest.approx(point) for k in found.index)


def test_a_missing_stage_is_placed_only_where_its_range_is_narrow(tmp_path):
    longest = {"tag": "long_in12k_ft_in1k", "arch_pattern": "ref", "stage": "2", "stage_kind": "finetune",
               "epochs": "50"}
    rows = [{"tag": "long_in12k_ft_in1k", "arch_pattern": "ref", "dataset": "imagenet-12k", "epochs": "90"}, longest,
            {"tag": "big_in12k_ft_in1k", "arch_pattern": "net", "dataset": "imagenet-12k", "epochs": "200"},
            {"tag": "small_in12k_ft_in1k", "arch_pattern": "net", "dataset": "imagenet-12k", "epochs": "2"}]
    found, _, _ = resolve(tmp_path, rows, ["net.big_in12k_ft_in1k", "net.small_in12k_ft_in1k", "ref.long_in12k_ft_in1k"])
    per_sample = 3 * FORWARD
    missing_high = per_sample * 1_281_167 * 50  # the longest documented IN-1k fine-tune after other data
    big, small = found.loc["net.big_in12k_ft_in1k"], found.loc["net.small_in12k_ft_in1k"]
    known = per_sample * 12_129_687 * 200
    assert not big["complete"] and big["placement"] == tr.PLACED_MIDDLE
    assert big["train_flops"] == pytest.approx(math.sqrt(known * (known + missing_high)))
    assert big["train_flops_low"] == pytest.approx(known / 1.1)
    assert big["train_flops_high"] == pytest.approx(known * 1.1 + missing_high)
    # 2 epochs of IN-12k then up to 50 of IN-1k: high > 2 × low, left out of the axis, its bound kept
    assert pd.isna(small["train_flops"]) and small["placement"] == tr.LOWER_BOUND_ONLY
    assert small["train_flops_low"] == pytest.approx(per_sample * 12_129_687 * 2 / 1.1)


def test_the_coverage_bracket_of_a_checkpoint_off_the_axis_never_undercuts_what_it_is_known_to_cost():
    from engine.catalog.training_compute import Dataset, bracket_of
    fact = {"arch": "net", "input_h": 224, "test_h": 224, "num_classes": 1000, "pretrain_data": "ImageNet-1k"}
    data = {"imagenet-1k": Dataset(1_281_167, True)}
    per_epoch = 3 * FORWARD * 1_281_167
    unknown = {"train_flops": None, "train_flops_low": None, "train_flops_high": None}
    assert bracket_of(fact, unknown, flat, data)[:2] == pytest.approx((100 * per_epoch, 1000 * per_epoch))
    placed = {"train_flops": 5.0, "train_flops_low": 4.0, "train_flops_high": 6.0}
    assert bracket_of(fact, placed, flat, data) == (None, None, None)
    wide = {"train_flops": None, "train_flops_low": 10 * per_epoch, "train_flops_high": 50 * per_epoch}
    assert bracket_of(fact, wide, flat, data)[:2] == (10 * per_epoch, 50 * per_epoch)  # its own range
    above = {"train_flops": None, "train_flops_low": 300 * per_epoch, "train_flops_high": None}
    low, high, how = bracket_of(fact, above, flat, data)
    assert (low, high) == pytest.approx((300 * per_epoch, 1000 * per_epoch)) and "known stages" in how


def test_a_missing_fine_tune_is_bounded_by_the_longest_of_either_kind_on_its_dataset():
    rules = tr.RangeRules.from_stages(
        [{"tag": "t", "arch_pattern": "a", "stage": 1, "stage_kind": "pretrain", "dataset": "x", "epochs": 90,
          "samples": None, "confidence": "exact"},
         {"tag": "t", "arch_pattern": "a", "stage": 2, "stage_kind": "intermediate", "dataset": "y", "epochs": 30,
          "samples": None, "confidence": "exact"}], {"x": 10, "y": 100})
    assert rules.longest_for("intermediate", "y")[0] == rules.longest_for("finetune", "y")[0] == 3000
    assert rules.longest_for("finetune", "x")[0] is None  # nothing documented after other data on x


# -- bad input -----------------------------------------------------------------------------------------------
def test_a_lineage_that_loops_is_refused_naming_the_row_and_the_rest_loads(tmp_path):
    rows = [{"tag": "x_in1k", "arch_pattern": "net", "parent": "net.y_in1k", "stage_kind": "finetune", "epochs": "10"},
            {"tag": "y_in1k", "arch_pattern": "net", "parent": "net.x_in1k", "stage_kind": "finetune", "epochs": "10"},
            {"tag": "z_in1k", "arch_pattern": "net", "epochs": "300"}]
    found, refused, _ = resolve(tmp_path, rows, ["net.x_in1k", "net.y_in1k", "net.z_in1k"])
    assert refused and "loops" in refused[0] and "training_recipes.csv" in refused[0]
    assert pd.isna(found.at["net.x_in1k", "train_flops"]) and "loops" in found.at["net.x_in1k", "note"]
    assert found.at["net.z_in1k", "train_flops"] > 0  # the rest of the catalog is loaded


def test_a_child_whose_parent_is_unknown_is_a_lower_bound_said_so(tmp_path):
    rows = [{"tag": "ft_in1k", "arch_pattern": "net", "parent": "net.nowhere", "stage_kind": "finetune", "epochs": "30"},
            {"tag": "in21k_ft_in1k", "arch_pattern": "net", "parent": "net.in21k", "stage_kind": "finetune",
             "epochs": "30"}]
    found, _, _ = resolve(tmp_path, rows, ["net.ft_in1k", "net.in21k_ft_in1k", "net.in21k"])
    for child, parent in (("net.ft_in1k", "net.nowhere"), ("net.in21k_ft_in1k", "net.in21k")):
        row = found.loc[child]
        assert pd.isna(row["train_flops"]) and row["train_flops_low"] > 0 and not row["complete"]
        assert f"parent {parent}" in json.dumps(row["lineage"]) and "lower bound" in row["note"]


def test_an_open_clip_link_without_compute_is_marked_naming_the_pair(tmp_path):
    zoo = pd.DataFrame([tc.unknown("open_clip:M.t", "training compute unknown: the tag states no samples seen")])
    found, _, _ = resolve(tmp_path, [{"tag": "a_in1k", "arch_pattern": "net", "epochs": "3"}],
                          ["net_clip.t", "net.a_in1k"], links={"net_clip.t": "open_clip:M.t"}, zoo=zoo)
    assert pd.isna(found.at["net_clip.t", "train_flops"])
    assert "open_clip:M.t" in found.at["net_clip.t", "note"] and "no training-compute estimate" in found.at["net_clip.t", "note"]


@pytest.mark.parametrize("bad, why", [("600-200", "low > high"), ("0-300", "positive"), ("-5-10", "positive"),
                                      ("ten", "LOW-HIGH")])
def test_a_range_that_cannot_be_is_refused_naming_the_row(tmp_path, bad, why):
    book = book_of(tmp_path, [{"tag": "a_in1k", "arch_pattern": "net", "epochs": "300", "length_range": bad},
                              {"tag": "b_in1k", "arch_pattern": "net", "epochs": "300"}])
    assert len(book.refused) == 1 and "a_in1k" in book.refused[0] and why in book.refused[0]
    assert list(book.by_tag) == ["b_in1k"]


# -- coverage at scale, and the CLI contract ------------------------------------------------------------------
def test_web_scale_has_verdicts_on_training_compute_and_every_budget_row_its_footing(full_db, tmp_path, capsys):
    import shutil
    from engine.__main__ import main
    db = tmp_path / "full.duckdb"
    shutil.copy(full_db, db)
    assert main(["--db", str(db), "analyze", "when", "--cost", "train_flops", "--quality", "imagenet.top1",
                 "--json"]) == 0
    when = json.loads(capsys.readouterr().out)
    web = [c for c in when["cells"] if c["group"] == "≥1B" and c["comparison"] == "ViT − ConvNet"]
    assert any(c["verdict"] not in (None, "too few") for c in web), web  # the seed's own regime can be asked
    assert all({"estimates_check", "coverage_check"} <= set(g) for r in when["footing"] for g in r["gaps"].values())
    assert main(["--db", str(db), "analyze", "budget", "--cost", "train_flops", "--quality", "imagenet.top1",
                 "--budgets", "1e19,1e20,1e21,1e22", "--json"]) == 0
    budget = json.loads(capsys.readouterr().out)
    for row in budget["budgets"]:
        for gap in row["gaps"].values():
            for check in ("estimates_check", "coverage_check"):
                assert gap[check]["state"] in ("holds", "could change") and gap[check]["reason"]
    assert main(["--db", str(db), "catalog", "training-compute", "--coverage", "--json"]) == 0
    coverage = pd.DataFrame(json.loads(capsys.readouterr().out)).set_index(["arch_class", "data_scale"])
    assert coverage.loc[("ViT", "≥1B"), "estimated"] >= 20 and coverage.loc[("ConvNet", "≥1B"), "estimated"] >= 15
    assert (coverage["estimated"] <= coverage["checkpoints"]).all()
    # a point placed from a lower bound says so wherever its cost is shown (the charts' tooltips)
    from engine.analysis import points_table
    from engine.store import Store
    points = points_table.assemble_points(Store(db).analysis_inputs())
    shown = points[(points["cost_metric"] == "train_flops")].drop_duplicates("checkpoint").set_index("checkpoint")
    assert shown.at["vit_so150m2_patch16_reg1_gap_448.sbb_e200_in12k_ft_in1k", "cost_range"].endswith(
        "(placed at the middle of a lower bound's range)")
    assert "placed" not in shown.at["tf_efficientnetv2_xl.in21k_ft_in1k", "cost_range"]
