"""``python -m analytics.synthetic``: build the demo warehouse from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analytics.commandline import iso_date, run_reporting_errors
from analytics.storage.databases import mask_url
from analytics.storage.warehouse import resolve_warehouse_config
from analytics.synthetic.build import (
    DEFAULT_DAYS,
    DEFAULT_END,
    DEFAULT_MEMBERS,
    DEFAULT_SEED,
    DemoSpec,
    generate_warehouse,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analytics.synthetic",
        description="Generate the MemberLens demo warehouse: a believable shop, the same for the same seed.",
    )
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS,
                        help=f"member count (default {DEFAULT_MEMBERS:,})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--url", help="target: duckdb:///path.duckdb, postgresql+psycopg://... or "
                        "sparksql://host:10000/db (default: the configured warehouse, else data/warehouse.duckdb; "
                        "none with --parquet)")
    parser.add_argument("--parquet", metavar="DIR", help="write Parquet files (a folder per table) and "
                        "create_tables.sql there; with a sparksql:// --url also define the tables on the server "
                        "(docs/spark.md)")
    parser.add_argument("--end", type=iso_date, default=DEFAULT_END, help=f"last trading day (default {DEFAULT_END})")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"trading days (default {DEFAULT_DAYS})")
    parser.add_argument("--replace", action="store_true", help="rebuild even if the warehouse tables exist")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    def body() -> int:
        spec = DemoSpec(members=args.members, seed=args.seed, end=args.end, days=args.days)
        url = args.url or (None if args.parquet else resolve_warehouse_config().url)
        summary = generate_warehouse(url, spec, replace=args.replace, progress=progress, parquet_dir=args.parquet)
        rows = ", ".join(f"{name} {count:,}" for name, count in summary.rows.items())
        where = " and ".join(w for w in (args.parquet, url and mask_url(url)) if w)
        print(f"Built {where} in {summary.seconds:.1f} s: {rows}", file=sys.stderr)
        return 0

    return run_reporting_errors(body)


if __name__ == "__main__":
    sys.exit(main())
