"""Experiment read-out: did a past campaign work, against its holdout control; and how big the next one must be."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from analytics.errors import InputError
from analytics.experiments import METRIC_HELP, ExperimentError, sample_size_per_arm
from ui.cached import cached_campaign_list, cached_read_out
from ui.context import page_inputs
from ui.format import format_value, plain_text
from ui.recommendations import outcome_view

ctx = page_inputs("experiments")

st.title("Experiment read-out")
listed = cached_campaign_list(ctx.engine, ctx.filters.scope)
if listed.empty:
    st.info("No campaign with members in the warehouse.", icon=":material/campaign:")
    st.stop()
labels = {row.campaign_id: f"{row.campaign_id} · {row.name} ({row.type}, {row.channel}, {row.start_at:%d %b %Y}, "
          f"{row.members:,} members)" for row in listed.itertuples()}
# A link such as /experiments?campaign=CMP0001 (from Campaign results) opens that campaign, once per link.
linked = st.query_params.get("campaign")
if linked and linked not in labels:
    st.warning(f"The link names a campaign that is not here: {plain_text(linked[:40])}.",
               icon=":material/link_off:")
elif linked and linked != st.session_state.get("_experiment_linked"):
    st.session_state["_experiment_linked"] = linked
    st.session_state["experiment_campaign"] = linked
campaign = st.selectbox("Campaign", list(labels), format_func=labels.get, key="experiment_campaign")
try:
    result = cached_read_out(ctx.engine, campaign, ctx.filters.scope)
except ExperimentError as problem:
    st.info(str(problem), icon=":material/science:")
    st.stop()

t, c = result.treatment, result.control
trusted = result.srm_p_value >= 0.001
(st.success if trusted and result.rate_p_value < 0.05 and result.lift > 0 else
 st.warning if not trusted else st.info)(result.verdict, icon=":material/science:")

cards = st.columns(4)
cards[0].metric("Conversion, treatment", f"{t.rate:.2%}", border=True, help=METRIC_HELP["conversion_rate"],
                delta=f"{result.lift * 100:+.2f} pts vs control", delta_color="normal")
cards[1].metric("Conversion, control", f"{c.rate:.2%}", border=True, help=METRIC_HELP["conversion_rate"])
cards[2].metric("Lift", f"{result.lift * 100:+.2f} pts", border=True,
                delta=f"95%: {result.lift_ci[0] * 100:+.2f} to {result.lift_ci[1] * 100:+.2f}", delta_color="off",
                delta_arrow="off", help=METRIC_HELP["lift"] + f" p = {result.rate_p_value:.3g}.")
cards[3].metric("Revenue per member", format_value(t.revenue_per_member, "currency"), border=True,
                delta=f"{result.revenue_diff:+,.2f} vs control (p = {result.revenue_p_value:.2g})",
                delta_color="normal", help=METRIC_HELP["revenue_per_member"] + " " + METRIC_HELP["p_value"])

bars = go.Figure(go.Bar(x=["Treatment", "Control"], y=[t.rate, c.rate], marker_color=["#1b9e77", "#9e9e9e"],
                        text=[f"{t.rate:.2%}", f"{c.rate:.2%}"], textposition="outside",
                        customdata=[t.members, c.members],
                        hovertemplate="%{x}: %{y:.2%} of %{customdata:,} members<extra></extra>"))
bars.update_layout(height=300, margin={"l": 0, "r": 0, "t": 10, "b": 0}, yaxis_tickformat=".1%",
                   yaxis_title="Conversion rate")
st.plotly_chart(bars, key="experiment_rates")
st.caption(f"Members: {t.members:,} treatment, {c.members:,} control ({c.members / (t.members + c.members):.1%}; "
           f"{result.planned_holdout:.0%} planned, sample-ratio p = {result.srm_p_value:.2g}). "
           + METRIC_HELP["srm"])

outcome_view(ctx.engine, campaign)

with st.expander("Plan the next test: members needed per arm", icon=":material/calculate:"):
    cols = st.columns(4)
    baseline = cols[0].number_input("Baseline conversion (%)", 0.1, 99.0, max(round(c.rate * 100, 1), 0.1), 0.1,
                                    key="plan_baseline") / 100
    effect = cols[1].number_input("Smallest lift worth finding (points)", 0.1, 50.0, 1.0, 0.1, key="plan_mde") / 100
    power = cols[2].slider("Power", 0.5, 0.99, 0.8, 0.01, key="plan_power",
                           help="Chance of finding the lift when it is real.")
    alpha = cols[3].select_slider("Significance", [0.01, 0.05, 0.1], 0.05, key="plan_alpha",
                                  help="Chance of a false alarm when there is no lift (two-sided).")
    try:
        st.metric("Members per arm", f"{sample_size_per_arm(baseline, effect, power, alpha):,}",
                  help="Two-sided test of two proportions, normal approximation.")
    except InputError as problem:
        st.error(str(problem), icon=":material/calculate:")
