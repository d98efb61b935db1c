"""The Programme page's tabs: tiers, the threshold what-if, points and member value (drawing only; every figure
comes from the analytics through ``ui.cached`` and is written by ``ui.format``)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.errors import InputError
from analytics.member_value import MEASURES, VALUE_HELP
from analytics.programme import CURRENCY, CURRENCY_SYMBOL, POINTS_PER_CURRENCY_UNIT, TIER_THRESHOLDS
from analytics.programme_points import EXPIRY_HORIZONS, POINTS_HELP, ExpiringPointsAudience, summarise_points
from analytics.programme_tiers import (
    JOINED,
    QUALIFIES,
    TIER_HELP,
    TIER_ORDER,
    flow_matrix,
    flow_summary,
    gap_summary,
    tier_count_change,
)
from analytics.programme_whatif import MEASURES as SPEND_MEASURES
from analytics.programme_whatif import WHATIF_HELP, TierMoveAudience, TierRule, move_matrix
from analytics.storage.contract import TIERS
from ui.app_state import default_author
from ui.cached import (
    cached_expiring,
    cached_member_value,
    cached_points,
    cached_sales_by_tier,
    cached_tier_counts,
    cached_tier_flows,
    cached_tier_performance,
    cached_time_to_tier,
    cached_upgrade_gap,
    cached_whatif,
)
from ui.context import PageContext
from ui.format import compact, count, label, money, points, share, times
from ui.member_sets import member_set

#: One colour per tier (and guests), the same in every chart of the page.
TIER_COLOURS = {"basic": "#9e9e9e", "silver": "#78909c", "gold": "#f9a825", "diamond": "#6a1b9a",
                "unknown": "#d7ccc8", "guest": "#bcaaa4", JOINED: "#80cbc4"}
GRAIN_LABELS = {"day": "Day", "week": "Week starting", "month": "Month"}
PAGE = "programme"


def _layout(figure: go.Figure, title: str, height: int = 380) -> go.Figure:
    figure.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                         legend_title_text="")
    return figure


def _translucent(colour: str, alpha: float = 0.35) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _default_grain(days: int) -> str:
    return "day" if days <= 92 else "week" if days <= 400 else "month"


# ---- tiers ---------------------------------------------------------------------------------------------------------

TIER_VIEWS = {"over_time": "Members and sales per tier", "flows": "Upgrades and downgrades",
              "value": "Retention and spend",
              "gap": "Next threshold"}


def tiers_tab(ctx: PageContext) -> None:
    view = st.segmented_control("Show", list(TIER_VIEWS), format_func=TIER_VIEWS.get, default="over_time",
                                required=True, key="programme_tier_view")
    {"over_time": _tiers_over_time, "flows": _tier_flows, "value": _tier_value, "gap": _tier_gap}[view](ctx)


def _tiers_over_time(ctx: PageContext) -> None:
    filters = ctx.filters
    default = _default_grain(filters.days)
    grain = st.segmented_control("Granularity", list(GRAIN_LABELS), default=default, key="programme_tier_grain",
                                 format_func=str.capitalize) or default
    counts = cached_tier_counts(ctx.engine, filters, grain)
    change = tier_count_change(counts)
    cards = st.columns(max(len(change), 1))
    for column, row in zip(cards, change.itertuples(), strict=False):
        column.metric(f"{label(row.tier)} members", count(row.last), border=True, help=TIER_HELP["tier_at"],
                      delta=f"{row.change:+,} since the first {grain}", delta_color="off")
    figure = px.area(counts.assign(tier=counts["tier"].map(label)), x="period_start", y="members", color="tier",
                     color_discrete_map={label(k): v for k, v in TIER_COLOURS.items()},
                     category_orders={"tier": [label(t) for t in TIER_ORDER]},
                     labels={"period_start": GRAIN_LABELS[grain], "members": "Members", "tier": "Tier"})
    figure.update_traces(hovertemplate="%{x|%d %b %Y}: %{y:,} members<extra>%{fullData.name}</extra>")
    st.plotly_chart(_layout(figure, f"Members per tier at the end of each {grain}"), key="programme_tier_area")
    st.caption(TIER_HELP["over_time"] + " " + TIER_HELP["tier_at"])
    _sales_per_tier(ctx)


def _sales_per_tier(ctx: PageContext) -> None:
    sales = cached_sales_by_tier(ctx.engine, ctx.filters)
    st.subheader("Sales per tier", help=TIER_HELP["sales"])
    shown = sales.assign(tier=sales["tier"].map(label))
    chart = px.bar(shown, x="net_sales", y="tier", orientation="h", text="sales_share", color="tier",
                   color_discrete_map={label(k): v for k, v in TIER_COLOURS.items()},
                   labels={"net_sales": f"Net sales ({CURRENCY})", "tier": "Tier when ordering"})
    chart.update_traces(texttemplate="%{text:.1%}", showlegend=False,
                        hovertemplate="%{y}: " + CURRENCY_SYMBOL + "%{x:,.0f}<extra></extra>")
    st.plotly_chart(_layout(chart, "Net sales by the tier held when ordering", 320), key="programme_sales_bars")
    st.dataframe(shown, hide_index=True, column_config={
        "tier": "Tier when ordering", "orders": st.column_config.NumberColumn("Orders", format="localized"),
        "buyers": st.column_config.NumberColumn("Buyers", format="localized"),
        "net_sales": st.column_config.NumberColumn(f"Net sales ({CURRENCY_SYMBOL})", format="compact"),
        "sales_share": st.column_config.NumberColumn("Share", format="percent"),
        "aov": st.column_config.NumberColumn("AOV", format="%.2f")})


def _tier_flows(ctx: PageContext) -> None:
    filters, span = ctx.filters, ctx.span
    left, right, how = st.columns([2, 2, 3])
    before = left.date_input("From the end of", filters.start - timedelta(days=1), min_value=span.first_day,
                             max_value=span.last_day, key="programme_flow_from", format="YYYY-MM-DD")
    after = right.date_input("to the end of", filters.end, min_value=span.first_day, max_value=span.last_day,
                             key="programme_flow_to", format="YYYY-MM-DD")
    view = how.segmented_control("Show as", ["sankey", "matrix"], default="sankey", required=True,
                                 key="programme_flow_view", format_func={"sankey": "Flows", "matrix": "Matrix"}.get)
    try:
        flows = cached_tier_flows(ctx.engine, before, after)
    except InputError as problem:
        st.error(str(problem), icon=":material/event_busy:")
        return
    moved = flow_summary(flows)
    cards = st.columns(4)
    for column, (key, text) in zip(cards, [("up", "Moved up"), ("down", "Moved down"), ("stayed", "Stayed"),
                                           ("joined", "Joined")], strict=True):
        column.metric(text, count(moved[key]), border=True, help=TIER_HELP["flows"])
    title = f"Tiers on {before:%d %b %Y} → {after:%d %b %Y}"
    if view == "sankey":
        left_nodes = [t for t in (JOINED, *TIER_ORDER) if t in set(flows["from_tier"])]
        right_nodes = [t for t in TIER_ORDER if t in set(flows["to_tier"])]
        names = [f"{label(t)} ({before:%d %b})" for t in left_nodes] + [f"{label(t)} ({after:%d %b})"
                                                                        for t in right_nodes]
        sankey = go.Figure(go.Sankey(
            node={"label": names, "pad": 14, "thickness": 14,
                  "color": [TIER_COLOURS.get(t, "#999") for t in (*left_nodes, *right_nodes)]},
            link={"source": flows["from_tier"].map(left_nodes.index),
                  "target": flows["to_tier"].map(right_nodes.index) + len(left_nodes), "value": flows["members"],
                  "color": [_translucent(TIER_COLOURS.get(t, "#999999")) for t in flows["from_tier"]],
                  "hovertemplate": "%{source.label} → %{target.label}: %{value:,} members<extra></extra>"}))
        st.plotly_chart(_layout(sankey, title, 460), key="programme_flow_sankey")
    else:
        matrix = flow_matrix(flows)
        matrix.index = [label(t) for t in matrix.index]
        matrix.columns = [label(t) for t in matrix.columns]
        heat = px.imshow(matrix, text_auto=",d", color_continuous_scale="Purples", aspect="auto",
                         labels={"x": f"Tier on {after:%d %b %Y}", "y": f"Tier on {before:%d %b %Y}",
                                 "color": "Members"})
        st.plotly_chart(_layout(heat, title, 420), key="programme_flow_matrix")
    st.caption(TIER_HELP["flows"])
    st.subheader("Time from joining to each tier", help=TIER_HELP["time_to_tier"])
    reach = cached_time_to_tier(ctx.engine, filters)
    st.dataframe(reach.assign(tier=reach["tier"].map(label)), hide_index=True, column_config={
        "tier": "Tier", "members": st.column_config.NumberColumn("Reached in the range", format="localized",
                                                                  help=TIER_HELP["time_to_tier"]),
        "median_days": st.column_config.NumberColumn("Median days", format="%.0f"),
        "p25_days": st.column_config.NumberColumn("25% within (days)", format="%.0f"),
        "p75_days": st.column_config.NumberColumn("75% within (days)", format="%.0f")})


def _tier_value(ctx: PageContext) -> None:
    held = cached_tier_performance(ctx.engine, ctx.filters)
    left, right = st.columns(2)
    bars = px.bar(held.assign(tier=held["tier"].map(label)), x="tier", y="spend_per_member", color="tier",
                  color_discrete_map={label(k): v for k, v in TIER_COLOURS.items()}, text="spend_per_member",
                  labels={"tier": "Tier at the start of the range", "spend_per_member": f"Net sales per member "
                                                                                        f"({CURRENCY})"})
    bars.update_traces(texttemplate=CURRENCY_SYMBOL + "%{text:,.0f}", showlegend=False,
                       hovertemplate="%{x}: " + CURRENCY_SYMBOL + "%{y:,.2f} per member<extra></extra>")
    left.plotly_chart(_layout(bars, "Spend per member by tier"), key="programme_spend_bars")
    retention = px.bar(held.assign(tier=held["tier"].map(label)), x="tier", y=["active_share", "retention"],
                       barmode="group", labels={"tier": "Tier at the start of the range", "value": "Share",
                                                "variable": ""})
    retention.update_yaxes(tickformat=".0%")
    retention.for_each_trace(lambda t: t.update(name={"active_share": "Active", "retention": "Retained"}[t.name]))
    right.plotly_chart(_layout(retention, "Active and retained members by tier"), key="programme_retention_bars")
    st.dataframe(held.assign(tier=held["tier"].map(label)), hide_index=True, column_config={
        "tier": "Tier", "members": st.column_config.NumberColumn("Members", format="localized"),
        "active": st.column_config.NumberColumn("Active", format="localized"),
        "active_share": st.column_config.NumberColumn("Active share", format="percent"),
        "net_sales": st.column_config.NumberColumn(f"Net sales ({CURRENCY_SYMBOL})", format="compact"),
        "spend_per_member": st.column_config.NumberColumn("Spend per member", format="%.2f"),
        "spend_per_active": st.column_config.NumberColumn("Spend per active member", format="%.2f"),
        "previous_active": st.column_config.NumberColumn("Bought in the previous period", format="localized"),
        "retained": st.column_config.NumberColumn("…and again in this one", format="localized"),
        "retention": st.column_config.NumberColumn("Retention", format="percent", help=TIER_HELP["retention"])})
    st.caption(TIER_HELP["retention"])


def _tier_gap(ctx: PageContext) -> None:
    gaps = cached_upgrade_gap(ctx.engine, ctx.filters)
    summary = gap_summary(gaps)
    if summary.empty:
        st.info("No member below the top tier on the range's last day.", icon=":material/search_off:")
        return
    cards = st.columns(len(summary))
    for column, row in zip(cards, summary.itertuples(), strict=True):
        column.metric(f"{label(row.tier)} near {label(row.next_tier)}", share(row.near_share), border=True,
                      delta=f"{count(row.near)} of {count(row.members)}; {count(row.qualifies)} qualify",
                      delta_color="off", delta_arrow="off", help=TIER_HELP["gap"])
    tier = st.selectbox("Members of", list(summary["tier"]), format_func=lambda t: f"{label(t)} (next: "
                        f"{label(summary.set_index('tier').loc[t, 'next_tier'])})", key="programme_gap_tier")
    rows = gaps[gaps["tier"] == tier].sort_values("bin")
    names = ["Already qualifies" if b == QUALIFIES else f"{money(lo)}–{money(hi)}"
             for b, lo, hi in zip(rows["bin"], rows["needed_from"], rows["needed_to"], strict=True)]
    threshold = TIER_THRESHOLDS[summary.set_index("tier").loc[tier, "next_tier"]]
    bars = go.Figure(go.Bar(x=names, y=rows["members"], marker_color=["#2e7d32" if b == QUALIFIES else
                                                                       "#f9a825" if n else "#90a4ae"
                                                                       for b, n in zip(rows["bin"], rows["near"],
                                                                                       strict=True)],
                            hovertemplate="%{x}: %{y:,} members<extra></extra>"))
    bars.update_xaxes(title=f"Spend still needed to reach {money(threshold)} (green: reached; amber: near)")
    bars.update_yaxes(title="Members")
    st.plotly_chart(_layout(bars, f"{label(tier)} members by spend still needed for the next tier"),
                    key="programme_gap_bars")
    st.caption(TIER_HELP["gap"])


# ---- the threshold what-if -----------------------------------------------------------------------------------------

def whatif_tab(ctx: PageContext) -> None:
    today = TierRule.today()
    day = ctx.filters.end
    st.caption(f"Members on {day:%d %b %Y} (the range's last day), under the evaluation of {day:%B %Y}. "
               + WHATIF_HELP["rule"])
    limits = st.columns(len(TIERS) + 1)
    thresholds = tuple(limits[i - 1].number_input(f"{label(t)} from ({CURRENCY})", min_value=1.0,
                                                  max_value=1_000_000_000.0, value=float(today.threshold(t)),
                                                  step=100.0, key=f"whatif_threshold_{t}")
                       for i, t in enumerate(TIERS[1:], start=1))
    months = limits[len(TIERS) - 1].number_input("Months of spend", 1, 36, today.months, key="whatif_months")
    measure = limits[len(TIERS)].selectbox("Spend", list(SPEND_MEASURES), format_func=SPEND_MEASURES.get,
                                           key="whatif_measure")
    rate_columns = st.columns(len(TIERS))
    rates = tuple((t, rate_columns[i].number_input(f"{label(t)} benefit rate (% of spend)", 0.0, 100.0, 0.0, 0.5,
                                                   key=f"whatif_rate_{t}", help=WHATIF_HELP["cost"]) / 100)
                  for i, t in enumerate(TIERS))
    try:
        rule = TierRule(thresholds, int(months), measure)
    except InputError as problem:
        st.error(str(problem), icon=":material/rule:")
        return
    result = cached_whatif(ctx.engine, day, rule, rates)
    cards = st.columns(4)
    cards[0].metric("Would move up", count(result.moved("up")), border=True, help=WHATIF_HELP["whatif"])
    cards[1].metric("Would move down", count(result.moved("down")), border=True, help=WHATIF_HELP["whatif"])
    cards[2].metric("Benefits cost, today's tiers", money(result.cost_today), border=True, help=WHATIF_HELP["cost"])
    change = result.cost_change
    cards[3].metric("Benefits cost, edited rule", money(result.cost_whatif), border=True, help=WHATIF_HELP["cost"],
                    delta=f"{'+' if change > 0 else '-'}{money(abs(change))}" if round(change, 2) else None,
                    delta_color="inverse")
    left, right = st.columns(2)
    long = result.tiers.melt(id_vars="tier", value_vars=["today", "whatif"], var_name="rule", value_name="members")
    long["rule"] = long["rule"].map({"today": "Today", "whatif": "Edited rule"})
    bars = px.bar(long.assign(tier=long["tier"].map(label)), x="tier", y="members", color="rule", barmode="group",
                  labels={"tier": "Tier", "members": "Members", "rule": ""},
                  color_discrete_map={"Today": "#90a4ae", "Edited rule": "#C2185B"})
    bars.update_traces(hovertemplate="%{x}: %{y:,} members<extra>%{fullData.name}</extra>")
    left.plotly_chart(_layout(bars, f"Members per tier on {day:%d %b %Y}"), key="whatif_bars")
    matrix = move_matrix(result)
    matrix.index = [label(t) for t in matrix.index]
    matrix.columns = [label(t) for t in matrix.columns]
    heat = px.imshow(matrix, text_auto=",d", color_continuous_scale="RdPu", aspect="auto",
                     labels={"x": "Tier under the edited rule", "y": "Tier today", "color": "Members"})
    right.plotly_chart(_layout(heat, "Who would move"), key="whatif_matrix")
    direction = st.segmented_control("Members who would move", ["up", "down"], default="down", required=True,
                                     key="whatif_direction", format_func={"up": "Up", "down": "Down"}.get)
    member_set(ctx.engine, TierMoveAudience(day, rule, direction), key="whatif_members", actor=default_author(),
               page=PAGE, count=result.moved(direction), who=f"would move {direction} with {rule.describe()}")


# ---- points --------------------------------------------------------------------------------------------------------

POINT_VIEWS = {"flows": "Issued, redeemed, expired", "expiring": "About to expire"}


def points_tab(ctx: PageContext) -> None:
    left, right = st.columns([3, 1])
    view = left.segmented_control("Show", list(POINT_VIEWS), format_func=POINT_VIEWS.get, default="flows",
                                  required=True, key="programme_points_view")
    per_unit = int(right.number_input("Points per currency unit", 1, 1_000_000, POINTS_PER_CURRENCY_UNIT,
                                      key="programme_points_rate", help=POINTS_HELP["value"]))
    if view == "flows":
        _points_flows(ctx, per_unit)
    else:
        _points_expiring(ctx, per_unit)


def _points_flows(ctx: PageContext, per_unit: int) -> None:
    filters = ctx.filters
    grain = _default_grain(filters.days)
    flows, by_tier = cached_points(ctx.engine, filters, grain, per_unit)
    summary = summarise_points(flows, per_unit)
    cards = st.columns(6)
    cards[0].metric("Issued", points(summary.issued), border=True, help=POINTS_HELP["issued"],
                    delta=f"{points(summary.bonus)} bonus", delta_color="off", delta_arrow="off")
    cards[1].metric("Redeemed", points(summary.redeemed), border=True, help=POINTS_HELP["redeemed"])
    cards[2].metric("Expired", points(summary.expired), border=True, help=POINTS_HELP["expired"])
    cards[3].metric("Redemption rate", share(summary.redemption_rate), border=True,
                    help=POINTS_HELP["redemption_rate"])
    cards[4].metric("Breakage rate", share(summary.breakage_rate), border=True, help=POINTS_HELP["breakage_rate"])
    cards[5].metric("Liability", money(summary.liability_value), border=True,
                    delta=f"{points(summary.liability)} points", delta_color="off", delta_arrow="off",
                    help=POINTS_HELP["liability"] + " " + POINTS_HELP["value"])
    long = flows.assign(redeemed=-flows["redeemed"], expired=-flows["expired"]).melt(
        id_vars="period_start", value_vars=["earned", "bonus", "redeemed", "expired"], var_name="kind",
        value_name="points")
    bars = px.bar(long, x="period_start", y="points", color="kind", barmode="relative",
                  color_discrete_map={"earned": "#1b9e77", "bonus": "#66c2a5", "redeemed": "#d95f02",
                                      "expired": "#7570b3"},
                  labels={"period_start": GRAIN_LABELS[grain], "points": "Points (debits below zero)", "kind": ""})
    bars.update_traces(hovertemplate="%{x|%d %b %Y}: %{y:,} points<extra>%{fullData.name}</extra>")
    st.plotly_chart(_layout(bars, f"Points issued and debited per {grain}"), key="points_bars")
    line = px.line(flows, x="period_start", y="liability_value", markers=grain != "day",
                   color_discrete_sequence=["#C2185B"],
                   labels={"period_start": GRAIN_LABELS[grain], "liability_value": f"Liability ({CURRENCY})"})
    line.update_traces(hovertemplate="%{x|%d %b %Y}: " + CURRENCY_SYMBOL + "%{y:,.2f}<extra></extra>")
    line.update_yaxes(rangemode="tozero")
    st.plotly_chart(_layout(line, f"Points liability in money at the end of each {grain} ({per_unit:,} points = 1 "
                                  f"{CURRENCY})", 320), key="points_liability")
    st.subheader("By tier", help="The tier the member held when the ledger row was written.")
    st.dataframe(by_tier.assign(tier=by_tier["tier"].map(label)), hide_index=True, column_config={
        "tier": "Tier", **{c: st.column_config.NumberColumn(c.capitalize(), format="localized")
                           for c in ("earned", "bonus", "issued", "redeemed", "expired")},
        "redeemers": st.column_config.NumberColumn("Members who redeemed", format="localized"),
        "redemption_rate": st.column_config.NumberColumn("Redemption rate", format="percent",
                                                         help=POINTS_HELP["redemption_rate"]),
        "breakage_rate": st.column_config.NumberColumn("Breakage rate", format="percent",
                                                       help=POINTS_HELP["breakage_rate"])})


def _points_expiring(ctx: PageContext, per_unit: int) -> None:
    filters = ctx.filters
    table = cached_expiring(ctx.engine, filters, per_unit)
    cards = st.columns(len(table))
    for column, row in zip(cards, table.itertuples(), strict=True):
        column.metric(f"Within {row.days} days (members)", count(row.members), border=True,
                      delta=f"{points(row.points)} points = {money(row.value)}", delta_color="off",
                      delta_arrow="off", help=POINTS_HELP["expiring"])
    st.caption(f"Points expire on {table['expires_on'].iloc[0]:%d %b %Y}; counted from {filters.end:%d %b %Y}, the "
               "range's last day. " + POINTS_HELP["expiring"])
    left, right = st.columns(2)
    days = left.segmented_control("Expiring within", list(EXPIRY_HORIZONS), default=EXPIRY_HORIZONS[-1],
                                  required=True, key="points_expiring_days", format_func=lambda d: f"{d} days")
    least = int(right.number_input("At least (points)", 1, 1_000_000_000, 1, key="points_expiring_min"))
    audience = ExpiringPointsAudience(filters, days, least)
    member_set(ctx.engine, audience, key="points_expiring_members", actor=default_author(), page=PAGE,
               who=f"hold at least {least:,} point{'' if least == 1 else 's'} expiring within {days} days")


# ---- member value --------------------------------------------------------------------------------------------------

MEASURE_LABELS = {"buyers": "Buyers", "orders": "Orders", "net_sales": "Net sales", "spend_per_buyer":
                  "Spend per buyer", "orders_per_buyer": "Orders per buyer", "aov": "Average order value",
                  "repurchase_rate": "Repurchase rate"}


def _figure(measure: str, value: float) -> str:
    if measure in ("net_sales", "spend_per_buyer", "aov"):
        return money(value)
    if measure == "repurchase_rate":
        return share(value)
    if measure == "orders_per_buyer":
        return compact(value, 2)
    return count(value)


def value_tab(ctx: PageContext) -> None:
    comparison, joiners = cached_member_value(ctx.engine, ctx.filters)
    rows = comparison.set_index("measure")
    cards = st.columns(4)
    cards[0].metric("Spend per member buyer", money(rows.loc["spend_per_buyer", "members"]), border=True,
                    help=VALUE_HELP["spend_per_buyer"] + " " + VALUE_HELP["buyers"])
    cards[1].metric("Spend per guest buyer", money(rows.loc["spend_per_buyer", "guests"]), border=True,
                    help=VALUE_HELP["spend_per_buyer"] + " " + VALUE_HELP["buyers"])
    cards[2].metric("Members spend", times(rows.loc["spend_per_buyer", "ratio"]), border=True,
                    delta="as much per buyer as guests", delta_color="off", delta_arrow="off", help=VALUE_HELP["ratio"])
    cards[3].metric("Member repurchase rate", share(rows.loc["repurchase_rate", "members"]), border=True,
                    help=VALUE_HELP["repurchase_rate"])
    table = pd.DataFrame({"Measure": [MEASURE_LABELS[m] for m in MEASURES],
                          "Members": [_figure(m, rows.loc[m, "members"]) for m in MEASURES],
                          "Guests": [_figure(m, rows.loc[m, "guests"]) for m in MEASURES],
                          "Ratio": [times(rows.loc[m, "ratio"]) for m in MEASURES],
                          "Definition": [VALUE_HELP[m] for m in MEASURES]})
    st.dataframe(table, hide_index=True, column_config={"Definition": st.column_config.TextColumn(width="large")})
    st.subheader("New members' first 90 days", help=VALUE_HELP["first_90_days"])
    if joiners.empty:
        st.info("No member registered in the date range.", icon=":material/person_add:")
        return
    shown = joiners.assign(acquisition_channel=joiners["acquisition_channel"].map(label))
    bars = px.bar(shown, x="value_per_member", y="acquisition_channel", orientation="h", text="value_per_member",
                  color_discrete_sequence=["#C2185B"],
                  labels={"value_per_member": f"Net sales per new member in 90 days ({CURRENCY})",
                          "acquisition_channel": "Acquisition channel"})
    bars.update_traces(texttemplate=CURRENCY_SYMBOL + "%{text:,.0f}",
                       hovertemplate="%{y}: " + CURRENCY_SYMBOL + "%{x:,.2f} per member<extra></extra>")
    bars.update_yaxes(categoryorder="total ascending")
    st.plotly_chart(_layout(bars, "First-90-day value of new members by acquisition channel",
                            120 + 34 * len(shown)), key="value_new_members")
    st.dataframe(shown, hide_index=True, column_config={
        "acquisition_channel": "Acquisition channel",
        "members": st.column_config.NumberColumn("New members", format="localized"),
        "buyers": st.column_config.NumberColumn("Bought in 90 days", format="localized"),
        "buyer_share": st.column_config.NumberColumn("Share", format="percent"),
        "orders": st.column_config.NumberColumn("Orders", format="localized"),
        "net_sales": st.column_config.NumberColumn(f"Net sales ({CURRENCY_SYMBOL})", format="compact"),
        "value_per_member": st.column_config.NumberColumn("Per member", format="%.2f"),
        "value_per_buyer": st.column_config.NumberColumn("Per buyer", format="%.2f"),
        "full_window": st.column_config.NumberColumn("With all 90 days", format="localized",
                                                     help=VALUE_HELP["first_90_days"])})
