"""Campaign results: what every past campaign returned against its holdout control, compared by type and channel,
over time, for retention, and how often members were messaged."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.campaign_results import (
    DEFAULT_CAP,
    DEFAULT_MARGIN,
    pooled_effects,
    result_help,
    retention_effect,
    roi_trend,
    summarise_results,
)
from analytics.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, _, format_day, language, translated
from analytics.programme import CURRENCY, CURRENCY_SYMBOL
from analytics.storage.contract import CAMPAIGN_CHANNELS, CAMPAIGN_TYPES
from ui.cached import cached_campaign_results, cached_send_frequency
from ui.context import page_inputs
from ui.format import change_pp, count, label, money, share
from ui.look import show_chart

POOL_BY = {"type": N_("Campaign type"), "channel": N_("Message channel")}
#: The download's column headers in other languages than English (English keeps the command line's names).
CSV_HEADERS = {
    "campaign_id": N_("Campaign"), "name": N_("Campaign name"), "type": N_("Type"), "channel": N_("Channel"),
    "start_at": N_("Start"), "end_at": N_("End"), "holdout_pct": N_("Planned holdout (%)"),
    "treatment_members": N_("Treated members"), "control_members": N_("Control members"), "sent": N_("Sent"),
    "opened": N_("Opened"), "clicked": N_("Clicked"), "open_rate": N_("Open rate"), "click_rate": N_("CTR"),
    "treatment_conversions": N_("Converted, treatment"), "control_conversions": N_("Converted, control"),
    "treatment_rate": N_("Conversion, treatment"), "control_rate": N_("Conversion, control"),
    "lift": N_("Lift (pp)"), "lift_low": N_("Lift, 95% low"), "lift_high": N_("Lift, 95% high"),
    "p_value": N_("p-value"), "srm_p_value": N_("Sample-ratio p-value"),
    "incremental_conversions": N_("Incremental conversions"), "incremental_low": N_("Incremental conversions, 95% low"),
    "incremental_high": N_("Incremental conversions, 95% high"), "treatment_revenue": N_("Revenue, treatment"),
    "control_revenue": N_("Revenue, control"), "incremental_revenue": N_("Incremental revenue"),
    "revenue_low": N_("Incremental revenue, 95% low"), "revenue_high": N_("Incremental revenue, 95% high"),
    "coupon_value": N_("Coupon value"), "coupons_redeemed": N_("Coupons redeemed"), "coupon_cost": N_("Coupon cost"),
    "message_cost": N_("Message cost"), "cost": N_("Cost"), "incremental_margin": N_("Incremental margin"),
    "roi": N_("ROI"), "roi_low": N_("ROI, 95% low"), "roi_high": N_("ROI, 95% high"),
    "treatment_retained": N_("Ordered again, treatment (members)"),
    "control_retained": N_("Ordered again, control (members)"),
    "treatment_retention": N_("Ordered again, treatment"), "control_retention": N_("Ordered again, control"),
    "read_out": N_("Read-out"),
}
ctx = page_inputs("campaign_results")
filters = ctx.filters

st.title(_("Campaign results"))
st.caption(_("Campaigns that started from {start} to {end}, each treatment arm against its holdout control (the "
             "Experiment read-out's statistics). A campaign's channel is its message channel: the sales-channel and "
             "tier filters do not apply.").format(start=format_day(filters.start), end=format_day(filters.end)))
choose = st.columns(4)
campaign_type = choose[0].selectbox(_("Type"), [None, *CAMPAIGN_TYPES], format_func=lambda t: _("All types")
                                    if t is None else label(t), key="results_type")
channel = choose[1].selectbox(_("Message channel"), [None, *CAMPAIGN_CHANNELS], key="results_channel",
                              format_func=lambda c: _("All channels") if c is None else label(c))
margin = choose[2].number_input(_("Margin on incremental revenue (%)"), 0.0, 100.0, DEFAULT_MARGIN * 100, 5.0,
                                key="results_margin", help=result_help("roi")) / 100
message_cost = choose[3].number_input(_("Cost per message ({currency})").format(currency=CURRENCY), 0.0, 1_000.0,
                                      0.0, 0.01, format="%.2f", key="results_message_cost",
                                      help=_("The warehouse holds no message costs."))
results = cached_campaign_results(ctx.engine, filters, campaign_type, channel, margin, message_cost)
if results.empty:
    st.info(_("No campaign started between {start} and {end} with these choices. Widen the date range in the "
              "sidebar.").format(start=format_day(filters.start), end=format_day(filters.end)),
            icon=":material/campaign:")
    st.stop()

summary = summarise_results(results)
cards = st.columns(4)
cards[0].metric(_("Campaigns"), count(summary.campaigns), border=True,
                delta=_("{n} with a control group").format(n=count(summary.with_control)), delta_color="off",
                delta_arrow="off")
cards[1].metric(_("Incremental revenue"), money(summary.incremental_revenue), border=True,
                help=result_help("incremental_revenue"))
cards[2].metric(_("Coupon and message cost"), money(summary.cost), border=True, help=result_help("coupon_cost"))
cards[3].metric(_("Realised ROI"), share(summary.roi), border=True, help=result_help("roi"))

TABS = (N_("Campaigns"), N_("By type and channel"), N_("ROI over time"), N_("Retention"), N_("Send frequency"))
open_tab = st.session_state.get("results_tab")  # kept by its label: after a language switch, the same tab
for tab in TABS:
    if open_tab in {translated(lang, tab) for lang in LANGUAGES} and open_tab != _(tab):
        st.session_state["results_tab"] = _(tab)
table_tab, compare_tab, trend_tab, retention_tab, frequency_tab = st.tabs(
    [_(t) for t in TABS], key="results_tab", on_change="rerun")
if table_tab.open:
    with table_tab:
        shown = results.assign(type=results["type"].map(label), channel=results["channel"].map(label))
        low, high = _("95% low"), _("95% high")
        percent = {c: st.column_config.NumberColumn(title, format="percent", help=result_help(key))
                   for c, title, key in (("open_rate", _("Open rate"), "open_rate"),
                                         ("click_rate", _("CTR"), "click_rate"),
                                         ("treatment_rate", _("Conversion, treatment"), "conversion"),
                                         ("control_rate", _("Conversion, control"), "conversion"),
                                         ("roi", _("ROI"), "roi"), ("roi_low", _("ROI, 95% low"), "roi"),
                                         ("roi_high", _("ROI, 95% high"), "roi"),
                                         ("treatment_retention", _("Ordered again, treatment"), "retention"),
                                         ("control_retention", _("Ordered again, control"), "retention"))}
        columns = {
            "campaign_id": st.column_config.TextColumn(_("Campaign"), pinned=True),
            "read_out": st.column_config.LinkColumn(_("Read-out"), display_text=_("Open read-out"),
                                                    help=_("The campaign's Experiment read-out.")),
            "name": _("Campaign name"), "type": _("Type"), "channel": _("Channel"),
            "start_at": st.column_config.DateColumn(_("Start"), format="YYYY-MM-DD"),
            "sent": st.column_config.NumberColumn(_("Sent"), format="localized", help=result_help("sent")),
            "open_rate": percent["open_rate"], "click_rate": percent["click_rate"],
            "treatment_rate": percent["treatment_rate"], "control_rate": percent["control_rate"],
            "lift": st.column_config.NumberColumn(_("Lift (pp)"), format="percent", help=result_help("lift")),
            "incremental_conversions": st.column_config.NumberColumn(_("Incremental conversions"), format="%.1f",
                                                                     help=result_help("incremental_conversions")),
            "incremental_low": st.column_config.NumberColumn(low, format="%.1f"),
            "incremental_high": st.column_config.NumberColumn(high, format="%.1f"),
            "incremental_revenue": st.column_config.NumberColumn(
                _("Incremental revenue ({symbol})").format(symbol=CURRENCY_SYMBOL), format="%.0f",
                help=result_help("incremental_revenue")),
            "revenue_low": st.column_config.NumberColumn(low, format="%.0f"),
            "revenue_high": st.column_config.NumberColumn(high, format="%.0f"),
            "coupon_cost": st.column_config.NumberColumn(_("Coupon cost ({symbol})").format(symbol=CURRENCY_SYMBOL),
                                                         format="%.0f", help=result_help("coupon_cost")),
            "roi": percent["roi"], "roi_low": percent["roi_low"], "roi_high": percent["roi_high"],
            "p_value": st.column_config.NumberColumn(_("p-value"), format="%.3f"),
        }
        st.dataframe(shown, hide_index=True, column_config=columns, column_order=list(columns), key="results_table",
                     placeholder="—")
        st.caption(_("Click a column header to sort. Rows without figures had an empty arm (no control group). ")
                   + result_help("conversion"))
        table = results.drop(columns=["treatment_revenue_sq", "control_revenue_sq"])
        if language() != DEFAULT_LANGUAGE:
            table = table.assign(type=table["type"].map(label), channel=table["channel"].map(label)).rename(
                columns={c: _(h) for c, h in CSV_HEADERS.items()})
        st.download_button(_("Download the table (CSV)"), table.to_csv(index=False),
                           file_name=f"memberlens_campaign_results_{filters.start}_{filters.end}.csv",
                           mime="text/csv", icon=":material/download:", key="results_csv")
if compare_tab.open:
    with compare_tab:
        by = st.segmented_control(_("Pool by"), ["type", "channel"], default="type", required=True, key="results_by",
                                  format_func=lambda b: _(POOL_BY[b]))
        pooled = pooled_effects(results, by)
        if pooled.empty:
            st.info(_("No campaign with a control group to pool."), icon=":material/science:")
        else:
            shown = pooled.assign(**{by: pooled[by].map(label)})
            figure = go.Figure(go.Scatter(
                x=shown["uplift"], y=shown[by], mode="markers", marker={"size": 11, "color": "#C2185B"},
                error_x={"type": "data", "symmetric": False, "array": shown["uplift_high"] - shown["uplift"],
                         "arrayminus": shown["uplift"] - shown["uplift_low"]},
                customdata=shown[["campaigns", "uplift_low", "uplift_high"]],
                hovertemplate=_("%{y}: %{x:+.2%} (95%: %{customdata[1]:+.2%} to %{customdata[2]:+.2%}), "
                                "%{customdata[0]} campaigns") + "<extra></extra>"))
            figure.add_vline(x=0, line_dash="dot", line_color="#9e9e9e")
            figure.update_xaxes(title=_("Pooled conversion uplift (treatment − control), 95% interval"),
                                tickformat="+.1%")
            figure.update_yaxes(title=_(POOL_BY[by]))
            figure.update_layout(title=_("Pooled uplift by type") if by == "type" else
                                 _("Pooled uplift by channel"), height=120 + 60 * len(shown),
                                 margin={"l": 10, "r": 10, "t": 50, "b": 10})
            show_chart(figure, key="results_pooled")
            st.dataframe(shown, hide_index=True, column_config={
                by: _("Type") if by == "type" else _("Channel"),
                "campaigns": st.column_config.NumberColumn(_("Campaigns"), format="localized"),
                "treatment_members": st.column_config.NumberColumn(_("Treated members"), format="localized"),
                "uplift": st.column_config.NumberColumn(_("Uplift"), format="percent", help=result_help("pooled")),
                "uplift_low": st.column_config.NumberColumn(_("95% low"), format="percent"),
                "uplift_high": st.column_config.NumberColumn(_("95% high"), format="percent"),
                "tau2": st.column_config.NumberColumn(_("τ² (between campaigns)"), format="%.2e"),
                "incremental_conversions": st.column_config.NumberColumn(_("Incremental conversions"),
                                                                         format="%.1f"),
                "incremental_revenue": st.column_config.NumberColumn(_("Incremental revenue"), format="%.0f"),
                "cost": st.column_config.NumberColumn(_("Cost"), format="%.0f"),
                "roi": st.column_config.NumberColumn(_("ROI"), format="percent", help=result_help("roi"))})
            st.caption(result_help("pooled"))
if trend_tab.open:
    with trend_tab:
        grain = "week" if filters.days <= 120 else "month"
        trend = roi_trend(results, filters, grain)
        trend["period_label"] = trend["period_start"].map(format_day)
        figure = px.bar(trend, x="period_start", y="roi", color_discrete_sequence=["#C2185B"],
                        custom_data=["campaigns", "incremental_margin", "cost", "period_label"],
                        labels={"period_start": _("Week starting") if grain == "week" else _("Month"),
                                "roi": _("Realised ROI")})
        figure.update_traces(hovertemplate=_("%{customdata[3]}: %{y:.0%} from %{customdata[0]} campaigns (margin "
                                             "¥%{customdata[1]:,.0f}, cost ¥%{customdata[2]:,.0f})")
                             .replace("¥", CURRENCY_SYMBOL) + "<extra></extra>")
        figure.update_yaxes(tickformat=".0%")
        figure.update_layout(title=_("Realised ROI of the campaigns starting each week") if grain == "week" else
                             _("Realised ROI of the campaigns starting each month"), height=380,
                             margin={"l": 10, "r": 10, "t": 50, "b": 10})
        show_chart(figure, key="results_trend")
        st.caption(result_help("roi") + _(" Empty where no campaign started or nothing was spent."))
if retention_tab.open:
    with retention_tab:
        effect = retention_effect(results)
        if effect is None:
            st.info(_("No campaign with converted members in both arms."), icon=":material/replay:")
        else:
            cards = st.columns(3)
            cards[0].metric(_("Ordered again, treatment"), share(effect.treatment.rate), border=True,
                            delta=_("of {n} converted").format(n=count(effect.treatment.members)), delta_color="off",
                            delta_arrow="off", help=result_help("retention"))
            cards[1].metric(_("Ordered again, control"), share(effect.control.rate), border=True,
                            delta=_("of {n} converted").format(n=count(effect.control.members)), delta_color="off",
                            delta_arrow="off", help=result_help("retention"))
            cards[2].metric(_("Difference"), change_pp(effect.difference) or "—", border=True,
                            delta=_("95%: {low} to {high}, p = {p}").format(
                                low=change_pp(effect.ci[0]), high=change_pp(effect.ci[1]), p=f"{effect.p_value:.2g}"),
                            delta_color="off", delta_arrow="off",
                            help=_("Two-proportion z-test, pooled over the campaigns with converters in both arms."))
            st.dataframe(results.assign(type=results["type"].map(label)), hide_index=True,
                         column_order=["campaign_id", "name", "type", "treatment_conversions", "treatment_retention",
                                       "control_conversions", "control_retention"],
                         column_config={"campaign_id": _("Campaign"), "name": _("Campaign name"), "type": _("Type"),
                                        "treatment_conversions": st.column_config.NumberColumn(
                                            _("Converted, treatment"), format="localized"),
                                        "treatment_retention": st.column_config.NumberColumn(
                                            _("Ordered again"), format="percent"),
                                        "control_conversions": st.column_config.NumberColumn(
                                            _("Converted, control"), format="localized"),
                                        "control_retention": st.column_config.NumberColumn(
                                            _("Ordered again"), format="percent")})
            st.caption(result_help("retention"))
if frequency_tab.open:
    with frequency_tab:
        cap = int(st.number_input(_("Cap: messages per member per 30 days"), 1, 1_000, DEFAULT_CAP,
                                  key="results_cap", help=result_help("frequency")))
        frequency = cached_send_frequency(ctx.engine, filters, cap)
        cards = st.columns(2)
        cards[0].metric(_("Members messaged"), count(frequency.members), border=True)
        cards[1].metric(_("Reached too often"), count(frequency.over_cap), border=True, help=result_help("frequency"),
                        delta=_("more than {cap} in a 30-day block").format(cap=cap), delta_color="off",
                        delta_arrow="off")
        histogram = frequency.histogram
        figure = go.Figure(go.Bar(x=histogram["sends"], y=histogram["members"],
                                  marker_color=["#d32f2f" if s > cap else "#90a4ae" for s in histogram["sends"]],
                                  hovertemplate=_("%{x} messages: %{y:,} members") + "<extra></extra>"))
        figure.add_vline(x=cap + 0.5, line_dash="dash", line_color="#d32f2f",
                         annotation_text=_("cap {cap}").format(cap=cap))
        figure.update_xaxes(title=_("Most messages in one 30-day block"), dtick=1)
        figure.update_yaxes(title=_("Members"))
        figure.update_layout(title=_("Messages per member per 30 days ({blocks} blocks)").format(
                                 blocks=frequency.blocks), height=360, margin={"l": 10, "r": 10, "t": 50, "b": 10})
        show_chart(figure, key="results_frequency")
        st.caption(result_help("frequency"))
