"""The Campaign targeting page's read-outs of an audience: reach, why it is the size it is (the condition funnel),
profile, overlap, control balance and forecast; and the picker that adds a condition from known values.

Each reads widgets, calls the cached analytics and draws; the figures and their definitions live in
``analytics.targeting``, ``analytics.audience_report`` and ``analytics.forecast``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st
from sqlalchemy import Engine

from analytics import audience_report, forecast, targeting, targeting_values
from analytics.errors import MemberLensError
from analytics.i18n import N_, _
from analytics.targeting import CHANNELS, FIELDS, OPERATORS, CampaignAudience, ConditionFunnel, Preview
from analytics.targeting_values import KnownList, Lookup
from ui.cached import (
    cached,
    cached_audience_profile,
    cached_balance,
    cached_forecast,
    cached_forecast_types,
    cached_overlap,
)
from ui.format import MISSING, change_pp, count, label, money, plain_text, share
from ui.look import show_chart

CURRENT = N_("This audience")


def reach_chart(sizes: Preview) -> None:
    treatment, control = label("treatment"), label("control")
    reach = pd.DataFrame({"channel": [label(c) for c in CHANNELS] * 2,
                          "arm": [treatment] * len(CHANNELS) + [control] * len(CHANNELS),
                          "members": [sizes.reachable_treatment[c] for c in CHANNELS]
                          + [sizes.reachable[c] - sizes.reachable_treatment[c] for c in CHANNELS]})
    chart = px.bar(reach, x="members", y="channel", color="arm", orientation="h", text_auto=",d",
                   labels={"members": _("Reachable targeted members"), "channel": "", "arm": ""},
                   color_discrete_map={treatment: "#1b9e77", control: "#bdbdbd"})
    # the legend above the bars: below them, plotly draws it over the axis title
    chart.update_layout(height=240, margin={"l": 0, "r": 0, "t": 30, "b": 0},
                        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0})
    show_chart(chart, key="target_reach")
    st.caption(_("Treatment members are the ones a campaign on that channel would message; the control group is "
                 "held out."))


# --- known values and the condition picker ------------------------------------------------------------------

@cached()
def cached_known_values(engine: Engine, key: str) -> KnownList:
    return targeting_values.known_values(engine, key)


@cached(max_entries=64)
def cached_existing_values(engine: Engine, key: str, values: tuple[str, ...]) -> tuple[str, ...]:
    return targeting_values.existing_values(engine, key, values)


def known_lookup(engine: Engine) -> Lookup:
    """:func:`analytics.targeting_values.lookup` through the caches: a listed field's whole list, otherwise the
    typed values that exist."""

    def find(key: str, values: Sequence[str]) -> Collection[str]:
        known = FIELDS[key].known
        if known is not None and known.listed:
            listed = cached_known_values(engine, key)
            if listed.complete:
                return listed.values
        return cached_existing_values(engine, key, tuple(sorted(set(values))))

    return find


def condition_picker(engine: Engine, fields: dict[str, str], add_row: Callable[[dict[str, Any]], None]) -> None:
    """One row of widgets that adds a condition to the table: the field, its operator, its values picked from
    the known ones (typed for ranges and product ids), a look-back for behaviour fields, NOT. ``fields``: field
    key -> label, the fields the table offers; ``add_row`` receives the table row (as the table shows it)."""
    session = st.session_state
    columns = st.columns([2.2, 1.3, 3.2, 1.1, 1.0, 1.0], vertical_alignment="bottom")
    key = columns[0].selectbox(_("Field"), list(fields), format_func=lambda k: _(fields[k]), key="target_pick_field",
                               help=_("Add a condition: pick a field and its values, then 'Add'."))
    kind = FIELDS[key]
    op = columns[1].selectbox(_("Operator"), kind.operators, format_func=lambda o: _(OPERATORS[o]),
                              key=f"target_pick_op_{key}")
    values_key = f"target_pick_values_{key}"
    if kind.known is not None and kind.known.listed:
        known = cached_known_values(engine, key)
        shown = label if key in CODE_FIELDS else None
        columns[2].multiselect(_("Values"), known.values, key=values_key, format_func=shown or str,
                               placeholder=_("choose {noun}").format(noun=_(kind.known.noun)),
                               help=(_("The {field} values in the warehouse.") if known.complete
                                     else _("The {field} values in the warehouse (the first {count}).")).format(
                                   field=_(kind.label).lower(), count=f"{len(known.values):,}"))
    else:
        example = getattr(kind, "example", "")
        columns[2].text_input(_("Values"), key=values_key,
                              placeholder=_("low - high, e.g. {example}").format(example=example)
                              if kind.kind in ("number", "date") else _("values separated by commas"),
                              help=_("A range: low - high, either side may be empty. A list: values separated by "
                                     "commas (checked against the warehouse)."))
    columns[3].number_input(_("Look back"), 0, targeting.MAX_LOOKBACK_DAYS, 0, step=30, key="target_pick_days",
                            disabled=not kind.behaviour,
                            help=_("Days. Behaviour fields only: read the orders of these last days (0 = the "
                                   "audience's look-back, below)."))
    columns[4].checkbox(_("NOT"), key="target_pick_not", help=_("Keep the members who do NOT match."))

    def add() -> None:
        picked = session.get(values_key)
        text = ", ".join(picked) if isinstance(picked, list) else str(picked or "")
        days = int(session.get("target_pick_days") or 0) if kind.behaviour else 0
        add_row({"group": None, "not": bool(session.get("target_pick_not")), "field": kind.key,
                 "operator": op, "values": text, "days": days or None})
        session[values_key] = [] if isinstance(picked, list) else ""
        session["target_pick_not"] = False

    columns[5].button(_("Add"), icon=":material/add:", key="target_pick_add", on_click=add,
                      help=_("Adds the condition as a row of the table above."))


# --- why an audience is the size it is ------------------------------------------------------------------------

@cached("Counting members condition by condition…", max_entries=16)
def cached_funnel(engine: Engine, audience: CampaignAudience) -> ConditionFunnel:
    return targeting.condition_funnel(engine, audience)


def funnel_text(funnel: ConditionFunnel) -> str:
    """The funnel as a chain: "All members: 2,000 → Tier is one of gold: 400 → ... : 0"."""
    parts = [_("{step}: {members}").format(step=_("All members"), members=count(funnel.members))]
    parts += [_("{step}: {members}").format(step=plain_text(step.label), members=count(step.remaining))
              for step in funnel.steps]
    return " → ".join(parts)


def funnel_explanation(funnel: ConditionFunnel) -> str:
    """Which condition removes the members, in a sentence."""
    if not funnel.steps:
        return _("No conditions: every member matches.")
    last = funnel.steps[-1].remaining
    if funnel.match == "any":
        if last == 0:
            return _("No member matches any of the conditions: each one, on its own, matches nobody.")
        best = max(funnel.steps, key=lambda s: s.alone)
        return _("Members match any of the conditions; **{condition}** brings the most ({members}).").format(
            condition=plain_text(best.label), members=count(best.alone))
    number = funnel.narrowest()
    if number is None:
        return _("{members} members match every condition.").format(members=count(last))
    step = funnel.steps[number]
    before = funnel.members if number == 0 else funnel.steps[number - 1].remaining
    if step.remaining == 0 and step.alone == 0:
        return _("No member matches **{condition}** at all, even on its own: check its values and its "
                 "look-back.").format(condition=plain_text(step.label))
    if step.remaining == 0:
        return _("**{condition}** removes the last {before} members: it matches {alone} on its own, but none of "
                 "those who pass the conditions before it. Look at the look-back of behaviour conditions and the "
                 "reach of 'Days since last order'.").format(condition=plain_text(step.label), before=count(before),
                                                             alone=count(step.alone))
    return _("**{condition}** narrows the audience most: {before} → {after} ({kept} kept).").format(
        condition=plain_text(step.label), before=count(before), after=count(step.remaining),
        kept=share(step.remaining / before if before else None))


def _draw_funnel(funnel: ConditionFunnel, level: Callable) -> None:
    level(funnel_explanation(funnel), icon=":material/filter_alt:")
    st.caption(funnel_text(funnel))
    rows = [{"step": _("All members"), "alone": count(funnel.members), "remaining": count(funnel.members)}]
    rows += [{"step": step.label, "alone": count(step.alone), "remaining": count(step.remaining)}
             for step in funnel.steps]
    remaining = _("Match every step so far") if funnel.match == "all" else _("Match any step so far")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="target_funnel_table", column_config={
        "step": st.column_config.TextColumn(_("Condition"), width="large"),
        "alone": st.column_config.TextColumn(_("Match it on its own"),
                                             help=_("Members matching this condition alone.")),
        "remaining": st.column_config.TextColumn(remaining, help=_("Members matching this condition and every one "
                                                                   "before it (all rows) or any of them (any row).")),
    })


def funnel_view(engine: Engine, audience: CampaignAudience, sizes: Preview) -> None:
    """Why the audience is the size it is: shown at once when it is empty or small (fewer than
    :data:`analytics.targeting.SMALL_AUDIENCE` targeted), otherwise in an expander computed only when opened."""
    if sizes.targeted < targeting.SMALL_AUDIENCE:
        funnel = cached_funnel(engine, audience)
        _draw_funnel(funnel, st.warning if sizes.targeted == 0 else st.info)
        return
    expander = st.expander(_("How each condition narrows the audience"), icon=":material/filter_alt:",
                           key="target_funnel", on_change="rerun")
    if expander.open:
        with expander:
            _draw_funnel(cached_funnel(engine, audience), st.info)


def profile_view(engine: Engine, audience: CampaignAudience, targeted: int) -> None:
    if targeted == 0:
        st.info(_("The audience is empty: nothing to profile."), icon=":material/person_search:")
        return
    profile = cached_audience_profile(engine, audience)
    summary = profile.summary.set_index("measure")
    cards = st.columns(4)
    for card, (measure, title, shown) in zip(cards, [("buyers_share", _("Bought in the window"), share),
                                                     ("sales_per_member", _("Net sales per member"), money),
                                                     ("orders_per_member", _("Orders per member"), "{:.2f}".format),
                                                     ("aov", _("AOV"), money)], strict=True):
        ours, everyone = summary.loc[measure, "audience"], summary.loc[measure, "all_members"]
        card.metric(title, shown(ours) if pd.notna(ours) else MISSING, border=True,
                    delta=_("all members: {value}").format(value=shown(everyone)) if pd.notna(everyone) else None,
                    delta_color="off", delta_arrow="off",
                    help=_("Completed orders in the window; the audience (both arms) against all members."))
    dimension = st.segmented_control(_("Compare by"), list(audience_report.PROFILE_DIMENSIONS), default="tier",
                                     required=True, format_func=lambda d: _(audience_report.PROFILE_DIMENSIONS[d]),
                                     key="target_profile_dimension")
    mix = profile.mix[profile.mix["dimension"] == dimension].copy()
    mix["value"] = mix["value"].map(lambda v: _value_label(dimension, v))
    _shares_chart(mix, "value", _("Share of members"), 48, "target_profile_chart")
    st.caption(_("Index = the audience's share / all members' share × 100 (above 100: over-represented). RFM "
                 "segments are scored over the window; '(no purchase)' = no completed order in it."))
    st.dataframe(mix[["value", "audience", "all_members", "audience_share", "all_share", "index"]], hide_index=True,
                 column_config={"value": _(audience_report.PROFILE_DIMENSIONS[dimension]),
                                "audience": st.column_config.NumberColumn(_(CURRENT), format="localized"),
                                "all_members": st.column_config.NumberColumn(_("All members"), format="localized"),
                                "audience_share": st.column_config.NumberColumn(_("Audience share"),
                                                                                format="percent"),
                                "all_share": st.column_config.NumberColumn(_("All members' share"), format="percent"),
                                "index": st.column_config.NumberColumn(_("Index"), format="%.0f")})
    st.markdown(_("**Category mix** (share of net line amounts in the window)"))
    categories = profile.categories.head(12).copy()
    categories["category"] = categories["category"].map(lambda v: _(v) if v == audience_report.UNKNOWN else v)
    _shares_chart(categories, "category", _("Share of net sales"), 40, "target_category_chart")


#: Profile dimensions whose values are warehouse codes (shown in the reader's words).
CODE_DIMENSIONS = ("tier", "gender", "acquisition_channel")
#: Choice fields of the condition picker whose values are warehouse codes.
CODE_FIELDS = ("tier", "gender", "acquisition_channel")


def _value_label(dimension: str, value: str) -> str:
    """A profile row's value as a reader sees it: codes in words, RFM segments and markers in the reader's
    language, data values (regions, age bands) as stored."""
    if dimension in CODE_DIMENSIONS and value != audience_report.UNKNOWN:
        return label(value)
    return _(value) if dimension == "segment" or value == audience_report.UNKNOWN else value


def _shares_chart(frame: pd.DataFrame, by: str, title: str, row_height: int, key: str) -> None:
    """The audience's shares against all members', as paired horizontal bars."""
    long = frame.melt(id_vars=by, value_vars=["audience_share", "all_share"], var_name="who", value_name="share")
    ours, everyone = _(CURRENT), _("All members")
    long["who"] = long["who"].map({"audience_share": ours, "all_share": everyone})
    chart = px.bar(long, x="share", y=by, color="who", barmode="group", orientation="h", text_auto=".0%",
                   labels={"share": title, by: "", "who": ""},
                   color_discrete_map={ours: "#1b9e77", everyone: "#bdbdbd"})
    chart.update_layout(height=max(240, row_height * len(frame)), margin={"l": 0, "r": 0, "t": 10, "b": 0},
                        xaxis_tickformat=".0%", yaxis={"autorange": "reversed"}, legend={"orientation": "h"})
    show_chart(chart, key=key)


OVERLAP_TAB = N_("Overlap")
OVERLAP_CHOICE_KEY = "target_overlap_with"


def overlap_choice(saved_labels: Sequence[str], tab_key: str) -> list[str]:
    """The saved audiences the Overlap tab compares when it is the open tab of ``tab_key`` (its multiselect's
    value, the first three by default), else none: read before the tabs are drawn, so that the page can size the
    audience and count the overlaps in one statement."""
    if st.session_state.get(tab_key) != _(OVERLAP_TAB) or not saved_labels:
        return []
    chosen = st.session_state.get(OVERLAP_CHOICE_KEY, list(saved_labels[:3]))
    return [label for label in chosen if label in saved_labels][:audience_report.MAX_OVERLAP - 1]


def overlap_view(engine: Engine, audience: CampaignAudience, saved_labels: list[str],
                 saved_audience: Callable[[str], CampaignAudience], counted: pd.DataFrame | None = None) -> None:
    """The overlap matrix of the audience with the saved audiences chosen here; ``counted``: the matrix already
    counted with the preview (see :func:`overlap_choice`), used when it holds the audiences chosen."""
    if not saved_labels:
        st.info(_("No saved audience to compare with yet: save one under **Save**."), icon=":material/join_inner:")
        return
    chosen = st.multiselect(_("Compare with saved audiences"), saved_labels, default=saved_labels[:3],
                            max_selections=audience_report.MAX_OVERLAP - 1, key=OVERLAP_CHOICE_KEY,
                            help=_("Members targeted by both: each audience after its own frequency cap and maximum "
                                   "size, both arms."))
    if not chosen:
        return
    if counted is not None and list(counted.index) == [_(CURRENT), *chosen]:
        matrix = counted
    else:
        try:
            others = tuple((name, saved_audience(name)) for name in chosen)
        except (MemberLensError, KeyError) as problem:
            st.error(_("A saved audience cannot be read: {problem}").format(problem=problem), icon=":material/rule:")
            return
        matrix = cached_overlap(engine, ((_(CURRENT), audience), *others))
    shares = audience_report.overlap_shares(matrix)
    text = [[f"{matrix.iloc[i, j]:,}<br>{shares.iloc[i, j]:.0%}" if pd.notna(shares.iloc[i, j]) else "0"
             for j in range(len(matrix))] for i in range(len(matrix))]
    chart = px.imshow(shares, color_continuous_scale="Greens", zmin=0, zmax=1, aspect="auto",
                      labels={"x": "", "y": "", "color": _("Share of row")})
    chart.update_traces(text=text, texttemplate="%{text}", hovertemplate="%{y} ∩ %{x}: %{text}<extra></extra>")
    chart.update_layout(height=120 + 60 * len(matrix), margin={"l": 0, "r": 0, "t": 10, "b": 0})
    show_chart(chart, key="target_overlap_chart")
    st.caption(_("Each cell: members in both audiences, and that number as a share of the row's audience (the "
                 "diagonal is each audience's size)."))


@cached()
def cached_past_control_rate(engine: Engine) -> float | None:
    return audience_report.past_control_rate(engine)


BALANCE_COLUMNS = ("attribute", "label", "treatment", "control", "smd", "p_value", "balanced")
#: The sentence figures of the balance verdict, written as every page writes them.
FIGURES = audience_report.Figures(count, share, lambda v: change_pp(v).lstrip("+"))


def _power_plan(engine: Engine) -> audience_report.PowerPlan:
    """The conversion the control group must be able to tell apart, from two inputs (the baseline defaults to
    past campaigns' control arms)."""
    past = cached_past_control_rate(engine)
    baseline = past if past is not None and 0 < past < 0.9 else audience_report.DEFAULT_BASELINE
    left, right = st.columns(2)
    rate = left.number_input(_("Conversion without the message (%)"), 0.1, 90.0, round(baseline * 100, 1),
                             step=0.5, format="%.1f", key="target_balance_baseline",
                             help=(_("The share of the audience expected to buy anyway; by default past campaigns' "
                                     "control arms ({rate}).").format(rate=share(past)) if past is not None else
                                   _("The share of the audience expected to buy anyway; by default past campaigns' "
                                     "control arms.")))
    difference = right.number_input(_("Smallest difference worth detecting (pp)"), 0.1, 9.9,
                                    audience_report.DEFAULT_DIFFERENCE * 100, step=0.5, format="%.1f",
                                    key="target_balance_difference",
                                    help=_("In conversion, percentage points: the control group should be large "
                                           "enough to tell this uplift from chance (80% power, 5% significance)."))
    return audience_report.PowerPlan(rate / 100, min(difference / 100, 0.99 - rate / 100))


def balance_view(engine: Engine, audience: CampaignAudience, sizes: Preview) -> None:
    if audience.holdout == 0 or sizes.treatment == 0:
        st.info(_("Set a control group share (and have members in both arms) to check the balance."),
                icon=":material/balance:")
        return
    plan = _power_plan(engine)
    table = cached_balance(engine, audience) if sizes.control else pd.DataFrame(columns=list(BALANCE_COLUMNS))
    verdict = audience_report.balance_verdict(table, sizes.control, sizes.treatment, plan, FIGURES)
    show = {"ok": st.success, "chance": st.info, "small": st.warning, "broken": st.error}[verdict.level]
    show(verdict.message, icon=":material/balance:")
    if table.empty:
        return
    st.dataframe(table[["label", "treatment", "control", "smd", "p_value", "balanced"]], hide_index=True,
                 column_config={
        "label": _("Attribute"), "treatment": st.column_config.NumberColumn(label("treatment"), format="%.3f"),
        "control": st.column_config.NumberColumn(label("control"), format="%.3f"),
        "smd": st.column_config.NumberColumn("SMD", format="%+.3f", help=_(audience_report.BALANCE_HELP)),
        "p_value": st.column_config.NumberColumn(_("p-value"), format="%.3f", help=_(
            "Two-sided test of the difference; beyond chance below 0.05 / the number of attributes.")),
        "balanced": st.column_config.CheckboxColumn(_("Balanced"))})
    st.caption(_("Means for numbers, shares for category levels.") + " " + _(audience_report.BALANCE_HELP))


def forecast_view(engine: Engine, sizes: Preview) -> None:
    kinds = cached_forecast_types(engine)
    if kinds.empty:
        st.info(_("There are no past campaigns in the warehouse to learn from: no forecast."),
                icon=":material/query_stats:")
        return
    st.caption(_("Learned from past campaigns of the same type and channel, their treatment against their control; "
                 "it needs at least {campaigns} such campaigns and {members} control members among them.").format(
        campaigns=forecast.MIN_CAMPAIGNS, members=f"{forecast.MIN_CONTROL_MEMBERS:,}"))
    left, right = st.columns(2)
    campaign_type = left.selectbox(_("Campaign type"), sorted(kinds["type"].unique()), key="target_forecast_type",
                                   format_func=label)
    channels = sorted(kinds.loc[kinds["type"] == campaign_type, "channel"])
    channel = right.selectbox(_("Channel"), channels, key="target_forecast_channel", format_func=label)
    size = sizes.reachable_treatment.get(channel, 0)
    inputs = st.columns(4)
    coupon = inputs[0].number_input(_("Coupon value"), 0.0, 10_000.0, 20.0, step=5.0, key="target_forecast_coupon")
    message_cost = inputs[1].number_input(_("Cost per message"), 0.0, 100.0, 0.05, step=0.01, format="%.3f",
                                          key="target_forecast_message_cost")
    margin = inputs[2].slider(_("Margin"), 0, 100, 30, format="%d%%", key="target_forecast_margin") / 100
    redemption = inputs[3].slider(_("Coupon use by converters"), 0, 100, 100, format="%d%%",
                                  key="target_forecast_redemption") / 100
    result = cached_forecast(engine, campaign_type, channel, size, coupon, message_cost, margin, redemption)
    if not result.enough_history:
        st.info(result.message, icon=":material/query_stats:")
        return
    st.markdown(_("Sending to the **{members}** reachable treatment members on {channel}:").format(
        members=f"{size:,}", channel=label(channel)))
    cards = st.columns(4)
    low, high = result.incremental_ci
    cards[0].metric(_("Response rate"), f"{result.response_rate:.2%}", border=True,
                    help=_("Over {campaigns} past campaigns' treatment arms (control: {rate}).").format(
                        campaigns=result.campaigns_used, rate=f"{result.control_rate:.2%}"))
    cards[1].metric(_("Incremental conversions"), f"{result.incremental_conversions:,.0f}", border=True,
                    delta=_("95% interval {low} to {high}").format(low=f"{low:,.0f}", high=f"{high:,.0f}"),
                    delta_color="off", delta_arrow="off",
                    help=_("Members × the pooled uplift (DerSimonian–Laird random effects over the past "
                           "campaigns)."))
    cards[2].metric(_("Coupon cost"), money(result.coupon_cost), border=True,
                    help=_("Expected conversions × coupon use × coupon value: every converting treated member may "
                           "use it, not only the ones the campaign won."))
    roi_low, roi_high = result.roi_ci
    cards[3].metric(_("Expected ROI"), f"{result.roi:+.0%}" if pd.notna(result.roi) else MISSING, border=True,
                    delta=_("{low} to {high}").format(low=f"{roi_low:+.0%}", high=f"{roi_high:+.0%}")
                    if pd.notna(roi_low) else None, delta_color="off", delta_arrow="off",
                    help=_("(Incremental margin − coupon cost − message cost) / (coupon cost + message cost); the "
                           "interval follows the uplift's."))
    st.caption(result.message)
