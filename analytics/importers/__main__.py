"""``python -m analytics.importers KIND FILE``: import a file into the warehouse from the command line.

Prints what was imported (or that the file was imported before) and exits 0. A file that cannot be
imported prints ``error:`` and ``fix:`` lines, writes its rejected rows where ``--rejects`` says,
changes nothing and exits 2; a warehouse that cannot be written exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from analytics.commandline import iso_date, run_reporting_errors
from analytics.importers import (
    DELIMITERS,
    ENCODINGS,
    KINDS,
    ROLES,
    WHITESPACE,
    ImportOptions,
    ImportRefused,
    import_file,
)
from analytics.storage.databases import mask_url
from analytics.storage.warehouse import resolve_warehouse_config

_DELIMITER_WORDS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|", "whitespace": WHITESPACE}


def _delimiter(text: str) -> str:
    value = _DELIMITER_WORDS.get(text, "\t" if text == "\\t" else text)
    if value not in DELIMITERS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a supported delimiter; use comma, semicolon, tab, pipe or whitespace")
    return value


def _mapping(text: str) -> tuple[str, str]:
    role, sep, column = text.partition("=")
    if not sep or not role.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not ROLE=COLUMN (e.g. invoice=OrderNumber)")
    return role.strip(), column.strip()


def build_parser() -> argparse.ArgumentParser:
    roles = "; ".join(f"{kind}: {', '.join(r.name for r in ROLES[kind])}" for kind in KINDS if ROLES[kind])
    parser = argparse.ArgumentParser(
        prog="python -m analytics.importers",
        description="Import a shop's file into the MemberLens warehouse: line-level transactions (UCI Online "
        "Retail layouts), clickstream events (REES46, RetailRocket layouts) or baskets (one per line). The import "
        "lands whole or not at all, and importing the same file again changes nothing.",
        epilog=f"Roles for --map: {roles}.",
    )
    parser.add_argument("kind", choices=KINDS, help="what the file holds")
    parser.add_argument("file", help="CSV, CSV.GZ or XLSX file")
    parser.add_argument("--url", help="warehouse SQLAlchemy URL (default: the configured warehouse, as the app "
                        "resolves it); DuckDB or PostgreSQL")
    parser.add_argument("--map", type=_mapping, action="append", default=[], metavar="ROLE=COLUMN",
                        help="read ROLE from COLUMN (repeatable); an empty COLUMN ignores that role")
    parser.add_argument("--delimiter", type=_delimiter, default=",",
                        help="comma (default), semicolon, tab, pipe or whitespace (runs of spaces, e.g. CDNOW)")
    parser.add_argument("--encoding", choices=ENCODINGS, default="utf-8", help="text encoding (default utf-8)")
    parser.add_argument("--date-format", help="strptime format of the date column, e.g. '%%d/%%m/%%Y %%H:%%M' "
                        "(default: detected)")
    parser.add_argument("--sheet", help="XLSX: the one sheet to read (default: every sheet with the same header)")
    parser.add_argument("--channel", help="sales channel to record on every imported order (the files do not say)")
    parser.add_argument("--basket-date", type=iso_date, help="baskets: the day they were bought (default today)")
    parser.add_argument("--skip-bad-rows", action="store_true",
                        help="load the readable rows and list unreadable ones, instead of refusing the file")
    parser.add_argument("--replace", action="store_true",
                        help="first delete all MemberLens data in the warehouse (e.g. the demo shop)")
    parser.add_argument("--rejects", metavar="CSV", help="write the rejected rows (row, column, value, reason) here")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    def body() -> int:
        url = args.url or resolve_warehouse_config().url
        mapping = dict(args.map)
        options = ImportOptions(
            mapping=mapping, delimiter=args.delimiter, encoding=args.encoding, date_format=args.date_format,
            sheet=args.sheet, skip_bad_rows=args.skip_bad_rows, replace=args.replace, channel=args.channel,
            basket_date=args.basket_date)

        def progress(fraction: float, message: str) -> None:
            if sys.stderr.isatty():
                print(f"\r{fraction:4.0%} {message:<40}", end="", file=sys.stderr, flush=True)

        try:
            result = import_file(url, args.kind, args.file, options, progress=progress)
        except ImportRefused as refused:
            if sys.stderr.isatty():
                print(file=sys.stderr)
            if args.rejects and not refused.rejected.empty:
                refused.rejected.to_csv(args.rejects, index=False)
                refused.fix = f"{refused.fix}\n  rejected rows written to {args.rejects}".lstrip("\n ")
            raise
        if sys.stderr.isatty():
            print(file=sys.stderr)
        if args.rejects:
            result.rejected.to_csv(args.rejects, index=False)
        report = {
            "file": result.file_name, "kind": result.kind, "warehouse": mask_url(url),
            "already_imported": result.already_imported is not None,
            "rows_read": result.rows_read, "rows_rejected": result.rows_rejected,
            "inserted": result.inserted, "already_present": result.already_present,
            "rejected_by_reason": dict(zip(*[result.rejected_by_reason()[c] for c in ("reason", "rows")], strict=True)),
            "layout": result.layout, "date_format": result.date_format, "mapping": result.mapping,
            "summary": result.summary,
        }
        if args.format == "json":
            json.dump(report, sys.stdout, default=str, indent=1)
            print()
        else:
            print(_text(result, url))
        return 0

    return run_reporting_errors(body)


def _text(result, url: str) -> str:
    if result.already_imported is not None:
        previous = result.already_imported
        return (f"{result.file_name} was imported already on {previous.imported_at:%Y-%m-%d %H:%M} "
                f"(import {previous.import_id}); nothing changed.")
    lines = [f"Imported {result.file_name} ({result.kind}) into {mask_url(url)}"]
    if result.layout:
        lines.append(f"  layout: {result.layout}; dates read as {result.date_format}")
    lines.append(f"  rows read: {result.rows_read:,}; rejected: {result.rows_rejected:,}")
    for reason, rows in result.rejected_by_reason().itertuples(index=False):
        lines.append(f"    {rows:>9,}  {reason}")
    lines.append("  new rows per table:")
    for table, count in result.inserted.items():
        present = result.already_present.get(table, 0)
        extra = f" ({present:,} were there already)" if present else ""
        lines.append(f"    {table}: {count:,}{extra}")
    lines.append("  the file's figures:")
    for key, value in result.summary.items():
        lines.append(f"    {key}: {value:,}" if isinstance(value, int) else f"    {key}: {value}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
