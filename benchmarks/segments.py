"""Benchmark scenario for the member segments of issue 5, on the 1M-member demo warehouse.

* ``rfm``: the RFM segment summary, score grid and migration for the last 365 days, warm, against
  the floor the issue names: one SQL aggregation pass over the same orders (``GROUP BY member`` with
  the last order time, order count and net sales), measured in the same run.
* ``clusters``: member clusters for the same window against the same floor: the feature statement
  alone, the features pulled into pandas, the fit with labels and portraits, end to end with k-means
  and with the Gaussian mixture (k=6), k-selection and the projection; peak memory of the end-to-end
  run in a fresh process (its whole peak resident set, and its resident set before the run).
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Select, func, select

if TYPE_CHECKING:
    from analytics.filters import Filters


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
    from analytics.filters import Filters
    from analytics.storage.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        filters = Filters(*data_span(conn).last_days(365))
        floor_query = _per_member_floor(filters)
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


def _per_member_floor(filters: Filters) -> Select:
    """The issue's floor: one aggregation pass over the window's completed orders, by member."""
    from analytics.filters import completed_order_conditions
    from analytics.storage.contract import orders

    o = orders.c
    per_member = (select(o.member_id, func.max(o.ordered_at), func.count(), func.sum(o.net_amount))
                  .where(o.member_id.is_not(None), *completed_order_conditions(filters, filters.start_ts,
                                                                               filters.end_ts))
                  .group_by(o.member_id).subquery())
    return select(func.count(), func.sum(per_member.c[3]))


#: DuckDB keeps table pages it has read cached, up to its memory limit (MemberLens's default 1GB, see
#: analytics.storage.warehouse); a URL option sets another, here the 4GB default of before, for comparison.
CAPPED = "?memory_limit=4GB"

_CLUSTERS_CHILD = """
import resource, sys, time
import sklearn.cluster, sklearn.decomposition, sklearn.mixture
from analytics.clustering import ClusterSettings, cluster_members
from analytics.filters import Filters
from analytics.storage.warehouse import data_span, open_warehouse

def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

engine = open_warehouse(sys.argv[1])
with engine.connect() as conn:
    filters = Filters(*data_span(conn).last_days(365))
    baseline = status_kib("VmRSS")
    began = time.perf_counter()
    result = cluster_members(conn, filters, ClusterSettings(k=6, algorithm=sys.argv[2]))
    seconds = time.perf_counter() - began
print(len(result.members), seconds, baseline, status_kib("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _clusters_in_child(warehouse: Path, algorithm: str, options: str = "") -> tuple[int, float, float, float, float]:
    """End to end in a fresh process: (members, seconds, resident GiB before the run, peak resident GiB,
    ru_maxrss GiB).

    The peak is the child's own high-water mark (``VmHWM``). ``ru_maxrss`` also counts the parent's
    high-water mark at the time of the fork, since Linux carries it across ``exec``, so it is only
    meaningful while the parent is small: the children run before anything is measured in-process."""
    child = subprocess.run([sys.executable, "-c", _CLUSTERS_CHILD, f"duckdb:///{warehouse}{options}", algorithm],
                           cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise SystemExit(f"the clusters child process failed:\n{child.stderr[-2000:]}")
    count, seconds, baseline, peak, maxrss = child.stdout.split()
    gib = 1024 * 1024  # the figures are KiB on Linux
    return int(count), float(seconds), int(baseline) / gib, int(peak) / gib, int(maxrss) / gib


def clusters_scenario(warehouse: Path, repeat: int) -> None:
    from analytics import cluster_features, clustering, tags
    from analytics.clustering import ClusterSettings
    from analytics.filters import Filters
    from analytics.storage.warehouse import data_span, open_warehouse

    kmeans, gmm = ClusterSettings(k=6), ClusterSettings(k=6, algorithm="gmm")
    # first: see _clusters_in_child; the last row caps DuckDB's memory through the URL (no code change)
    fresh = {(name, options): _clusters_in_child(warehouse, name, options)
             for name, options in (("kmeans", ""), ("gmm", ""), ("kmeans", CAPPED))}
    engine = open_warehouse(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        filters = Filters(*data_span(conn).last_days(365))
        floor_query = _per_member_floor(filters)
        categories = cluster_features.top_categories(conn, filters)
        channels = cluster_features.sales_channels(conn, filters)
        features = cluster_features.feature_select(filters, 1, categories, channels)
        features = features.order_by(features.selected_columns.member_id)

        def feature_sql() -> None:  # execute and fetch as Arrow columns: no pandas, no Python object per value
            result = conn.execute(features)
            with warnings.catch_warnings():  # "extra copy of the rows": measured, as fast as con.sql(...) here
                warnings.simplefilter("ignore", UserWarning)
                result.cursor.to_arrow_table()
            result.close()

        data = clustering.member_features(conn, filters)
        result = clustering.cluster_features(data, kmeans)
        rows = [
            ("floor: one aggregation pass over the orders, by member",
             _median(lambda: conn.execute(floor_query).all(), repeat * 3)),
            ("feature statement alone (execute, fetch as Arrow)", _median(feature_sql, repeat)),
            ("member_features (top categories, channels, features into pandas)",
             _median(lambda: clustering.member_features(conn, filters), repeat)),
            ("fit + labels + portraits (cluster_features, k-means k=6)",
             _median(lambda: clustering.cluster_features(data, kmeans), repeat)),
            ("END TO END: cluster_members, k-means k=6",
             _median(lambda: clustering.cluster_members(conn, filters, kmeans), repeat)),
            ("end to end: cluster_members, Gaussian mixture k=6",
             _median(lambda: clustering.cluster_members(conn, filters, gmm), repeat)),
            ("k_selection (k = 2..10, k-means, 10,000-member sample)",
             _median(lambda: clustering.k_selection(data, kmeans), repeat)),
            ("projection (PCA, 5,000-member sample)", _median(lambda: clustering.projection(result), repeat)),
            ("tag coverage: every tag's members counted (analytics.tags)",
             _median(lambda: tags.tag_coverage(conn, filters), repeat)),
        ]
    engine.dispose()
    floor = rows[0][1]
    print(f"\n## Member clusters, DuckDB warm, median of {repeat} (floor: of {repeat * 3})\n")
    print(f"{filters.start} – {filters.end}: {len(data.frame):,} members clustered, "
          f"{len(data.features)} features ({len(categories)} categories, {len(channels)} channels)\n")
    print("| measure | time | vs floor |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:,.0f} ms | {seconds / floor:.1f} x |")
    print("\nIn a fresh process (cold: first run after opening the warehouse), whole-process resident memory "
          "(RSS before the run: interpreter, libraries and an open warehouse):\n")
    print("| end to end | members | time | RSS before the run | peak RSS (VmHWM) | ru_maxrss |")
    print("|---|---|---|---|---|---|")
    for (name, options), (count, seconds, baseline, peak, maxrss) in fresh.items():
        label = f"{clustering.ALGORITHMS[name]} k=6" + (f" (URL {options})" if options else "")
        print(f"| {label} | {count:,} | {seconds:.1f} s | {baseline:.2f} GiB "
              f"| {peak:.2f} GiB = {peak * 1.073741824:.2f} GB | {maxrss:.2f} GiB |")
    print("\nk-means clusters: " + "; ".join(f"{r.cluster} {r.name} {r.member_share:.0%}"
                                             for r in result.portraits.itertuples()))
    print("\ntarget: features + k-means (k=6) + portraits for 1M members <= 10 s, peak memory <= 2 GB")
