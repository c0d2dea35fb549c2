"""Budget match: the best of each class per budget with the gap and its CI; matched pairs."""
import pandas as pd
import streamlit as st

from engine.analysis import budget_match, multiplier, pairing, points_table
from ui import loaders, tables, widgets

chosen, cost, metric = widgets.analysis_page("budget", "Budget match")
if chosen is not None:
    filters = st.session_state["page_view"][1]
    budget = widgets.budget_slider(chosen, cost)
    budgets = tuple(sorted({*loaders.budget_grid(chosen, 6), budget}))
    rows = loaders.budget_rows(chosen, cost, metric, budgets, st.session_state["page_view"][1])  # once per view
    widgets.budget_tables(rows, cost, key="budget_table")
    st.caption(f"Each class against ConvNets: the best of each with cost ≤ the budget, the gap with its 95% "
               f"bootstrap interval (checkpoints resampled within each class) and the verdict: a class leads "
               f"only where the interval excludes 0; 'borderline' where a bound is within Monte-Carlo error "
               f"of 0; 'too few' where a class has fewer than {budget_match.MIN_CHECKPOINTS} checkpoints under the "
               "budget. 'Best class': the best of all selected classes, where it leads every other."
               + (" Footing (training compute): whether the verdict holds when every estimate moves within its "
                  "range (each class at its most and least favourable end), and with the checkpoints that have no "
                  "estimate put in at 100–1,000 epochs of their stated data." if cost == "train_flops" else ""))
    widgets.interval_note()
    widgets.probe_note(metric)
    st.subheader(f"The compute multiplier at equal accuracy{widgets.data_said(filters)}")
    typed = widgets.url_text("Accuracy levels (comma-separated; empty: every 5 points two classes reach)", "levels",
                             placeholder="e.g. 70,80,85")
    try:
        levels = multiplier.parse_levels(typed, chosen, metric) if typed else None
        if levels:
            multiplier.check_levels(chosen, metric, levels)
    except points_table.AnalysisError as e:
        st.info(widgets.literal(e))
    else:
        table = widgets.multiplier_frame(chosen, metric, cost, tuple(levels) if levels else None)
        if table.empty:
            st.info("A multiplier needs ConvNets and another class with points under these filters.")
        else:
            tables.show(table, key="multiplier_table")
            st.caption(f"For each level of {metric}, the cheapest checkpoint of each class that reaches it (cost in "
                       f"{widgets.COST_LABELS[cost]}) and the ratio of their costs, class ÷ ConvNet, with its 95% exact "
                       "bootstrap interval (checkpoints resampled within each class); a class is cheaper only where "
                       f"the interval excludes 1×; 'too few': fewer than {budget_match.MIN_CHECKPOINTS} checkpoints "
                       "of a class reach the level.")
    st.subheader("Matched pairs: each ViT with a ConvNet of about the same cost")
    left_col, right_col = st.columns(2)
    with left_col:
        tolerance = widgets.url_select_slider("Cost tolerance (±)", [0.02, 0.05, 0.1, 0.2, 0.3], "tolerance", 0.1)
    with right_col:
        matching = widgets.url_selectbox("Matching", list(pairing.MATCHINGS), "matching", default="fair",
                                         format_func=pairing.MATCHINGS.get)
    pairs = loaders.derived(chosen, pairing.matched_pairs, metric, tolerance=float(tolerance), matching=matching)
    if pairs["n_pairs"]:
        left, right = pairs["left"], pairs["right"]
        a, b, c = st.columns(3)
        a.metric("pairs", pairs["n_pairs"])
        low, high = pairs["share_ci"][left]
        b.metric(f"{left} wins", f"{pairs['share'][left]:.0%}", help=f"95% Wilson interval {low:.0%}–{high:.0%}")
        low, high = pairs["share_ci"][right]
        c.metric(f"{right} wins", f"{pairs['share'][right]:.0%}", help=f"95% Wilson interval {low:.0%}–{high:.0%}")
        moves = loaders.derived(chosen, pairing.share_by_matching, metric, float(tolerance))
        tables.show(pd.DataFrame([{"matching": r["label"], "pairs": r["n_pairs"], "distinct ConvNets": r["distinct_convnet"],
                                    f"{left} win share": f"{r['share']:.0%} [{r['share_ci'][0]:.0%}, {r['share_ci'][1]:.0%}]"
                                    if r["n_pairs"] else "-"} for r in moves]),
                    key="share_by_matching")
        st.caption("Fair (the default): each checkpoint is used at most once, closest costs first, and each "
                   "architecture counts once with its best tag, so one strong ConvNet or many tags of one "
                   "architecture cannot decide the share.")
        unit = tables.COST_UNIT_NAMES[cost]
        a, b = left.lower(), right.lower()
        tables.show(pd.DataFrame(pairs["pairs"]).rename(columns={
            a: left, b: right, f"{a}_cost": f"{left} cost ({unit})", f"{b}_cost": f"{right} cost ({unit})",
            f"{a}_quality": f"{left} {metric}", f"{b}_quality": f"{right} {metric}",
            "difference": f"{left} − {right} (points)"}))
    else:
        st.info("No ViT has a ConvNet within that cost tolerance under these filters.")
