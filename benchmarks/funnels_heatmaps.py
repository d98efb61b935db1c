"""Benchmark scenario ``heatmaps`` (issue 4) on the 1M-member demo warehouse: monthly cohort retention by
first purchase over every order (about 6M), and the other three heatmaps for the last 90 days, each warm.
Also the range helper the ``funnels`` scenario (:mod:`benchmarks.funnels`) uses.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

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
