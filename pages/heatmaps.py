"""Heatmaps: retention by cohort, the weekly rhythm, category affinity and browsing hotspots at a glance."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from analytics.heatmaps import AFFINITY_GROUPS, RHYTHM_MEASURES
from analytics.programme import CURRENCY
from ui.cached import cached_heatmap, cached_retention
from ui.context import page_inputs
from ui.format import label

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
SCALE = "RdPu"
ctx = page_inputs()
filters = ctx.filters

st.title("Heatmaps")
st.caption(f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y}. Hover a cell for its exact figures.")
retention_tab, rhythm_tab, affinity_tab, browsing_tab = st.tabs(
    ["Cohort retention", "Activity rhythm", "Category affinity", "Browsing hotspots"])


def draw(frame, x: str, y: str, value: str, labels: dict, text_format: str, height: int, key: str,
         hover: str = "") -> None:
    grid = frame.pivot(index=y, columns=x, values=value)
    figure = px.imshow(grid, color_continuous_scale=SCALE, aspect="auto", labels=labels, text_auto=text_format)
    if hover:
        figure.update_traces(hovertemplate=hover)
    figure.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    st.plotly_chart(figure, key=key)


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
    table = cached_retention(ctx.engine, ctx.url, filters, cohort, period, activity, 12)
    if table.empty:
        st.info("No cohort starts in this date range for these filters.")
    else:
        fmt = "%Y-%m" if period == "month" else "%Y-%m-%d"
        shown = table.assign(cohort=table["cohort"].dt.strftime(fmt) + " (" + table["size"].map("{:,}".format) + ")")
        draw(shown, "period", "cohort", show, {"x": f"{label(period)}s after the cohort's", "y": "Cohort (size)",
                                               "color": "Share active" if show == "share" else "Members active"},
             ".0%" if show == "share" else ",d", 80 + 28 * shown["cohort"].nunique(), "hm_retention_chart",
             "Cohort %{y}<br>Period %{x}<br>" + ("%{z:.1%} active" if show == "share" else "%{z:,} active")
             + "<extra></extra>")
        st.caption("Members whose first completed purchase (or registration) falls in each period of the range; "
                   "a cell is the share (or number) of them active N periods later. Period 0 of first-purchase "
                   "cohorts is 100% by definition.")
        st.download_button("Download the cohort table (CSV)", table.to_csv(index=False).encode(),
                           file_name=f"memberlens_retention_{cohort}_{period}.csv", mime="text/csv",
                           icon=":material/download:", key="hm_retention_download")

with rhythm_tab:
    measure = st.segmented_control("Measure", RHYTHM_MEASURES, default="orders", key="hm_measure", required=True,
                                   format_func={"orders": "Orders", "net_sales": f"Net sales ({CURRENCY})",
                                                "events": "Clickstream events"}.get)
    rhythm = cached_heatmap(ctx.engine, ctx.url, filters, "rhythm", measure)
    rhythm = rhythm.assign(weekday=pd.Categorical(rhythm["weekday"].map(dict(enumerate(WEEKDAYS))),
                                                  categories=WEEKDAYS, ordered=True))  # Monday first
    draw(rhythm, "hour", "weekday", "value", {"x": "Hour of day", "y": "", "color": label(measure)}, "", 330,
         "hm_rhythm_chart", "%{y} %{x}:00<br>%{z:,.0f}<extra></extra>")
    st.caption("Completed orders (or net sales, or every clickstream event) by weekday and hour, in the shop's "
               "local time.")

with affinity_tab:
    by = st.segmented_control("Group by", AFFINITY_GROUPS, default="tier", format_func=label, key="hm_affinity_by",
                              required=True)
    affinity = cached_heatmap(ctx.engine, ctx.url, filters, "affinity", by)
    if affinity.empty:
        st.info("No completed orders by members in this date range.")
    else:
        draw(affinity.assign(group=affinity["group"].map(label)), "category", "group", "index",
             {"x": "", "y": "", "color": "Index"}, ".0f", 120 + 40 * affinity["group"].nunique(), "hm_affinity_chart",
             "%{y} · %{x}<br>index %{z:.0f} (100 = average)<extra></extra>")
        st.caption("Each group's share of its net sales in a category, against that category's share of all net "
                   "sales: 100 is average, 150 half as much again, 50 half as much.")

with browsing_tab:
    across = st.segmented_control("Across", ["hour", "event_type"], default="hour", key="hm_browsing_across",
                                  format_func={"hour": "Hour of day", "event_type": "Event type"}.get, required=True)
    hot = cached_heatmap(ctx.engine, ctx.url, filters, "browsing", across)
    if hot.empty:
        st.info("No clickstream events in this date range.")
    else:
        draw(hot, "column", "page", "events", {"x": label(across), "y": "Page", "color": "Events"}, "",
             120 + 32 * hot["page"].nunique(), "hm_browsing_chart", "%{y} · %{x}<br>%{z:,} events<extra></extra>")
        st.caption("Clickstream events per page, by hour of day or by event type.")
