"""Conversion funnels over the clickstream, computed in the warehouse.

A funnel is 2-8 **steps**, each an event type with optional filters (product category, page,
device, source), a **conversion window** counted from step 1, an **order mode** and a **unit**
(a member, or a session). Definitions, shared by the page, the command line and the tests:

* **Order of events.** A unit's events are ordered by time, then by ``event_id``: events with the
  same timestamp count in id order, so every result is deterministic. One event fills at most one
  step of an attempt.
* **Attempt.** Every event matching step 1 that falls inside the date range starts an attempt; an
  attempt reaches step *k* when steps 2..*k* are completed no later than ``window`` after its
  start. Events before the start never count; later steps may fall after the end of the range (up
  to one window).

  - *ordered*: each step is an event after the previous step's, other events allowed between; each
    step takes the first matching event after the previous one.
  - *strict*: each step is the unit's very next tracked event (any event type) after the previous
    step's.
  - *any*: steps 2..*k* each have a matching event after the start, in any order; a step repeated
    in the funnel needs as many distinct events. Steps with different but overlapping filters may
    be filled by one event. Step *k* is completed when the last of steps 2..*k* is.

* **Best attempt.** A unit counts once, with its best attempt: the one reaching the furthest step,
  then the one completing it first, then the one that started latest (the tightest). Its step-1
  event is the unit's **entry**, which dates it (trend) and attributes it (breakdown, first touch).
* **Figures.** ``units`` at step *k* = units whose best attempt reached *k*; ``overall_conversion``
  = units(k) / units(1); ``step_conversion`` = units(k) / units(k-1); ``dropped`` = units(k-1) -
  units(k); ``seconds_to_convert`` = time from completing step *k-1* to completing step *k* in the
  best attempt (median and 90th percentile over the units that reached *k*).
* **Units.** *member*: events of anonymous visitors are left out. *session*: one funnel per
  session; its member (for the breakdown and the audience) is the entry event's.
* **Global filters.** The date range selects the entries; the tier filter keeps members of those
  tiers (and so leaves anonymous visitors out). The channel filter applies to orders, which
  clickstream events do not carry, so funnels ignore it.

Everything runs as one SQL statement per result, with window functions that both DuckDB and
PostgreSQL run: the events matching a step are numbered per unit, each row learns (by a running
``MIN`` over the rows after it) which event next matches each step, and attempts follow those
links with equi-joins. Only aggregates leave the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Double,
    Select,
    Subquery,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
)

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError
from analytics.filters import Filters, member_conditions
from analytics.funnel_spec import (
    DIMENSIONS,
    EVENT_DIMENSIONS,
    MAX_STEPS,
    MAX_WINDOW_SECONDS,
    MEMBER_DIMENSIONS,
    METRIC_HELP,
    MIN_STEPS,
    MODES,
    STEP_FILTERS,
    TIME_BINS,
    UNITS,
    FunnelSpec,
    FunnelStep,
    Mode,
    Unit,
    format_seconds,
    parse_steps,
    parse_window,
    step_filter_options,
)
from analytics.sqlparts import Grain, date_trunc
from analytics.storage.contract import events, members, products
from analytics.storage.db import Bind, connection, read_frame

__all__ = [
    "DIMENSIONS", "EVENT_DIMENSIONS", "MAX_STEPS", "MAX_WINDOW_SECONDS", "MEMBER_DIMENSIONS", "METRIC_HELP",
    "MIN_STEPS", "MODES", "STEP_FILTERS", "TIME_BINS", "UNITS", "FunnelDropoffAudience", "FunnelReport",
    "FunnelSpec", "FunnelStep", "Mode", "Unit", "best_attempts", "dropoff_audience", "dropoff_member_ids",
    "format_seconds", "funnel_report", "funnel_trend", "parse_steps", "parse_window", "step_filter_options",
]


# ---------------------------------------------------------------------------------------------
# The best attempt of every unit, as a subquery
# ---------------------------------------------------------------------------------------------

def _epoch(column: ColumnElement[Any]) -> ColumnElement[float]:
    return cast(extract("epoch", column), Double)


def _definitions(spec: FunnelSpec) -> tuple[list[FunnelStep], list[int]]:
    """The distinct step definitions and, per step, the index of its definition."""
    defs: list[FunnelStep] = []
    for step in spec.steps:
        if step not in defs:
            defs.append(step)
    return defs, [defs.index(s) for s in spec.steps]


def _step_condition(step: FunnelStep, category: ColumnElement[Any] | None) -> ColumnElement[bool]:
    e = events.c
    conditions = [e.event_type == step.event_type]
    if step.category is not None and category is not None:
        conditions.append(category == step.category)
    for name in ("page", "device", "source"):
        if getattr(step, name) is not None:
            conditions.append(e[name] == getattr(step, name))
    return and_(*conditions)


def _matching_events(spec: FunnelSpec, filters: Filters, defs: list[FunnelStep], only_matching: bool) -> Select:
    """Events in scope with ``unit``, ``ts``, ``ep`` (epoch seconds), entry attributes and one 0/1
    flag ``m<d>`` per step definition; only those matching some step unless ``only_matching`` is off."""
    e, p = events.c, products.c
    needs_category = any(d.category is not None for d in defs)
    category = p.category if needs_category else None
    unit = e.member_id if spec.unit == "member" else e.session_id
    conditions = [unit.is_not(None), e.occurred_at >= filters.start_ts,
                  e.occurred_at < filters.end_ts + timedelta(seconds=spec.window_seconds)]
    conditions += member_conditions(filters, e.member_id)
    matches = [_step_condition(d, category) for d in defs]
    if only_matching:
        conditions.append(or_(*matches))
    source = events.outerjoin(products, p.product_id == e.product_id) if needs_category else events
    return (select(unit.label("unit"), e.event_id.label("event_id"), e.occurred_at.label("ts"),
                   _epoch(e.occurred_at).label("ep"), e.member_id.label("member_id"),
                   *(e[d].label(d) for d in EVENT_DIMENSIONS),
                   *(case((m, 1), else_=0).label(f"m{i}") for i, m in enumerate(matches)))
            .select_from(source).where(*conditions))


def _entry_columns(row: Any) -> list[ColumnElement[Any]]:
    return [row.c.unit, row.c.member_id, row.c.event_id.label("entry_id"), row.c.ts.label("entry_at"),
            row.c.ep.label("ep1"),
            *(row.c[d] for d in EVENT_DIMENSIONS)]


def _in_range(row: Any, filters: Filters) -> list[ColumnElement[bool]]:
    return [row.c.ts >= filters.start_ts, row.c.ts < filters.end_ts]


def _ordered_attempts(spec: FunnelSpec, filters: Filters) -> Select:
    """Attempts in ordered or any-order mode: one row per followed start with ``ep2..epN``.

    One window pass numbers each unit's matches of every step definition (``c<d>``: how many
    matches so far), so "the next match of step k after this row" is the match numbered one more,
    reached by an equi-join on (unit, number) without any per-row search.
    """
    defs, step_def = _definitions(spec)
    n = len(spec.steps)
    base = _matching_events(spec, filters, defs, only_matching=True).subquery("matching")
    order = {"partition_by": base.c.unit, "order_by": (base.c.ts, base.c.event_id)}
    is_start = and_(base.c[f"m{step_def[0]}"] == 1, *_in_range(base, filters))
    counted = [func.sum(base.c[f"m{d}"]).over(**order, rows=(None, 0)).label(f"c{d}") for d in sorted(set(step_def))]
    if spec.mode == "ordered":
        # A start directly followed by another start that is not a step-2 match takes the same path
        # later and tighter, so it cannot be the best attempt, unless no attempt gets past step 1:
        # then the best is the unit's earliest start (the last of those at that same moment, as the
        # ranking breaks ties by the later event). Only the other starts are followed.
        start_flag = case((is_start, 1), else_=0)
        counted += [func.lead(start_flag).over(**order).label("next_start"),
                    func.lead(base.c[f"m{step_def[1]}"]).over(**order).label("next_second"),
                    func.lead(base.c.ts).over(**order).label("next_at"),
                    # the same ordered window as the rest (a running minimum): one pass, not two
                    func.min(case((is_start, base.c.ts))).over(**order, rows=(None, 0)).label("first_start_at")]
    linked = select(base, *counted).cte("linked")
    start = linked.alias("start")
    starts = [start.c[f"m{step_def[0]}"] == 1, *_in_range(start, filters)]
    if spec.mode == "ordered":
        earliest = and_(start.c.ts == start.c.first_start_at,
                        or_(start.c.next_at.is_(None), start.c.next_at > start.c.ts))
        starts.append(or_(start.c.next_start.is_(None), start.c.next_start == 0, start.c.next_second == 1, earliest))
    columns = _entry_columns(start)
    source: Any = start

    def next_match(after: Any, d: int, j: int, name: str) -> Any:
        """Join the ``j``-th match of definition ``d`` after row ``after``."""
        nonlocal source
        hop = linked.alias(name)
        source = source.outerjoin(hop, and_(hop.c.unit == after.c.unit, hop.c[f"m{d}"] == 1,
                                            hop.c[f"c{d}"] == after.c[f"c{d}"] + j))
        return hop

    if spec.mode == "ordered":
        previous = start
        for k in range(1, n):
            previous = next_match(previous, step_def[k], 1, f"step{k + 1}")
            columns.append(previous.c.ep.label(f"ep{k + 1}"))
    else:
        found = []
        for k in range(1, n):
            d = step_def[k]
            found.append(next_match(start, d, step_def[1:k + 1].count(d), f"step{k + 1}").c.ep)
        for k in range(1, n):
            # Completed when the last of steps 2..k is; missing when any of them is.
            done = found[0] if k == 1 else func.greatest(*found[:k])
            missing = or_(*(f.is_(None) for f in found[:k]))
            columns.append(case((missing, null()), else_=done).label(f"ep{k + 1}"))
    return select(*columns).select_from(source).where(*starts)


def _strict_attempts(spec: FunnelSpec, filters: Filters) -> Select:
    """Attempts in strict mode: the steps are the unit's consecutive events from the start."""
    defs, step_def = _definitions(spec)
    base = _matching_events(spec, filters, defs, only_matching=False).subquery("tracked")
    order = {"partition_by": base.c.unit, "order_by": (base.c.ts, base.c.event_id)}
    ahead = []
    for k in range(1, len(spec.steps)):
        offset = literal_column(str(k))
        ahead += [func.lead(base.c[f"m{step_def[k]}"], offset).over(**order).label(f"lm{k + 1}"),
                  func.lead(base.c.ep, offset).over(**order).label(f"lep{k + 1}")]
    looked = select(base, *ahead).subquery("looked")
    columns = _entry_columns(looked)
    for k in range(2, len(spec.steps) + 1):
        chained = and_(*(looked.c[f"lm{j}"] == 1 for j in range(2, k + 1)))
        columns.append(case((chained, looked.c[f"lep{k}"]), else_=null()).label(f"ep{k}"))
    return select(*columns).where(looked.c[f"m{step_def[0]}"] == 1, *_in_range(looked, filters))


def best_attempts(spec: FunnelSpec, filters: Filters, breakdown: str | None = None) -> Subquery:
    """One row per unit that entered the funnel in the range: ``unit``, ``member_id``, ``entry_id`` and
    ``entry_at`` (its step-1 event),
    ``reached`` (1..N), ``sec2..secN`` (seconds from completing step k-1 to step k; missing when
    not reached), ``sec_total`` (from step 1 to the last step, for units that reached it) and, with
    a breakdown, ``dim``."""
    if breakdown is not None and breakdown not in DIMENSIONS:
        raise InputError(f"Unknown breakdown {breakdown!r}; choose from {', '.join(DIMENSIONS)}.")
    n = len(spec.steps)
    attempts = (_strict_attempts if spec.mode == "strict" else _ordered_attempts)(spec, filters).subquery("attempts")
    a = attempts.c
    limit = a.ep1 + spec.window_seconds
    within = [and_(a[f"ep{k}"].is_not(None), a[f"ep{k}"] <= limit) for k in range(2, n + 1)]
    # Completion times never decrease along an attempt, so the reached steps form a prefix.
    reached = literal(1)
    for ok in within:
        reached = reached + case((ok, 1), else_=0)
    scored = select(attempts, reached.label("reached")).subquery("scored")
    s = scored.c
    finish = case(*((s.reached == k, s[f"ep{k}"]) for k in range(2, n + 1)), else_=s.ep1)
    rank = func.row_number().over(partition_by=s.unit, order_by=(s.reached.desc(), finish, s.ep1.desc(),
                                                                          s.entry_id.desc()))
    ranked = select(scored, rank.label("attempt_rank")).subquery("ranked")
    r = ranked.c
    seconds = [case((r.reached >= k, r[f"ep{k}"] - r[f"ep{k - 1}"]), else_=null()).label(f"sec{k}")
               for k in range(2, n + 1)]
    to_last = case((r.reached == n, r[f"ep{n}"] - r.ep1), else_=null()).label("sec_total")
    columns = [r.unit, r.member_id, r.entry_id, r.entry_at, r.reached, *seconds, to_last]
    source: Any = ranked
    if breakdown in EVENT_DIMENSIONS:
        columns.append(r[breakdown].label("dim"))
    elif breakdown is not None:
        source = ranked.outerjoin(members, members.c.member_id == r.member_id)
        columns.append(members.c[breakdown].label("dim"))
    return select(*columns).select_from(source).where(r.attempt_rank == 1).subquery("best")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FunnelReport:
    """Everything the funnel chart shows, from one statement.

    ``steps``: one row per step (and breakdown value, first the total with ``dim`` = None):
    ``step``, ``label``, ``units``, ``overall_conversion``, ``step_conversion``, ``dropped``,
    ``median_seconds_to_convert``, ``p90_seconds_to_convert``.
    ``histogram``: the total's time to convert per step (2..N) and bin: ``step``, ``bin``, ``units``.
    ``median_seconds_to_last``: median time from step 1 to the last step of the units that got there.
    """

    spec: FunnelSpec
    breakdown: str | None
    steps: pd.DataFrame
    histogram: pd.DataFrame
    median_seconds_to_last: float | None = None

    @property
    def total(self) -> pd.DataFrame:
        return self.steps[self.steps["is_total"]].drop(columns=["is_total", "dim"]).reset_index(drop=True)

    @property
    def by_dimension(self) -> pd.DataFrame:
        return self.steps[~self.steps["is_total"]].drop(columns="is_total").reset_index(drop=True)


def funnel_report(bind: Bind, spec: FunnelSpec, filters: Filters, breakdown: str | None = None) -> FunnelReport:
    """Counts, conversions and time to convert per step, overall and per ``breakdown`` value."""
    n = len(spec.steps)
    best = best_attempts(spec, filters, breakdown)
    b = best.c
    columns: list[ColumnElement[Any]] = []
    for k in range(1, n + 1):
        columns.append(func.sum(case((b.reached >= k, 1), else_=0)).label(f"u{k}"))
    for k in range(2, n + 1):
        columns += [func.percentile_cont(0.5).within_group(b[f"sec{k}"]).label(f"p50_{k}"),
                    func.percentile_cont(0.9).within_group(b[f"sec{k}"]).label(f"p90_{k}")]
        columns += [func.sum(case((and_(b[f"sec{k}"] >= lo, b[f"sec{k}"] < hi) if hi != float("inf")
                                   else b[f"sec{k}"] >= lo, 1), else_=0)).label(f"h{k}_{i}")
                    for i, (lo, hi, _) in enumerate(TIME_BINS)]
    columns.append(func.percentile_cont(0.5).within_group(b.sec_total).label("p50_total"))
    if breakdown is None:
        query = select(literal(None).label("dim"), literal(1).label("is_total"), *columns)
    else:
        query = select(b.dim, func.grouping(b.dim).label("is_total"), *columns).group_by(func.rollup(b.dim))
    wide = read_frame(bind, query.select_from(best), hash_joins=True)
    rows, bins = [], []
    median_total = None
    for record in wide.to_dict("records"):
        is_total = bool(record["is_total"])
        if is_total:
            median_total = _float(record["p50_total"])
        previous = None
        first = int(record["u1"] or 0)
        for k in range(1, n + 1):
            units = int(record[f"u{k}"] or 0)
            rows.append({
                "dim": None if is_total else record["dim"], "is_total": is_total, "step": k,
                "label": spec.step_labels[k - 1], "units": units,
                "overall_conversion": units / first if first else float("nan"),
                "step_conversion": float("nan") if previous is None else (units / previous if previous else
                                                                          float("nan")),
                "dropped": 0 if previous is None else previous - units,
                "median_seconds_to_convert": None if k == 1 else _float(record[f"p50_{k}"]),
                "p90_seconds_to_convert": None if k == 1 else _float(record[f"p90_{k}"]),
            })
            previous = units
            if is_total and k > 1:
                bins += [{"step": k, "label": spec.step_labels[k - 1], "bin": label, "units": int(record[f"h{k}_{i}"]
                                                                                                    or 0)}
                         for i, (_, _, label) in enumerate(TIME_BINS)]
    steps = pd.DataFrame(rows, columns=["dim", "is_total", "step", "label", "units", "overall_conversion",
                                        "step_conversion", "dropped", "median_seconds_to_convert",
                                        "p90_seconds_to_convert"])
    if steps.empty or not steps["is_total"].any():  # no unit at all: a total of zeros
        steps = pd.concat([steps, pd.DataFrame({
            "dim": None, "is_total": True, "step": range(1, n + 1), "label": spec.step_labels, "units": 0,
            "overall_conversion": float("nan"), "step_conversion": float("nan"), "dropped": 0,
            "median_seconds_to_convert": None, "p90_seconds_to_convert": None})], ignore_index=True)
    steps = steps.sort_values(["is_total", "dim", "step"], ascending=[False, True, True], na_position="first",
                              ignore_index=True)
    return FunnelReport(spec, breakdown, steps, pd.DataFrame(bins, columns=["step", "label", "bin", "units"]),
                        median_total)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def funnel_trend(bind: Bind, spec: FunnelSpec, filters: Filters, grain: Grain = "day") -> pd.DataFrame:
    """Conversion by entry cohort: ``period`` (day or week of the entry), ``entered`` (units at
    step 1), ``converted`` (units reaching the last step), ``conversion`` and ``complete``.

    A cohort is *complete* when the data reaches a whole window past its last possible entry; the
    conversion of later cohorts can still rise as their windows run on.
    """
    if grain not in ("day", "week"):
        raise InputError("grain must be day or week")
    best = best_attempts(spec, filters)
    b = best.c
    period = date_trunc(grain, b.entry_at).label("period")
    inner = select(period, b.reached).subquery("entries")
    query = (select(inner.c.period, func.count().label("entered"),
                    func.sum(case((inner.c.reached >= len(spec.steps), 1), else_=0)).label("converted"))
             .group_by(inner.c.period).order_by(inner.c.period))
    frame = read_frame(bind, query, hash_joins=True)
    with connection(bind) as conn:
        last_event = conn.execute(select(func.max(events.c.occurred_at))).scalar()
    frame["period"] = pd.to_datetime(frame["period"])
    frame = frame.astype({"entered": "int64", "converted": "int64"})
    frame["conversion"] = frame["converted"] / frame["entered"]
    length = pd.Timedelta(days=1 if grain == "day" else 7)
    window = pd.Timedelta(seconds=spec.window_seconds)
    frame["complete"] = (frame["period"] + length + window <= pd.Timestamp(last_event)) if last_event else False
    return frame


def dropoff_member_ids(spec: FunnelSpec, filters: Filters, step: int) -> Select:
    """The distinct members whose best attempt reached ``step`` but not ``step + 1`` (1 <= step < N)."""
    if not 1 <= step < len(spec.steps):
        raise InputError(f"Drop-off is after a step from 1 to {len(spec.steps) - 1}, not {step}.")
    best = best_attempts(spec, filters)
    return select(best.c.member_id).where(best.c.reached == step, best.c.member_id.is_not(None)).distinct()


@audience_kind
@dataclass(frozen=True)
class FunnelDropoffAudience(Audience):
    """The members whose best attempt at a funnel reached step ``reached_step`` but not the next one."""

    kind: ClassVar[str] = "funnel_dropoff"
    label: ClassVar[str] = "funnel drop-off"
    keys: ClassVar[frozenset[str]] = frozenset({"funnel", "reached_step", "start", "end", "tiers"})

    funnel: FunnelSpec
    window: Filters  # funnels read no channel filter
    reached_step: int

    def __post_init__(self) -> None:
        step = self.reached_step
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step < len(self.funnel.steps):
            raise InputError(f"Drop-off is after a step from 1 to {len(self.funnel.steps) - 1}, not {step}.")

    def member_ids(self) -> Select:
        return dropoff_member_ids(self.funnel, self.window, self.reached_step)

    def describe(self) -> str:
        return f"Funnel drop-off after step {self.reached_step}: {self.funnel.step_labels[self.reached_step - 1]}"

    def body(self) -> dict[str, Any]:
        return {"funnel": self.funnel.to_dict(), "reached_step": self.reached_step,
                **audiences.window_body(self.window, channels=False)}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> FunnelDropoffAudience:
        return cls(FunnelSpec.from_dict(data["funnel"]), audiences.window(data, channels=False),
                   data["reached_step"])


def dropoff_audience(spec: FunnelSpec, filters: Filters, step: int) -> FunnelDropoffAudience:
    """The targeting audience of the members who reached ``step`` but not the next one."""
    return FunnelDropoffAudience(spec, Filters(filters.start, filters.end, (), filters.tiers, filters.scope), step)
