"""Campaign results: what every past campaign returned against its holdout control, compared by type and channel,
over time, for retention, and how often members were messaged."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.campaign_results import (
    DEFAULT_CAP,
    DEFAULT_MARGIN,
    RESULT_HELP,
    pooled_effects,
    retention_effect,
    roi_trend,
    summarise_results,
)
from analytics.programme import CURRENCY, CURRENCY_SYMBOL
from analytics.storage.contract import CAMPAIGN_CHANNELS, CAMPAIGN_TYPES
from ui.cached import cached_campaign_results, cached_send_frequency
from ui.context import page_inputs
from ui.format import change_pp, count, label, money, share

ctx = page_inputs("campaign_results")
filters = ctx.filters

st.title("Campaign results")
st.caption(f"Campaigns that started from {filters.start:%d %b %Y} to {filters.end:%d %b %Y}, each treatment arm "
           "against its holdout control (the Experiment read-out's statistics). A campaign's channel is its message "
           "channel: the sales-channel and tier filters do not apply.")
choose = st.columns(4)
campaign_type = choose[0].selectbox("Type", [None, *CAMPAIGN_TYPES], format_func=lambda t: "All types" if t is None
                                    else label(t), key="results_type")
channel = choose[1].selectbox("Message channel", [None, *CAMPAIGN_CHANNELS], key="results_channel",
                              format_func=lambda c: "All channels" if c is None else c.upper() if c == "sms"
                              else label(c))
margin = choose[2].number_input("Margin on incremental revenue (%)", 0.0, 100.0, DEFAULT_MARGIN * 100, 5.0,
                                key="results_margin", help=RESULT_HELP["roi"]) / 100
message_cost = choose[3].number_input(f"Cost per message ({CURRENCY})", 0.0, 1_000.0, 0.0, 0.01, format="%.2f",
                                      key="results_message_cost", help="The warehouse holds no message costs.")
results = cached_campaign_results(ctx.engine, filters, campaign_type, channel, margin, message_cost)
if results.empty:
    st.info(f"No campaign started between {filters.start:%d %b %Y} and {filters.end:%d %b %Y} with these choices. "
            "Widen the date range in the sidebar.", icon=":material/campaign:")
    st.stop()

summary = summarise_results(results)
cards = st.columns(4)
cards[0].metric("Campaigns", count(summary.campaigns), border=True,
                delta=f"{count(summary.with_control)} with a control group", delta_color="off", delta_arrow="off")
cards[1].metric("Incremental revenue", money(summary.incremental_revenue), border=True,
                help=RESULT_HELP["incremental_revenue"])
cards[2].metric("Coupon and message cost", money(summary.cost), border=True, help=RESULT_HELP["coupon_cost"])
cards[3].metric("Realised ROI", share(summary.roi), border=True, help=RESULT_HELP["roi"])

table_tab, compare_tab, trend_tab, retention_tab, frequency_tab = st.tabs(
    ["Campaigns", "By type and channel", "ROI over time", "Retention", "Send frequency"], key="results_tab",
    on_change="rerun")
if table_tab.open:
    with table_tab:
        shown = results.assign(type=results["type"].map(label))
        percent = {c: st.column_config.NumberColumn(title, format="percent", help=RESULT_HELP.get(key))
                   for c, title, key in (("open_rate", "Open rate", "open_rate"), ("click_rate", "CTR", "click_rate"),
                                         ("treatment_rate", "Conversion, treatment", "conversion"),
                                         ("control_rate", "Conversion, control", "conversion"),
                                         ("roi", "ROI", "roi"), ("roi_low", "ROI, 95% low", "roi"),
                                         ("roi_high", "ROI, 95% high", "roi"),
                                         ("treatment_retention", "Ordered again, treatment", "retention"),
                                         ("control_retention", "Ordered again, control", "retention"))}
        columns = {
            "campaign_id": st.column_config.TextColumn("Campaign", pinned=True),
            "read_out": st.column_config.LinkColumn("Read-out", display_text="Open read-out",
                                                    help="The campaign's Experiment read-out."),
            "name": "Name", "type": "Type", "channel": "Channel",
            "start_at": st.column_config.DateColumn("Start", format="YYYY-MM-DD"),
            "sent": st.column_config.NumberColumn("Sent", format="localized", help=RESULT_HELP["sent"]),
            "open_rate": percent["open_rate"], "click_rate": percent["click_rate"],
            "treatment_rate": percent["treatment_rate"], "control_rate": percent["control_rate"],
            "lift": st.column_config.NumberColumn("Lift (pp)", format="percent", help=RESULT_HELP["lift"]),
            "incremental_conversions": st.column_config.NumberColumn("Incremental conversions", format="%.1f",
                                                                     help=RESULT_HELP["incremental_conversions"]),
            "incremental_low": st.column_config.NumberColumn("95% low", format="%.1f"),
            "incremental_high": st.column_config.NumberColumn("95% high", format="%.1f"),
            "incremental_revenue": st.column_config.NumberColumn(
                f"Incremental revenue ({CURRENCY_SYMBOL})", format="%.0f", help=RESULT_HELP["incremental_revenue"]),
            "revenue_low": st.column_config.NumberColumn("95% low", format="%.0f"),
            "revenue_high": st.column_config.NumberColumn("95% high", format="%.0f"),
            "coupon_cost": st.column_config.NumberColumn(f"Coupon cost ({CURRENCY_SYMBOL})", format="%.0f",
                                                         help=RESULT_HELP["coupon_cost"]),
            "roi": percent["roi"], "roi_low": percent["roi_low"], "roi_high": percent["roi_high"],
            "p_value": st.column_config.NumberColumn("p-value", format="%.3f"),
        }
        st.dataframe(shown, hide_index=True, column_config=columns, column_order=list(columns), key="results_table",
                     placeholder="—")
        st.caption("Click a column header to sort. Rows without figures had an empty arm (no control group). "
                   + RESULT_HELP["conversion"])
        st.download_button("Download the table (CSV)", results.drop(columns=["treatment_revenue_sq",
                                                                           "control_revenue_sq"]).to_csv(index=False),
                           file_name=f"memberlens_campaign_results_{filters.start}_{filters.end}.csv",
                           mime="text/csv", icon=":material/download:", key="results_csv")
if compare_tab.open:
    with compare_tab:
        by = st.segmented_control("Pool by", ["type", "channel"], default="type", required=True, key="results_by",
                                  format_func={"type": "Campaign type", "channel": "Message channel"}.get)
        pooled = pooled_effects(results, by)
        if pooled.empty:
            st.info("No campaign with a control group to pool.", icon=":material/science:")
        else:
            shown = pooled.assign(**{by: pooled[by].map(label)})
            figure = go.Figure(go.Scatter(
                x=shown["uplift"], y=shown[by], mode="markers", marker={"size": 11, "color": "#C2185B"},
                error_x={"type": "data", "symmetric": False, "array": shown["uplift_high"] - shown["uplift"],
                         "arrayminus": shown["uplift"] - shown["uplift_low"]},
                customdata=shown[["campaigns", "uplift_low", "uplift_high"]],
                hovertemplate="%{y}: %{x:+.2%} (95%: %{customdata[1]:+.2%} to %{customdata[2]:+.2%}), "
                              "%{customdata[0]} campaigns<extra></extra>"))
            figure.add_vline(x=0, line_dash="dot", line_color="#9e9e9e")
            figure.update_xaxes(title="Pooled conversion uplift (treatment − control), 95% interval",
                                tickformat="+.1%")
            figure.update_yaxes(title={"type": "Campaign type", "channel": "Message channel"}[by])
            figure.update_layout(title=f"Pooled uplift by {by}", height=120 + 60 * len(shown),
                                 margin={"l": 10, "r": 10, "t": 50, "b": 10})
            st.plotly_chart(figure, key="results_pooled")
            st.dataframe(shown, hide_index=True, column_config={
                by: by.capitalize(), "campaigns": st.column_config.NumberColumn("Campaigns", format="localized"),
                "treatment_members": st.column_config.NumberColumn("Treated members", format="localized"),
                "uplift": st.column_config.NumberColumn("Uplift", format="percent", help=RESULT_HELP["pooled"]),
                "uplift_low": st.column_config.NumberColumn("95% low", format="percent"),
                "uplift_high": st.column_config.NumberColumn("95% high", format="percent"),
                "tau2": st.column_config.NumberColumn("τ² (between campaigns)", format="%.2e"),
                "incremental_conversions": st.column_config.NumberColumn("Incremental conversions", format="%.1f"),
                "incremental_revenue": st.column_config.NumberColumn("Incremental revenue", format="%.0f"),
                "cost": st.column_config.NumberColumn("Cost", format="%.0f"),
                "roi": st.column_config.NumberColumn("ROI", format="percent", help=RESULT_HELP["roi"])})
            st.caption(RESULT_HELP["pooled"])
if trend_tab.open:
    with trend_tab:
        grain = "week" if filters.days <= 120 else "month"
        trend = roi_trend(results, filters, grain)
        figure = px.bar(trend, x="period_start", y="roi", color_discrete_sequence=["#C2185B"],
                        custom_data=["campaigns", "incremental_margin", "cost"],
                        labels={"period_start": "Week starting" if grain == "week" else "Month",
                                "roi": "Realised ROI"})
        figure.update_traces(hovertemplate="%{x|%d %b %Y}: %{y:.0%} from %{customdata[0]} campaigns (margin "
                             + CURRENCY_SYMBOL + "%{customdata[1]:,.0f}, cost " + CURRENCY_SYMBOL
                             + "%{customdata[2]:,.0f})<extra></extra>")
        figure.update_yaxes(tickformat=".0%")
        figure.update_layout(title=f"Realised ROI of the campaigns starting each {grain}", height=380,
                             margin={"l": 10, "r": 10, "t": 50, "b": 10})
        st.plotly_chart(figure, key="results_trend")
        st.caption(RESULT_HELP["roi"] + " Empty where no campaign started or nothing was spent.")
if retention_tab.open:
    with retention_tab:
        effect = retention_effect(results)
        if effect is None:
            st.info("No campaign with converted members in both arms.", icon=":material/replay:")
        else:
            cards = st.columns(3)
            cards[0].metric("Ordered again, treatment", share(effect.treatment.rate), border=True,
                            delta=f"of {count(effect.treatment.members)} converted", delta_color="off",
                            delta_arrow="off", help=RESULT_HELP["retention"])
            cards[1].metric("Ordered again, control", share(effect.control.rate), border=True,
                            delta=f"of {count(effect.control.members)} converted", delta_color="off",
                            delta_arrow="off", help=RESULT_HELP["retention"])
            cards[2].metric("Difference", change_pp(effect.difference) or "—", border=True,
                            delta=f"95%: {change_pp(effect.ci[0])} to {change_pp(effect.ci[1])}, "
                                  f"p = {effect.p_value:.2g}", delta_color="off", delta_arrow="off",
                            help="Two-proportion z-test, pooled over the campaigns with converters in both arms.")
            st.dataframe(results.assign(type=results["type"].map(label)), hide_index=True,
                         column_order=["campaign_id", "name", "type", "treatment_conversions", "treatment_retention",
                                       "control_conversions", "control_retention"],
                         column_config={"campaign_id": "Campaign", "name": "Name", "type": "Type",
                                        "treatment_conversions": st.column_config.NumberColumn(
                                            "Converted, treatment", format="localized"),
                                        "treatment_retention": st.column_config.NumberColumn(
                                            "Ordered again", format="percent"),
                                        "control_conversions": st.column_config.NumberColumn(
                                            "Converted, control", format="localized"),
                                        "control_retention": st.column_config.NumberColumn(
                                            "Ordered again", format="percent")})
            st.caption(RESULT_HELP["retention"])
if frequency_tab.open:
    with frequency_tab:
        cap = int(st.number_input("Cap: messages per member per 30 days", 1, 1_000, DEFAULT_CAP,
                                  key="results_cap", help=RESULT_HELP["frequency"]))
        frequency = cached_send_frequency(ctx.engine, filters, cap)
        cards = st.columns(2)
        cards[0].metric("Members messaged", count(frequency.members), border=True)
        cards[1].metric("Reached too often", count(frequency.over_cap), border=True, help=RESULT_HELP["frequency"],
                        delta=f"more than {cap} in a 30-day block", delta_color="off", delta_arrow="off")
        histogram = frequency.histogram
        figure = go.Figure(go.Bar(x=histogram["sends"], y=histogram["members"],
                                  marker_color=["#d32f2f" if s > cap else "#90a4ae" for s in histogram["sends"]],
                                  hovertemplate="%{x} messages: %{y:,} members<extra></extra>"))
        figure.add_vline(x=cap + 0.5, line_dash="dash", line_color="#d32f2f", annotation_text=f"cap {cap}")
        figure.update_xaxes(title="Most messages in one 30-day block", dtick=1)
        figure.update_yaxes(title="Members")
        figure.update_layout(title=f"Messages per member per 30 days ({frequency.blocks} blocks)", height=360,
                             margin={"l": 10, "r": 10, "t": 50, "b": 10})
        st.plotly_chart(figure, key="results_frequency")
        st.caption(RESULT_HELP["frequency"])
