import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.__main__ import main
from engine.analysis import budget_match, pairing, pareto, points_table, scaling_fits
from engine.catalog import timm_models


def make_points(rows, quality="imagenet.top1", cost="gflops"):
    """rows: (checkpoint, arch_class, cost, quality)."""
    frame = pd.DataFrame(rows, columns=["checkpoint", "arch_class", "cost", "quality"])
    return frame.assign(family="f", pretrain_data="ImageNet-1k", data_scale="≈1M", img_size=224,
                        source="published", quality_metric=quality, cost_metric=cost)


# -- planted answers --------------------------------------------------------------------------------
def test_planted_frontier_is_recovered():
    planted = [("c1", "ConvNet", 1, 70), ("c2", "ConvNet", 2, 75), ("c3", "ConvNet", 8, 80)]
    dominated = [("d1", "ConvNet", 2.5, 74), ("d2", "ConvNet", 9, 80), ("d3", "ConvNet", 1, 69.9)]
    vit = [("v1", "ViT", 3, 72), ("v2", "ViT", 5, 71)]
    front = pareto.frontier(make_points(planted + dominated + vit), "imagenet.top1")
    assert front[front.arch_class == "ConvNet"]["checkpoint"].tolist() == ["c1", "c2", "c3"]
    assert front[front.arch_class == "ViT"]["checkpoint"].tolist() == ["v1"]


def test_frontier_of_a_lower_is_better_metric_keeps_the_lowest():
    points = make_points([("a", "ViT", 1, 0.10), ("b", "ViT", 2, 0.05), ("c", "ViT", 3, 0.07)],
                         quality="imagenet.ece")
    assert pareto.frontier(points, "imagenet.ece")["checkpoint"].tolist() == ["a", "b"]


def test_planted_gap_and_its_confidence_interval():
    rng = np.random.default_rng(3)
    costs = np.exp(rng.uniform(0, 4, 60))
    base = 60 + 5 * np.log(costs)
    rows = [(f"c{i}", "ConvNet", c, q) for i, (c, q) in enumerate(zip(costs, base))]
    rows += [(f"v{i}", "ViT", c, q + 2.0) for i, (c, q) in enumerate(zip(costs, base))]
    [row] = budget_match.budget_table(make_points(rows), "imagenet.top1", [20.0], n_boot=1000, seed=1)
    gap = row["gaps"]["ViT-ConvNet"]
    assert gap["gap"] == pytest.approx(2.0)  # 2.0 planted, up to the rounding of q + 2.0 - q
    assert gap["ci_low"] <= gap["gap"] <= gap["ci_high"] and gap["n_boot"] == 1000
    assert row["winner"] == "ViT"
    again = budget_match.budget_table(make_points(rows), "imagenet.top1", [20.0], n_boot=1000, seed=1)
    assert again[0]["gaps"] == row["gaps"]  # seeded: reproducible


def test_planted_exponent_is_recovered_within_2_percent():
    rng = np.random.default_rng(0)
    cost = np.exp(rng.uniform(0, 6, 40))
    error = 30 * cost ** -0.25 * np.exp(rng.normal(0, 0.01, 40))
    points = make_points([(f"m{i}", "ConvNet", c, 100 - e) for i, (c, e) in enumerate(zip(cost, error))])
    fit = scaling_fits.fit_power(points, "imagenet.top1", n_boot=1000, seed=0)
    assert fit.b == pytest.approx(-0.25, rel=0.02)
    assert fit.b_ci[0] <= -0.25 <= fit.b_ci[1] and fit.r2 > 0.99


def test_saturating_law_recovers_its_floor():
    cost = np.geomspace(1, 1e4, 30)
    error = 5 + 20 * cost ** -0.5
    points = make_points([(f"m{i}", "ViT", c, 100 - e) for i, (c, e) in enumerate(zip(cost, error))])
    fit = scaling_fits.fit_saturating(points, "imagenet.top1")
    assert fit["e_inf"] == pytest.approx(5, rel=0.02) and fit["alpha"] == pytest.approx(0.5, rel=0.02)


def test_crossover_of_two_planted_laws_and_none_in_range():
    cost = np.geomspace(1, 1000, 25)
    conv = 100 - 20 * cost ** -0.1          # error 20 c^-0.1
    vit = 100 - 40 * cost ** -0.4          # error 40 c^-0.4: equal where c^0.3 = 2, c = 10.08
    points = make_points([(f"c{i}", "ConvNet", c, q) for i, (c, q) in enumerate(zip(cost, conv))]
                         + [(f"v{i}", "ViT", c, q) for i, (c, q) in enumerate(zip(cost, vit))])
    result = scaling_fits.scaling(points, "imagenet.top1", on="all")
    [cross] = result["crossovers"]
    assert cross["crossover"] == pytest.approx(2 ** (1 / 0.3), rel=0.01)
    assert cross["crossover_ci"][0] <= cross["crossover"] <= cross["crossover_ci"][1]
    assert "ConvNet has the lower error below" in cross["note"]
    drawn = scaling_fits.scaling(points, "imagenet.top1", on="all", curves=True)
    band = drawn["curves"][drawn["curves"]["arch_class"] == "ViT"]
    assert len(band) == 40  # exact planted data: the band closes on the fit
    assert (band["low"] <= band["fit"]).all() and (band["fit"] <= band["high"]).all()  # held by construction
    assert band["fit"].iloc[0] == pytest.approx(40, rel=0.01)  # the planted law at cost 1
    parallel = make_points([(f"c{i}", "ConvNet", c, 100 - 20 * c ** -0.2) for i, c in enumerate(cost)]
                           + [(f"v{i}", "ViT", c, 100 - 10 * c ** -0.21) for i, c in enumerate(cost)])
    [none] = scaling_fits.scaling(parallel, "imagenet.top1", on="all")["crossovers"]
    assert none["crossover"] is None and none["note"] == "no crossover in range"


def test_pairs_match_within_the_tolerance_and_count_wins():
    points = make_points([("v1", "ViT", 10, 80), ("c1", "ConvNet", 10.5, 79),
                          ("v2", "ViT", 100, 85), ("c2", "ConvNet", 125, 86),    # 25% apart: no pair
                          ("v3", "ViT", 50, 82), ("c3", "ConvNet", 48, 83)])
    result = pairing.matched_pairs(points, "imagenet.top1", tolerance=0.10)
    assert result["n_pairs"] == 2 and result["wins"] == {"ViT": 1, "ConvNet": 1, "tie": 0}
    assert {(p["vit"], p["convnet"]) for p in result["pairs"]} == {("v1", "c1"), ("v3", "c3")}


def test_wilson_interval_matches_the_formula():
    low, high = pairing.wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert pairing.wilson_interval(0, 20)[0] == pytest.approx(0.0, abs=1e-12)


def test_unknown_cost_or_empty_selection_is_a_clear_error():
    points = make_points([("a", "ViT", 1, 70)])
    with pytest.raises(points_table.AnalysisError, match="Unknown cost"):
        points_table.select(points, "watts", "imagenet.top1")
    with pytest.raises(points_table.AnalysisError, match="Qualities available with gflops: imagenet.top1"):
        points_table.select(points, "gflops", "sketch.top1")


# -- properties ---------------------------------------------------------------------------------------
point_lists = st.lists(st.tuples(st.sampled_from(["ConvNet", "ViT", "Hybrid"]),
                                 st.floats(0.1, 1000, allow_nan=False), st.floats(0, 100, allow_nan=False)),
                       min_size=1, max_size=40)


def _frame(tuples):
    return make_points([(f"m{i}", c, cost, q) for i, (c, cost, q) in enumerate(tuples)])


@settings(max_examples=60, deadline=None)
@given(point_lists, st.data())
def test_adding_a_dominated_point_never_changes_the_frontier(tuples, data):
    points = _frame(tuples)
    before = pareto.frontier(points, "imagenet.top1")
    anchor = before.iloc[data.draw(st.integers(0, len(before) - 1))]
    extra = make_points([("dominated", anchor["arch_class"], anchor["cost"] * data.draw(st.floats(1.0, 5.0)),
                          anchor["quality"] - data.draw(st.floats(0.01, 10.0)))])
    after = pareto.frontier(pd.concat([points, extra], ignore_index=True), "imagenet.top1")
    assert sorted(after["checkpoint"]) == sorted(before["checkpoint"])


@settings(max_examples=60, deadline=None)
@given(point_lists, st.lists(st.floats(0.1, 2000), min_size=1, max_size=5))
def test_budget_winner_is_on_its_class_frontier_and_bests_never_fall_with_budget(tuples, budgets):
    points = _frame(tuples)
    front = set(pareto.frontier(points, "imagenet.top1")["checkpoint"])
    rows = budget_match.budget_table(points, "imagenet.top1", sorted(budgets), n_boot=20)
    previous = {}
    for row in rows:
        for arch_class, best in row["best"].items():
            # the best under a budget has a frontier point of equal quality at no greater cost
            assert best["checkpoint"] in front or any(
                r.quality == best["quality"] and r.cost <= best["cost"] and r.checkpoint in front
                for r in points[points.arch_class == arch_class].itertuples())
            assert best["quality"] >= previous.get(arch_class, -math.inf)
            previous[arch_class] = best["quality"]
        if row["winner"]:
            assert row["best"][row["winner"]]["quality"] == max(b["quality"] for b in row["best"].values())


# -- the papers' own comparisons -------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference_points():
    return points_table.assemble_points({"reference": timm_models.reference_points_frame()})


def test_convnext_paper_flop_matched_pairs_are_won_by_the_convnet(reference_points):
    points = points_table.select(reference_points, "paper_gflops", "imagenet.top1", sources=["liu2022_convnext"])
    swin_or_convnext = points[points["checkpoint"].str.match(r"(Swin|ConvNeXt)-[TSBLX]+ @")]
    result = pairing.matched_pairs(swin_or_convnext, "imagenet.top1", tolerance=0.10, match_on="pretrain_data")
    assert result["n_pairs"] == 8
    assert result["wins"]["ConvNet"] == result["n_pairs"]


def test_seed_paper_best_of_each_class_at_120k_and_300k_with_too_few_points_for_a_verdict(reference_points):
    points = points_table.select(reference_points, "pretrain_tpu_v4_core_hours", "imagenet.top1")
    at_120k, at_300k = budget_match.budget_table(points, "imagenet.top1", [120_000, 300_000])
    assert at_120k["best"]["ConvNet"]["quality"] in (90.3, 90.4) and at_120k["best"]["ViT"]["quality"] == 90.2
    assert at_300k["best"]["ViT"]["quality"] == 90.45 > at_300k["best"]["ConvNet"]["quality"]
    # a handful of paper rows per class: the estimates stand, but no verdict (issue 21: small n said)
    for row in (at_120k, at_300k):
        gap = row["gaps"]["ViT-ConvNet"]
        assert gap["verdict"] == "too few" and gap["leader"] is None and row["winner"] is None
        assert min(gap["n"].values()) < budget_match.MIN_CHECKPOINTS
        assert budget_match.verdict_label(gap) == f"n = {min(gap['n'].values())}: too few"


def _holds(low, estimate, high):
    """The interval contains its estimate exactly: it is built to, so no tolerance is meant here."""
    return low <= estimate <= high


@pytest.mark.parametrize("data", ["noise-free", "ties"])
def test_every_interval_holds_its_own_estimate(data):
    """Noise-free planted laws collapse the bootstrap onto the estimate, ties collapse it to a
    point; whether a percentile lands an ulp beside the estimate then depends on the processor.
    Budget gaps, scaling fits, bands, crossovers, robustness means and Wilson shares must hold
    their estimate on any processor (issue 27: a crossover CI once missed it by 1 ulp)."""
    from engine.analysis import robustness
    cost = np.geomspace(1, 1000, 25)
    if data == "noise-free":
        conv, vit = 100 - 20 * cost ** -0.1, 100 - 40 * cost ** -0.4
    else:  # every checkpoint of a class equally good, both classes alike: gaps of exactly 0
        conv = vit = np.full(len(cost), 80.0)
    points = make_points([(f"c{i}", "ConvNet", c, q) for i, (c, q) in enumerate(zip(cost, conv))]
                         + [(f"v{i}", "ViT", c, q) for i, (c, q) in enumerate(zip(cost, vit))])
    for seed in range(5):
        for row in budget_match.budget_table(points, "imagenet.top1", [1, 3.3, 10.08, 100, 1000], n_boot=400, seed=seed):
            for gap in row["gaps"].values():
                assert _holds(gap["ci_low"], gap["gap"], gap["ci_high"])
        if data == "noise-free":
            scaled = scaling_fits.scaling(points, "imagenet.top1", on="all", seed=seed, curves=True)
            for fit in scaled["fits"].values():
                assert _holds(fit["b_ci"][0], fit["b"], fit["b_ci"][1])
            curves = scaled["curves"]
            assert (curves["low"] <= curves["fit"]).all() and (curves["fit"] <= curves["high"]).all()
            [cross] = scaled["crossovers"]
            assert _holds(cross["crossover_ci"][0], cross["crossover"], cross["crossover_ci"][1])
    values = np.full(7, 1.7) if data == "ties" else np.linspace(-1, 1, 7) ** 3
    mean, low, high = robustness._mean_ci(values, 300, np.random.default_rng(0))
    assert _holds(low, mean, high)
    for wins, n in ((0, 20), (20, 20), (7, 7), (3, 9)):
        low, high = pairing.wilson_interval(wins, n)
        assert _holds(low, wins / n, high) and 0 <= low and high <= 1


# -- the CLI on the published data --------------------------------------------------------------------
def test_analyze_budget_cli_on_published_data(shared_results, catalog_db, tmp_path, capsys):
    import shutil
    db = tmp_path / "m.duckdb"
    shutil.copy(catalog_db, db)
    assert main(["--db", str(db), "catalog", "import", str(shared_results)]) == 0
    capsys.readouterr()
    assert main(["--db", str(db), "analyze", "budget", "--cost", "gflops", "--quality", "imagenet.top1",
                 "--budgets", "1,5,20,100", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [b["budget"] for b in payload["budgets"]] == [1, 5, 20, 100]
    for row in payload["budgets"]:
        assert row["winner"] in (*points_table.CLASSES, None)
        if row["winner"] not in (None, "ConvNet"):  # a named winner leads ConvNets with a CI above 0
            assert row["gaps"][f"{row['winner']}-ConvNet"]["ci_low"] > 0
        for gap in row["gaps"].values():
            assert gap["ci_low"] <= gap["gap"] <= gap["ci_high"]
    assert "ViT-ConvNet" in payload["budgets"][-1]["gaps"]
    assert all(b["best"]["ConvNet"]["checkpoint"].split("_")[0] != "test" for b in payload["budgets"])


@pytest.mark.parametrize("costs", [[0.0485, 3849.0], [1.0, 1.0], [0.05], [0.999, 12.01, 99.5], [2.5e-4, 7.0]])
def test_budget_grid_admits_the_cheapest_and_every_point(costs):
    """Rounding budgets for display must not leave the cheapest point outside the lowest budget
    or the dearest outside the highest (a one-checkpoint view showed an empty table)."""
    budgets = budget_match.log_budgets(pd.DataFrame({"cost": costs}))
    assert budgets == sorted(budgets)
    assert min(costs) <= budgets[0] <= min(costs) * 1.1
    assert budgets[-1] >= max(costs)


def test_analyze_on_the_ms_per_image_axis_picks_the_newest_plain_benchmark_file(full_db, tmp_path, capsys):
    """The published-benchmark query must bind on every supported DuckDB (2.0 rejected an ORDER BY
    on columns GROUP BY ALL did not group), and the default device is the newest plain AMP file."""
    import shutil
    from engine.store import Store
    db = tmp_path / "m.duckdb"
    shutil.copy(full_db, db)
    sources = Store(db).published_benchmark_sources()
    assert len(sources) == 20 and sources["n_rows"].min() > 900
    first = sources.iloc[0]
    assert (not first["compiled"], first["layout"], first["precision"]) == (True, "nchw", "amp")
    assert main(["--db", str(db), "analyze", "frontier", "--cost", "ms_per_img", "--quality",
                 "imagenet.top1", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["bench_source"] == first["source_file"]
    assert payload["n_points"] > 500


def test_no_winner_where_the_lead_is_inside_the_noise():
    """A Hybrid ahead by a third of a point at a budget with a CI across 0 (the Budget page once
    named it the winner while the Overview said no clear winner): no winner; a clear gap: winner."""
    rng = np.random.default_rng(7)
    rows = [(f"c{i}", "ConvNet", c, 80 + rng.normal(0, 1.0)) for i, c in enumerate(np.geomspace(1, 16, 12))]
    rows += [(f"h{i}", "Hybrid", c, 80.3 + rng.normal(0, 1.0)) for i, c in enumerate(np.geomspace(1, 16, 12))]
    [row] = budget_match.budget_table(make_points(rows), "imagenet.top1", [16], n_boot=500)
    gap = row["gaps"]["Hybrid-ConvNet"]
    assert gap["ci_low"] < 0 < gap["ci_high"] and gap["leader"] is None
    assert row["winner"] is None
    clear = [(name, arch_class, cost, quality + (5 if arch_class == "Hybrid" else 0))
             for name, arch_class, cost, quality in rows]
    [row] = budget_match.budget_table(make_points(clear), "imagenet.top1", [16], n_boot=500)
    assert row["winner"] == "Hybrid" and row["gaps"]["Hybrid-ConvNet"]["leader"] == "Hybrid"


# -- verdicts a researcher can quote (issue 21) -------------------------------------------------------
def test_the_exact_bootstrap_of_the_best_under_a_budget_equals_resampling():
    """best_distribution weights every resample exactly; a brute-force resampling of the same
    checkpoints agrees on the quantiles and the tail at 0 within Monte-Carlo error."""
    rng = np.random.default_rng(0)
    cost_c, quality_c = rng.uniform(0, 10, 30), rng.normal(80, 2, 30)
    cost_v, quality_v = rng.uniform(0, 10, 25), rng.normal(80.5, 2, 25)
    dist = budget_match.GapDistribution.of(budget_match.best_distribution(cost_v, quality_v, 6.0),
                                       budget_match.best_distribution(cost_c, quality_c, 6.0))
    n = 100_000

    def resampled_best(cost, quality):
        pick = rng.integers(0, len(cost), (n, len(cost)))
        return np.where(cost[pick] <= 6.0, quality[pick], -np.inf).max(axis=1)
    v, c = resampled_best(cost_v, quality_v), resampled_best(cost_c, quality_c)
    diff = (v - c)[np.isfinite(v) & np.isfinite(c)]
    for p in (0.025, 0.5, 0.975):
        assert dist.quantile(p) == pytest.approx(np.quantile(diff, p, method="inverted_cdf"), abs=0.3)
    assert dist.at_or_below(0.0) == pytest.approx((diff <= 0).mean(), abs=0.005)


def test_borderline_where_a_tail_at_zero_is_within_monte_carlo_error_of_2_5_percent():
    delta = budget_match.MC_Z * math.sqrt(0.025 * 0.975 / budget_match.N_BOOT)

    def verdict(p_below_zero):  # a gap of -1 with probability p, else +1
        dist = budget_match.GapDistribution(np.array([-1.0, 1.0]), np.array([p_below_zero, 1.0]))
        return budget_match.gap_verdict(dist, 1.0, 20, 20, "ViT", "ConvNet")
    assert verdict(0.025 - 1.5 * delta)["verdict"] == "lead" and verdict(0.025 - 1.5 * delta)["leader"] == "ViT"
    for p in (0.025 - 0.5 * delta, 0.025, 0.025 + 0.5 * delta):
        assert verdict(p)["verdict"] == "borderline" and verdict(p)["leader"] is None
    assert verdict(0.025 + 1.5 * delta)["verdict"] == "no clear winner"
    assert verdict(0.2)["p_gap_le_0"] == pytest.approx(0.2)
    entry = verdict(0.025)
    assert budget_match.verdict_label(entry) == "borderline"
    rows = [{"budget": 10.0, "gaps": {"ViT-ConvNet": {**entry, "budget": 10.0}}}]
    assert budget_match.verdict(rows, unit=" GFLOPs")[0].startswith("up to 10 GFLOPs: borderline, a bound within "
                                                                 "Monte-Carlo error of 0 (ViT − ConvNet +1.00 [")


def test_too_few_checkpoints_get_no_verdict_and_say_so():
    rows = [(f"c{i}", "ConvNet", 1 + i, 70 + i) for i in range(10)]
    rows += [("v0", "ViT", 2, 90.0), ("v1", "ViT", 3, 91.0), ("v2", "ViT", 9, 89.0)]  # far ahead, but 3
    [row] = budget_match.budget_table(make_points(rows), "imagenet.top1", [10])
    gap = row["gaps"]["ViT-ConvNet"]
    assert gap["verdict"] == "too few" and gap["leader"] is None and gap["n"] == {"ViT": 3, "ConvNet": 10}
    assert gap["ci_low"] > 0  # the interval is still reported, only the verdict is withheld
    assert row["winner"] is None and row["winner_verdict"] == "too few"
    assert budget_match.verdict_label(gap) == "n = 3: too few"
    [sentence] = budget_match.verdict([row], unit=" GFLOPs")
    assert sentence == "up to 10 GFLOPs: too few to judge (ViTs n = 3; a verdict needs 5 of each)"
    from engine.analysis import robustness
    frame = pd.DataFrame({"arch_class": ["ViT"] * 2 + ["ConvNet"] * 6, "effective_robustness": np.arange(8.0)})
    by_class = {r["arch_class"]: r for r in robustness.summary(frame, ["arch_class"])}
    assert by_class["ViT"]["too_few"] and math.isnan(by_class["ViT"]["ci_low"]) and by_class["ViT"]["n"] == 2
    assert not by_class["ConvNet"]["too_few"] and by_class["ConvNet"]["ci_low"] < by_class["ConvNet"]["mean"]


def test_intervals_are_written_with_the_sign_of_each_bound_visible():
    assert budget_match.with_ci(0.62, 0.06, 1.06) == "+0.62 [+0.06, +1.06]"
    assert budget_match.with_ci(1.1, -0.003, 2.2) == "+1.10 [-0.003, +2.20]"  # never "-0.00"
    assert budget_match.with_ci(0.0, 0.0, 0.0) == "0 [0, 0]"
    assert budget_match.bound_text(0.04, 1) == "+0.04" and budget_match.bound_text(-0.00004, 1) == "-0.00004"


@pytest.fixture(scope="module")
def published_points(full_db):
    from engine.store import Store
    return points_table.assemble_points(Store(full_db).analysis_inputs())


def test_a_pairwise_result_depends_only_on_its_two_classes(published_points):
    """ViT − ConvNet (gap, interval, verdict), matched pairs, when-grid cells and the Overview's
    sentences are the same whether Hybrids and MLPs are selected or not (issue 21: adding Hybrids
    once moved the verdict at 400 GFLOPs, adding MLPs moved where ViTs start leading)."""
    from engine.analysis import when
    every = points_table.select(published_points, "gflops", "imagenet.top1")
    budgets = budget_match.log_budgets(every)
    seen = []
    for classes in (["ConvNet", "ViT"], ["ConvNet", "ViT", "Hybrid"], list(points_table.CLASSES)):
        chosen = points_table.select(published_points, "gflops", "imagenet.top1", classes=classes)
        table = budget_match.budget_table(chosen, "imagenet.top1", [*budgets, 400])
        cells = [c for c in when.gap_grid(chosen, "imagenet.top1", budgets[::4]) if c["comparison"] == "ViT − ConvNet"]
        seen.append(([r["gaps"].get("ViT-ConvNet") for r in table], pairing.matched_pairs(chosen, "imagenet.top1"),
                     cells, when.explained_verdict(chosen, "imagenet.top1", budgets, unit=" GFLOPs")))
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][0][-1]["verdict"] in budget_match.VERDICTS and len(seen[0][3]) >= 2


def test_no_verdict_moves_with_the_seed(published_points):
    """Seeds 0-9 at every default budget of the Overview and the When grid: the same verdicts."""
    from engine.analysis import when
    chosen = points_table.select(published_points, "gflops", "imagenet.top1", classes=["ConvNet", "ViT", "Hybrid"])
    budgets = budget_match.log_budgets(points_table.select(published_points, "gflops", "imagenet.top1"))
    verdicts = set()
    for seed in range(10):
        rows = budget_match.budget_table(chosen, "imagenet.top1", budgets, seed=seed)
        cells = when.gap_grid(chosen, "imagenet.top1", budgets[::2], seed=seed)
        verdicts.add((tuple((k, g["verdict"], g["leader"]) for r in rows for k, g in r["gaps"].items()),
                      tuple((c["data_scale"], c["budget"], c["comparison"], c["verdict"], c["leader"]) for c in cells)))
    assert len(verdicts) == 1
    [(gaps, _)] = verdicts
    assert {v for _, v, _ in gaps} >= {"lead", "no clear winner"}  # the published data has both


def _raw_interval_holds_the_gap(points: pd.DataFrame, budgets, sign: float) -> int:
    """Checks, before any widening, that the 95% percentile interval of the exact bootstrap of the
    best-of-class gap holds the reported gap at every budget; returns how many gaps it checked."""
    classes = budget_match.by_class(points)
    checked = 0
    for budget in budgets:
        best = {}
        for arch_class, group in classes.items():
            cost, oriented = group["cost"].to_numpy(float), sign * group["quality"].to_numpy(float)
            if (cost <= budget).any():
                best[arch_class] = (oriented[cost <= budget].max(), budget_match.best_distribution(cost, oriented, budget))
        for other in [c for c in best if c != "ConvNet" and "ConvNet" in best]:
            dist = budget_match.GapDistribution.of(best[other][1], best["ConvNet"][1])
            gap = best[other][0] - best["ConvNet"][0]
            assert dist.quantile(0.025) <= gap <= dist.quantile(0.975), (budget, other, gap)
            checked += 1
    return checked


def test_the_best_of_class_interval_holds_its_estimate_without_widening(published_points):
    """Issue 35: the estimate can sit at the edge of its interval (-6.65 [-7.34, +1.68]) but never
    outside it. Each class keeps its best in a resample with probability >= 1 - (1 - 1/n)^n > 0.63,
    so the gap itself carries > 40% of the bootstrap's mass and lies between its 2.5% and 97.5%
    quantiles: the percentile interval is the right one for a best-of-class gap, with no bias
    correction that would push it off the estimate. Checked on random classes and on the
    shipped data, on every cost axis."""
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        rows = [{"checkpoint": f"{c}{i}", "arch_class": c, "cost": float(rng.lognormal(2, 2)),
                 "quality": float(rng.normal(80, 5) if rng.random() > 0.1 else rng.normal(60, 20))}
                for c in ("ConvNet", "ViT", "Hybrid") for i in range(int(rng.integers(1, 30)))]
        points = pd.DataFrame(rows)
        checked += _raw_interval_holds_the_gap(points, budget_match.log_budgets(points, 8), 1.0)
    for cost, quality in (("gflops", "imagenet.top1"), ("train_flops", "imagenet.top1"),
                          ("gflops", "imagenet-r.top1"), ("params_m", "imagenet-a.top5")):
        chosen = points_table.select(published_points, cost, quality)
        checked += _raw_interval_holds_the_gap(chosen, budget_match.log_budgets(chosen, 40), 1.0)
    assert checked > 2000
