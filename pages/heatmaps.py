"""Heatmaps: retention by cohort, the weekly rhythm, category affinity and browsing hotspots at a glance.

Clicking a cell shows its figures and the members behind it (masked), with a CSV of all of them.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.filters import DEFAULT_COHORTS, Filters, cohort_range
from analytics.heatmaps import AFFINITY_GROUPS, RHYTHM_MEASURES, cell_audience
from analytics.privacy import safe_csv
from analytics.programme import CURRENCY
from ui.app_state import default_author
from ui.cached import cached_heatmap, cached_retention
from ui.context import page_inputs
from ui.format import ACCENT, format_value, label
from ui.member_sets import member_set

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SCALE = "RdPu"
CLICK_HINT = "Click a cell to see the members behind it (double-click the chart to clear)."
ctx = page_inputs("heatmaps")
filters = ctx.filters

st.title("Heatmaps")
st.caption(f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y}. Hover a cell for its exact figures; click it for "
           "the members behind it.")
retention_tab, rhythm_tab, affinity_tab, browsing_tab = st.tabs(
    ["Cohort retention", "Activity rhythm", "Category affinity", "Browsing hotspots"])

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
    empty = cells[y].astype(str) + " · " + cells[x].astype(str) + "<br>no data"
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
    event = st.plotly_chart(figure, key=key, on_select="rerun", selection_mode="points")
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
            st.markdown("**Nothing in this cell** for these filters.")
            return
        st.markdown(f"**{figures}**")
        member_set(ctx.engine, cell_audience(scope, heatmap, row, column, options), key=f"hm_{heatmap}_members",
                   who=f"behind this cell: {who}.", actor=default_author(), page="heatmaps",
                   headline="**{count}** member{s} {who}", csv_label="Download the {count} member{s} (CSV)")


def cell(frame: pd.DataFrame, row_column: str, row: Key, col_column: str, column: Key) -> pd.Series | None:
    """The frame's row for one cell, or None when the heatmap has nothing there."""
    found = frame[(frame[row_column] == row) & (frame[col_column] == column)]
    return None if found.empty else found.iloc[0]


with retention_tab:
    controls = st.columns(4)
    cohort = controls[0].segmented_control("Cohort by", ["first_purchase", "registration"], default="first_purchase",
                                           format_func=label, key="hm_cohort", required=True)
    period = controls[1].segmented_control("Period", ["month", "week"], default="month", format_func=label,
                                           key="hm_period", required=True)
    activity = controls[2].segmented_control("Active means", ["purchase", "any"], default="purchase",
                                             format_func={"purchase": "Bought", "any": "Bought or browsed"}.get,
                                             key="hm_activity", required=True)
    show = controls[3].segmented_control("Show", ["share", "active"], default="share",
                                         format_func={"share": "Share", "active": "Count"}.get, key="hm_show",
                                         required=True)
    window = st.radio(
        "Cohorts", ["recent", "sidebar"], key="hm_cohort_range", horizontal=True,
        format_func={"recent": f"Last {DEFAULT_COHORTS} {period}s of data",
                     "sidebar": f"Sidebar range ({filters.start:%d %b %Y} – {filters.end:%d %b %Y})"}.get,
        help=f"By default the {DEFAULT_COHORTS} most recent {period}ly cohorts, up to the last day with data, "
             "whatever the sidebar's dates (its default 90 days would hold three or four monthly cohorts). The "
             "sidebar's channel and tier filters apply either way.")
    retention_filters = (Filters(*cohort_range(period, ctx.span.first_day, ctx.span.last_day), filters.channels,
                                 filters.tiers) if window == "recent" else filters)
    if window == "recent":
        st.caption(f"Cohorts of {retention_filters.start:%d %b %Y} – {retention_filters.end:%d %b %Y}: the last "
                   f"{DEFAULT_COHORTS} {period}s of data, not the sidebar's dates.")
    table = cached_retention(ctx.engine, retention_filters, cohort, period, activity, 12)
    if table.empty:
        st.info("No cohort starts in this date range for these filters.")
    else:
        fmt = "%Y-%m" if period == "month" else "%Y-%m-%d"
        starts = table["cohort"].dt.strftime(fmt)
        shown = table.assign(
            cohort=starts + " (" + table["size"].map("{:,}".format) + ")",
            row_key=table["cohort"].dt.strftime("%Y-%m-%d"), col_key=table["period"],
            hover="Cohort " + starts + " (" + table["size"].map("{:,}".format) + " members)<br>" + label(period)
            + " " + table["period"].astype(str) + ": " + table["active"].map("{:,}".format) + " active, "
            + table["share"].map("{:.1%}".format))
        clicked = draw(shown, "period", "cohort", show,
                       {"x": f"{label(period)}s after the cohort's", "y": "Cohort (size)",
                        "color": "Share active" if show == "share" else "Members active"},
                       ".0%" if show == "share" else ",d", 80 + 28 * shown["cohort"].nunique(), "hm_retention_chart")
        st.caption("Members whose first completed purchase (or registration) falls in each period of the range; "
                   "a cell is the share (or number) of them active N periods later. Period 0 of first-purchase "
                   f"cohorts is 100% by definition. {CLICK_HINT}")
        st.download_button("Download the cohort table (CSV)", safe_csv(table),
                           file_name=f"memberlens_retention_{cohort}_{period}.csv", mime="text/csv",
                           icon=":material/download:", key="hm_retention_download")
        if clicked:
            found = cell(shown, "row_key", clicked[0], "col_key", clicked[1])
            figures = None if found is None else (
                f"Cohort {'' if period == 'month' else 'week of '}{found['row_key'][:7 if period == 'month' else 10]} "
                f"({found['size']:,} members), {period} {found['period']}: {found['active']:,} active, "
                f"{found['share']:.1%}")
            show_members("retention", clicked[0], clicked[1],
                         {"cohort": cohort, "period": period, "activity": activity}, figures,
                         f"cohort members who {'bought' if activity == 'purchase' else 'bought or browsed'} "
                         f"in that {period}", retention_filters)

with rhythm_tab:
    measure = st.segmented_control("Measure", RHYTHM_MEASURES, default="orders", key="hm_measure", required=True,
                                   format_func={"orders": "Orders", "net_sales": f"Net sales ({CURRENCY})",
                                                "events": "Clickstream events"}.get)
    rhythm = cached_heatmap(ctx.engine, filters, "rhythm", measure)
    amounts = (rhythm["value"].map(lambda v: format_value(v, "currency")) if measure == "net_sales"
               else rhythm["value"].map("{:,.0f}".format))
    noun = {"orders": " completed orders", "net_sales": " net sales", "events": " clickstream events"}[measure]
    hours = rhythm["hour"].map("{0:02d}:00–{0:02d}:59".format)
    rhythm = rhythm.assign(
        row_key=rhythm["weekday"], col_key=rhythm["hour"],
        hover=rhythm["weekday"].map(dict(enumerate(WEEKDAY_NAMES))) + " " + hours + "<br>" + amounts + noun,
        weekday=pd.Categorical(rhythm["weekday"].map(dict(enumerate(WEEKDAYS))), categories=WEEKDAYS,
                               ordered=True))  # Monday first
    clicked = draw(rhythm, "hour", "weekday", "value", {"x": "Hour of day", "y": "", "color": label(measure)}, "",
                   330, "hm_rhythm_chart")
    st.caption("Completed orders (or net sales, or every clickstream event) by weekday and hour, in the shop's "
               f"local time. {CLICK_HINT} Guest orders and anonymous visitors count in the figures but have no "
               "member to list.")
    if clicked:
        found = cell(rhythm, "row_key", clicked[0], "col_key", clicked[1])
        show_members("rhythm", clicked[0], clicked[1], {"measure": measure},
                     None if found is None else found["hover"].replace("<br>", ": "),
                     "members with " + ("a clickstream event" if measure == "events" else "a completed order")
                     + " then (" + ("anonymous visitors" if measure == "events" else "guest orders")
                     + " are in the figure but cannot be listed)")

with affinity_tab:
    by = st.segmented_control("Group by", AFFINITY_GROUPS, default="tier", format_func=label, key="hm_affinity_by",
                              required=True)
    affinity = cached_heatmap(ctx.engine, filters, "affinity", by)
    if affinity.empty:
        st.info("No completed orders by members in this date range.")
    else:
        groups = affinity["group"].map(label) if by == "tier" else affinity["group"]  # regions are names already
        affinity = affinity.assign(
            row_key=affinity["group"], col_key=affinity["category"], group=groups,
            hover=groups + " · " + affinity["category"] + "<br>index " + affinity["index"].map("{:.0f}".format)
            + " (100 = average)<br>" + affinity["share"].map("{:.1%}".format) + " of the group's spend, "
            + affinity["spend"].map(lambda v: format_value(v, "currency")))
        clicked = draw(affinity, "category", "group", "index", {"x": "", "y": "", "color": "Index"}, ".0f",
                       120 + 40 * affinity["group"].nunique(), "hm_affinity_chart")
        st.caption("Each group's share of its spend (order line amounts) in a category, against that category's "
                   f"share of all spend: 100 is average, 150 half as much again, 50 half as much. {CLICK_HINT}")
        if clicked:
            found = cell(affinity, "row_key", clicked[0], "col_key", clicked[1])
            show_members("affinity", clicked[0], clicked[1], {"by": by},
                         None if found is None else found["hover"].replace("<br>", ": ", 1).replace("<br>", "; "),
                         f"members of this {by} who bought from {clicked[1]} in completed orders in the range")

with browsing_tab:
    across = st.segmented_control("Across", ["hour", "event_type"], default="hour", key="hm_browsing_across",
                                  format_func={"hour": "Hour of day", "event_type": "Event type"}.get, required=True)
    hot = cached_heatmap(ctx.engine, filters, "browsing", across)
    if hot.empty:
        st.info("No clickstream events in this date range.")
    else:
        columns = hot["column"].map("{0:02d}:00–{0:02d}:59".format) if across == "hour" else hot["column"].map(label)
        hot = hot.assign(row_key=hot["page"], col_key=hot["column"],
                         hover=hot["page"] + " · " + columns + "<br>" + hot["events"].map("{:,}".format) + " events")
        clicked = draw(hot, "column", "page", "events", {"x": label(across), "y": "Page", "color": "Events"}, "",
                       120 + 32 * hot["page"].nunique(), "hm_browsing_chart")
        st.caption(f"Clickstream events per page, by hour of day or by event type. {CLICK_HINT} Anonymous visitors' "
                   "events count in the figures but have no member to list.")
        if clicked:
            found = cell(hot, "row_key", clicked[0], "col_key", clicked[1])
            show_members("browsing", clicked[0], clicked[1], {"across": across},
                         None if found is None else found["hover"].replace("<br>", ": "),
                         ("members with an event on this page in this hour" if across == "hour"
                          else "members with this event on this page")
                         + " (anonymous visitors are in the figure but cannot be listed)")
