"""MemberLens benchmarks: ``python -m benchmarks.run [--scenario all|generator|kpis|import|rules|...]``.

Prints plain tables of medians over several runs, each figure next to its target or its baseline
measured in the same run. Nothing here is a test: speed is measured, not asserted.

* ``generator``: builds the demo warehouse in a child process per run (so peak memory is the
  child's own maximum resident set size) at the first-run size (50,000 members) and at the
  benchmark size (1,000,000 members by default). The last large build is kept as the KPI warehouse.
* ``kpis``: the executive page's queries on that warehouse, warm, for the default view (last 90
  days of data): the KPI summary, the daily net-sales trend and net sales by channel; for net sales by
  member tier; for "last quarter against the same quarter last year, repurchase by tier"; and the
  other breakdowns and the trailing repurchase trend on their own. The floor is a single full scan of
  ``orders`` in the same run: one query that reads every column of every row (min/max of the text and
  time columns, sums of the numbers).
* ``import``: the transactions importer on the real Online Retail file against DuckDB's plain
  ``read_csv`` of the same file in the same run, and the command line's wall time and peak memory.
* ``rules``: association rules on Groceries (support 0.001) and the Online Retail invoices (0.005)
  against pyfim, C. Borgelt's C FP-growth, on the same baskets and thresholds in the same run.
* ``funnels``: see :mod:`benchmarks.funnels` (ClickHouse's ``windowFunnel`` through chdb, installed by the
  scenario from ``benchmarks/requirements.txt``); ``heatmaps``: see :mod:`benchmarks.funnels_heatmaps`;
  ``rfm`` and ``clusters``: see :mod:`benchmarks.segments`; ``targeting``: see :mod:`benchmarks.targeting`;
  ``programme``: see :mod:`benchmarks.programme` (all on the benchmark warehouse);
  ``recommend``: see :mod:`benchmarks.recommend` (the 50,000-member demo, Online Retail and the benchmark warehouse);
  ``pages``: see :mod:`benchmarks.pages` (every page in Chromium, cold and warm, on the 50,000-member demo).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from benchmarks.funnels import funnel_scenario
from benchmarks.funnels_heatmaps import heatmaps_scenario
from benchmarks.predictions import predictions_scenario
from benchmarks.programme import programme_scenario
from benchmarks.segments import clusters_scenario, rfm_scenario
from benchmarks.targeting import targeting_scenario

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = PROJECT_ROOT / "benchmarks" / "data"
GENERATOR_TARGETS = {50_000: (60.0, None), 1_000_000: (360.0, 6.0)}  # seconds, GiB


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def build_once(members: int, seed: int, target: Path) -> tuple[float, float]:
    """Build a warehouse in a child process; return (seconds, peak resident GiB of the child)."""
    target.unlink(missing_ok=True)
    log = target.with_suffix(".log")
    began = time.perf_counter()
    with log.open("w") as progress:  # a file, not a pipe: a full pipe would stall the child
        child = subprocess.Popen(
            [sys.executable, "-m", "analytics.synthetic", "--members", str(members), "--seed", str(seed),
             "--url", f"duckdb:///{target}"],
            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=progress,
        )
        _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - began
    if status != 0:
        raise SystemExit(f"generator failed:\n{log.read_text()[-2000:]}")
    log.unlink()
    return seconds, usage.ru_maxrss / 1024 / 1024  # KiB on Linux


def generator_scenario(members: int, repeat: int, keep: Path) -> None:
    print(f"\n## Demo generator (median of {repeat} runs, each in a fresh process)\n")
    rows = []
    for size in sorted({50_000, members}):
        runs = [build_once(size, 42, DATA / f"gen_{size}_{r}.duckdb") for r in range(repeat)]
        seconds = statistics.median(r[0] for r in runs)
        peak = statistics.median(r[1] for r in runs)
        time_target, memory_target = GENERATOR_TARGETS.get(size, (None, None))
        rows.append([f"{size:,} members", f"{seconds:.1f} s", f"{time_target:.0f} s" if time_target else "-",
                     f"{seconds / time_target:.2f}" if time_target else "-", f"{peak:.2f} GiB",
                     f"{memory_target:.0f} GiB" if memory_target else "-",
                     " ".join(f"{r[0]:.1f}" for r in runs)])
        for r in range(repeat):
            path = DATA / f"gen_{size}_{r}.duckdb"
            if size == members and r == repeat - 1:
                shutil.move(path, keep)
            else:
                path.unlink(missing_ok=True)
    print(table(rows, ["build", "median", "target", "ratio", "peak RSS", "target", "runs (s)"]))


def median_ms(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    fn()  # warm: data in memory, plans cached
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), times


def kpi_scenario(warehouse: Path, repeat: int) -> None:
    from analytics import kpis
    from analytics.filters import Filters, period_range
    from analytics.storage.contract import events, orders
    from analytics.storage.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in (orders, events)}
        span = data_span(conn)
        filters = Filters(*span.last_days(90))
        text_and_time = [func.min(c) for c in orders.c if c.name not in
                         ("gross_amount", "discount_amount", "net_amount", "points_earned", "points_redeemed")]
        numbers = [func.sum(orders.c[c]) for c in
                   ("gross_amount", "discount_amount", "net_amount", "points_earned", "points_redeemed")]
        full_scan = select(*text_and_time, *numbers)
        quarter = Filters(*period_range("last_quarter", span.first_day, span.last_day))
        measured = {
            "floor: one full scan of orders": lambda: conn.execute(full_scan).all(),
            "KPI summary (9 KPIs, 2 periods)": lambda: kpis.kpi_summary(conn, filters),
            "trend: net sales by day": lambda: kpis.kpi_trend(conn, filters, "net_sales", "day"),
            "breakdown: net sales by sales channel": lambda: kpis.kpi_breakdown(conn, filters, "channel"),
            "breakdown: net sales by member tier": lambda: kpis.kpi_breakdown(conn, filters, "tier"),
            "PAGE, default view": lambda: (kpis.kpi_summary(conn, filters),
                                           kpis.kpi_trend(conn, filters, "net_sales", "day"),
                                           kpis.kpi_breakdown(conn, filters, "channel")),
            "PAGE, member-tier view": lambda: (kpis.kpi_summary(conn, filters),
                                               kpis.kpi_trend(conn, filters, "net_sales", "day"),
                                               kpis.kpi_breakdown(conn, filters, "tier")),
            "PAGE, last quarter vs last year, repurchase by tier": lambda: (
                kpis.kpi_summary(conn, quarter, "year_ago"),
                kpis.kpi_trend(conn, quarter, "repurchase_rate", "week"),
                kpis.kpi_breakdown(conn, quarter, "tier", "repurchase_rate", "year_ago")),
            "breakdown: net sales by category": lambda: kpis.kpi_breakdown(conn, filters, "category"),
            "breakdown: net sales new vs returning": lambda: kpis.kpi_breakdown(conn, filters, "customer_type"),
            "breakdown: session conversion by region": lambda: kpis.kpi_breakdown(conn, filters, "region",
                                                                                  "session_conversion"),
            "trend: repurchase by day (trailing 90 days)": lambda: kpis.kpi_trend(conn, filters, "repurchase_rate",
                                                                                  "day"),
        }
        results = {name: median_ms(fn, repeat) for name, fn in measured.items()}
    engine.dispose()
    floor = results["floor: one full scan of orders"][0]
    print(f"\n## Executive page queries, DuckDB warm, median of {repeat} runs\n")
    print(f"warehouse: {warehouse.name}, {counts['orders']:,} orders, {counts['events']:,} events")
    print(f"period {filters.start} – {filters.end} "
          f"vs {filters.previous().start} – {filters.previous().end}\n")
    rows = [[name, f"{ms:.0f} ms", f"{ms / floor:.2f}x"] for name, (ms, _runs) in results.items()]
    print(table(rows, ["query", "median", "vs floor"]))
    print("\ntargets: each page view <= 1000 ms and <= 2.00x the floor")


RETAIL = PROJECT_ROOT.parent / "shared" / "datasets" / "online_retail.csv.gz"
IMPORT_TARGETS = (20.0, 1.5, 3.0)  # seconds, GiB, times DuckDB's plain read_csv


def import_scenario(repeat: int) -> None:
    """Import the Online Retail file (541,909 lines) into a fresh DuckDB warehouse.

    The baseline is DuckDB's plain ``read_csv`` of the same file into a table (type detection
    included), in the same process and run. Peak memory is that of a child process running the
    command-line importer, interpreter included.
    """
    import duckdb

    from analytics.importers import import_file

    if not RETAIL.exists():
        print(f"\nimport: skipped, {RETAIL} is absent")
        return
    work = DATA / "import"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    def plain_read() -> None:
        con = duckdb.connect()
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv($path)", {"path": str(RETAIL)})
        con.close()

    runs = iter(range(10_000))

    def one_import() -> None:
        import_file(f"duckdb:///{work / f'run{next(runs)}.duckdb'}", "transactions", RETAIL)

    one_import()  # warm-up: imports, file cache
    baseline, _ = median_ms(plain_read, repeat * 3)
    ours, _ = median_ms(one_import, repeat * 3)
    target = work / "cli.duckdb"
    began = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "analytics.importers", "transactions", str(RETAIL), "--url",
                              f"duckdb:///{target}"], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    if status != 0:
        raise SystemExit("the command-line import failed")
    peak = usage.ru_maxrss / 1024 / 1024
    seconds, gib, ratio = IMPORT_TARGETS
    print(f"\nImport of {RETAIL.name} (541,909 lines) into a new DuckDB warehouse, median of {repeat * 3}")
    print(table([
        ["DuckDB read_csv of the file (baseline)", f"{baseline:.0f} ms", ""],
        ["import_file (read, check, shape, load, commit)", f"{ours:.0f} ms",
         f"{ours / baseline:.2f}x baseline (target <= {ratio:.0f}x)"],
        ["python -m analytics.importers (whole process)", f"{wall:.1f} s, {peak:.2f} GiB peak",
         f"target <= {seconds:.0f} s, <= {gib} GiB"],
    ], ["what", "time", "against"]))
    shutil.rmtree(work, ignore_errors=True)


GROCERIES = PROJECT_ROOT.parent / "shared" / "datasets" / "groceries.csv"
RULES_TARGET = 3.0  # times pyfim
RULES_MEMORY_GIB = 1.0

_RULES_CHILD = """
import sys, time
from datetime import date
from analytics.filters import Filters
from analytics.rules import RuleSpec, load_baskets, mine_rules
from analytics.storage.warehouse import open_warehouse
engine = open_warehouse(sys.argv[1])
began = time.perf_counter()
baskets = load_baskets(engine, Filters(date(2010, 12, 1), date(2011, 12, 9)), "product")
loaded = time.perf_counter()
result = mine_rules(baskets, RuleSpec(min_support=0.005, min_confidence=0.5, max_len=10))
print(baskets.count, len(baskets.labels), len(result.rules), loaded - began, time.perf_counter() - loaded)
"""


def _mlxtend_rules(tracts: list[list[str]], support: float) -> None:
    """The pure-Python alternative, on sparse input (its best case): why MemberLens mines with pyfim."""
    import pandas as pd
    from mlxtend.frequent_patterns import association_rules, fpgrowth
    from mlxtend.preprocessing import TransactionEncoder

    encoder = TransactionEncoder().fit(tracts)
    onehot = pd.DataFrame.sparse.from_spmatrix(encoder.transform(tracts, sparse=True), columns=encoder.columns_)
    association_rules(fpgrowth(onehot, min_support=support, use_colnames=True), metric="confidence",
                      min_threshold=0.5)


def rules_scenario(repeat: int) -> None:
    """Association rules against pyfim (Borgelt's C FP-growth) on the same baskets and thresholds.

    pyfim mines the baskets as lists of item names with the same options (rules with one item in the
    consequent, support of body and head together); ours is ``mine_rules`` on the same baskets held
    as :class:`Baskets`: guard-rail estimate, mining, every metric and the rule table. Online Retail's
    baskets are the completed invoices of the imported file, read from the warehouse by
    ``load_baskets`` (timed separately); its peak memory is that of a child process doing both.
    """
    from datetime import date

    import fim

    from analytics.filters import Filters
    from analytics.importers import import_file
    from analytics.rules import Baskets, RuleSpec, load_baskets, mine_rules
    from analytics.storage.warehouse import open_warehouse

    if not (GROCERIES.exists() and RETAIL.exists()):
        print("\nrules: skipped, the shared datasets are absent")
        return
    lines = [list(dict.fromkeys(i.strip() for i in line.split(",") if i.strip()))
             for line in GROCERIES.read_text(encoding="utf-8").splitlines()]
    work = DATA / "rules"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    url = f"duckdb:///{work / 'retail.duckdb'}"
    import_file(url, "transactions", RETAIL)
    child = subprocess.Popen([sys.executable, "-c", _RULES_CHILD, url], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                             text=True)
    _pid, status, usage = os.wait4(child.pid, 0)  # its output is one short line: no pipe to fill
    if status != 0:
        raise SystemExit("the rules child process failed")
    _count, _items, rule_count, load_s, mine_s = child.stdout.read().split()
    peak = usage.ru_maxrss / 1024 / 1024
    engine = open_warehouse(url)
    retail = load_baskets(engine, Filters(date(2010, 12, 1), date(2011, 12, 9)), "product")
    engine.dispose()
    retail_lists = [[retail.labels[i] for i in basket] for basket in retail.as_lists()]
    rows = []
    for name, baskets, tracts, support in (("Groceries", Baskets.from_lists(lines), lines, 0.001),
                                           ("Online Retail invoices", retail, retail_lists, 0.005)):
        spec = RuleSpec(min_support=support, min_confidence=0.5, max_len=10)
        mined = mine_rules(baskets, spec)  # warm-up, and the rule count

        def theirs(tracts=tracts, support=support) -> None:
            fim.fpgrowth(tracts, target="r", supp=support * 100, conf=50, zmin=2, report="abhc", mode="o")

        pyfim_ms, _ = median_ms(theirs, repeat * 5)
        ours_ms, _ = median_ms(lambda baskets=baskets, spec=spec: mine_rules(baskets, spec), repeat * 5)
        mlxtend_ms, _ = median_ms(lambda tracts=tracts, support=support: _mlxtend_rules(tracts, support), 1)
        rows.append([f"{name}: {baskets.count:,} baskets x {len(baskets.labels):,} items, support {support:g}, "
                     f"confidence 0.5 ({len(mined.rules):,} rules)", f"{pyfim_ms:.0f} ms", f"{ours_ms:.0f} ms",
                     f"{ours_ms / pyfim_ms:.2f}x (target <= {RULES_TARGET:.0f}x)",
                     f"{mlxtend_ms:,.0f} ms = {mlxtend_ms / pyfim_ms:.0f}x"])
    print(f"\nAssociation rules against pyfim 6.28 (C FP-growth), median of {repeat * 5}")
    print(table(rows, ["baskets", "pyfim", "MemberLens", "ratio", "mlxtend, sparse input (one run)"]))
    print(f"Online Retail in a fresh process: baskets read from the warehouse in {float(load_s):.2f} s, "
          f"{int(rule_count):,} rules mined in {float(mine_s):.2f} s, peak memory {peak:.2f} GiB "
          f"(target <= {RULES_MEMORY_GIB:.0f} GB)")
    shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="all",
                        choices=("all", "generator", "kpis", "import", "rules", "funnels", "heatmaps", "rfm",
                                 "clusters", "targeting", "predictions", "recommend",
                                 "programme", "pages"))
    parser.add_argument("--members", type=int, default=1_000_000, help="benchmark warehouse size")
    parser.add_argument("--repeat", type=int, default=3, help="runs per generator figure (KPI queries run 3x more)")
    parser.add_argument("--warehouse", type=Path,
                        help="reuse this DuckDB warehouse for the kpis, funnels and heatmaps scenarios")
    args = parser.parse_args(argv)
    DATA.mkdir(parents=True, exist_ok=True)
    warehouse = args.warehouse or DATA / f"warehouse_{args.members}.duckdb"
    print(f"MemberLens benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.scenario in ("all", "generator"):
        generator_scenario(args.members, args.repeat, warehouse)
    uses_warehouse = ("all", "kpis", "funnels", "heatmaps", "rfm", "clusters", "targeting", "predictions", "programme")
    if args.scenario in uses_warehouse and not warehouse.exists():
        print(f"\nbuilding {warehouse.name} for the warehouse scenarios ...")
        build_once(args.members, 42, warehouse)
    if args.scenario in ("all", "kpis"):
        kpi_scenario(warehouse, args.repeat * 3)
    if args.scenario in ("all", "import"):
        import_scenario(args.repeat)
    if args.scenario in ("all", "rules"):
        rules_scenario(args.repeat)
    if args.scenario in ("all", "funnels"):
        funnel_scenario(warehouse, args.repeat)
    if args.scenario in ("all", "heatmaps"):
        heatmaps_scenario(warehouse, args.repeat * 3)
    if args.scenario in ("all", "rfm"):
        rfm_scenario(warehouse, args.repeat * 3)
    if args.scenario in ("all", "clusters"):
        clusters_scenario(warehouse, args.repeat)
    if args.scenario in ("all", "targeting"):
        targeting_scenario(warehouse, args.repeat * 3)
    if args.scenario in ("all", "predictions"):
        predictions_scenario(warehouse, args.repeat)
    if args.scenario in ("all", "recommend"):
        from benchmarks.recommend import main as recommend_benchmark

        recommend_benchmark([] if warehouse.exists() else ["--skip-large"])
    if args.scenario == "pages":  # a browser session on the 50,000-member demo (not part of "all")
        from benchmarks.pages import pages_scenario

        pages_scenario()
    if args.scenario in ("all", "programme"):
        programme_scenario(warehouse, args.repeat * 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
