"""When does each class win: the budget gap per pre-training data scale, and same-data pairs."""
import pandas as pd
import streamlit as st

from engine.analysis import budget_match, points_table, pretraining, when
from ui import charts, loaders, tables, widgets


chosen, cost, metric = widgets.analysis_page("when", "When does each class win?")
if chosen is not None:
    st.caption("Is it the architecture or the pre-training data? Each cell compares the best checkpoint of "
               "each class pre-trained at the same data scale, with cost ≤ the budget.")
    tolerance = widgets.url_select_slider("Matched-pair cost tolerance (±)", [0.02, 0.05, 0.1, 0.2, 0.3],
                                          "tolerance", 0.1)
    filters = st.session_state["page_view"][1]
    image_text = filters["zoo"] == "image-text"
    by = widgets.url_selectbox("Group by", list(when.GROUPINGS), "by", format_func=when.GROUPINGS.get,
                               default="pretrain_data" if image_text and not filters["data_sources"] else "data_scale")
    result = loaders.derived(chosen, when.when, metric, loaders.budget_grid(chosen, 8),
                             tolerance=float(tolerance), by=by)  # once per server and view
    cells = when.cells_frame(result["cells"])
    if cells.empty:
        st.info("No pre-training dataset has ConvNets and another class both under these filters.")
        st.stop()
    budget_order = [f"{b:g}" for b in result["budgets"]]
    group_order = tuple(dict.fromkeys(cells["group"].astype(str)))
    span = float(cells["gap"].abs().max()) if cells["gap"].notna().any() else 1.0
    for comparison, part in cells.groupby("comparison", sort=False):
        charts.draw(charts.gap_heatmap_spec(comparison, metric, widgets.COST_LABELS[cost], tuple(budget_order), span,
                                            when.GROUPINGS[by], group_order),
                    {"cells": part.assign(group=part["group"].astype(str))}, width="stretch")
    st.caption("Cell: gap = best of the class minus best ConvNet [95% bootstrap CI], n = checkpoints of the "
               "class + ConvNets under the budget. Coloured only where a class leads (its CI excludes 0): orange, "
               "the other class ahead; blue, ConvNets ahead. Pale: no clear winner (or borderline); grey: fewer "
               f"than {budget_match.MIN_CHECKPOINTS} of a class, no verdict; blank: a class has no checkpoint there.")
    widgets.interval_note()
    widgets.probe_note(metric)
    if cost == "train_flops":
        rows = loaders.budget_rows(chosen, cost, metric, tuple(result["budgets"]), st.session_state["page_view"][1])
        for other in [k.split("-")[0] for k in dict.fromkeys(g for r in rows for g in r["gaps"])]:
            widgets.footing_note(rows, other, cost)
    st.subheader("Matched pairs, all against same pre-training data")
    rows = []
    for both in result["pairs"].values():
        for scope, pairs in (("all pairs", both["all"]), ("same pre-training data", both["same_data"])):
            left, right = pairs["left"], pairs["right"]
            low, high = pairs["share_ci"][left]
            rows.append({"comparison": f"{left} vs {right}", "pairs": scope, "n": pairs["n_pairs"],
                         "left wins (95% Wilson CI)": f"{pairs['share'][left]:.0%} [{low:.0%}, {high:.0%}]"
                         if pairs["n_pairs"] else "-",
                         "mean difference": round(pairs["mean_difference"], 2) if pairs["n_pairs"] else None})
    tables.show(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(f"Each {', '.join(k.split('-')[0] for k in result['pairs'])} checkpoint with the ConvNet nearest in "
               f"cost within ±{tolerance:.0%}; 'same pre-training data' keeps only pairs whose checkpoints were "
               "pre-trained on the same data (e.g. both ImageNet-21k). Fair matching: each checkpoint used at "
               "most once, each architecture once with its best tag.")

    if image_text:
        st.stop()
    st.subheader("What pre-training buys each class")
    bench_source = st.session_state["page_view"][0]
    try:  # pairs differ in pre-training by design: the sidebar's data and objective filters do not apply here
        every_data = loaders.selection(bench_source, cost, metric, {**filters, "data_sources": None, "objectives": None})
        bought = loaders.derived(every_data, pretraining.pretraining, metric)
    except points_table.AnalysisError as e:
        st.info(widgets.literal(e))
        st.stop()
    for sentence in bought["sentences"]:
        st.markdown(widgets.literal(sentence[0].upper() + sentence[1:]) + ".")
    tables.show(widgets.pretraining_frame(bought), hide_index=True, width="stretch", key="pretraining_gains")
    st.caption(f"Pairs of checkpoints of the same network at the same resolution that differ only in pre-training "
               f"(its data and objective): the gain in {metric} over the same network trained on "
               f"{pretraining.BASELINE_LABEL} (each network once per pre-training, its best tag on each side; timm's "
               "CLIP ViTs count as their plain ViT). Mean per class with a 95% Student-t interval over the pairs; "
               f"the difference between classes with Welch's interval; fewer than {pretraining.MIN_PAIRS} pairs: "
               f"no interval. {bought['n_left_out_unknown_objective']} pairs left out: their objective is unknown. "
               "The sidebar's pre-training data and objective filters do not apply to this section.")
    with st.expander(f"Every pair ({len(bought['pairs'])})"):
        tables.show(pd.DataFrame(bought["pairs"])[["arch_class", "network", "img_size", "pretraining", "checkpoint",
                                                    "quality", "baseline_checkpoint", "baseline_quality", "gain"]],
                     hide_index=True, width="stretch")
