"""Data quality: is the warehouse complete, accurate and timely?

Every check is defined once, in :data:`CHECKS`, with a plain-language description that the app
shows as help and the CLI (``python -m analytics quality``) prints. The checks derive from the contract's
declarations (keys, references, allowed values, time columns; :mod:`analytics.storage.contract`) and each kind
of check is one object of :mod:`analytics.quality_checks`; :func:`quality_report` runs
them all in the warehouse and returns a :class:`QualityReport`. Nothing is read into Python but
aggregates: per contract table one scan computes the row count, the non-empty count of every
column, the newest timestamp and every row-level check at once (conditional counts); each
duplicate-key check and each orphan check is one more query (``COUNT(DISTINCT ...)`` and a
``NOT EXISTS`` anti-join). So the work is bounded by 9 table scans + 8 key checks + 12 reference
checks, whatever the number of columns; only a check that finds something runs one more query to
describe it (how many keys repeat, which unknown codes occur). On the 1M-member benchmark
warehouse (51M events, 15M order lines) DuckDB needs about 20 seconds on two idle cores, a third
of it for the distinct count of the 51M event ids; the 2,000-member test warehouse takes 0.1 s.
Table and column names come only from :mod:`analytics.storage.contract`; values such as "today" and the
allowed codes are bound parameters.

Dimensions:

* **complete**: each table is present with every contract column and holds rows; required
  (``NOT NULL``) columns are filled; every reference (foreign key) points to an existing row.
* **accurate**: keys are unique; money is never negative, quantities are at least 1, points
  balances are not negative, ``net_amount = gross_amount - discount_amount`` (to half a cent);
  timestamps are not in the future (after the end of ``today``) nor before 1990; codes (order
  status, event type, tiers, ledger reason, campaign type/channel, arm) are the contract's.
* **timely**: the newest row of each timestamped table is recent relative to ``today``.

Status rules (also written into each check's ``detail``):

* **fail on any affected row**: empty required values, duplicate keys, unknown codes, and a
  missing table or column. These break joins, double-count totals or drop rows from every
  breakdown, so a single row is enough to distrust the figures.
* **warn on any, fail above a share** (``QualityThresholds.fail_share``, 1% of the table's rows by
  default): orphan references, negative amounts and balances, quantities below 1, net amounts
  that do not add up, future or pre-1990 dates. A handful of such rows is worth fixing at the
  source but does not change what the pages show; from 1% of a table on, totals and rates built
  on it can be off by a percent or more, the size of the period-on-period changes the executive
  page reports, so the figures are not to be trusted until the rows are fixed.
* **empty tables**: members, products, orders and order_items are the core of every analysis, so
  an empty one fails. events, points_ledger, tier_changes, campaigns and campaign_members may
  legitimately be empty in an imported shop, so an empty one is a warning ("not loaded").
* **freshness**: pass when the newest timestamp (up to the end of ``today``: rows dated later are
  the accuracy checks' business and must not make a table look fresh) is at most ``fresh_days``
  (2) days before ``today``, warn up to ``stale_days`` (30), fail beyond. Tier changes (monthly evaluations) and
  campaigns and their audiences (sent every few weeks) naturally lag: 31 days are added to both
  limits for them. Empty tables get no freshness check (the completeness check covers them).

Affected rows of a duplicate-key check are *all* the rows whose key occurs more than once (two
copies of an order count 2); the detail also gives the number of duplicated keys and extra copies.
Shares are of the table's rows. A table's status in :attr:`QualityReport.tables` is the worst
status of its checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

import pandas as pd
from sqlalchemy import Column, ColumnElement, Connection, Table, case, func, select

from analytics.errors import InputError
from analytics.i18n import N_, _
from analytics.quality_checks import KIND_BY_KEY, KINDS, CheckDefinition, Run, Scan, Status, as_date, end_of
from analytics.sqlparts import count_if
from analytics.storage.contract import TABLE_BY_NAME, TABLE_TIME_COLUMNS, WAREHOUSE_TABLES
from analytics.storage.db import Bind, connection, each_on_its_own_connection
from analytics.storage.warehouse import present_columns

DIMENSIONS: tuple[str, ...] = ("complete", "accurate", "timely")
STATUSES: tuple[str, ...] = ("pass", "warn", "fail")
#: Each dimension's name and description, in English (marked for the catalog; ``_()`` translates them where shown).
DIMENSION_LABELS: dict[str, str] = {"complete": N_("Complete"), "accurate": N_("Accurate"), "timely": N_("Timely")}
DIMENSION_DESCRIPTIONS: dict[str, str] = {
    "complete": N_("Everything that should be there is: every table and column, rows in the core tables, "
                   "required values filled, and every reference pointing to a row that exists."),
    "accurate": N_("The values are right: keys unique, amounts and quantities in range, net = gross − discount, "
                   "dates neither in the future nor implausibly old, codes from the contract's lists."),
    "timely": N_("The data is current: the newest row of each table is recent compared with today."),
}
#: How many checks have a status, as the summary and the page write it: "2 fail", "3 warn", "91 pass".
STATUS_COUNTS: dict[str, str] = {"fail": N_("{n} fail"), "warn": N_("{n} warn"), "pass": N_("{n} pass")}


@dataclass(frozen=True)
class QualityThresholds:
    """When a check warns or fails (see the module docstring for why these defaults)."""

    fresh_days: int = 2
    stale_days: int = 30
    fail_share: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.fresh_days <= self.stale_days:
            raise InputError(_("Freshness limits must satisfy 0 <= fresh_days <= stale_days, got {fresh} and "
                               "{stale}.").format(fresh=self.fresh_days, stale=self.stale_days))
        if not 0 <= self.fail_share <= 1:
            raise InputError(_("fail_share is a share of rows between 0 and 1, got {share}.").format(
                share=self.fail_share))


DEFAULT_THRESHOLDS = QualityThresholds()


def _definitions() -> tuple[CheckDefinition, ...]:
    """Every check, in the order reports list them: by dimension, then table (contract order), then kind."""
    return tuple(check for dimension in DIMENSIONS for table in WAREHOUSE_TABLES for kind in KINDS
                 if kind.dimension == dimension for check in kind.checks(table))


#: Every check MemberLens runs, defined once; the page shows ``description`` as help.
CHECKS: tuple[CheckDefinition, ...] = _definitions()
CHECK_BY_KEY: dict[str, CheckDefinition] = {c.key: c for c in CHECKS}

CHECK_COLUMNS = ["key", "dimension", "table", "check", "column", "affected_rows", "share", "status", "detail",
                 "definition"]
TABLE_COLUMNS = ["table", "rows", "time_column", "newest", "days_since_newest", "status"]
NULL_COLUMNS = ["table", "column", "required", "rows", "nulls", "null_share"]


@dataclass(frozen=True)
class QualityReport:
    """The outcome of every check on one warehouse on one day.

    * ``checks``: one row per check run: ``key, dimension, table, check, column, affected_rows, share,
      status, detail, definition`` (``affected_rows`` and ``share`` are empty for the table-presence
      and freshness checks, whose findings are in ``detail``).
    * ``tables``: one row per contract table: ``table, rows, time_column, newest, days_since_newest,
      status`` (the worst status of the table's checks; ``rows`` is empty for a missing table).
    * ``columns``: the empty-value share of every column present: ``table, column, required, rows,
      nulls, null_share`` (``null_share`` is empty for an empty table).
    """

    today: date
    thresholds: QualityThresholds
    checks: pd.DataFrame
    tables: pd.DataFrame
    columns: pd.DataFrame

    def counts(self, dimension: str | None = None) -> dict[str, int]:
        """Number of checks per status (of one dimension if given), every status present (zero when none)."""
        checks = self.checks if dimension is None else self.checks[self.checks["dimension"] == dimension]
        found = checks["status"].value_counts()
        return {s: int(found.get(s, 0)) for s in STATUSES}

    @property
    def status(self) -> Status:
        """The worst status of any check."""
        return worst(self.checks["status"])

    def summary(self) -> str:
        """One line such as ``2 fail · 3 warn · 91 pass``."""
        n = self.counts()
        return " · ".join(_(STATUS_COUNTS[s]).format(n=n[s]) for s in reversed(STATUSES))


def worst(statuses: Iterable[str]) -> Status:
    """The most serious of some statuses (pass when there are none)."""
    rank = max((STATUSES.index(s) for s in statuses), default=0)
    return STATUSES[rank]  # type: ignore[return-value]


# --- the table scan ---------------------------------------------------------------------------------

def _scan(conn: Connection, table: Table, present: set[str], checks: Sequence[CheckDefinition],
          today: date) -> Scan:
    """Count rows, non-empty values per column, the newest timestamp and each row-level check's
    affected rows, in one pass over the table."""
    columns = [c for c in table.columns if c.name in present]
    parts: list[ColumnElement[Any]] = [func.count().label("rows")]
    parts += [func.count(c).label(f"n{i}") for i, c in enumerate(columns)]
    time_column = TABLE_TIME_COLUMNS.get(table.name)
    if time_column in present:  # rows dated in the future are the accuracy checks' business
        stamp = table.c[time_column]
        parts.append(func.max(case((stamp < end_of(today), stamp))).label("newest"))
    conditions = {check.key: condition for check in checks
                  if (condition := KIND_BY_KEY[check.kind].bad_rows(check, table, today)) is not None}
    parts += [count_if(condition).label(f"f{i}") for i, condition in enumerate(conditions.values())]
    row = conn.execute(select(*parts).select_from(table)).mappings().one()
    return Scan(
        rows=int(row["rows"]),
        non_null={c.name: int(row[f"n{i}"]) for i, c in enumerate(columns)},
        newest=row.get("newest"),
        flagged={key: int(row[f"f{i}"]) for i, key in enumerate(conditions)},
    )


def _measure(check: CheckDefinition, conn: Connection, present: Mapping[str, set[str]]) -> Any:
    return KIND_BY_KEY[check.kind].measure(check, conn, present)


def _evaluate(check: CheckDefinition, run: Run) -> dict[str, Any] | None:
    """Run one check; None when it cannot run (its table or column is missing, which the table's presence check
    reports)."""
    if check.kind != "present" and (check.table not in run.present
                                    or not set(check.columns) <= run.present[check.table]):
        return None
    return KIND_BY_KEY[check.kind].evaluate(check, run)


# --- public API -------------------------------------------------------------------------------------

def quality_report(bind: Bind, today: date | None = None,
                   thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> QualityReport:
    """Run every check of :data:`CHECKS` on the warehouse, as of ``today`` (default: the local date).

    ``today`` dates the freshness checks and bounds the future-timestamp checks (anything after the
    end of that day is "in the future"); pass it for a reproducible report. A contract table or
    column the warehouse lacks is reported as a failed check, not raised; checks on it are skipped.
    """
    today = today or date.today()
    with connection(bind) as conn:
        present = present_columns(conn, list(TABLE_BY_NAME))
    tables = [t for t in WAREHOUSE_TABLES if t.name in present]
    # Every statement at once: each check's own (the costly ones: key counts first, then references) and each
    # table's scan; then the checks are evaluated from what they found.
    measuring = sorted((c for c in CHECKS if c.table in present and set(c.columns) <= present[c.table]
                        and KIND_BY_KEY[c.kind].measure_rank is not None),
                       key=lambda c: KIND_BY_KEY[c.kind].measure_rank)
    found = each_on_its_own_connection(bind, [
        *(partial(_measure, check, present=present) for check in measuring),
        *(partial(_scan, table=t, present=present[t.name], today=today,
                  checks=[c for c in CHECKS if c.table == t.name and set(c.columns) <= present[t.name]])
          for t in tables)])
    measured = {check.key: result for check, result in zip(measuring, found[:len(measuring)], strict=True)}
    scans = {t.name: scan for t, scan in zip(tables, found[len(measuring):], strict=True)}
    with connection(bind) as conn:  # (a Domain finding looks up the unknown values it found)
        run = Run(conn, present, scans, today, thresholds, measured)
        outcomes = [_evaluate(check, run) for check in CHECKS]
    records = [{"key": check.key, "dimension": check.dimension, "table": check.table, "check": check.label,
                "column": check.column, **outcome, "definition": check.description}
               for check, outcome in zip(CHECKS, outcomes, strict=True) if outcome is not None]
    checks = pd.DataFrame(records, columns=CHECK_COLUMNS)
    checks["affected_rows"] = checks["affected_rows"].astype("Int64")
    checks["share"] = checks["share"].astype("float64")
    return QualityReport(today, thresholds, checks, _tables_frame(scans, checks, today), _columns_frame(present, scans))


def _tables_frame(scans: Mapping[str, Scan], checks: pd.DataFrame, today: date) -> pd.DataFrame:
    records = []
    for table in WAREHOUSE_TABLES:
        scan = scans.get(table.name)
        newest = scan.newest if scan else None
        records.append({
            "table": table.name,
            "rows": scan.rows if scan else None,
            "time_column": TABLE_TIME_COLUMNS.get(table.name),
            "newest": newest,
            "days_since_newest": (today - as_date(newest)).days if newest is not None else None,
            "status": worst(checks.loc[checks["table"] == table.name, "status"]),
        })
    frame = pd.DataFrame(records, columns=TABLE_COLUMNS)
    frame["rows"] = frame["rows"].astype("Int64")
    frame["newest"] = pd.to_datetime(frame["newest"])
    frame["days_since_newest"] = frame["days_since_newest"].astype("Int64")
    return frame


def _columns_frame(present: Mapping[str, set[str]], scans: Mapping[str, Scan]) -> pd.DataFrame:
    records = []
    for table in WAREHOUSE_TABLES:
        if table.name not in scans:
            continue
        scan = scans[table.name]
        for column in table.columns:
            if column.name in present[table.name]:
                nulls = scan.rows - scan.non_null[column.name]
                records.append({"table": table.name, "column": column.name, "required": _required(column),
                                "rows": scan.rows, "nulls": nulls,
                                "null_share": nulls / scan.rows if scan.rows else None})
    frame = pd.DataFrame(records, columns=NULL_COLUMNS)
    frame["null_share"] = frame["null_share"].astype("float64")
    return frame


def _required(column: Column[Any]) -> bool:
    return not column.nullable
