"""Executive KPIs: one definition of each, computed in the warehouse.

Every KPI below is defined once, in :data:`KPIS`; the definition text is what the app shows as
help and what README points to. All arithmetic runs as SQL (SQLAlchemy Core, portable between
DuckDB and PostgreSQL); Python receives a handful of aggregate rows and only arranges them.

Periods are whole days: ``start`` and ``end`` are inclusive dates, compared as
``start 00:00 <= timestamp < (end + 1 day) 00:00`` in the shop's local time. The comparison period
is the one of equal length that ends the day before ``start``.

Filters: the channel filter keeps orders of the chosen sales channels; the tier filter keeps
members whose *current* tier is one of those chosen (guests and anonymous visitors drop out). KPIs
that have no sales channel (new members, session conversion, points liability) ignore the channel
filter and say so in their definition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Double,
    Result,
    Select,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
)

from analytics.campaign_results import DEFAULT_MARGIN, campaign_totals, results_from_totals, roi_of_periods, roi_trend
from analytics.errors import InputError
from analytics.filters import Filters, completed_order_conditions, member_conditions, member_table_conditions
from analytics.programme import POINTS_PER_CURRENCY_UNIT
from analytics.sqlparts import GRAINS, Grain, count_if, date_trunc, sum_if
from analytics.storage.contract import events, members, orders, points_ledger
from analytics.storage.db import Bind, connection

Breakdown = Literal["channel", "tier"]
Unit = Literal["currency", "count", "ratio", "points"]
BREAKDOWNS: tuple[str, ...] = ("channel", "tier")
GUEST_LABEL = "guest"
UNKNOWN_LABEL = "unknown"


@dataclass(frozen=True)
class KpiDefinition:
    key: str
    label: str
    unit: Unit
    definition: str
    uses_channel_filter: bool = True

    @property
    def is_ratio(self) -> bool:
        return self.unit == "ratio"


KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition("net_sales", "Net sales (GMV)", "currency",
                  "Sum of the net amount (after discounts, coupons and points) of completed orders placed "
                  "in the period, by members and guests. Cancelled and returned orders are excluded."),
    KpiDefinition("orders", "Orders", "count", "Number of completed orders placed in the period."),
    KpiDefinition("aov", "Average order value", "currency",
                  "Net sales ÷ orders: the average net amount of a completed order in the period."),
    KpiDefinition("active_members", "Active members", "count",
                  "Members with at least one completed order in the period."),
    KpiDefinition("new_members", "New members", "count",
                  "Members who registered in the period. Not affected by the channel filter.",
                  uses_channel_filter=False),
    KpiDefinition("repurchase_rate", "Repurchase rate", "ratio",
                  "Share of active members who placed two or more completed orders in the period."),
    KpiDefinition("member_sales_share", "Member sales share", "ratio",
                  "Net sales from members' orders ÷ all net sales; the rest comes from guest orders."),
    KpiDefinition("session_conversion", "Session conversion", "ratio",
                  "Sessions with a purchase ÷ sessions started: distinct sessions with a purchase event in "
                  "the period ÷ session_start events in the period (anonymous sessions included unless a "
                  "tier is chosen). Not affected by the channel filter: the clickstream carries no sales "
                  "channel.",
                  uses_channel_filter=False),
    KpiDefinition("points_liability", "Points liability", "points",
                  "Points outstanding at the end of the period: everything earned or granted minus what "
                  f"was redeemed or expired, from the points ledger ({POINTS_PER_CURRENCY_UNIT} points = 1 "
                  "unit of currency). Not affected by the channel filter.",
                  uses_channel_filter=False),
    KpiDefinition("points_liability_value", "Points liability (money)", "currency",
                  f"Points liability at the end of the period in money, at {POINTS_PER_CURRENCY_UNIT} points per "
                  "unit of currency: what the outstanding points would cost if all were redeemed. Not affected by "
                  "the channel filter.",
                  uses_channel_filter=False),
    KpiDefinition("campaign_roi", "Campaign ROI (realised)", "ratio",
                  "Realised return of the campaigns that started in the period, treatment against holdout control: "
                  f"(incremental revenue × {DEFAULT_MARGIN:.0%} margin − coupon cost) ÷ coupon cost, where "
                  "incremental revenue = treatment members × (revenue per treated member − revenue per control "
                  "member) and coupon cost = coupon value × coupons redeemed (see Campaign results). Message costs "
                  "are not in the warehouse and not counted; empty when no coupon was redeemed. Not affected by the "
                  "channel or tier filters (a campaign's channel is its message channel).",
                  uses_channel_filter=False),
)
KPI_BY_KEY: dict[str, KpiDefinition] = {k.key: k for k in KPIS}


@dataclass(frozen=True)
class KpiValue:
    definition: KpiDefinition
    current: float | None
    previous: float | None

    @property
    def change(self) -> float | None:
        """Absolute change (percentage points ×0.01 for ratios)."""
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous

    @property
    def change_pct(self) -> float | None:
        """Relative change against the previous period; None when the previous value is zero."""
        if self.change is None or not self.previous:
            return None
        return self.change / abs(self.previous)


@dataclass(frozen=True)
class KpiSummary:
    filters: Filters
    values: tuple[KpiValue, ...]

    def __getitem__(self, key: str) -> KpiValue:
        return next(v for v in self.values if v.definition.key == key)

    @property
    def is_empty(self) -> bool:
        """True when nothing happened in the period: no orders, sessions or registrations."""
        return not any(self[k].current for k in ("orders", "new_members")) and not self._sessions

    @property
    def _sessions(self) -> bool:
        return self["session_conversion"].current is not None

    def to_frame(self) -> pd.DataFrame:
        prev = self.filters.previous()
        return pd.DataFrame(
            [{
                "kpi": v.definition.key, "label": v.definition.label, "unit": v.definition.unit,
                "current": v.current, "previous": v.previous, "change": v.change, "change_pct": v.change_pct,
                "start": self.filters.start, "end": self.filters.end,
                "previous_start": prev.start, "previous_end": prev.end,
            } for v in self.values]
        )


# --- SQL building blocks --------------------------------------------------------------------
#
# The page's cost is dominated by two scans: orders of both periods (grouped once per member, which
# active members and repurchase need) and the clickstream. Each helper below reads its table once
# for the current *and* the previous period, with conditional aggregates rather than one query per
# period.


def _ratio(numerator: ColumnElement, denominator: ColumnElement) -> ColumnElement:
    return cast(numerator, Double) / func.nullif(cast(denominator, Double), 0)


def _order_kpis(filters: Filters, by_tier: bool) -> Select:
    """Order KPIs of both periods in one pass: per member first, then (optionally) per tier.

    Guests' orders form one group whose member_id is NULL. With ``by_tier`` the rows are per
    member tier (guests as ``guest``, members without a known tier as ``unknown``) plus a grand-total
    row whose ``is_total`` is 1 (ROLLUP), each with its share of net sales and its change against the
    previous period; without it there is only the total row.
    """
    o = orders.c
    prev = filters.previous()
    cur_start = filters.start_ts
    in_cur = o.ordered_at >= cur_start
    per_member = (
        select(
            o.member_id,
            count_if(in_cur).label("n_cur"),
            count_if(~in_cur).label("n_prev"),
            sum_if(in_cur, o.net_amount).label("net_cur"),
            sum_if(~in_cur, o.net_amount).label("net_prev"),
        )
        .where(*completed_order_conditions(filters, prev.start_ts, filters.end_ts))
        .group_by(o.member_id)
        .subquery("per_member")
    )
    pm = per_member.c
    is_member = pm.member_id.is_not(None)
    columns = []
    for period in ("cur", "prev"):
        n, net = pm[f"n_{period}"], pm[f"net_{period}"]
        total_n = func.sum(n)
        active = count_if(and_(is_member, n > 0))
        columns += [
            cast(func.sum(net), Double).label(f"net_sales_{period}"),
            cast(total_n, BigInteger).label(f"orders_{period}"),
            _ratio(func.sum(net), total_n).label(f"aov_{period}"),
            cast(active, BigInteger).label(f"active_members_{period}"),
            _ratio(count_if(and_(is_member, n >= 2)), active).label(f"repurchase_rate_{period}"),
            _ratio(sum_if(is_member, net), func.sum(net)).label(f"member_sales_share_{period}"),
        ]
    if not by_tier:
        return select(null().label("dim"), literal(1).label("is_total"), *columns)
    dim = case((pm.member_id.is_(None), GUEST_LABEL), else_=func.coalesce(members.c.tier, UNKNOWN_LABEL))
    grouped = (
        select(dim.label("dim"), func.grouping(dim).label("is_total"), *columns)
        .select_from(per_member.outerjoin(members, members.c.member_id == pm.member_id))
        .group_by(func.rollup(dim))
        .subquery("by_tier")
    )
    total = func.max(case((grouped.c.is_total == 1, grouped.c.net_sales_cur))).over()
    return _with_share_and_change(grouped, total)


def _with_share_and_change(grouped: Subquery, total_sales: ColumnElement) -> Select:
    """Add each row's share of the period's net sales and its change against the previous period,
    largest first (ties by name, so the order is stable)."""
    g = grouped.c
    current = func.coalesce(g.net_sales_cur, 0)  # a row with only previous sales fell by 100%
    return select(
        *g,
        _ratio(current, total_sales).label("sales_share"),
        _ratio(current - g.net_sales_prev, g.net_sales_prev).label("net_sales_change_pct"),
    ).order_by(current.desc(), g.dim)


def _channel_kpis(filters: Filters) -> Select:
    """Net sales, orders and AOV per sales channel, both periods (channel is an order attribute,
    so no per-member pass is needed)."""
    o = orders.c
    in_cur = o.ordered_at >= filters.start_ts
    columns = []
    for period, cond in (("cur", in_cur), ("prev", ~in_cur)):
        columns += [
            cast(sum_if(cond, o.net_amount), Double).label(f"net_sales_{period}"),
            cast(count_if(cond), BigInteger).label(f"orders_{period}"),
            _ratio(sum_if(cond, o.net_amount), count_if(cond)).label(f"aov_{period}"),
        ]
    dim = func.coalesce(o.channel, UNKNOWN_LABEL)
    grouped = (
        select(dim.label("dim"), *columns)
        .where(*completed_order_conditions(filters, filters.previous().start_ts, filters.end_ts))
        .group_by(dim)
        .subquery("by_channel")
    )
    return _with_share_and_change(grouped, func.sum(grouped.c.net_sales_cur).over())


def _new_members(filters: Filters) -> Select:
    m = members.c
    in_cur = m.registered_at >= filters.start_ts
    conditions = [m.registered_at >= filters.previous().start_ts, m.registered_at < filters.end_ts]
    conditions += member_table_conditions(filters)
    return select(
        cast(count_if(in_cur), BigInteger).label("new_members_cur"),
        cast(count_if(~in_cur), BigInteger).label("new_members_prev"),
    ).where(*conditions)


def _event_counts(filters: Filters, event_type: str, lo: datetime, hi: datetime, dim: ColumnElement,
                  distinct_sessions: bool) -> Select:
    """Events of one type (or the distinct sessions having one) per ``dim`` value."""
    e = events.c
    conditions = [e.event_type == event_type, e.occurred_at >= lo, e.occurred_at < hi]
    conditions += member_conditions(filters, e.member_id)
    base = select(dim.label("dim"), e.session_id).where(*conditions).subquery("typed_events")
    count = func.count(base.c.session_id.distinct()) if distinct_sessions else func.count()
    return select(base.c.dim, cast(count, BigInteger).label("n")).group_by(base.c.dim)


def _session_conversion(filters: Filters, dim_of: Callable[[ColumnElement], ColumnElement],
                        lo: datetime, hi: datetime) -> Select:
    """Sessions started (``session_start`` events) and the conversion rate (distinct sessions with a
    ``purchase`` event ÷ sessions started), per ``dim_of(occurred_at)``: each side reads only its
    own event type, which the events table's sort key keeps together."""
    at = events.c.occurred_at
    started = _event_counts(filters, "session_start", lo, hi, dim_of(at), distinct_sessions=False).subquery("started")
    converted = _event_counts(filters, "purchase", lo, hi, dim_of(at), distinct_sessions=True).subquery("converted")
    return select(
        started.c.dim,
        started.c.n.label("sessions"),
        _ratio(func.coalesce(converted.c.n, 0), started.c.n).label("session_conversion"),
    ).select_from(started.outerjoin(converted, converted.c.dim == started.c.dim))


def _points_outstanding(filters: Filters) -> Select:
    """Points outstanding at the end of the period and of the previous one."""
    lg = points_ledger.c
    conditions = [lg.occurred_at < filters.end_ts]
    conditions += member_conditions(filters, lg.member_id)
    return select(
        cast(func.coalesce(func.sum(lg.delta), 0), BigInteger).label("points_liability_cur"),
        cast(func.coalesce(sum_if(lg.occurred_at < filters.start_ts, lg.delta), 0),
             BigInteger).label("points_liability_prev"),
    ).where(*conditions)


# --- public API ------------------------------------------------------------------------------

def kpi_summary(bind: Bind, filters: Filters) -> KpiSummary:
    """Every executive KPI for the period and the previous period of equal length."""
    with connection(bind) as conn:
        return _summary(conn, filters, conn.execute(_order_kpis(filters, by_tier=False)).mappings().one())


def _summary(conn: Connection, filters: Filters, order_row: Mapping[str, Any]) -> KpiSummary:
    row: dict[str, Any] = dict(order_row)
    row.update(conn.execute(_new_members(filters)).mappings().one())
    row.update(conn.execute(_points_outstanding(filters)).mappings().one())
    cur_start = filters.start_ts

    def period_of(at: ColumnElement) -> ColumnElement:
        return case((at >= cur_start, "cur"), else_="prev")

    sessions = _session_conversion(filters, period_of, filters.previous().start_ts, filters.end_ts)
    for period, _n, rate in conn.execute(sessions):
        row[f"session_conversion_{period}"] = rate
    for period in ("cur", "prev"):
        row[f"points_liability_value_{period}"] = row[f"points_liability_{period}"] / POINTS_PER_CURRENCY_UNIT
    row["campaign_roi_cur"], row["campaign_roi_prev"] = roi_of_periods(conn, filters)
    return KpiSummary(filters, tuple(
        KpiValue(d, _value(row, f"{d.key}_cur", d), _value(row, f"{d.key}_prev", d)) for d in KPIS
    ))


def _value(row: Mapping[str, Any], column: str, definition: KpiDefinition) -> float | None:
    """A KPI's value: sums and counts are zero over an empty period, ratios and averages empty."""
    value = row.get(column)
    if value is None:
        return None if definition.unit == "ratio" or definition.key == "aov" else 0.0
    return float(value)


def kpi_summary_and_tiers(bind: Bind, filters: Filters) -> tuple[KpiSummary, pd.DataFrame]:
    """The summary and the tier breakdown from a single pass over orders (what the KPI page uses)."""
    with connection(bind) as conn:
        frame = _rows_frame(conn.execute(_order_kpis(filters, by_tier=True)))
        total = frame[frame["is_total"] == 1].iloc[0].to_dict()
        summary = _summary(conn, filters, total)
    return summary, _breakdown_frame(frame[frame["is_total"] == 0], "tier")


def kpi_breakdown(bind: Bind, filters: Filters, by: Breakdown) -> pd.DataFrame:
    """Order KPIs per sales channel or member tier for the period, with the previous period's sales.

    Columns: the dimension (``channel`` or ``tier``; guests appear as tier ``guest``), ``net_sales``,
    ``orders``, ``aov``, ``sales_share`` (of the period's net sales), ``previous_net_sales`` and
    ``net_sales_change_pct``; by tier also ``active_members`` and ``repurchase_rate`` (a member
    has one tier, so buyers add up across tiers; across channels they would not).
    """
    if by not in BREAKDOWNS:
        raise InputError(f"Unknown breakdown {by!r}; choose channel or tier.")
    with connection(bind) as conn:
        if by == "tier":
            frame = _rows_frame(conn.execute(_order_kpis(filters, by_tier=True)))
            frame = frame[frame["is_total"] == 0]
        else:
            frame = _rows_frame(conn.execute(_channel_kpis(filters)))
    return _breakdown_frame(frame, by)


def _rows_frame(result: Result) -> pd.DataFrame:
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _breakdown_frame(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """The breakdown rows as the page and CLI name them (values as computed in SQL)."""
    keep = ["net_sales", "orders", "aov"] + (["active_members", "repurchase_rate"] if by == "tier" else [])
    out = frame.rename(columns={f"{k}_cur": k for k in keep} | {"net_sales_prev": "previous_net_sales",
                                                                  "dim": by})
    columns = [*keep, "sales_share", "previous_net_sales", "net_sales_change_pct"]
    out = out[[by, *columns]].reset_index(drop=True)
    out[columns] = out[columns].apply(pd.to_numeric, errors="coerce").astype("float64")
    out[["net_sales", "orders"]] = out[["net_sales", "orders"]].fillna(0.0)
    return out


def kpi_trend(bind: Bind, filters: Filters, kpi: str, grain: Grain = "day") -> pd.DataFrame:
    """One KPI per day, week or month of the period: columns ``period_start`` and ``value``.

    Buckets are calendar days, ISO weeks (from Monday) or calendar months; the first and last may be
    partial when the range starts or ends inside them. Every bucket is present: counts and sums are
    zero where nothing happened, ratios and averages empty.
    """
    if kpi not in KPI_BY_KEY:
        raise InputError(f"Unknown KPI {kpi!r}; choose one of {', '.join(KPI_BY_KEY)}.")
    if grain not in GRAINS:
        raise InputError(f"Unknown grain {grain!r}; choose day, week or month.")
    lo, hi = filters.start_ts, filters.end_ts
    with connection(bind) as conn:
        if kpi in ("points_liability", "points_liability_value"):
            scale = 1 if kpi == "points_liability" else POINTS_PER_CURRENCY_UNIT
            values = {k: v / scale for k, v in conn.execute(_liability_trend(filters, grain)).all()}
        elif kpi == "campaign_roi":
            trend = roi_trend(results_from_totals(campaign_totals(conn, filters, retention=False)), filters, grain)
            values = dict(zip(trend["period_start"], trend["roi"], strict=True))
        elif kpi == "new_members":
            m = members.c
            conditions = [m.registered_at >= lo, m.registered_at < hi]
            conditions += member_table_conditions(filters)
            bucket = date_trunc(grain, m.registered_at)
            values = dict(conn.execute(_grouped(select(bucket.label("dim")).where(*conditions), func.count())).all())
        elif kpi == "session_conversion":
            statement = _session_conversion(filters, lambda at: date_trunc(grain, at), lo, hi)
            values = {bucket: rate for bucket, _n, rate in conn.execute(statement)}
        else:
            values = dict(conn.execute(_order_trend(filters, kpi, grain)).all())
    grid = _all_buckets(filters, grain)
    series = pd.Series({pd.Timestamp(k).normalize(): (float("nan") if v is None else float(v))
                        for k, v in values.items()}, dtype="float64").sort_index()
    if kpi in ("points_liability", "points_liability_value"):
        # the balance in force in a bucket without ledger rows is that of the latest bucket before it
        aligned = series.reindex(series.index.union(grid)).ffill().reindex(grid).fillna(0.0)
    else:
        aligned = series.reindex(grid)
        if KPI_BY_KEY[kpi].unit != "ratio" and kpi != "aov":
            aligned = aligned.fillna(0.0)
    return pd.DataFrame({"period_start": grid, "value": aligned.to_numpy()})


def _grouped(base: Select, aggregate: ColumnElement) -> Select:
    sub = base.subquery("bucketed")
    return select(sub.c.dim, aggregate).group_by(sub.c.dim)


def _order_trend(filters: Filters, kpi: str, grain: Grain) -> Select:
    """An order KPI per bucket; only active members and repurchase need the per-member pass."""
    o = orders.c
    bucket = date_trunc(grain, o.ordered_at).label("dim")
    base = select(bucket, o.member_id, o.net_amount).where(
        *completed_order_conditions(filters, filters.start_ts, filters.end_ts)).subquery("bucketed")
    b = base.c
    if kpi in ("active_members", "repurchase_rate"):
        per_member = (select(b.dim, b.member_id, func.count().label("n")).where(b.member_id.is_not(None))
                      .group_by(b.dim, b.member_id).subquery("per_member"))
        p = per_member.c
        value = func.count() if kpi == "active_members" else _ratio(count_if(p.n >= 2), func.count())
        return select(p.dim, value).group_by(p.dim)
    value = {
        "net_sales": cast(func.sum(b.net_amount), Double),
        "orders": func.count(),
        "aov": _ratio(func.sum(b.net_amount), func.count()),
        "member_sales_share": _ratio(sum_if(b.member_id.is_not(None), b.net_amount), func.sum(b.net_amount)),
    }[kpi]
    return select(b.dim, value).group_by(b.dim)


def _liability_trend(filters: Filters, grain: Grain) -> Select:
    """Outstanding points at the end of each bucket with ledger rows, up to the end of the period:
    a running sum of the ledger by bucket, from the first entry (so earlier buckets give the
    opening balance)."""
    lg = points_ledger.c
    conditions = [lg.occurred_at < filters.end_ts]
    conditions += member_conditions(filters, lg.member_id)
    base = select(date_trunc(grain, lg.occurred_at).label("dim"), lg.delta).where(*conditions).subquery("base")
    per_bucket = select(base.c.dim, func.sum(base.c.delta).label("delta")).group_by(base.c.dim).subquery("per_bucket")
    return select(
        per_bucket.c.dim,
        cast(func.sum(per_bucket.c.delta).over(order_by=per_bucket.c.dim), BigInteger).label("points"),
    )


def _all_buckets(filters: Filters, grain: Grain) -> pd.DatetimeIndex:
    start = pd.Timestamp(filters.start)
    if grain == "week":
        start = start - pd.Timedelta(days=start.weekday())
        return pd.date_range(start, pd.Timestamp(filters.end), freq="7D")
    if grain == "month":
        return pd.date_range(start.replace(day=1), pd.Timestamp(filters.end), freq="MS")
    return pd.date_range(start, pd.Timestamp(filters.end), freq="D")
