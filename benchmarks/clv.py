"""Benchmark for the CLV engine: fitting BG/NBD and Gamma-Gamma on a million members' sufficient statistics.

``python -m benchmarks.clv [--members N] [--repeat K] [--warehouse PATH]``

The statistics come from the 1M-member benchmark warehouse when it exists (``benchmarks/data/
warehouse_1000000.duckdb``, through :func:`analytics.clv_sql.clv_summary`, whose time is reported too), else they
are simulated from a BG/NBD process with numpy (seeded): first purchases spread over two years, CDNOW's weekly
parameters, purchase days whole (so the distinct (x, t_x, T) triples are those a real calendar allows).

Reported: distinct triples, the time to compress the members to them, each fit (median of ``--repeat``), and the
floor the fit is compared with: one evaluation of the log-likelihood (and its gradient) on the triples; a fit is
a few dozen such evaluations. Target: BG/NBD + Gamma-Gamma on 1M members <= 10 s. For reference (no target):
the Pareto/NBD fit (a few hundred evaluations, its gradient by finite differences) and the 12-month CLV of every
member.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from analytics import clv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE = PROJECT_ROOT / "benchmarks" / "data" / "warehouse_1000000.duckdb"
TRUE_BGNBD = clv.BgNbdParams(0.243, 4.414, 0.793, 2.426)
TRUE_GAMMAGAMMA = clv.GammaGammaParams(6.25, 3.74, 15.44)


def simulate(members: int, seed: int = 42, days: int = 730) -> pd.DataFrame:
    """BG/NBD members in weeks (FHL 2005's story): λ ~ Gamma(r, α), p ~ Beta(a, b); repeat purchases arrive at
    rate λ and the member leaves after each one with probability p. Given n purchases in (0, T] their times are
    uniform order statistics, so the x-th is T·Beta(x, n - x + 1). Times are then floored to whole days, as purchase
    days are; mean repeat spend is Gamma(p x, x ν), ν ~ Gamma(q, γ)."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = TRUE_BGNBD.values()
    T_days = rng.integers(0, days, members)
    T = T_days / 7.0
    rate = rng.gamma(r, 1.0 / alpha, members)
    drop = rng.beta(a, b, members)
    possible = rng.poisson(rate * T)
    lasting = rng.geometric(drop)  # the repeat purchase after which the member leaves
    x = np.minimum(possible, lasting)
    share = np.where(x > 0, rng.beta(np.maximum(x, 1), np.maximum(possible - x + 1, 1)), 0.0)
    t_x_days = np.floor(share * T_days)
    x = np.minimum(x, t_x_days.astype(np.int64))  # at most one purchase per day after the first
    t_x_days = np.where(x > 0, t_x_days, 0.0)
    p, q, v = TRUE_GAMMAGAMMA.values()
    nu = rng.gamma(q, 1.0 / v, members)
    spend = np.where(x > 0, rng.gamma(p * np.maximum(x, 1), 1.0 / (np.maximum(x, 1) * nu)), 0.0)
    return pd.DataFrame({"frequency": x, "recency": t_x_days / 7.0, "T": T, "monetary_value": spend})


def from_warehouse(path: Path) -> tuple[pd.DataFrame, float]:
    from analytics import clv_sql
    from analytics.storage.warehouse import data_span, open_warehouse

    engine = open_warehouse(f"duckdb:///{path}")
    span = data_span(engine)
    calibration_end = span.end if span else date.today()
    began = time.perf_counter()
    summary = clv_sql.clv_summary(engine, calibration_end, "week")
    seconds = time.perf_counter() - began
    engine.dispose()
    return summary, seconds


def _median(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    runs, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - began)
    return sorted(runs)[len(runs) // 2], result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warehouse", type=Path, default=WAREHOUSE)
    args = parser.parse_args(argv)

    if args.warehouse.exists():
        summary, sql_seconds = from_warehouse(args.warehouse)
        source = f"{args.warehouse.name}: SQL summary {sql_seconds:.2f} s"
    else:
        summary = simulate(args.members)
        source = f"simulated BG/NBD process (seed 42), true {TRUE_BGNBD.values()}"
    x, t_x, T, m = (summary[c].to_numpy(np.float64) for c in ("frequency", "recency", "T", "monetary_value"))

    compress_s, rows = _median(lambda: clv.compress(x, t_x, T), args.repeat)
    assert isinstance(rows, pd.DataFrame)
    rx, rtx, rT, rw = (rows[c].to_numpy() for c in ("frequency", "recency", "T", "weights"))
    objective = clv._BgNbdObjective(rx, rtx, rT, rw, 0.0)
    start = np.log(TRUE_BGNBD.values())
    floor_s, _ = _median(lambda: objective(start), max(args.repeat, 5))
    ll_rows_s, _ = _median(lambda: clv.bgnbd_log_likelihood(TRUE_BGNBD, x, t_x, T), args.repeat)
    bgnbd_s, bgnbd = _median(lambda: clv.fit_bgnbd(x, t_x, T), args.repeat)
    gg_s, gg = _median(lambda: clv.fit_gammagamma(x, m), args.repeat)
    repeaters = int((x > 0).sum())
    pareto_s, _ = _median(lambda: clv.fit_paretonbd(x, t_x, T), 1)
    value_s, _ = _median(lambda: clv.customer_lifetime_value(bgnbd, gg, x, t_x, T, m), args.repeat)  # type: ignore[arg-type]

    print(f"\n## CLV fit, {len(summary):,} members ({source})\n")
    print(f"distinct (x, t_x, T) triples: {len(rows):,}; repeat buyers: {repeaters:,}\n")
    print("| measure | time | vs floor |\n|---|---|---|")
    for name, seconds in [
        ("floor: one BG/NBD log-likelihood + gradient on the triples", floor_s),
        ("one BG/NBD log-likelihood on every member (no compression)", ll_rows_s),
        ("compress members to distinct triples", compress_s),
        ("fit BG/NBD (compression included)", bgnbd_s),
        ("fit Gamma-Gamma (repeat buyers' distinct (x, m) pairs)", gg_s),
        ("BG/NBD + Gamma-Gamma", bgnbd_s + gg_s),
        ("(for reference) fit Pareto/NBD, finite-difference gradient, one run", pareto_s),
        ("(for reference) 12-month CLV of every member from the fitted models", value_s),
    ]:
        print(f"| {name} | {seconds * 1000:,.0f} ms | {seconds / floor_s:,.1f} x |")
    print(f"\nfitted BG/NBD {tuple(round(v, 3) for v in bgnbd.values())}, "  # type: ignore[union-attr]
          f"Gamma-Gamma {tuple(round(v, 2) for v in gg.values())}")  # type: ignore[union-attr]
    print("target: BG/NBD + Gamma-Gamma on 1M members <= 10 s")


if __name__ == "__main__":
    main()
