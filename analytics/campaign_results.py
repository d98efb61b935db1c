"""Campaign results: what every past campaign of a range returned, treatment against its holdout control, and
the same pooled by type and by channel, over time, for retention, and for how often members were messaged.

Definitions (one place; the app shows them as help, :data:`RESULT_HELP`):

* **Campaigns of the range**: those whose ``start_at`` falls in the date range (optionally of one type and one
  message channel). The sales-channel and tier filters do not apply: a campaign's channel is its message channel.
* **Sent** = campaign rows with a ``sent_at`` (the control arm is never sent anything); **open rate** = opened /
  sent (not shown for SMS, whose opens cannot be tracked); **click-through rate** = clicked / sent. The contract
  records sends, not deliveries (no bounce data), so no delivered count is shown.
* **Conversion rate** per arm, **lift** with its 95% interval and p-value, **revenue per member** difference with
  its interval: the Experiment read-out's statistics (:func:`analytics.experiments.read_out_of`), for every
  campaign from one aggregation.
* **Incremental conversions** = treatment members × lift; **incremental revenue** = treatment members × the
  difference in revenue per member (net amount of converted orders); each with the 95% interval of what it
  multiplies.
* **Coupon cost** = coupon value × coupons redeemed (treatment conversions whose order carries the campaign's
  id), at face value; **message cost** = sent × cost per message (0 unless given: the warehouse holds none).
* **Realised ROI** = (incremental revenue × margin - coupon cost - message cost) / (coupon cost + message cost);
  not defined when nothing was spent. Its interval comes from the revenue difference's. Over several campaigns:
  (Σ incremental revenue × margin - Σ cost) / Σ cost.
* **Pooled by type or channel**: the campaigns' conversion uplifts pooled with the DerSimonian–Laird
  random-effects estimate and its 95% interval (:func:`analytics.forecast.random_effects`, as the forecast pools).
* **Retention**: of the members who converted, the share with another completed order within 60 days after the
  converting order, treatment against control (the read-out's two-proportion test, pooled over the campaigns).
* **Send frequency**: messages sent to a member in each 30-day block of the range counted back from its last day
  (the earliest block may be shorter); a member is **reached too often** when some block holds more than the cap.
"""

from __future__ import annotations

import calendar
import math
import numbers
from dataclasses import dataclass, replace

import pandas as pd
from sqlalchemy import Double, and_, cast, extract, func, literal, select

from analytics import experiments, forecast
from analytics.errors import InputError
from analytics.experiments import Arm, campaign_members_in_scope
from analytics.filters import Filters
from analytics.i18n import N_, _
from analytics.programme_tiers import days_between, periods
from analytics.sqlparts import Grain, count_if, sum_if
from analytics.storage.contract import CAMPAIGN_CHANNELS, CAMPAIGN_TYPES, campaign_members, campaigns, orders
from analytics.storage.db import Bind, read_frame

DEFAULT_MARGIN = 0.3
RETENTION_DAYS = 60
FREQUENCY_DAYS = 30
DEFAULT_CAP = 4
MAX_CAP = 1_000
MAX_MESSAGE_COST = 1_000.0
#: Where a campaign's read-out opens (the Experiment read-out page reads ``?campaign=``).
READ_OUT_LINK = "/experiments?campaign={campaign_id}"
#: What each figure means, in English with ``{days}`` for the retention and frequency periods: read them through
#: :func:`result_help` (translated, the days filled in).
RESULT_HELP: dict[str, str] = {
    "sent": N_("Campaign rows with a send time (the control arm is never sent anything). The warehouse records "
               "sends, not deliveries."),
    "open_rate": N_("Opened / sent (SMS opens cannot be tracked)."),
    "click_rate": N_("Click-through rate: clicked / sent."),
    "conversion": N_("Members whose campaign row names a converted order / members of the arm (as the read-out)."),
    "lift": N_("Treatment minus control conversion rate, with its 95% interval (two-proportion z-test)."),
    "incremental_conversions": N_("Treatment members × lift, with the lift's 95% interval."),
    "incremental_revenue": N_("Treatment members × the difference in revenue per member (Welch's 95% interval)."),
    "coupon_cost": N_("Coupon value × coupons redeemed (treatment conversions whose order carries the campaign)."),
    "roi": N_("Realised ROI: (incremental revenue × margin − coupon cost − message cost) / (coupon cost + message "
              "cost); not defined when nothing was spent."),
    "pooled": N_("Conversion uplifts of the campaigns pooled with the DerSimonian–Laird random-effects estimate and "
                 "its 95% interval (as the forecast pools)."),
    "retention": N_("Of the members who converted, the share with another completed order within {days} days after "
                    "the converting order: treatment against control."),
    "frequency": N_("Messages sent to a member in each {days}-day block of the range, counted back from its last "
                    "day; reached too often: more than the cap in some block."),
}
_HELP_DAYS = {"retention": RETENTION_DAYS, "frequency": FREQUENCY_DAYS}


def result_help(key: str) -> str | None:
    """What the figure ``key`` means (:data:`RESULT_HELP`), in the run's language; None for an unknown key."""
    text = RESULT_HELP.get(key)
    return None if text is None else _(text).format(days=_HELP_DAYS.get(key, ""))
_COUNTS = ("treatment_members", "treatment_conversions", "control_members", "control_conversions", "sent", "opened",
           "clicked", "coupons_redeemed", "treatment_retained", "control_retained")
_AMOUNTS = ("treatment_revenue", "treatment_revenue_sq", "control_revenue", "control_revenue_sq", "coupon_value",
            "holdout_pct")


def _check(campaign_type: str | None, channel: str | None, margin: float, message_cost: float) -> None:
    if campaign_type is not None and campaign_type not in CAMPAIGN_TYPES:
        raise InputError(_("Unknown campaign type {type!r}; choose from {choices}.").format(
            type=campaign_type, choices=", ".join(CAMPAIGN_TYPES)))
    if channel is not None and channel not in CAMPAIGN_CHANNELS:
        raise InputError(_("Unknown message channel {channel!r}; choose from {choices}.").format(
            channel=channel, choices=", ".join(CAMPAIGN_CHANNELS)))
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not 0 <= margin <= 1:
        raise InputError(_("The margin must be a share between 0 and 1, not {margin!r}.").format(margin=margin))
    if (isinstance(message_cost, bool) or not isinstance(message_cost, numbers.Real)
            or not 0 <= message_cost <= MAX_MESSAGE_COST):
        raise InputError(_("The cost per message must be from 0 to {most}, not {cost!r}.").format(
            most=f"{MAX_MESSAGE_COST:,.0f}", cost=message_cost))


def campaign_totals(bind: Bind, filters: Filters, campaign_type: str | None = None, channel: str | None = None,
                    *, retention: bool = True) -> pd.DataFrame:
    """Per campaign of the range (oldest first): its attributes, both arms' members, conversions, revenue and its
    sum of squares, retained converters (0 without ``retention``: the KPI, which does not show them, skips that
    join), sends, opens, clicks and coupons redeemed. One SQL statement."""
    _check(campaign_type, channel, DEFAULT_MARGIN, 0.0)
    c, cm = campaigns.c, campaign_members.c
    scope = [c.start_at >= filters.start_ts, c.start_at < filters.end_ts]
    if campaign_type is not None:
        scope.append(c.type == campaign_type)
    if channel is not None:
        scope.append(c.channel == channel)
    # Each campaign row with its converted order, read once (a CTE: the main aggregation and the retention join both
    # use it). Orders are read from the range's start: every campaign here started in it, and an order placed
    # before its campaign started is not its conversion; the column store skips the older blocks.
    converted = orders.alias("converted")
    in_channels = [converted.c.channel.in_(filters.scope.channels)] if filters.scope.channels else []  # the user's
    rows = (select(cm.campaign_id, cm.member_id, cm.arm, cm.sent_at, cm.opened_at, cm.clicked_at,
                   cm.converted_order_id, converted.c.ordered_at.label("converted_at"),
                   converted.c.net_amount, converted.c.campaign_id.label("order_campaign"))
            .select_from(campaign_members.outerjoin(converted, and_(converted.c.order_id == cm.converted_order_id,
                                                                    converted.c.ordered_at >= filters.start_ts,
                                                                    *in_channels)))
            .where(cm.campaign_id.in_(select(c.campaign_id).where(*scope)),
                   *campaign_members_in_scope(filters.scope))  # the members the user may see
            .cte("campaign_rows"))
    r = rows.c
    revenue = func.coalesce(r.net_amount, 0)  # summed as exact decimals, then made floats: the same every run
    columns = []
    for arm in ("treatment", "control"):
        in_arm = r.arm == arm
        columns += [count_if(in_arm).label(f"{arm}_members"),
                    count_if(and_(in_arm, r.converted_order_id.is_not(None))).label(f"{arm}_conversions"),
                    cast(func.coalesce(sum_if(in_arm, revenue), 0), Double).label(f"{arm}_revenue"),
                    cast(func.coalesce(sum_if(in_arm, revenue * revenue), 0), Double).label(f"{arm}_revenue_sq")]
    columns += [count_if(r.sent_at.is_not(None)).label("sent"), count_if(r.opened_at.is_not(None)).label("opened"),
                count_if(r.clicked_at.is_not(None)).label("clicked"),
                count_if(and_(r.arm == "treatment", r.order_campaign == c.campaign_id)).label("coupons_redeemed")]
    totals = (select(c.campaign_id, c.name, c.type, c.channel, c.start_at, c.end_at,
                     cast(func.coalesce(c.holdout_pct, 0), Double).label("holdout_pct"),
                     cast(func.coalesce(c.coupon_value, 0), Double).label("coupon_value"), *columns)
              .select_from(campaigns.outerjoin(rows, r.campaign_id == c.campaign_id))
              .where(*scope)
              .group_by(c.campaign_id, c.name, c.type, c.channel, c.start_at, c.end_at, c.holdout_pct, c.coupon_value)
              .subquery("campaign_totals"))
    t = totals.c
    if retention:
        # converters who ordered again, counted per campaign and arm apart and joined to the few total rows
        later = orders.alias("later")
        again = (select(r.campaign_id, r.member_id, r.arm)
                 .select_from(rows.join(later, and_(later.c.member_id == r.member_id, later.c.status == "completed",
                                                    later.c.ordered_at >= filters.start_ts,
                                                    later.c.ordered_at > r.converted_at,
                                                    days_between(later.c.ordered_at, r.converted_at)
                                                    <= RETENTION_DAYS)))
                 .where(r.converted_at.is_not(None))
                 .group_by(r.campaign_id, r.member_id, r.arm).subquery("ordered_again"))
        kept = (select(again.c.campaign_id, *(count_if(again.c.arm == arm).label(f"{arm}_retained")
                                              for arm in ("treatment", "control")))
                .group_by(again.c.campaign_id).subquery("retained"))
        retained = [func.coalesce(kept.c[f"{arm}_retained"], 0).label(f"{arm}_retained")
                    for arm in ("treatment", "control")]
        source = totals.outerjoin(kept, kept.c.campaign_id == t.campaign_id)
    else:
        retained = [literal(0).label(f"{arm}_retained") for arm in ("treatment", "control")]
        source = totals
    query = select(totals, *retained).select_from(source).order_by(t.start_at, t.campaign_id)
    frame = read_frame(bind, query, hash_joins=True)
    frame = frame.astype({**dict.fromkeys(_COUNTS, "int64"), **dict.fromkeys(_AMOUNTS, "float64")})
    for column in ("start_at", "end_at"):
        frame[column] = pd.to_datetime(frame[column])
    return frame.reset_index(drop=True)


def _roi(margin_value: float, cost: float) -> float:
    return (margin_value - cost) / cost if cost > 0 else math.nan


def campaign_results(bind: Bind, filters: Filters, campaign_type: str | None = None, channel: str | None = None,
                     margin: float = DEFAULT_MARGIN, message_cost: float = 0.0) -> pd.DataFrame:
    """One row per campaign of the range with every figure of the module docstring (see :data:`RESULT_COLUMNS`);
    read-out figures are NaN for a campaign with an empty arm."""
    _check(campaign_type, channel, margin, message_cost)
    return results_from_totals(campaign_totals(bind, filters, campaign_type, channel), margin, message_cost)


def results_from_totals(totals: pd.DataFrame, margin: float = DEFAULT_MARGIN,
                        message_cost: float = 0.0, *, statistics: bool = True) -> pd.DataFrame:
    """:func:`campaign_results` from :func:`campaign_totals` rows (the statistics, per campaign). Without
    ``statistics`` the intervals and p-values are NaN and the estimates the same: enough for a sum such as
    :func:`realised_roi`, and SciPy (about 1 s to import) stays off the app's first page."""
    _check(None, None, margin, message_cost)
    rows = []
    for r in totals.itertuples(index=False):
        t = Arm(r.treatment_members, r.treatment_conversions, r.treatment_revenue, r.treatment_revenue_sq)
        ctl = Arm(r.control_members, r.control_conversions, r.control_revenue, r.control_revenue_sq)
        row = {"open_rate": r.opened / r.sent if r.sent and r.channel != "sms" else math.nan,
               "click_rate": r.clicked / r.sent if r.sent else math.nan,
               "treatment_rate": t.rate, "control_rate": ctl.rate,
               "treatment_retention": r.treatment_retained / r.treatment_conversions if r.treatment_conversions
               else math.nan,
               "control_retention": r.control_retained / r.control_conversions if r.control_conversions else math.nan,
               "coupon_cost": r.coupon_value * r.coupons_redeemed, "message_cost": r.sent * message_cost}
        row["cost"] = row["coupon_cost"] + row["message_cost"]
        nan2 = (math.nan, math.nan)
        if t.members and ctl.members and not statistics:
            lift, lift_ci, p, srm = experiments.rate_lift(t, ctl), nan2, math.nan, math.nan
            diff, diff_ci = experiments.revenue_difference(t, ctl), nan2
        elif t.members and ctl.members:
            read = experiments.read_out_of(r.campaign_id, r.name, r.type, r.channel, r.holdout_pct / 100, t, ctl)
            lift, lift_ci, p, srm = read.lift, read.lift_ci, read.rate_p_value, read.srm_p_value
            diff, diff_ci = read.revenue_diff, read.revenue_ci
        else:
            lift, lift_ci, p, srm, diff, diff_ci = math.nan, nan2, math.nan, math.nan, math.nan, nan2
        n = t.members
        revenue = n * diff
        row |= {"lift": lift, "lift_low": lift_ci[0], "lift_high": lift_ci[1], "p_value": p, "srm_p_value": srm,
                "incremental_conversions": n * lift, "incremental_low": n * lift_ci[0],
                "incremental_high": n * lift_ci[1], "incremental_revenue": revenue, "revenue_low": n * diff_ci[0],
                "revenue_high": n * diff_ci[1], "incremental_margin": revenue * margin,
                "roi": _roi(revenue * margin, row["cost"]), "roi_low": _roi(n * diff_ci[0] * margin, row["cost"]),
                "roi_high": _roi(n * diff_ci[1] * margin, row["cost"]),
                "read_out": READ_OUT_LINK.format(campaign_id=r.campaign_id)}
        rows.append(row)
    figures = pd.DataFrame(rows, index=totals.index, columns=[c for c in RESULT_COLUMNS if c not in totals.columns])
    out = pd.concat([totals, figures], axis=1)
    return out[RESULT_COLUMNS].astype({c: "float64" for c in RESULT_COLUMNS if c in _FLOATS})


RESULT_COLUMNS: list[str] = [
    "campaign_id", "name", "type", "channel", "start_at", "end_at", "holdout_pct", "treatment_members",
    "control_members", "sent", "opened", "clicked", "open_rate", "click_rate", "treatment_conversions",
    "control_conversions", "treatment_rate", "control_rate", "lift", "lift_low", "lift_high", "p_value", "srm_p_value",
    "incremental_conversions", "incremental_low", "incremental_high", "treatment_revenue", "control_revenue",
    "treatment_revenue_sq", "control_revenue_sq", "incremental_revenue", "revenue_low", "revenue_high",
    "coupon_value", "coupons_redeemed", "coupon_cost", "message_cost", "cost", "incremental_margin", "roi", "roi_low",
    "roi_high", "treatment_retained", "control_retained", "treatment_retention", "control_retention", "read_out",
]
_FLOATS = {"open_rate", "click_rate", "treatment_rate", "control_rate", "lift", "lift_low", "lift_high", "p_value",
           "srm_p_value", "incremental_conversions", "incremental_low", "incremental_high", "incremental_revenue",
           "revenue_low", "revenue_high", "coupon_cost", "message_cost", "cost", "incremental_margin", "roi",
           "roi_low", "roi_high", "treatment_retention", "control_retention"}


def realised_roi(results: pd.DataFrame) -> float:
    """(Σ incremental margin - Σ cost) / Σ cost over the campaigns with both arms; NaN when nothing was spent."""
    used = results[results["lift"].notna()]
    return _roi(float(used["incremental_margin"].sum()), float(used["cost"].sum()))


@dataclass(frozen=True)
class ResultsSummary:
    """The campaigns of a results table in a few figures (sums over those with both arms)."""

    campaigns: int
    with_control: int
    incremental_conversions: float
    incremental_revenue: float
    cost: float
    roi: float


def summarise_results(results: pd.DataFrame) -> ResultsSummary:
    used = results[results["lift"].notna()]
    return ResultsSummary(len(results), len(used), float(used["incremental_conversions"].sum()),
                          float(used["incremental_revenue"].sum()), float(used["cost"].sum()), realised_roi(results))


# ---- comparisons ---------------------------------------------------------------------------------------------------

def pooled_effects(results: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per ``type`` or ``channel``: ``campaigns`` (with both arms), ``treatment_members``, the pooled ``uplift``
    with ``uplift_low, uplift_high`` and ``tau2``, summed ``incremental_conversions, incremental_revenue, cost``
    and the group's realised ``roi``."""
    if by not in ("type", "channel"):
        raise InputError(_("Pool campaigns by type or channel, not {by!r}.").format(by=by))
    rows = []
    for value, group in results.groupby(by, sort=True):
        effects = forecast.campaign_effects(group)
        if effects.empty:
            continue
        pooled = forecast.random_effects(effects["uplift"], effects["variance"])
        used = group[group["lift"].notna()]
        rows.append({by: value, "campaigns": len(effects), "treatment_members": int(used["treatment_members"].sum()),
                     "uplift": pooled.estimate, "uplift_low": pooled.ci[0], "uplift_high": pooled.ci[1],
                     "tau2": pooled.tau2, "incremental_conversions": float(used["incremental_conversions"].sum()),
                     "incremental_revenue": float(used["incremental_revenue"].sum()),
                     "cost": float(used["cost"].sum()), "roi": realised_roi(used)})
    columns = [by, "campaigns", "treatment_members", "uplift", "uplift_low", "uplift_high", "tau2",
               "incremental_conversions", "incremental_revenue", "cost", "roi"]
    return pd.DataFrame(rows, columns=columns)


def roi_trend(results: pd.DataFrame, filters: Filters, grain: Grain = "month") -> pd.DataFrame:
    """Per period of the range (by campaign start): ``period_start, campaigns, incremental_margin, cost, roi``
    (NaN where no campaign started or nothing was spent)."""
    grid = periods(filters, grain)
    used = results[results["lift"].notna()]
    starts = pd.to_datetime(used["start_at"]).dt.normalize()
    bucket = {"day": starts, "week": starts - pd.to_timedelta(starts.dt.day_of_week, unit="D"),
              "month": starts.dt.to_period("M").dt.start_time}[grain]
    grouped = used.groupby(bucket).agg(campaigns=("campaign_id", "size"), incremental_margin=("incremental_margin",
                                                                                               "sum"),
                                       cost=("cost", "sum"))
    grouped.index = pd.DatetimeIndex(grouped.index)
    out = grouped.reindex(grid).fillna({"campaigns": 0, "incremental_margin": 0.0, "cost": 0.0})
    out.index.name = "period_start"
    out = out.reset_index().astype({"campaigns": "int64"})
    out["roi"] = [_roi(m, c) for m, c in zip(out["incremental_margin"], out["cost"], strict=True)]
    return out


@dataclass(frozen=True)
class RetentionEffect:
    """Converted members who ordered again within :data:`RETENTION_DAYS`, treatment against control, pooled."""

    treatment: Arm  # members = converted, conversions = retained
    control: Arm
    difference: float
    ci: tuple[float, float]
    p_value: float


def retention_effect(results: pd.DataFrame) -> RetentionEffect | None:
    """The pooled retention comparison of the campaigns with converters in both arms; None without any."""
    used = results[(results["treatment_conversions"] > 0) & (results["control_conversions"] > 0)]
    if used.empty:
        return None
    t = Arm(int(used["treatment_conversions"].sum()), int(used["treatment_retained"].sum()), 0.0, 0.0)
    c = Arm(int(used["control_conversions"].sum()), int(used["control_retained"].sum()), 0.0, 0.0)
    difference, ci, p = experiments.two_proportion_test(t, c)
    return RetentionEffect(t, c, difference, ci, p)


# ---- how often members are messaged -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SendFrequency:
    """``histogram``: ``sends`` (the most in one block) ``, members``; members messaged and over the cap."""

    histogram: pd.DataFrame
    members: int
    over_cap: int
    cap: int
    blocks: int


def send_frequency(bind: Bind, filters: Filters, cap: int = DEFAULT_CAP) -> SendFrequency:
    """How often members were sent a message in the range (see the module docstring): three aggregations in one
    statement (member × block, member, most sends)."""
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_CAP:
        raise InputError(_("The cap is a whole number of messages from 1 to {most}, not {cap!r}.").format(
            most=f"{MAX_CAP:,}", cap=cap))
    cm = campaign_members.c
    end_epoch = float(calendar.timegm(filters.end_ts.timetuple()))
    block = func.floor((end_epoch - cast(extract("epoch", cm.sent_at), Double)) / (FREQUENCY_DAYS * 86400.0))
    sends = (select(cm.member_id, block.label("block"))
             .where(cm.sent_at >= filters.start_ts, cm.sent_at < filters.end_ts,
                    *campaign_members_in_scope(filters.scope)).subquery("sends"))
    per_block = (select(sends.c.member_id, func.count().label("n")).group_by(sends.c.member_id, sends.c.block)
                 .subquery("per_block"))
    per_member = (select(per_block.c.member_id, func.max(per_block.c.n).label("most"))
                  .group_by(per_block.c.member_id).subquery("per_member"))
    frame = read_frame(bind, select(per_member.c.most.label("sends"), func.count().label("members"))
                       .group_by(per_member.c.most).order_by(per_member.c.most))
    frame = frame.astype({"sends": "int64", "members": "int64"})
    return SendFrequency(frame, int(frame["members"].sum()), int(frame.loc[frame["sends"] > cap, "members"].sum()),
                         cap, math.ceil(filters.days / FREQUENCY_DAYS))


# ---- the KPI -------------------------------------------------------------------------------------------------------

def roi_of_periods(bind: Bind, filters: Filters) -> tuple[float | None, float | None]:
    """Realised ROI of the campaigns that started in the range and in the previous period of equal length
    (default margin, no message cost), from one aggregation; None where no campaign spent anything."""
    both = replace(filters, start=filters.previous().start)
    results = results_from_totals(campaign_totals(bind, both, retention=False))
    current = results["start_at"] >= pd.Timestamp(filters.start_ts)

    def value(rows: pd.DataFrame) -> float | None:
        roi = realised_roi(rows)
        return None if math.isnan(roi) else roi

    return value(results[current]), value(results[~current])
