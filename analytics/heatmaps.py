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
  Computed from one aggregation by member: the first purchase and a bitmask of active periods.
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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Literal

import pandas as pd
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    Select,
    Subquery,
    and_,
    case,
    cast,
    extract,
    false,
    func,
    literal,
    select,
    union_all,
)

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError
from analytics.filters import Filters, completed_order_conditions, member_conditions
from analytics.i18n import N_, _
from analytics.storage.contract import events, members, order_items, orders, products
from analytics.storage.db import Bind, read_frame

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
#: How the options above read, marked for the catalog (shown as ``_(OPTION_LABELS[code])``): cohorts, periods,
#: measures, groups and what browsing is counted across.
OPTION_LABELS: dict[str, str] = {
    "first_purchase": N_("First purchase"), "registration": N_("Registration"),
    "month": N_("Month"), "week": N_("Week"),
    "orders": N_("Orders"), "net_sales": N_("Net sales"), "events": N_("Events"),
    "tier": N_("Tier"), "region": N_("Region"),
    "hour": N_("Hour"), "event_type": N_("Event type"),
}


def option_label(code: str) -> str:
    """A heatmap option in the run's language: ``first_purchase`` -> ``First purchase``."""
    known = OPTION_LABELS.get(code)
    return _(known) if known else code.replace("_", " ").capitalize()


def _check_retention_options(cohort: str, period: str, activity: str) -> None:
    if cohort not in COHORTS or period not in PERIODS or activity not in ACTIVITIES:
        raise InputError(_("cohort must be first_purchase or registration, period month or week, activity "
                           "purchase or any"))


#: Bits per activity mask: a BIGINT holds 63 non-negative flags.
MASK_BITS = 63
#: Most masks per member (63 x 20 = 1,260 weeks or months of cohorts plus periods followed).
MAX_MASKS = 20


class _Periods:
    """Numbers weeks or months from the first one of the date range: 0, 1, 2 ..."""

    def __init__(self, filters: Filters, period: Period) -> None:
        self.period = period
        start = pd.Timestamp(filters.start)
        self.origin = start.to_period("M").start_time if period == "month" else start - pd.Timedelta(
            days=start.weekday())
        self.in_range = self.number_of(pd.Timestamp(filters.end)) + 1

    def number_of(self, moment: pd.Timestamp) -> int:
        if self.period == "month":
            return (moment.year - self.origin.year) * 12 + moment.month - self.origin.month
        return (moment.normalize() - self.origin).days // 7

    def start_of(self, number: int) -> pd.Timestamp:
        if self.period == "month":
            return self.origin + pd.DateOffset(months=number)
        return self.origin + pd.Timedelta(weeks=number)

    def sql(self, column: ColumnElement[Any]) -> ColumnElement[int]:
        """The number of the period holding ``column`` (negative before the range's first period)."""
        if self.period == "month":
            number = (extract("year", column) - self.origin.year) * 12 + extract("month", column) - self.origin.month
        else:  # whole days since the first Monday, floored to weeks (and valid before it too)
            number = func.floor((cast(column, Date) - self.origin.date()) / 7.0)
        return cast(number, Integer)


def _bit(masks: list[ColumnElement[int]], number: ColumnElement[int]) -> ColumnElement[bool]:
    """Whether bit ``number`` is set in the member's activity masks."""
    word = masks[0] if len(masks) == 1 else case(
        *((number < MASK_BITS * (j + 1), masks[j]) for j in range(len(masks) - 1)), else_=masks[-1])
    offset = (number % MASK_BITS).self_group()
    return word.self_group().op(">>")(offset).self_group().op("&")(1) == 1


def _cohort_members(filters: Filters, cohort: CohortBy, periods: _Periods, activity: str, last: int) -> Subquery:
    """One row per cohort member: ``member_id``, ``ci`` (the number of their cohort's period) and
    ``mask0..`` (bit n set when they were active in period n, for n up to ``last``).

    Built from a single aggregation of the orders (and, for ``activity="any"``, the events) by
    member: the first completed purchase and every active period come out of the same pass, so the
    warehouse never materialises member x period rows. A period is active with a completed purchase
    through the channel filter (or with ``activity="any"`` also any event).
    """
    o, e, m = orders.c, events.c, members.c
    words = last // MASK_BITS + 1
    if words > MAX_MASKS:
        too_many = {"month": N_("Too many months to follow ({count}); choose a shorter date range or months."),
                    "week": N_("Too many weeks to follow ({count}); choose a shorter date range or months.")}
        raise InputError(_(too_many[periods.period]).format(count=last + 1))
    counted = case((o.channel.in_(filters.channels), 1), else_=0) if filters.channels else literal(1)
    # a user restricted to some sales channels sees only their orders (first purchases included)
    allowed = [o.channel.in_(filters.scope.channels)] if filters.scope.channels else []
    rows = select(o.member_id.label("member_id"), o.ordered_at.label("at"), o.ordered_at.label("bought_at"),
                  counted.label("counted")).where(o.status == "completed", o.member_id.is_not(None), *allowed)
    if activity == "any":
        rows = union_all(rows, select(e.member_id.label("member_id"), e.occurred_at.label("at"),
                                      cast(literal(None), DateTime).label("bought_at"), literal(1).label("counted"))
                         .where(e.member_id.is_not(None)))
    rows = rows.subquery("activity_rows")
    number = periods.sql(rows.c.at)
    masks = []
    for j in range(words):
        inside = and_(rows.c.counted == 1, number >= MASK_BITS * j, number < min(MASK_BITS * (j + 1), last + 1))
        flag = cast(literal(1), BigInteger).op("<<")((number - MASK_BITS * j).self_group())
        masks.append(func.bit_or(case((inside, flag), else_=cast(literal(0), BigInteger))).label(f"mask{j}"))
    per_member = select(rows.c.member_id, func.min(rows.c.bought_at).label("first_at"), *masks) \
        .group_by(rows.c.member_id).subquery("per_member")
    if cohort == "first_purchase":
        at = per_member.c.first_at
        source: Any = per_member
        member_id = per_member.c.member_id
        mask_columns = [per_member.c[f"mask{j}"] for j in range(words)]
    else:
        at = m.registered_at
        source = members.outerjoin(per_member, per_member.c.member_id == m.member_id)
        member_id = m.member_id
        mask_columns = [func.coalesce(per_member.c[f"mask{j}"], 0) for j in range(words)]
    in_range = [at >= filters.start_ts, at < filters.end_ts]
    in_range += member_conditions(filters, member_id)
    return (select(member_id.label("member_id"), periods.sql(at).label("ci"),
                   *(c.label(f"mask{j}") for j, c in enumerate(mask_columns)))
            .select_from(source).where(*in_range).subquery("cohort_members"))


def _masks(members_: Subquery) -> list[ColumnElement[int]]:
    return [c for c in members_.c if c.name.startswith("mask")]


def cohort_retention(
    bind: Bind, filters: Filters, cohort: CohortBy = "first_purchase", period: Period = "month",
    activity: Literal["purchase", "any"] = "purchase", max_periods: int = 12,
) -> pd.DataFrame:
    """The cohort table: ``cohort`` (start of its week or month), ``size``, ``period`` (0, 1, ...),
    ``active`` and ``share``; one row per cohort and period up to ``max_periods`` (cells with no
    active member included, with 0), from one statement."""
    _check_retention_options(cohort, period, activity)
    periods = _Periods(filters, period)
    cohort_members = _cohort_members(filters, cohort, periods, activity, periods.in_range - 1 + max_periods)
    masks, ci = _masks(cohort_members), cohort_members.c.ci
    query = (select(ci, func.count().label("size"),
                    *(func.sum(case((_bit(masks, ci + n), 1), else_=0)).label(f"a{n}") for n in range(max_periods + 1)))
             .group_by(ci).order_by(ci))
    wide = read_frame(bind, query)
    if wide.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "share" else "int64") for c in RETENTION_COLUMNS})
    cells = wide.melt(id_vars=["ci", "size"], var_name="period", value_name="active")
    cells["period"] = cells["period"].str[1:].astype("int64")
    cells = cells.astype({"ci": "int64", "size": "int64", "active": "int64"})
    # Show periods up to the end of the range, or later where anyone was active then; never the future.
    active_numbers = cells.loc[cells["active"] > 0, "ci"] + cells.loc[cells["active"] > 0, "period"]
    last = max(periods.in_range - 1, int(active_numbers.max()) if len(active_numbers) else 0)
    cells = cells[cells["ci"] + cells["period"] <= last]
    cells["cohort"] = cells["ci"].map(periods.start_of)
    cells["share"] = cells["active"] / cells["size"]
    return cells.sort_values(["cohort", "period"], ignore_index=True)[RETENTION_COLUMNS]


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
        raise InputError(_("period_number must be 0 or more"))
    periods = _Periods(filters, period)
    number = periods.number_of(pd.Timestamp(_as_timestamp(cohort_start)))
    target = number + int(period_number)
    cohort_members = _cohort_members(filters, cohort, periods, activity, max(target, 0))
    masks = _masks(cohort_members)
    return select(cohort_members.c.member_id).where(cohort_members.c.ci == number,
                                                    _bit(masks, literal(target)) if target >= 0 else false())


def _rhythm_cells(filters: Filters, measure: str) -> Subquery:
    """``member_id`` (null for guests and anonymous visitors), ``weekday`` (0 = Monday), ``hour`` and
    ``v`` (1 per order or event, or the order's net amount) for every completed order (or event) in
    the range that passes the filters: the rows the rhythm heatmap sums."""
    if measure not in RHYTHM_MEASURES:
        raise InputError(_("measure must be one of {choices}").format(choices=", ".join(RHYTHM_MEASURES)))
    if measure == "events":
        e = events.c
        conditions = [e.occurred_at >= filters.start_ts, e.occurred_at < filters.end_ts]
        conditions += member_conditions(filters, e.member_id)
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
        raise InputError(_("weekday must be 0-6 and hour 0-23"))
    cells = _rhythm_cells(filters, measure)
    return (select(cells.c.member_id).where(cells.c.member_id.is_not(None), cells.c.weekday == int(weekday),
                                            cells.c.hour == int(hour)).distinct())


def _affinity_lines(filters: Filters, by: str) -> Subquery:
    """``member_id``, ``grp`` (the member's tier or region, ``unknown`` when missing), ``category`` and
    ``amount`` (the line amount) for every line of members' completed orders in the range that pass
    the filters: the lines the affinity heatmap sums (guest orders have no group and are left out)."""
    if by not in AFFINITY_GROUPS:
        raise InputError(_("by must be one of {choices}").format(choices=", ".join(AFFINITY_GROUPS)))
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
        raise InputError(_("across must be hour or event_type"))
    e = events.c
    conditions = [e.occurred_at >= filters.start_ts, e.occurred_at < filters.end_ts]
    conditions += member_conditions(filters, e.member_id)
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
            raise InputError(_("hour must be 0-23"))
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
    raise InputError(_("heatmap must be one of {choices}").format(choices=", ".join(HEATMAPS)))


@audience_kind
@dataclass(frozen=True)
class HeatmapCellAudience(Audience):
    """The members behind one cell of a heatmap (see :func:`cell_members`): the cell by its row and column keys as
    the heatmap's frame holds them (as text), the heatmap's options as name/value pairs."""

    kind: ClassVar[str] = "heatmap_cell"
    label: ClassVar[str] = "heatmap cell"
    keys: ClassVar[frozenset[str]] = frozenset({"heatmap", "row", "column", "options", "start", "end", "channels",
                                                "tiers"})

    window: Filters
    heatmap: str
    row: str
    column: str
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.heatmap not in HEATMAPS:
            raise InputError(_("heatmap must be one of {choices}").format(choices=", ".join(HEATMAPS)))
        object.__setattr__(self, "options", tuple(sorted((str(k), str(v)) for k, v in self.options)))
        self.member_ids()  # refuse unknown cells and options now, not when the audience is used

    def member_ids(self) -> Select:
        return cell_members(self.window, self.heatmap, self.row, self.column, **dict(self.options))

    def describe(self) -> str:
        options = ", ".join(f"{k} {v}" for k, v in self.options)
        return f"Heatmap {self.heatmap}: {self.row} × {self.column}" + (f" ({options})" if options else "")

    def body(self) -> dict[str, Any]:
        return {"heatmap": self.heatmap, "row": self.row, "column": self.column, "options": dict(self.options),
                **audiences.window_body(self.window)}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> HeatmapCellAudience:
        options = data.get("options", {})
        if not isinstance(options, Mapping) or len(options) > 5 or not all(
                isinstance(v, str) for v in options.values()):
            raise InputError(_('"options" maps option names to texts.'))
        return cls(audiences.window(data), audiences.text(data, "heatmap", 20), audiences.text(data, "row", 200),
                   audiences.text(data, "column", 200), tuple(options.items()))


def cell_audience(filters: Filters, heatmap: str, row: object, column: object,
                  options: Mapping[str, str] | None = None) -> HeatmapCellAudience:
    """The audience of the members behind one heatmap cell (keys as the heatmap's frame holds them)."""
    key = row.isoformat() if hasattr(row, "isoformat") else row
    return HeatmapCellAudience(filters, heatmap, str(key)[:10] if heatmap == "retention" else str(key), str(column),
                               tuple((options or {}).items()))
