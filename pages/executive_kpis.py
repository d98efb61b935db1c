"""Executive KPIs: the headline numbers with their change, a trend, and why they moved (any KPI broken down by
channel, tier, region, category, new vs returning members or campaign).

Every figure is computed in ``analytics.kpis`` with one definition per KPI and written through ``ui.format``.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics.filters import COMPARISONS
from analytics.i18n import LANGUAGES, N_, _, format_day, language, using
from analytics.kpis import (
    DIMENSION_BY_KEY,
    GRAIN_NAMES,
    GRAIN_TITLES,
    GRAINS,
    KPI_BY_KEY,
    KPIS,
    OTHER_VALUES,
    KpiValue,
    comparison_coverage,
    dimensions_for,
    trend_note,
    value_label,
)
from analytics.privacy import safe_csv
from analytics.programme import CURRENCY, CURRENCY_SYMBOL
from ui.cached import cached_kpi_breakdown, cached_kpi_summary, cached_kpi_trend
from ui.context import current_period_label, page_inputs, warn_about_ignored_link_values
from ui.format import ACCENT, change_pp, format_change, format_value, label, share
from ui.look import show_chart

COMPARE_COLOUR = "#9E9AA5"  # the comparison period, beside the accent of the period itself
COMPARISON_TEXT = {"previous": N_("the previous period"), "year_ago": N_("the same period last year")}
COMPARISON_TITLE = {"previous": N_("The previous period"), "year_ago": N_("The same period last year")}
#: The columns of the KPI download, as a reader reads them (the file's own names in English).
DOWNLOAD_COLUMNS = {"kpi": N_("kpi"), "label": N_("label"), "unit": N_("unit"), "current": N_("current"),
                    "previous": N_("previous"), "change": N_("change"), "change_pct": N_("change_pct"),
                    "start": N_("start"), "end": N_("end"), "previous_start": N_("previous_start"),
                    "previous_end": N_("previous_end")}

ctx = page_inputs("kpis")
filters = ctx.filters


def day(value) -> str:
    return format_day(value)


def month(value) -> str:
    """A month as a reader writes it: ``Nov 2026`` / ``2026年11月``."""
    if language() == "en":
        return f"{value:%b %Y}"
    from babel.dates import format_skeleton

    return format_skeleton("yMMM", value, locale=language())


st.title(_("Executive KPIs"))
# options' labels in this run's language, fixed now: a widget may format its options outside the script's run
kpi_labels = {k.key: _(k.label) for k in KPIS}
grain_titles = {g: _(GRAIN_TITLES[g]) for g in GRAINS}
comparison_labels = {c: _(text) for c, text in COMPARISONS.items()}
dimension_labels = {d: _(dimension.label) for d, dimension in DIMENSION_BY_KEY.items()}


def in_every_language(texts) -> set[str]:
    """The texts (English, as marked) in every language offered: a bound widget writes the label the reader sees
    into the link, so a link made in either language is understood."""
    texts, found = list(texts), set()
    for lang in LANGUAGES:
        with using(lang):
            found |= {_(text) for text in texts}
    return found


warn_about_ignored_link_values({
    "trend_kpi": in_every_language(k.label for k in KPIS),
    "trend_grain": in_every_language(GRAIN_TITLES.values()),
    "compare": in_every_language(COMPARISONS.values()),
    "breakdown_kpi": in_every_language([k.label for k in KPIS]),
    "breakdown_by": in_every_language(d.label for d in DIMENSION_BY_KEY.values()),
})
comparison = st.segmented_control(
    _("Compare with"), list(COMPARISONS), default="previous", key="compare", bind="query-params",
    format_func=comparison_labels.get, required=True,
    help=_("Every change on this page is against this period: the period of equal length just before the range, "
           "or the same dates one year earlier (year over year, which takes seasons and festivals out of the "
           "change)."),
) or "previous"
compared = filters.compared(comparison)
scope = []
if filters.channels:
    scope.append(_("channels {names}").format(names=", ".join(map(label, filters.channels))))
if filters.tiers:
    scope.append(_("tiers {names}").format(names=", ".join(map(label, filters.tiers))))
period_label = current_period_label()
range_text = _("{start} – {end} ({days} days), compared with {comparison}: {compared_start} – {compared_end}").format(
    start=day(filters.start), end=day(filters.end), days=filters.days, comparison=_(COMPARISON_TEXT[comparison]),
    compared_start=day(compared.start), compared_end=day(compared.end))
st.caption(
    (_("{period}: {range}").format(period=period_label, range=range_text) if period_label else range_text)
    + (f" · {' · '.join(scope)}" if scope else "") + " · " + _("amounts in {currency}").format(currency=CURRENCY)
)
missing_days = comparison_coverage(filters, comparison, ctx.span.first_day)
if missing_days:
    if missing_days >= compared.days:
        gap = _("The comparison period ({start} – {end}) lies before the first day of data ({first}): there is "
                "nothing to compare with.").format(start=day(compared.start), end=day(compared.end),
                                                   first=day(ctx.span.first_day))
    else:
        gap = _("The comparison period starts before the first day of data ({first}): {missing} of its {days} days "
                "have no data, so its figures are low and the changes overstated.").format(
            first=day(ctx.span.first_day), missing=missing_days, days=compared.days)
    st.warning(gap, icon=":material/history_toggle_off:")

summary = cached_kpi_summary(ctx.engine, filters, comparison)
if summary.is_empty:
    st.info(
        _("Nothing happened between {start} and {end} for these filters: no orders, sessions or new members. The "
          "warehouse has data from {first} to {last}; widen the date range or clear the channel and tier "
          "filters.").format(start=day(filters.start), end=day(filters.end), first=day(ctx.span.first_day),
                             last=day(ctx.span.last_day)),
        icon=":material/event_busy:",
    )
    st.stop()

# --- KPI cards -----------------------------------------------------------------------------------
neutral = {"points_liability", "points_liability_value"}  # more outstanding points is neither good nor bad news
for row in (KPIS[:6], KPIS[6:]):
    for column, definition in zip(st.columns(6), row, strict=False):
        value = summary[definition.key]
        shown_label = (_(definition.label) if definition.uses_channel_filter or not filters.channels
                       else _("{kpi} (channel filter not applied)").format(kpi=_(definition.label)))
        column.metric(
            shown_label,
            format_value(value.current, definition.unit),
            delta=format_change(value),
            delta_color="off" if definition.key in neutral else "normal",
            help=f"{definition.definition}\n\n" + _("{comparison} ({start} – {end}): {value}").format(
                comparison=_(COMPARISON_TITLE[comparison]), start=day(compared.start), end=day(compared.end),
                value=format_value(value.previous, definition.unit)),
            border=True,
        )

# --- trend ---------------------------------------------------------------------------------------
st.subheader(_("Trend"))
left, right = st.columns([3, 2])
kpi_key = left.selectbox(
    _("KPI"), [k.key for k in KPIS], format_func=kpi_labels.get, key="trend_kpi",
    bind="query-params", help=_("Any of the KPIs above, per day, week or month of the selected range."),
)
default_grain = "day" if filters.days <= 92 else "week" if filters.days <= 400 else "month"
grain = right.segmented_control(_("Granularity"), GRAINS, default=default_grain, key="trend_grain",
                                bind="query-params", format_func=grain_titles.get) or default_grain
grain_name = _(GRAIN_NAMES[grain])
trend = cached_kpi_trend(ctx.engine, filters, kpi_key, grain)
definition = KPI_BY_KEY[kpi_key]
axis_format = {"ratio": ".1%", "currency": ",.0f", "points": ",.0f", "count": ",.0f"}[definition.unit]


def bucket_name(start) -> str:
    if grain == "week":
        return _("Week of {day}").format(day=day(start))
    return month(start) if grain == "month" else day(start)


def point_hover(start, value: float, partial: bool) -> str:
    text = _("{when}: {value}").format(when=bucket_name(start), value=format_value(value, definition.unit))
    return _("{point} (partial)").format(point=text) if partial else text


hover = [point_hover(t, v, p) for t, v, p in zip(trend["period_start"], trend["value"], trend["partial"], strict=True)]
trend = trend.assign(hover=hover)
complete = trend["value"].where(~trend["partial"])
figure = go.Figure()
figure.add_scatter(x=trend["period_start"], y=complete, mode="lines+markers" if grain != "day" else "lines",
                   name=_("Whole {grain}").format(grain=grain_name), line={"color": ACCENT}, hovertext=trend["hover"],
                   hoverinfo="text")
if trend["partial"].any():
    # a dashed line into each partial bucket, from its complete neighbour, with a hollow marker
    partial = trend["partial"]
    edges = partial | partial.shift(-1, fill_value=False) | partial.shift(1, fill_value=False)
    dashed = trend["value"].where(edges)
    figure.add_scatter(x=trend["period_start"], y=dashed, mode="lines", showlegend=False, hoverinfo="skip",
                       line={"color": ACCENT, "dash": "dash"})
    figure.add_scatter(x=trend["period_start"], y=trend["value"].where(trend["partial"]), mode="markers",
                       name=_("Partial {grain}").format(grain=grain_name), hovertext=trend["hover"], hoverinfo="text",
                       marker={"color": "white", "size": 9, "line": {"color": ACCENT, "width": 2}})
card = summary[kpi_key].current
if (definition.unit == "ratio" or kpi_key == "aov") and card is not None and kpi_key != "repurchase_rate":
    # a per-period ratio beside the card's value over the whole range (repurchase's last point is the card)
    figure.add_hline(y=card, line={"dash": "dot", "color": COMPARE_COLOUR},
                     annotation_text=_("whole range: {value}").format(value=format_value(card, definition.unit)),
                     annotation_position="top left")
figure.update_yaxes(tickformat=axis_format, rangemode="tozero", title=_(definition.label),
                    tickprefix=CURRENCY_SYMBOL if definition.unit == "currency" else "")
figure.update_xaxes(title=_(GRAIN_TITLES[grain]))
figure.update_layout(height=340, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                     legend={"orientation": "h", "y": 1.12, "x": 0})
show_chart(figure, key="trend_chart")
notes = [trend_note(kpi_key, grain, filters)]
partial_ends = [(which, int(trend["days"].iloc[at])) for which, at in (("first", 0), ("last", -1))
                if trend["partial"].iloc[at] and (which == "last" or len(trend) > 1)]
PARTIAL_END = {
    ("first", False): N_("the first {grain} has only {days} day in the range"),
    ("first", True): N_("the first {grain} has only {days} days in the range"),
    ("last", False): N_("the last {grain} has only {days} day in the range"),
    ("last", True): N_("the last {grain} has only {days} days in the range"),
}
if partial_ends:
    parts = "; ".join(_(PARTIAL_END[which, days > 1]).format(grain=grain_name, days=days)
                         for which, days in partial_ends)
    notes.append(_("Hollow points on a dashed line are partial {grain}s ({parts}): a sum there is low because the "
                   "{grain} is not all in the range.").format(grain=grain_name, parts=parts))
st.caption(" ".join(notes))

# --- why: breakdown -------------------------------------------------------------------------------
st.subheader(_("Why: break a KPI down"))
kpi_col, _rest = st.columns([2, 3])
breakdown_kpi = kpi_col.selectbox(
    _("KPI to explain"), [k.key for k in KPIS if dimensions_for(k.key)],
    format_func=kpi_labels.get, key="breakdown_kpi",
    bind="query-params", help=_("Each row is this KPI computed with the card's own definition over that value's "
                                "orders (or members, sessions, points), for both periods."),
)
usable = dimensions_for(breakdown_kpi)
by = st.segmented_control(
    _("Break down by"), list(usable), default=usable[0], key="breakdown_by", bind="query-params",
    format_func=dimension_labels.get, required=True,
    help=_("Only the breakdowns that apply to this KPI are offered: the clickstream, registrations and points have "
           "no sales channel, category or campaign."),
) or usable[0]
breakdown = cached_kpi_breakdown(ctx.engine, filters, by, breakdown_kpi, comparison)
bk = breakdown.kpi
dimension = breakdown.dimension
rows = breakdown.rows
if rows.empty:
    st.info(_("Nothing to break down: no {kpi} in either period for these filters.").format(kpi=_(bk.label).lower()))
else:
    def shown_name(value: str, name: str) -> str:
        if value == OTHER_VALUES:
            return _("Other ({count} values)").format(count=breakdown.folded)
        if name:
            return name
        made_up = value_label(value)  # guest, unknown, no campaign, new, returning, not yet bought
        if made_up:
            return made_up
        return label(value) if dimension.coded else value

    names = [shown_name(v, n) for v, n in zip(rows["value"], rows["name"], strict=True)]
    values = [KpiValue(bk, c if pd.notna(c) else None, p if pd.notna(p) else None)
              for c, p in zip(rows["current"], rows["previous"], strict=True)]
    adds_up = dimension.adds_up(bk.key)
    base_label = _(KPI_BY_KEY[bk.base].label).lower() if bk.base in KPI_BY_KEY else _("sessions")
    bars = go.Figure()
    for column, period_name, colour in (("previous", _(COMPARISONS[comparison]), COMPARE_COLOUR),
                                        ("current", _("This period"), ACCENT)):
        texts = [format_value(getattr(v, column), bk.unit) for v in values]
        bars.add_bar(y=names, x=rows[column], orientation="h", name=period_name, marker_color=colour, text=texts,
                     textposition="outside", cliponaxis=False,
                     hovertext=[_("{name}, {period}: {value}").format(name=n, period=period_name.lower(), value=t)
                                for n, t in zip(names, texts, strict=True)],
                     hoverinfo="text")
    bars.update_yaxes(autorange="reversed")
    bars.update_xaxes(tickformat=axis_format if bk.unit == definition.unit else
                      {"ratio": ".0%", "currency": ",.0f", "points": ",.0f", "count": ",.0f"}[bk.unit],
                      title=_(bk.label))
    bars.update_layout(barmode="group", height=90 + 48 * len(rows), margin={"l": 10, "r": 60, "t": 10, "b": 10},
                       legend={"orientation": "h", "y": 1.05, "x": 0, "traceorder": "reversed"})
    show_chart(bars, key="breakdown_chart")
    table = {
        _(dimension.label): names,
        _(bk.label): [format_value(v.current, bk.unit) for v in values],
        _(COMPARISONS[comparison]): [format_value(v.previous, bk.unit) for v in values],
        _("Change"): [format_change(v) or "—" for v in values],
        (_("Share of total") if bk.additive else _("Share of {base}").format(base=base_label)):
            [share(s) for s in rows["share"]],
    }
    if adds_up:
        table[_("Part of the total's change")] = [change_pp(c) or "—" for c in rows["contribution"]]
    st.dataframe(table, hide_index=True, key="breakdown_table")
    total = breakdown.total
    notes = [_("Total: {current} against {previous} ({change}), the card's figure. {description}").format(
        current=format_value(total.current, bk.unit), previous=format_value(total.previous, bk.unit),
        change=format_change(total) or _("no change"), description=_(dimension.description))]
    if not bk.additive:
        notes.append(_("{kpi} is not a sum: the rows do not add up to the total; each value's share of {base} shows "
                       "how much it weighs in it, so a change of the total can come from the values' own changes or "
                       "from a shift between them.").format(kpi=_(bk.label), base=base_label))
    elif not adds_up:
        notes.append(_("Here the rows overlap, so they add up to more than the total."))
    else:
        notes.append(_("The last column is each value's change as a part of the total's change: they add up to it."))
    if breakdown.folded:
        notes.append(_("The {count} smallest values are together in the last row.").format(count=breakdown.folded))
    st.caption(" ".join(notes))

with st.expander(_("KPI definitions")):
    st.markdown("\n".join(_("- **{kpi}**: {definition}").format(kpi=_(k.label), definition=k.definition)
                          for k in KPIS))
    download = summary.to_frame()
    download["label"] = download["label"].map(_)
    download = download.rename(columns={c: _(DOWNLOAD_COLUMNS[c]) for c in download.columns if c in DOWNLOAD_COLUMNS})
    st.download_button(_("Download these KPIs (CSV)"), safe_csv(download),
                       file_name=f"memberlens_kpis_{filters.start}_{filters.end}.csv", mime="text/csv",
                       icon=":material/download:")
