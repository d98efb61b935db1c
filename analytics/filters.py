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

from sqlalchemy import ARRAY, ColumnElement, Select, String, bindparam, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from analytics.errors import InputError
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
