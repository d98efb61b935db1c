"""Benchmark scenarios for the funnel and the heatmaps (issue 4), on the 1M-member demo warehouse.

* ``funnels``: the ordered 4-step funnel (product_view, add_to_cart, checkout, purchase; 7-day
  window; per member) over the most recent days of events that add up to about 20M events in
  scope, against two baselines measured in the same run: the **floor**, one ``GROUP BY member``
  list aggregation ordered by time over the same events, and a **pandas reference** of the same
  funnel (``merge_asof`` from every start to the next match of each step), timed on frames
  already in memory. The scenario checks that all three count the same units.
* ``heatmaps``: monthly cohort retention by first purchase over every order (about 6M), and the
  other three heatmaps for the last 90 days, each warm.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text

FUNNEL_STEPS = ("product_view", "add_to_cart", "checkout", "purchase")
WINDOW = timedelta(days=7)
TARGET_EVENTS = 20_000_000


def _timed(fn, repeat: int) -> tuple[float, object]:
    fn()
    runs = []
    result = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - began)
    return sorted(runs)[len(runs) // 2], result


def _range_with_events(conn, last_day: date, wanted: int) -> date:
    """The first day of the shortest range ending ``last_day`` whose member events (plus the window after
    it) number at least ``wanted``."""
    daily = conn.execute(text("SELECT CAST(occurred_at AS DATE) AS d, count(*) FROM events "
                              "WHERE member_id IS NOT NULL GROUP BY 1 ORDER BY 1 DESC")).all()
    total = 0
    for day, count in daily:
        total += count
        if total >= wanted and day <= last_day:
            return day
    return daily[-1][0]


def pandas_ordered_funnel(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> list[int]:
    """Units per step of the ordered funnel, pandas only: every start, then for each step the unit's
    next matching event (``merge_asof`` forward on the position), kept when inside the window."""
    frame = frame.sort_values(["unit", "ts", "event_id"], ignore_index=True)
    frame["pos"] = np.arange(len(frame))
    first = frame[(frame["event_type"] == FUNNEL_STEPS[0]) & (frame["ts"] >= start) & (frame["ts"] < end)]
    t1 = first["ts"].to_numpy()
    reached = np.ones(len(first), dtype="int64")
    cursor = pd.DataFrame({"unit": first["unit"].to_numpy(), "pos": first["pos"].to_numpy(),
                           "row": np.arange(len(first))})
    nowhere = len(frame) + 1  # a failed attempt looks for its next step beyond every event
    for k, kind in enumerate(FUNNEL_STEPS[1:], start=2):
        targets = frame.loc[frame["event_type"] == kind, ["unit", "pos", "ts"]]
        targets = targets.assign(next=targets["pos"])
        hop = pd.merge_asof(cursor.sort_values("pos"), targets, on="pos", by="unit", direction="forward",
                            allow_exact_matches=False).sort_values("row")
        ok = ((hop["ts"].to_numpy() - t1) <= np.timedelta64(WINDOW)) & (reached == k - 1)
        reached = np.where(ok, k, reached)
        cursor = pd.DataFrame({"unit": hop["unit"].to_numpy(),
                               "pos": np.where(ok, hop["next"].fillna(nowhere).to_numpy(), nowhere).astype("int64"),
                               "row": hop["row"].to_numpy()})
    best = pd.Series(reached).groupby(first["unit"].to_numpy()).max()
    return [int((best >= k).sum()) for k in range(1, len(FUNNEL_STEPS) + 1)]


def funnel_scenario(warehouse: Path, repeat: int) -> None:
    from analytics.filters import Filters
    from analytics.funnels import FunnelSpec, FunnelStep, funnel_report
    from analytics.storage.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{warehouse}")
    spec = FunnelSpec(tuple(FunnelStep(k) for k in FUNNEL_STEPS), int(WINDOW.total_seconds()), "ordered", "member")
    with engine.connect() as conn:
        last = data_span(conn).last_day
        first = _range_with_events(conn, last, TARGET_EVENTS)
        filters = Filters(first, last - WINDOW)  # entries stop a window before the data does
        scope = {"a": filters.start_ts, "b": filters.end_ts + WINDOW}
        in_scope = conn.execute(text("SELECT count(*), count(DISTINCT member_id) FROM events WHERE occurred_at >= :a "
                                     "AND occurred_at < :b AND member_id IS NOT NULL"), scope).one()
        floor_sql = text("SELECT count(*), sum(len(l)) FROM (SELECT member_id, list(event_type ORDER BY occurred_at) "
                         "AS l FROM events WHERE occurred_at >= :a AND occurred_at < :b AND member_id IS NOT NULL "
                         "GROUP BY member_id) AS lists")
        floor, _ = _timed(lambda: conn.execute(floor_sql, scope).all(), repeat)
        ours, report = _timed(lambda: funnel_report(conn, spec, filters), repeat)
        load_began = time.perf_counter()
        frame = pd.DataFrame(conn.execute(text(
            "SELECT member_id AS unit, occurred_at AS ts, event_id, event_type FROM events WHERE occurred_at >= :a "
            "AND occurred_at < :b AND member_id IS NOT NULL AND event_type IN ('product_view', 'add_to_cart', "
            "'checkout', 'purchase')"), scope).all(), columns=["unit", "ts", "event_id", "event_type"])
        load = time.perf_counter() - load_began
    engine.dispose()
    began = time.perf_counter()
    theirs_counts = pandas_ordered_funnel(frame, pd.Timestamp(filters.start_ts), pd.Timestamp(filters.end_ts))
    theirs = time.perf_counter() - began
    counts = report.total["units"].tolist()
    print(f"\n## Funnel, ordered, 4 steps, 7-day window, per member; DuckDB warm, median of {repeat}\n")
    print(f"entries {filters.start} – {filters.end}; {in_scope[0]:,} events of {in_scope[1]:,} members in scope; "
          f"units per step {counts}")
    print(f"{'same' if counts == theirs_counts else 'DIFFERENT'} counts from the pandas reference: {theirs_counts}\n")
    print(f"| measure | time | ratio |\n|---|---|---|\n"
          f"| floor: GROUP BY member, list(event_type ORDER BY time) | {floor:.2f} s | 1.00 x |\n"
          f"| funnel_report (counts, conversions, times, histogram) | {ours:.2f} s | {ours / floor:.2f} x floor |\n"
          f"| pandas reference (frames in memory; reading them took {load:.1f} s) | {theirs:.2f} s | "
          f"{theirs / ours:.1f} x ours |")
    print("\ntargets: <= 2 s, <= 2.00x the floor, >= 10x faster than pandas")


def heatmaps_scenario(warehouse: Path, repeat: int) -> None:
    from analytics import heatmaps
    from analytics.filters import Filters
    from analytics.storage.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        span = data_span(conn)
        everything = Filters(span.first_day, span.last_day)
        recent = Filters(*span.last_days(90))
        orders = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
        measured = {
            f"cohort retention, monthly, first purchase, all {orders:,} orders":
                lambda: heatmaps.cohort_retention(conn, everything, "first_purchase", "month"),
            "activity rhythm, orders, last 90 days": lambda: heatmaps.activity_rhythm(conn, recent, "orders"),
            "activity rhythm, events, last 90 days": lambda: heatmaps.activity_rhythm(conn, recent, "events"),
            "category affinity by tier, last 90 days": lambda: heatmaps.category_affinity(conn, recent, "tier"),
            "browsing hotspots, page x hour, last 90 days": lambda: heatmaps.browsing_hotspots(conn, recent, "hour"),
        }
        rows = [(name, _timed(fn, repeat)[0]) for name, fn in measured.items()]
    engine.dispose()
    print(f"\n## Heatmaps, DuckDB warm, median of {repeat}\n")
    print("| heatmap | time |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.0f} ms |")
    print("\ntargets: retention over 5M orders <= 0.5 s; each heatmap <= 0.5 s at 1M members")
