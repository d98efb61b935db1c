"""Heatmaps: retention by cohort, the weekly rhythm, category affinity and browsing hotspots at a glance.

Clicking a cell shows its figures and the members behind it (masked), with a CSV of all of them.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.filters import DEFAULT_COHORTS, Filters, cohort_range
from analytics.heatmaps import AFFINITY_GROUPS, OPTION_LABELS, RHYTHM_MEASURES, cell_audience
from analytics.i18n import N_, _, format_day, language
from analytics.privacy import safe_csv
from analytics.programme import CURRENCY
from ui.app_state import default_author
from ui.cached import cached_heatmap, cached_retention
from ui.context import page_inputs
from ui.format import ACCENT, format_value, label
from ui.look import show_chart
from ui.member_sets import member_set

WEEKDAYS = [N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun")]
WEEKDAY_NAMES = [N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"),
                 N_("Sunday")]
SCALE = "RdPu"
CLICK_HINT = N_("Click a cell to see the members behind it (double-click the chart to clear).")
ctx = page_inputs("heatmaps")
filters = ctx.filters
# options' labels in this run's language, fixed now: a widget may format its options outside the script's run
options_shown = {code: _(text) for code, text in OPTION_LABELS.items()}
click_hint = _(CLICK_HINT)
# how a tooltip's lines are joined into one line of figures under the chart
COLON, SEMICOLON = (": ", "; ") if language() == "en" else ("：", "；")
#: The columns of the cohort table's download, as a reader reads them (the file's own names in English).
RETENTION_HEADERS = {"cohort": N_("cohort"), "size": N_("size"), "period": N_("period"), "active": N_("active"),
                     "share": N_("share")}
retention_columns = {column: _(text) for column, text in RETENTION_HEADERS.items()}


def long_day(day) -> str:
    """``01 Nov 2026`` / ``2026年11月1日``."""
    return f"{day:%d %b %Y}" if language() == "en" else format_day(day)


st.title(_("Heatmaps"))
st.caption(_("{start} – {end}. Hover a cell for its exact figures; click it for the members behind it.").format(
    start=long_day(filters.start), end=long_day(filters.end)))
retention_tab, rhythm_tab, affinity_tab, browsing_tab = st.tabs(
    [_("Cohort retention"), _("Activity rhythm"), _("Category affinity"), _("Browsing hotspots")], key="heatmaps_tab",
    on_change="rerun")  # only the open tab is computed and drawn (at the end of the page)

Key = str | int


def extent(labels: pd.Index) -> list[float]:
    """The axis range a heatmap with these row or column labels fills, half a cell beyond the first and last:
    set explicitly, since the markers drawn over the cells would otherwise widen the axis."""
    if not pd.api.types.is_numeric_dtype(labels):
        return [-0.5, len(labels) - 0.5]  # category positions 0 .. n-1
    half = (labels[1] - labels[0]) / 2 if len(labels) > 1 else 0.5
    return [float(labels.min() - half), float(labels.max() + half)]


def draw(frame: pd.DataFrame, x: str, y: str, value: str, labels: dict, text_format: str, height: int,
         key: str) -> tuple[Key, Key] | None:
    """Draw ``frame`` (one row per cell: ``x`` and ``y`` as shown, ``value``, the cell's keys ``row_key`` and
    ``col_key`` for the drill-down, its tooltip in ``hover``) as a heatmap; return the keys of the clicked cell.

    Streamlit receives no selection from a click on a heatmap trace (streamlit#8760), so an invisible
    marker sits on the centre of every cell, empty ones included: it takes the hover and the click, and
    carries the cell's keys as text (numeric customdata would travel as a typed array).
    """
    grid = frame.pivot(index=y, columns=x, values=value)
    figure = px.imshow(grid, color_continuous_scale=SCALE, aspect="auto", labels=labels, text_auto=text_format)
    figure.update_traces(hoverinfo="skip", hovertemplate=None)
    cells = pd.MultiIndex.from_product([grid.index, grid.columns], names=[y, x]).to_frame(index=False)
    cells = cells.astype({y: object}).merge(frame[[y, x, "hover"]].astype({y: object}), how="left", on=[y, x])
    row_keys = dict(zip(frame[y].astype(object), frame["row_key"], strict=True))
    col_keys = dict(zip(frame[x].astype(object), frame["col_key"], strict=True))
    empty = cells[y].astype(str) + " · " + cells[x].astype(str) + "<br>" + _("no data")
    figure.add_trace(go.Scatter(
        x=cells[x], y=cells[y], mode="markers", showlegend=False, hoverinfo="text",
        hovertext=cells["hover"].fillna(empty),
        customdata=[[str(row_keys[r]), str(col_keys[c])] for r, c in zip(cells[y], cells[x], strict=True)],
        marker={"size": 20, "symbol": "square-open", "color": ACCENT, "opacity": 0, "line": {"width": 2}},
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 0}}))  # the clicked cell is framed
    figure.update_layout(height=height + 20, margin={"l": 10, "r": 10, "t": 30, "b": 10},  # tool bar above cells
                         hoverdistance=-1)
    figure.update_xaxes(range=extent(grid.columns), autorange=False,
                        dtick=1 if pd.api.types.is_numeric_dtype(grid.columns) else None)  # whole periods, hours
    figure.update_yaxes(range=extent(grid.index)[::-1], autorange=False)  # first row on top, as px.imshow draws
    event = show_chart(figure, key=key, on_select="rerun", selection_mode="points")
    points = [p for p in (event or {}).get("selection", {}).get("points", []) if p.get("customdata")]
    if not points:
        return None
    row, column = points[0]["customdata"]
    by_text_row = {str(k): k for k in row_keys.values()}
    by_text_col = {str(k): k for k in col_keys.values()}
    if row not in by_text_row or column not in by_text_col:
        return None  # a click on an older drawing of the chart
    return by_text_row[row], by_text_col[column]


def show_members(heatmap: str, row: Key, column: Key, options: dict[str, str], figures: str | None,
                 who: str, scope: Filters = filters) -> None:
    """Under a chart: the clicked cell's figures and the members behind it (masked preview, CSV, definition,
    Campaign targeting)."""
    with st.container(border=True, key=f"hm_{heatmap}_cell"):
        if figures is None:
            st.markdown(_("**Nothing in this cell** for these filters."))
            return
        st.markdown(f"**{figures}**")
        member_set(ctx.engine, cell_audience(scope, heatmap, row, column, options), key=f"hm_{heatmap}_members",
                   who=_("behind this cell: {who}.").format(who=who), actor=default_author(), page="heatmaps",
                   headline=N_("**{count}** member{s} {who}"), csv_label=N_("Download the {count} member{s} (CSV)"))


def cell(frame: pd.DataFrame, row_column: str, row: Key, col_column: str, column: Key) -> pd.Series | None:
    """The frame's row for one cell, or None when the heatmap has nothing there."""
    found = frame[(frame[row_column] == row) & (frame[col_column] == column)]
    return None if found.empty else found.iloc[0]


def cohort_retention() -> None:
    """The cohort retention tab: its controls, the heatmap, the table download and a clicked cell's members."""
    controls = st.columns(4)
    cohort = controls[0].segmented_control(_("Cohort by"), ["first_purchase", "registration"],
                                           default="first_purchase", format_func=options_shown.get, key="hm_cohort",
                                           required=True)
    period = controls[1].segmented_control(_("Period"), ["month", "week"], default="month",
                                           format_func=options_shown.get, key="hm_period", required=True)
    activity = controls[2].segmented_control(_("Active means"), ["purchase", "any"], default="purchase",
                                             format_func={"purchase": _("Bought"), "any": _("Bought or browsed")}.get,
                                             key="hm_activity", required=True)
    show = controls[3].segmented_control(_("Show"), ["share", "active"], default="share",
                                         format_func={"share": _("Share"), "active": _("Count")}.get, key="hm_show",
                                         required=True)
    monthly = period == "month"
    window = st.radio(
        _("Cohorts"), ["recent", "sidebar"], key="hm_cohort_range", horizontal=True,
        format_func={"recent": (_("Last {count} months of data") if monthly else _("Last {count} weeks of data"))
                     .format(count=DEFAULT_COHORTS),
                     "sidebar": _("Sidebar range ({start} – {end})").format(start=long_day(filters.start),
                                                                             end=long_day(filters.end))}.get,
        help=(_("By default the {count} most recent monthly cohorts, up to the last day with data, whatever the "
                "sidebar's dates (its default 90 days would hold three or four monthly cohorts). The sidebar's "
                "channel and tier filters apply either way.") if monthly else
              _("By default the {count} most recent weekly cohorts, up to the last day with data, whatever the "
                "sidebar's dates (its default 90 days would hold three or four monthly cohorts). The sidebar's "
                "channel and tier filters apply either way.")).format(count=DEFAULT_COHORTS))
    retention_filters = (Filters(*cohort_range(period, ctx.span.first_day, ctx.span.last_day), filters.channels,
                                 filters.tiers) if window == "recent" else filters)
    if window == "recent":
        st.caption((_("Cohorts of {start} – {end}: the last {count} months of data, not the sidebar's dates.")
                    if monthly else
                    _("Cohorts of {start} – {end}: the last {count} weeks of data, not the sidebar's dates.")).format(
            start=long_day(retention_filters.start), end=long_day(retention_filters.end), count=DEFAULT_COHORTS))
    table = cached_retention(ctx.engine, retention_filters, cohort, period, activity, 12)
    if table.empty:
        st.info(_("No cohort starts in this date range for these filters."))
    else:
        fmt = "%Y-%m" if period == "month" else "%Y-%m-%d"
        starts = table["cohort"].dt.strftime(fmt)
        hover_text = _("Cohort {cohort} ({size} members)<br>{period} {number}: {active} active, {share}")
        shown = table.assign(
            cohort=starts + " (" + table["size"].map("{:,}".format) + ")",
            row_key=table["cohort"].dt.strftime("%Y-%m-%d"), col_key=table["period"],
            hover=[hover_text.format(cohort=c, size=f"{n:,}", period=options_shown[period], number=p,
                                     active=f"{a:,}", share=f"{r:.1%}")
                   for c, n, p, a, r in zip(starts, table["size"], table["period"], table["active"], table["share"],
                                            strict=True)])
        clicked = draw(shown, "period", "cohort", show,
                       {"x": _("Months after the cohort's") if monthly else _("Weeks after the cohort's"),
                        "y": _("Cohort (size)"),
                        "color": _("Share active") if show == "share" else _("Members active")},
                       ".0%" if show == "share" else ",d", 80 + 28 * shown["cohort"].nunique(), "hm_retention_chart")
        st.caption(_("Members whose first completed purchase (or registration) falls in each period of the range; a "
                     "cell is the share (or number) of them active N periods later. Period 0 of first-purchase "
                     "cohorts is 100% by definition. {hint}").format(hint=click_hint))
        st.download_button(_("Download the cohort table (CSV)"), safe_csv(table.rename(columns=retention_columns)),
                           file_name=f"memberlens_retention_{cohort}_{period}.csv", mime="text/csv",
                           icon=":material/download:", key="hm_retention_download")
        if clicked:
            found = cell(shown, "row_key", clicked[0], "col_key", clicked[1])
            figures = None if found is None else (
                _("Cohort {cohort} ({size} members), month {number}: {active} active, {share}") if monthly else
                _("Cohort week of {cohort} ({size} members), week {number}: {active} active, {share}")).format(
                cohort=found["row_key"][:7 if monthly else 10], size=f"{found['size']:,}", number=found["period"],
                active=f"{found['active']:,}", share=f"{found['share']:.1%}")
            who = {("purchase", True): N_("cohort members who bought in that month"),
                   ("purchase", False): N_("cohort members who bought in that week"),
                   ("any", True): N_("cohort members who bought or browsed in that month"),
                   ("any", False): N_("cohort members who bought or browsed in that week")}[activity, monthly]
            show_members("retention", clicked[0], clicked[1],
                         {"cohort": cohort, "period": period, "activity": activity}, figures, _(who),
                         retention_filters)

def activity_rhythm_tab() -> None:
    """The activity rhythm tab: weekday x hour, and a clicked cell's members."""
    measure = st.segmented_control(_("Measure"), RHYTHM_MEASURES, default="orders", key="hm_measure", required=True,
                                   format_func={"orders": _("Orders"),
                                                "net_sales": _("Net sales ({currency})").format(currency=CURRENCY),
                                                "events": _("Clickstream events")}.get)
    rhythm = cached_heatmap(ctx.engine, filters, "rhythm", measure)
    amounts = (rhythm["value"].map(lambda v: format_value(v, "currency")) if measure == "net_sales"
               else rhythm["value"].map("{:,.0f}".format))
    amount_texts = {"orders": N_("{amount} completed orders"), "net_sales": N_("{amount} net sales"),
                    "events": N_("{amount} clickstream events")}
    amount_text = _(amount_texts[measure])
    hours = rhythm["hour"].map("{0:02d}:00–{0:02d}:59".format)
    weekdays = [_(d) for d in WEEKDAYS]
    weekday_names = [_(d) for d in WEEKDAY_NAMES]
    rhythm = rhythm.assign(
        row_key=rhythm["weekday"], col_key=rhythm["hour"],
        hover=rhythm["weekday"].map(dict(enumerate(weekday_names))) + " " + hours + "<br>"
        + amounts.map(lambda a: amount_text.format(amount=a)),
        weekday=pd.Categorical(rhythm["weekday"].map(dict(enumerate(weekdays))), categories=weekdays,
                               ordered=True))  # Monday first
    clicked = draw(rhythm, "hour", "weekday", "value",
                   {"x": _("Hour of day"), "y": "", "color": options_shown[measure]}, "", 330, "hm_rhythm_chart")
    st.caption(_("Completed orders (or net sales, or every clickstream event) by weekday and hour, in the shop's "
                 "local time. {hint} Guest orders and anonymous visitors count in the figures but have no member to "
                 "list.").format(hint=click_hint))
    if clicked:
        found = cell(rhythm, "row_key", clicked[0], "col_key", clicked[1])
        show_members("rhythm", clicked[0], clicked[1], {"measure": measure},
                     None if found is None else found["hover"].replace("<br>", COLON),
                     _("members with a clickstream event then (anonymous visitors are in the figure but cannot be "
                       "listed)") if measure == "events" else
                     _("members with a completed order then (guest orders are in the figure but cannot be listed)"))

def category_affinity_tab() -> None:
    """The category affinity tab: group x category index, and a clicked cell's members."""
    by = st.segmented_control(_("Group by"), AFFINITY_GROUPS, default="tier", format_func=options_shown.get,
                              key="hm_affinity_by", required=True)
    affinity = cached_heatmap(ctx.engine, filters, "affinity", by)
    if affinity.empty:
        st.info(_("No completed orders by members in this date range."))
    else:
        groups = affinity["group"].map(label) if by == "tier" else affinity["group"]  # regions are names already
        hover_text = _("{group} · {category}<br>index {index} (100 = average)<br>{share} of the group's spend, {spend}")
        affinity = affinity.assign(
            row_key=affinity["group"], col_key=affinity["category"], group=groups,
            hover=[hover_text.format(group=g, category=c, index=f"{i:.0f}", share=f"{r:.1%}",
                                     spend=format_value(v, "currency"))
                   for g, c, i, r, v in zip(groups, affinity["category"], affinity["index"], affinity["share"],
                                            affinity["spend"], strict=True)])
        clicked = draw(affinity, "category", "group", "index", {"x": "", "y": "", "color": _("Index")}, ".0f",
                       120 + 40 * affinity["group"].nunique(), "hm_affinity_chart")
        st.caption(_("Each group's share of its spend (order line amounts) in a category, against that category's "
                     "share of all spend: 100 is average, 150 half as much again, 50 half as much. {hint}").format(
            hint=click_hint))
        if clicked:
            found = cell(affinity, "row_key", clicked[0], "col_key", clicked[1])
            show_members("affinity", clicked[0], clicked[1], {"by": by},
                         None if found is None else found["hover"].replace("<br>", COLON, 1).replace("<br>", SEMICOLON),
                         (_("members of this tier who bought from {category} in completed orders in the range")
                          if by == "tier" else
                          _("members of this region who bought from {category} in completed orders in the range"))
                         .format(category=clicked[1]))

def browsing_hotspots() -> None:
    """The browsing hotspots tab: page x hour or event type, and a clicked cell's members."""
    across = st.segmented_control(_("Across"), ["hour", "event_type"], default="hour", key="hm_browsing_across",
                                  format_func={"hour": _("Hour of day"), "event_type": _("Event type")}.get,
                                  required=True)
    hot = cached_heatmap(ctx.engine, filters, "browsing", across)
    if hot.empty:
        st.info(_("No clickstream events in this date range."))
    else:
        columns = hot["column"].map("{0:02d}:00–{0:02d}:59".format) if across == "hour" else hot["column"].map(label)
        hover_text = _("{page} · {column}<br>{events} events")
        hot = hot.assign(row_key=hot["page"], col_key=hot["column"],
                         hover=[hover_text.format(page=p, column=c, events=f"{n:,}")
                                for p, c, n in zip(hot["page"], columns, hot["events"], strict=True)])
        clicked = draw(hot, "column", "page", "events",
                       {"x": options_shown[across], "y": _("Page"), "color": _("Events")}, "",
                       120 + 32 * hot["page"].nunique(), "hm_browsing_chart")
        st.caption(_("Clickstream events per page, by hour of day or by event type. {hint} Anonymous visitors' events "
                     "count in the figures but have no member to list.").format(hint=click_hint))
        if clicked:
            found = cell(hot, "row_key", clicked[0], "col_key", clicked[1])
            show_members("browsing", clicked[0], clicked[1], {"across": across},
                         None if found is None else found["hover"].replace("<br>", COLON),
                         _("members with an event on this page in this hour (anonymous visitors are in the figure but "
                           "cannot be listed)") if across == "hour" else
                         _("members with this event on this page (anonymous visitors are in the figure but cannot be "
                           "listed)"))


for tab, show_tab in ((retention_tab, cohort_retention), (rhythm_tab, activity_rhythm_tab),
                      (affinity_tab, category_affinity_tab), (browsing_tab, browsing_hotspots)):
    if tab.open:
        with tab:
            show_tab()
