"""What every MemberLens command line shares: argument types, the default date range, output as CSV or JSON,
and how problems are reported (one clear line, an exit status).

Kept apart from the analyses, so that the demo generator and the importers (``python -m analytics.synthetic``,
``python -m analytics.importers``) do not import every analysis to print an error.

Exit statuses: 0 done; 2 input refused (bad arguments, a malformed audience, a file that cannot be imported);
1 the warehouse or app-state database cannot be used, or an unexpected failure (a bug: logged with its
traceback, reported with an error id).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from analytics.errors import ImportRefused, InputError, MemberLensError, UsageError, WarehouseError, report_bug
from analytics.filters import DEFAULT_RANGE_DAYS, filter_options
from analytics.i18n import _
from analytics.storage.databases import data_dir
from analytics.storage.warehouse import data_span

EXIT_WAREHOUSE = 1
EXIT_USAGE = 2
#: Set to see an unexpected failure's traceback on the terminal (it always goes to the log file).
DEBUG_ENV = "MEMBERLENS_DEBUG"


def iso_date(text: str) -> date:
    """argparse type for an ISO date (YYYY-MM-DD) with a message that says so."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("{text} is not a date in the form YYYY-MM-DD").format(
            text=repr(text))) from None


def choices_list(allowed: Sequence[str] | None) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        if allowed is not None:
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise argparse.ArgumentTypeError(
                    _("unknown value {unknown}; choose from {allowed}").format(unknown=", ".join(unknown),
                                                                              allowed=", ".join(allowed)))
        return values

    return parse



EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)


def resolve_dates(
    engine: Engine, start: date | None, end: date | None, days: int = DEFAULT_RANGE_DAYS
) -> tuple[date, date]:
    """Fill in missing dates: by default the last ``days`` days of data (not of the wall clock).

    Only ``--start``: up to the last day of data. Only ``--end``: the ``days`` days ending then.
    """
    if end is None:
        span = data_span(engine)
        if span is None:
            raise WarehouseError(_("The warehouse holds no orders, so there is no default date range."),
                                 _("Load data first, or pass --start and --end."))
        end = span.last_day if start is None or start <= span.last_day else start
        if start is None:
            start = span.last_days(days)[0]
    if start is None:
        start = end - timedelta(days=days - 1)
    if end < start:
        raise UsageError(_("--end {end} is before --start {start}").format(end=end, start=start))
    if start < EARLIEST or end > LATEST:
        raise UsageError(_("dates must lie between {earliest} and {latest}").format(earliest=EARLIEST, latest=LATEST))
    return start, end


def check_channels(engine: Engine, channels: Sequence[str]) -> None:
    """Refuse sales channels the warehouse does not have (a typo would silently match nothing)."""
    known = filter_options(engine).channels
    unknown = [c for c in channels if c not in known]
    if unknown:
        raise UsageError(_("unknown sales channel {unknown}; the warehouse has {known}").format(
            unknown=", ".join(unknown), known=", ".join(known)))


def write(frame: pd.DataFrame, fmt: str, out=None) -> None:
    """Write a frame as CSV or as a JSON array of records (dates ISO, missing values null) to ``out``
    (default: standard output, as it is when the command runs)."""
    out = out or sys.stdout
    if fmt == "json":
        records = [
            {k: _json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")
        ]
        json.dump(records, out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        frame.to_csv(out, index=False)


def _json_value(value: object) -> object:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA or value is pd.NaT:
        return None  # JSON has no NaN or infinity (an infinite conviction prints as null)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def log_file() -> Path:
    """Where the command line logs unexpected failures with their tracebacks."""
    return data_dir() / "logs" / "memberlens-cli.log"


def _log_to_file() -> Path | None:
    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("memberlens").addHandler(handler)
    return path


def _print_problem(exc: MemberLensError) -> None:
    print(_("error: {problem}").format(problem=exc.problem), file=sys.stderr)
    if exc.fix:
        print(_("  fix: {fix}").format(fix=exc.fix), file=sys.stderr)


def run_reporting_errors(body: Callable[[], int]) -> int:
    """Run a command's body; turn every failure into one clear line on stderr and an exit status.

    Shared by ``python -m analytics``, ``python -m analytics.synthetic`` and ``python -m analytics.importers``.
    Only MemberLens's own errors (:mod:`analytics.errors`) are explained; anything else is a bug, logged with
    its traceback (``MEMBERLENS_DEBUG=1`` shows it here) and reported with an error id.
    """
    try:
        return body()
    except BrokenPipeError:  # e.g. piped into `head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (InputError, ImportRefused) as exc:
        _print_problem(exc)
        return EXIT_USAGE
    except MemberLensError as exc:
        _print_problem(exc)
        return EXIT_WAREHOUSE
    except KeyboardInterrupt:
        print(_("interrupted; nothing was written"), file=sys.stderr)
        return 130
    except Exception as exc:
        from analytics.storage.warehouse import stopped_query

        stopped = stopped_query(exc)
        if stopped is not None:  # the statement timeout or the memory limit
            _print_problem(stopped)
            return EXIT_WAREHOUSE
        if os.environ.get(DEBUG_ENV):
            raise
        where = _log_to_file()
        error_id = report_bug(exc, "command line")
        print((_("error: an unexpected failure ({kind}, error id {error_id}). This is a bug in MemberLens; the details "
                 "are in {where}.") if where else
               _("error: an unexpected failure ({kind}, error id {error_id}). This is a bug in MemberLens; set "
                 "{variable}=1 to see them.")).format(kind=type(exc).__name__, error_id=error_id, where=where,
                                                      variable=DEBUG_ENV), file=sys.stderr)
        return EXIT_WAREHOUSE
