"""RFM: recency, frequency and monetary value per member, their 1-5 scores and the named segments.

Definitions (one place; the page shows them as help):

* **Window**: completed orders placed in the global date range, through the channel filter, by
  members of the chosen tiers. Only members with at least one such order are scored.
* **Recency** = whole days from the member's last order in the window to the last day of the range
  (an order on the last day: 0). **Frequency** = completed orders. **Monetary** = their net sales.
* **Scores 1-5 by quintiles, ties kept together**: a member's score is
  ``1 + floor(5 x (members with a strictly worse value) / members)``, so members with equal values
  always share a score and a score band may hold more or fewer than a fifth. Worse = longer recency,
  fewer orders, less money. ``fm_score`` = the mean of the F and M scores rounded half up.
* **Segments** come from a grid of R score x FM score (:data:`DEFAULT_GRID`, editable): e.g. R 5 and
  FM 4-5 are *Champions*, R 1 and FM 1-2 are *Lost*.
* **Lapsed** (:data:`LAPSED`) are the members RFM cannot score: a completed order before the range (any time, through
  the same channel and tier filters) and none in it. They are their own group, never one of the eleven segments, so
  "At Risk" always means the scored segment of that name.
* **Migration**: each member's segment in the previous period of equal length against this one; a member scored in
  only one of them is :data:`NO_PURCHASE` in the other. A cell (say Champions -> no purchase) is an audience too
  (:class:`RfmMigrationAudience`).

Everything is SQL in the warehouse (window functions ``RANK`` and ``COUNT`` over the members); only
per-segment aggregates, or one row per member when asked for, leave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import Date, Integer, Select, Subquery, case, cast, func, literal, select, union_all

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError
from analytics.filters import Filters, completed_order_conditions, members_in_tiers
from analytics.i18n import N_, _
from analytics.storage.contract import orders
from analytics.storage.db import Bind, read_frame

#: The named segments, best first.
SEGMENTS: tuple[str, ...] = (
    N_("Champions"), N_("Loyal"), N_("Potential Loyalist"), N_("New"), N_("Promising"), N_("Need Attention"),
    N_("About to Sleep"), N_("At Risk"), N_("Can't Lose Them"), N_("Hibernating"), N_("Lost"),
)
SEGMENT_HELP: dict[str, str] = {
    "Champions": N_("Bought very recently, often and for a lot."),
    "Loyal": N_("Buy often and for a lot; not all of them very recently."),
    "Potential Loyalist": N_("Recent, with some repeat buying: could become loyal."),
    "New": N_("Bought very recently, but only once or for little."),
    "Promising": N_("Recent, still few and small orders."),
    "Need Attention": N_("Middling on every count."),
    "About to Sleep": N_("Getting quiet, and were never large buyers."),
    "At Risk": N_("Used to buy often and for a lot, but not for a long time."),
    "Can't Lose Them": N_("Among the best buyers ever, and gone quiet."),
    "Hibernating": N_("Long since the last, small orders."),
    "Lost": N_("Lowest recency and value."),
}
#: Segment of each (R score, FM score): rows R 5..1, columns FM 1..5.
_GRID_ROWS = {
    5: ("New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalist", "Potential Loyalist", "Loyal", "Champions"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Lost", "At Risk", "At Risk", "Can't Lose Them"),
}
#: Members with a completed order before the range and none in it (through the same filters): not scored.
LAPSED = N_("Lapsed")
LAPSED_HELP = N_("Bought before this range, but not in it: no completed order in the range.")
#: Every group a member of the shop can be in for a range: the scored segments, then the lapsed.
GROUPS: tuple[str, ...] = (*SEGMENTS, LAPSED)
DEFAULT_GRID: dict[tuple[int, int], str] = {
    (r, fm): segment for r, row in _GRID_ROWS.items() for fm, segment in enumerate(row, start=1)
}
MEMBER_COLUMNS = ["member_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
                  "fm_score", "segment"]


def check_grid(grid: Mapping[tuple[int, int], str]) -> dict[tuple[int, int], str]:
    """The grid as a plain dict, refusing one that misses a cell or names an unknown segment."""
    cells = {(int(r), int(fm)): str(s) for (r, fm), s in grid.items()}
    missing = sorted(set(DEFAULT_GRID) - set(cells))
    if missing:
        raise InputError(_("The segment grid has no segment for R, FM = {cell}; every one of the 25 cells needs "
                           "one.").format(cell=missing[0]))
    unknown = sorted({s for s in cells.values() if s not in SEGMENTS})
    if unknown:
        raise InputError(_("Unknown segment {name}; choose from {names}.").format(
            name=repr(unknown[0]), names=", ".join(segment_label(s) for s in SEGMENTS)))
    return cells


def _score(worse_first: Any) -> Any:
    """1 + floor(5 x (members strictly worse) / members), given an ordering that puts the worst
    first: RANK is one more than the number of members strictly before (ties share a rank)."""
    worse = func.rank().over(order_by=worse_first) - 1
    return cast(func.floor(literal(5.0) * worse / func.count().over()), Integer) + 1


def member_rfm(filters: Filters, grid: Mapping[tuple[int, int], str] | None = None) -> Subquery:
    """One row per member with an order in the window: ``member_id``, ``recency_days``, ``frequency``,
    ``monetary``, ``r_score``, ``f_score``, ``m_score``, ``fm_score``, ``segment``."""
    cells = check_grid(grid or DEFAULT_GRID)
    o = orders.c
    bought = (select(o.member_id.label("member_id"), func.max(o.ordered_at).label("last_at"),
                     func.count().label("frequency"), func.sum(o.net_amount).label("monetary"))
              .where(o.member_id.is_not(None), *completed_order_conditions(filters, filters.start_ts, filters.end_ts))
              .group_by(o.member_id).subquery("bought"))
    recency = (literal(filters.end, Date) - cast(bought.c.last_at, Date)).label("recency_days")
    valued = select(bought.c.member_id, recency, bought.c.frequency, bought.c.monetary).subquery("valued")
    v = valued.c
    scored = select(valued, _score(v.recency_days.desc()).label("r_score"), _score(v.frequency).label("f_score"),
                    _score(v.monetary).label("m_score")).subquery("scored")
    s = scored.c
    fm = cast(func.floor((s.f_score + s.m_score + 1) / literal(2.0)), Integer)
    with_fm = select(scored, fm.label("fm_score")).subquery("with_fm")
    w = with_fm.c
    segment = case(*(((w.r_score == r) & (w.fm_score == f), literal(name)) for (r, f), name in sorted(cells.items())))
    return select(*(w[c] for c in MEMBER_COLUMNS[:-1]), segment.label("segment")).subquery("rfm")


def rfm_members(bind: Bind, filters: Filters, grid: Mapping[tuple[int, int], str] | None = None) -> pd.DataFrame:
    """Every scored member (see :func:`member_rfm`), ordered by member id."""
    rfm = member_rfm(filters, grid)
    frame = read_frame(bind, select(rfm).order_by(rfm.c.member_id))
    if frame.empty:
        return pd.DataFrame(columns=MEMBER_COLUMNS)
    return frame.astype({"recency_days": "int64", "frequency": "int64", "monetary": "float64", "r_score": "int64",
                         "f_score": "int64", "m_score": "int64", "fm_score": "int64"})


def segment_summary(bind: Bind, filters: Filters, grid: Mapping[tuple[int, int], str] | None = None) -> pd.DataFrame:
    """Per segment (all of :data:`SEGMENTS`, best first): ``members``, ``sales``, ``orders``,
    ``member_share``, ``sales_share``, ``aov`` (sales / orders) and ``avg_recency_days``."""
    rfm = member_rfm(filters, grid)
    r = rfm.c
    frame = read_frame(bind, select(r.segment, func.count().label("members"), func.sum(r.monetary).label("sales"),
                                    func.sum(r.frequency).label("orders"),
                                    func.avg(r.recency_days).label("avg_recency_days")).group_by(r.segment))
    frame = frame.astype({"sales": "float64", "avg_recency_days": "float64"})
    frame = pd.DataFrame({"segment": SEGMENTS}).merge(frame, on="segment", how="left")
    frame[["members", "orders"]] = frame[["members", "orders"]].fillna(0).astype("int64")
    frame["sales"] = frame["sales"].fillna(0.0)
    frame["member_share"] = frame["members"] / max(int(frame["members"].sum()), 1)
    frame["sales_share"] = frame["sales"] / (frame["sales"].sum() or 1.0)
    frame["aov"] = frame["sales"] / frame["orders"].where(frame["orders"] > 0)
    return frame[["segment", "members", "member_share", "sales", "sales_share", "orders", "aov", "avg_recency_days"]]


#: Groups of segments the RFM page sums on a card, named by their parts (one name, one set of members).
COMBINED: dict[str, tuple[str, ...]] = {N_("Champions + Loyal"): ("Champions", "Loyal"),
                                        N_("At Risk + Can't Lose Them"): ("At Risk", "Can't Lose Them")}


def segment_label(name: str) -> str:
    """A segment's or group's name as the reader reads it (:data:`SEGMENTS`, :data:`LAPSED`, :data:`NO_PURCHASE`,
    the :data:`COMBINED` groups): the names themselves stay English, as identifiers in grids, audiences and data."""
    return _(name)


def segment_meaning(name: str) -> str:
    """What a segment (or the lapsed) means, in the reader's language."""
    return _(LAPSED_HELP if name == LAPSED else SEGMENT_HELP[name])


def with_lapsed(summary: pd.DataFrame, lapsed: LapsedSummary) -> pd.DataFrame:
    """The segment summary with the lapsed as a last row (:data:`LAPSED`): their members, no sales or orders in the
    range, and the days since their last order (before the range) on average; shares of the scored members do not
    apply to them (missing)."""
    row = pd.DataFrame([{"segment": LAPSED, "members": lapsed.members, "member_share": float("nan"), "sales": 0.0,
                         "sales_share": 0.0, "orders": 0, "aov": float("nan"),
                         "avg_recency_days": lapsed.avg_days_since_last_order
                         if lapsed.avg_days_since_last_order is not None else float("nan")}])
    return pd.concat([summary, row[summary.columns]], ignore_index=True)


def score_grid(bind: Bind, filters: Filters, across: str = "f_score") -> pd.DataFrame:
    """Members per R score x F score (or ``m_score``, ``fm_score``): ``r_score``, ``score``, ``members``."""
    if across not in ("f_score", "m_score", "fm_score"):
        raise InputError(_("across must be f_score, m_score or fm_score"))
    rfm = member_rfm(filters)
    r = rfm.c
    frame = read_frame(bind, select(r.r_score, r[across].label("score"), func.count().label("members"))
                       .group_by(r.r_score, r[across]))
    full = pd.MultiIndex.from_product([range(1, 6), range(1, 6)], names=["r_score", "score"]).to_frame(index=False)
    frame = full.merge(frame.astype({"r_score": "int64", "score": "int64"}), how="left", on=["r_score", "score"])
    frame["members"] = frame["members"].fillna(0).astype("int64")
    return frame


NO_PURCHASE = N_("(no purchase)")


def _before_conditions(filters: Filters) -> list[Any]:
    """Completed member orders placed before the range, through its channel and tier filters."""
    o = orders.c
    conditions = [o.member_id.is_not(None), o.status == "completed", o.ordered_at < filters.start_ts]
    if filters.channels:
        conditions.append(o.channel.in_(filters.channels))
    if filters.tiers:
        conditions.append(o.member_id.in_(members_in_tiers(filters.tiers)))
    return conditions


def lapsed_members(filters: Filters) -> Subquery:
    """The lapsed (:data:`LAPSED`): ``member_id``, ``last_at`` (their last completed order, before the range) and
    ``sales_before`` (net sales of their completed orders before the range), one row each."""
    o = orders.c
    before = (select(o.member_id.label("member_id"), func.max(o.ordered_at).label("last_at"),
                     func.sum(o.net_amount).label("sales_before"))
              .where(*_before_conditions(filters)).group_by(o.member_id).subquery("before_range"))
    in_range = (select(o.member_id.label("member_id"))
                .where(o.member_id.is_not(None), *completed_order_conditions(filters, filters.start_ts, filters.end_ts))
                .group_by(o.member_id).subquery("in_range"))
    return (select(before.c.member_id, before.c.last_at, before.c.sales_before)
            .select_from(before.outerjoin(in_range, in_range.c.member_id == before.c.member_id))
            .where(in_range.c.member_id.is_(None)).subquery("lapsed"))


@dataclass(frozen=True)
class LapsedSummary:
    """The lapsed of a range (:data:`LAPSED`): how many, how long since their last order on average (days to the
    range's last day), and what they spent before the range."""

    members: int
    avg_days_since_last_order: float | None
    sales_before: float


def lapsed_summary(bind: Bind, filters: Filters) -> LapsedSummary:
    """How many members lapsed (see :func:`lapsed_members`), in one statement."""
    lapsed = lapsed_members(filters)
    days = literal(filters.end, Date) - cast(lapsed.c.last_at, Date)
    frame = read_frame(bind, select(func.count().label("members"), func.avg(days).label("days"),
                                    func.sum(lapsed.c.sales_before).label("sales")))
    row = frame.iloc[0]
    members = int(row["members"] or 0)
    return LapsedSummary(members, float(row["days"]) if members else None,
                         float(row["sales"]) if members and row["sales"] is not None else 0.0)


def segment_migration(bind: Bind, before: Filters, after: Filters,
                      grid: Mapping[tuple[int, int], str] | None = None) -> pd.DataFrame:
    """Members per (segment ``before``, segment ``after``): who moved where between two windows.
    A member scored in only one window is ``(no purchase)`` in the other."""
    pairs = migration_pairs(before, after, grid)
    query = select(pairs.c.before, pairs.c.after, func.count().label("members")).group_by(pairs.c.before,
                                                                                          pairs.c.after)
    frame = read_frame(bind, query)
    return frame.astype({"members": "int64"}).sort_values(["before", "after"], ignore_index=True)


def segment_member_ids(filters: Filters, segments: tuple[str, ...],
                       grid: Mapping[tuple[int, int], str] | None = None) -> Select:
    """The members of these RFM segments in the window (for member lists and audiences); :data:`LAPSED` among
    ``segments`` adds the lapsed."""
    scored = [s for s in segments if s != LAPSED]
    parts: list[Select] = []
    if scored:
        rfm = member_rfm(filters, grid)
        parts.append(select(rfm.c.member_id).where(rfm.c.segment.in_(scored)))
    if LAPSED in segments:
        parts.append(select(lapsed_members(filters).c.member_id))
    if len(parts) == 1:
        return parts[0]
    both = union_all(*parts).subquery("groups")
    return select(both.c.member_id)


def migration_pairs(before: Filters, after: Filters, grid: Mapping[tuple[int, int], str] | None = None) -> Subquery:
    """One row per member scored in either window: ``member_id``, ``before``, ``after`` (their segment in each,
    :data:`NO_PURCHASE` where not scored)."""
    first, second = member_rfm(before, grid).alias("first"), member_rfm(after, grid).alias("second")
    joined = first.join(second, first.c.member_id == second.c.member_id, full=True)
    return select(func.coalesce(first.c.member_id, second.c.member_id).label("member_id"),
                  func.coalesce(first.c.segment, NO_PURCHASE).label("before"),
                  func.coalesce(second.c.segment, NO_PURCHASE).label("after")).select_from(joined).subquery("pairs")


Grid = tuple[tuple[int, int, str], ...]
"""A segment grid as data: ``(R score, FM score, segment)`` per cell, sorted (hashable, JSON-ready)."""


def grid_cells(grid: Mapping[tuple[int, int], str] | None = None) -> Grid:
    """A checked grid as sorted ``(R, FM, segment)`` triples (the default grid when none is given)."""
    return tuple((r, fm, name) for (r, fm), name in sorted(check_grid(grid or DEFAULT_GRID).items()))


@audience_kind
@dataclass(frozen=True)
class RfmSegmentAudience(Audience):
    """The members of some RFM segments in a window, under a segment grid."""

    kind: ClassVar[str] = "rfm_segment"
    label: ClassVar[str] = N_("RFM segment")
    keys: ClassVar[frozenset[str]] = frozenset({"segments", "start", "end", "channels", "tiers", "grid"})

    window: Filters
    segments: tuple[str, ...]
    grid: Grid = ()

    def __post_init__(self) -> None:
        unknown = [s for s in self.segments if s not in GROUPS]
        if unknown or not self.segments:
            raise InputError(_("Unknown segment {name}; choose from {names}.").format(
                name=repr(unknown[0]), names=", ".join(segment_label(s) for s in GROUPS)) if unknown
                else _("Choose at least one segment."))
        object.__setattr__(self, "grid", grid_cells({(r, fm): name for r, fm, name in self.grid} or None))

    @property
    def cells(self) -> dict[tuple[int, int], str]:
        return {(r, fm): name for r, fm, name in self.grid}

    def member_ids(self) -> Select:
        return segment_member_ids(self.window, self.segments, self.cells)

    def describe(self) -> str:
        return f"RFM segments {', '.join(self.segments)}"

    def title(self) -> str:
        return _("RFM segments {names}").format(names=", ".join(segment_label(s) for s in self.segments))

    def body(self) -> dict[str, Any]:
        return {"segments": list(self.segments), **audiences.window_body(self.window),
                "grid": [[r, fm, name] for r, fm, name in self.grid]}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> RfmSegmentAudience:
        return cls(audiences.window(data), audiences.texts(data, "segments", limit=len(GROUPS)),
                   _grid_from_json(data["grid"]))


def _grid_from_json(grid: Any) -> Grid:
    if not isinstance(grid, list) or len(grid) > 25 or not all(isinstance(c, list) and len(c) == 3 for c in grid):
        raise InputError(_('"grid" is a list of 25 [R score, FM score, segment] cells.'))
    return tuple((int(r), int(fm), str(name)) for r, fm, name in grid)


def segment_audience(filters: Filters, segments: tuple[str, ...],
                     grid: Mapping[tuple[int, int], str] | None = None) -> RfmSegmentAudience:
    """The targeting audience of the members of these RFM segments in the window."""
    return RfmSegmentAudience(filters, tuple(segments), grid_cells(grid))


#: Where a member can be in a migration: a segment, or no completed order in that period.
MIGRATION_STATES: tuple[str, ...] = (*SEGMENTS, NO_PURCHASE)


@audience_kind
@dataclass(frozen=True)
class RfmMigrationAudience(Audience):
    """The members who moved from some segments in the previous period of equal length to some segments in this
    window (a cell of the migration matrix or a flow of the Sankey); :data:`NO_PURCHASE` stands for no completed
    order in that period (Champions -> no purchase: last period's Champions who bought nothing in this one)."""

    kind: ClassVar[str] = "rfm_migration"
    label: ClassVar[str] = N_("RFM migration")
    keys: ClassVar[frozenset[str]] = frozenset({"from_segments", "to_segments", "start", "end", "channels", "tiers",
                                                "grid"})

    window: Filters
    from_segments: tuple[str, ...]
    to_segments: tuple[str, ...]
    grid: Grid = ()

    def __post_init__(self) -> None:
        for side in (self.from_segments, self.to_segments):
            unknown = [s for s in side if s not in MIGRATION_STATES]
            if unknown or not side:
                raise InputError(_("Unknown segment {name}; choose from {names}.").format(
                    name=repr(unknown[0]), names=", ".join(segment_label(s) for s in MIGRATION_STATES)) if unknown
                    else _("Choose at least one segment on each side of the migration."))
        if set(self.from_segments) == set(self.to_segments) == {NO_PURCHASE}:
            raise InputError(_("Nobody moves from no purchase to no purchase: members without an order in either "
                               "period are not part of the migration (see the lapsed group instead)."))
        object.__setattr__(self, "grid", grid_cells({(r, fm): name for r, fm, name in self.grid} or None))

    @property
    def previous(self) -> Filters:
        """The earlier period: of equal length, ending the day before the window starts."""
        return self.window.previous()

    def member_ids(self) -> Select:
        pairs = migration_pairs(self.previous, self.window, {(r, fm): name for r, fm, name in self.grid})
        return select(pairs.c.member_id).where(pairs.c.before.in_(self.from_segments),
                                               pairs.c.after.in_(self.to_segments))

    def describe(self) -> str:
        return f"RFM migration {', '.join(self.from_segments)} → {', '.join(self.to_segments)}"

    def title(self) -> str:
        return _("RFM migration {before} → {after}").format(
            before=", ".join(segment_label(s) for s in self.from_segments),
            after=", ".join(segment_label(s) for s in self.to_segments))

    def body(self) -> dict[str, Any]:
        return {"from_segments": list(self.from_segments), "to_segments": list(self.to_segments),
                **audiences.window_body(self.window), "grid": [[r, fm, name] for r, fm, name in self.grid]}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> RfmMigrationAudience:
        limit = len(MIGRATION_STATES)
        return cls(audiences.window(data), audiences.texts(data, "from_segments", limit=limit),
                   audiences.texts(data, "to_segments", limit=limit), _grid_from_json(data["grid"]))


def migration_audience(filters: Filters, from_segment: str, to_segment: str,
                       grid: Mapping[tuple[int, int], str] | None = None) -> RfmMigrationAudience:
    """The members of one migration cell: ``from_segment`` in the previous period, ``to_segment`` in ``filters``."""
    return RfmMigrationAudience(filters, (from_segment,), (to_segment,), grid_cells(grid))
