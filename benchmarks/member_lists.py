"""Benchmark of member lists (issue 23) on the benchmark warehouse: ``python -m benchmarks.member_lists``.

For a few audiences of the default view (the last 90 days of data) it times, warm, median of ``--repeat`` runs:

* **count**: the members counted (what the headline shows; unchanged by issue 23);
* **ids only**: the list as it was before issue 23, measured in the same run: the members' own columns for the
  audience's ids, ordered by id (the preview at most 100, the export all);
* **with value**: :func:`analytics.member_rows.audience_rows`: the same members with net sales, orders, last
  order and RFM segment, sorted by net sales (the preview at most 100, the export all).

Nothing here is a test: speed is measured, not asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

DATA = Path(__file__).resolve().parent / "data"


def _median(fn: Callable[[], object], repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs)


def ids_only(conn, member_ids, limit: int | None):
    """The list before issue 23: the members' own columns for these ids, by id, masked."""
    from analytics.privacy import mask_members
    from analytics.storage.contract import members
    from analytics.storage.db import read_frame

    m = members.c
    columns = ("member_id", "name", "phone", "email", "tier", "region", "city", "registered_at", "points_balance")
    query = select(*(m[c] for c in columns)).where(m.member_id.in_(member_ids)).order_by(m.member_id)
    if limit is not None:
        query = query.limit(limit)
    return mask_members(read_frame(conn, query))


def _measure(conn, audience, repeat: int, export: bool) -> list:
    """Members, then the times of: count, preview ids only, preview with value (and the exports)."""
    from analytics.member_rows import audience_rows, member_count

    ids = audience.member_ids()
    times = [f"{member_count(conn, ids):,}", _median(lambda: member_count(conn, ids), repeat),
             _median(lambda: ids_only(conn, ids, 100), repeat),
             _median(lambda: audience_rows(conn, audience, limit=100), repeat)]
    if export:
        times += [_median(lambda: ids_only(conn, ids, None), max(repeat // 3, 1)),
                  _median(lambda: audience_rows(conn, audience), max(repeat // 3, 1))]
    return times


def member_lists_scenario(warehouse: Path, repeat: int, export: bool) -> None:
    from analytics.filters import Filters
    from analytics.rfm import LAPSED, segment_audience
    from analytics.storage.warehouse import data_span, open_warehouse
    from analytics.tags import tag_audience

    engine = open_warehouse(f"duckdb:///{warehouse}")
    rows = []
    with engine.connect() as conn:
        filters = Filters(*data_span(conn).last_days(90))
        audiences = [("RFM segment At Risk", segment_audience(filters, ("At Risk",))),
                     ("RFM Lapsed (no order in the range)", segment_audience(filters, (LAPSED,))),
                     ("tag Night owl", tag_audience(filters, "night_owl")),
                     ("tag Dormant 90 days", tag_audience(filters, "dormant_90"))]
        for name, audience in audiences:
            row = [name, *_measure(conn, audience, repeat, export)]
            rows.append(row)
            print(f"  measured {name}", flush=True)
    engine.dispose()
    print(f"\n## Member lists, DuckDB warm, median of {repeat} (exports: of {max(repeat // 3, 1)})\n")
    print(f"{filters.start} – {filters.end} (the default view)\n")
    header = "| audience | members | count | preview: ids only | preview: with value |"
    if export:
        header += " export: ids only | export: with value |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, size, *times in rows:
        print(f"| {name} | {size} | " + " | ".join(f"{t * 1000:,.0f} ms" for t in times) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=DATA / "warehouse_1000000.duckdb")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-export", action="store_true", help="time only the counts and previews")
    args = parser.parse_args()
    if not args.warehouse.exists():
        raise SystemExit(f"{args.warehouse} is missing: build it with python -m benchmarks.run --scenario kpis")
    member_lists_scenario(args.warehouse, args.repeat, not args.no_export)


if __name__ == "__main__":
    main()
