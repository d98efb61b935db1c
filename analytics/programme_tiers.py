"""Membership tiers: members per tier over time, flows between two days, time to reach a tier, retention and
spend by tier, the spend still needed for the next tier, and sales per tier.

Definitions (one place; the app shows them as help, :data:`TIER_HELP`):

* **A member's tier at a moment**: the ``from_tier`` of their first ``tier_changes`` row after the moment (the
  tier they held until then); with no change after it, their current tier, ``members.tier`` (which, by the
  contract's convention, the latest change's ``to_tier`` equals); without either, ``unknown``. Members count from
  their ``registered_at``. "On a day" means at the end of that day. Read this way, a recent moment needs only the
  few changes after it.
* **Members per tier over time**: members per tier at the end of each day, ISO week or calendar month of the
  range (a running sum: each member enters in their first tier when they register, each change moves one
  member from ``from_tier`` to ``to_tier``).
* **Flows**: each member's tier at the end of the first day against the end of the second; members who joined
  in between come from ``joined`` (:data:`JOINED`).
* **Time to reach a tier**: for members who first reached at least that tier (a change to it or higher) in the
  date range, days from registration to that change: median and quartiles.
* **Retention and spend by tier** (tier at the start of the range, members registered before it): *active* =
  a completed order in the range; *spend per member* = their net sales in the range / members of the tier;
  *retention* = members who bought in both the previous period of equal length and this one / members who
  bought in the previous period. The channel filter decides which orders count.
* **Next threshold**: spend so far towards the next evaluation (the twelve calendar months ending with the
  range's last month, up to its last day, gross, completed orders, every channel) against the threshold of
  the tier above the member's tier on the last day; *spend still needed* = that threshold - spend, in bins of
  a tenth of the threshold; *near* = at least 80% of the way (the "Tier upgrade near" tag's rule); *qualifies*:
  spend has already reached it (the member moves up at the next evaluation). The top tier has no next.
* **Sales per tier**: net sales of the range's completed orders by the tier the member held when ordering
  (guests: ``guest``); the channel filter applies.

The tier filter is not applied here (tiers are what is analysed). Everything is SQL; only aggregates return.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Double,
    Numeric,
    Subquery,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    union_all,
)

from analytics.errors import InputError
from analytics.filters import Filters
from analytics.i18n import N_, _
from analytics.programme import TIER_THRESHOLDS, next_evaluation_months
from analytics.sqlparts import GRAINS, Grain, count_if, date_trunc
from analytics.storage.contract import TIERS, members, orders, tier_changes
from analytics.storage.db import Bind, read_frame
from analytics.tags import TIER_UPGRADE_NEAR_PERCENT

UNKNOWN = "unknown"
GUEST = "guest"
#: Where the members who joined between the two days of a flow come from.
JOINED = "joined"
#: Every tier label an analysis may return, in display order.
TIER_ORDER: tuple[str, ...] = (*TIERS, UNKNOWN)
#: Bins of "spend still needed": each a tenth of the next tier's threshold.
GAP_BINS = 10
#: The bin of members whose spend already reaches the next threshold.
QUALIFIES = -1

TIER_HELP: dict[str, str] = {
    "tier_at": N_("A member's tier on a day comes from the tier changes: the tier their first change after that day "
                  "started from; with no later change, their current tier."),
    "over_time": N_("Members per tier at the end of each day, week or month (members count from registration)."),
    "flows": N_("Each member's tier at the end of the first day against the end of the second; members who joined "
                "in between come from 'joined'."),
    "time_to_tier": N_("Members who first reached at least this tier in the date range: days from registration to "
                       "the tier change (median and quartiles)."),
    "retention": N_("Tier at the start of the range. Active: a completed order in the range. Spend per member: their "
                    "net sales in the range / members of the tier. Retention: bought in the previous period of equal "
                    "length and again in this one / bought in the previous period."),
    "gap": N_("Spend still needed to reach the next tier at the next monthly evaluation: its threshold minus the "
              "gross spend on completed orders so far in the twelve months that evaluation counts (those ending with "
              "the range's last month). Near: at least {near}% of the way. Qualifies: already reached, moves up at "
              "the next evaluation."),
    "sales": N_("Net sales of completed orders in the range by the tier the member held when ordering; guest orders "
                "apart."),
}


def tier_help(key: str) -> str:
    """A definition of :data:`TIER_HELP` in the reader's language, its figures filled in."""
    return _(TIER_HELP[key]).format(near=TIER_UPGRADE_NEAR_PERCENT)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time())


def day_end(day: date) -> datetime:
    """Midnight after ``day`` (exclusive end)."""
    return datetime.combine(day + timedelta(days=1), time())


def days_between(later: Any, earlier: Any) -> Any:
    """Days from ``earlier`` to ``later`` (timestamps), as a float."""
    return (cast(extract("epoch", later), Double) - cast(extract("epoch", earlier), Double)) / 86400.0


def tier_rank(tier: Any) -> Any:
    """0, 1, 2 ... for the programme's tiers in order; -1 for anything else."""
    return case(*((tier == t, i) for i, t in enumerate(TIERS)), else_=-1)


#: Tier ranks are packed beside a time as ``epoch seconds × PACK + rank`` (rank :data:`PACK` - 1 = unknown), so
#: "the tier of a member's first change after a moment" is one MIN per member: no window, no sort.
PACK = 8


def _packed(at: Any, tier: Any) -> Any:
    rank = case(*((tier == t, i) for i, t in enumerate(TIERS)), else_=PACK - 1)
    return cast(extract("epoch", at), BigInteger) * PACK + rank


def _unpacked(packed: Any) -> Any:
    """The tier a packed value carries (NULL stays NULL)."""
    return case(*((packed % PACK == i, t) for i, t in enumerate(TIERS)), (packed.is_not(None), UNKNOWN))


def tiers_at(moments: Sequence[datetime], name: str = "tiers_at") -> Subquery:
    """``member_id, registered_at, tier_0, tier_1 ...``: each member's tier at each of ``moments`` (see the module
    docstring), for the members registered before the last of them. One aggregation of the tier changes after the
    earliest moment (for a recent moment, few rows), joined to ``members``."""
    if not moments:
        raise InputError(_("Tiers at no moment: give at least one."))
    tc, m = tier_changes.c, members.c
    packed = _packed(tc.changed_at, tc.from_tier)
    firsts = (select(tc.member_id, *(func.min(case((tc.changed_at >= moment, packed))).label(f"p{i}")
                                     for i, moment in enumerate(moments)))
              .where(tc.changed_at >= min(moments)).group_by(tc.member_id).subquery(f"{name}_next_change"))
    return (select(m.member_id, m.registered_at,
                   *(func.coalesce(_unpacked(firsts.c[f"p{i}"]), m.tier, UNKNOWN).label(f"tier_{i}")
                     for i in range(len(moments))))
            .select_from(members.outerjoin(firsts, firsts.c.member_id == m.member_id))
            .where(m.registered_at < max(moments)).subquery(name))


def tier_at(moment: datetime, name: str = "tier_at") -> Subquery:
    """``member_id, tier`` of every member registered before ``moment``, as of ``moment``."""
    held = tiers_at([moment], f"{name}_all")
    return select(held.c.member_id, held.c.tier_0.label("tier")).subquery(name)


def tier_when(rows: Subquery, lo: datetime, hi: datetime) -> tuple[Any, Any]:
    """Join ``rows`` (with ``member_id`` and ``at``, all in ``[lo, hi)``) to the tier each member held at ``at``:
    ``(from clause, tier expression)``; guests (no member) are ``guest``. The spans come from the changes after
    ``lo`` only: a span ends at a change and holds its ``from_tier``; after a member's last change, their
    current tier."""
    tc = tier_changes.c
    later = (select(tc.member_id, tc.from_tier.label("tier"), tc.changed_at.label("valid_to"),
                    func.lag(tc.changed_at).over(partition_by=tc.member_id, order_by=tc.changed_at)
                    .label("valid_from")).where(tc.changed_at > lo).subquery("later_changes"))
    spans = select(later).where(or_(later.c.valid_from.is_(None), later.c.valid_from < hi)).subquery("tier_spans")
    s, r = spans.c, rows.c
    joined = (rows.outerjoin(spans, and_(s.member_id == r.member_id, or_(s.valid_from.is_(None), s.valid_from <= r.at),
                                         r.at < s.valid_to))
              .outerjoin(members, members.c.member_id == r.member_id))
    tier = case((r.member_id.is_(None), GUEST), else_=func.coalesce(s.tier, members.c.tier, UNKNOWN))
    return joined, tier


def periods(filters: Filters, grain: Grain) -> pd.DatetimeIndex:
    """The starts of the days, ISO weeks or calendar months the range touches."""
    if grain not in GRAINS:
        raise InputError(_("Unknown grain {grain}; choose day, week or month.").format(grain=repr(grain)))
    start = pd.Timestamp(filters.start)
    if grain == "week":
        return pd.date_range(start - pd.Timedelta(days=start.weekday()), pd.Timestamp(filters.end), freq="7D")
    if grain == "month":
        return pd.date_range(start.replace(day=1), pd.Timestamp(filters.end), freq="MS")
    return pd.date_range(start, pd.Timestamp(filters.end), freq="D")


def _ordered(frame: pd.DataFrame, column: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    order = {t: i for i, t in enumerate((*extra, *TIER_ORDER, GUEST))}
    return frame.sort_values(column, key=lambda s: s.map(lambda t: order.get(t, len(order))),
                             kind="stable").reset_index(drop=True)


# ---- members per tier over time ------------------------------------------------------------------------------------

def tier_counts_over_time(bind: Bind, filters: Filters, grain: Grain = "month") -> pd.DataFrame:
    """Members per tier at the end of each period of the range: ``period_start, tier, members`` (every period and
    every tier present in the data, zero where none). One statement: registrations and changes as +1/-1 per tier,
    summed per period; the running sum is taken here over those few rows."""
    grid = periods(filters, grain)
    tc, m = tier_changes.c, members.c
    first = (select(tc.member_id, func.min(_packed(tc.changed_at, tc.from_tier)).label("packed"))
             .group_by(tc.member_id).subquery("first_change"))
    hi = filters.end_ts
    start_tier = func.coalesce(_unpacked(first.c.packed), m.tier, UNKNOWN)
    joins = (select(m.registered_at.label("at"), start_tier.label("tier"), literal(1).label("delta"))
             .select_from(members.outerjoin(first, first.c.member_id == m.member_id))
             .where(m.registered_at < hi))
    ups = select(tc.changed_at, tc.to_tier, literal(1)).where(tc.changed_at < hi)
    downs = select(tc.changed_at, func.coalesce(tc.from_tier, UNKNOWN), literal(-1)).where(tc.changed_at < hi)
    moves = union_all(joins, ups, downs).subquery("tier_moves")
    bucketed = select(date_trunc(grain, moves.c.at).label("period_start"), moves.c.tier, moves.c.delta
                      ).subquery("bucketed")
    b = bucketed.c
    deltas = read_frame(bind, select(b.period_start, b.tier, func.sum(b.delta).label("delta"))
                        .group_by(b.period_start, b.tier))
    tiers = [t for t in TIER_ORDER if t in set(deltas["tier"])] + sorted(set(deltas["tier"]) - set(TIER_ORDER))
    if deltas.empty:
        return pd.DataFrame({"period_start": pd.Series(dtype="datetime64[us]"), "tier": pd.Series(dtype=object),
                             "members": pd.Series(dtype="int64")})
    deltas["period_start"] = pd.to_datetime(deltas["period_start"]).dt.normalize()
    wide = deltas.pivot_table(index="period_start", columns="tier", values="delta", aggfunc="sum").fillna(0)
    running = wide.sort_index().cumsum()
    aligned = running.reindex(running.index.union(grid)).ffill().reindex(grid).fillna(0).astype("int64")
    aligned.index.name = "period_start"
    long = aligned[tiers].reset_index().melt(id_vars="period_start", var_name="tier", value_name="members")
    return long.astype({"members": "int64"})


def tier_count_change(counts: pd.DataFrame) -> pd.DataFrame:
    """From :func:`tier_counts_over_time`: ``tier, first, last, change`` (members at the end of the first and the
    last period), tiers in order."""
    if counts.empty:
        return pd.DataFrame(columns=["tier", "first", "last", "change"])
    ends = counts.pivot_table(index="tier", columns="period_start", values="members", aggfunc="sum")
    out = pd.DataFrame({"first": ends.iloc[:, 0], "last": ends.iloc[:, -1]}).astype("int64").reset_index()
    out["change"] = out["last"] - out["first"]
    return _ordered(out, "tier")


# ---- flows ---------------------------------------------------------------------------------------------------------

def tier_flows(bind: Bind, before: date, after: date) -> pd.DataFrame:
    """Members by their tier at the end of ``before`` and of ``after``: ``from_tier, to_tier, members`` (members who
    joined in between come from :data:`JOINED`); only pairs with members, in tier order."""
    if after < before:
        raise InputError(_("The second day ({after}) is before the first ({before}).").format(after=after,
                                                                                             before=before))
    first, second = day_end(before), day_end(after)
    held = tiers_at([first, second], "tiers_compared")
    pairs = select(case((held.c.registered_at < first, held.c.tier_0), else_=JOINED).label("from_tier"),
                   held.c.tier_1.label("to_tier")).subquery("pairs")
    frame = read_frame(bind, select(pairs.c.from_tier, pairs.c.to_tier, func.count().label("members"))
                       .group_by(pairs.c.from_tier, pairs.c.to_tier))
    frame = frame.astype({"members": "int64"})
    order = {t: i for i, t in enumerate((JOINED, *TIER_ORDER))}
    key = frame["from_tier"].map(lambda t: order.get(t, 99)) * 100 + frame["to_tier"].map(lambda t: order.get(t, 99))
    return frame.assign(_key=key).sort_values("_key").drop(columns="_key").reset_index(drop=True)


def flow_matrix(flows: pd.DataFrame) -> pd.DataFrame:
    """The flows as a matrix: rows ``from_tier``, columns ``to_tier``, zeros where no member moved."""
    rows = [t for t in (JOINED, *TIER_ORDER) if t in set(flows["from_tier"])]
    columns = [t for t in TIER_ORDER if t in set(flows["to_tier"])]
    return (flows.pivot_table(index="from_tier", columns="to_tier", values="members", aggfunc="sum")
            .reindex(index=rows, columns=columns).fillna(0).astype("int64"))


def flow_summary(flows: pd.DataFrame) -> dict[str, int]:
    """Members who ``joined``, moved ``up``, moved ``down`` or ``stayed`` (an unknown tier counts as stayed)."""
    rank = {t: i for i, t in enumerate(TIERS)}
    a, b = flows["from_tier"].map(rank), flows["to_tier"].map(rank)
    joined = flows["from_tier"] == JOINED
    up, down = ~joined & (b > a), ~joined & (b < a)
    n = flows["members"]
    return {"joined": int(n[joined].sum()), "up": int(n[up].sum()), "down": int(n[down].sum()),
            "stayed": int(n[~joined & ~up & ~down].sum())}


# ---- time to reach a tier ------------------------------------------------------------------------------------------

def time_to_tier(bind: Bind, filters: Filters) -> pd.DataFrame:
    """Per tier above the lowest: ``tier, members`` (who first reached at least it in the range),
    ``median_days, p25_days, p75_days`` from registration. The first time each member reached each level is one
    aggregation of the changes; the levels are then one column, so a single grouping computes every percentile."""
    tc, m = tier_changes.c, members.c
    firsts = (select(tc.member_id, *(func.min(case((tier_rank(tc.to_tier) >= i, tc.changed_at))).label(f"r{i}")
                                     for i in range(1, len(TIERS))))
              .where(tc.changed_at < filters.end_ts).group_by(tc.member_id).subquery("first_reached"))
    levels = union_all(*(select(literal(i).label("level")) for i in range(1, len(TIERS)))).subquery("levels")
    reached = case(*((levels.c.level == i, firsts.c[f"r{i}"]) for i in range(1, len(TIERS))))
    rows = (select(levels.c.level, days_between(reached, m.registered_at).label("days"))
            .select_from(firsts.join(members, m.member_id == firsts.c.member_id).join(levels, literal(True)))
            .where(reached >= filters.start_ts, reached < filters.end_ts).subquery("reach_days"))
    r = rows.c
    frame = read_frame(bind, select(r.level, func.count().label("members"),
                                    *(func.percentile_cont(q).within_group(r.days).label(name)
                                      for q, name in ((0.5, "median_days"), (0.25, "p25_days"), (0.75, "p75_days"))))
                       .group_by(r.level))
    found = frame.set_index(frame["level"].astype("int64"))
    out = pd.DataFrame({"tier": list(TIERS[1:])}, index=range(1, len(TIERS)))
    out["members"] = found["members"].reindex(out.index).fillna(0).astype("int64")
    for column in ("median_days", "p25_days", "p75_days"):
        out[column] = found[column].reindex(out.index).astype("float64")
    return out.reset_index(drop=True)


# ---- retention and spend by tier -----------------------------------------------------------------------------------

def _member_orders(filters: Filters, lo: datetime) -> list[Any]:
    o = orders.c
    conditions = [o.member_id.is_not(None), o.status == "completed", o.ordered_at >= lo, o.ordered_at < filters.end_ts]
    if filters.channels:
        conditions.append(o.channel.in_(filters.channels))
    return conditions


def tier_performance(bind: Bind, filters: Filters) -> pd.DataFrame:
    """Per tier held at the start of the range: ``tier, members, active, active_share, net_sales,
    spend_per_member, spend_per_active, previous_active, retained, retention`` (see the module docstring)."""
    o = orders.c
    start = filters.start_ts
    in_cur = o.ordered_at >= start
    per_member = (select(o.member_id, count_if(in_cur).label("n_cur"), count_if(~in_cur).label("n_prev"),
                         func.sum(case((in_cur, o.net_amount), else_=0)).label("net_cur"))
                  .where(*_member_orders(filters, filters.previous().start_ts)).group_by(o.member_id)
                  .subquery("per_member"))
    held = tier_at(start, "tier_at_start")
    p = per_member.c
    bought_now, bought_before = func.coalesce(p.n_cur, 0) > 0, func.coalesce(p.n_prev, 0) > 0
    frame = read_frame(bind, select(held.c.tier, func.count().label("members"), count_if(bought_now).label("active"),
                                    cast(func.coalesce(func.sum(p.net_cur), 0), Double).label("net_sales"),
                                    count_if(bought_before).label("previous_active"),
                                    count_if(and_(bought_now, bought_before)).label("retained"))
                       .select_from(held.outerjoin(per_member, p.member_id == held.c.member_id))
                       .group_by(held.c.tier))
    frame = frame.astype({"members": "int64", "active": "int64", "previous_active": "int64", "retained": "int64",
                          "net_sales": "float64"})
    frame["active_share"] = frame["active"] / frame["members"]
    frame["spend_per_member"] = frame["net_sales"] / frame["members"]
    frame["spend_per_active"] = frame["net_sales"] / frame["active"].where(frame["active"] > 0)
    frame["retention"] = frame["retained"] / frame["previous_active"].where(frame["previous_active"] > 0)
    columns = ["tier", "members", "active", "active_share", "net_sales", "spend_per_member", "spend_per_active",
               "previous_active", "retained", "retention"]
    return _ordered(frame[columns], "tier")


# ---- spend still needed for the next tier --------------------------------------------------------------------------

def _threshold(tier: str) -> Any:
    return literal(Decimal(str(TIER_THRESHOLDS[tier])), Numeric(14, 2))


def upgrade_gap(bind: Bind, filters: Filters) -> pd.DataFrame:
    """Members by tier on the range's last day and bin of spend still needed for the next tier: ``tier, next_tier,
    bin`` (0 .. 9: needed in [bin, bin + 1) tenths of the next threshold; :data:`QUALIFIES` = already reached)
    ``, needed_from, needed_to`` (money), ``members, near`` (within the last 20%); top-tier members are left out.
    Needed is never more than the threshold (spend is never negative): the last bin includes it."""
    o = orders.c
    since = day_start(next_evaluation_months(filters.end)[0])
    spend = (select(o.member_id, func.sum(o.gross_amount).label("spend"))
             .where(o.member_id.is_not(None), o.status == "completed", o.ordered_at >= since,
                    o.ordered_at < filters.end_ts).group_by(o.member_id).subquery("evaluation_spend"))
    held = tier_at(filters.end_ts, "tier_at_end")
    tier = held.c.tier
    threshold = case(*((tier == t, _threshold(above)) for t, above in pairwise(TIERS)))
    spent = func.coalesce(spend.c.spend, 0)
    needed = threshold - spent
    gaps = (select(tier.label("tier"), case((needed <= 0, QUALIFIES),
                                           else_=func.least(cast(func.floor(needed * GAP_BINS / threshold), Double),
                                                            GAP_BINS - 1)).label("bin"),
                   case((and_(spent * 100 >= threshold * TIER_UPGRADE_NEAR_PERCENT, needed > 0), 1), else_=0)
                   .label("near"))
            .select_from(held.outerjoin(spend, spend.c.member_id == held.c.member_id))
            .where(threshold.is_not(None)).subquery("gaps"))
    g = gaps.c
    frame = read_frame(bind, select(g.tier, g.bin, func.count().label("members"), func.sum(g.near).label("near"))
                       .group_by(g.tier, g.bin))
    frame = frame.astype({"bin": "int64", "members": "int64", "near": "int64"})
    following = dict(pairwise(TIERS))
    frame.insert(1, "next_tier", frame["tier"].map(following))
    top = frame["next_tier"].map(TIER_THRESHOLDS)
    frame["needed_from"] = (frame["bin"].clip(lower=0) * top / GAP_BINS).where(frame["bin"] >= 0, 0.0)
    frame["needed_to"] = ((frame["bin"] + 1) * top / GAP_BINS).where(frame["bin"] >= 0, 0.0)
    frame = frame[["tier", "next_tier", "bin", "needed_from", "needed_to", "members", "near"]]
    return _ordered(frame.sort_values("bin"), "tier")


def gap_summary(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per tier with a next tier: ``tier, next_tier, threshold, members, near, near_share, qualifies``."""
    grouped = gaps.groupby(["tier", "next_tier"], sort=False).agg(members=("members", "sum"), near=("near", "sum"))
    qualifies = gaps[gaps["bin"] == QUALIFIES].groupby("tier")["members"].sum()
    out = grouped.reset_index()
    out.insert(2, "threshold", out["next_tier"].map(TIER_THRESHOLDS).astype("float64"))
    out["near_share"] = out["near"] / out["members"]
    out["qualifies"] = out["tier"].map(qualifies).fillna(0).astype("int64")
    return _ordered(out, "tier")


# ---- sales per tier ------------------------------------------------------------------------------------------------

def sales_by_tier(bind: Bind, filters: Filters) -> pd.DataFrame:
    """Per tier held when ordering (guests apart): ``tier, orders, buyers, net_sales, sales_share, aov``."""
    o = orders.c
    conditions = [o.status == "completed", o.ordered_at >= filters.start_ts, o.ordered_at < filters.end_ts]
    if filters.channels:
        conditions.append(o.channel.in_(filters.channels))
    rows = select(o.member_id, o.ordered_at.label("at"), o.net_amount).where(*conditions).subquery("range_orders")
    joined, tier = tier_when(rows, filters.start_ts, filters.end_ts)
    tagged = select(tier.label("tier"), rows.c.member_id, rows.c.net_amount).select_from(joined).subquery("tagged")
    t = tagged.c
    frame = read_frame(bind, select(t.tier, func.count().label("orders"), func.count(t.member_id.distinct())
                                    .label("buyers"), cast(func.sum(t.net_amount), Double).label("net_sales"))
                       .group_by(t.tier))
    frame = frame.astype({"orders": "int64", "buyers": "int64", "net_sales": "float64"})
    # fsum: exact, so the shares do not depend on the order the warehouse returns the groups in (a plain sum's last
    # digit did, and the command line's output changed from run to run)
    frame["sales_share"] = frame["net_sales"] / math.fsum(frame["net_sales"]) if len(frame) else 0.0
    frame["aov"] = frame["net_sales"] / frame["orders"]
    return _ordered(frame[["tier", "orders", "buyers", "net_sales", "sales_share", "aov"]], "tier")
