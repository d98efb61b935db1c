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

On an embedded DuckDB warehouse the report and the trend are answered by the funnel store
(:mod:`analytics.funnel_store`: the events kept sorted by unit and time, walked in NumPy) whenever it holds the
warehouse as it is now, with the same figures (tested both ways); the SQL answers otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Double,
    Select,
    Subquery,
    and_,
    case,
    cast,
    column,
    extract,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    table,
)

from analytics import audiences, funnel_store
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError
from analytics.filters import Filters, member_conditions
from analytics.funnel_spec import (
    DIMENSION_LABELS,
    DIMENSIONS,
    EVENT_DIMENSIONS,
    MAX_STEPS,
    MAX_WINDOW_SECONDS,
    MEMBER_DIMENSIONS,
    METRIC_HELP,
    MIN_STEPS,
    MODE_LABELS,
    MODES,
    STEP_FILTERS,
    TIME_BINS,
    UNIT_LABELS,
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
from analytics.i18n import N_, _
from analytics.sqlparts import Grain, date_trunc, key_hash
from analytics.storage.contract import events, members, products
from analytics.storage.db import Bind, connection, read_frame

__all__ = [
    "DIMENSIONS", "DIMENSION_LABELS", "EVENT_DIMENSIONS", "MAX_STEPS", "MAX_WINDOW_SECONDS", "MEMBER_DIMENSIONS",
    "METRIC_HELP", "MIN_STEPS", "MODES", "MODE_LABELS", "STEP_FILTERS", "TIME_BINS", "UNITS", "UNIT_LABELS",
    "FunnelDropoffAudience", "FunnelReport",
    "FunnelSpec", "FunnelStep", "Mode", "Unit", "best_attempts", "dropoff_audience", "dropoff_member_ids",
    "format_seconds", "funnel_report", "funnel_trend", "parse_steps", "parse_window", "step_filter_options",
]


# ---------------------------------------------------------------------------------------------
# The best attempt of every unit, as a subquery
# ---------------------------------------------------------------------------------------------

#: Running match counts are packed into BIGINT sums, several definitions to a sum, each in a field of
#: this many bits: the exact path's fields hold any count below 2^31; the fast path packs four to a
#: sum and sends a unit with 2^15 or more step events in the range to the exact path (see _numbered).
_BITS = {True: 15, False: 31}


def _unit_key(unit: ColumnElement[Any], salt: int) -> ColumnElement[int]:
    """The fast path's fixed-width key for a unit id (:func:`~analytics.sqlparts.key_hash`): sorting and joining
    on it instead of text ids is what makes the window pass cheap. Two units can share it (about 1 in 10^7 at 2.7M
    sessions), so the fast path also carries the salt-1 hash and sends a unit whose key is shared to the exact
    path (see :func:`_best`)."""
    return key_hash(unit, salt=salt)


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


def _unit_column(spec: FunnelSpec) -> ColumnElement[Any]:
    return events.c.member_id if spec.unit == "member" else events.c.session_id


def _scope_conditions(spec: FunnelSpec, filters: Filters, defs: list[FunnelStep]) -> tuple[Any, list[Any], list[Any]]:
    """The events a funnel reads (FROM clause, conditions) and each definition's match condition."""
    e, p = events.c, products.c
    needs_category = any(d.category is not None for d in defs)
    conditions = [_unit_column(spec).is_not(None), e.occurred_at >= filters.start_ts,
                  e.occurred_at < filters.end_ts + timedelta(seconds=spec.window_seconds)]
    conditions += member_conditions(filters, e.member_id)  # tiers, and the user's scope
    matches = [_step_condition(d, p.category if needs_category else None) for d in defs]
    source = events.outerjoin(products, p.product_id == e.product_id) if needs_category else events
    return source, conditions, matches


def _scope(spec: FunnelSpec, filters: Filters, defs: list[FunnelStep], *, step_events_only: bool, fast: bool,
           only: Any = None) -> Subquery:
    """The events in scope, narrow: ``unit``, ``ts``, ``st`` (1 for a step-1 event inside the range: a
    start) and one 0/1 flag ``m<d>`` per step definition; only the events matching some step unless
    ``step_events_only`` is off (strict mode needs every event). ``fast``: ``unit`` is the unit's key
    and ``check`` its second hash; otherwise ``unit`` is the id and ``event_id`` comes along, and
    ``only`` (a subquery of keys) keeps those units."""
    e = events.c
    source, conditions, matches = _scope_conditions(spec, filters, defs)
    unit = _unit_column(spec)
    if step_events_only:
        conditions.append(or_(*matches))
    if only is not None:
        conditions.append(_unit_key(unit, 0).in_(select(only.c.unit)))
    keys = ([_unit_key(unit, 0).label("unit"), _unit_key(unit, 1).label("check")] if fast
            else [unit.label("unit"), e.event_id.label("event_id")])
    starts = and_(matches[0], e.occurred_at < filters.end_ts)  # scope starts with the range
    return (select(*keys, e.occurred_at.label("ts"), case((starts, 1), else_=0).label("st"),
                   *(case((m, 1), else_=0).label(f"m{i}") for i, m in enumerate(matches)))
            .select_from(source).where(*conditions).subquery("scope"))


def _unit_order(row: Any, fast: bool) -> dict[str, Any]:
    """A unit's events in time order, then ``event_id``. The fast path orders by time alone: its
    units have no two events at the same moment (those units take the exact path)."""
    return {"partition_by": row.c.unit, "order_by": (row.c.ts,) if fast else (row.c.ts, row.c.event_id)}


def _odd(base: Any, order: dict[str, Any]) -> ColumnElement[int]:
    """Fast path: 1 on an event at the same moment as the one before it (their order would need
    ``event_id``) or after an event of another unit with the same key. (A unit with more step events
    than the packed counts hold is flagged too: see :func:`_numbered`.)"""
    return case((or_(func.lag(base.c.ts).over(**order) == base.c.ts,
                     func.lag(base.c.check).over(**order) != base.c.check), 1), else_=0).label("odd")


@dataclass(frozen=True)
class _Sequence:
    """The numbered step events (a CTE) and how to read them: ``unit``, ``ts``, ``pos`` (exact path:
    the event's place in its unit), packed running counts ``p<i>`` and ``code``, one bit per flag
    (``m<d>``: matches definition d; ``st``: a start; ``follow``: a start worth following; ``first``: a
    start that may be the unit's earliest; ``odd``: see :func:`_odd`); with ``entry`` on the exact path,
    ``start_id`` (a start's event_id). Narrow on purpose: DuckDB materialises every column of it."""

    rows: Any
    fast: bool
    defs: int
    scales: tuple[int, ...]
    bits: int

    def flag(self, row: Any, name: str) -> ColumnElement[bool]:
        return _flag(row, name, self.defs)

    def count(self, row: Any, d: int) -> ColumnElement[int]:
        """Matches of definition d up to and including the event, times the definition's scale: field
        d of its packed sum, what lies below the next field minus what lies below it."""
        per_sum = 63 // self.bits
        packed, scale = row.c[f"p{d // per_sum}"], self.scales[d]
        upper = packed if d % per_sum == per_sum - 1 or d == self.defs - 1 else \
            packed % literal_column(str(scale * 2 ** self.bits))
        return upper if scale == 1 else upper - packed % literal_column(str(scale))

    def start(self, row: Any) -> ColumnElement[Any]:
        """What tells a unit's starts apart and orders them: the place (exact path) or the time (fast
        path, where no two events of a unit share a moment)."""
        return row.c.ts if self.fast else row.c.pos


def _flag(row: Any, name: str, defs: int) -> ColumnElement[bool]:
    """Flag ``name`` of a row of numbered events (see :class:`_Sequence`), a bit test without bit operators."""
    bit = 2 ** _flag_bit(name, defs)
    return row.c.code % literal_column(str(2 * bit)) >= literal_column(str(bit))


def _flag_bit(name: str, defs: int) -> int:
    return int(name[1:]) if name.startswith("m") else defs + ("st", "follow", "first", "odd").index(name)


def _numbered(spec: FunnelSpec, filters: Filters, entry: bool, fast: bool, only: Any) -> _Sequence:
    """Ordered and any-order modes: the step events in one window pass (see :class:`_Sequence`).

    "The j-th match of definition d after event r" is then the match whose count of d is r's + j x
    scale, found by an equi-join on (unit, count) instead of a search.
    """
    defs, step_def = _definitions(spec)
    base = _scope(spec, filters, defs, step_events_only=True, fast=fast, only=only)
    order = _unit_order(base, fast)
    bits = _BITS[fast]
    per_sum = 63 // bits
    scales = tuple(2 ** (bits * (i % per_sum)) for i in range(len(defs)))
    sums = []
    for first_def in range(0, len(defs), per_sum):
        fields = [base.c[f"m{i}"] * literal_column(str(scales[i])) if scales[i] > 1 else base.c[f"m{i}"]
                  for i in range(first_def, min(first_def + per_sum, len(defs)))]
        packed = fields[0]
        for field in fields[1:]:
            packed = packed + field
        sums.append(cast(func.sum(packed).over(**order, rows=(None, 0)), BigInteger).label(f"p{first_def // per_sum}"))
    # A start directly followed by another start that matches none of the later steps' definitions (in
    # ordered mode: not step 2's) takes the same path, later and tighter: it cannot be the best attempt
    # unless nobody gets past step 1, when the earliest start is (see ``first``).
    later = step_def[1:2] if spec.mode == "ordered" else sorted(set(step_def[1:]))
    follows = or_(*(base.c[f"m{d}"] == 1 for d in later))
    windowed = select(
        base.c.unit, base.c.ts, base.c.st, *(base.c[f"m{i}"] for i in range(len(defs))), *sums,
        func.lead(base.c.st + case((follows, 2), else_=0)).over(**order).label("next"),
        *([_odd(base, order)] if fast else [func.row_number().over(**order).label("pos"),
                                            func.lag(base.c.ts).over(**order).label("prev_at")]),
        *([case((base.c.st == 1, base.c.event_id)).label("start_id")] if entry and not fast else []),
    ).subquery("windowed")
    w = windowed.c
    sequence = _Sequence(windowed, fast, len(defs), scales, bits)
    follow = or_(w.next.is_(None), w.next % 2 == 0, w.next >= 2)
    # The earliest start (the best attempt when none gets past step 1), and on the exact path any start
    # at that same moment (ties go to the later event).
    first = sequence.count(windowed, step_def[0]) == scales[step_def[0]]
    flags = {**{f"m{i}": w[f"m{i}"] == 1 for i in range(len(defs))}, "st": w.st == 1,
             "follow": and_(w.st == 1, follow),
             "first": and_(w.st == 1, first if fast else or_(first, w.prev_at == w.ts))}
    if fast:
        # A count about to overflow its field: the unit takes the exact path.
        full = [sequence.count(windowed, i) >= (2 ** bits - 1) * scales[i] for i in range(len(defs))]
        flags["odd"] = or_(w.odd == 1, *full)
    code = literal(0)
    for name, condition in flags.items():
        code = code + case((condition, 2 ** _flag_bit(name, len(defs))), else_=0)
    rows = select(
        w.unit, w.ts, *(w[f"p{i}"] for i in range(len(sums))), code.label("code"),
        *([] if fast else [w.pos]), *([w.start_id] if entry and not fast else []),
    ).cte("numbered_fast" if fast else "numbered")
    return _Sequence(rows, fast, len(defs), scales, bits)


def _candidate(unit: Any, reached: int | ColumnElement[int], start: Any, times: list[Any], n: int,
               finish: Any, *extra: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    """The columns every candidate attempt has: ``unit``, ``reached``, ``s`` (the start's place),
    ``t1..tN`` (completion time of each step, missing beyond ``reached``) and ``finish``."""
    times = times + [null()] * (n - len(times))
    return [unit.label("unit"), (literal(reached) if isinstance(reached, int) else reached).label("reached"),
            start.label("s"), *(cast(t, DateTime).label(f"t{k}") for k, t in enumerate(times, start=1)),
            finish.label("finish"), *extra]


def _first_starts(seq: _Sequence, n: int) -> Select:
    row = seq.rows
    return select(*_candidate(row.c.unit, 1, seq.start(row), [row.c.ts], n, row.c.ts)).where(seq.flag(row, "first"))


def _ordered_candidates(spec: FunnelSpec, filters: Filters, entry: bool, fast: bool,
                        only: Any) -> tuple[list[Select], Any]:
    """Ordered mode, level by level. Each followed start's path takes, at step k, the first match of
    step k's definition after its step k-1; every path that waits for the same match takes the same
    steps from there on, and the latest start among them is the best of them (same completion, later
    start, so inside the window whenever any of them is). So per step k: group the paths at step
    k-1 by the match they wait for (their running count of step k's definition), keep the latest
    start (paths never cross, so its times are the group's maxima too) and join the match. One
    aggregation and one equi-join per step, on (unit, count)."""
    _, step_def = _definitions(spec)
    n = len(spec.steps)
    seq = _numbered(spec, filters, entry, fast, only)
    row = seq.rows
    window = timedelta(seconds=spec.window_seconds)
    tag = "_fast" if fast else ""
    level: Any = select(row.c.unit, seq.start(row).label("s"), row.c.ts.label("t1"),
                        seq.count(row, step_def[1]).label("j")).where(seq.flag(row, "follow")).cte(f"level1{tag}")
    candidates = [_first_starts(seq, n)]
    for k in range(2, n + 1):
        d = step_def[k - 1]
        times = [f"t{i}" for i in range(1, k)]
        waiting = (select(level.c.unit, level.c.j, func.max(level.c.s).label("s"),
                          *(func.max(level.c[t]).label(t) for t in times))
                   .group_by(level.c.unit, level.c.j).subquery(f"waiting{k}{tag}"))
        match = row.alias(f"match{k}{tag}")
        columns = [match.c.unit, waiting.c.s, *(waiting.c[t] for t in times), match.c.ts.label(f"t{k}")]
        if k < n:
            columns.append(seq.count(match, step_def[k]).label("j"))
        level = (select(*columns)
                 .select_from(match.join(waiting, and_(match.c.unit == waiting.c.unit,
                                                       seq.count(match, d) == waiting.c.j + seq.scales[d])))
                 .where(seq.flag(match, f"m{d}")).cte(f"level{k}{tag}"))
        reached = level.c[f"t{k}"]
        candidates.append(select(*_candidate(level.c.unit, k, level.c.s, [level.c[t] for t in [*times, f"t{k}"]],
                                             n, reached)).where(reached <= level.c.t1 + window))
    return candidates, row


def _any_order_candidates(spec: FunnelSpec, filters: Filters, entry: bool, fast: bool,
                          only: Any) -> tuple[list[Select], Any]:
    """Any-order mode: from each followed start, the j-th next match of each later step's definition
    (j = how often that definition appears among steps 2..k) by an equi-join on (unit, count)."""
    _, step_def = _definitions(spec)
    n = len(spec.steps)
    seq = _numbered(spec, filters, entry, fast, only)
    tag = "_fast" if fast else ""
    start = seq.rows.alias(f"start{tag}")
    source: Any = start
    found = []
    for k in range(2, n + 1):
        d = step_def[k - 1]
        j = step_def[1:k].count(d)
        hop = seq.rows.alias(f"step{k}{tag}")
        source = source.outerjoin(hop, and_(hop.c.unit == start.c.unit, seq.flag(hop, f"m{d}"),
                                            seq.count(hop, d) == seq.count(start, d) + j * seq.scales[d]))
        found.append(hop.c.ts)
    done = [start.c.ts]
    for k in range(2, n + 1):
        # Completed when the last of steps 2..k is; missing when any of them is.
        latest = found[0] if k == 2 else func.greatest(*found[:k - 1])
        done.append(case((or_(*(f.is_(None) for f in found[:k - 1])), null()), else_=latest))
    # The earliest starts come along whether followed or not: one list of candidates, no union
    # (Spark 4.0 fails to plan a union of these two under the ranking).
    first = seq.flag(start, "first")
    times = [t.label(f"t{k}") for k, t in enumerate(done, start=1)]
    attempts = select(start.c.unit, seq.start(start).label("pos"), *times, case((first, 1), else_=0).label("first")
                      ).select_from(source).where(or_(seq.flag(start, "follow"), first)).subquery(f"attempts{tag}")
    return [_scored(attempts, spec)], seq.rows


def _scored(attempts: Any, spec: FunnelSpec) -> Select:
    """Candidates from attempts with completion times ``t1..tN`` (steps reached form a prefix, as
    completion times never decrease along an attempt)."""
    n = len(spec.steps)
    a = attempts.c
    limit = a.t1 + timedelta(seconds=spec.window_seconds)
    reached: ColumnElement[int] = literal(1)
    for k in range(2, n + 1):
        reached = reached + case((and_(a[f"t{k}"].is_not(None), a[f"t{k}"] <= limit), 1), else_=0)
    scored = select(attempts, reached.label("reached")).subquery(f"{attempts.name}_scored")
    s = scored.c
    finish = case(*((s.reached == k, s[f"t{k}"]) for k in range(2, n + 1)), else_=s.t1)
    times = [case((s.reached >= k, s[f"t{k}"]), else_=null()) for k in range(2, n + 1)]
    extra = [s.start_id] if "start_id" in s else []
    return select(*_candidate(s.unit, s.reached, s.pos, [s.t1, *times], n, finish, *extra)).where(
        or_(s.reached > 1, *([s.first == 1] if "first" in s else [])))


def _strict_candidates(spec: FunnelSpec, filters: Filters, entry: bool, fast: bool,
                       only: Any) -> tuple[list[Select], Any]:
    """Strict mode: the steps are the unit's consecutive events from the start, read with ``LEAD``
    over every event of the unit in one window pass. The earliest start (the best attempt when none
    gets past step 1): on the fast path, where no two events of a unit share a moment, the unit's
    first start by an aggregation; on the exact path, by a running count of starts (ties go to the
    later event)."""
    defs, step_def = _definitions(spec)
    n = len(spec.steps)
    base = _scope(spec, filters, defs, step_events_only=False, fast=fast, only=only)
    order = _unit_order(base, fast)
    ahead = []
    for k in range(2, n + 1):
        offset = literal_column(str(k - 1))
        ahead += [func.lead(base.c[f"m{step_def[k - 1]}"], offset).over(**order).label(f"lm{k}"),
                  func.lead(base.c.ts, offset).over(**order).label(f"lt{k}")]
    tag = "_fast" if fast else ""
    earliest = [_odd(base, order)] if fast else [
        cast(func.sum(base.c.st).over(**order, rows=(None, 0)), BigInteger).label("starts"),
        func.lag(base.c.ts).over(**order).label("prev_at")]
    looked = select(
        base.c.unit, base.c.ts, base.c.st, *ahead, *earliest,
        *([] if fast else [func.row_number().over(**order).label("pos")]),
        *([base.c.event_id.label("start_id")] if entry and not fast else []),
    ).cte(f"looked{tag}")
    w = looked.c
    times = [w.ts] + [case((and_(*(w[f"lm{j}"] == 1 for j in range(2, k + 1))), w[f"lt{k}"]), else_=null())
                      for k in range(2, n + 1)]
    # A start's place: its time on the fast path (no two events of a unit share a moment there).
    columns = [w.unit, (w.ts if fast else w.pos).label("pos"),
               *(t.label(f"t{k}") for k, t in enumerate(times, start=1))]
    if fast:
        attempts = select(*columns).where(w.st == 1).subquery(f"attempts{tag}")
        first = (select(w.unit, func.min(w.ts).label("ts")).where(w.st == 1).group_by(w.unit)
                 .subquery("first_starts_fast"))
        return [select(*_candidate(first.c.unit, 1, first.c.ts, [first.c.ts], n, first.c.ts)),
                _scored(attempts, spec)], looked
    first = case((or_(w.starts == 1, w.prev_at == w.ts), 1), else_=0)
    attempts = select(*columns, first.label("first"), *([w.start_id] if entry else [])).where(
        w.st == 1).subquery(f"attempts{tag}")
    return [_scored(attempts, spec)], looked


_BUILDERS = {"ordered": _ordered_candidates, "any": _any_order_candidates, "strict": _strict_candidates}


def best_attempts(spec: FunnelSpec, filters: Filters, breakdown: str | None = None) -> Subquery:
    """One row per unit that entered the funnel in the range: ``unit``, ``member_id``, ``entry_id`` and
    ``entry_at`` (its step-1 event),
    ``reached`` (1..N), ``sec2..secN`` (seconds from completing step k-1 to step k; missing when
    not reached), ``sec_total`` (from step 1 to the last step, for units that reached it) and, with
    a breakdown, ``dim``."""
    return _best(spec, filters, breakdown, details=True)


def _best(spec: FunnelSpec, filters: Filters, breakdown: str | None, *, details: bool = False,
          member_ids: bool = False) -> Subquery:
    """:func:`best_attempts`, in two paths of the same SQL. The fast path keys units by a 64-bit hash
    and orders their events by time alone, so its one sort carries no text; a unit with two events
    at the same moment (whose order needs ``event_id``) or whose key another unit shares is flagged
    there and taken by the exact path instead, keyed by its id and ordered by (time, ``event_id``),
    over just those units' events. Both paths are the same builders; their best attempts are
    appended.

    Without ``details`` the entry event is looked up only when the result needs it (a breakdown, or
    ``member_ids``); ``unit`` and ``entry_id`` are left out and ``member_id`` is included only when
    looked up."""
    _check_breakdown(breakdown)
    entry = details or member_ids or breakdown is not None
    build = _BUILDERS[spec.mode]
    candidates, rows = build(spec, filters, entry, True, None)
    odd = rows.c.odd == 1 if spec.mode == "strict" else _flag(rows, "odd", len(_definitions(spec)[0]))
    odd_units = select(rows.c.unit).where(odd).distinct().cte("odd_units")
    fast = _branch(spec, filters, candidates, rows, breakdown, details=details, entry=entry, fast=True,
                   exclude=odd_units)
    candidates, rows = build(spec, filters, entry, False, odd_units)
    exact = _branch(spec, filters, candidates, rows, breakdown, details=details, entry=entry, fast=False)
    return _append(fast, exact)


def _append(fast: Select, exact: Select) -> Subquery:
    """The two paths' best attempts as one subquery (without the fast path's ``key``)."""
    first = fast.subquery("best_fast")
    second = exact.subquery("best_exact")
    names = [c.key for c in first.c if c.key != "key"]
    return select(*(first.c[n] for n in names)).union_all(select(*(second.c[n] for n in names))).subquery("best")


def _branch(spec: FunnelSpec, filters: Filters, candidates: list[Select], rows: Any, breakdown: str | None, *,
            details: bool, entry: bool, fast: bool, exclude: Any = None) -> Select:
    """One path's best attempt per unit: rank the candidates (furthest step, then completed first,
    then started latest), then the output columns, the entry event looked up when needed. Units in
    ``exclude`` are left out.

    Spark 4.0's optimizer (RemoveRedundantAliases) breaks the plan of a ranking straight over this
    union when the ranked rows are joined or filtered afterwards; a filter between the two (the
    exclusion, or ``reached >= 1``, which always holds) avoids it."""
    n = len(spec.steps)
    tag = "_fast" if fast else ""
    union = (candidates[0].union_all(*candidates[1:]) if len(candidates) > 1 else candidates[0]).subquery(
        f"all_candidates{tag}")
    kept = union.c.reached >= 1 if exclude is None else ~union.c.unit.in_(select(exclude.c.unit))
    union = select(union).where(kept).subquery(f"candidates{tag}")
    u = union.c
    rank = func.row_number().over(partition_by=u.unit, order_by=(u.reached.desc(), u.finish, u.s.desc()))
    ranked = select(union, rank.label("attempt_rank")).subquery(f"ranked{tag}")
    r = ranked.c
    eps = [_epoch(r[f"t{k}"]) for k in range(1, n + 1)]
    seconds = [case((r.reached >= k, eps[k - 1] - eps[k - 2]), else_=null()).label(f"sec{k}") for k in range(2, n + 1)]
    to_last = case((r.reached == n, eps[n - 1] - eps[0]), else_=null()).label("sec_total")
    columns: list[ColumnElement[Any]] = [r.unit.label("key"), r.t1.label("entry_at"), r.reached, *seconds, to_last]
    source: Any = ranked
    looked_up: Any = None
    if entry and fast:
        # Fast units have one event per moment, so (key, time) finds the entry among the step-1 events.
        defs, _ = _definitions(spec)
        scope, conditions, matches = _scope_conditions(spec, filters, defs)
        e = events.c
        started = (select(_unit_key(_unit_column(spec), 0).label("key"), e.occurred_at.label("ts"),
                          e.event_id, e.member_id, _unit_column(spec).label("unit"),
                          *(e[d] for d in EVENT_DIMENSIONS))
                   .select_from(scope).where(*conditions, matches[0], e.occurred_at < filters.end_ts)
                   .subquery("entry_event_fast"))
        source = source.join(started, and_(started.c.key == r.unit, started.c.ts == r.t1))
        looked_up, entry_id, unit = started, started.c.event_id, started.c.unit
    elif entry:
        if spec.mode == "strict":
            entry_id = r.start_id
        else:
            entry_row = rows.alias("entry")
            source = source.join(entry_row, and_(entry_row.c.unit == r.unit, entry_row.c.pos == r.s,
                                                 _flag(entry_row, "st", len(_definitions(spec)[0]))))
            entry_id = entry_row.c.start_id
        looked_up = events.alias("entry_event")
        source = source.join(looked_up, looked_up.c.event_id == entry_id)
        unit = r.unit
    if details:
        columns[1:1] = [unit.label("unit"), entry_id.label("entry_id")]
    if entry:
        columns.insert(1, looked_up.c.member_id.label("member_id"))
    if breakdown in EVENT_DIMENSIONS:
        columns.append(looked_up.c[breakdown].label("dim"))
    elif breakdown is not None:
        source = source.outerjoin(members, members.c.member_id == looked_up.c.member_id)
        columns.append(members.c[breakdown].label("dim"))
    return select(*columns).select_from(source).where(r.attempt_rank == 1)


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


def _check_breakdown(breakdown: str | None) -> None:
    if breakdown is not None and breakdown not in DIMENSIONS:
        raise InputError(_("Unknown breakdown {breakdown!r}; choose from {choices}.").format(
            breakdown=breakdown, choices=", ".join(DIMENSIONS)))


def _stored_best(spec: FunnelSpec, breakdown: str | None) -> Any:
    """The funnel store's best attempts (:func:`analytics.funnel_store.best_table`) as a table to aggregate."""
    names = ["reached", *(f"sec{k}" for k in range(2, len(spec.steps) + 1)), "sec_total", "entry_at"]
    return table("best", *(column(n) for n in names + (["dim"] if breakdown is not None else [])))


def _report_query(spec: FunnelSpec, best: Any, breakdown: str | None) -> Select:
    """The funnel report's figures from the best attempts in one statement: ``dim``, ``is_total``, ``u<k>``
    (units reaching step k), ``p50_<k>`` / ``p90_<k>`` (time to convert), ``h<k>_<bin>`` (its histogram) and
    ``p50_total``."""
    n = len(spec.steps)
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
    return query.select_from(best)


def funnel_report(bind: Bind, spec: FunnelSpec, filters: Filters, breakdown: str | None = None) -> FunnelReport:
    """Counts, conversions and time to convert per step, overall and per ``breakdown`` value."""
    n = len(spec.steps)
    _check_breakdown(breakdown)
    stored = funnel_store.best_table(bind, spec, filters, breakdown)
    if stored is not None:  # the funnel store's best attempts, aggregated by the same statement
        wide = funnel_store.aggregate(stored, _report_query(spec, _stored_best(spec, breakdown), breakdown))
    else:  # no store kept for the warehouse as it is now: the warehouse answers
        wide = read_frame(bind, _report_query(spec, _best(spec, filters, breakdown), breakdown), hash_joins=True)
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
                bins += [{"step": k, "label": spec.step_labels[k - 1], "bin": _(time_bin[2]),
                          "units": int(record[f"h{k}_{i}"] or 0)} for i, time_bin in enumerate(TIME_BINS)]
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
    stored = funnel_store.best_table(bind, spec, filters, None)
    b = (_stored_best(spec, None) if stored is not None else _best(spec, filters, None)).c
    period = date_trunc(grain, b.entry_at).label("period")
    inner = select(period, b.reached).subquery("entries")
    query = (select(inner.c.period, func.count().label("entered"),
                    func.sum(case((inner.c.reached >= len(spec.steps), 1), else_=0)).label("converted"))
             .group_by(inner.c.period).order_by(inner.c.period))
    # the funnel store's best attempts when it holds the warehouse as it is now, else the warehouse's
    frame = funnel_store.aggregate(stored, query) if stored is not None else read_frame(bind, query, hash_joins=True)
    with connection(bind) as conn:
        last_event = conn.execute(select(func.max(events.c.occurred_at))).scalar()
    frame["period"] = pd.to_datetime(frame["period"]).astype("datetime64[us]")
    frame = frame.astype({"entered": "int64", "converted": "int64"})
    frame["conversion"] = frame["converted"] / frame["entered"]
    length = pd.Timedelta(days=1 if grain == "day" else 7)
    window = pd.Timedelta(seconds=spec.window_seconds)
    frame["complete"] = (frame["period"] + length + window <= pd.Timestamp(last_event)) if last_event else False
    return frame


def dropoff_member_ids(spec: FunnelSpec, filters: Filters, step: int) -> Select:
    """The distinct members whose best attempt reached ``step`` but not ``step + 1`` (1 <= step < N)."""
    if not 1 <= step < len(spec.steps):
        raise InputError(_("Drop-off is after a step from 1 to {last}, not {step}.").format(
            last=len(spec.steps) - 1, step=step))
    best = _best(spec, filters, None, member_ids=True)
    return select(best.c.member_id).where(best.c.reached == step, best.c.member_id.is_not(None)).distinct()


@audience_kind
@dataclass(frozen=True)
class FunnelDropoffAudience(Audience):
    """The members whose best attempt at a funnel reached step ``reached_step`` but not the next one."""

    kind: ClassVar[str] = "funnel_dropoff"
    label: ClassVar[str] = N_("funnel drop-off")  # translated where shown
    keys: ClassVar[frozenset[str]] = frozenset({"funnel", "reached_step", "start", "end", "tiers"})

    funnel: FunnelSpec
    window: Filters  # funnels read no channel filter
    reached_step: int

    def __post_init__(self) -> None:
        step = self.reached_step
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step < len(self.funnel.steps):
            raise InputError(_("Drop-off is after a step from 1 to {last}, not {step}.").format(
                last=len(self.funnel.steps) - 1, step=step))

    def member_ids(self) -> Select:
        return dropoff_member_ids(self.funnel, self.window, self.reached_step)

    def describe(self) -> str:
        return f"Funnel drop-off after step {self.reached_step}: {self.funnel.step_labels[self.reached_step - 1]}"

    def title(self) -> str:
        return _("Funnel drop-off after step {step}: {name}").format(
            step=self.reached_step, name=self.funnel.step_labels[self.reached_step - 1])

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
