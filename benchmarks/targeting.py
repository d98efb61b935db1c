"""Benchmark scenario for campaign targeting (issue 7), on the 1M-member demo warehouse.

* ``targeting``: for a six-condition audience over the last 365 days (7-day frequency cap, 10% holdout),
  warm, DuckDB: the preview (audience size, targeted, control, reachable per channel), the overlap matrix
  with three saved audiences, both apart and in one statement (what the page runs while the Overlap tab is
  open), plus the profile and the balance check, with the purchase rollup (:mod:`analytics.purchase_rollup`,
  built first when missing; its build time is printed) and from the warehouse alone. The floor is one scan of
  ``orders`` grouped by member (the least any
  order-based condition costs), measured in the same run.
"""

from __future__ import annotations

import time
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
#: Three saved audiences of the kinds marketers keep: last campaign's audience, a tier programme, new members.
SAVED = {
    "Electronics buyers": [{"field": "bought_category", "op": "in", "value": ["Electronics"]}],
    "Gold and diamond": [{"field": "tier", "op": "in", "value": ["gold", "diamond"]}],
    "Joined this year": [{"field": "registered", "op": "between", "value": ["2026-01-01", None]}],
}


def targeting_scenario(warehouse: Path, repeat: int) -> None:
    from sqlalchemy import func, select

    from analytics import audience_report, purchase_rollup, targeting
    from analytics.storage import score_store
    from analytics.storage.contract import orders
    from analytics.storage.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{warehouse}")
    store = score_store.store_for(engine.dialect)
    kept = store.find_rollup(purchase_rollup.ROLLUP)
    started = time.perf_counter()
    purchase_rollup.store_rollup(engine)
    build_s = None if kept is not None else time.perf_counter() - started
    with engine.connect() as conn:
        start, end = data_span(conn).last_days(365)

        def spec(conditions: list, **options) -> targeting.CampaignAudience:
            return targeting.parse_spec({"version": 1, "kind": "audience", "start": start.isoformat(),
                                         "end": end.isoformat(), "rules": {"match": "all", "conditions": conditions},
                                         **options})

        current = spec(SIX_CONDITIONS, frequency_cap_days=7, holdout=0.1, campaign_key="benchmark")
        saved = {name: spec(conditions, campaign_key=name) for name, conditions in SAVED.items()}
        compared = {"this audience": current, **saved}
        sizes = targeting.preview(conn, current)
        matrix = audience_report.overlap_matrix(conn, compared)
        o = orders.c
        floor = _median(lambda: conn.execute(select(func.count()).select_from(
            select(o.member_id, func.count()).where(o.ordered_at >= start).group_by(o.member_id).subquery())).one(),
            repeat)
        preview_s = _median(lambda: targeting.preview(conn, current), repeat)
        overlap_s = _median(lambda: audience_report.overlap_matrix(conn, compared), repeat)
        combined_s = _median(lambda: audience_report.preview_and_overlap(conn, current, saved, "this audience"),
                             repeat)
        profile_s = _median(lambda: audience_report.audience_profile(conn, current), max(repeat // 3, 1))
        balance_s = _median(lambda: audience_report.balance_check(conn, current), max(repeat // 3, 1))
        # the same without the purchase rollup: what a warehouse other than an embedded DuckDB file runs
        score_store.enable(engine, None)
        without = {"preview": _median(lambda: targeting.preview(conn, current), repeat),
                   "preview + overlap": _median(lambda: audience_report.preview_and_overlap(
                       conn, current, saved, "this audience"), repeat),
                   "profile": _median(lambda: audience_report.audience_profile(conn, current), max(repeat // 3, 1)),
                   "balance": _median(lambda: audience_report.balance_check(conn, current), max(repeat // 3, 1))}
    engine.dispose()
    print(f"\n## Campaign targeting, DuckDB warm, median of {repeat}\n")
    print(f"six conditions, 7-day frequency cap, 10% holdout, {start} – {end}: {sizes.matching:,} matching, "
          f"{sizes.targeted:,} targeted ({sizes.control:,} control), reachable email {sizes.reachable['email']:,}, "
          f"SMS {sizes.reachable['sms']:,}, push {sizes.reachable['push']:,}")
    print("saved audiences: " + ", ".join(f"{name} {matrix.loc[name, name]:,} (overlap {matrix.iloc[0][name]:,})"
                                          for name in SAVED) + "\n")
    together = preview_s + overlap_s
    print("| measure | time | × floor |\n|---|---|---|")
    for label, seconds in [("floor: one scan of a year of orders grouped by member", floor),
                           ("preview (one statement)", preview_s),
                           ("overlap matrix, this audience and 3 saved (one statement)", overlap_s),
                           ("preview + overlap with 3 saved audiences, apart", together),
                           ("preview + overlap in one statement (what the Overlap tab runs)", combined_s),
                           ("profile against all members (one statement)", profile_s),
                           ("treatment / control balance (one statement)", balance_s)]:
        print(f"| {label} | {seconds * 1000:,.0f} ms | {seconds / floor:.1f} |")
    targets = [("preview", preview_s, 1.0), ("preview + overlap", combined_s, 1.5), ("profile", profile_s, 2.0),
               ("balance", balance_s, 1.0)]
    built = "kept from an earlier run" if build_s is None else f"built in {build_s:.1f} s"
    print(f"\nthe above read the purchase rollup ({built}); from the warehouse alone: " + "; ".join(
        f"{name} {seconds * 1000:,.0f} ms ({seconds / floor:.1f} x floor)" for name, seconds in without.items()))
    print("\ntargets (six conditions, 1M members): " + "; ".join(
        f"{name} <= {limit:g} s: {'met' if seconds <= limit else 'NOT met'}" for name, seconds, limit in targets))
