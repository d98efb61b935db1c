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
* **Affinity**: a group's (tier, region) share of spend per category, as an index against the
  share of that category in all spend: 100 = average, 150 = half as much again as average. Spend
  is the line amounts of members' completed orders (order-level discounts are not spread over
  lines, so it is gross of them).
* **Browsing hotspots**: events per page x hour (or x event type) in the range.

Drill-down: for every heatmap a ``*_cell_members`` function returns a one-column ``Select`` of the
distinct member ids behind one cell, built from the same query pieces as the figure (one definition
per metric), for :mod:`analytics.member_rows` to list and count. Rhythm and browsing figures also
count guest orders and anonymous visitors' events; those have no member id, so only the members
among them can be listed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import pandas as pd
from sqlalchemy import Date, Integer, Select, Subquery, and_, cast, distinct, extract, func, literal, select, union

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
ACTIVITIES: tuple[str, ...] = ("purchase", "any")
BROWSING_ACROSS: tuple[str, ...] = ("hour", "event_type")
#: The heatmaps a cell can be drilled into, by the name :func:`cell_members` takes.
HEATMAPS: tuple[str, ...] = ("retention", "rhythm", "affinity", "browsing")


def _check_retention_options(cohort: str, period: str, activity: str) -> None:
    if cohort not in COHORTS or period not in PERIODS or activity not in ACTIVITIES:
        raise ValueError("cohort must be first_purchase or registration, period month or week, activity "
                         "purchase or any")


def _cohorts(filters: Filters, cohort: CohortBy, period: Period) -> Subquery:
    """``member_id``, ``cohort``: members whose first completed purchase (or registration) falls in the
    date range (tier filter applied), with the start of that week or month."""
    o, m = orders.c, members.c
    if cohort == "first_purchase":
        starts = (select(o.member_id.label("member_id"), func.min(o.ordered_at).label("at"))
                  .where(o.status == "completed", o.member_id.is_not(None)).group_by(o.member_id))
    else:
        starts = select(m.member_id.label("member_id"), m.registered_at.label("at"))
    starts = starts.subquery("starts")
    in_range = [starts.c.at >= filters.start_ts, starts.c.at < filters.end_ts]
    if filters.tiers:
        in_range.append(starts.c.member_id.in_(members_in_tiers(filters.tiers)))
    return select(starts.c.member_id, date_trunc(period, starts.c.at).label("cohort")).where(*in_range) \
        .subquery("cohorts")


def _retention_cells(filters: Filters, cohort: CohortBy, period: Period, activity: str) -> tuple[Subquery, Subquery]:
    """The cohorts (see :func:`_cohorts`) and ``cells``: one row per member and period (``cohort``,
    ``period``, ``member_id``) in which a cohort member was active, period 0 being the cohort's own.

    Activity is a completed purchase (channel filter applied) at any time up to the end of the data,
    or with ``activity="any"`` also any clickstream event.
    """
    o, e = orders.c, events.c
    cohorts = _cohorts(filters, cohort, period)
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
    return cohorts, cells


def cohort_retention(
    bind: Bind, filters: Filters, cohort: CohortBy = "first_purchase", period: Period = "month",
    activity: Literal["purchase", "any"] = "purchase", max_periods: int = 12,
) -> pd.DataFrame:
    """The cohort table: ``cohort`` (start of its week or month), ``size``, ``period`` (0, 1, ...),
    ``active`` and ``share``; one row per cohort and period up to ``max_periods`` (cells with no
    active member included, with 0)."""
    _check_retention_options(cohort, period, activity)
    cohorts, cells = _retention_cells(filters, cohort, period, activity)
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


def _as_timestamp(value: date | datetime | str) -> datetime:
    """A cohort start given as a date, datetime, pandas Timestamp or ISO text, as a naive datetime."""
    return pd.Timestamp(value).to_pydatetime().replace(tzinfo=None)


def retention_cell_members(
    filters: Filters, cohort_start: date | datetime | str, period_number: int,
    cohort: CohortBy = "first_purchase", period: Period = "month", activity: Literal["purchase", "any"] = "purchase",
) -> Select:
    """The distinct ``member_id``s behind one retention cell: members of the cohort starting at
    ``cohort_start`` (the start of its week or month) who were active in period ``period_number``
    after it, exactly the members :func:`cohort_retention` counts as ``active`` there."""
    _check_retention_options(cohort, period, activity)
    if int(period_number) < 0:
        raise ValueError("period_number must be 0 or more")
    _, cells = _retention_cells(filters, cohort, period, activity)
    return (select(cells.c.member_id).where(cells.c.cohort == _as_timestamp(cohort_start),
                                            cells.c.period == int(period_number)).distinct())


def _rhythm_cells(filters: Filters, measure: str) -> Subquery:
    """``member_id`` (null for guests and anonymous visitors), ``weekday`` (0 = Monday), ``hour`` and
    ``v`` (1 per order or event, or the order's net amount) for every completed order (or event) in
    the range that passes the filters: the rows the rhythm heatmap sums."""
    if measure not in RHYTHM_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(RHYTHM_MEASURES)}")
    if measure == "events":
        e = events.c
        conditions = [e.occurred_at >= filters.start_ts, e.occurred_at < filters.end_ts]
        if filters.tiers:
            conditions.append(e.member_id.in_(members_in_tiers(filters.tiers)))
        source = select(e.member_id.label("member_id"), e.occurred_at.label("at"), literal(1).label("v")).where(
            *conditions)
    else:
        o = orders.c
        value = literal(1) if measure == "orders" else o.net_amount
        source = select(o.member_id.label("member_id"), o.ordered_at.label("at"), value.label("v")).where(
            *completed_order_conditions(filters, filters.start_ts, filters.end_ts))
    rows = source.subquery("rows")
    # EXTRACT(DOW) counts from Sunday = 0 on DuckDB and PostgreSQL alike; shift so Monday = 0.
    return select(rows.c.member_id, cast((extract("dow", rows.c.at) + 6) % 7, Integer).label("weekday"),
                  cast(extract("hour", rows.c.at), Integer).label("hour"), rows.c.v).subquery("cells")


def activity_rhythm(bind: Bind, filters: Filters, measure: str = "orders") -> pd.DataFrame:
    """``weekday`` (0 = Monday .. 6 = Sunday) x ``hour`` (0-23) with ``value``: orders, net sales or events."""
    cells = _rhythm_cells(filters, measure)
    frame = read_frame(bind, select(cells.c.weekday, cells.c.hour, func.sum(cells.c.v).label("value"))
                       .group_by(cells.c.weekday, cells.c.hour))
    grid = pd.MultiIndex.from_product([range(7), range(24)], names=["weekday", "hour"]).to_frame(index=False)
    frame = grid.merge(frame.astype({"weekday": "int64", "hour": "int64"}), how="left", on=["weekday", "hour"])
    frame["value"] = frame["value"].astype("float64").fillna(0.0)
    return frame


def rhythm_cell_members(filters: Filters, weekday: int, hour: int, measure: str = "orders") -> Select:
    """The distinct ``member_id``s behind one rhythm cell: members with a completed order (or, for
    ``measure="events"``, a clickstream event) on that weekday (0 = Monday) and hour in the range.

    The cell's figure also counts guest orders and anonymous visitors' events; they have no member
    id, so they are not listed.
    """
    if int(weekday) not in range(7) or int(hour) not in range(24):
        raise ValueError("weekday must be 0-6 and hour 0-23")
    cells = _rhythm_cells(filters, measure)
    return (select(cells.c.member_id).where(cells.c.member_id.is_not(None), cells.c.weekday == int(weekday),
                                            cells.c.hour == int(hour)).distinct())


def _affinity_lines(filters: Filters, by: str) -> Subquery:
    """``member_id``, ``grp`` (the member's tier or region, ``unknown`` when missing), ``category`` and
    ``amount`` (the line amount) for every line of members' completed orders in the range that pass
    the filters: the lines the affinity heatmap sums (guest orders have no group and are left out)."""
    if by not in AFFINITY_GROUPS:
        raise ValueError(f"by must be one of {', '.join(AFFINITY_GROUPS)}")
    o, i, p, m = orders.c, order_items.c, products.c, members.c
    group = func.coalesce(m[by], literal("unknown")).label("grp")
    return (select(o.member_id.label("member_id"), group,
                   func.coalesce(p.category, literal("unknown")).label("category"), i.line_amount.label("amount"))
            .select_from(orders.join(order_items, i.order_id == o.order_id)
                         .join(products, p.product_id == i.product_id)
                         .join(members, m.member_id == o.member_id))
            .where(*completed_order_conditions(filters, filters.start_ts, filters.end_ts)).subquery("lines"))


def category_affinity(bind: Bind, filters: Filters, by: str = "tier") -> pd.DataFrame:
    """``group`` x ``category`` with ``spend``, the group's ``share`` of its spend in the category,
    and ``index`` = 100 x share / the category's share of all sales (100 = average)."""
    lines = _affinity_lines(filters, by)
    frame = read_frame(bind, select(lines.c.grp.label("group"), lines.c.category,
                                    func.sum(lines.c.amount).label("spend"))
                       .group_by(lines.c.grp, lines.c.category))
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("group", "category") else "float64")
                             for c in ("group", "category", "spend", "share", "index")})
    frame["spend"] = frame["spend"].astype("float64")
    frame["share"] = frame["spend"] / frame.groupby("group")["spend"].transform("sum")
    overall = frame.groupby("category")["spend"].sum() / frame["spend"].sum()
    frame["index"] = 100 * frame["share"] / frame["category"].map(overall)
    return frame.sort_values(["group", "category"], ignore_index=True)


def affinity_cell_members(filters: Filters, group: str, category: str, by: str = "tier") -> Select:
    """The distinct ``member_id``s behind one affinity cell: members of that tier or region (``unknown``
    for members without one) who bought from that category in completed orders in the range."""
    lines = _affinity_lines(filters, by)
    return select(lines.c.member_id).where(lines.c.grp == group, lines.c.category == category).distinct()


def _browsing_rows(filters: Filters, across: str) -> Subquery:
    """``member_id`` (null for anonymous visitors), ``page`` (``unknown`` when missing) and ``col`` (the
    hour, or the event type) of every clickstream event in the range that passes the tier filter."""
    if across not in BROWSING_ACROSS:
        raise ValueError("across must be hour or event_type")
    e = events.c
    conditions = [e.occurred_at >= filters.start_ts, e.occurred_at < filters.end_ts]
    if filters.tiers:
        conditions.append(e.member_id.in_(members_in_tiers(filters.tiers)))
    column = cast(extract("hour", e.occurred_at), Integer) if across == "hour" else e.event_type
    return select(e.member_id.label("member_id"), func.coalesce(e.page, literal("unknown")).label("page"),
                  column.label("col")).where(*conditions).subquery("rows")


def browsing_hotspots(bind: Bind, filters: Filters, across: str = "hour") -> pd.DataFrame:
    """Events per ``page`` x ``hour`` (0-23) or x ``event_type`` in the date range: ``page``, ``column``, ``events``."""
    rows = _browsing_rows(filters, across)
    frame = read_frame(bind, select(rows.c.page, rows.c.col.label("column"), func.count().label("events"))
                       .group_by(rows.c.page, rows.c.col))
    return frame.sort_values(["page", "column"], ignore_index=True)


def browsing_cell_members(filters: Filters, page: str, column: str | int, across: str = "hour") -> Select:
    """The distinct ``member_id``s behind one browsing cell: members with a clickstream event on that
    page (``unknown`` for events without one) in that hour (0-23) or of that event type, in the range.

    The cell's figure also counts anonymous visitors' events; they have no member id, so they are
    not listed.
    """
    rows = _browsing_rows(filters, across)
    if across == "hour":
        if int(column) not in range(24):
            raise ValueError("hour must be 0-23")
        column = int(column)
    return select(rows.c.member_id).where(rows.c.member_id.is_not(None), rows.c.page == page,
                                          rows.c.col == column).distinct()


def cell_members(filters: Filters, heatmap: str, row: object, column: object, **options: str) -> Select:
    """The member ids behind one cell of ``heatmap`` (one of :data:`HEATMAPS`), the cell given by its row
    and column keys as the heatmap's frame holds them, the heatmap's options by keyword:

    * ``retention``: row = cohort start, column = period number; ``cohort``, ``period``, ``activity``;
    * ``rhythm``: row = weekday (0 = Monday), column = hour; ``measure``;
    * ``affinity``: row = group (tier or region), column = category; ``by``;
    * ``browsing``: row = page, column = hour or event type; ``across``.

    One entry point, so callers (cached wrappers, exports) can hold a cell as plain values.
    """
    if heatmap == "retention":
        return retention_cell_members(filters, row, int(column), **options)  # type: ignore[arg-type]
    if heatmap == "rhythm":
        return rhythm_cell_members(filters, int(row), int(column), **options)  # type: ignore[arg-type]
    if heatmap == "affinity":
        return affinity_cell_members(filters, str(row), str(column), **options)
    if heatmap == "browsing":
        return browsing_cell_members(filters, str(row), column, **options)  # type: ignore[arg-type]
    raise ValueError(f"heatmap must be one of {', '.join(HEATMAPS)}")
