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

Everything is SQL in the warehouse (window functions ``RANK`` and ``COUNT`` over the members); only
per-segment aggregates, or one row per member when asked for, leave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import Date, Integer, Select, Subquery, case, cast, func, literal, select

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError
from analytics.filters import Filters, completed_order_conditions
from analytics.storage.contract import orders
from analytics.storage.db import Bind, read_frame

#: The named segments, best first.
SEGMENTS: tuple[str, ...] = (
    "Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention", "About to Sleep",
    "At Risk", "Can't Lose Them", "Hibernating", "Lost",
)
SEGMENT_HELP: dict[str, str] = {
    "Champions": "Bought very recently, often and for a lot.",
    "Loyal": "Buy often and for a lot; not all of them very recently.",
    "Potential Loyalist": "Recent, with some repeat buying: could become loyal.",
    "New": "Bought very recently, but only once or for little.",
    "Promising": "Recent, still few and small orders.",
    "Need Attention": "Middling on every count.",
    "About to Sleep": "Getting quiet, and were never large buyers.",
    "At Risk": "Used to buy often and for a lot, but not for a long time.",
    "Can't Lose Them": "Among the best buyers ever, and gone quiet.",
    "Hibernating": "Long since the last, small orders.",
    "Lost": "Lowest recency and value.",
}
#: Segment of each (R score, FM score): rows R 5..1, columns FM 1..5.
_GRID_ROWS = {
    5: ("New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalist", "Potential Loyalist", "Loyal", "Champions"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Lost", "At Risk", "At Risk", "Can't Lose Them"),
}
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
        raise InputError(f"The segment grid has no segment for R, FM = {missing[0]}; every one of the 25 cells needs "
                         "one.")
    unknown = sorted({s for s in cells.values() if s not in SEGMENTS})
    if unknown:
        raise InputError(f"Unknown segment {unknown[0]!r}; choose from {', '.join(SEGMENTS)}.")
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


def score_grid(bind: Bind, filters: Filters, across: str = "f_score") -> pd.DataFrame:
    """Members per R score x F score (or ``m_score``, ``fm_score``): ``r_score``, ``score``, ``members``."""
    if across not in ("f_score", "m_score", "fm_score"):
        raise InputError("across must be f_score, m_score or fm_score")
    rfm = member_rfm(filters)
    r = rfm.c
    frame = read_frame(bind, select(r.r_score, r[across].label("score"), func.count().label("members"))
                       .group_by(r.r_score, r[across]))
    full = pd.MultiIndex.from_product([range(1, 6), range(1, 6)], names=["r_score", "score"]).to_frame(index=False)
    frame = full.merge(frame.astype({"r_score": "int64", "score": "int64"}), how="left", on=["r_score", "score"])
    frame["members"] = frame["members"].fillna(0).astype("int64")
    return frame


NO_PURCHASE = "(no purchase)"


def segment_migration(bind: Bind, before: Filters, after: Filters,
                      grid: Mapping[tuple[int, int], str] | None = None) -> pd.DataFrame:
    """Members per (segment ``before``, segment ``after``): who moved where between two windows.
    A member scored in only one window is ``(no purchase)`` in the other."""
    first, second = member_rfm(before, grid).alias("first"), member_rfm(after, grid).alias("second")
    joined = first.join(second, first.c.member_id == second.c.member_id, full=True)
    pairs = select(func.coalesce(first.c.segment, NO_PURCHASE).label("before"),
                   func.coalesce(second.c.segment, NO_PURCHASE).label("after")).select_from(joined).subquery("pairs")
    query = select(pairs.c.before, pairs.c.after, func.count().label("members")).group_by(pairs.c.before,
                                                                                          pairs.c.after)
    frame = read_frame(bind, query)
    return frame.astype({"members": "int64"}).sort_values(["before", "after"], ignore_index=True)


def segment_member_ids(filters: Filters, segments: tuple[str, ...],
                       grid: Mapping[tuple[int, int], str] | None = None) -> Select:
    """The members of these RFM segments in the window (for member lists and audiences)."""
    rfm = member_rfm(filters, grid)
    return select(rfm.c.member_id).where(rfm.c.segment.in_(segments))


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
    label: ClassVar[str] = "RFM segment"
    keys: ClassVar[frozenset[str]] = frozenset({"segments", "start", "end", "channels", "tiers", "grid"})

    window: Filters
    segments: tuple[str, ...]
    grid: Grid = ()

    def __post_init__(self) -> None:
        unknown = [s for s in self.segments if s not in SEGMENTS]
        if unknown or not self.segments:
            raise InputError(f"Unknown segment {unknown[0]!r}; choose from {', '.join(SEGMENTS)}." if unknown
                             else "Choose at least one segment.")
        object.__setattr__(self, "grid", grid_cells({(r, fm): name for r, fm, name in self.grid} or None))

    @property
    def cells(self) -> dict[tuple[int, int], str]:
        return {(r, fm): name for r, fm, name in self.grid}

    def member_ids(self) -> Select:
        return segment_member_ids(self.window, self.segments, self.cells)

    def describe(self) -> str:
        return f"RFM segments {', '.join(self.segments)}"

    def body(self) -> dict[str, Any]:
        return {"segments": list(self.segments), **audiences.window_body(self.window),
                "grid": [[r, fm, name] for r, fm, name in self.grid]}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> RfmSegmentAudience:
        grid = data["grid"]
        if not isinstance(grid, list) or len(grid) > 25 or not all(isinstance(c, list) and len(c) == 3 for c in grid):
            raise InputError('"grid" is a list of 25 [R score, FM score, segment] cells.')
        return cls(audiences.window(data), audiences.texts(data, "segments", limit=len(SEGMENTS)),
                   tuple((int(r), int(fm), str(name)) for r, fm, name in grid))


def segment_audience(filters: Filters, segments: tuple[str, ...],
                     grid: Mapping[tuple[int, int], str] | None = None) -> RfmSegmentAudience:
    """The targeting audience of the members of these RFM segments in the window."""
    return RfmSegmentAudience(filters, tuple(segments), grid_cells(grid))
