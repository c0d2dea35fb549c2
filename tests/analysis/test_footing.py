"""The footing of a verdict on the training-compute axis (issue 33): the estimates check and the
coverage check, each planted where it flips and where it holds, computed like the verdict."""
import pandas as pd

from engine.analysis import budget_match, footing

BUDGET = 1e19


def points(rows) -> pd.DataFrame:
    """(class, quality, cost, low, high) rows as analysis points on the training-compute axis."""
    frame = pd.DataFrame(rows, columns=["arch_class", "quality", "cost", "cost_low", "cost_high"])
    return frame.assign(checkpoint=[f"{c.lower()}_{i}.x" for i, c in enumerate(frame["arch_class"])],
                        source="published", quality_metric="imagenet.top1", cost_metric="train_flops")


def clear_vit_lead(extra=()):
    vits = [("ViT", 85 + i / 5, 2e18, 1.8e18, 2.2e18) for i in range(6)]
    convnets = [("ConvNet", 80 + i / 5, 2e18, 1.8e18, 2.2e18) for i in range(6)]
    return points(vits + convnets + list(extra))


def reported(frame):
    [row] = budget_match.budget_table(frame, "imagenet.top1", [BUDGET])
    return row["gaps"]["ViT-ConvNet"]


def test_a_verdict_far_from_every_range_holds_both_checks():
    frame = clear_vit_lead()
    gap = reported(frame)
    assert gap["verdict"] == "lead" and gap["leader"] == "ViT"
    unestimated = points([("ConvNet", 70.0, 5e19, 5e19, 5e20)])  # even at 100 epochs, above the budget
    found = footing.footing(frame, unestimated, "imagenet.top1", BUDGET, gap, "ViT")
    assert found["estimates_check"] == {"state": "holds", "reason": "holds within every estimate's range"}
    assert found["coverage_check"]["state"] == "holds"
    assert found["coverage_check"]["reason"] == "holds with the 1 unestimated checkpoints at 100–1,000 epochs"


def test_the_estimates_check_flips_when_a_range_straddles_the_budget():
    # a strong ConvNet estimated just above the budget, its range reaching under it
    frame = clear_vit_lead([("ConvNet", 90.0, 1.2e19, 0.8e19, 1.5e19)])
    gap = reported(frame)
    assert gap["leader"] == "ViT"  # at the point estimates it is out
    found = footing.footing(frame, None, "imagenet.top1", BUDGET, gap, "ViT")
    check = found["estimates_check"]
    assert check["state"] == "could change"
    assert "every ConvNet estimate at its low end" in check["reason"] and "no clear winner" in check["reason"]
    # the same ConvNet with a narrow range: the verdict holds
    narrow = clear_vit_lead([("ConvNet", 90.0, 1.2e19, 1.1e19, 1.3e19)])
    assert footing.footing(narrow, None, "imagenet.top1", BUDGET, reported(narrow), "ViT")[
        "estimates_check"]["state"] == "holds"


def test_the_coverage_check_flips_when_unestimated_checkpoints_could_be_cheap_enough():
    frame = clear_vit_lead()
    gap = reported(frame)
    strong = points([("ConvNet", 91.0, 3e18, 3e18, 3e19), ("ConvNet", 90.0, 4e18, 4e18, 4e19)])
    found = footing.footing(frame, strong, "imagenet.top1", BUDGET, gap, "ViT")
    check = found["coverage_check"]
    assert check["state"] == "could change" and check["unestimated"] == {"ConvNet": 2}
    assert "if the unestimated ConvNets (`convnet_0.x`, `convnet_1.x`) trained about 100 epochs" in check["reason"]
    assert "ConvNet leads" in check["reason"] or "no clear winner" in check["reason"]
    # estimates untouched by the unestimated ones
    assert found["estimates_check"]["state"] == "holds"


def test_add_footing_writes_both_checks_into_every_gap_and_says_them_in_one_sentence():
    frame = clear_vit_lead([("Hybrid", 84 + i / 5, 2e18, 1e18, 4e18) for i in range(6)])
    rows = budget_match.budget_table(frame, "imagenet.top1", [2.5e18, BUDGET])
    footing.add_footing(rows, frame, None, "imagenet.top1")
    assert all(set(gap) >= {"estimates_check", "coverage_check"} for row in rows for gap in row["gaps"].values())
    # at 2.5e18 the Hybrids' ranges (up to 4e18) leave them all above the budget at their dear end
    hybrid = rows[0]["gaps"]["Hybrid-ConvNet"]
    assert hybrid["estimates_check"]["state"] == "could change" and "too few" in hybrid["estimates_check"]["reason"]
    text = footing.footing_text(rows[1]["gaps"]["ViT-ConvNet"])
    assert text.startswith("holds within every estimate's range; ")

