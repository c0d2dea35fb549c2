"""`analyze`: frontiers, budgets, pairs, scaling, when each class wins and robustness, from the shell.
"""
from __future__ import annotations

from engine import options
from engine.cli.common import DATA_SCALE_CHOICES, csv_list, frame_records, jsonable, print_json, source_choices
from engine.errors import MatchupError
from engine.store import Store


def _size_range(value: str | None):
    if not value:
        return None
    low, _, high = value.partition("-")
    try:
        return (int(low), int(high or low))
    except ValueError:
        raise MatchupError(f"--img-size takes MIN-MAX pixels, e.g. 224-384, not {value!r}.") from None


def _unestimated(points, args, filters):
    """The checkpoints without a training-compute estimate, under the same filters: the coverage check's."""
    from engine.analysis import points_table
    try:
        return points_table.select(points, points_table.UNESTIMATED, args.quality,
                                   classes=csv_list(args.classes, flag="--classes"), **filters)
    except points_table.AnalysisError:
        return None


def data_label(chosen) -> str:
    """The pre-training data behind a result: its one source, or 'mixed pre-training data (…)'."""
    sources = sorted(chosen["pretrain_data"].dropna().unique())
    if len(sources) == 1:
        return sources[0]
    shown = ", ".join(sources[:4]) + (f" and {len(sources) - 4} more" if len(sources) > 4 else "")
    return f"mixed pre-training data ({shown})"


def _check_known(frame, data_sources, objectives_wanted, what: str) -> None:
    """--pretrain-data and --objective values that select nothing in `frame` (the points an
    analysis reads) are refused, naming what is there."""
    from engine.catalog import objectives
    for flag, column, wanted in (("--pretrain-data", "pretrain_data", data_sources),
                                 ("--objective", "objective", objectives_wanted)):
        available = sorted(frame[column].dropna().unique()) if column in frame else []
        unknown = [w for w in wanted or [] if w not in available]
        if unknown:
            valid = available if column == "pretrain_data" else [o for o in objectives.OBJECTIVES if o in available]
            raise MatchupError(f"{flag} {', '.join(map(repr, unknown))}: no checkpoint with {what} has it; "
                               f"available: {'; '.join(valid) or 'none'}.")


def cmd_analyze(args, store: Store) -> int:
    from engine.analysis import budget_match, footing, pairing, pareto, points_table, scaling_fits
    budgets = [options.check("budget", b) for b in csv_list(args.budgets, flag="--budgets") or []]  # checked before any work
    bench_source = args.bench_source
    if args.cost == "ms_per_img" and bench_source is None:
        sources = store.published_benchmark_sources()
        if sources.empty:
            raise MatchupError("--cost ms_per_img needs published benchmarks (`catalog import DIR`) "
                               "or --bench-source here (measured with `bench`).")
        bench_source = sources["source_file"].iloc[0]
    points = points_table.assemble_points(store.analysis_inputs(), bench_source=bench_source)
    if args.kind == "robustness":
        return _analyze_robustness(args, points, budgets, bench_source)
    if args.kind == "pretraining":
        args.cost = args.cost or "gflops"  # pairs share a network and a resolution: any cost axis lists them
    if args.cost is None:
        raise MatchupError(f"analyze {args.kind} needs --cost ({', '.join(points_table.COST_METRICS)}).")
    try:
        filters = dict(data_scales=csv_list(args.data_scale, flag="--data-scale", choices=DATA_SCALE_CHOICES), families=csv_list(args.families, flag="--families"),
                       sources=csv_list(args.source, flag="--source", choices=source_choices(points)), img_size_range=_size_range(args.img_size),
                       data_sources=csv_list(args.pretrain_data, flag="--pretrain-data"),
                       objectives=csv_list(args.objective, flag="--objective"))
        _check_known(points[(points["cost_metric"] == args.cost) & (points["quality_metric"] == args.quality)],
                     filters["data_sources"], filters["objectives"], f"{args.cost} and {args.quality}")
        chosen = points_table.select(points, args.cost, args.quality, classes=csv_list(args.classes, flag="--classes"), **filters)
        # default budgets span every class's points: which classes are compared never moves them
        all_classes = points_table.select(points, args.cost, args.quality, **filters)
        n_boot = args.n_boot or (1000 if args.kind == "scaling" else budget_match.N_BOOT)
        header = {"analysis": args.kind, "cost": args.cost, "quality": args.quality,
                  "bench_source": bench_source if args.cost == "ms_per_img" else None,
                  "n_points": int(len(chosen)),
                  "higher_is_better": points_table.higher_is_better(args.quality),
                  "pretrain_data": data_label(chosen)}
        if args.kind == "frontier":
            front = pareto.frontier(chosen, args.quality)
            payload = {**header, "classes": {
                c: frame_records(g[["checkpoint", "cost", "quality", "source", "family", "data_scale"]])
                for c, g in front.groupby("arch_class")}}
        elif args.kind == "budget":
            if not budgets:
                raise MatchupError("analyze budget needs --budgets, e.g. --budgets 1,5,20,100")
            rows = budget_match.budget_table(chosen, args.quality, budgets, n_boot, args.seed)
            if args.cost == "train_flops":
                footing.add_footing(rows, chosen, _unestimated(points, args, filters), args.quality, n_boot=n_boot)
            payload = {**header, "n_boot": n_boot, "seed": args.seed, "budgets": rows}
        elif args.kind == "multiplier":
            from engine.analysis import multiplier
            levels = multiplier.parse_levels(args.levels, all_classes, args.quality)  # --classes never moves them
            multiplier.check_levels(chosen, args.quality, levels)
            rows = multiplier.multiplier_table(chosen, args.quality, levels, n_boot=n_boot)
            payload = {**header, "n_boot": n_boot, "levels": rows,
                       "sentences": {f"{o}/{r}": multiplier.sentences(rows, o, r, f" {args.quality}",
                                                                      f"{args.cost} ({header['pretrain_data']})")
                                     for o, r in multiplier.COMPARISONS}}
        elif args.kind == "pretraining":
            from engine.analysis import pretraining
            payload = {**header, **pretraining.pretraining(chosen, args.quality)}
        elif args.kind == "pairs":
            match_on = "pretrain_data" if args.same_data else None
            payload = {**header, **pairing.matched_pairs(chosen, args.quality, args.tolerance, match_on=match_on,
                                                          matching=args.matching),
                       "share_by_matching": pairing.share_by_matching(chosen, args.quality, args.tolerance,
                                                                       match_on=match_on)}
        elif args.kind == "when":
            from engine.analysis import when
            payload = {**header, **when.when(chosen, args.quality, budgets or budget_match.log_budgets(all_classes, n=8),
                                              args.tolerance, n_boot, args.seed, by=args.by)}
            rows = budget_match.budget_table(chosen, args.quality, payload["budgets"], n_boot, args.seed)
            payload["verdicts"] = {other: when.explained_verdict(chosen, args.quality, payload["budgets"], other,
                                                                 reference, n_boot=n_boot, seed=args.seed, rows=rows)
                                   for other, reference in when.COMPARISONS}
            if args.cost == "train_flops":
                footing.add_footing(rows, chosen, _unestimated(points, args, filters), args.quality, n_boot=n_boot)
                payload["footing"] = [{"budget": r["budget"], "gaps": {
                    k: {f: g.get(f) for f in ("gap", "ci_low", "ci_high", "verdict", "leader", "estimates_check",
                                              "coverage_check")} for k, g in r["gaps"].items()}} for r in rows]
        else:
            payload = {**header, **scaling_fits.scaling(chosen, args.quality, on=args.on, law=args.law,
                                                    n_boot=n_boot, seed=args.seed)}
    except points_table.AnalysisError as e:
        raise MatchupError(str(e)) from None
    if args.json:
        print_json(_clean(payload))
        return 0
    _print_analysis(payload)
    return 0


def _analyze_robustness(args, points, budgets: list[float], bench_source) -> int:
    """analyze robustness --quality OOD.top1 [--cost C [--budgets ...]]: the trend, effective
    robustness per checkpoint, class and data scale; with --cost, the budget gap on the OOD metric."""
    from engine.analysis import budget_match, points_table, robustness
    ood, _, metric = args.quality.partition(".")
    if ood not in robustness.OOD_SETS and ood not in robustness.IMAGE_TEXT_OOD:
        raise MatchupError(f"analyze robustness takes --quality <OOD set>.top1 with the set one of "
                           f"{', '.join([*robustness.OOD_SETS, *robustness.IMAGE_TEXT_OOD])}; not {args.quality!r}.")
    try:
        n_boot = args.n_boot or robustness.ROBUSTNESS_N_BOOT
        result = (robustness.image_text_robustness(points, ood, n_boot, args.seed) if ood in robustness.IMAGE_TEXT_OOD
                  else robustness.robustness(points[points["zoo"] != "image-text"], ood, metric or "top1", n_boot,
                                             args.seed))
        shown = result["points"]
        _check_known(shown, csv_list(args.pretrain_data, flag="--pretrain-data"),
                     csv_list(args.objective, flag="--objective"), f"{result['x']} and {result['y']}")
        for column, wanted in (("arch_class", csv_list(args.classes, flag="--classes")), ("data_scale", csv_list(args.data_scale, flag="--data-scale", choices=DATA_SCALE_CHOICES)),
                               ("family", csv_list(args.families, flag="--families")),
                               ("pretrain_data", csv_list(args.pretrain_data, flag="--pretrain-data")),
                               ("objective", csv_list(args.objective, flag="--objective"))):
            if wanted:
                shown = shown[shown[column].isin(wanted)]
        payload = {"analysis": "robustness", "quality": args.quality, "ood": ood, "x": result["x"], "y": result["y"],
                   "trend": result["trend"], "note": result["note"], "n_points": int(len(shown)),
                   "n_boot": n_boot, "seed": args.seed,
                   "by_class": robustness.summary(shown, ["arch_class"], n_boot, args.seed),
                   "by_class_and_scale": robustness.summary(shown, ["arch_class", "data_scale"], n_boot, args.seed),
                   "checkpoints": frame_records(shown.assign(data_scale=shown["data_scale"].astype(str))[
                       ["checkpoint", "arch_class", "data_scale", "pretrain_data", "id_accuracy", "ood_accuracy",
                        "effective_robustness"]])}
        if args.cost:
            filters = dict(data_scales=csv_list(args.data_scale, flag="--data-scale", choices=DATA_SCALE_CHOICES), families=csv_list(args.families, flag="--families"),
                           data_sources=csv_list(args.pretrain_data, flag="--pretrain-data"),
                           objectives=csv_list(args.objective, flag="--objective"))
            chosen = points_table.select(points, args.cost, result["y"], classes=csv_list(args.classes, flag="--classes"), **filters)
            budgets = budgets or budget_match.log_budgets(points_table.select(points, args.cost, result["y"], **filters), 6)
            payload.update(cost=args.cost, bench_source=bench_source if args.cost == "ms_per_img" else None,
                           budgets=budget_match.budget_table(chosen, result["y"], budgets, budget_match.N_BOOT
                                                         if args.n_boot is None else args.n_boot, args.seed))
    except points_table.AnalysisError as e:
        raise MatchupError(str(e)) from None
    if args.json:
        print_json(_clean(payload))
        return 0
    t = payload["trend"]
    print(f"robustness: {payload['y']} against {payload['x']} ({payload['n_points']} checkpoints); trend on "
          f"{t['fitted_on']} only (n={t['n_points']}): logit(OOD) = {t['intercept']:.3f} + {t['slope']:.3f} "
          f"logit(ID), R² {t['r2']:.2f}")
    if payload["note"]:
        print(f"  note: {payload['note']}")
    for row in payload["by_class"]:
        print(f"  {row['arch_class']}: effective robustness "
              f"{budget_match.with_ci(row['mean'], row['ci_low'], row['ci_high'])} points, n={row['n']}")
    for row in payload.get("budgets", []):
        gaps = "; ".join(f"{k} {budget_match.with_ci(g['gap'], g['ci_low'], g['ci_high'])} {budget_match.verdict_label(g)}"
                         for k, g in row["gaps"].items())
        print(f"  budget {row['budget']:g}: {gaps}")
    return 0


def _clean(value):
    """JSON-safe: NaN -> null, tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return jsonable(value)


def _print_analysis(p: dict) -> None:
    from engine.analysis import budget_match, scaling_fits
    from engine.analysis.footing import footing_text
    print(f"{p['analysis']}: {p['quality']} against {p['cost']} ({p['n_points']} points; {p['pretrain_data']})")
    if p["analysis"] == "multiplier":
        from engine.analysis import multiplier
        for row in p["levels"]:
            cheapest = "; ".join(f"{c} {b['checkpoint']} ({b['cost']:.3g})" for c, b in row["cheapest"].items())
            ratios = "; ".join(f"{k} {multiplier.ratio_text(r)} {multiplier.verdict_label(r, *k.split('/'))}"
                               for k, r in row["ratios"].items())
            print(f"  level {row['level']:g}: {ratios or 'no ratio (a class does not reach it)'}; cheapest: {cheapest}")
        for key, said in p["sentences"].items():
            for sentence in said:
                print(f"  {key}: {sentence}")
        return
    if p["analysis"] == "pretraining":
        from engine.analysis import pretraining
        for row in p["gains"]:
            gains = "; ".join(f"{c} {pretraining.gain_text(g)}" for c, g in row["classes"].items())
            print(f"  {row['baseline']} -> {row['pretraining']}: {gains}")
        for sentence in p["sentences"]:
            print(f"  {sentence}")
        print(f"  {len(p['pairs'])} pairs (--json lists both checkpoints of each); "
              f"{p['n_left_out_unknown_objective']} left out for an unknown objective")
        return
    if p["analysis"] == "frontier":
        for arch_class, rows in p["classes"].items():
            steps = ", ".join(f"{r['checkpoint']} ({r['cost']:.3g}, {r['quality']:.2f})" for r in rows)
            print(f"  {arch_class}: {steps}")
    elif p["analysis"] == "budget":
        for row in p["budgets"]:
            best = "; ".join(f"{c} {b['quality']:.2f} ({b['checkpoint']})" for c, b in row["best"].items())
            gaps = "; ".join(f"{k} {budget_match.with_ci(g['gap'], g['ci_low'], g['ci_high'])} {budget_match.verdict_label(g)}"
                             for k, g in row["gaps"].items())
            print(f"  budget {row['budget']:g}: {gaps}; {best}; best class: "
                  f"{row['winner'] or row['winner_verdict']}")
            for key, gap in row["gaps"].items():
                if gap.get("estimates_check"):
                    print(f"    {key} footing: {footing_text(gap)}")
    elif p["analysis"] == "pairs":
        left, right = p["left"], p["right"]
        print(f"  {p['n_pairs']} pairs within ±{p['tolerance']:.0%} ({p['matching']} matching): {left} wins "
              f"{p['wins'][left]}, {right} wins {p['wins'][right]}, ties {p['wins']['tie']}; "
              f"{left} share {p['share'][left]:.2f} CI {p['share_ci'][left]}")
        for row in p["share_by_matching"]:
            print(f"    {row['label']}: {row['n_pairs']} pairs, {left} share {row['share']:.2f}")
    elif p["analysis"] == "when":
        for cell in p["cells"]:
            if cell["gap"] is not None:
                print(f"  {cell['group']} ≤{cell['budget']:g} {cell['comparison']}: "
                      f"{budget_match.with_ci(cell['gap'], cell['ci_low'], cell['ci_high'])} n={cell['n_checkpoints']} "
                      f"{budget_match.verdict_label(cell) if cell['verdict'] != 'too few' else 'too few'}")
        for key, both in p["pairs"].items():
            for scope, pairs in (("all", both["all"]), ("same data", both["same_data"])):
                left = pairs["left"]
                print(f"  pairs {key} ({scope}): {pairs['n_pairs']}, {left} share {pairs['share'][left]:.2f} "
                      f"CI [{pairs['share_ci'][left][0]:.2f}, {pairs['share_ci'][left][1]:.2f}]")
        for other, sentences in p["verdicts"].items():
            for sentence in sentences:
                print(f"  {other} vs ConvNet: {sentence}")
        for row in p.get("footing", []):
            for key, gap in row["gaps"].items():
                print(f"  ≤{row['budget']:g} {key} {budget_match.verdict_label(gap)}: {footing_text(gap)}")
    else:
        for arch_class, fit in p["fits"].items():
            print(f"  {arch_class}: log(error) = {fit['a']:.3f} {fit['b']:+.3f} log(cost), R² {fit['r2']:.2f}, "
                  f"slope CI [{fit['b_ci'][0]:.3f}, {fit['b_ci'][1]:.3f}], n={fit['n_points']}")
        for c in p["crossovers"]:
            print(f"  crossover {scaling_fits.crossover_text(c)}")


def add_parsers(commands, common) -> None:
    """`analyze`."""
    an = commands.add_parser("analyze", parents=[common], help="frontiers, budgets, pairs, scaling, compute multipliers, "
                                                                    "pre-training gains")
    an.add_argument("kind", choices=("frontier", "budget", "pairs", "scaling", "when", "robustness", "multiplier",
                                     "pretraining"))
    an.add_argument("--cost",
                    help="gflops, params_m, latency_ms, ms_per_img or pretrain_tpu_v4_core_hours")
    an.add_argument("--quality", required=True, help="<dataset>.<metric>, e.g. imagenet.top1")
    an.add_argument("--budgets", help="comma-separated budgets in cost units (budget)")
    an.add_argument("--classes", help="comma-separated classes, e.g. ConvNet,ViT")
    an.add_argument("--data-scale", help="comma-separated buckets: ≈1M,≈10M,≈100M,≥1B")
    an.add_argument("--families", help="comma-separated families, e.g. convnext,vit")
    an.add_argument("--source", help="published, measured here, or a paper source id")
    an.add_argument("--pretrain-data", help="comma-separated pre-training data, e.g. LAION-2B (same-data comparisons)")
    an.add_argument("--objective", help="comma-separated pre-training objectives, e.g. 'masked image modelling' "
                                        "(supervised, distillation, semi-supervised pseudo-labels, self-distillation, "
                                        "image-text contrastive, unknown)")
    an.add_argument("--levels", help="multiplier: comma-separated quality levels, e.g. 60,70,80 (default: every 5 "
                                     "points that two classes reach)")
    an.add_argument("--by", default="data_scale", choices=("data_scale", "pretrain_data", "objective"),
                    help="when: group by data scale, pre-training data (the image-text zoo shares LAION-2B) or "
                         "pre-training objective")
    an.add_argument("--img-size", help="resolution range MIN-MAX, e.g. 224-384")
    an.add_argument("--bench-source", help="published benchmark file for ms_per_img, or 'here'")
    an.add_argument("--tolerance", type=options.arg("tolerance"), default=0.10, help="pairs: ±cost tolerance")
    an.add_argument("--same-data", action="store_true", help="pairs: only within the same pre-training data")
    an.add_argument("--matching", choices=("fair", "one-to-one", "nearest"), default="fair",
                    help="pairs: fair (one-to-one over each architecture's best tag, default), one-to-one "
                         "(each checkpoint at most once), nearest (a ConvNet may match many)")
    an.add_argument("--on", default="frontier", choices=("frontier", "all"), help="scaling: fit 'frontier' or 'all' points")
    an.add_argument("--law", default="power", choices=("power", "saturating"),
                    help="scaling: 'power' or 'saturating' (adds E_inf)")
    an.add_argument("--n-boot", type=options.arg("n_boot"),
                    help="bootstrap resamples (default: 10000 per class and budget for budget and when, "
                         "2000 for robustness means, 1000 for scaling fits)")
    an.add_argument("--seed", type=options.arg("seed"), default=0)
    an.add_argument("--json", action="store_true")
