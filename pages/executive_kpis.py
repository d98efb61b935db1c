"""Executive KPIs: the headline numbers with their change, a trend, and why they moved (any KPI broken down by
channel, tier, region, category, new vs returning members or campaign).

Every figure is computed in ``analytics.kpis`` with one definition per KPI and written through ``ui.format``.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics.filters import COMPARISONS
from analytics.kpis import (
    DIMENSION_BY_KEY,
    GRAINS,
    KPI_BY_KEY,
    KPIS,
    OTHER_VALUES,
    KpiValue,
    comparison_coverage,
    dimensions_for,
    trend_note,
)
from analytics.privacy import safe_csv
from analytics.programme import CURRENCY, CURRENCY_SYMBOL
from ui.cached import cached_kpi_breakdown, cached_kpi_summary, cached_kpi_trend
from ui.context import current_period_label, page_inputs, warn_about_ignored_link_values
from ui.format import ACCENT, change_pp, format_change, format_value, label, share

COMPARE_COLOUR = "#9E9AA5"  # the comparison period, beside the accent of the period itself
COMPARISON_TEXT = {"previous": "the previous period", "year_ago": "the same period last year"}

ctx = page_inputs("kpis")
filters = ctx.filters


def day(value) -> str:
    return f"{value.day} {value:%b %Y}"


st.title("Executive KPIs")
warn_about_ignored_link_values({
    "trend_kpi": {k.label for k in KPIS}, "trend_grain": {g.capitalize() for g in GRAINS},
    "compare": set(COMPARISONS.values()), "breakdown_kpi": {k.label for k in KPIS},
    "breakdown_by": {d.label for d in DIMENSION_BY_KEY.values()},
})
comparison = st.segmented_control(
    "Compare with", list(COMPARISONS), default="previous", key="compare", bind="query-params",
    format_func=COMPARISONS.get, required=True,
    help="Every change on this page is against this period: the period of equal length just before the range, "
         "or the same dates one year earlier (year over year, which takes seasons and festivals out of the change).",
) or "previous"
compared = filters.compared(comparison)
scope = []
if filters.channels:
    scope.append("channels " + ", ".join(map(label, filters.channels)))
if filters.tiers:
    scope.append("tiers " + ", ".join(map(label, filters.tiers)))
period_label = current_period_label()
st.caption(
    (f"{period_label}: " if period_label else "")
    + f"{day(filters.start)} – {day(filters.end)} ({filters.days} days), compared with "
    f"{COMPARISON_TEXT[comparison]}: {day(compared.start)} – {day(compared.end)}"
    + (f" · {' · '.join(scope)}" if scope else "") + f" · amounts in {CURRENCY}"
)
missing_days = comparison_coverage(filters, comparison, ctx.span.first_day)
if missing_days:
    if missing_days >= compared.days:
        gap = (f"The comparison period ({day(compared.start)} – {day(compared.end)}) lies before the first day of "
               f"data ({day(ctx.span.first_day)}): there is nothing to compare with.")
    else:
        gap = (f"The comparison period starts before the first day of data ({day(ctx.span.first_day)}): "
               f"{missing_days} of its {compared.days} days have no data, so its figures are low and the changes "
               "overstated.")
    st.warning(gap, icon=":material/history_toggle_off:")

summary = cached_kpi_summary(ctx.engine, filters, comparison)
if summary.is_empty:
    st.info(
        f"Nothing happened between {day(filters.start)} and {day(filters.end)} for these filters: "
        f"no orders, sessions or new members. The warehouse has data from {day(ctx.span.first_day)} "
        f"to {day(ctx.span.last_day)}; widen the date range or clear the channel and tier filters.",
        icon=":material/event_busy:",
    )
    st.stop()

# --- KPI cards -----------------------------------------------------------------------------------
neutral = {"points_liability", "points_liability_value"}  # more outstanding points is neither good nor bad news
for row in (KPIS[:6], KPIS[6:]):
    for column, definition in zip(st.columns(6), row, strict=False):
        value = summary[definition.key]
        note = "" if definition.uses_channel_filter or not filters.channels else " (channel filter not applied)"
        column.metric(
            definition.label + note,
            format_value(value.current, definition.unit),
            delta=format_change(value),
            delta_color="off" if definition.key in neutral else "normal",
            help=f"{definition.definition}\n\n{COMPARISON_TEXT[comparison].capitalize()} ({day(compared.start)} – "
                 f"{day(compared.end)}): {format_value(value.previous, definition.unit)}",
            border=True,
        )

# --- trend ---------------------------------------------------------------------------------------
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
hover = [f"{'Week of ' if grain == 'week' else ''}{day(t) if grain != 'month' else f'{t:%b %Y}'}: "
         f"{format_value(v, definition.unit)}" + (" (partial)" if p else "")
         for t, v, p in zip(trend["period_start"], trend["value"], trend["partial"], strict=True)]
trend = trend.assign(hover=hover)
complete = trend["value"].where(~trend["partial"])
figure = go.Figure()
figure.add_scatter(x=trend["period_start"], y=complete, mode="lines+markers" if grain != "day" else "lines",
                   name="Whole " + grain, line={"color": ACCENT}, hovertext=trend["hover"], hoverinfo="text")
if trend["partial"].any():
    # a dashed line into each partial bucket, from its complete neighbour, with a hollow marker
    partial = trend["partial"]
    edges = partial | partial.shift(-1, fill_value=False) | partial.shift(1, fill_value=False)
    dashed = trend["value"].where(edges)
    figure.add_scatter(x=trend["period_start"], y=dashed, mode="lines", showlegend=False, hoverinfo="skip",
                       line={"color": ACCENT, "dash": "dash"})
    figure.add_scatter(x=trend["period_start"], y=trend["value"].where(trend["partial"]), mode="markers",
                       name=f"Partial {grain}", hovertext=trend["hover"], hoverinfo="text",
                       marker={"color": "white", "size": 9, "line": {"color": ACCENT, "width": 2}})
card = summary[kpi_key].current
if (definition.unit == "ratio" or kpi_key == "aov") and card is not None and kpi_key != "repurchase_rate":
    # a per-period ratio beside the card's value over the whole range (repurchase's last point is the card)
    figure.add_hline(y=card, line={"dash": "dot", "color": COMPARE_COLOUR},
                     annotation_text=f"whole range: {format_value(card, definition.unit)}",
                     annotation_position="top left")
figure.update_yaxes(tickformat=axis_format, rangemode="tozero", title=definition.label,
                    tickprefix=CURRENCY_SYMBOL if definition.unit == "currency" else "")
figure.update_xaxes(title=grain.capitalize())
figure.update_layout(height=340, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                     legend={"orientation": "h", "y": 1.12, "x": 0})
st.plotly_chart(figure, key="trend_chart")
notes = [trend_note(kpi_key, grain, filters)]
partial_ends = [(which, int(trend["days"].iloc[at])) for which, at in (("first", 0), ("last", -1))
                if trend["partial"].iloc[at] and (which == "last" or len(trend) > 1)]
if partial_ends:
    parts = "; ".join(f"the {which} {grain} has only {days} day{'s' if days > 1 else ''} in the range"
                      for which, days in partial_ends)
    notes.append(f"Hollow points on a dashed line are partial {grain}s ({parts}): a sum there is low because the "
                 f"{grain} is not all in the range.")
st.caption(" ".join(notes))

# --- why: breakdown -------------------------------------------------------------------------------
st.subheader("Why: break a KPI down")
kpi_col, _ = st.columns([2, 3])
breakdown_kpi = kpi_col.selectbox(
    "KPI to explain", [k.key for k in KPIS if dimensions_for(k.key)], format_func=lambda k: KPI_BY_KEY[k].label,
    key="breakdown_kpi",
    bind="query-params", help="Each row is this KPI computed with the card's own definition over that value's "
    "orders (or members, sessions, points), for both periods.",
)
usable = dimensions_for(breakdown_kpi)
by = st.segmented_control(
    "Break down by", list(usable), default=usable[0], key="breakdown_by", bind="query-params",
    format_func=lambda d: DIMENSION_BY_KEY[d].label, required=True,
    help="Only the breakdowns that apply to this KPI are offered: the clickstream, registrations and points have "
         "no sales channel, category or campaign.",
) or usable[0]
breakdown = cached_kpi_breakdown(ctx.engine, filters, by, breakdown_kpi, comparison)
bk = breakdown.kpi
dimension = breakdown.dimension
rows = breakdown.rows
if rows.empty:
    st.info(f"Nothing to break down: no {bk.label.lower()} in either period for these filters.")
else:
    def shown_name(value: str, name: str) -> str:
        if value == OTHER_VALUES:
            return f"Other ({breakdown.folded} values)"
        if name:
            return name
        return label(value) if dimension.coded else value

    names = [shown_name(v, n) for v, n in zip(rows["value"], rows["name"], strict=True)]
    values = [KpiValue(bk, c if pd.notna(c) else None, p if pd.notna(p) else None)
              for c, p in zip(rows["current"], rows["previous"], strict=True)]
    adds_up = dimension.adds_up(bk.key)
    base_label = KPI_BY_KEY[bk.base].label.lower() if bk.base in KPI_BY_KEY else "sessions"
    bars = go.Figure()
    for column, period_name, colour in (("previous", COMPARISONS[comparison], COMPARE_COLOUR),
                                        ("current", "This period", ACCENT)):
        texts = [format_value(getattr(v, column), bk.unit) for v in values]
        bars.add_bar(y=names, x=rows[column], orientation="h", name=period_name, marker_color=colour, text=texts,
                     textposition="outside", cliponaxis=False,
                     hovertext=[f"{n}, {period_name.lower()}: {t}" for n, t in zip(names, texts, strict=True)],
                     hoverinfo="text")
    bars.update_yaxes(autorange="reversed")
    bars.update_xaxes(tickformat=axis_format if bk.unit == definition.unit else
                      {"ratio": ".0%", "currency": ",.0f", "points": ",.0f", "count": ",.0f"}[bk.unit],
                      title=bk.label)
    bars.update_layout(barmode="group", height=90 + 48 * len(rows), margin={"l": 10, "r": 60, "t": 10, "b": 10},
                       legend={"orientation": "h", "y": 1.05, "x": 0, "traceorder": "reversed"})
    st.plotly_chart(bars, key="breakdown_chart")
    table = {
        dimension.label: names,
        bk.label: [format_value(v.current, bk.unit) for v in values],
        COMPARISONS[comparison]: [format_value(v.previous, bk.unit) for v in values],
        "Change": [format_change(v) or "—" for v in values],
        ("Share of total" if bk.additive else f"Share of {base_label}"): [share(s) for s in rows["share"]],
    }
    if adds_up:
        table["Part of the total's change"] = [change_pp(c) or "—" for c in rows["contribution"]]
    st.dataframe(table, hide_index=True, key="breakdown_table")
    total = breakdown.total
    notes = [f"Total: {format_value(total.current, bk.unit)} against {format_value(total.previous, bk.unit)} "
             f"({format_change(total) or 'no change'}), the card's figure. {dimension.description}"]
    if not bk.additive:
        notes.append(f"{bk.label} is not a sum: the rows do not add up to the total; each value's share of "
                     f"{base_label} shows how much it weighs in it, so a change of the total can come from the "
                     "values' own changes or from a shift between them.")
    elif not adds_up:
        notes.append("Here the rows overlap, so they add up to more than the total.")
    else:
        notes.append("The last column is each value's change as a part of the total's change: they add up to it.")
    if breakdown.folded:
        notes.append(f"The {breakdown.folded} smallest values are together in the last row.")
    st.caption(" ".join(notes))

with st.expander("KPI definitions"):
    st.markdown("\n".join(f"- **{k.label}**: {k.definition}" for k in KPIS))
    st.download_button("Download these KPIs (CSV)", safe_csv(summary.to_frame()),
                       file_name=f"memberlens_kpis_{filters.start}_{filters.end}.csv", mime="text/csv",
                       icon=":material/download:")
