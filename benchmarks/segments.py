"""Benchmark scenario for the member segments of issue 5, on the 1M-member demo warehouse.

* ``rfm``: the RFM segment summary, score grid and migration for the last 365 days, warm, against
  the floor the issue names: one SQL aggregation pass over the same orders (``GROUP BY member`` with
  the last order time, order count and net sales), measured in the same run.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select


def _median(fn, repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - began)
    return sorted(runs)[len(runs) // 2]


def rfm_scenario(warehouse: Path, repeat: int) -> None:
    from analytics import rfm
    from analytics.filters import Filters, completed_order_conditions
    from analytics.schema import orders
    from analytics.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        filters = Filters(*data_span(conn).last_days(365))
        o = orders.c
        per_member = (select(o.member_id, func.max(o.ordered_at), func.count(), func.sum(o.net_amount))
                      .where(o.member_id.is_not(None), *completed_order_conditions(filters, filters.start_ts,
                                                                                   filters.end_ts))
                      .group_by(o.member_id).subquery())
        floor_query = select(func.count(), func.sum(per_member.c[3]))
        scored = int(rfm.segment_summary(conn, filters)["members"].sum())
        rows = [
            ("floor: one aggregation pass over the orders, by member", _median(lambda: conn.execute(floor_query).all(),
                                                                               repeat)),
            ("segment summary (scores, segments, per-segment figures)",
             _median(lambda: rfm.segment_summary(conn, filters), repeat)),
            ("R x F score grid", _median(lambda: rfm.score_grid(conn, filters), repeat)),
            ("migration from the previous 365 days", _median(lambda: rfm.segment_migration(conn, filters.previous(),
                                                                                            filters), repeat)),
        ]
    engine.dispose()
    floor = rows[0][1]
    print(f"\n## RFM, DuckDB warm, median of {repeat}\n")
    print(f"{filters.start} – {filters.end}: {scored:,} members scored\n")
    print("| measure | time | vs floor |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.0f} ms | {seconds / floor:.2f} x |")
    print("\ntarget: RFM for 1M members <= 1 s")
