"""A plain-Python funnel, written straight from the definitions in ``analytics/funnels.py``.

It tries every start of every unit, walks each order mode the obvious way and picks the best
attempt, so it shares no logic with the SQL (which prunes starts and follows precomputed links).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from analytics.funnels import FunnelSpec, FunnelStep

EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Event:
    event_id: str
    member_id: str | None
    session_id: str | None
    occurred_at: datetime
    event_type: str
    page: str | None = None
    device: str | None = None
    source: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Attempt:
    unit: str
    member_id: str | None
    entry_at: datetime
    reached: int
    seconds: tuple[float, ...]  # from completing step k-1 to step k, for k = 2..reached
    entry: Event


def matches(event: Event, step: FunnelStep) -> bool:
    return (event.event_type == step.event_type
            and all(getattr(event, name) == value for name, value in step.filters.items()))


def _completions(spec: FunnelSpec, unit_events: list[Event], i: int) -> list[float]:
    """Completion times (epoch seconds) of steps 1.. of the attempt starting at event ``i``."""
    start = unit_events[i].occurred_at
    limit = spec.window_seconds

    def within(event: Event) -> bool:
        return (event.occurred_at - start).total_seconds() <= limit

    times = [0.0]
    if spec.mode == "ordered":
        j = i
        for step in spec.steps[1:]:
            j = next((x for x in range(j + 1, len(unit_events)) if matches(unit_events[x], step)), None)
            if j is None or not within(unit_events[j]):
                break
            times.append((unit_events[j].occurred_at - start).total_seconds())
    elif spec.mode == "strict":
        for k, step in enumerate(spec.steps[1:], start=1):
            x = i + k
            if x >= len(unit_events) or not matches(unit_events[x], step) or not within(unit_events[x]):
                break
            times.append((unit_events[x].occurred_at - start).total_seconds())
    else:  # any order: steps 2..k each need their own event after the start (a repeated step, more)
        later = unit_events[i + 1:]
        done = 0.0
        for k, step in enumerate(spec.steps[1:], start=1):
            needed = spec.steps[1:k + 1].count(step)
            found = [e for e in later if matches(e, step)]
            if len(found) < needed or not within(found[needed - 1]):
                break
            done = max(done, (found[needed - 1].occurred_at - start).total_seconds())
            times.append(done)
    return times


def reference_attempts(spec: FunnelSpec, log: list[Event], start: datetime, end: datetime) -> dict[str, Attempt]:
    """The best attempt of every unit with a step-1 event in ``[start, end)``."""
    units: dict[str, list[Event]] = defaultdict(list)
    for event in log:
        key = event.member_id if spec.unit == "member" else event.session_id
        if key is not None:
            units[key].append(event)
    best: dict[str, Attempt] = {}
    for unit, unit_events in units.items():
        unit_events.sort(key=lambda e: (e.occurred_at, e.event_id))
        candidates = []
        for i, event in enumerate(unit_events):
            if not (matches(event, spec.steps[0]) and start <= event.occurred_at < end):
                continue
            times = _completions(spec, unit_events, i)
            seconds = tuple(b - a for a, b in itertools.pairwise(times))
            # furthest step, then completed first, then started latest
            at = (event.occurred_at - EPOCH).total_seconds()
            key = (-len(times), at + times[-1], -at, -i)
            candidates.append((key, Attempt(unit, event.member_id, event.occurred_at, len(times), seconds, event)))
        if candidates:
            best[unit] = min(candidates, key=lambda c: c[0])[1]
    return best


def reference_counts(spec: FunnelSpec, attempts: dict[str, Attempt]) -> list[int]:
    return [sum(1 for a in attempts.values() if a.reached >= k) for k in range(1, len(spec.steps) + 1)]
