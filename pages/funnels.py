"""Funnels: where members (or sessions) drop off on the way to purchase, and who they are."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.errors import InputError
from analytics.funnel_store import refresh_in_background
from analytics.funnels import (
    DIMENSION_LABELS,
    DIMENSIONS,
    METRIC_HELP,
    MODE_LABELS,
    MODES,
    STEP_FILTERS,
    UNIT_LABELS,
    UNITS,
    FunnelSpec,
    FunnelStep,
    dropoff_audience,
    format_seconds,
)
from analytics.i18n import DEFAULT_LANGUAGE, N_, _, format_day, language
from analytics.kpis import FUNNEL_VS_KPI_CONVERSION
from analytics.storage.contract import EVENT_TYPES
from ui.app_state import default_author
from ui.cached import cached_funnel_report, cached_funnel_trend, cached_step_filter_options
from ui.context import page_inputs
from ui.format import ACCENT, label
from ui.look import show_chart
from ui.member_sets import member_set

DEFAULT_STEPS = ("product_view", "add_to_cart", "checkout", "purchase")
WINDOW_UNITS = {"minutes": 60, "hours": 3_600, "days": 86_400}
WINDOW_UNIT_LABELS = {"minutes": N_("Minutes"), "hours": N_("Hours"), "days": N_("Days")}
#: The window as the caption writes it (``7 days``).
WINDOW_LENGTHS = {"minutes": N_("{n} minutes"), "hours": N_("{n} hours"), "days": N_("{n} days")}
MODE_HELP = {
    "ordered": N_("Each step after the previous one; other events may come between."),
    "strict": N_("Each step is the very next event after the previous one, nothing between."),
    "any": N_("Step 1 first, then the other steps in any order."),
}
#: The units counted, in a sentence ("the members whose best attempt ...").
NOUNS = {"member": N_("the members"), "session": N_("the sessions")}
GRAINS = {"day": N_("Day"), "week": N_("Week")}
#: Breakdown dimensions whose values are warehouse codes (tiers, genders, channels, devices, sources) or yes/no.
CODED_DIMENSIONS = {"tier", "gender", "acquisition_channel", "device", "source"}
YES_NO = {True: N_("Yes"), False: N_("No")}
ctx = page_inputs("funnels")
filters = ctx.filters


def dimension_label(name: str) -> str:
    return _(DIMENSION_LABELS[name]) if name in DIMENSION_LABELS else label(name)


def dimension_value(name: str, value: object) -> str:
    """A breakdown value as shown: as stored in English (the command line's values); in other languages, codes by
    their labels and yes/no in words. Names (regions, cities, pages) are data, shown as stored."""
    if pd.isna(value):
        return _("(unknown)")
    if language() == DEFAULT_LANGUAGE:
        return str(value)
    if isinstance(value, bool) or name.startswith("consent_"):
        return _(YES_NO[bool(value)])
    return label(str(value)) if name in CODED_DIMENSIONS else str(value)


st.title(_("Funnels"))
st.caption(_("Units whose step 1 falls between {start} and {end}").format(start=format_day(filters.start),
                                                                         end=format_day(filters.end))
           + (_(", members of tiers {tiers}").format(tiers=", ".join(map(label, filters.tiers)))
              if filters.tiers else "")
           + _(". Each unit counts once, with its best attempt: the one that gets furthest.")
           + (_(" The channel filter applies to orders; clickstream events have no channel.") if filters.channels
              else ""))

refresh_in_background(ctx.engine)  # the funnel store, when stale or missing (an embedded warehouse only)
options = cached_step_filter_options(ctx.engine)
with st.container(border=True):
    st.markdown(_("**Steps** — an event type each, optionally narrowed; add or remove rows (2 to 8)."))
    starting_steps = pd.DataFrame({"event_type": list(DEFAULT_STEPS),
                                   **{name: [None] * len(DEFAULT_STEPS) for name in STEP_FILTERS}})
    editor = st.data_editor(
        starting_steps,
        num_rows="dynamic", hide_index=True, key="funnel_steps", width="stretch", placeholder="", column_config={
            "event_type": st.column_config.SelectboxColumn(_("Event"), options=list(EVENT_TYPES), required=True),
            **{name: st.column_config.SelectboxColumn(
                dimension_label(name), options=list(options[name]),
                help=_("Only events with this {name} (blank: any).").format(name=dimension_label(name).lower()))
               for name in STEP_FILTERS}})
    controls = st.columns([0.9, 0.9, 2, 1.5, 1.5])
    window_value = controls[0].number_input(_("Window"), 1, 10_000, 7, key="funnel_window",
                                            help=_("Time allowed from step 1 to the last step."))
    window_unit = controls[1].selectbox(_("Window unit"), list(WINDOW_UNITS), index=2, key="funnel_window_unit",
                                        format_func=lambda u: _(WINDOW_UNIT_LABELS[u]), label_visibility="hidden")
    mode = controls[2].segmented_control(_("Order"), MODES, default="ordered", key="funnel_mode", required=True,
                                         format_func=lambda m: _(MODE_LABELS[m]),
                                         help=" ".join(_("{mode}: {help}").format(mode=_(MODE_LABELS[m]), help=_(h))
                                                       for m, h in MODE_HELP.items()))
    unit = controls[3].segmented_control(_("Count by"), UNITS, default="member", key="funnel_unit", required=True,
                                         format_func=lambda u: _(UNIT_LABELS[u]),
                                         help=_("Members: all of a member's events. Sessions: each session is a "
                                                "funnel of its own (anonymous visitors included)."))
    breakdown = controls[4].selectbox(_("Break down by"), [None, *DIMENSIONS], key="funnel_breakdown",
                                      format_func=lambda d: _("Nothing") if d is None else dimension_label(d),
                                      help=_("Split every figure by the unit's value at its entry (first touch): "
                                             "device, source and page of the step-1 event; tier, region and other "
                                             "member attributes as they are now."))

rows = editor.dropna(subset=["event_type"])
try:
    steps = tuple(FunnelStep(r["event_type"], **{n: r[n] for n in STEP_FILTERS if isinstance(r[n], str)})
                  for r in rows.to_dict("records"))
    spec = FunnelSpec(steps, int(window_value) * WINDOW_UNITS[window_unit], mode, unit)
except InputError as problem:
    st.error(_("{problem} Edit the steps above.").format(problem=problem), icon=":material/edit_note:")
    st.stop()

with st.spinner(_("Following every unit through the funnel…")):
    report = cached_funnel_report(ctx.engine, filters, spec, breakdown)
total = report.total
entered, converted = int(total["units"].iloc[0]), int(total["units"].iloc[-1])
noun = _(NOUNS[unit])
header = _(UNIT_LABELS[unit])
if entered == 0:
    nobody = (_("No member did step 1 ({step}) in this date range. Widen the range or change step 1.")
              if unit == "member" else
              _("No session did step 1 ({step}) in this date range. Widen the range or change step 1."))
    st.info(nobody.format(step=spec.steps[0].label), icon=":material/search_off:")
    st.stop()

cards = st.columns(4)
cards[0].metric(_("Entered (members)") if unit == "member" else _("Entered (sessions)"), f"{entered:,}", border=True,
                help=_("Units with a step-1 event in the range."))
cards[1].metric(_("Converted"), f"{converted:,}", border=True,
                help=_("Units whose best attempt reached the last step."))
cards[2].metric(_("Overall conversion"), f"{converted / entered:.1%}", border=True,
                help=f"{_(METRIC_HELP['overall_conversion'])}\n\n{_(FUNNEL_VS_KPI_CONVERSION)}")
cards[3].metric(_("Median time to convert"), format_seconds(report.median_seconds_to_last), border=True,
                help=_(METRIC_HELP["median_seconds_to_last"]))

of_first = _("%{percentInitial:.1%} of step 1")
chart_col, table_col = st.columns([2, 3])
with chart_col:
    figure = go.Figure(go.Funnel(y=total["label"], x=total["units"], marker={"color": ACCENT},
                                 texttemplate="%{value:,}<br>" + of_first,
                                 hovertemplate="%{y}<br>" + (_("%{x:,} members") if unit == "member" else
                                                             _("%{x:,} sessions")) + "<br>" + of_first + "<br>"
                                               + _("%{percentPrevious:.1%} of the previous step")
                                               + "<extra></extra>"))
    figure.update_layout(height=90 + 60 * len(total), margin={"l": 10, "r": 10, "t": 10, "b": 10})
    show_chart(figure, key="funnel_chart")
with table_col:
    shown = total.assign(median=total["median_seconds_to_convert"].map(format_seconds),
                         p90=total["p90_seconds_to_convert"].map(format_seconds))
    st.dataframe(shown, hide_index=True, placeholder="–", column_order=[  # step 1 has no previous step: a dash
        "label", "units", "overall_conversion", "step_conversion", "dropped", "median", "p90"], column_config={
        "label": st.column_config.TextColumn(_("Step")),
        "units": st.column_config.NumberColumn(header, format="localized", help=_(METRIC_HELP["units"])),
        "overall_conversion": st.column_config.NumberColumn(_("From step 1"), format="percent",
                                                            help=_(METRIC_HELP["overall_conversion"])),
        "step_conversion": st.column_config.NumberColumn(_("From previous"), format="percent",
                                                         help=_(METRIC_HELP["step_conversion"])),
        "dropped": st.column_config.NumberColumn(_("Dropped"), format="localized", help=_(METRIC_HELP["dropped"])),
        "median": st.column_config.TextColumn(_("Median"), help=_(METRIC_HELP["median_seconds_to_convert"])),
        "p90": st.column_config.TextColumn(_("P90"), help=_(METRIC_HELP["p90_seconds_to_convert"])),
    })
    st.caption(_("Window {window} from step 1 · {mode} · {help}").format(
        window=_(WINDOW_LENGTHS[window_unit]).format(n=window_value), mode=_(MODE_LABELS[mode]),
        help=_(MODE_HELP[mode])))

breakdown_tab, time_tab, trend_tab, act_tab = st.tabs(
    [_("Breakdown"), _("Time to convert"), _("Trend"), _("Drop-off members")], key="funnels_tab",
    on_change="rerun")  # only the open tab is computed: the trend and the drop-off are funnels of their own

with breakdown_tab:
    if breakdown is None:
        st.info(_("Choose a dimension in **Break down by** to compare the funnel across its values."),
                icon=":material/call_split:")
    else:
        dim_header = dimension_label(breakdown)
        by = report.by_dimension.assign(value=lambda f: f["dim"].map(lambda v: dimension_value(breakdown, v)))
        bars = px.bar(by, x="label", y="overall_conversion", color="value", barmode="group",
                      custom_data=["units"], labels={"label": "", "overall_conversion": _("From step 1"),
                                                     "value": dim_header})
        bars.update_traces(hovertemplate="%{x}<br>" + _("%{y:.1%} of step 1") + "<br>"
                           + (_("%{customdata[0]:,} members") if unit == "member" else
                              _("%{customdata[0]:,} sessions")) + "<extra></extra>")
        bars.update_layout(yaxis_tickformat=".0%", height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10})
        show_chart(bars, key="funnel_breakdown_chart")
        overall = _("Overall conversion")
        wide = by.pivot(index="value", columns="label", values="units")
        first_last = by[by["step"].isin([1, len(spec.steps)])].pivot(index="value", columns="step",
                                                                        values="overall_conversion")
        wide[overall] = first_last[len(spec.steps)]
        st.dataframe(wide.reset_index().rename(columns={"value": dim_header}), hide_index=True,
                     column_config={overall: st.column_config.NumberColumn(format="percent"),
                                    **{step: st.column_config.NumberColumn(format="localized")
                                       for step in spec.step_labels}})
        st.caption(_("{units} per step for each {dimension}, attributed by first touch (the step-1 event of the "
                     "best attempt).").format(units=header, dimension=dim_header.lower()))

with time_tab:
    steps_after = list(range(2, len(spec.steps) + 1))
    chosen = st.segmented_control(_("Into step"), steps_after, default=steps_after[0], key="funnel_time_step",
                                  format_func=lambda k: spec.step_labels[k - 1], required=True)
    row = total[total["step"] == chosen].iloc[0]
    left, right = st.columns(2)
    left.metric(_("Median"), format_seconds(row["median_seconds_to_convert"]), border=True,
                help=_(METRIC_HELP["median_seconds_to_convert"]))
    right.metric(_("90th percentile"), format_seconds(row["p90_seconds_to_convert"]), border=True,
                 help=_(METRIC_HELP["p90_seconds_to_convert"]))
    bins = report.histogram[report.histogram["step"] == chosen]
    histogram = px.bar(bins, x="bin", y="units",
                       labels={"bin": _("Time from step {a} to step {b}").format(a=chosen - 1, b=chosen),
                               "units": header}, color_discrete_sequence=[ACCENT])
    histogram.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    show_chart(histogram, key="funnel_time_chart")

if trend_tab.open:
    with trend_tab:
        grain = st.segmented_control(_("Cohorts by"), ["day", "week"], default="day", key="funnel_grain", required=True,
                                     format_func=lambda g: _(GRAINS[g]))
        trend = cached_funnel_trend(ctx.engine, filters, spec, grain)
        entered_name = _("Entered (members)") if unit == "member" else _("Entered (sessions)")
        line = go.Figure()
        line.add_bar(x=trend["period"], y=trend["entered"], name=entered_name, marker_color="#E0B4C8",
                     yaxis="y2", customdata=trend["period"].map(format_day),
                     hovertemplate="%{customdata}<br>" + _("%{y:,} entered") + "<extra></extra>")
        for complete, name, style in ((True, _("Overall conversion"), "solid"), (False, _("Window still open"), "dot")):
            part = trend[trend["complete"] == complete]
            if complete is False and not part.empty:  # join the dotted tail to the solid line
                part = pd.concat([trend[trend["complete"]].tail(1), part])
            line.add_scatter(x=part["period"], y=part["conversion"], name=name, mode="lines+markers",
                             line={"color": ACCENT, "dash": style}, customdata=part["period"].map(format_day),
                             hovertemplate="%{customdata}<br>" + _("%{y:.1%} converted") + "<extra></extra>")
        line.update_layout(height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis={"tickformat": ".0%",
                           "title": _("Overall conversion"), "rangemode": "tozero"},
                           yaxis2={"overlaying": "y", "side": "right", "title": _("Entered"), "showgrid": False},
                           legend={"orientation": "h", "y": -0.15})
        show_chart(line, key="funnel_trend_chart")
        cohort = (_("Each day's cohort is {units} whose best attempt started that day; conversion is the share of "
                    "them that reached the last step within the window. Dotted: cohorts whose window has not closed "
                    "in the data yet, so their conversion may still rise.") if grain == "day" else
                  _("Each week's cohort is {units} whose best attempt started that week; conversion is the share of "
                    "them that reached the last step within the window. Dotted: cohorts whose window has not closed "
                    "in the data yet, so their conversion may still rise."))
        st.caption(cohort.format(units=noun))

if act_tab.open:
    with act_tab:
        after = st.selectbox(_("Reached"), list(range(1, len(spec.steps))), key="funnel_dropoff_step",
                             format_func=lambda k: _("{reached} but not {next}").format(reached=spec.step_labels[k - 1],
                                                                                         next=spec.step_labels[k]))
        dropped = int(total["dropped"].iloc[after])
        member_set(ctx.engine, dropoff_audience(spec, filters, after), key="funnel_dropoff",
                   who=(_("who stopped there.") if unit == "member" else
                        _("behind the {count} sessions that stopped there (anonymous sessions have no member)."))
                   .format(count=f"{dropped:,}"),
                   actor=default_author(), page="funnels")
