"""Heatmaps computed in the warehouse: cohort retention, activity rhythm, category affinity, browsing hotspots.

Each function returns a tidy frame (one row per cell) that a page pivots and draws; every count and
sum is SQL in the warehouse, portable between DuckDB and PostgreSQL (``CASE`` instead of
``FILTER``, computed expressions grouped through derived tables, bound parameters only).

Definitions:

* **Cohort retention**: members are grouped by the week or month (ISO weeks from Monday, calendar
  months) of their first completed purchase or their registration, for cohorts starting inside the
  date range. Period N is the N-th week or month after the cohort's; a member is *active* in it when
  they completed a purchase then (or, with ``activity="any"``, also had any clickstream event).
  ``share`` = active / cohort size. Period 0 of first-purchase cohorts is 100% by definition.
  Activity is followed up to the end of the data, not only the date range, so older cohorts show
  more periods; the channel filter restricts which purchases count, the tier filter which members.
* **Activity rhythm**: weekday (0 = Monday) x hour of completed orders, net sales or events in the
  range.
* **Affinity**: a group's (tier, region) share of net sales per category, as an index against the
  share of that category in all net sales: 100 = average, 150 = half as much again as average.
* **Browsing hotspots**: events per page x hour (or x event type) in the range.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from sqlalchemy import Date, Integer, and_, cast, distinct, extract, func, literal, select, union

from analytics.db import Bind, read_frame
from analytics.filters import Filters, completed_order_conditions, members_in_tiers
from analytics.schema import events, members, order_items, orders, products
from analytics.sqlparts import date_trunc

CohortBy = Literal["first_purchase", "registration"]
Period = Literal["month", "week"]
COHORTS: tuple[str, ...] = ("first_purchase", "registration")
PERIODS: tuple[str, ...] = ("month", "week")
RHYTHM_MEASURES: tuple[str, ...] = ("orders", "net_sales", "events")
AFFINITY_GROUPS: tuple[str, ...] = ("tier", "region")
RETENTION_COLUMNS = ["cohort", "size", "period", "active", "share"]


def cohort_retention(
    bind: Bind, filters: Filters, cohort: CohortBy = "first_purchase", period: Period = "month",
    activity: Literal["purchase", "any"] = "purchase", max_periods: int = 12,
) -> pd.DataFrame:
    """The cohort table: ``cohort`` (start of its week or month), ``size``, ``period`` (0, 1, ...),
    ``active`` and ``share``; one row per cohort and period up to ``max_periods`` (cells with no
    active member included, with 0)."""
    if cohort not in COHORTS or period not in PERIODS or activity not in ("purchase", "any"):
        raise ValueError("cohort must be first_purchase or registration, period month or week, activity "
                         "purchase or any")
    o, m, e = orders.c, members.c, events.c
    if cohort == "first_purchase":
        starts = (select(o.member_id.label("member_id"), func.min(o.ordered_at).label("at"))
                  .where(o.status == "completed", o.member_id.is_not(None)).group_by(o.member_id))
    else:
        starts = select(m.member_id.label("member_id"), m.registered_at.label("at"))
    starts = starts.subquery("starts")
    in_range = [starts.c.at >= filters.start_ts, starts.c.at < filters.end_ts]
    if filters.tiers:
        in_range.append(starts.c.member_id.in_(members_in_tiers(filters.tiers)))
    cohorts = select(starts.c.member_id, date_trunc(period, starts.c.at).label("cohort")).where(*in_range) \
        .subquery("cohorts")

    bought = [o.status == "completed", o.member_id.is_not(None)]
    if filters.channels:
        bought.append(o.channel.in_(filters.channels))
    active = select(o.member_id.label("member_id"), date_trunc(period, o.ordered_at).label("active")).where(*bought)
    if activity == "any":
        active = union(active, select(e.member_id.label("member_id"), date_trunc(period, e.occurred_at)
                                      .label("active")).where(e.member_id.is_not(None)))
    else:
        active = active.distinct()
    active = active.subquery("active")

    if period == "month":
        offset = (extract("year", active.c.active) - extract("year", cohorts.c.cohort)) * 12 \
            + extract("month", active.c.active) - extract("month", cohorts.c.cohort)
    else:
        offset = (cast(active.c.active, Date) - cast(cohorts.c.cohort, Date)) / 7
    cells = (select(cohorts.c.cohort, cast(offset, Integer).label("period"), cohorts.c.member_id)
             .select_from(cohorts.join(active, and_(active.c.member_id == cohorts.c.member_id,
                                                    active.c.active >= cohorts.c.cohort)))
             .subquery("cells"))
    counts = (select(cells.c.cohort, cells.c.period, func.count(distinct(cells.c.member_id)).label("active"))
              .where(cells.c.period <= max_periods).group_by(cells.c.cohort, cells.c.period))
    sizes = select(cohorts.c.cohort, func.count().label("size")).group_by(cohorts.c.cohort)
    active_frame = read_frame(bind, counts)
    size_frame = read_frame(bind, sizes)
    if size_frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "share" else "int64") for c in RETENTION_COLUMNS})
    size_frame["cohort"] = pd.to_datetime(size_frame["cohort"])
    active_frame["cohort"] = pd.to_datetime(active_frame["cohort"])
    step = pd.DateOffset(months=1) if period == "month" else pd.DateOffset(weeks=1)
    latest = max((c + n * step for c, n in zip(active_frame["cohort"], active_frame["period"], strict=True)),
                 default=pd.Timestamp(filters.start_ts))
    last = max(pd.Timestamp(filters.end_ts) - pd.Timedelta(days=1), latest)  # the range, or later activity
    grid = []
    for cohort_start, size in zip(size_frame["cohort"], size_frame["size"], strict=True):
        steps = pd.date_range(cohort_start, last, freq="MS" if period == "month" else "W-MON")
        for n in range(min(len(steps), max_periods + 1)):
            grid.append((cohort_start, int(size), n))
    table = pd.DataFrame(grid, columns=["cohort", "size", "period"]).merge(
        active_frame.astype({"period": "int64"}), on=["cohort", "period"], how="left")
    table["active"] = table["active"].fillna(0).astype("int64")
    table["share"] = table["active"] / table["size"]
    return table.sort_values(["cohort", "period"], ignore_index=True)[RETENTION_COLUMNS]


def activity_rhythm(bind: Bind, filters: Filters, measure: str = "orders") -> pd.DataFrame:
    """``weekday`` (0 = Monday .. 6 = Sunday) x ``hour`` (0-23) with ``value``: orders, net sales or events."""
    if measure not in RHYTHM_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(RHYTHM_MEASURES)}")
    if measure == "events":
        e = events.c
        conditions = [e.occurred_at >= filters.start_ts, e.occurred_at < filters.end_ts]
        if filters.tiers:
            conditions.append(e.member_id.in_(members_in_tiers(filters.tiers)))
        stamp, value = e.occurred_at, literal(1)
        source = select(stamp.label("at"), value.label("v")).where(*conditions)
    else:
        o = orders.c
        value = literal(1) if measure == "orders" else o.net_amount
        source = select(o.ordered_at.label("at"), value.label("v")).where(
            *completed_order_conditions(filters, filters.start_ts, filters.end_ts))
    rows = source.subquery("rows")
    # EXTRACT(DOW) counts from Sunday = 0 on DuckDB and PostgreSQL alike; shift so Monday = 0.
    cells = select(cast((extract("dow", rows.c.at) + 6) % 7, Integer).label("weekday"),
                   cast(extract("hour", rows.c.at), Integer).label("hour"), rows.c.v).subquery("cells")
    frame = read_frame(bind, select(cells.c.weekday, cells.c.hour, func.sum(cells.c.v).label("value"))
                       .group_by(cells.c.weekday, cells.c.hour))
    grid = pd.MultiIndex.from_product([range(7), range(24)], names=["weekday", "hour"]).to_frame(index=False)
    frame = grid.merge(frame.astype({"weekday": "int64", "hour": "int64"}), how="left", on=["weekday", "hour"])
    frame["value"] = frame["value"].astype("float64").fillna(0.0)
    return frame


def category_affinity(bind: Bind, filters: Filters, by: str = "tier") -> pd.DataFrame:
    """``group`` x ``category`` with ``net_sales``, the group's ``share`` of its sales in the category,
    and ``index`` = 100 x share / the category's share of all sales (100 = average)."""
    if by not in AFFINITY_GROUPS:
        raise ValueError(f"by must be one of {', '.join(AFFINITY_GROUPS)}")
    o, i, p, m = orders.c, order_items.c, products.c, members.c
    group = func.coalesce(m[by], literal("unknown")).label("grp")
    lines = (select(group, func.coalesce(p.category, literal("unknown")).label("category"),
                    i.line_amount.label("amount"))
             .select_from(orders.join(order_items, i.order_id == o.order_id)
                          .join(products, p.product_id == i.product_id)
                          .join(members, m.member_id == o.member_id))
             .where(*completed_order_conditions(filters, filters.start_ts, filters.end_ts)).subquery("lines"))
    frame = read_frame(bind, select(lines.c.grp.label("group"), lines.c.category,
                                    func.sum(lines.c.amount).label("net_sales"))
                       .group_by(lines.c.grp, lines.c.category))
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("group", "category") else "float64")
                             for c in ("group", "category", "net_sales", "share", "index")})
    frame["net_sales"] = frame["net_sales"].astype("float64")
    frame["share"] = frame["net_sales"] / frame.groupby("group")["net_sales"].transform("sum")
    overall = frame.groupby("category")["net_sales"].sum() / frame["net_sales"].sum()
    frame["index"] = 100 * frame["share"] / frame["category"].map(overall)
    return frame.sort_values(["group", "category"], ignore_index=True)


def browsing_hotspots(bind: Bind, filters: Filters, across: str = "hour") -> pd.DataFrame:
    """Events per ``page`` x ``hour`` (0-23) or x ``event_type`` in the date range: ``page``, ``column``, ``events``."""
    if across not in ("hour", "event_type"):
        raise ValueError("across must be hour or event_type")
    e = events.c
    conditions = [e.occurred_at >= filters.start_ts, e.occurred_at < filters.end_ts]
    if filters.tiers:
        conditions.append(e.member_id.in_(members_in_tiers(filters.tiers)))
    column = cast(extract("hour", e.occurred_at), Integer) if across == "hour" else e.event_type
    rows = select(func.coalesce(e.page, literal("unknown")).label("page"), column.label("col")).where(
        *conditions).subquery("rows")
    frame = read_frame(bind, select(rows.c.page, rows.c.col.label("column"), func.count().label("events"))
                       .group_by(rows.c.page, rows.c.col))
    return frame.sort_values(["page", "column"], ignore_index=True)
