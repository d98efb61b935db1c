"""The Campaign targeting page's read-outs of an audience: reach, profile, overlap, control balance and forecast.

Each reads widgets, calls the cached analytics and draws; the figures and their definitions live in
``analytics.audience_report`` and ``analytics.forecast``.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import plotly.express as px
import streamlit as st
from sqlalchemy import Engine

from analytics import audience_report, forecast
from analytics.targeting import CHANNELS, CampaignAudience, Preview
from ui.cached import (
    cached_audience_profile,
    cached_balance,
    cached_forecast,
    cached_forecast_types,
    cached_overlap,
)
from ui.format import MISSING, label, money, share

CURRENT = "This audience"


def reach_chart(sizes: Preview) -> None:
    reach = pd.DataFrame({"channel": list(CHANNELS) * 2,
                          "arm": ["treatment"] * len(CHANNELS) + ["control"] * len(CHANNELS),
                          "members": [sizes.reachable_treatment[c] for c in CHANNELS]
                          + [sizes.reachable[c] - sizes.reachable_treatment[c] for c in CHANNELS]})
    chart = px.bar(reach, x="members", y="channel", color="arm", orientation="h", text_auto=",d",
                   labels={"members": "Reachable targeted members", "channel": "", "arm": ""},
                   color_discrete_map={"treatment": "#1b9e77", "control": "#bdbdbd"})
    chart.update_layout(height=220, margin={"l": 0, "r": 0, "t": 10, "b": 0}, legend={"orientation": "h"})
    st.plotly_chart(chart, key="target_reach")
    st.caption("Treatment members are the ones a campaign on that channel would message; the control group is "
               "held out.")


def profile_view(engine: Engine, audience: CampaignAudience, targeted: int) -> None:
    if targeted == 0:
        st.info("The audience is empty: nothing to profile.", icon=":material/person_search:")
        return
    profile = cached_audience_profile(engine, audience)
    summary = profile.summary.set_index("measure")
    cards = st.columns(4)
    for card, (measure, title, shown) in zip(cards, [("buyers_share", "Bought in the window", share),
                                                     ("sales_per_member", "Net sales per member", money),
                                                     ("orders_per_member", "Orders per member", "{:.2f}".format),
                                                     ("aov", "AOV", money)], strict=True):
        ours, everyone = summary.loc[measure, "audience"], summary.loc[measure, "all_members"]
        card.metric(title, shown(ours) if pd.notna(ours) else MISSING, border=True,
                    delta=f"all members: {shown(everyone)}" if pd.notna(everyone) else None,
                    delta_color="off", delta_arrow="off",
                    help="Completed orders in the window; the audience (both arms) against all members.")
    dimension = st.segmented_control("Compare by", list(audience_report.PROFILE_DIMENSIONS), default="tier",
                                     required=True, format_func=audience_report.PROFILE_DIMENSIONS.get,
                                     key="target_profile_dimension")
    mix = profile.mix[profile.mix["dimension"] == dimension]
    _shares_chart(mix, "value", "Share of members", 48, "target_profile_chart")
    st.caption("Index = the audience's share / all members' share × 100 (above 100: over-represented). RFM "
               "segments are scored over the window; '(no purchase)' = no completed order in it.")
    st.dataframe(mix[["value", "audience", "all_members", "audience_share", "all_share", "index"]], hide_index=True,
                 column_config={"value": label(dimension), "audience": st.column_config.NumberColumn(
                     CURRENT, format="localized"), "all_members": st.column_config.NumberColumn(
                     "All members", format="localized"), "audience_share": st.column_config.NumberColumn(
                     "Audience share", format="percent"), "all_share": st.column_config.NumberColumn(
                     "All members' share", format="percent"), "index": st.column_config.NumberColumn(
                     "Index", format="%.0f")})
    st.markdown("**Category mix** (share of net line amounts in the window)")
    _shares_chart(profile.categories.head(12), "category", "Share of net sales", 40, "target_category_chart")


def _shares_chart(frame: pd.DataFrame, by: str, title: str, row_height: int, key: str) -> None:
    """The audience's shares against all members', as paired horizontal bars."""
    long = frame.melt(id_vars=by, value_vars=["audience_share", "all_share"], var_name="who", value_name="share")
    long["who"] = long["who"].map({"audience_share": CURRENT, "all_share": "All members"})
    chart = px.bar(long, x="share", y=by, color="who", barmode="group", orientation="h", text_auto=".0%",
                   labels={"share": title, by: "", "who": ""},
                   color_discrete_map={CURRENT: "#1b9e77", "All members": "#bdbdbd"})
    chart.update_layout(height=max(240, row_height * len(frame)), margin={"l": 0, "r": 0, "t": 10, "b": 0},
                        xaxis_tickformat=".0%", yaxis={"autorange": "reversed"}, legend={"orientation": "h"})
    st.plotly_chart(chart, key=key)


def overlap_view(engine: Engine, audience: CampaignAudience, saved_labels: list[str],
                 saved_audience: Callable[[str], CampaignAudience]) -> None:
    if not saved_labels:
        st.info("No saved audience to compare with yet: save one under **Save**.", icon=":material/join_inner:")
        return
    chosen = st.multiselect("Compare with saved audiences", saved_labels, default=saved_labels[:3],
                            max_selections=audience_report.MAX_OVERLAP - 1, key="target_overlap_with",
                            help="Members targeted by both: each audience after its own frequency cap and maximum "
                                 "size, both arms.")
    if not chosen:
        return
    matrix = cached_overlap(engine, ((CURRENT, audience), *((name, saved_audience(name)) for name in chosen)))
    shares = audience_report.overlap_shares(matrix)
    text = [[f"{matrix.iloc[i, j]:,}<br>{shares.iloc[i, j]:.0%}" if pd.notna(shares.iloc[i, j]) else "0"
             for j in range(len(matrix))] for i in range(len(matrix))]
    chart = px.imshow(shares, color_continuous_scale="Greens", zmin=0, zmax=1, aspect="auto",
                      labels={"x": "", "y": "", "color": "Share of row"})
    chart.update_traces(text=text, texttemplate="%{text}", hovertemplate="%{y} ∩ %{x}: %{text}<extra></extra>")
    chart.update_layout(height=120 + 60 * len(matrix), margin={"l": 0, "r": 0, "t": 10, "b": 0})
    st.plotly_chart(chart, key="target_overlap_chart")
    st.caption("Each cell: members in both audiences, and that number as a share of the row's audience (the "
               "diagonal is each audience's size).")


def balance_view(engine: Engine, audience: CampaignAudience, sizes: Preview) -> None:
    if sizes.control == 0 or sizes.treatment == 0:
        st.info("Set a control group share (and have members in both arms) to check the balance.",
                icon=":material/balance:")
        return
    table = cached_balance(engine, audience)
    verdict = audience_report.balance_verdict(table, sizes.control)
    show = {"ok": st.success, "chance": st.info, "broken": st.error}[verdict.level]
    show(verdict.message, icon=":material/balance:")
    st.dataframe(table[["label", "treatment", "control", "smd", "p_value", "balanced"]], hide_index=True,
                 column_config={
        "label": "Attribute", "treatment": st.column_config.NumberColumn("Treatment", format="%.3f"),
        "control": st.column_config.NumberColumn("Control", format="%.3f"),
        "smd": st.column_config.NumberColumn("SMD", format="%+.3f", help=audience_report.BALANCE_HELP),
        "p_value": st.column_config.NumberColumn("p-value", format="%.3f", help="Two-sided test of the difference; "
                                                 "beyond chance below 0.05 / the number of attributes."),
        "balanced": st.column_config.CheckboxColumn("Balanced")})
    st.caption("Means for numbers, shares for category levels. " + audience_report.BALANCE_HELP)


def forecast_view(engine: Engine, sizes: Preview) -> None:
    kinds = cached_forecast_types(engine)
    if kinds.empty:
        st.info("There are no past campaigns in the warehouse to learn from: no forecast.",
                icon=":material/query_stats:")
        return
    st.caption(f"Learned from past campaigns of the same type and channel, their treatment against their control; "
               f"it needs at least {forecast.MIN_CAMPAIGNS} such campaigns and {forecast.MIN_CONTROL_MEMBERS:,} "
               "control members among them.")
    left, right = st.columns(2)
    campaign_type = left.selectbox("Campaign type", sorted(kinds["type"].unique()), key="target_forecast_type",
                                   format_func=label)
    channels = sorted(kinds.loc[kinds["type"] == campaign_type, "channel"])
    channel = right.selectbox("Channel", channels, key="target_forecast_channel")
    size = sizes.reachable_treatment.get(channel, 0)
    inputs = st.columns(4)
    coupon = inputs[0].number_input("Coupon value", 0.0, 10_000.0, 20.0, step=5.0, key="target_forecast_coupon")
    message_cost = inputs[1].number_input("Cost per message", 0.0, 100.0, 0.05, step=0.01, format="%.3f",
                                          key="target_forecast_message_cost")
    margin = inputs[2].slider("Margin", 0, 100, 30, format="%d%%", key="target_forecast_margin") / 100
    redemption = inputs[3].slider("Coupon use by converters", 0, 100, 100, format="%d%%",
                                  key="target_forecast_redemption") / 100
    result = cached_forecast(engine, campaign_type, channel, size, coupon, message_cost, margin, redemption)
    if not result.enough_history:
        st.info(result.message, icon=":material/query_stats:")
        return
    st.markdown(f"Sending to the **{size:,}** reachable treatment members on {channel}:")
    cards = st.columns(4)
    low, high = result.incremental_ci
    cards[0].metric("Response rate", f"{result.response_rate:.2%}", border=True,
                    help=f"Over {result.campaigns_used} past campaigns' treatment arms "
                         f"(control: {result.control_rate:.2%}).")
    cards[1].metric("Incremental conversions", f"{result.incremental_conversions:,.0f}", border=True,
                    delta=f"95% interval {low:,.0f} to {high:,.0f}", delta_color="off", delta_arrow="off",
                    help="Members × the pooled uplift (DerSimonian–Laird random effects over the past campaigns).")
    cards[2].metric("Coupon cost", money(result.coupon_cost), border=True,
                    help="Expected conversions × coupon use × coupon value: every converting treated member may use "
                         "it, not only the ones the campaign won.")
    roi_low, roi_high = result.roi_ci
    cards[3].metric("Expected ROI", f"{result.roi:+.0%}" if pd.notna(result.roi) else MISSING, border=True,
                    delta=f"{roi_low:+.0%} to {roi_high:+.0%}" if pd.notna(roi_low) else None,
                    delta_color="off", delta_arrow="off",
                    help="(Incremental margin − coupon cost − message cost) / (coupon cost + message cost); the "
                         "interval follows the uplift's.")
    st.caption(result.message)
