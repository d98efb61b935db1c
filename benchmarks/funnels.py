"""Benchmark scenario ``funnels``: MemberLens's funnel engine against ClickHouse's ``windowFunnel`` on the
1M-member demo warehouse, in the same run.

* **Events.** The most recent days of events that add up to about 20M events in scope (entries in the
  range, later steps up to one 7-day window after it). The funnel is product_view → add_to_cart →
  checkout → purchase, 7-day window, every order mode (ordered, strict, any) and unit (member,
  session).
* **Ours.** ``funnel_report`` (counts, conversions, median and 90th-percentile times, histogram), warm,
  on DuckDB with its funnel store (:mod:`analytics.funnel_store`, built first when missing, in a fresh process for
  its time and peak memory: the events sorted by unit and time, what the app builds in the background once per
  warehouse state). The six reports are also run in a fresh process for their peak memory without ClickHouse's.
  For reference, one round of the same reports in SQL alone (no store: what PostgreSQL and the other warehouses run).
* **ClickHouse.** ``windowFunnel`` in chdb (ClickHouse in-process), reading the same events exported to
  Parquet (the export is not timed): the step events for the ordered funnel, every event in scope for
  ``'strict_order'`` (whose chain any other event breaks). ClickHouse has no any-order funnel; that row
  is compared with the ordered ``windowFunnel``, its nearest cost. chdb is installed by this scenario into
  ``benchmarks/data/pylib`` from ``benchmarks/requirements.txt``; MemberLens does not depend on it.
* **Floor.** One scan of the step events in scope in DuckDB: a query reading the unit, time, type and id
  of each (min/max of each column).
* **Same counts?** ``windowFunnel`` returns each unit's furthest step; counting units per step gives our
  units per step when the definitions match (ordered mode). Per unit, the scenario also compares our
  best attempt's step with ClickHouse's level. Strict differs by definition: ``'strict_order'`` stops a
  unit at the first event that breaks its chain, we try every start.

Medians of ``repeat`` rounds; each round runs ours, ClickHouse and the floor for every mode and unit in
turn (other sessions share this machine: the spread is printed too).
"""

from __future__ import annotations

import importlib
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from benchmarks.funnels_heatmaps import TARGET_EVENTS, _range_with_events

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = PROJECT_ROOT / "benchmarks" / "data"
PYLIB = DATA / "pylib"
REQUIREMENTS = PROJECT_ROOT / "benchmarks" / "requirements.txt"
STEPS = ("product_view", "add_to_cart", "checkout", "purchase")
WINDOW = timedelta(days=7)
MODES = ("ordered", "strict", "any")
UNITS = ("member", "session")


def load_chdb() -> Any:
    """chdb, installed into benchmarks/data/pylib on first use (never into the project's environment)."""
    if str(PYLIB) not in sys.path:
        sys.path.insert(0, str(PYLIB))
    try:
        import chdb
    except ImportError:
        print(f"installing chdb into {PYLIB.relative_to(PROJECT_ROOT)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(PYLIB),
                        "-r", str(REQUIREMENTS)], check=True)
        importlib.invalidate_caches()  # the folder did not exist at the first attempt: forget that it was empty
        import chdb
    return chdb


def export_events(warehouse: Path, scope: dict[str, Any], steps_only: bool) -> Path:
    """The events in scope as Parquet (step events only, or all), for ClickHouse; reused when present. Written by
    a plain DuckDB in a child process: MemberLens's own warehouse engine may not write files, and one process may
    not open the file twice with two configurations."""
    name = f"funnel_{'steps' if steps_only else 'events'}_{scope['a']:%Y%m%d}_{scope['b']:%Y%m%d}.parquet"
    path = DATA / name
    if not path.exists():
        kinds = f"AND event_type IN ({', '.join(repr(k) for k in STEPS)})" if steps_only else ""
        partial = path.with_suffix(".partial")
        statement = (f"COPY (SELECT member_id, session_id, event_id, occurred_at, event_type FROM events "
                     f"WHERE occurred_at >= TIMESTAMP '{scope['a']:%Y-%m-%d %H:%M:%S}' "
                     f"AND occurred_at < TIMESTAMP '{scope['b']:%Y-%m-%d %H:%M:%S}' {kinds}) "
                     f"TO '{partial}' (FORMAT parquet)")
        subprocess.run([sys.executable, "-c", "import duckdb, sys; "
                        "duckdb.connect(sys.argv[1], read_only=True).execute(sys.argv[2])", str(warehouse), statement],
                       check=True)
        partial.rename(path)
    return path


def clickhouse_query(path: Path, unit: str, mode: str, end: Any, per_unit: bool = False) -> str:
    """``windowFunnel`` per unit over the Parquet file, then units per level (or each unit's level)."""
    option = ", 'strict_order'" if mode == "strict" else ""
    column = f"{unit}_id"
    conditions = [f"event_type = '{STEPS[0]}' AND occurred_at < toDateTime64('{end:%Y-%m-%d %H:%M:%S}', 6, 'UTC')",
                  *(f"event_type = '{k}'" for k in STEPS[1:])]
    inner = (f"SELECT {column} AS unit, windowFunnel({int(WINDOW.total_seconds())}{option})"
             f"(toDateTime(occurred_at, 'UTC'), {', '.join(conditions)}) AS level "
             f"FROM file('{path}', Parquet) WHERE {column} IS NOT NULL GROUP BY {column}")
    if per_unit:
        return f"SELECT unit, level FROM ({inner}) WHERE level > 0"
    return f"SELECT level, count() FROM ({inner}) GROUP BY level ORDER BY level"


def units_per_step(levels: str) -> list[int]:
    """Units reaching each step, from ClickHouse's ``level,count`` CSV."""
    counts = {int(a): int(b) for a, b in (line.split(",") for line in levels.strip().splitlines())}
    return [sum(c for level, c in counts.items() if level >= k) for k in range(1, len(STEPS) + 1)]


_CHILD = """
import sys
from datetime import date
from analytics import funnel_store
from analytics.filters import Filters
from analytics.funnels import FunnelSpec, FunnelStep, funnel_report
from analytics.storage.warehouse import open_warehouse
def peak():  # this process's own high-water mark (a child's ru_maxrss starts at its parent's size when forked)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
engine = open_warehouse(sys.argv[1])
funnel_store.store_funnel_events(engine)
built = peak()
if len(sys.argv) > 2:
    filters = Filters(date.fromisoformat(sys.argv[2]), date.fromisoformat(sys.argv[3]))
    for mode in {modes!r}:
        for unit in {units!r}:
            spec = FunnelSpec(tuple(FunnelStep(k) for k in {steps!r}), {window}, mode, unit)
            funnel_report(engine, spec, filters)
print(built, peak())
"""


def in_child(warehouse: Path, *dates: Any) -> tuple[float, float, float]:
    """Build the funnel store (a no-op when kept) and, given the range's first and last day, run the six funnel
    reports, in a fresh process: (seconds, peak GiB after the build, peak GiB of the whole child)."""
    code = _CHILD.format(modes=MODES, units=UNITS, steps=STEPS, window=int(WINDOW.total_seconds()))
    began = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code, f"duckdb:///{warehouse}", *map(str, dates)],
                             cwd=PROJECT_ROOT, stdout=subprocess.PIPE)
    out = child.stdout.read() if child.stdout else b""
    if child.wait() != 0:
        raise SystemExit("the funnel child process failed")
    built, whole = (int(kib) / 2 ** 20 for kib in out.split()[-2:])
    return time.perf_counter() - began, built, whole


def timed(fn: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


def funnel_scenario(warehouse: Path, repeat: int) -> None:
    from analytics import funnel_store
    from analytics.filters import Filters
    from analytics.funnels import FunnelSpec, FunnelStep, best_attempts, funnel_report
    from analytics.storage import score_store
    from analytics.storage.db import read_frame_columnar
    from analytics.storage.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{warehouse}")
    store = score_store.store_for(engine.dialect)
    kept = all(funnel_store.current(engine, u) is not None for u in UNITS)
    if not kept:  # built in a child process, as the app's background thread would, for its time and memory
        build_seconds, build_peak, _ = in_child(warehouse)
    build = "kept already" if kept else f"built in {build_seconds:.1f} s, peak {build_peak:.2f} GiB"
    chdb = load_chdb()
    with engine.connect() as conn:
        last = data_span(conn).last_day
        first = _range_with_events(conn, last, TARGET_EVENTS)
        filters = Filters(first, last - WINDOW)  # entries stop a window before the data does
        scope = {"a": filters.start_ts, "b": filters.end_ts + WINDOW}
        in_scope = conn.execute(text("SELECT count(*), count(*) FILTER (WHERE event_type IN "
                                     f"({', '.join(repr(k) for k in STEPS)})) FROM events WHERE occurred_at >= :a "
                                     "AND occurred_at < :b"), scope).one()
        files = {True: export_events(warehouse, scope, True), False: export_events(warehouse, scope, False)}
        kinds = ", ".join(repr(k) for k in STEPS)
        floors = {unit: text(f"SELECT count(*), min({unit}_id), max({unit}_id), min(occurred_at), max(occurred_at), "
                             f"min(event_type), max(event_type), min(event_id), max(event_id) FROM events "
                             f"WHERE occurred_at >= :a AND occurred_at < :b AND event_type IN ({kinds}) "
                             f"AND {unit}_id IS NOT NULL") for unit in UNITS}
        specs = {(m, u): FunnelSpec(tuple(FunnelStep(k) for k in STEPS), int(WINDOW.total_seconds()), m, u)
                 for m in MODES for u in UNITS}
        runs: dict[tuple[str, str, str], list[float]] = {}
        counts: dict[tuple[str, str, str], list[int]] = {}
        for round_ in range(repeat + 1):  # the first round warms up and is not counted
            for unit in UNITS:
                seconds, _ = timed(lambda unit=unit: conn.execute(floors[unit], scope).all())
                if round_:
                    runs.setdefault(("floor", "", unit), []).append(seconds)
                for mode in MODES:
                    spec = specs[mode, unit]
                    seconds, report = timed(lambda spec=spec: funnel_report(conn, spec, filters))
                    counts["ours", mode, unit] = report.total["units"].tolist()
                    if round_:
                        runs.setdefault(("ours", mode, unit), []).append(seconds)
                    if mode == "any":
                        continue
                    query = clickhouse_query(files[mode != "strict"], unit, mode, filters.end_ts)
                    seconds, levels = timed(lambda query=query: chdb.query(query, "CSV"))
                    counts["clickhouse", mode, unit] = units_per_step(str(levels))
                    if round_:
                        runs.setdefault(("clickhouse", mode, unit), []).append(seconds)
        sql_only: dict[tuple[str, str], float] = {}
        score_store.enable(engine, None)  # one round without the store: the SQL every other warehouse runs
        for (mode, unit), spec in specs.items():
            sql_only[mode, unit], report = timed(lambda spec=spec: funnel_report(conn, spec, filters))
            assert report.total["units"].tolist() == counts["ours", mode, unit], (mode, unit)
        score_store.enable(engine, store)
        # Unit by unit (ordered mode): our best attempt's step against ClickHouse's level.
        mismatched = {}
        for unit in UNITS:
            ours = read_frame_columnar(conn, select(best_attempts(specs["ordered", unit], filters)))
            theirs = chdb.query(clickhouse_query(files[True], unit, "ordered", filters.end_ts, per_unit=True),
                                "DataFrame")
            both = ours[["unit", "reached"]].merge(theirs, on="unit", how="outer")
            mismatched[unit] = (int((both["reached"] != both["level"]).sum()), len(both))
    engine.dispose()
    _, _, ours_peak = in_child(warehouse, filters.start, filters.end)

    def median(key: tuple[str, str, str]) -> float:
        return statistics.median(runs[key])

    def spread(key: tuple[str, str, str]) -> str:
        return f"{min(runs[key]):.2f}–{max(runs[key]):.2f}"

    print(f"\n## Funnels against ClickHouse's windowFunnel (chdb {chdb.__version__}); DuckDB warm; "
          f"median of {repeat} rounds\n")
    print(f"entries {filters.start} – {filters.end}, window 7 days; {in_scope[0]:,} events in scope, "
          f"{in_scope[1]:,} of them step events; funnel store {build}\n")
    print("| order | unit | ours | ClickHouse | floor | ours / ClickHouse | ours / floor | units per step (ours) | "
          "ClickHouse | SQL alone (1 round) |\n|---|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        for unit in UNITS:
            ours, floor = ("ours", mode, unit), ("floor", "", unit)
            theirs = ("clickhouse", "ordered" if mode == "any" else mode, unit)
            same = counts[ours] == counts[theirs]
            label = "(ordered: no any-order funnel)" if mode == "any" else ("same" if same else "different")
            print(f"| {mode} | {unit} | {median(ours):.2f} s ({spread(ours)}) | {median(theirs):.2f} s "
                  f"({spread(theirs)}) | {median(floor):.2f} s ({spread(floor)}) | "
                  f"{median(ours) / median(theirs):.2f} × | {median(ours) / median(floor):.2f} × | {counts[ours]} | "
                  f"{counts[theirs]} {label} | {sql_only[mode, unit]:.2f} s (same counts) |")
    for unit, (wrong, total) in mismatched.items():
        print(f"\nordered, per {unit}: {wrong:,} of {total:,} units with a different step than windowFunnel's level")
    import resource

    print(f"\npeak memory of the six funnels in a fresh process (store kept): {ours_peak:.2f} GiB")
    print(f"peak memory of this process (ClickHouse's included): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f} GiB")
    print("\ntargets: ours <= 1.5 x ClickHouse's windowFunnel, <= 3 x the floor")
