"""The global filters every page shares: a date range and optional sales channels and tiers.

Dates are whole days in the shop's local time: ``start`` and ``end`` are inclusive, compared as
``start 00:00 <= timestamp < (end + 1 day) 00:00``. A range is compared with either the period of
equal length that ends the day before ``start`` (``previous``) or the same dates one year earlier
(``year_ago``, year over year). Channels and tiers are kept sorted so that equal filters compare
(and cache) equal.

**Periods** ("last quarter", "year to date" ...) count back from the warehouse's last day with data,
never from today: a warehouse loaded up to 15 November shows the same "last 90 days" on any day it
is opened, and every preset agrees with the default range. See :data:`PERIODS` and
:func:`period_range`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import ARRAY, ColumnElement, Select, String, bindparam, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from analytics.errors import InputError
from analytics.i18n import N_, _
from analytics.storage.contract import TIERS, members, orders
from analytics.storage.db import Bind, connection

#: The default date range everywhere: the last 90 days of data.
DEFAULT_RANGE_DAYS = 90
#: Dates anywhere in MemberLens (filters, audience windows, the command line) lie in these years.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
#: Most member ids a scope may leave out (erased and opted-out members): they travel as one bound list.
MAX_EXCLUDED = 10_000
#: Most regions or channels a user may be restricted to.
MAX_SCOPE_VALUES = 100


@dataclass(frozen=True)
class Scope:
    """Whose rows an analysis may read: the signed-in user's row-level restriction and the members left out.

    * ``regions``: only members whose ``region`` is one of these (their orders, events, points), when given;
    * ``channels``: only orders placed in these sales channels, and only members with an order in one of them,
      when given (a marketer for the mini-program);
    * ``excluded``: member ids left out of everything (members who asked to be erased, and on profiling pages those
      who objected to profiling); their guest-like rows stay out too.

    The empty scope changes nothing, so every analysis and test written before scopes behaves as it did. A scope
    belongs to the user, not to an audience: it is never written into an audience's JSON.
    """

    regions: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, limit in (("regions", MAX_SCOPE_VALUES), ("channels", MAX_SCOPE_VALUES), ("excluded", MAX_EXCLUDED)):
            values = tuple(sorted({str(v) for v in getattr(self, name)}))
            if len(values) > limit:
                raise InputError(f"A scope holds at most {limit:,} {name}; this one has {len(values):,}.")
            object.__setattr__(self, name, values)

    @property
    def is_open(self) -> bool:
        """Nothing restricted and nobody left out."""
        return not (self.regions or self.channels or self.excluded)

    @property
    def restricts_rows(self) -> bool:
        """A row-level restriction (regions or channels), as opposed to members left out."""
        return bool(self.regions or self.channels)


OPEN_SCOPE = Scope()


def check_year(day: date, what: str = "The date") -> date:
    """``day`` when its year lies in 1900-2999 (every date MemberLens accepts), else InputError."""
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise InputError(f"{what} {day} is outside the years {EARLIEST_YEAR} to {LATEST_YEAR}.")
    return day

Comparison = Literal["previous", "year_ago"]
#: What a period is compared with: the period of equal length just before it, or the same dates a year earlier.
#: (Marked for the catalog: shown as ``_(COMPARISONS[key])``.)
COMPARISONS: dict[str, str] = {"previous": N_("Previous period"), "year_ago": N_("Same period last year")}


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    channels: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    #: Whose rows may be read (the user's restriction, members left out); the open scope by default.
    scope: Scope = OPEN_SCOPE

    def __post_init__(self) -> None:
        check_year(self.start, "The start date")
        check_year(self.end, "The end date")
        if self.end < self.start:
            raise InputError(f"The end date {self.end} is before the start date {self.start}.")
        object.__setattr__(self, "channels", tuple(sorted(set(self.channels))))
        object.__setattr__(self, "tiers", tuple(sorted(set(self.tiers))))
        if not isinstance(self.scope, Scope):
            raise InputError("Filters need a Scope.")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period of equal length ending the day before ``start``, same channels and tiers."""
        return replace(self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1))

    def year_ago(self) -> Filters:
        """The same dates one year earlier, same channels and tiers (29 February becomes the 28th)."""
        return replace(self, start=_year_earlier(self.start), end=_year_earlier(self.end))

    def compared(self, comparison: Comparison = "previous") -> Filters:
        """The period this one is compared with: :meth:`previous` or :meth:`year_ago`."""
        if comparison == "previous":
            return self.previous()
        if comparison == "year_ago":
            return self.year_ago()
        raise InputError(f"Unknown comparison {comparison!r}; choose previous or year_ago.")

    def to_spec(self) -> dict[str, Any]:
        """The filters as the JSON fields of an audience spec: ``start``, ``end`` (ISO dates), ``channels``,
        ``tiers``."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "channels": list(self.channels),
                "tiers": list(self.tiers)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Filters:
        """The filters an audience spec was made under (see :meth:`to_spec`; channels and tiers optional)."""
        return cls(date.fromisoformat(spec["start"]), date.fromisoformat(spec["end"]),
                   tuple(spec.get("channels", ())), tuple(spec.get("tiers", ())))

    @property
    def start_ts(self) -> datetime:
        return datetime.combine(self.start, time())

    @property
    def end_ts(self) -> datetime:
        """Exclusive upper bound: midnight after the last day."""
        return datetime.combine(self.end + timedelta(days=1), time())


@dataclass(frozen=True)
class FilterOptions:
    """The values the filter widgets offer, read from the warehouse."""

    channels: tuple[str, ...]
    tiers: tuple[str, ...]


def filter_options(bind: Bind) -> FilterOptions:
    """Sales channels present in orders and tiers present among members (in programme order)."""
    with connection(bind) as conn:
        channels = [c for (c,) in conn.execute(select(orders.c.channel).distinct()) if c is not None]
        tiers = {t for (t,) in conn.execute(select(members.c.tier).distinct()) if t is not None}
    ordered_tiers = [t for t in TIERS if t in tiers] + sorted(tiers - set(TIERS))
    return FilterOptions(tuple(sorted(channels)), tuple(ordered_tiers))


class _IdRows(FunctionElement):
    """A list of member ids bound as ONE parameter (an array) and unnested into rows: ``unnest(CAST(:ids AS
    VARCHAR[]))`` on DuckDB and PostgreSQL. An expanding ``NOT IN (?, ?, ...)`` of 2,000 ids made DuckDB compare
    each event with each id (10 s instead of 0.5 s on the 50,000-member demo), and a ``VALUES`` list of 10,000 rows
    took SQLAlchemy 2 s to compile; one array parameter costs neither."""

    type = String()
    name = "member_id_rows"
    inherit_cache = True


@compiles(_IdRows)
def _unnest_ids(element: _IdRows, compiler: Any, **kw: Any) -> str:
    return f"unnest(CAST({compiler.process(element.clauses, **kw)} AS VARCHAR[]))"


@compiles(_IdRows, "sparksql")
def _explode_ids(element: _IdRows, compiler: Any, **kw: Any) -> str:
    return f"explode({compiler.process(element.clauses, **kw)})"


def excluded_members(ids: Sequence[str]) -> Select:
    """The member ids a scope leaves out, as a one-column subquery for ``NOT IN`` (see :class:`_IdRows`)."""
    return select(_IdRows(bindparam("excluded_member_ids", value=list(ids), type_=ARRAY(String), unique=True)))


def member_regions(bind: Bind) -> tuple[str, ...]:
    """The regions members live in (what a user may be restricted to), sorted."""
    with connection(bind) as conn:
        found = [r for (r,) in conn.execute(select(members.c.region).distinct()) if r is not None]
    return tuple(sorted(found))


def members_in_tiers(tiers: Sequence[str]) -> Select:
    """The ids of members whose current tier is one of ``tiers`` (a subquery for ``IN``)."""
    return select(members.c.member_id).where(members.c.tier.in_(tiers))


def scope_conditions(scope: Scope, tiers: Sequence[str] = (), *,
                     with_channels: bool = True) -> list[ColumnElement[bool]]:
    """Conditions on ``members`` rows keeping the members ``scope`` (and the tier filter ``tiers``) allow: the tiers,
    the user's regions, members with an order in the user's channels (``with_channels``) and nobody left out."""
    m = members.c
    conditions: list[ColumnElement[bool]] = []
    if tiers:
        conditions.append(m.tier.in_(tiers))
    if scope.regions:
        conditions.append(m.region.in_(scope.regions))
    if scope.channels and with_channels:
        conditions.append(m.member_id.in_(select(orders.c.member_id).where(orders.c.channel.in_(scope.channels))))
    if scope.excluded:
        conditions.append(m.member_id.not_in(excluded_members(scope.excluded)))
    return conditions


def member_table_conditions(filters: Filters, *, with_channels: bool = True) -> list[ColumnElement[bool]]:
    """:func:`scope_conditions` of the filters' scope and tiers."""
    return scope_conditions(filters.scope, filters.tiers, with_channels=with_channels)


def members_in_scope(filters: Filters, *, with_channels: bool = True) -> Select:
    """The ids of the members :func:`member_table_conditions` keeps (a subquery for ``IN``)."""
    return select(members.c.member_id).where(*member_table_conditions(filters, with_channels=with_channels))


def member_conditions(filters: Filters, member_id: ColumnElement, *,
                      with_channels: bool = True) -> list[ColumnElement[bool]]:
    """Conditions keeping rows whose ``member_id`` (orders, events, points ...) the filters and the scope allow.

    What every analysis applies wherever it used to apply the tier filter alone (``member_id IN (members of these
    tiers)``, the same SQL when only tiers are chosen). A tier filter or a restriction to regions or channels keeps
    members' rows only (guest orders and anonymous sessions drop out, as with the tier filter); members left out
    alone keep guest and anonymous rows. No conditions without filters and scope.
    """
    scope = filters.scope
    if filters.tiers or scope.regions or (scope.channels and with_channels):
        return [member_id.in_(members_in_scope(filters, with_channels=with_channels))]
    if scope.excluded:
        return [or_(member_id.is_(None), member_id.not_in(excluded_members(scope.excluded)))]
    return []


def order_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """Conditions on ``orders`` rows from the channel filter and the scope (at any time, any status): the sales
    channels chosen and allowed, and the members allowed (see :func:`member_conditions`; the order's own channel
    stands in for the member's)."""
    o = orders.c
    conditions: list[ColumnElement[bool]] = []
    if filters.channels:
        conditions.append(o.channel.in_(filters.channels))
    if filters.scope.channels:
        conditions.append(o.channel.in_(filters.scope.channels))
    return conditions + member_conditions(filters, o.member_id, with_channels=False)


def completed_order_conditions(filters: Filters, lo: datetime, hi: datetime) -> list[ColumnElement]:
    """Completed orders placed in ``[lo, hi)`` that pass the channel and tier filters and the scope: what every
    sales figure counts (KPIs, baskets)."""
    o = orders.c
    return [o.status == "completed", o.ordered_at >= lo, o.ordered_at < hi, *order_conditions(filters)]


def _year_earlier(day: date) -> date:
    return day.replace(year=day.year - 1, day=28) if (day.month, day.day) == (2, 29) else day.replace(year=day.year - 1)


# --- periods anchored to the data -------------------------------------------------------------

#: The periods the sidebar offers, each counted back from the warehouse's last day with data
#: (``custom`` is any other range). "This month", "this quarter" and "year to date" run from the start of
#: the month, quarter or year of that last day up to it; "last month" and "last quarter" are the whole
#: calendar month or quarter before it.
PERIODS: dict[str, str] = {
    "last_7_days": N_("Last 7 days"),
    "last_30_days": N_("Last 30 days"),
    "last_90_days": N_("Last 90 days"),
    "this_month": N_("This month"),
    "last_month": N_("Last month"),
    "this_quarter": N_("This quarter"),
    "last_quarter": N_("Last quarter"),
    "year_to_date": N_("Year to date"),
    "last_12_months": N_("Last 12 months"),
    "all_data": N_("All data"),
    "custom": N_("Custom range"),
}
DEFAULT_PERIOD = "last_90_days"


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def period_range(period: str, first_day: date, last_day: date) -> tuple[date, date]:
    """The inclusive dates of a preset period, counted back from ``last_day`` (the newest day with data)
    and clipped to ``first_day`` (the oldest)."""
    if period not in PERIODS or period == "custom":
        raise InputError(f"Unknown period {period!r}; choose one of {', '.join(p for p in PERIODS if p != 'custom')}.")
    end = last_day
    if period.startswith("last_") and period.endswith("_days"):
        start = last_day - timedelta(days=int(period.split("_")[1]) - 1)
    elif period == "this_month":
        start = last_day.replace(day=1)
    elif period == "last_month":
        end = last_day.replace(day=1) - timedelta(days=1)
        start = end.replace(day=1)
    elif period == "this_quarter":
        start = _quarter_start(last_day)
    elif period == "last_quarter":
        end = _quarter_start(last_day) - timedelta(days=1)
        start = _quarter_start(end)
    elif period == "year_to_date":
        start = date(last_day.year, 1, 1)
    elif period == "last_12_months":
        start = _year_earlier(last_day) + timedelta(days=1)
    else:  # all_data
        start = first_day
    start, end = max(start, first_day), max(end, first_day)
    return start, max(start, end)


def period_of(start: date, end: date, first_day: date, last_day: date, preferred: str | None = None) -> str:
    """The preset period whose dates are exactly ``start`` – ``end`` (``preferred`` first, when several are),
    else ``custom``."""
    candidates = ([preferred] if preferred in PERIODS else []) + list(PERIODS)
    return next((p for p in candidates if p != "custom" and period_range(p, first_day, last_day) == (start, end)),
                "custom")


@dataclass(frozen=True)
class ClampedRange:
    """A requested date range moved inside the data: ``start``, ``end`` and whether anything moved."""

    start: date
    end: date
    requested: tuple[date, date]

    @property
    def moved(self) -> bool:
        return (self.start, self.end) != self.requested


def clamp_range(start: date, end: date, first_day: date, last_day: date) -> ClampedRange:
    """``start`` – ``end`` (in either order) moved inside ``first_day`` – ``last_day``. A range entirely
    outside the data becomes the nearest single day of data."""
    low, high = min(start, end), max(start, end)
    clamped_low = min(max(low, first_day), last_day)
    clamped_high = max(min(high, last_day), first_day)
    return ClampedRange(clamped_low, clamped_high, (low, high))


#: Longest text accepted as a typed date range (two ISO dates and a separator fit in 40 characters).
MAX_TYPED_RANGE = 40
_TYPED_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_TYPED_RANGE = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2})\s*(?:(?:to|until|至|到|–|—|\.\.|,|，|/)\s*|\s+-\s+|\s+)?"
                          r"(\d{4}-\d{1,2}-\d{1,2})?\s*$", re.IGNORECASE)


def parse_typed_range(text: str) -> tuple[date, date]:
    """A date range as typed: one ISO date (a single day) or two (``2026-07-01 to 2026-09-30``; also ``至``, ``–``,
    ``..``, ``,`` or a space between them). Dates in either order; raises :class:`InputError` saying what is
    wrong otherwise."""
    if len(text) > MAX_TYPED_RANGE:
        raise InputError(_("That is {n} characters; a date range is at most {limit}, like 2026-07-01 to "
                           "2026-09-30.").format(n=len(text), limit=MAX_TYPED_RANGE))
    match = _TYPED_RANGE.match(text)
    if match is None:
        found = _TYPED_DATE.findall(text)
        hint = "" if found else " " + _("Write dates as year-month-day.")
        raise InputError(_("{text} is not a date range.{hint} Type one date (2026-07-01) or two, like 2026-07-01 "
                           "to 2026-09-30.").format(text=repr(text.strip()), hint=hint))
    days = []
    for piece in filter(None, match.groups()):
        try:
            days.append(date.fromisoformat("-".join(f"{int(n):02d}" for n in piece.split("-"))))
        except ValueError:
            raise InputError(_("{day} is not a date in the calendar.").format(day=piece)) from None
    return min(days), max(days)


#: How many cohorts the retention heatmap shows by default (months or weeks, up to the last day with data).
DEFAULT_COHORTS = 12


def cohort_range(period: str, first_day: date, last_day: date, cohorts: int = DEFAULT_COHORTS) -> tuple[date, date]:
    """The dates holding the last ``cohorts`` calendar months (or ISO weeks) of data, the newest one up to
    ``last_day`` (so possibly partial), clipped to ``first_day``: the retention heatmap's default, whatever the
    sidebar's range (90 days would hold three or four monthly cohorts)."""
    if period == "month":
        month = last_day.year * 12 + last_day.month - 1 - (cohorts - 1)
        start = date(month // 12, month % 12 + 1, 1)
    elif period == "week":
        start = last_day - timedelta(days=last_day.weekday() + 7 * (cohorts - 1))
    else:
        raise InputError(f"Unknown cohort period {period!r}; choose month or week.")
    return max(start, first_day), last_day
