"""Executive KPIs: the headline numbers with their change, a trend, and where sales come from.

The tier breakdown and the KPI cards come from one pass over orders, so the page reads the breakdown
choice first (its control sits at the bottom; the page fills slots top to bottom afterwards).
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from analytics.kpis import GRAINS, KPI_BY_KEY, KPIS
from analytics.privacy import safe_csv
from analytics.programme import CURRENCY, CURRENCY_SYMBOL
from ui.cached import cached_kpi_breakdown, cached_kpi_summary, cached_kpi_trend, cached_summary_and_tiers
from ui.context import page_inputs, warn_about_ignored_link_values
from ui.format import ACCENT, format_change, format_value, label

BREAKDOWN_LABELS = {"channel": "Sales channel", "tier": "Member tier"}

ctx = page_inputs("kpis")
filters = ctx.filters
previous = filters.previous()

st.title("Executive KPIs")
scope = []
if filters.channels:
    scope.append("channels " + ", ".join(map(label, filters.channels)))
if filters.tiers:
    scope.append("tiers " + ", ".join(map(label, filters.tiers)))
st.caption(
    f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y} ({filters.days} days), compared with "
    f"{previous.start:%d %b %Y} – {previous.end:%d %b %Y}"
    + (f" · {' · '.join(scope)}" if scope else "") + f" · amounts in {CURRENCY}"
)
warn_about_ignored_link_values({
    "trend_kpi": {k.label for k in KPIS}, "trend_grain": {g.capitalize() for g in GRAINS},
    "breakdown_by": set(BREAKDOWN_LABELS.values()),
})
cards_slot, trend_slot, breakdown_slot = st.container(), st.container(), st.container()

with breakdown_slot:
    st.subheader("Where sales come from")
    by = st.segmented_control(
        "Break down by", ["channel", "tier"], default="channel", key="breakdown_by", bind="query-params",
        format_func=BREAKDOWN_LABELS.get,
    ) or "channel"
if by == "tier":
    summary, breakdown = cached_summary_and_tiers(ctx.engine, filters)
else:
    summary = cached_kpi_summary(ctx.engine, filters)
    breakdown = cached_kpi_breakdown(ctx.engine, filters, "channel")

# --- KPI cards -----------------------------------------------------------------------------------
if summary.is_empty:
    cards_slot.info(
        f"Nothing happened between {filters.start:%d %b %Y} and {filters.end:%d %b %Y} for these filters: "
        f"no orders, sessions or new members. The warehouse has data from {ctx.span.first_day:%d %b %Y} "
        f"to {ctx.span.last_day:%d %b %Y}; widen the date range or clear the channel and tier filters.",
        icon=":material/event_busy:",
    )
    st.stop()

neutral = {"points_liability", "points_liability_value"}  # more outstanding points is neither good nor bad news
with cards_slot:
    for row in (KPIS[:6], KPIS[6:]):
        for column, definition in zip(st.columns(6), row, strict=False):
            value = summary[definition.key]
            note = "" if definition.uses_channel_filter or not filters.channels else " (channel filter not applied)"
            column.metric(
                definition.label + note,
                format_value(value.current, definition.unit),
                delta=format_change(value),
                delta_color="off" if definition.key in neutral else "normal",
                help=f"{definition.definition}\n\nPrevious period: {format_value(value.previous, definition.unit)}",
                border=True,
            )

# --- trend ---------------------------------------------------------------------------------------
with trend_slot:
    st.subheader("Trend")
    left, right = st.columns([3, 2])
    kpi_key = left.selectbox(
        "KPI", [k.key for k in KPIS], format_func=lambda k: KPI_BY_KEY[k].label, key="trend_kpi",
        bind="query-params", help="Any of the KPIs above, per day, week or month of the selected range.",
    )
    default_grain = "day" if filters.days <= 92 else "week" if filters.days <= 400 else "month"
    grain = right.segmented_control("Granularity", GRAINS, default=default_grain, key="trend_grain",
                                    bind="query-params", format_func=str.capitalize) or default_grain
    trend = cached_kpi_trend(ctx.engine, filters, kpi_key, grain)
    definition = KPI_BY_KEY[kpi_key]
    axis_format = {"ratio": ".1%", "currency": ",.0f", "points": ",.0f", "count": ",.0f"}[definition.unit]
    figure = px.line(trend, x="period_start", y="value", markers=grain != "day", color_discrete_sequence=[ACCENT],
                     labels={"period_start": grain.capitalize(), "value": definition.label})
    figure.update_yaxes(tickformat=axis_format, rangemode="tozero",
                        tickprefix=CURRENCY_SYMBOL if definition.unit == "currency" else "")
    figure.update_traces(hovertemplate="%{x|%d %b %Y}<br>%{y:" + axis_format + "}<extra></extra>")
    figure.update_layout(height=340, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    st.plotly_chart(figure, key="trend_chart")
    if grain != "day":
        st.caption(f"Each point is the {grain} starting on that date; the first and last {grain}s can be partial.")

# --- breakdown -----------------------------------------------------------------------------------
with breakdown_slot:
    if breakdown.empty:
        st.info("No completed orders in this period for these filters.")
    else:
        shown = breakdown.assign(**{by: breakdown[by].map(label)})
        bars = px.bar(shown, x="net_sales", y=by, orientation="h", text="sales_share",
                      labels={"net_sales": f"Net sales ({CURRENCY})", by: ""}, color_discrete_sequence=[ACCENT])
        bars.update_traces(texttemplate="%{text:.0%}", textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: " + CURRENCY_SYMBOL + "%{x:,.0f}<extra></extra>")
        bars.update_yaxes(categoryorder="total ascending")
        bars.update_layout(height=70 + 42 * len(shown), margin={"l": 10, "r": 50, "t": 10, "b": 10})
        st.plotly_chart(bars, key="breakdown_chart")
        columns = {
            by: st.column_config.TextColumn("Sales channel" if by == "channel" else "Member tier"),
            "net_sales": st.column_config.NumberColumn(f"Net sales ({CURRENCY_SYMBOL})", format="compact",
                                                       help=KPI_BY_KEY["net_sales"].definition),
            "sales_share": st.column_config.ProgressColumn("Share", format="percent", min_value=0.0, max_value=1.0),
            "net_sales_change_pct": st.column_config.NumberColumn(
                "vs previous", format="percent", help="Change of net sales against the previous period"),
            "orders": st.column_config.NumberColumn("Orders", format="localized"),
            "aov": st.column_config.NumberColumn("AOV", format="%.2f", help=KPI_BY_KEY["aov"].definition),
        }
        if by == "tier":
            columns |= {
                "active_members": st.column_config.NumberColumn("Active members", format="localized",
                                                                help=KPI_BY_KEY["active_members"].definition),
                "repurchase_rate": st.column_config.NumberColumn("Repurchase", format="percent",
                                                                 help=KPI_BY_KEY["repurchase_rate"].definition),
            }
        st.dataframe(shown, column_config=columns, column_order=list(columns), hide_index=True)
        if by == "tier":
            st.caption("Tier is the member's current tier; guest orders have no member and no tier.")

    with st.expander("KPI definitions"):
        st.markdown("\n".join(f"- **{k.label}**: {k.definition}" for k in KPIS))
        st.download_button("Download these KPIs (CSV)", safe_csv(summary.to_frame()),
                           file_name=f"memberlens_kpis_{filters.start}_{filters.end}.csv", mime="text/csv",
                           icon=":material/download:")
