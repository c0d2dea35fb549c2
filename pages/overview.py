"""Overview: the verdict at a glance — each class against ConvNets across budgets, with its interval."""
import altair as alt
import pandas as pd
import streamlit as st

from engine.analysis import budget_match, points_table
from ui import charts, loaders, widgets


@st.cache_data(show_spinner=False, max_entries=32)
def gap_spec(cost: str, metric: str) -> dict:
    """The gap-by-budget chart, built once per (cost, metric); the gaps are data. Budgets where a
    class has too few checkpoints for a verdict are grey hollow points, outside the line and the
    band: each run of judged budgets is its own segment, so nothing joins across a too-few gap."""
    base = charts.data("gaps").encode(x=alt.X("budget:Q", scale=alt.Scale(type="log"), title=widgets.COST_LABELS[cost]),
                                      color=charts.class_color("class", title="class − ConvNet"))
    judged_only = base.transform_filter("!datum.too_few")
    band = judged_only.mark_area(opacity=0.2).encode(y=alt.Y("ci_low:Q", title=f"{metric} gap (points)"),
                                                     y2="ci_high:Q", detail="segment:N")
    tooltip = ["comparison:N", "budget:Q", alt.Tooltip("gap:Q", format="+.2f"), alt.Tooltip("ci_low:Q", format="+.3f"),
               alt.Tooltip("ci_high:Q", format="+.3f"), "verdict:N"]
    line = judged_only.mark_line().encode(y="gap:Q", detail="segment:N")
    judged = judged_only.mark_point(filled=True).encode(y="gap:Q", tooltip=tooltip)
    too_few = base.transform_filter("datum.too_few").mark_point(filled=False).encode(
        y="gap:Q", tooltip=tooltip, color=alt.value(charts.TOO_FEW_POINT))
    zero = alt.Chart(alt.Data(values=[{"y": 0}])).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
    return charts.spec_of(alt.layer(band, line, judged, too_few, zero))


chosen, cost, metric = widgets.analysis_page("overview", "ConvNet or ViT at your budget?", say_data=False)
if chosen is not None:
    filters = st.session_state["page_view"][1]
    st.caption(("Image-text zoo: zero-shot results of OpenCLIP checkpoints. " if filters["zoo"] == "image-text" else "")
               + f"Compared at the same {widgets.COST_LABELS[cost]}"
               + (f" on the same pre-training data, {widgets.literal(filters['data_label'])} (the sidebar's "
                  "Pre-training data)." if filters["data_sources"] else
                  f", {widgets.MIXED}: checkpoints trained on different data are compared (the sidebar's "
                  "Pre-training data picks one source)."))
    budgets = loaders.budget_grid(chosen)  # these: once per server and view
    rows = loaders.budget_rows(chosen, cost, metric, budgets, filters)
    gaps = pd.DataFrame([{"budget": r["budget"], "comparison": k, **{f: g[f] for f in ("gap", "ci_low", "ci_high")},
                          "verdict": budget_match.verdict_label(g), "too_few": g["verdict"] == "too few"}
                         for r in rows for k, g in r["gaps"].items()])
    if gaps.empty:
        st.info(f"ConvNets and another class both need points under these filters to draw a gap "
                f"(pre-training data: {widgets.literal(filters['data_label'])}).")
    else:
        gaps["class"] = gaps["comparison"].str.split("-").str[0]  # coloured as the class compared
        gaps["segment"] = charts.judged_segments(gaps, "comparison")
        compared = [c for c in points_table.CLASSES if c != "ConvNet" and c in set(gaps["class"])]
        for other in compared:  # the answer first, on the first screen; the chart and its notes after
            sentences = loaders.derived(chosen, loaders.explained_verdict, metric, budgets, other,
                                        widgets.COST_UNITS[cost])
            if sentences:
                st.markdown(f"**{other} vs ConvNet{widgets.data_said(filters)}** — " + "; ".join(sentences) + ".")
        charts.draw(gap_spec(cost, metric), {"gaps": gaps}, width="stretch")
        widgets.probe_note(metric)
        st.caption("Gap = best of the class minus best ConvNet with cost ≤ budget; band: 95% bootstrap interval "
                   "(checkpoints resampled within each class, every resample weighted exactly). Grey hollow "
                   f"points: fewer than {budget_match.MIN_CHECKPOINTS} checkpoints of a class there, no verdict.")
        widgets.interval_note()
        for other in compared:
            widgets.footing_note(rows, other, cost)
    widgets.multiplier_sentences(chosen, cost, metric, filters)
    widgets.flop_note(cost)
