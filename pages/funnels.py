"""Funnels: where members (or sessions) drop off on the way to purchase, and who they are."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.errors import InputError
from analytics.funnels import (
    DIMENSIONS,
    METRIC_HELP,
    MODES,
    STEP_FILTERS,
    UNITS,
    FunnelSpec,
    FunnelStep,
    dropoff_audience,
    format_seconds,
)
from analytics.kpis import FUNNEL_VS_KPI_CONVERSION
from analytics.storage.contract import EVENT_TYPES
from ui.app_state import default_author
from ui.cached import cached_funnel_report, cached_funnel_trend, cached_step_filter_options
from ui.context import page_inputs
from ui.format import ACCENT, label
from ui.member_sets import member_set

DEFAULT_STEPS = ("product_view", "add_to_cart", "checkout", "purchase")
WINDOW_UNITS = {"minutes": 60, "hours": 3_600, "days": 86_400}
MODE_HELP = {
    "ordered": "Each step after the previous one; other events may come between.",
    "strict": "Each step is the very next event after the previous one, nothing between.",
    "any": "Step 1 first, then the other steps in any order.",
}
ctx = page_inputs("funnels")
filters = ctx.filters

st.title("Funnels")
st.caption(f"Units whose step 1 falls between {filters.start:%d %b %Y} and {filters.end:%d %b %Y}"
           + (f", members of tiers {', '.join(map(label, filters.tiers))}" if filters.tiers else "")
           + ". Each unit counts once, with its best attempt: the one that gets furthest."
           + (" The channel filter applies to orders; clickstream events have no channel." if filters.channels
              else ""))

options = cached_step_filter_options(ctx.engine)
with st.container(border=True):
    st.markdown("**Steps** — an event type each, optionally narrowed; add or remove rows (2 to 8).")
    starting_steps = pd.DataFrame({"event_type": list(DEFAULT_STEPS),
                                   **{name: [None] * len(DEFAULT_STEPS) for name in STEP_FILTERS}})
    editor = st.data_editor(
        starting_steps,
        num_rows="dynamic", hide_index=True, key="funnel_steps", width="stretch", column_config={
            "event_type": st.column_config.SelectboxColumn("Event", options=list(EVENT_TYPES), required=True),
            **{name: st.column_config.SelectboxColumn(label(name), options=list(options[name]),
                                                      help=f"Only events with this {name} (blank: any).")
               for name in STEP_FILTERS}})
    controls = st.columns([0.9, 0.9, 2, 1.5, 1.5])
    window_value = controls[0].number_input("Window", 1, 10_000, 7, key="funnel_window",
                                            help="Time allowed from step 1 to the last step.")
    window_unit = controls[1].selectbox("Window unit", list(WINDOW_UNITS), index=2, key="funnel_window_unit",
                                        label_visibility="hidden")
    mode = controls[2].segmented_control("Order", MODES, default="ordered", key="funnel_mode", required=True,
                                         format_func={"ordered": "Ordered", "strict": "Strict",
                                                      "any": "Any order"}.get,
                                         help=" ".join(f"{label(m)}: {h}" for m, h in MODE_HELP.items()))
    unit = controls[3].segmented_control("Count", UNITS, default="member", key="funnel_unit", required=True,
                                         format_func={"member": "Members", "session": "Sessions"}.get,
                                         help="Members: all of a member's events. Sessions: each session is a "
                                              "funnel of its own (anonymous visitors included).")
    breakdown = controls[4].selectbox("Break down by", [None, *DIMENSIONS], key="funnel_breakdown",
                                      format_func=lambda d: "Nothing" if d is None else label(d),
                                      help="Split every figure by the unit's value at its entry (first touch): "
                                           "device, source and page of the step-1 event; tier, region and other "
                                           "member attributes as they are now.")

rows = editor.dropna(subset=["event_type"])
try:
    steps = tuple(FunnelStep(r["event_type"], **{n: r[n] for n in STEP_FILTERS if isinstance(r[n], str)})
                  for r in rows.to_dict("records"))
    spec = FunnelSpec(steps, int(window_value) * WINDOW_UNITS[window_unit], mode, unit)
except InputError as problem:
    st.error(f"{problem} Edit the steps above.", icon=":material/edit_note:")
    st.stop()

with st.spinner("Following every unit through the funnel…"):
    report = cached_funnel_report(ctx.engine, filters, spec, breakdown)
total = report.total
entered, converted = int(total["units"].iloc[0]), int(total["units"].iloc[-1])
noun = "members" if unit == "member" else "sessions"
if entered == 0:
    st.info(f"No {noun[:-1]} did step 1 ({spec.steps[0].label}) in this date range. Widen the range or change "
            "step 1.", icon=":material/search_off:")
    st.stop()

cards = st.columns(4)
cards[0].metric(f"Entered ({noun})", f"{entered:,}", border=True, help="Units with a step-1 event in the range.")
cards[1].metric("Converted", f"{converted:,}", border=True, help="Units whose best attempt reached the last step.")
cards[2].metric("Overall conversion", f"{converted / entered:.1%}", border=True,
                help=f"{METRIC_HELP['overall_conversion']}\n\n{FUNNEL_VS_KPI_CONVERSION}")
cards[3].metric("Median time to convert", format_seconds(report.median_seconds_to_last), border=True,
                help=METRIC_HELP["median_seconds_to_last"])

chart_col, table_col = st.columns([2, 3])
with chart_col:
    figure = go.Figure(go.Funnel(y=total["label"], x=total["units"], marker={"color": ACCENT},
                                 texttemplate="%{value:,}<br>%{percentInitial:.1%} of step 1",
                                 hovertemplate="%{y}<br>%{x:,} " + noun + "<br>%{percentInitial:.1%} of step 1"
                                               "<br>%{percentPrevious:.1%} of the previous step<extra></extra>"))
    figure.update_layout(height=90 + 60 * len(total), margin={"l": 10, "r": 10, "t": 10, "b": 10})
    st.plotly_chart(figure, key="funnel_chart")
with table_col:
    shown = total.assign(median=total["median_seconds_to_convert"].map(format_seconds),
                         p90=total["p90_seconds_to_convert"].map(format_seconds))
    st.dataframe(shown, hide_index=True, column_order=["label", "units", "overall_conversion", "step_conversion",
                                                       "dropped", "median", "p90"], column_config={
        "label": st.column_config.TextColumn("Step"),
        "units": st.column_config.NumberColumn(label(noun), format="localized", help=METRIC_HELP["units"]),
        "overall_conversion": st.column_config.NumberColumn("From step 1", format="percent",
                                                            help=METRIC_HELP["overall_conversion"]),
        "step_conversion": st.column_config.NumberColumn("From previous", format="percent",
                                                         help=METRIC_HELP["step_conversion"]),
        "dropped": st.column_config.NumberColumn("Dropped", format="localized", help=METRIC_HELP["dropped"]),
        "median": st.column_config.TextColumn("Median", help=METRIC_HELP["median_seconds_to_convert"]),
        "p90": st.column_config.TextColumn("P90", help=METRIC_HELP["p90_seconds_to_convert"]),
    })
    st.caption(f"Window {window_value} {window_unit} from step 1 · {label(mode)} order · {MODE_HELP[mode]}")

breakdown_tab, time_tab, trend_tab, act_tab = st.tabs(
    ["Breakdown", "Time to convert", "Trend", "Drop-off members"])

with breakdown_tab:
    if breakdown is None:
        st.info("Choose a dimension in **Break down by** to compare the funnel across its values.",
                icon=":material/call_split:")
    else:
        by = report.by_dimension.assign(value=lambda f: f["dim"].map(lambda v: "(unknown)" if pd.isna(v) else
                                                                      str(v)))
        bars = px.bar(by, x="label", y="overall_conversion", color="value", barmode="group",
                      custom_data=["units"], labels={"label": "", "overall_conversion": "From step 1",
                                                     "value": label(breakdown)})
        bars.update_traces(hovertemplate="%{x}<br>%{y:.1%} of step 1<br>%{customdata[0]:,} " + noun
                           + "<extra></extra>")
        bars.update_layout(yaxis_tickformat=".0%", height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.plotly_chart(bars, key="funnel_breakdown_chart")
        wide = by.pivot(index="value", columns="label", values="units")
        first_last = by[by["step"].isin([1, len(spec.steps)])].pivot(index="value", columns="step",
                                                                        values="overall_conversion")
        wide["Overall conversion"] = first_last[len(spec.steps)]
        st.dataframe(wide.reset_index().rename(columns={"value": label(breakdown)}), hide_index=True,
                     column_config={"Overall conversion": st.column_config.NumberColumn(format="percent"),
                                    **{step: st.column_config.NumberColumn(format="localized")
                                       for step in spec.step_labels}})
        st.caption(f"{label(noun)} per step for each {label(breakdown).lower()}, attributed by first touch (the "
                   "step-1 event of the best attempt).")

with time_tab:
    steps_after = list(range(2, len(spec.steps) + 1))
    chosen = st.segmented_control("Into step", steps_after, default=steps_after[0], key="funnel_time_step",
                                  format_func=lambda k: spec.step_labels[k - 1], required=True)
    row = total[total["step"] == chosen].iloc[0]
    left, right = st.columns(2)
    left.metric("Median", format_seconds(row["median_seconds_to_convert"]), border=True,
                help=METRIC_HELP["median_seconds_to_convert"])
    right.metric("90th percentile", format_seconds(row["p90_seconds_to_convert"]), border=True,
                 help=METRIC_HELP["p90_seconds_to_convert"])
    bins = report.histogram[report.histogram["step"] == chosen]
    histogram = px.bar(bins, x="bin", y="units", labels={"bin": f"Time from step {chosen - 1} to step {chosen}",
                                                         "units": label(noun)}, color_discrete_sequence=[ACCENT])
    histogram.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    st.plotly_chart(histogram, key="funnel_time_chart")

with trend_tab:
    grain = st.segmented_control("Cohorts by", ["day", "week"], default="day", key="funnel_grain", required=True,
                                 format_func=label)
    trend = cached_funnel_trend(ctx.engine, filters, spec, grain)
    line = go.Figure()
    line.add_bar(x=trend["period"], y=trend["entered"], name=f"Entered ({noun})", marker_color="#E0B4C8",
                 yaxis="y2", hovertemplate="%{x|%d %b %Y}<br>%{y:,} entered<extra></extra>")
    for complete, name, style in ((True, "Overall conversion", "solid"), (False, "Window still open", "dot")):
        part = trend[trend["complete"] == complete]
        if complete is False and not part.empty:  # join the dotted tail to the solid line
            part = pd.concat([trend[trend["complete"]].tail(1), part])
        line.add_scatter(x=part["period"], y=part["conversion"], name=name, mode="lines+markers",
                         line={"color": ACCENT, "dash": style},
                         hovertemplate="%{x|%d %b %Y}<br>%{y:.1%} converted<extra></extra>")
    line.update_layout(height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis={"tickformat": ".0%",
                       "title": "Overall conversion", "rangemode": "tozero"},
                       yaxis2={"overlaying": "y", "side": "right", "title": "Entered", "showgrid": False},
                       legend={"orientation": "h", "y": -0.15})
    st.plotly_chart(line, key="funnel_trend_chart")
    st.caption(f"Each {grain}'s cohort is the {noun} whose best attempt started that {grain}; conversion is the "
               "share of them that reached the last step within the window. Dotted: cohorts whose window has "
               "not closed in the data yet, so their conversion may still rise.")

with act_tab:
    after = st.selectbox("Reached", list(range(1, len(spec.steps))), key="funnel_dropoff_step",
                         format_func=lambda k: f"{spec.step_labels[k - 1]} but not {spec.step_labels[k]}")
    dropped = int(total["dropped"].iloc[after])
    member_set(ctx.engine, dropoff_audience(spec, filters, after), key="funnel_dropoff",
               who=f"behind the {dropped:,} {noun} that stopped there"
                   + ("" if unit == "member" else " (anonymous sessions have no member)") + ".",
               actor=default_author(), page="funnels")
