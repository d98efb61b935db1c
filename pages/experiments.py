"""Experiment read-out: did a past campaign work, against its holdout control; and how big the next one must be."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from analytics.errors import InputError
from analytics.experiments import METRIC_HELP, ExperimentError, sample_size_per_arm
from analytics.i18n import _, format_day
from ui.cached import cached_campaign_list, cached_read_out
from ui.context import page_inputs
from ui.format import format_value, label, plain_text
from ui.look import show_chart
from ui.recommendations import outcome_view

ctx = page_inputs("experiments")

st.title(_("Experiment read-out"))
listed = cached_campaign_list(ctx.engine, ctx.filters.scope)
if listed.empty:
    st.info(_("No campaign with members in the warehouse."), icon=":material/campaign:")
    st.stop()
labels = {row.campaign_id: _("{campaign} · {name} ({type}, {channel}, {start}, {members} members)").format(
              campaign=row.campaign_id, name=row.name, type=label(row.type), channel=label(row.channel),
              start=format_day(row.start_at), members=f"{row.members:,}") for row in listed.itertuples()}
# A link such as /experiments?campaign=CMP0001 (from Campaign results) opens that campaign, once per link.
linked = st.query_params.get("campaign")
if linked and linked not in labels:
    st.warning(_("The link names a campaign that is not here: {campaign}.").format(campaign=plain_text(linked[:40])),
               icon=":material/link_off:")
elif linked and linked != st.session_state.get("_experiment_linked"):
    st.session_state["_experiment_linked"] = linked
    st.session_state["experiment_campaign"] = linked
campaign = st.selectbox(_("Campaign"), list(labels), format_func=labels.get, key="experiment_campaign")
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
cards[0].metric(_("Conversion, treatment"), f"{t.rate:.2%}", border=True, help=_(METRIC_HELP["conversion_rate"]),
                delta=_("{points} pts vs control").format(points=f"{result.lift * 100:+.2f}"), delta_color="normal")
cards[1].metric(_("Conversion, control"), f"{c.rate:.2%}", border=True, help=_(METRIC_HELP["conversion_rate"]))
cards[2].metric(_("Lift"), _("{points} pts").format(points=f"{result.lift * 100:+.2f}"), border=True,
                delta=_("95%: {low} to {high}").format(low=f"{result.lift_ci[0] * 100:+.2f}",
                                                       high=f"{result.lift_ci[1] * 100:+.2f}"), delta_color="off",
                delta_arrow="off", help=_(METRIC_HELP["lift"]) + f" p = {result.rate_p_value:.3g}.")
cards[3].metric(_("Revenue per member"), format_value(t.revenue_per_member, "currency"), border=True,
                delta=_("{difference} vs control (p = {p})").format(difference=f"{result.revenue_diff:+,.2f}",
                                                                    p=f"{result.revenue_p_value:.2g}"),
                delta_color="normal", help=_(METRIC_HELP["revenue_per_member"]) + " " + _(METRIC_HELP["p_value"]))

bars = go.Figure(go.Bar(x=[label("treatment"), label("control")], y=[t.rate, c.rate],
                        marker_color=["#1b9e77", "#9e9e9e"],
                        text=[f"{t.rate:.2%}", f"{c.rate:.2%}"], textposition="outside",
                        customdata=[t.members, c.members],
                        hovertemplate=_("%{x}: %{y:.2%} of %{customdata:,} members") + "<extra></extra>"))
bars.update_layout(height=300, margin={"l": 0, "r": 0, "t": 10, "b": 0}, yaxis_tickformat=".1%",
                   yaxis_title=_("Conversion rate"))
show_chart(bars, key="experiment_rates")
st.caption(_("Members: {treatment} treatment, {control} control ({share}; {planned} planned, sample-ratio p = {p}). ")
           .format(treatment=f"{t.members:,}", control=f"{c.members:,}",
                   share=f"{c.members / (t.members + c.members):.1%}", planned=f"{result.planned_holdout:.0%}",
                   p=f"{result.srm_p_value:.2g}")
           + _(METRIC_HELP["srm"]))

outcome_view(ctx.engine, campaign)

with st.expander(_("Plan the next test: members needed per arm"), icon=":material/calculate:"):
    cols = st.columns(4)
    baseline = cols[0].number_input(_("Baseline conversion (%)"), 0.1, 99.0, max(round(c.rate * 100, 1), 0.1), 0.1,
                                    key="plan_baseline") / 100
    effect = cols[1].number_input(_("Smallest lift worth finding (points)"), 0.1, 50.0, 1.0, 0.1,
                                  key="plan_mde") / 100
    power = cols[2].slider(_("Power"), 0.5, 0.99, 0.8, 0.01, key="plan_power",
                           help=_("Chance of finding the lift when it is real."))
    alpha = cols[3].select_slider(_("Significance"), [0.01, 0.05, 0.1], 0.05, key="plan_alpha",
                                  help=_("Chance of a false alarm when there is no lift (two-sided)."))
    try:
        st.metric(_("Members per arm"), f"{sample_size_per_arm(baseline, effect, power, alpha):,}",
                  help=_("Two-sided test of two proportions, normal approximation."))
    except InputError as problem:
        st.error(str(problem), icon=":material/calculate:")
