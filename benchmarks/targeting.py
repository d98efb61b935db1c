"""Benchmark scenario for campaign targeting (issue 7), on the 1M-member demo warehouse.

* ``targeting``: the preview (audience size, targeted size, control, reachable per channel) of a
  six-condition audience over the last 365 days, warm, DuckDB. Overlap with saved audiences is not built
  yet, so it is not in the figure.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.segments import _median

SIX_CONDITIONS = [
    {"field": "tier", "op": "not_in", "value": ["diamond"]},
    {"field": "acquisition_channel", "op": "in", "value": ["organic_search", "social_media", "referral"]},
    {"field": "days_since_last_order", "op": "between", "value": [None, 180]},
    {"field": "order_count", "op": "between", "value": [2, None]},
    {"field": "bought_category", "op": "in", "value": ["Beauty", "Apparel"]},
    {"field": "age", "op": "between", "value": [18, None]},
]


def targeting_scenario(warehouse: Path, repeat: int) -> None:
    from analytics import targeting
    from analytics.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        start, end = data_span(conn).last_days(365)
        spec = {"version": 1, "kind": "audience", "start": start.isoformat(), "end": end.isoformat(),
                "rules": {"match": "all", "conditions": SIX_CONDITIONS}, "frequency_cap_days": 7, "holdout": 0.1,
                "campaign_key": "benchmark"}
        sizes = targeting.preview(conn, spec)
        seconds = _median(lambda: targeting.preview(conn, spec), repeat)
    engine.dispose()
    print(f"\n## Campaign targeting, DuckDB warm, median of {repeat}\n")
    print(f"six conditions, 7-day frequency cap, 10% holdout, {start} – {end}: {sizes.matching:,} matching, "
          f"{sizes.targeted:,} targeted ({sizes.control:,} control), reachable email {sizes.reachable['email']:,}, "
          f"SMS {sizes.reachable['sms']:,}, push {sizes.reachable['push']:,}\n")
    print(f"| measure | time |\n|---|---|\n| preview (one statement) | {seconds * 1000:,.0f} ms |")
    print("\ntarget: preview with overlap of 3 saved audiences, 6 conditions, 1M members <= 1 s")
