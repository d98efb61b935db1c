"""The Programme page's tabs: tiers, the threshold what-if, points and member value (drawing only; every figure
comes from the analytics through ``ui.cached`` and is written by ``ui.format``)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.errors import InputError
from analytics.i18n import N_, _, format_day
from analytics.member_value import MEASURES, value_help
from analytics.programme import CURRENCY, CURRENCY_SYMBOL, POINTS_PER_CURRENCY_UNIT, TIER_THRESHOLDS
from analytics.programme_points import EXPIRY_HORIZONS, POINTS_HELP, ExpiringPointsAudience, summarise_points
from analytics.programme_tiers import (
    GUEST,
    JOINED,
    QUALIFIES,
    TIER_ORDER,
    UNKNOWN,
    flow_matrix,
    flow_summary,
    gap_summary,
    tier_count_change,
    tier_help,
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
from ui.look import show_chart
from ui.member_sets import member_set

#: One colour per tier (and guests), the same in every chart of the page.
TIER_COLOURS = {"basic": "#9e9e9e", "silver": "#78909c", "gold": "#f9a825", "diamond": "#6a1b9a",
                "unknown": "#d7ccc8", "guest": "#bcaaa4", JOINED: "#80cbc4"}
GRAIN_LABELS = {"day": N_("Day"), "week": N_("Week starting"), "month": N_("Month")}
#: The grains as the page's sentences name them ("since the first week").
GRAIN_NAMES = {"day": N_("day"), "week": N_("week"), "month": N_("month")}
#: The labels of tiers that are not warehouse codes (members without a known tier, guests, the newly joined).
OTHER_TIERS = {UNKNOWN: N_("Unknown"), GUEST: N_("Guest"), JOINED: N_("Joined")}
PAGE = "programme"


def tier_label(tier: str) -> str:
    """A tier (or :data:`OTHER_TIERS`) in the reader's words."""
    return _(OTHER_TIERS[tier]) if tier in OTHER_TIERS else label(tier)


def _members(figure: str) -> str:
    """``figure`` (a hover template's number) with its unit: ``%{y:,} members`` / ``%{y:,} 名会员``."""
    return _("{members} members").format(members=figure)


def _hover_day(axis: str = "x") -> str:
    """A hover template's day on ``axis``: ``05 Nov 2026`` / ``2026年11月5日``."""
    from analytics.i18n import DEFAULT_LANGUAGE, language

    return "%{" + axis + ("|%d %b %Y}" if language() == DEFAULT_LANGUAGE else "|%Y年%-m月%-d日}")


def _month(day) -> str:
    """A month and its year: ``November 2026`` / ``2026年11月``."""
    from babel.dates import format_date

    from analytics.i18n import DEFAULT_LANGUAGE, language

    return f"{day:%B %Y}" if language() == DEFAULT_LANGUAGE else format_date(day, "yMMM", locale=language())


def _points_help(key: str) -> str:
    return _(POINTS_HELP[key])


def _whatif_help(key: str) -> str:
    return _(WHATIF_HELP[key])


def _short_day(day) -> str:
    """A day without its year, in the reader's language (``05 Nov`` / ``11月5日``)."""
    from babel.dates import format_date

    from analytics.i18n import DEFAULT_LANGUAGE, language

    return f"{day:%d %b}" if language() == DEFAULT_LANGUAGE else format_date(day, "MMMd", locale=language())


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

TIER_VIEWS = {"over_time": N_("Members and sales per tier"), "flows": N_("Upgrades and downgrades"),
              "value": N_("Retention and spend"),
              "gap": N_("Next threshold")}


def tiers_tab(ctx: PageContext) -> None:
    view = st.segmented_control(_("Show"), list(TIER_VIEWS), format_func=lambda v: _(TIER_VIEWS[v]),
                                default="over_time",
                                required=True, key="programme_tier_view")
    {"over_time": _tiers_over_time, "flows": _tier_flows, "value": _tier_value, "gap": _tier_gap}[view](ctx)


def _tiers_over_time(ctx: PageContext) -> None:
    filters = ctx.filters
    default = _default_grain(filters.days)
    grain = st.segmented_control(_("Granularity"), list(GRAIN_LABELS), default=default, key="programme_tier_grain",
                                 format_func=lambda g: _(GRAIN_NAMES[g]).capitalize()) or default
    counts = cached_tier_counts(ctx.engine, filters, grain)
    change = tier_count_change(counts)
    cards = st.columns(max(len(change), 1))
    for column, row in zip(cards, change.itertuples(), strict=False):
        column.metric(_("{tier} members").format(tier=tier_label(row.tier)), count(row.last), border=True,
                      help=tier_help("tier_at"),
                      delta=_("{change} since the first {grain}").format(change=f"{row.change:+,}",
                                                                         grain=_(GRAIN_NAMES[grain])),
                      delta_color="off")
    figure = px.area(counts.assign(tier=counts["tier"].map(tier_label)), x="period_start", y="members", color="tier",
                     color_discrete_map={tier_label(k): v for k, v in TIER_COLOURS.items()},
                     category_orders={"tier": [tier_label(t) for t in TIER_ORDER]},
                     labels={"period_start": _(GRAIN_LABELS[grain]), "members": _("Members"), "tier": _("Tier")})
    figure.update_traces(hovertemplate=_hover_day() + ": " + _members("%{y:,}") + "<extra>%{fullData.name}</extra>")
    show_chart(_layout(figure, _("Members per tier at the end of each {grain}").format(
        grain=_(GRAIN_NAMES[grain]))), key="programme_tier_area")
    st.caption(tier_help("over_time") + " " + tier_help("tier_at"))
    _sales_per_tier(ctx)


def _sales_per_tier(ctx: PageContext) -> None:
    sales = cached_sales_by_tier(ctx.engine, ctx.filters)
    st.subheader(_("Sales per tier"), help=tier_help("sales"))
    shown = sales.assign(tier=sales["tier"].map(tier_label))
    chart = px.bar(shown, x="net_sales", y="tier", orientation="h", text="sales_share", color="tier",
                   color_discrete_map={tier_label(k): v for k, v in TIER_COLOURS.items()},
                   labels={"net_sales": _("Net sales ({currency})").format(currency=CURRENCY),
                           "tier": _("Tier when ordering")})
    chart.update_traces(texttemplate="%{text:.1%}", showlegend=False,
                        hovertemplate="%{y}: " + CURRENCY_SYMBOL + "%{x:,.0f}<extra></extra>")
    show_chart(_layout(chart, _("Net sales by the tier held when ordering"), 320), key="programme_sales_bars")
    st.dataframe(shown, hide_index=True, column_config={
        "tier": _("Tier when ordering"), "orders": st.column_config.NumberColumn(_("Orders"), format="localized"),
        "buyers": st.column_config.NumberColumn(_("Buyers"), format="localized"),
        "net_sales": st.column_config.NumberColumn(_("Net sales ({currency})").format(currency=CURRENCY_SYMBOL),
                                                   format="compact"),
        "sales_share": st.column_config.NumberColumn(_("Share"), format="percent"),
        "aov": st.column_config.NumberColumn(_("AOV"), format="%.2f")})


def _tier_flows(ctx: PageContext) -> None:
    filters, span = ctx.filters, ctx.span
    left, right, how = st.columns([2, 2, 3])
    before = left.date_input(_("From the end of"), filters.start - timedelta(days=1), min_value=span.first_day,
                             max_value=span.last_day, key="programme_flow_from", format="YYYY-MM-DD")
    after = right.date_input(_("to the end of"), filters.end, min_value=span.first_day, max_value=span.last_day,
                             key="programme_flow_to", format="YYYY-MM-DD")
    view = how.segmented_control(_("Show as"), ["sankey", "matrix"], default="sankey", required=True,
                                 key="programme_flow_view",
                                 format_func={"sankey": _("Flows"), "matrix": _("Matrix")}.get)
    try:
        flows = cached_tier_flows(ctx.engine, before, after)
    except InputError as problem:
        st.error(str(problem), icon=":material/event_busy:")
        return
    moved = flow_summary(flows)
    cards = st.columns(4)
    for column, (key, text) in zip(cards, [("up", _("Moved up")), ("down", _("Moved down")), ("stayed", _("Stayed")),
                                           ("joined", _("Joined"))], strict=True):
        column.metric(text, count(moved[key]), border=True, help=tier_help("flows"))
    title = _("Tiers on {before} → {after}").format(before=format_day(before), after=format_day(after))
    if view == "sankey":
        left_nodes = [t for t in (JOINED, *TIER_ORDER) if t in set(flows["from_tier"])]
        right_nodes = [t for t in TIER_ORDER if t in set(flows["to_tier"])]
        names = [f"{tier_label(t)} ({_short_day(before)})" for t in left_nodes] + [
            f"{tier_label(t)} ({_short_day(after)})" for t in right_nodes]
        sankey = go.Figure(go.Sankey(
            node={"label": names, "pad": 14, "thickness": 14,
                  "color": [TIER_COLOURS.get(t, "#999") for t in (*left_nodes, *right_nodes)]},
            link={"source": flows["from_tier"].map(left_nodes.index),
                  "target": flows["to_tier"].map(right_nodes.index) + len(left_nodes), "value": flows["members"],
                  "color": [_translucent(TIER_COLOURS.get(t, "#999999")) for t in flows["from_tier"]],
                  "hovertemplate": "%{source.label} → %{target.label}: " + _members("%{value:,}")
                  + "<extra></extra>"}))
        show_chart(_layout(sankey, title, 460), key="programme_flow_sankey")
    else:
        matrix = flow_matrix(flows)
        matrix.index = [tier_label(t) for t in matrix.index]
        matrix.columns = [tier_label(t) for t in matrix.columns]
        heat = px.imshow(matrix, text_auto=",d", color_continuous_scale="Purples", aspect="auto",
                         labels={"x": _("Tier on {day}").format(day=format_day(after)),
                                 "y": _("Tier on {day}").format(day=format_day(before)), "color": _("Members")})
        show_chart(_layout(heat, title, 420), key="programme_flow_matrix")
    st.caption(tier_help("flows"))
    st.subheader(_("Time from joining to each tier"), help=tier_help("time_to_tier"))
    reach = cached_time_to_tier(ctx.engine, filters)
    st.dataframe(reach.assign(tier=reach["tier"].map(tier_label)), hide_index=True, column_config={
        "tier": _("Tier"), "members": st.column_config.NumberColumn(_("Reached in the range"), format="localized",
                                                                     help=tier_help("time_to_tier")),
        "median_days": st.column_config.NumberColumn(_("Median days"), format="%.0f"),
        "p25_days": st.column_config.NumberColumn(_("25% within (days)"), format="%.0f"),
        "p75_days": st.column_config.NumberColumn(_("75% within (days)"), format="%.0f")})


def _tier_value(ctx: PageContext) -> None:
    held = cached_tier_performance(ctx.engine, ctx.filters)
    left, right = st.columns(2)
    bars = px.bar(held.assign(tier=held["tier"].map(tier_label)), x="tier", y="spend_per_member", color="tier",
                  color_discrete_map={tier_label(k): v for k, v in TIER_COLOURS.items()}, text="spend_per_member",
                  labels={"tier": _("Tier at the start of the range"),
                          "spend_per_member": _("Net sales per member ({currency})").format(currency=CURRENCY)})
    bars.update_traces(texttemplate=CURRENCY_SYMBOL + "%{text:,.0f}", showlegend=False,
                       hovertemplate=_("{x}: {amount} per member").format(x="%{x}",
                                                                           amount=CURRENCY_SYMBOL + "%{y:,.2f}")
                       + "<extra></extra>")
    show_chart(where=left, figure=_layout(bars, _("Spend per member by tier")), key="programme_spend_bars")
    retention = px.bar(held.assign(tier=held["tier"].map(tier_label)), x="tier", y=["active_share", "retention"],
                       barmode="group", labels={"tier": _("Tier at the start of the range"), "value": _("Share"),
                                                "variable": ""})
    retention.update_yaxes(tickformat=".0%")
    retention.for_each_trace(lambda t: t.update(name={"active_share": _("Active"),
                                                      "retention": _("Retained")}[t.name]))
    show_chart(where=right, figure=_layout(retention, _("Active and retained members by tier")),
               key="programme_retention_bars")
    st.dataframe(held.assign(tier=held["tier"].map(tier_label)), hide_index=True, column_config={
        "tier": _("Tier"), "members": st.column_config.NumberColumn(_("Members"), format="localized"),
        "active": st.column_config.NumberColumn(_("Active"), format="localized"),
        "active_share": st.column_config.NumberColumn(_("Active share"), format="percent"),
        "net_sales": st.column_config.NumberColumn(_("Net sales ({currency})").format(currency=CURRENCY_SYMBOL),
                                                   format="compact"),
        "spend_per_member": st.column_config.NumberColumn(_("Spend per member"), format="%.2f"),
        "spend_per_active": st.column_config.NumberColumn(_("Spend per active member"), format="%.2f"),
        "previous_active": st.column_config.NumberColumn(_("Bought in the previous period"), format="localized"),
        "retained": st.column_config.NumberColumn(_("…and again in this one"), format="localized"),
        "retention": st.column_config.NumberColumn(_("Retention"), format="percent", help=tier_help("retention"))})
    st.caption(tier_help("retention"))


def _tier_gap(ctx: PageContext) -> None:
    gaps = cached_upgrade_gap(ctx.engine, ctx.filters)
    summary = gap_summary(gaps)
    if summary.empty:
        st.info(_("No member below the top tier on the range's last day."), icon=":material/search_off:")
        return
    cards = st.columns(len(summary))
    for column, row in zip(cards, summary.itertuples(), strict=True):
        column.metric(_("{tier} near {next_tier}").format(tier=tier_label(row.tier),
                                                          next_tier=tier_label(row.next_tier)),
                      share(row.near_share), border=True,
                      delta=_("{near} of {members}; {qualify} qualify").format(
                          near=count(row.near), members=count(row.members), qualify=count(row.qualifies)),
                      delta_color="off", delta_arrow="off", help=tier_help("gap"))
    next_tiers = summary.set_index("tier")["next_tier"]
    tier = st.selectbox(_("Members of"), list(summary["tier"]), format_func=lambda t: _("{tier} (next: {next_tier})")
                        .format(tier=tier_label(t), next_tier=tier_label(next_tiers.loc[t])), key="programme_gap_tier")
    rows = gaps[gaps["tier"] == tier].sort_values("bin")
    names = [_("Already qualifies") if b == QUALIFIES else f"{money(lo)}–{money(hi)}"
             for b, lo, hi in zip(rows["bin"], rows["needed_from"], rows["needed_to"], strict=True)]
    threshold = TIER_THRESHOLDS[summary.set_index("tier").loc[tier, "next_tier"]]
    bars = go.Figure(go.Bar(x=names, y=rows["members"], marker_color=["#2e7d32" if b == QUALIFIES else
                                                                       "#f9a825" if n else "#90a4ae"
                                                                       for b, n in zip(rows["bin"], rows["near"],
                                                                                       strict=True)],
                            hovertemplate="%{x}: " + _members("%{y:,}") + "<extra></extra>"))
    bars.update_xaxes(title=_("Spend still needed to reach {threshold} (green: reached; amber: near)").format(
        threshold=money(threshold)))
    bars.update_yaxes(title=_("Members"))
    show_chart(_layout(bars, _("{tier} members by spend still needed for the next tier").format(
        tier=tier_label(tier))), key="programme_gap_bars")
    st.caption(tier_help("gap"))


# ---- the threshold what-if -----------------------------------------------------------------------------------------

def whatif_tab(ctx: PageContext) -> None:
    today = TierRule.today()
    day = ctx.filters.end
    st.caption(_("Members on {day} (the range's last day), under the evaluation of {month}.").format(
        day=format_day(day), month=_month(day)) + " " + _whatif_help("rule"))
    limits = st.columns(len(TIERS) + 1)
    thresholds = tuple(limits[i - 1].number_input(_("{tier} from ({currency})").format(tier=label(t),
                                                                                       currency=CURRENCY),
                                                  min_value=1.0,
                                                  max_value=1_000_000_000.0, value=float(today.threshold(t)),
                                                  step=100.0, key=f"whatif_threshold_{t}")
                       for i, t in enumerate(TIERS[1:], start=1))
    months = limits[len(TIERS) - 1].number_input(_("Months of spend"), 1, 36, today.months, key="whatif_months")
    measure = limits[len(TIERS)].selectbox(_("Spend"), list(SPEND_MEASURES),
                                           format_func=lambda m: _(SPEND_MEASURES[m]), key="whatif_measure")
    rate_columns = st.columns(len(TIERS))
    rates = tuple((t, rate_columns[i].number_input(_("{tier} benefit rate (% of spend)").format(tier=label(t)),
                                                   0.0, 100.0, 0.0, 0.5,
                                                   key=f"whatif_rate_{t}", help=_whatif_help("cost")) / 100)
                  for i, t in enumerate(TIERS))
    try:
        rule = TierRule(thresholds, int(months), measure)
    except InputError as problem:
        st.error(str(problem), icon=":material/rule:")
        return
    result = cached_whatif(ctx.engine, day, rule, rates)
    cards = st.columns(4)
    cards[0].metric(_("Would move up"), count(result.moved("up")), border=True, help=_whatif_help("whatif"))
    cards[1].metric(_("Would move down"), count(result.moved("down")), border=True, help=_whatif_help("whatif"))
    cards[2].metric(_("Benefits cost, today's tiers"), money(result.cost_today), border=True,
                    help=_whatif_help("cost"))
    change = result.cost_change
    cards[3].metric(_("Benefits cost, edited rule"), money(result.cost_whatif), border=True,
                    help=_whatif_help("cost"),
                    delta=f"{'+' if change > 0 else '-'}{money(abs(change))}" if round(change, 2) else None,
                    delta_color="inverse")
    left, right = st.columns(2)
    long = result.tiers.melt(id_vars="tier", value_vars=["today", "whatif"], var_name="rule", value_name="members")
    today_label, edited_label = _("Today"), _("Edited rule")
    long["rule"] = long["rule"].map({"today": today_label, "whatif": edited_label})
    bars = px.bar(long.assign(tier=long["tier"].map(tier_label)), x="tier", y="members", color="rule",
                  barmode="group", labels={"tier": _("Tier"), "members": _("Members"), "rule": ""},
                  color_discrete_map={today_label: "#90a4ae", edited_label: "#C2185B"})
    bars.update_traces(hovertemplate="%{x}: " + _members("%{y:,}") + "<extra>%{fullData.name}</extra>")
    show_chart(where=left, figure=_layout(bars, _("Members per tier on {day}").format(day=format_day(day))),
               key="whatif_bars")
    matrix = move_matrix(result)
    matrix.index = [tier_label(t) for t in matrix.index]
    matrix.columns = [tier_label(t) for t in matrix.columns]
    heat = px.imshow(matrix, text_auto=",d", color_continuous_scale="RdPu", aspect="auto",
                     labels={"x": _("Tier under the edited rule"), "y": _("Tier today"), "color": _("Members")})
    show_chart(where=right, figure=_layout(heat, _("Who would move")), key="whatif_matrix")
    direction = st.segmented_control(_("Members who would move"), ["up", "down"], default="down", required=True,
                                     key="whatif_direction", format_func={"up": _("Up"), "down": _("Down")}.get)
    who = (_("would move up with {rule}") if direction == "up" else _("would move down with {rule}")).format(
        rule=rule.describe())
    member_set(ctx.engine, TierMoveAudience(day, rule, direction), key="whatif_members", actor=default_author(),
               page=PAGE, count=result.moved(direction), who=who)


# ---- points --------------------------------------------------------------------------------------------------------

POINT_VIEWS = {"flows": N_("Issued, redeemed, expired"), "expiring": N_("About to expire")}
#: The kinds of points movements, as the chart's legend names them.
POINT_KINDS = {"earned": N_("Earned"), "bonus": N_("Bonus"), "redeemed": N_("Redeemed"), "expired": N_("Expired"),
               "issued": N_("Issued")}


def points_tab(ctx: PageContext) -> None:
    left, right = st.columns([3, 1])
    view = left.segmented_control(_("Show"), list(POINT_VIEWS), format_func=lambda v: _(POINT_VIEWS[v]),
                                  default="flows", required=True, key="programme_points_view")
    per_unit = int(right.number_input(_("Points per currency unit"), 1, 1_000_000, POINTS_PER_CURRENCY_UNIT,
                                      key="programme_points_rate", help=_points_help("value")))
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
    cards[0].metric(_("Issued"), points(summary.issued), border=True, help=_points_help("issued"),
                    delta=_("{points} bonus").format(points=points(summary.bonus)), delta_color="off",
                    delta_arrow="off")
    cards[1].metric(_("Redeemed"), points(summary.redeemed), border=True, help=_points_help("redeemed"))
    cards[2].metric(_("Expired"), points(summary.expired), border=True, help=_points_help("expired"))
    cards[3].metric(_("Redemption rate"), share(summary.redemption_rate), border=True,
                    help=_points_help("redemption_rate"))
    cards[4].metric(_("Breakage rate"), share(summary.breakage_rate), border=True,
                    help=_points_help("breakage_rate"))
    cards[5].metric(_("Liability"), money(summary.liability_value), border=True,
                    delta=_("{points} points").format(points=points(summary.liability)), delta_color="off",
                    delta_arrow="off", help=_points_help("liability") + " " + _points_help("value"))
    long = flows.assign(redeemed=-flows["redeemed"], expired=-flows["expired"]).melt(
        id_vars="period_start", value_vars=["earned", "bonus", "redeemed", "expired"], var_name="kind",
        value_name="points")
    kinds = {k: _(POINT_KINDS[k]) for k in ("earned", "bonus", "redeemed", "expired")}
    long["kind"] = long["kind"].map(kinds)
    bars = px.bar(long, x="period_start", y="points", color="kind", barmode="relative",
                  color_discrete_map={kinds["earned"]: "#1b9e77", kinds["bonus"]: "#66c2a5",
                                      kinds["redeemed"]: "#d95f02", kinds["expired"]: "#7570b3"},
                  labels={"period_start": _(GRAIN_LABELS[grain]), "points": _("Points (debits below zero)"),
                          "kind": ""})
    bars.update_traces(hovertemplate=_hover_day() + ": " + _("{points} points").format(points="%{y:,}")
                       + "<extra>%{fullData.name}</extra>")
    show_chart(_layout(bars, _("Points issued and debited per {grain}").format(grain=_(GRAIN_NAMES[grain]))),
                    key="points_bars")
    line = px.line(flows, x="period_start", y="liability_value", markers=grain != "day",
                   color_discrete_sequence=["#C2185B"],
                   labels={"period_start": _(GRAIN_LABELS[grain]),
                           "liability_value": _("Liability ({currency})").format(currency=CURRENCY)})
    line.update_traces(hovertemplate=_hover_day() + ": " + CURRENCY_SYMBOL + "%{y:,.2f}<extra></extra>")
    line.update_yaxes(rangemode="tozero")
    show_chart(_layout(line, _("Points liability in money at the end of each {grain} ({points} points = 1 "
                                    "{currency})").format(grain=_(GRAIN_NAMES[grain]), points=f"{per_unit:,}",
                                                          currency=CURRENCY), 320), key="points_liability")
    st.subheader(_("By tier"), help=_("The tier the member held when the ledger row was written."))
    st.dataframe(by_tier.assign(tier=by_tier["tier"].map(tier_label)), hide_index=True, column_config={
        "tier": _("Tier"), **{c: st.column_config.NumberColumn(_(POINT_KINDS[c]), format="localized")
                              for c in ("earned", "bonus", "issued", "redeemed", "expired")},
        "redeemers": st.column_config.NumberColumn(_("Members who redeemed"), format="localized"),
        "redemption_rate": st.column_config.NumberColumn(_("Redemption rate"), format="percent",
                                                         help=_points_help("redemption_rate")),
        "breakage_rate": st.column_config.NumberColumn(_("Breakage rate"), format="percent",
                                                       help=_points_help("breakage_rate"))})


def _points_expiring(ctx: PageContext, per_unit: int) -> None:
    filters = ctx.filters
    table = cached_expiring(ctx.engine, filters, per_unit)
    cards = st.columns(len(table))
    for column, row in zip(cards, table.itertuples(), strict=True):
        column.metric(_("Within {days} days (members)").format(days=row.days), count(row.members), border=True,
                      delta=_("{points} points = {value}").format(points=points(row.points), value=money(row.value)),
                      delta_color="off", delta_arrow="off", help=_points_help("expiring"))
    st.caption(_("Points expire on {expiry}; counted from {day}, the range's last day.").format(
        expiry=format_day(table["expires_on"].iloc[0]), day=format_day(filters.end)) + " "
        + _points_help("expiring"))
    left, right = st.columns(2)
    days = left.segmented_control(_("Expiring within"), list(EXPIRY_HORIZONS), default=EXPIRY_HORIZONS[-1],
                                  required=True, key="points_expiring_days",
                                  format_func=lambda d: _("{days} days").format(days=d))
    least = int(right.number_input(_("At least (points)"), 1, 1_000_000_000, 1, key="points_expiring_min"))
    audience = ExpiringPointsAudience(filters, days, least)
    who = (_("hold at least {points} point expiring within {days} days") if least == 1
           else _("hold at least {points} points expiring within {days} days"))
    member_set(ctx.engine, audience, key="points_expiring_members", actor=default_author(), page=PAGE,
               who=who.format(points=f"{least:,}", days=days))


# ---- member value --------------------------------------------------------------------------------------------------

MEASURE_LABELS = {"buyers": N_("Buyers"), "orders": N_("Orders"), "net_sales": N_("Net sales"), "spend_per_buyer":
                  N_("Spend per buyer"), "orders_per_buyer": N_("Orders per buyer"), "aov": N_("Average order value"),
                  "repurchase_rate": N_("Repurchase rate")}


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
    cards[0].metric(_("Spend per member buyer"), money(rows.loc["spend_per_buyer", "members"]), border=True,
                    help=value_help("spend_per_buyer") + " " + value_help("buyers"))
    cards[1].metric(_("Spend per guest buyer"), money(rows.loc["spend_per_buyer", "guests"]), border=True,
                    help=value_help("spend_per_buyer") + " " + value_help("buyers"))
    cards[2].metric(_("Members spend"), times(rows.loc["spend_per_buyer", "ratio"]), border=True,
                    delta=_("as much per buyer as guests"), delta_color="off", delta_arrow="off",
                    help=value_help("ratio"))
    cards[3].metric(_("Member repurchase rate"), share(rows.loc["repurchase_rate", "members"]), border=True,
                    help=value_help("repurchase_rate"))
    definition = _("Definition")
    table = pd.DataFrame({_("Measure"): [_(MEASURE_LABELS[m]) for m in MEASURES],
                          _("Members"): [_figure(m, rows.loc[m, "members"]) for m in MEASURES],
                          _("Guests"): [_figure(m, rows.loc[m, "guests"]) for m in MEASURES],
                          _("Ratio"): [times(rows.loc[m, "ratio"]) for m in MEASURES],
                          definition: [value_help(m) for m in MEASURES]})
    st.dataframe(table, hide_index=True, column_config={definition: st.column_config.TextColumn(width="large")})
    st.subheader(_("New members' first 90 days"), help=value_help("first_90_days"))
    if joiners.empty:
        st.info(_("No member registered in the date range."), icon=":material/person_add:")
        return
    shown = joiners.assign(acquisition_channel=joiners["acquisition_channel"].map(tier_label))
    bars = px.bar(shown, x="value_per_member", y="acquisition_channel", orientation="h", text="value_per_member",
                  color_discrete_sequence=["#C2185B"],
                  labels={"value_per_member": _("Net sales per new member in 90 days ({currency})").format(
                      currency=CURRENCY), "acquisition_channel": _("Acquisition channel")})
    bars.update_traces(texttemplate=CURRENCY_SYMBOL + "%{text:,.0f}",
                       hovertemplate=_("{x}: {amount} per member").format(x="%{y}", amount=CURRENCY_SYMBOL
                                                                           + "%{x:,.2f}") + "<extra></extra>")
    bars.update_yaxes(categoryorder="total ascending")
    show_chart(_layout(bars, _("First-90-day value of new members by acquisition channel"),
                            120 + 34 * len(shown)), key="value_new_members")
    st.dataframe(shown, hide_index=True, column_config={
        "acquisition_channel": _("Acquisition channel"),
        "members": st.column_config.NumberColumn(_("New members"), format="localized"),
        "buyers": st.column_config.NumberColumn(_("Bought in 90 days"), format="localized"),
        "buyer_share": st.column_config.NumberColumn(_("Share"), format="percent"),
        "orders": st.column_config.NumberColumn(_("Orders"), format="localized"),
        "net_sales": st.column_config.NumberColumn(_("Net sales ({currency})").format(currency=CURRENCY_SYMBOL),
                                                   format="compact"),
        "value_per_member": st.column_config.NumberColumn(_("Per member"), format="%.2f"),
        "value_per_buyer": st.column_config.NumberColumn(_("Per buyer"), format="%.2f"),
        "full_window": st.column_config.NumberColumn(_("With all 90 days"), format="localized",
                                                     help=value_help("first_90_days"))})
