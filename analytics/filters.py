"""The global filters every page shares: a date range and optional sales channels and tiers.

Dates are whole days in the shop's local time: ``start`` and ``end`` are inclusive, compared as
``start 00:00 <= timestamp < (end + 1 day) 00:00``. The comparison period is the one of equal
length that ends the day before ``start``. Channels and tiers are kept sorted so that equal
filters compare (and cache) equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, select

from analytics.errors import InputError
from analytics.storage.contract import TIERS, members, orders
from analytics.storage.db import Bind, connection

#: The default date range everywhere: the last 90 days of data.
DEFAULT_RANGE_DAYS = 90


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
