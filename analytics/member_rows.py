"""The member rows behind any figure (a segment, a tag, a cluster, a heatmap cell, a funnel drop-off, a prediction
band, a campaign audience), masked, with what each member is worth, for preview and export.

Every analysis that lets a user see *who* is behind a number builds a SQL select of member ids (its audience's
``member_ids()``) and hands it here, so which columns are shown, how they are sorted and how personal data is
masked is decided once:

* **Value columns**, for the *value window* (a date range with its channel and tier filters: the audience's own
  window, see :func:`value_window`): ``net_sales`` and ``orders`` = the member's completed orders in the window
  (RFM's monetary value and frequency, so a segment's listed net sales add up to the segment's sales),
  ``last_order`` = the day of their last completed order up to the window's last day (through the same channel and
  tier filters; before the window for a member without an order in it), ``segment`` = their RFM segment in the
  window (:mod:`analytics.rfm`; :data:`~analytics.rfm.LAPSED` for a member who bought before the window but not in
  it; empty for one who never bought), and ``tier``.
* **Sorted by value**: net sales, highest first, then member id, so a preview shows the members who matter most and
  the order is the same on every database.
* **One statement** per list: the scored members of the window (RFM), the listed members and, for those without
  an order in the window, their last order before it. A preview is bounded (``limit``); the last-order look-up
  then reads only the previewed members' orders.
* Names, phones and emails are masked (:mod:`analytics.privacy`) unless asked for explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import pandas as pd
from sqlalchemy import Date, Select, case, cast, func, literal, select

from analytics.audiences import Audience
from analytics.filters import DEFAULT_RANGE_DAYS, OPEN_SCOPE, Filters, Scope, members_in_tiers, scope_conditions
from analytics.privacy import mask_members
from analytics.rfm import LAPSED, RfmSegmentAudience, lapsed_members, member_rfm, segment_member_ids
from analytics.storage.contract import members, orders
from analytics.storage.db import Bind, connection, read_frame

#: The member's own columns, personal ones (masked) included.
MEMBER_COLUMNS: tuple[str, ...] = ("member_id", "tier", "name", "phone", "email", "region", "city", "registered_at",
                                   "points_balance")
#: What each listed member is worth in the value window (see the module's docstring).
VALUE_COLUMNS: tuple[str, ...] = ("net_sales", "orders", "last_order", "segment")
#: The columns of every member list and export, in this order: id, value, then who they are.
MEMBER_ROW_COLUMNS: tuple[str, ...] = ("member_id", "net_sales", "orders", "last_order", "tier", "segment", "name",
                                       "phone", "email", "region", "city", "registered_at", "points_balance")
#: The most rows a list statement returns (an export of every member of a million-member shop fits).
MAX_ROWS = 5_000_000


def scoped_ids(member_ids: Select, scope: Scope = OPEN_SCOPE) -> Select:
    """``member_ids`` narrowed to the members ``scope`` allows: what every member list, count and export
    reads, whatever analysis made the audience (a saved or uploaded definition carries no user's scope)."""
    if scope.is_open:
        return member_ids
    ids = member_ids.subquery("listed")
    return select(members.c.member_id).where(members.c.member_id.in_(select(ids.c[0])), *scope_conditions(scope))


def value_window(audience: Audience) -> Filters:
    """The date range (and filters) an audience's members are valued over by default: its own window (RFM segments,
    clusters, tags, heatmap cells, funnel drop-offs, campaign audiences), a basket rule's purchase period, or the
    :data:`~analytics.filters.DEFAULT_RANGE_DAYS` days ending on a prediction's scoring day or a tier what-if's day."""
    window = getattr(audience, "window", None)
    if isinstance(window, Filters):
        return window
    start, end = getattr(audience, "start", None), getattr(audience, "end", None)
    if start is not None and end is not None:
        return Filters(start, end)
    as_of = getattr(audience, "as_of", None) or getattr(audience, "day", None)  # a scoring day, a what-if's day
    if as_of is not None:
        return Filters(as_of - timedelta(days=DEFAULT_RANGE_DAYS - 1), as_of)
    raise TypeError(f"{type(audience).__name__} has no date range to value its members over: pass one")


def member_rows(bind: Bind, member_ids: Select, window: Filters, limit: int | None = None, *,
                unmasked: bool = False, grid: Mapping[tuple[int, int], str] | None = None,
                scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """The members ``member_ids`` selects (a one-column select; duplicates count once) that ``scope`` allows, with
    their value in ``window`` (:data:`MEMBER_ROW_COLUMNS`), by net sales (highest first) then id, at most ``limit``.

    ``segment`` follows ``grid`` (the standard segment grid when None). Names, phones and emails are masked unless
    ``unmasked`` is asked for explicitly."""
    rfm = member_rfm(window, grid)
    scored = rfm.c
    chosen = select(members.c.member_id).where(members.c.member_id.in_(member_ids)).subquery("chosen")
    keyed = (select(chosen.c.member_id, func.coalesce(scored.monetary, 0).label("net_sales"),
                    func.coalesce(scored.frequency, 0).label("orders"), scored.recency_days, scored.segment)
             .select_from(chosen.outerjoin(rfm, scored.member_id == chosen.c.member_id)))
    return _rows(bind, window, keyed, limit, unmasked, scope)


def segment_rows(bind: Bind, window: Filters, segments: Sequence[str] | None = None, limit: int | None = None, *,
                 unmasked: bool = False, grid: Mapping[tuple[int, int], str] | None = None,
                 scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """As :func:`member_rows` for the members of RFM ``segments`` in ``window`` (every scored member when None;
    :data:`~analytics.rfm.LAPSED` for the lapsed): the segment and the value come from one scoring of the
    window, and the lapsed need none."""
    segments = None if segments is None else list(segments)
    if segments == [LAPSED]:
        lapsed = lapsed_members(window).c
        keyed = select(lapsed.member_id, literal(0.0).label("net_sales"), literal(0).label("orders"),
                       (literal(window.end, Date) - cast(lapsed.last_at, Date)).label("recency_days"),
                       literal(LAPSED).label("segment"))
        return _rows(bind, window, keyed, limit, unmasked, scope)
    if segments is not None and LAPSED in segments:
        return member_rows(bind, segment_member_ids(window, tuple(segments), grid), window, limit,
                           unmasked=unmasked, grid=grid, scope=scope)
    scored = member_rfm(window, grid).c
    keyed = select(scored.member_id, scored.monetary.label("net_sales"), scored.frequency.label("orders"),
                   scored.recency_days, scored.segment)
    if segments is not None:
        keyed = keyed.where(scored.segment.in_(segments))
    return _rows(bind, window, keyed, limit, unmasked, scope)


def audience_rows(bind: Bind, audience: Audience, window: Filters | None = None, limit: int | None = None, *,
                  unmasked: bool = False, scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """The rows of an audience's members (:func:`member_rows`) valued over ``window`` (default: the audience's
    own, :func:`value_window`). An RFM segment audience's rows show the segments of its own grid and score the
    window once."""
    window = value_window(audience) if window is None else window
    if isinstance(audience, RfmSegmentAudience):
        if audience.window == window:
            return segment_rows(bind, window, audience.segments, limit, unmasked=unmasked, grid=audience.cells,
                                scope=scope)
        return member_rows(bind, audience.member_ids(), window, limit, unmasked=unmasked, grid=audience.cells,
                           scope=scope)
    return member_rows(bind, audience.member_ids(), window, limit, unmasked=unmasked, scope=scope)


def _rows(bind: Bind, window: Filters, keyed: Select, limit: int | None, unmasked: bool,
          scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """One statement: ``keyed`` (``member_id, net_sales, orders, recency_days, segment`` of each listed member)
    sorted by value and cut at ``limit``; then the members' own columns for those rows only and, for rows without
    an order in the window, their last order before it. A preview (``limit`` of 1 or more) also counts the rows
    there are without the limit, in the same statement: ``frame.attrs["total"]``."""
    if limit is not None and not 0 <= limit <= MAX_ROWS:
        raise ValueError(f"limit must be from 0 to {MAX_ROWS:,}")
    if not scope.is_open:  # before the limit: a preview shows the first rows the user may see
        keyed = keyed.where(keyed.selected_columns.member_id.in_(scoped_ids(select(members.c.member_id), scope)))
    counted = bool(limit)
    if limit is not None:  # a preview: the first rows by value (the whole list is sorted once, at the end)
        if counted:  # a window function sees every row the WHERE clause keeps, before the limit
            keyed = keyed.add_columns(func.count().over().label("listed_total"))
        keyed = keyed.order_by(keyed.selected_columns.net_sales.desc(),
                               keyed.selected_columns.member_id).limit(limit)
    valued = keyed.cte("listed")
    m, v, o = members.c, valued.c, orders.c
    unvalued = select(v.member_id).where(v.recency_days.is_(None))
    conditions = [o.status == "completed", o.ordered_at < window.start_ts, o.member_id.in_(unvalued)]
    if window.channels:
        conditions.append(o.channel.in_(window.channels))
    if window.tiers:
        conditions.append(o.member_id.in_(members_in_tiers(window.tiers)))
    before = (select(o.member_id.label("member_id"), func.max(o.ordered_at).label("last_at"))
              .where(*conditions).group_by(o.member_id).subquery("before_window"))
    days = func.coalesce(v.recency_days, literal(window.end, Date) - cast(before.c.last_at, Date))
    segment = func.coalesce(v.segment, case((before.c.last_at.is_not(None), literal(LAPSED))))
    query = (select(*(m[name] for name in MEMBER_COLUMNS), v.net_sales, v.orders, days.label("days_since"),
                    segment.label("segment"), *([v.listed_total] if counted else []))
             .select_from(valued.join(members, m.member_id == v.member_id)
                          .outerjoin(before, before.c.member_id == v.member_id))
             .order_by(v.net_sales.desc(), v.member_id))
    frame = read_frame(bind, query, hash_joins=True)  # the ids may come from a funnel's CTE joins
    total = (int(frame["listed_total"].iloc[0]) if len(frame) else 0) if counted else None
    frame = _typed(frame, window)
    frame = frame if unmasked else mask_members(frame)
    if counted:
        frame.attrs["total"] = total
    return frame


def _typed(frame: pd.DataFrame, window: Filters) -> pd.DataFrame:
    """Columns in :data:`MEMBER_ROW_COLUMNS` order with one type on every database: net sales as float, orders as
    whole numbers, the last order as a day (the window's last day minus the days since)."""
    days = pd.to_numeric(frame["days_since"], errors="coerce")
    end = pd.Timestamp(window.end)
    frame = frame.assign(net_sales=pd.to_numeric(frame["net_sales"]).astype("float64"),
                         orders=pd.to_numeric(frame["orders"]).astype("int64"),
                         last_order=(end - pd.to_timedelta(days, unit="D")).astype("datetime64[us]"),
                         registered_at=pd.to_datetime(frame["registered_at"]).astype("datetime64[us]"))
    return frame[list(MEMBER_ROW_COLUMNS)].reset_index(drop=True)


def member_count(bind: Bind, member_ids: Select, scope: Scope = OPEN_SCOPE) -> int:
    """How many distinct members ``member_ids`` selects (of those ``scope`` allows)."""
    ids = scoped_ids(member_ids, scope).subquery("ids")
    with connection(bind, hash_joins=True) as conn:
        return int(conn.execute(select(func.count(ids.c[0].distinct()))).scalar_one())


def listed_member_ids(ids: Sequence[str]) -> Select:
    """A select of these member ids (a bound, expanding list): for rows already known in Python, such as
    the first members of a cluster."""
    return select(members.c.member_id).where(members.c.member_id.in_(list(ids)))
