"""The kinds of data-quality check, each one object: which checks it makes of a contract table, the SQL
condition that marks a failing row (for row-level kinds, counted in the table's one scan), and how a finding
becomes a status and a sentence. Adding a kind of check is one more class in :data:`KINDS`.

What a table is checked for comes from the contract's declarations (:mod:`analytics.storage.contract`): its
key, references, allowed values, time column, timestamps of things that happened, and whether it is core.
The status rules are described in :mod:`analytics.quality`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal

from sqlalchemy import ColumnElement, Connection, Date, Table, exists, func, literal, select

from analytics.storage import contract
from analytics.storage.contract import Money

Dimension = Literal["complete", "accurate", "timely"]
Status = Literal["pass", "warn", "fail"]

#: Timestamps before this are almost always a parse error (a zero Unix time gives 1970-01-01).
EARLIEST_PLAUSIBLE = date(1990, 1, 1)
#: Extra days of freshness allowed for tables that change monthly or campaign by campaign.
SLOW_TABLE_ALLOWANCE_DAYS = 31
#: Net amounts may differ from gross − discount by rounding of at most half a cent.
NET_TOLERANCE = Decimal("0.005")
SHARE_RULE = "Any affected row is a warning; more than the failure share of the table's rows (1% by default) fails."


@dataclass(frozen=True)
class CheckDefinition:
    """One check: what it looks at, in which dimension, and its description (the help text)."""

    key: str
    dimension: Dimension
    kind: str
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


@dataclass(frozen=True)
class Scan:
    """What one aggregate query over a table found."""

    rows: int
    non_null: dict[str, int]
    newest: datetime | None
    flagged: dict[str, int]  # check key -> affected rows


@dataclass(frozen=True)
class Run:
    """What a check's evaluation may look at: the connection, the columns present per table, each table's
    scan, the day and the thresholds (``fresh_days``, ``stale_days``, ``fail_share``)."""

    conn: Connection
    present: Mapping[str, set[str]]
    scans: Mapping[str, Scan]
    today: date
    thresholds: Any


def end_of(today: date) -> datetime:
    return datetime.combine(today + timedelta(days=1), time())


def rows_text(n: int, rows: int) -> str:
    if rows == 0:
        return "no rows"
    if n == 0:
        return f"none of {rows:,} rows"
    share = n / rows
    shown = f"{share:.2%}" if share >= 0.0001 else "<0.01%"
    return f"{n:,} of {rows:,} rows ({shown})"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def share_rule(thresholds: Any) -> str:
    return f"any is a warning, more than {thresholds.fail_share:.2%} of rows fails".replace(".00%", "%")


def share_status(affected: int, rows: int, thresholds: Any) -> Status:
    if affected == 0:
        return "pass"
    return "fail" if affected / rows > thresholds.fail_share else "warn"


def as_date(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _finding(affected: int, rows: int, status: Status, text: str, rule: str) -> dict[str, Any]:
    return {"affected_rows": affected, "share": affected / rows if rows else None, "status": status,
            "detail": f"{text}; {rule}"}


class CheckKind:
    """A kind of check. Subclasses say which checks a table gets (:meth:`checks`), and either a row condition
    (:meth:`bad_rows`, counted in the table scan) or their own evaluation (:meth:`evaluate`)."""

    key: ClassVar[str]
    dimension: ClassVar[Dimension]
    label: ClassVar[str]
    #: A row-level kind whose affected rows fail on any (True) or warn, then fail above a share (False).
    any_fails: ClassVar[bool] = False
    #: How a row-level finding is described: "below zero: 3 of 1,000 rows (0.30%)".
    finding: ClassVar[str] = ""

    def checks(self, table: Table) -> list[CheckDefinition]:
        raise NotImplementedError

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool] | None:
        """The condition that marks a row as failing (None: not a row-level kind)."""
        return None

    def define(self, table: Table, columns: tuple[str, ...], description: str, suffix: str = "",
               **extra: Any) -> CheckDefinition:
        key = f"{self.key}:{table.name}" + (f".{suffix}" if suffix else "")
        return CheckDefinition(key, self.dimension, self.key, table.name, columns, self.label, description, **extra)

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        """Run one check; None when it cannot run (its table or column is missing: the presence check reports
        that)."""
        scan = run.scans[check.table]
        affected, rows = scan.flagged[check.key], scan.rows
        if self.any_fails:
            status, rule = ("fail" if affected else "pass"), "any fails"
        else:
            status, rule = share_status(affected, rows, run.thresholds), share_rule(run.thresholds)
        text = f"{self.finding.format(today=run.today, earliest=EARLIEST_PLAUSIBLE)}: {rows_text(affected, rows)}"
        return _finding(affected, rows, status, self.describe(text, check, run, affected), rule)

    def describe(self, text: str, check: CheckDefinition, run: Run, affected: int) -> str:
        return text


# --- complete ----------------------------------------------------------------------------------------------------

class Present(CheckKind):
    key, dimension, label = "present", "complete", "Table present and loaded"

    def checks(self, table: Table) -> list[CheckDefinition]:
        if contract.is_core(table):
            rule = (f"MemberLens cannot work without {contract.holds(table)}: a missing table or column, or an empty "
                    "table, fails.")
        else:
            rule = (f"A shop may have no {contract.holds(table)} (imported shops often lack them), so an empty table "
                    "is a warning ('not loaded'); a missing table or column fails.")
        return [self.define(table, (), f"The {table.name} table exists with every column of the warehouse contract "
                                       f"and holds rows. {rule}")]

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        name = check.table
        result: dict[str, Any] = {"affected_rows": None, "share": None}
        if name not in run.present:
            return result | {"status": "fail", "detail": f"the table {name} is missing from the warehouse"}
        missing = [c.name for c in contract.TABLE_BY_NAME[name].columns if c.name not in run.present[name]]
        if missing:
            return result | {"status": "fail", "detail": f"missing columns: {', '.join(missing)} (checks on them "
                                                         "were skipped)"}
        rows = run.scans[name].rows
        if rows == 0:
            core = contract.is_core(contract.TABLE_BY_NAME[name])
            return result | {"status": "fail" if core else "warn", "detail": "empty" + ("" if core else ": not loaded")}
        return result | {"status": "pass", "detail": f"{rows:,} rows"}


class Required(CheckKind):
    key, dimension, label = "required", "complete", "No empty values"

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, (c.name,), f"Every row of {table.name} has a {c.name}: the contract declares it "
                            "required (NOT NULL). A row without it cannot be joined, dated or classified, so any empty "
                            "value fails.", c.name)
                for c in table.columns if not c.nullable]

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        scan = run.scans[check.table]
        affected = scan.rows - scan.non_null[check.columns[0]]
        return _finding(affected, scan.rows, "fail" if affected else "pass",
                        f"empty: {rows_text(affected, scan.rows)}", "any fails")


class Orphan(CheckKind):
    key, dimension, label = "orphan", "complete", ""

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [CheckDefinition(
            f"orphan:{table.name}.{column}", "complete", "orphan", table.name, (column,),
            f"Refers to an existing {parent[0]} row",
            f"Every non-empty {table.name}.{column} names an existing {parent[0]}.{parent[1]}. A row that points "
            "nowhere drops out of every analysis that joins the two tables (usually the "
            f"{parent[0]} rows were not loaded). {SHARE_RULE}", parent=parent)
            for column, parent in contract.references(table)]

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        parent_table, parent_column = check.parent  # type: ignore[misc]
        if parent_table not in run.present or parent_column not in run.present[parent_table]:
            return None
        rows = run.scans[check.table].rows
        affected = self._orphans(run.conn, contract.TABLE_BY_NAME[check.table], check.columns[0],
                                 check.parent) if rows else 0  # type: ignore[arg-type]
        return _finding(affected, rows, share_status(affected, rows, run.thresholds),
                        f"not found in {parent_table}.{parent_column}: {rows_text(affected, rows)}",
                        share_rule(run.thresholds))

    @staticmethod
    def _orphans(conn: Connection, table: Table, column: str, parent: tuple[str, str]) -> int:
        """Rows whose non-empty ``column`` matches no row of the parent table (an anti-join)."""
        child = table.c[column]
        parent_key = contract.TABLE_BY_NAME[parent[0]].c[parent[1]]
        found = select(literal(1)).where(parent_key == child)
        statement = select(func.count()).select_from(table).where(child.is_not(None), ~exists(found))
        return int(conn.execute(statement).scalar_one())


# --- accurate ----------------------------------------------------------------------------------------------------

class Duplicate(CheckKind):
    key, dimension, label = "duplicate", "accurate", "Key is unique"

    def checks(self, table: Table) -> list[CheckDefinition]:
        key = contract.table_key(table)
        if not key:
            return []
        return [self.define(table, key, f"No two rows of {table.name} share {' and '.join(key)}, the key of the "
                            "table. A repeated key counts the same thing twice in every total, so any repeat fails. "
                            "Affected rows are all rows whose key occurs more than once.", "+".join(key))]

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        rows = run.scans[check.table].rows
        table = contract.TABLE_BY_NAME[check.table]
        affected, keys = self._duplicates(run.conn, table, check.columns) if rows else (0, 0)
        text = f"repeated key: {rows_text(affected, rows)}"
        if affected:
            text += (f" ({_plural(keys, 'key occurs', 'keys occur')} more than once; "
                     f"{_plural(affected - keys, 'extra copy', 'extra copies')})")
        return _finding(affected, rows, "fail" if affected else "pass", text, "any fails")

    @staticmethod
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


class Negative(CheckKind):
    key, dimension, label, finding = "negative", "accurate", "Not negative", "below zero"

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, (c.name,), f"{table.name}.{c.name} is never below zero (money amounts and points "
                            "balances are zero or more; returns are orders with status 'returned', not negative "
                            f"amounts). {SHARE_RULE}", c.name)
                for c in table.columns if c.type is Money or c.name == "points_balance"]

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        return table.c[check.columns[0]] < 0


class BelowOne(CheckKind):
    key, dimension, label, finding = "below_one", "accurate", "At least 1", "below 1"

    def checks(self, table: Table) -> list[CheckDefinition]:
        if "quantity" not in table.c:
            return []
        return [self.define(table, ("quantity",), f"Every order line has a quantity of at least 1. {SHARE_RULE}",
                            "quantity")]

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        return table.c[check.columns[0]] < 1


class NetMismatch(CheckKind):
    key, dimension, label, finding = "net_mismatch", "accurate", "Net = gross − discount", "net ≠ gross − discount"

    def checks(self, table: Table) -> list[CheckDefinition]:
        if not {"net_amount", "gross_amount", "discount_amount"} <= set(table.c.keys()):
            return []
        return [self.define(table, ("net_amount", "gross_amount", "discount_amount"),
                            "An order's net_amount equals gross_amount − discount_amount to the cent (the discount "
                            "covers coupons, full reductions and points). Rows with an empty amount are not counted. "
                            f"{SHARE_RULE}", "net_amount")]

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        c = table.c
        return func.abs(c.net_amount - (c.gross_amount - c.discount_amount)) > NET_TOLERANCE


class Future(CheckKind):
    key, dimension, label, finding = "future", "accurate", "Not in the future", "after {today:%Y-%m-%d}"

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, (column,), f"No {table.name}.{column} lies after the end of the day the check runs "
                            "(the shop's local time). Future values are usually a time-zone or parse error. "
                            f"{SHARE_RULE}", column)
                for column in contract.happened_columns(table)]

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        column = table.c[check.columns[0]]
        return column >= (today + timedelta(days=1) if isinstance(column.type, Date) else end_of(today))


class TooOld(CheckKind):
    key, dimension, label, finding = "too_old", "accurate", "Not before 1990", "before {earliest:%Y-%m-%d}"

    def checks(self, table: Table) -> list[CheckDefinition]:
        column = contract.time_column(table)
        if column is None:
            return []
        return [self.define(table, (column,), f"No {table.name}.{column} before {EARLIEST_PLAUSIBLE:%d %B %Y}: such "
                            "dates are almost always a parse error (a zero Unix time gives 1 January 1970). "
                            f"{SHARE_RULE}", column)]

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        return table.c[check.columns[0]] < datetime.combine(EARLIEST_PLAUSIBLE, time())


class Domain(CheckKind):
    key, dimension, label, finding = "domain", "accurate", "One of the contract's values", "other values"
    any_fails = True

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, (column,), f"{table.name}.{column} is one of {', '.join(allowed)}. Any other value "
                            "fails: pages that group or filter by it would miss those rows. Empty values are not "
                            "counted here.", column, allowed=allowed)
                for column, allowed in contract.allowed_values(table)]

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        return table.c[check.columns[0]].not_in(check.allowed)

    def describe(self, text: str, check: CheckDefinition, run: Run, affected: int) -> str:
        if not affected:
            return text
        return f"{text} ({self._unknown_values(run.conn, contract.TABLE_BY_NAME[check.table], check)})"

    @staticmethod
    def _unknown_values(conn: Connection, table: Table, check: CheckDefinition, shown: int = 5) -> str:
        """The most frequent values outside the list, e.g. ``'shipped' ×3`` (run only when the check found some,
        so a clean warehouse pays nothing for it)."""
        column = table.c[check.columns[0]]
        statement = (select(column, func.count().label("n")).where(column.not_in(check.allowed)).group_by(column)
                     .order_by(func.count().desc(), column).limit(shown + 1))
        found = conn.execute(statement).all()
        text = ", ".join(f"{value!r} ×{n:,}" for value, n in found[:shown])
        return text + (", …" if len(found) > shown else "")


# --- timely ------------------------------------------------------------------------------------------------------

class Freshness(CheckKind):
    key, dimension, label = "freshness", "timely", "Recent data"

    def checks(self, table: Table) -> list[CheckDefinition]:
        column = contract.time_column(table)
        if column is None:
            return []
        slow = contract.slow_reason(table)
        return [self.define(
            table, (column,),
            f"The newest {table.name}.{column} is recent: pass when it is at most 2 days before the day the check "
            "runs, warn up to 30 days, fail beyond (defaults). "
            + (f"{slow}, so {SLOW_TABLE_ALLOWANCE_DAYS} days are added to both limits. " if slow else "")
            + "An empty table is left to the completeness check.",
            allowance_days=SLOW_TABLE_ALLOWANCE_DAYS if slow else 0)]

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        scan = run.scans[check.table]
        if scan.rows == 0:
            return None
        fresh = run.thresholds.fresh_days + check.allowance_days
        stale = run.thresholds.stale_days + check.allowance_days
        rule = f"pass within {fresh} days, warn within {stale}, fail beyond"
        result: dict[str, Any] = {"affected_rows": None, "share": None}
        if scan.newest is None:
            return result | {"status": "warn", "detail": f"no {check.column} values to date the rows; {rule}"}
        days = (run.today - as_date(scan.newest)).days
        status: Status = "pass" if days <= fresh else "warn" if days <= stale else "fail"
        return result | {"status": status, "detail": f"newest {check.column} {scan.newest:%Y-%m-%d %H:%M}, "
                                                     f"{days:,} days before {run.today:%Y-%m-%d}; {rule}"}


#: Every kind of check, in the order reports list them within a dimension and table.
KINDS: tuple[CheckKind, ...] = (Present(), Required(), Orphan(), Duplicate(), Negative(), BelowOne(), NetMismatch(),
                                Future(), TooOld(), Domain(), Freshness())
KIND_BY_KEY: dict[str, CheckKind] = {k.key: k for k in KINDS}
