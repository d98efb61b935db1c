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

from sqlalchemy import ColumnElement, Select, select

from analytics.errors import InputError
from analytics.storage.contract import TIERS, members, orders
from analytics.storage.db import Bind, connection

#: The default date range everywhere: the last 90 days of data.
DEFAULT_RANGE_DAYS = 90

Comparison = Literal["previous", "year_ago"]
#: What a period is compared with: the period of equal length just before it, or the same dates a year earlier.
COMPARISONS: dict[str, str] = {"previous": "Previous period", "year_ago": "Same period last year"}


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    channels: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InputError(f"The end date {self.end} is before the start date {self.start}.")
        object.__setattr__(self, "channels", tuple(sorted(set(self.channels))))
        object.__setattr__(self, "tiers", tuple(sorted(set(self.tiers))))

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


def members_in_tiers(tiers: Sequence[str]) -> Select:
    """The ids of members whose current tier is one of ``tiers`` (a subquery for ``IN``)."""
    return select(members.c.member_id).where(members.c.tier.in_(tiers))


def completed_order_conditions(filters: Filters, lo: datetime, hi: datetime) -> list[ColumnElement]:
    """Completed orders placed in ``[lo, hi)`` that pass the channel and tier filters: what every
    sales figure counts (KPIs, baskets)."""
    o = orders.c
    conditions = [o.status == "completed", o.ordered_at >= lo, o.ordered_at < hi]
    if filters.channels:
        conditions.append(o.channel.in_(filters.channels))
    if filters.tiers:
        conditions.append(o.member_id.in_(members_in_tiers(filters.tiers)))
    return conditions


def _year_earlier(day: date) -> date:
    return day.replace(year=day.year - 1, day=28) if (day.month, day.day) == (2, 29) else day.replace(year=day.year - 1)


# --- periods anchored to the data -------------------------------------------------------------

#: The periods the sidebar offers, each counted back from the warehouse's last day with data
#: (``custom`` is any other range). "This month", "this quarter" and "year to date" run from the start of
#: the month, quarter or year of that last day up to it; "last month" and "last quarter" are the whole
#: calendar month or quarter before it.
PERIODS: dict[str, str] = {
    "last_7_days": "Last 7 days",
    "last_30_days": "Last 30 days",
    "last_90_days": "Last 90 days",
    "this_month": "This month",
    "last_month": "Last month",
    "this_quarter": "This quarter",
    "last_quarter": "Last quarter",
    "year_to_date": "Year to date",
    "last_12_months": "Last 12 months",
    "all_data": "All data",
    "custom": "Custom range",
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
_TYPED_RANGE = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2})\s*(?:(?:to|until|–|—|\.\.|,|/)\s*|\s+-\s+|\s+)?"
                          r"(\d{4}-\d{1,2}-\d{1,2})?\s*$", re.IGNORECASE)


def parse_typed_range(text: str) -> tuple[date, date]:
    """A date range as typed: one ISO date (a single day) or two (``2026-07-01 to 2026-09-30``; also ``–``,
    ``..``, ``,`` or a space between them). Dates in either order; raises :class:`InputError` saying what is
    wrong otherwise."""
    if len(text) > MAX_TYPED_RANGE:
        raise InputError(f"That is {len(text)} characters; a date range is at most {MAX_TYPED_RANGE}, "
                         "like 2026-07-01 to 2026-09-30.")
    match = _TYPED_RANGE.match(text)
    if match is None:
        found = _TYPED_DATE.findall(text)
        hint = "" if found else " Write dates as year-month-day."
        raise InputError(f"{text.strip()!r} is not a date range.{hint} Type one date (2026-07-01) or two, "
                         "like 2026-07-01 to 2026-09-30.")
    days = []
    for piece in filter(None, match.groups()):
        try:
            days.append(date.fromisoformat("-".join(f"{int(n):02d}" for n in piece.split("-"))))
        except ValueError:
            raise InputError(f"{piece} is not a date in the calendar.") from None
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
