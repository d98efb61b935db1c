"""Benchmark scenario: the pages' main queries on Apache Spark SQL (Thrift Server, local[2]) next to DuckDB.

``python -m benchmarks.spark [--members 50000] [--repeat 3] [--spark-url sparksql://...]``

Builds the same demo (same seed) into an embedded DuckDB file and, through Parquet files, into Spark
(a Thrift Server started here with ``.ci/start_spark`` on a free loopback port and stopped afterwards,
unless ``--spark-url`` names a running one), then times, warm, the median of ``repeat`` runs of:
the executive KPI summary (last 90 days), the RFM segment summary (last 365 days), a four-step funnel
report (ordered, by member, one-day window, last 90 days) and a six-condition targeting preview (last
365 days). The first (cold) Spark run of each is shown too: Spark compiles each new statement's code.
Prints the server's start time, the Spark build time and the JVM's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _timed(run: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(first run, median of the next ``repeat`` runs) in seconds."""
    began = time.perf_counter()
    run()
    first = time.perf_counter() - began
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return first, statistics.median(times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _pages(engine: Any) -> dict[str, Callable[[], Any]]:
    from analytics import funnels, kpis, rfm, targeting
    from analytics.filters import Filters
    from analytics.storage.warehouse import data_span
    from benchmarks.targeting import SIX_CONDITIONS

    span = data_span(engine)
    quarter, year = Filters(*span.last_days(90)), Filters(*span.last_days(365))
    steps = tuple(funnels.FunnelStep(k) for k in ("product_view", "add_to_cart", "checkout", "purchase"))
    funnel = funnels.FunnelSpec(steps, funnels.parse_window("1d"), "ordered", "member")
    audience = {"version": 1, "kind": "audience", "start": year.start.isoformat(), "end": year.end.isoformat(),
                "rules": {"match": "all", "conditions": SIX_CONDITIONS}, "frequency_cap_days": 7, "holdout": 0.1,
                "campaign_key": "benchmark"}
    return {
        "KPI summary, last 90 days": lambda: kpis.kpi_summary(engine, quarter),
        "RFM segment summary, last 365 days": lambda: rfm.segment_summary(engine, year),
        "funnel report, 4 steps ordered by member, 90 days": lambda: funnels.funnel_report(engine, funnel, quarter),
        "targeting preview, 6 conditions, 365 days": lambda: targeting.preview(engine, audience),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spark-url", help="a running Thrift Server (default: start one here)")
    parser.add_argument("--driver-memory", default="2g", help="driver memory of the server started here")
    args = parser.parse_args(argv)

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from analytics.storage.warehouse import open_warehouse
    from analytics.synthetic import DemoSpec, generate_warehouse

    scratch = Path(tempfile.mkdtemp(prefix="memberlens_spark_bench_"))
    spec = DemoSpec(members=args.members, seed=42)
    pid = None
    started = None
    server = args.spark_url
    if server is None:
        began = time.perf_counter()
        env = {**os.environ, "SPARK_DRIVER_MEMORY": args.driver_memory}
        server = subprocess.run([str(PROJECT_ROOT / ".ci" / "start_spark"), str(scratch / "spark"), str(_free_port())],
                                check=True, capture_output=True, text=True, env=env).stdout.strip()
        started = time.perf_counter() - began
        pid = int((scratch / "spark" / "spark.pid").read_text())
    database = f"memberlens_bench_{uuid.uuid4().hex[:8]}"
    spark_url = make_url(server).set(database=database).render_as_string(hide_password=False)
    duck_url = f"duckdb:///{scratch / 'warehouse.duckdb'}"
    try:
        duck_build = generate_warehouse(duck_url, spec).seconds
        spark_build = generate_warehouse(spark_url, spec, parquet_dir=scratch / "parquet").seconds
        duck, spark = open_warehouse(duck_url), open_warehouse(spark_url)
        rows = []
        duck_pages, spark_pages = _pages(duck), _pages(spark)
        for label in duck_pages:
            _, duck_s = _timed(duck_pages[label], args.repeat)
            spark_first, spark_s = _timed(spark_pages[label], args.repeat)
            rows.append((label, duck_s, spark_first, spark_s))
        duck.dispose()
        spark.dispose()
        print(f"\n## Spark SQL (Thrift Server, local[2]) next to DuckDB: {args.members:,} members, "
              f"warm median of {args.repeat}\n")
        if started is not None:
            print(f"Thrift Server start (until it answers): {started:.1f} s")
        print(f"demo build: DuckDB {duck_build:.1f} s; Spark (Parquet files + CREATE TABLE ... LOCATION) "
              f"{spark_build:.1f} s\n")
        print("| page query | DuckDB | Spark, first run | Spark, warm | Spark ÷ DuckDB |\n|---|---|---|---|---|")
        for label, duck_s, first, spark_s in rows:
            print(f"| {label} | {duck_s * 1000:,.0f} ms | {first * 1000:,.0f} ms | {spark_s * 1000:,.0f} ms "
                  f"| {spark_s / duck_s:,.1f} |")
        if pid is not None:
            peak = _peak_rss_mb(pid)
            print(f"\nThrift Server JVM peak resident memory: {peak:,.0f} MB (driver memory {args.driver_memory})"
                  if peak else "")
    finally:
        try:
            admin = create_engine(make_url(server).set(database="default"))
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}` CASCADE")
            admin.dispose()
        finally:
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                for _ in range(40):  # let the JVM exit before its folder goes
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.25)
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
