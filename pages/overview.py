"""Overview: the verdict at a glance — the class gap across budgets, with its confidence band."""
import altair as alt
import pandas as pd
import streamlit as st

from engine import analysis
from ui import charts, loaders, widgets


@st.cache_data(show_spinner=False, max_entries=32)
def gap_spec(cost: str, metric: str) -> dict:
    """The gap-by-budget chart, built once per (cost, metric); the gaps are data."""
    base = charts.data("gaps").encode(x=alt.X("budget:Q", scale=alt.Scale(type="log"), title=widgets.COST_LABELS[cost]),
                                      color=charts.class_color("class", title="class − ConvNet"))
    band = base.mark_area(opacity=0.2).encode(y=alt.Y("ci_low:Q", title=f"{metric} gap (points)"), y2="ci_high:Q")
    line = base.mark_line(point=True).encode(
        y="gap:Q", tooltip=["comparison:N", "budget:Q", alt.Tooltip("gap:Q", format="+.2f"),
                            alt.Tooltip("ci_low:Q", format="+.2f"), alt.Tooltip("ci_high:Q", format="+.2f")])
    zero = alt.Chart(alt.Data(values=[{"y": 0}])).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
    return charts.spec_of(alt.layer(band, line, zero))


chosen, cost, metric = widgets.analysis_page("overview", "ConvNet or ViT at your budget?")
if chosen is not None:
    budgets = tuple(loaders.derived(chosen, analysis.log_budgets))  # these three: once per server and view
    rows = loaders.derived(chosen, analysis.budget_table, metric, budgets)
    gaps = pd.DataFrame([{"budget": r["budget"], "comparison": k, **g}
                         for r in rows for k, g in r["gaps"].items() if k in ("ViT-ConvNet", "Hybrid-ConvNet")])
    if gaps.empty:
        st.info("ConvNets and another class both need points under these filters to draw a gap.")
    else:
        gaps["class"] = gaps["comparison"].str.split("-").str[0]  # coloured as the class compared
        charts.draw(gap_spec(cost, metric), {"gaps": gaps}, width="stretch")
        widgets.probe_note(metric)
        st.caption("Gap = best of the class minus best ConvNet with cost ≤ budget; band: 95% "
                   "bootstrap interval (checkpoints resampled within each class, 1,000 times).")
        for other in ("ViT", "Hybrid"):
            sentences = loaders.derived(chosen, loaders.explained_verdict, metric, budgets, other,
                                        widgets.COST_UNITS[cost])
            if sentences:
                st.markdown(f"**{other} vs ConvNet** — " + "; ".join(sentences) + ".")
    widgets.flop_note(cost)
