"""Data quality: is the warehouse complete, accurate and timely?

Every check is defined once, in :data:`CHECKS`, with a plain-language description that the app
shows as help and the CLI (``python -m analytics quality``) prints; :func:`quality_report` runs
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
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Column, ColumnElement, Connection, Date, Table, case, exists, func, literal, select

from analytics.errors import InputError
from analytics.sqlparts import count_if
from analytics.storage.contract import (
    ARMS,
    CAMPAIGN_CHANNELS,
    CAMPAIGN_TYPES,
    EVENT_TYPES,
    LEDGER_REASONS,
    ORDER_STATUSES,
    TIERS,
    WAREHOUSE_TABLES,
    Money,
)
from analytics.storage.db import Bind, connection
from analytics.storage.warehouse import TABLE_TIME_COLUMNS, present_columns

Dimension = Literal["complete", "accurate", "timely"]
Status = Literal["pass", "warn", "fail"]
Kind = Literal["present", "required", "orphan", "duplicate", "negative", "below_one", "net_mismatch",
               "future", "too_old", "domain", "freshness"]
DIMENSIONS: tuple[str, ...] = ("complete", "accurate", "timely")
STATUSES: tuple[str, ...] = ("pass", "warn", "fail")
DIMENSION_DESCRIPTIONS: dict[str, str] = {
    "complete": "Everything that should be there is: every table and column, rows in the core tables, "
                "required values filled, and every reference pointing to a row that exists.",
    "accurate": "The values are right: keys unique, amounts and quantities in range, net = gross − discount, "
                "dates neither in the future nor implausibly old, codes from the contract's lists.",
    "timely": "The data is current: the newest row of each table is recent compared with today.",
}

#: Tables without which no analysis works: empty fails. The others may be "not loaded" (warn).
CORE_TABLES: tuple[str, ...] = ("members", "products", "orders", "order_items")
#: Timestamps before this are almost always a parse error (a zero Unix time gives 1970-01-01).
EARLIEST_PLAUSIBLE = date(1990, 1, 1)
#: Extra days of freshness allowed for tables that change monthly or campaign by campaign.
SLOW_TABLE_ALLOWANCE_DAYS = 31
#: Net amounts may differ from gross − discount by rounding of at most half a cent.
NET_TOLERANCE = Decimal("0.005")

_TABLES: dict[str, Table] = {t.name: t for t in WAREHOUSE_TABLES}
_WHAT: dict[str, str] = {
    "members": "members", "products": "a product catalogue", "orders": "orders", "order_items": "order lines",
    "events": "a clickstream", "points_ledger": "a points programme", "tier_changes": "a tier history",
    "campaigns": "campaigns", "campaign_members": "campaign audiences",
}


@dataclass(frozen=True)
class QualityThresholds:
    """When a check warns or fails (see the module docstring for why these defaults)."""

    fresh_days: int = 2
    stale_days: int = 30
    fail_share: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.fresh_days <= self.stale_days:
            raise InputError(f"Freshness limits must satisfy 0 <= fresh_days <= stale_days, got "
                             f"{self.fresh_days} and {self.stale_days}.")
        if not 0 <= self.fail_share <= 1:
            raise InputError(f"fail_share is a share of rows between 0 and 1, got {self.fail_share}.")


DEFAULT_THRESHOLDS = QualityThresholds()


@dataclass(frozen=True)
class CheckDefinition:
    """One check: what it looks at, in which dimension, and its description (the help text)."""

    key: str
    dimension: Dimension
    kind: Kind
    table: str
    columns: tuple[str, ...]
    label: str
    description: str
    parent: tuple[str, str] | None = None  # (table, column) an orphan check looks up
    allowed: tuple[str, ...] = ()  # the codes a domain check accepts
    allowance_days: int = 0  # extra days a freshness check tolerates

    @property
    def column(self) -> str:
        return ", ".join(self.columns)


def _definitions() -> tuple[CheckDefinition, ...]:
    """Every check, in the order reports list them: by dimension, then table (contract order)."""
    share_rule = ("Any affected row is a warning; more than the failure share of the table's rows (1% by default) "
                  "fails.")
    complete: list[CheckDefinition] = []
    accurate: list[CheckDefinition] = []
    timely: list[CheckDefinition] = []
    for table in WAREHOUSE_TABLES:
        name = table.name
        if name in CORE_TABLES:
            rule = (f"MemberLens cannot work without {_WHAT[name]}: a missing table or column, or an empty table, "
                    "fails.")
        else:
            rule = (f"A shop may have no {_WHAT[name]} (imported shops often lack them), so an empty table is a "
                    "warning ('not loaded'); a missing table or column fails.")
        complete.append(CheckDefinition(
            f"present:{name}", "complete", "present", name, (), "Table present and loaded",
            f"The {name} table exists with every column of the warehouse contract and holds rows. {rule}"))
        complete.extend(
            CheckDefinition(f"required:{name}.{c.name}", "complete", "required", name, (c.name,), "No empty values",
                            f"Every row of {name} has a {c.name}: the contract declares it required (NOT NULL). "
                            "A row without it cannot be joined, dated or classified, so any empty value fails.")
            for c in table.columns if not c.nullable)
        complete.extend(
            CheckDefinition(f"orphan:{name}.{column}", "complete", "orphan", name, (column,),
                            f"Refers to an existing {parent[0]} row",
                            f"Every non-empty {name}.{column} names an existing {parent[0]}.{parent[1]}. A row "
                            "that points nowhere drops out of every analysis that joins the two tables (usually "
                            f"the {parent[0]} rows were not loaded). {share_rule}", parent=parent)
            for column, parent in _REFERENCES.get(name, ()))
        if name in _KEYS:
            key = _KEYS[name]
            accurate.append(CheckDefinition(
                f"duplicate:{name}.{'+'.join(key)}", "accurate", "duplicate", name, key, "Key is unique",
                f"No two rows of {name} share {' and '.join(key)}, the key of the table. A repeated key counts "
                "the same thing twice in every total, so any repeat fails. Affected rows are all rows whose key "
                "occurs more than once."))
        for column in table.columns:
            if column.type is Money or column.name == "points_balance":
                accurate.append(CheckDefinition(
                    f"negative:{name}.{column.name}", "accurate", "negative", name, (column.name,), "Not negative",
                    f"{name}.{column.name} is never below zero (money amounts and points balances are zero or more; "
                    f"returns are orders with status 'returned', not negative amounts). {share_rule}"))
        if name == "order_items":
            accurate.append(CheckDefinition(
                "below_one:order_items.quantity", "accurate", "below_one", name, ("quantity",), "At least 1",
                f"Every order line has a quantity of at least 1. {share_rule}"))
        if name == "orders":
            accurate.append(CheckDefinition(
                "net_mismatch:orders.net_amount", "accurate", "net_mismatch", name,
                ("net_amount", "gross_amount", "discount_amount"), "Net = gross − discount",
                "An order's net_amount equals gross_amount − discount_amount to the cent (the discount covers "
                f"coupons, full reductions and points). Rows with an empty amount are not counted. {share_rule}"))
        for column in _FUTURE_COLUMNS.get(name, ()):
            accurate.append(CheckDefinition(
                f"future:{name}.{column}", "accurate", "future", name, (column,), "Not in the future",
                f"No {name}.{column} lies after the end of the day the check runs (the shop's local time). "
                f"Future values are usually a time-zone or parse error. {share_rule}"))
        if name in TABLE_TIME_COLUMNS:
            column = TABLE_TIME_COLUMNS[name]
            accurate.append(CheckDefinition(
                f"too_old:{name}.{column}", "accurate", "too_old", name, (column,), "Not before 1990",
                f"No {name}.{column} before {EARLIEST_PLAUSIBLE:%d %B %Y}: such dates are almost always a parse "
                f"error (a zero Unix time gives 1 January 1970). {share_rule}"))
        for column, allowed in _DOMAINS.get(name, ()):
            accurate.append(CheckDefinition(
                f"domain:{name}.{column}", "accurate", "domain", name, (column,), "One of the contract's values",
                f"{name}.{column} is one of {', '.join(allowed)}. Any other value fails: pages that group or filter "
                "by it would miss those rows. Empty values are not counted here.", allowed=allowed))
        if name in TABLE_TIME_COLUMNS:
            column = TABLE_TIME_COLUMNS[name]
            slow = name in _SLOW_TABLES
            timely.append(CheckDefinition(
                f"freshness:{name}", "timely", "freshness", name, (column,), "Recent data",
                f"The newest {name}.{column} is recent: pass when it is at most 2 days before the day the check "
                "runs, warn up to 30 days, fail beyond (defaults). "
                + (f"{_SLOW_TABLES[name]}, so {SLOW_TABLE_ALLOWANCE_DAYS} days are added to both limits. "
                   if slow else "")
                + "An empty table is left to the completeness check.",
                allowance_days=SLOW_TABLE_ALLOWANCE_DAYS if slow else 0))
    return (*complete, *accurate, *timely)


_REFERENCES: dict[str, tuple[tuple[str, tuple[str, str]], ...]] = {
    "orders": (("member_id", ("members", "member_id")), ("campaign_id", ("campaigns", "campaign_id"))),
    "order_items": (("order_id", ("orders", "order_id")), ("product_id", ("products", "product_id"))),
    "events": (("member_id", ("members", "member_id")), ("product_id", ("products", "product_id"))),
    "points_ledger": (("member_id", ("members", "member_id")), ("order_id", ("orders", "order_id"))),
    "tier_changes": (("member_id", ("members", "member_id")),),
    "campaign_members": (("campaign_id", ("campaigns", "campaign_id")), ("member_id", ("members", "member_id")),
                         ("converted_order_id", ("orders", "order_id"))),
}
_KEYS: dict[str, tuple[str, ...]] = {
    "members": ("member_id",), "products": ("product_id",), "campaigns": ("campaign_id",), "orders": ("order_id",),
    "order_items": ("order_id", "line_no"), "events": ("event_id",), "points_ledger": ("entry_id",),
    "campaign_members": ("campaign_id", "member_id"),
}
#: Timestamps of things that happened; campaigns' start and end are left out (they are planned ahead).
_FUTURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "members": ("registered_at", "birth_date"), "orders": ("ordered_at",), "events": ("occurred_at",),
    "points_ledger": ("occurred_at",), "tier_changes": ("changed_at",),
    "campaign_members": ("sent_at", "opened_at", "clicked_at"),
}
_DOMAINS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "members": (("tier", TIERS),), "orders": (("status", ORDER_STATUSES),), "events": (("event_type", EVENT_TYPES),),
    "points_ledger": (("reason", LEDGER_REASONS),), "tier_changes": (("from_tier", TIERS), ("to_tier", TIERS)),
    "campaigns": (("type", CAMPAIGN_TYPES), ("channel", CAMPAIGN_CHANNELS)),
    "campaign_members": (("arm", ARMS),),
}
_SLOW_TABLES: dict[str, str] = {
    "tier_changes": "Tiers change at monthly evaluations",
    "campaigns": "Campaigns start every few weeks",
    "campaign_members": "Campaigns are sent every few weeks",
}

#: Every check MemberLens runs, defined once; the page shows ``description`` as help.
CHECKS: tuple[CheckDefinition, ...] = _definitions()
CHECK_BY_KEY: dict[str, CheckDefinition] = {c.key: c for c in CHECKS}
_ROW_KINDS = ("required", "negative", "below_one", "net_mismatch", "future", "too_old", "domain")

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
        return " · ".join(f"{n[s]} {s}" for s in reversed(STATUSES))


def worst(statuses: Iterable[str]) -> Status:
    """The most serious of some statuses (pass when there are none)."""
    rank = max((STATUSES.index(s) for s in statuses), default=0)
    return STATUSES[rank]  # type: ignore[return-value]


# --- the table scan ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Scan:
    """What one aggregate query over a table found."""

    rows: int
    non_null: dict[str, int]
    newest: datetime | None
    flagged: dict[str, int]  # check key -> affected rows


def _end_of(today: date) -> datetime:
    return datetime.combine(today + timedelta(days=1), time())


def _bad_rows(check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool] | None:
    """The condition that marks a row as failing a row-level check (None: counted from non-empty counts)."""
    c = table.c
    column = c[check.columns[0]]
    if check.kind == "negative":
        return column < 0
    if check.kind == "below_one":
        return column < 1
    if check.kind == "net_mismatch":
        return func.abs(c.net_amount - (c.gross_amount - c.discount_amount)) > NET_TOLERANCE
    if check.kind == "future":
        return column >= (today + timedelta(days=1) if isinstance(column.type, Date) else _end_of(today))
    if check.kind == "too_old":
        return column < datetime.combine(EARLIEST_PLAUSIBLE, time())
    if check.kind == "domain":
        return column.not_in(check.allowed)
    return None


def _scan(conn: Connection, table: Table, present: set[str], checks: Sequence[CheckDefinition],
          today: date) -> _Scan:
    """Count rows, non-empty values per column, the newest timestamp and each row-level check's
    affected rows, in one pass over the table."""
    columns = [c for c in table.columns if c.name in present]
    parts: list[ColumnElement[Any]] = [func.count().label("rows")]
    parts += [func.count(c).label(f"n{i}") for i, c in enumerate(columns)]
    time_column = TABLE_TIME_COLUMNS.get(table.name)
    if time_column in present:  # rows dated in the future are the accuracy checks' business
        stamp = table.c[time_column]
        parts.append(func.max(case((stamp < _end_of(today), stamp))).label("newest"))
    conditions = {check.key: condition for check in checks
                  if (condition := _bad_rows(check, table, today)) is not None}
    parts += [count_if(condition).label(f"f{i}") for i, condition in enumerate(conditions.values())]
    row = conn.execute(select(*parts).select_from(table)).mappings().one()
    return _Scan(
        rows=int(row["rows"]),
        non_null={c.name: int(row[f"n{i}"]) for i, c in enumerate(columns)},
        newest=row.get("newest"),
        flagged={key: int(row[f"f{i}"]) for i, key in enumerate(conditions)},
    )


# --- key and reference checks -------------------------------------------------------------------------

def _duplicates(conn: Connection, table: Table, key: tuple[str, ...]) -> tuple[int, int]:
    """(rows whose key occurs more than once, number of such keys); rows with an empty key part are
    left to the required-values check. A cheap count against the distinct count comes first; only a
    table that has duplicates is grouped to count them."""
    cols = [table.c[k] for k in key]
    filled = [c.is_not(None) for c in cols]
    if len(cols) == 1:
        total, distinct = conn.execute(select(func.count(cols[0]), func.count(cols[0].distinct()))).one()
    else:
        keyed = select(*cols).where(*filled)
        total = select(func.count()).select_from(keyed.subquery("keyed")).scalar_subquery()
        distinct = select(func.count()).select_from(keyed.distinct().subquery("distinct_keys")).scalar_subquery()
        total, distinct = conn.execute(select(total, distinct)).one()
    if total == distinct:
        return 0, 0
    repeated = (select(*cols, func.count().label("copies")).where(*filled).group_by(*cols)
                .having(func.count() > 1).subquery("repeated"))
    keys, rows = conn.execute(select(func.count(), func.sum(repeated.c.copies))).one()
    return int(rows or 0), int(keys or 0)


def _orphans(conn: Connection, table: Table, column: str, parent: tuple[str, str]) -> int:
    """Rows whose non-empty ``column`` matches no row of the parent table (an anti-join)."""
    child = table.c[column]
    parent_key = _TABLES[parent[0]].c[parent[1]]
    found = select(literal(1)).where(parent_key == child)
    statement = select(func.count()).select_from(table).where(child.is_not(None), ~exists(found))
    return int(conn.execute(statement).scalar_one())


# --- evaluation -------------------------------------------------------------------------------------

def _share_status(affected: int, rows: int, thresholds: QualityThresholds) -> Status:
    if affected == 0:
        return "pass"
    return "fail" if affected / rows > thresholds.fail_share else "warn"


def _rows_text(n: int, rows: int) -> str:
    if rows == 0:
        return "no rows"
    if n == 0:
        return f"none of {rows:,} rows"
    share = n / rows
    shown = f"{share:.2%}" if share >= 0.0001 else "<0.01%"
    return f"{n:,} of {rows:,} rows ({shown})"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _share_rule(thresholds: QualityThresholds) -> str:
    return f"any is a warning, more than {thresholds.fail_share:.2%} of rows fails".replace(".00%", "%")


def _evaluate(check: CheckDefinition, conn: Connection, present: Mapping[str, set[str]],
              scans: Mapping[str, _Scan], today: date, thresholds: QualityThresholds) -> dict[str, Any] | None:
    """Run one check; None when it cannot run (its table or column is missing, which the table's
    presence check reports, or for freshness: the table is empty)."""
    name = check.table
    result: dict[str, Any] = {"affected_rows": None, "share": None}
    if check.kind == "present":
        core = name in CORE_TABLES
        if name not in present:
            return result | {"status": "fail", "detail": f"the table {name} is missing from the warehouse"}
        missing = [c.name for c in _TABLES[name].columns if c.name not in present[name]]
        if missing:
            return result | {"status": "fail", "detail": f"missing columns: {', '.join(missing)} (checks on them "
                                                         "were skipped)"}
        rows = scans[name].rows
        if rows == 0:
            return result | {"status": "fail" if core else "warn",
                             "detail": "empty" + ("" if core else ": not loaded")}
        return result | {"status": "pass", "detail": f"{rows:,} rows"}
    if name not in present or not set(check.columns) <= present[name]:
        return None
    scan = scans[name]
    if check.kind == "freshness":
        if scan.rows == 0:
            return None
        fresh = thresholds.fresh_days + check.allowance_days
        stale = thresholds.stale_days + check.allowance_days
        rule = f"pass within {fresh} days, warn within {stale}, fail beyond"
        if scan.newest is None:
            return result | {"status": "warn", "detail": f"no {check.column} values to date the rows; {rule}"}
        days = (today - _as_date(scan.newest)).days
        status: Status = "pass" if days <= fresh else "warn" if days <= stale else "fail"
        return result | {"status": status, "detail": f"newest {check.column} {scan.newest:%Y-%m-%d %H:%M}, "
                                                     f"{days:,} days before {today:%Y-%m-%d}; {rule}"}
    rows = scan.rows
    if check.kind == "required":
        affected = rows - scan.non_null[check.columns[0]]
        status, rule = ("fail" if affected else "pass"), "any fails"
        text = f"empty: {_rows_text(affected, rows)}"
    elif check.kind == "duplicate":
        affected, keys = _duplicates(conn, _TABLES[name], check.columns) if rows else (0, 0)
        status, rule = ("fail" if affected else "pass"), "any fails"
        text = f"repeated key: {_rows_text(affected, rows)}"
        if affected:
            text += (f" ({_plural(keys, 'key occurs', 'keys occur')} more than once; "
                     f"{_plural(affected - keys, 'extra copy', 'extra copies')})")
    elif check.kind == "orphan":
        parent_table, parent_column = check.parent  # type: ignore[misc]
        if parent_table not in present or parent_column not in present[parent_table]:
            return None
        affected = _orphans(conn, _TABLES[name], check.columns[0], check.parent) if rows else 0  # type: ignore[arg-type]
        status, rule = _share_status(affected, rows, thresholds), _share_rule(thresholds)
        text = f"not found in {parent_table}.{parent_column}: {_rows_text(affected, rows)}"
    else:
        affected = scan.flagged[check.key]
        if check.kind == "domain":
            status, rule = ("fail" if affected else "pass"), "any fails"
        else:
            status, rule = _share_status(affected, rows, thresholds), _share_rule(thresholds)
        text = f"{_FINDING[check.kind].format(today=today, earliest=EARLIEST_PLAUSIBLE)}: {_rows_text(affected, rows)}"
        if check.kind == "domain" and affected:
            text += f" ({_unknown_values(conn, _TABLES[name], check)})"
    share = affected / rows if rows else None
    return {"affected_rows": affected, "share": share, "status": status, "detail": f"{text}; {rule}"}


_FINDING = {
    "negative": "below zero", "below_one": "below 1", "net_mismatch": "net ≠ gross − discount",
    "future": "after {today:%Y-%m-%d}", "too_old": "before {earliest:%Y-%m-%d}", "domain": "other values",
}


def _unknown_values(conn: Connection, table: Table, check: CheckDefinition, shown: int = 5) -> str:
    """The most frequent values outside a domain check's list, e.g. ``'shipped' ×3`` (run only when
    the check found some, so a clean warehouse pays nothing for it)."""
    column = table.c[check.columns[0]]
    statement = (select(column, func.count().label("n")).where(column.not_in(check.allowed)).group_by(column)
                 .order_by(func.count().desc(), column).limit(shown + 1))
    found = conn.execute(statement).all()
    text = ", ".join(f"{value!r} ×{n:,}" for value, n in found[:shown])
    return text + (", …" if len(found) > shown else "")


def _as_date(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


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
        present = present_columns(conn, list(_TABLES))
        scans = {
            t.name: _scan(conn, t, present[t.name],
                          [c for c in CHECKS if c.table == t.name and c.kind in _ROW_KINDS
                           and set(c.columns) <= present[t.name]], today)
            for t in WAREHOUSE_TABLES if t.name in present
        }
        records = []
        for check in CHECKS:
            outcome = _evaluate(check, conn, present, scans, today, thresholds)
            if outcome is not None:
                records.append({"key": check.key, "dimension": check.dimension, "table": check.table,
                                "check": check.label, "column": check.column, **outcome,
                                "definition": check.description})
    checks = pd.DataFrame(records, columns=CHECK_COLUMNS)
    checks["affected_rows"] = checks["affected_rows"].astype("Int64")
    checks["share"] = checks["share"].astype("float64")
    return QualityReport(today, thresholds, checks, _tables_frame(scans, checks, today), _columns_frame(present, scans))


def _tables_frame(scans: Mapping[str, _Scan], checks: pd.DataFrame, today: date) -> pd.DataFrame:
    records = []
    for table in WAREHOUSE_TABLES:
        scan = scans.get(table.name)
        newest = scan.newest if scan else None
        records.append({
            "table": table.name,
            "rows": scan.rows if scan else None,
            "time_column": TABLE_TIME_COLUMNS.get(table.name),
            "newest": newest,
            "days_since_newest": (today - _as_date(newest)).days if newest is not None else None,
            "status": worst(checks.loc[checks["table"] == table.name, "status"]),
        })
    frame = pd.DataFrame(records, columns=TABLE_COLUMNS)
    frame["rows"] = frame["rows"].astype("Int64")
    frame["newest"] = pd.to_datetime(frame["newest"])
    frame["days_since_newest"] = frame["days_since_newest"].astype("Int64")
    return frame


def _columns_frame(present: Mapping[str, set[str]], scans: Mapping[str, _Scan]) -> pd.DataFrame:
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
