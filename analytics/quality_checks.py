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

from analytics.i18n import N_, _, format_day, language
from analytics.sqlparts import KEY_HASH_DIALECTS, key_hash
from analytics.storage import contract
from analytics.storage.contract import Money
from analytics.storage.db import connection
from analytics.storage.warehouse import enforced_unique_keys

Dimension = Literal["complete", "accurate", "timely"]
Status = Literal["pass", "warn", "fail"]

#: Timestamps before this are almost always a parse error (a zero Unix time gives 1970-01-01).
EARLIEST_PLAUSIBLE = date(1990, 1, 1)
#: Extra days of freshness allowed for tables that change monthly or campaign by campaign.
SLOW_TABLE_ALLOWANCE_DAYS = 31
#: Net amounts may differ from gross − discount by rounding of at most half a cent.
NET_TOLERANCE = Decimal("0.005")
SHARE_RULE = N_("Any affected row is a warning; more than the failure share of the table's rows (1% by default) "
                "fails.")


@dataclass(frozen=True)
class CheckDefinition:
    """One check: what it looks at, in which dimension; its name (``label``) and description (the help text) are
    written by its kind, in the language of the run at hand."""

    key: str
    dimension: Dimension
    kind: str
    table: str
    columns: tuple[str, ...]
    parent: tuple[str, str] | None = None  # (table, column) an orphan check looks up
    allowed: tuple[str, ...] = ()  # the codes a domain check accepts
    allowance_days: int = 0  # extra days a freshness check tolerates

    @property
    def column(self) -> str:
        return ", ".join(self.columns)

    @property
    def label(self) -> str:
        """The check's name: "No empty values", "Key is unique" ..."""
        return KIND_BY_KEY[self.kind].name(self)

    @property
    def description(self) -> str:
        """What is checked, why, and when it fails."""
        return KIND_BY_KEY[self.kind].describe_check(self, contract.TABLE_BY_NAME[self.table])


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
    scan, the day, the thresholds (``fresh_days``, ``stale_days``, ``fail_share``) and what each check's own
    statement found (:meth:`CheckKind.measure`, by check key)."""

    conn: Connection
    present: Mapping[str, set[str]]
    scans: Mapping[str, Scan]
    today: date
    thresholds: Any
    measured: Mapping[str, Any]


def end_of(today: date) -> datetime:
    return datetime.combine(today + timedelta(days=1), time())


def rows_text(n: int, rows: int) -> str:
    if rows == 0:
        return _("no rows")
    if n == 0:
        return _("none of {rows} rows").format(rows=f"{rows:,}")
    share = n / rows
    shown = f"{share:.2%}" if share >= 0.0001 else "<0.01%"
    return _("{n} of {rows} rows ({share})").format(n=f"{n:,}", rows=f"{rows:,}", share=shown)


def share_rule(thresholds: Any) -> str:
    share = f"{thresholds.fail_share:.2%}".replace(".00%", "%")
    return _("any is a warning, more than {share} of rows fails").format(share=share)


def _long_day(day: date) -> str:
    """A day written out: ``01 January 1990`` / ``1990年1月1日``."""
    return f"{day:%d %B %Y}" if language() == "en" else format_day(day)


def share_status(affected: int, rows: int, thresholds: Any) -> Status:
    if affected == 0:
        return "pass"
    return "fail" if affected / rows > thresholds.fail_share else "warn"


def as_date(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _finding(affected: int, rows: int, status: Status, text: str, rule: str) -> dict[str, Any]:
    return {"affected_rows": affected, "share": affected / rows if rows else None, "status": status,
            "detail": _("{finding}; {rule}").format(finding=text, rule=rule)}


class CheckKind:
    """A kind of check. Subclasses say which checks a table gets (:meth:`checks`), and either a row condition
    (:meth:`bad_rows`, counted in the table scan) or their own evaluation (:meth:`evaluate`)."""

    key: ClassVar[str]
    dimension: ClassVar[Dimension]
    label: ClassVar[str]  # marked with N_, translated where shown
    #: A row-level kind whose affected rows fail on any (True) or warn, then fail above a share (False).
    any_fails: ClassVar[bool] = False
    #: How a row-level finding is described: "below zero: 3 of 1,000 rows (0.30%)" (marked with N_).
    finding: ClassVar[str] = ""
    #: Kinds with a statement of their own (:meth:`measure`) say when it starts: lower first (the costliest).
    measure_rank: ClassVar[int | None] = None

    def checks(self, table: Table) -> list[CheckDefinition]:
        raise NotImplementedError

    def name(self, check: CheckDefinition) -> str:
        """The check's name, in the run's language."""
        return _(self.label)

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        """The check's description (help text), in the run's language."""
        raise NotImplementedError

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool] | None:
        """The condition that marks a row as failing (None: not a row-level kind)."""
        return None

    def define(self, table: Table, columns: tuple[str, ...], suffix: str = "", **extra: Any) -> CheckDefinition:
        key = f"{self.key}:{table.name}" + (f".{suffix}" if suffix else "")
        return CheckDefinition(key, self.dimension, self.key, table.name, columns, **extra)

    def measure(self, check: CheckDefinition, conn: Connection, present: Mapping[str, set[str]]) -> Any:
        """The whole-table statement a check runs apart from its table's scan, and independent of it, so the two
        run side by side (an anti-join, a count of distinct keys); None for kinds that need none. Its result
        reaches :meth:`evaluate` as ``run.measured[check.key]``. Kinds that have one set :attr:`measure_rank`."""
        return None

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        """Run one check; None when it cannot run (its table or column is missing: the presence check reports
        that)."""
        scan = run.scans[check.table]
        affected, rows = scan.flagged[check.key], scan.rows
        if self.any_fails:
            status, rule = ("fail" if affected else "pass"), _("any fails")
        else:
            status, rule = share_status(affected, rows, run.thresholds), share_rule(run.thresholds)
        finding = _(self.finding).format(today=run.today, earliest=EARLIEST_PLAUSIBLE)
        text = _("{finding}: {rows}").format(finding=finding, rows=rows_text(affected, rows))
        return _finding(affected, rows, status, self.describe(text, check, run, affected), rule)

    def describe(self, text: str, check: CheckDefinition, run: Run, affected: int) -> str:
        return text


# --- complete ----------------------------------------------------------------------------------------------------

class Present(CheckKind):
    key, dimension, label = "present", "complete", N_("Table present and loaded")

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, ())]

    #: The rule of each contract table, in words a reader of either language understands (what a table holds is
    #: written out whole per table: a bare word such as "orders" is also the table's name, which is not translated).
    RULES: ClassVar[dict[str, str]] = {
        "members": N_("MemberLens cannot work without members: a missing table or column, or an empty table, fails."),
        "products": N_("MemberLens cannot work without a product catalogue: a missing table or column, or an empty "
                       "table, fails."),
        "orders": N_("MemberLens cannot work without orders: a missing table or column, or an empty table, fails."),
        "order_items": N_("MemberLens cannot work without order lines: a missing table or column, or an empty table, "
                          "fails."),
        "events": N_("A shop may have no a clickstream (imported shops often lack them), so an empty table is a "
                     "warning ('not loaded'); a missing table or column fails."),
        "points_ledger": N_("A shop may have no a points programme (imported shops often lack them), so an empty "
                            "table is a warning ('not loaded'); a missing table or column fails."),
        "tier_changes": N_("A shop may have no a tier history (imported shops often lack them), so an empty table is "
                           "a warning ('not loaded'); a missing table or column fails."),
        "campaigns": N_("A shop may have no campaigns (imported shops often lack them), so an empty table is a "
                        "warning ('not loaded'); a missing table or column fails."),
        "campaign_members": N_("A shop may have no campaign audiences (imported shops often lack them), so an empty "
                               "table is a warning ('not loaded'); a missing table or column fails."),
    }

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        if table.name in self.RULES:
            rule = _(self.RULES[table.name])
        elif contract.is_core(table):
            rule = (f"MemberLens cannot work without {contract.holds(table)}: a missing table or column, or an empty "
                    "table, fails.")
        else:
            rule = (f"A shop may have no {contract.holds(table)} (imported shops often lack them), so an empty table "
                    "is a warning ('not loaded'); a missing table or column fails.")
        return _("The {table} table exists with every column of the warehouse contract and holds rows. {rule}").format(
            table=table.name, rule=rule)

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        name = check.table
        result: dict[str, Any] = {"affected_rows": None, "share": None}
        if name not in run.present:
            return result | {"status": "fail",
                             "detail": _("the table {table} is missing from the warehouse").format(table=name)}
        missing = [c.name for c in contract.TABLE_BY_NAME[name].columns if c.name not in run.present[name]]
        if missing:
            return result | {"status": "fail", "detail": _("missing columns: {columns} (checks on them were skipped)")
                             .format(columns=", ".join(missing))}
        rows = run.scans[name].rows
        if rows == 0:
            core = contract.is_core(contract.TABLE_BY_NAME[name])
            return result | {"status": "fail" if core else "warn",
                             "detail": _("empty") if core else _("empty: not loaded")}
        return result | {"status": "pass", "detail": _("{rows} rows").format(rows=f"{rows:,}")}


class Required(CheckKind):
    key, dimension, label = "required", "complete", N_("No empty values")

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, (c.name,), c.name) for c in table.columns if not c.nullable]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        return _("Every row of {table} has a {column}: the contract declares it required (NOT NULL). A row without it "
                 "cannot be joined, dated or classified, so any empty value fails.").format(table=table.name,
                                                                                           column=check.column)

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        scan = run.scans[check.table]
        affected = scan.rows - scan.non_null[check.columns[0]]
        return _finding(affected, scan.rows, "fail" if affected else "pass",
                        _("empty: {rows}").format(rows=rows_text(affected, scan.rows)), _("any fails"))


class Orphan(CheckKind):
    key, dimension, label = "orphan", "complete", ""
    measure_rank = 1

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [CheckDefinition(f"orphan:{table.name}.{column}", "complete", "orphan", table.name, (column,),
                                parent=parent)
                for column, parent in contract.references(table)]

    def name(self, check: CheckDefinition) -> str:
        return _("Refers to an existing {parent} row").format(parent=check.parent[0])  # type: ignore[index]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        parent_table, parent_column = check.parent  # type: ignore[misc]
        return _("Every non-empty {table}.{column} names an existing {parent_table}.{parent_column}. A row that points "
                 "nowhere drops out of every analysis that joins the two tables (usually the {parent_table} rows were "
                 "not loaded). {share_rule}").format(table=table.name, column=check.column, parent_table=parent_table,
                                                     parent_column=parent_column, share_rule=_(SHARE_RULE))

    def measure(self, check: CheckDefinition, conn: Connection, present: Mapping[str, set[str]]) -> int | None:
        parent_table, parent_column = check.parent  # type: ignore[misc]
        if parent_table not in present or parent_column not in present[parent_table]:
            return None
        return self._orphans(conn, contract.TABLE_BY_NAME[check.table], check.columns[0],
                             check.parent)  # type: ignore[arg-type]

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        parent_table, parent_column = check.parent  # type: ignore[misc]
        affected = run.measured.get(check.key)
        if affected is None:  # the parent table or column is missing
            return None
        rows = run.scans[check.table].rows
        return _finding(affected, rows, share_status(affected, rows, run.thresholds),
                        _("not found in {parent}: {rows}").format(parent=f"{parent_table}.{parent_column}",
                                                                  rows=rows_text(affected, rows)),
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
    key, dimension, label = "duplicate", "accurate", N_("Key is unique")
    measure_rank = 0  # a sort of every key: the longest statements

    def checks(self, table: Table) -> list[CheckDefinition]:
        key = contract.table_key(table)
        if not key:
            return []
        return [self.define(table, key, "+".join(key))]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        return _("No two rows of {table} share {key}, the key of the table. A repeated key counts the same thing twice "
                 "in every total, so any repeat fails. Affected rows are all rows whose key occurs more than once.") \
            .format(table=table.name, key=_(" and ").join(check.columns))

    def measure(self, check: CheckDefinition, conn: Connection,
                present: Mapping[str, set[str]]) -> tuple[int, int, str | None]:
        """(affected rows, repeated keys, the enforced constraint that rules repeats out, if any). A key that the
        warehouse itself keeps unique (a primary key or unique constraint on some of its columns, which DuckDB and
        PostgreSQL check on every write: :func:`~analytics.storage.warehouse.enforced_unique_keys`) cannot repeat,
        so it is not counted again: on PostgreSQL that saves the report's costliest statements (0.65 s of CPU for
        the 2.7M event ids of the 50,000-member demo)."""
        for name, columns in enforced_unique_keys(conn, check.table):
            if set(columns) <= set(check.columns):
                return 0, 0, name
        return (*self._duplicates(conn, contract.TABLE_BY_NAME[check.table], check.columns), None)

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        rows = run.scans[check.table].rows
        affected, keys, enforced_by = run.measured[check.key]
        if enforced_by is not None:
            return _finding(0, rows, "pass", _("repeated key: none possible, the warehouse enforces the constraint "
                                               "{name} on every write").format(name=enforced_by), _("any fails"))
        text = _("repeated key: {rows}").format(rows=rows_text(affected, rows))
        if affected:
            repeated = (_("{n} key occurs more than once") if keys == 1
                        else _("{n} keys occur more than once")).format(n=f"{keys:,}")
            extra = (_("{n} extra copy") if affected - keys == 1
                     else _("{n} extra copies")).format(n=f"{affected - keys:,}")
            text += f" ({repeated}; {extra})"
        return _finding(affected, rows, "fail" if affected else "pass", text, _("any fails"))

    @staticmethod
    def _duplicates(conn: Connection, table: Table, key: tuple[str, ...]) -> tuple[int, int]:
        """(rows whose key occurs more than once, number of such keys); rows with an empty key part are
        left to the required-values check. A cheap screen comes first; only a table that may have duplicates is
        grouped to count them. The screen counts distinct 64-bit hashes of the key (:func:`key_hash`; sorting
        numbers instead of text ids: 2.7M event ids on PostgreSQL in 0.85 s instead of 1.5 s): as many as keyed
        rows means no key repeats, fewer means a repeat or (about once in 10^7) a shared hash, which the
        grouping then tells apart. Where no hash function is known, the keys themselves are counted."""
        cols = [table.c[k] for k in key]
        filled = [c.is_not(None) for c in cols]
        with connection(conn, sort_memory=True) as sorting:
            if conn.dialect.name in KEY_HASH_DIALECTS:
                total, distinct = sorting.execute(select(func.count(), func.count(key_hash(*cols).distinct()))
                                                  .where(*filled)).one()
            elif len(cols) == 1:
                total, distinct = sorting.execute(select(func.count(cols[0]), func.count(cols[0].distinct()))).one()
            else:
                keyed = select(*cols).where(*filled)
                total = select(func.count()).select_from(keyed.subquery("keyed")).scalar_subquery()
                distinct = select(func.count()).select_from(keyed.distinct().subquery("distinct_keys")
                                                            ).scalar_subquery()
                total, distinct = sorting.execute(select(total, distinct)).one()
        if total == distinct:
            return 0, 0
        repeated = (select(*cols, func.count().label("copies")).where(*filled).group_by(*cols)
                    .having(func.count() > 1).subquery("repeated"))
        keys, rows = conn.execute(select(func.count(), func.sum(repeated.c.copies))).one()
        return int(rows or 0), int(keys or 0)


class Negative(CheckKind):
    key, dimension, label, finding = "negative", "accurate", N_("Not negative"), N_("below zero")

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, (c.name,), c.name)
                for c in table.columns if c.type is Money or c.name == "points_balance"]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        return _("{table}.{column} is never below zero (money amounts and points balances are zero or more; returns "
                 "are orders with status 'returned', not negative amounts). {share_rule}").format(
            table=table.name, column=check.column, share_rule=_(SHARE_RULE))

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        return table.c[check.columns[0]] < 0


class BelowOne(CheckKind):
    key, dimension, label, finding = "below_one", "accurate", N_("At least 1"), N_("below 1")

    def checks(self, table: Table) -> list[CheckDefinition]:
        if "quantity" not in table.c:
            return []
        return [self.define(table, ("quantity",), "quantity")]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        return _("Every order line has a quantity of at least 1. {share_rule}").format(share_rule=_(SHARE_RULE))

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        return table.c[check.columns[0]] < 1


class NetMismatch(CheckKind):
    key, dimension = "net_mismatch", "accurate"
    label, finding = N_("Net = gross − discount"), N_("net ≠ gross − discount")

    def checks(self, table: Table) -> list[CheckDefinition]:
        if not {"net_amount", "gross_amount", "discount_amount"} <= set(table.c.keys()):
            return []
        return [self.define(table, ("net_amount", "gross_amount", "discount_amount"), "net_amount")]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        return _("An order's net_amount equals gross_amount − discount_amount to the cent (the discount covers "
                 "coupons, full reductions and points). Rows with an empty amount are not counted. {share_rule}") \
            .format(share_rule=_(SHARE_RULE))

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        c = table.c
        return func.abs(c.net_amount - (c.gross_amount - c.discount_amount)) > NET_TOLERANCE


class Future(CheckKind):
    key, dimension, label, finding = "future", "accurate", N_("Not in the future"), N_("after {today:%Y-%m-%d}")

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, (column,), column) for column in contract.happened_columns(table)]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        return _("No {table}.{column} lies after the end of the day the check runs (the shop's local time). Future "
                 "values are usually a time-zone or parse error. {share_rule}").format(
            table=table.name, column=check.column, share_rule=_(SHARE_RULE))

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        column = table.c[check.columns[0]]
        return column >= (today + timedelta(days=1) if isinstance(column.type, Date) else end_of(today))


class TooOld(CheckKind):
    key, dimension = "too_old", "accurate"
    label, finding = N_("Not before 1990"), N_("before {earliest:%Y-%m-%d}")

    def checks(self, table: Table) -> list[CheckDefinition]:
        column = contract.time_column(table)
        if column is None:
            return []
        return [self.define(table, (column,), column)]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        return _("No {table}.{column} before {earliest}: such dates are almost always a parse error (a zero Unix time "
                 "gives 1 January 1970). {share_rule}").format(table=table.name, column=check.column,
                                                               earliest=_long_day(EARLIEST_PLAUSIBLE),
                                                               share_rule=_(SHARE_RULE))

    def bad_rows(self, check: CheckDefinition, table: Table, today: date) -> ColumnElement[bool]:
        return table.c[check.columns[0]] < datetime.combine(EARLIEST_PLAUSIBLE, time())


class Domain(CheckKind):
    key, dimension, label, finding = "domain", "accurate", N_("One of the contract's values"), N_("other values")
    any_fails = True

    def checks(self, table: Table) -> list[CheckDefinition]:
        return [self.define(table, (column,), column, allowed=allowed)
                for column, allowed in contract.allowed_values(table)]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        return _("{table}.{column} is one of {values}. Any other value fails: pages that group or filter by it would "
                 "miss those rows. Empty values are not counted here.").format(
            table=table.name, column=check.column, values=", ".join(check.allowed))

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
    key, dimension, label = "freshness", "timely", N_("Recent data")

    def checks(self, table: Table) -> list[CheckDefinition]:
        column = contract.time_column(table)
        if column is None:
            return []
        slow = contract.slow_reason(table)
        return [self.define(table, (column,), allowance_days=SLOW_TABLE_ALLOWANCE_DAYS if slow else 0)]

    def describe_check(self, check: CheckDefinition, table: Table) -> str:
        slow = contract.slow_reason(table)
        parts = [_("The newest {table}.{column} is recent: pass when it is at most 2 days before the day the check "
                   "runs, warn up to 30 days, fail beyond (defaults).").format(table=table.name, column=check.column)]
        if slow:
            parts.append(_("{reason}, so {days} days are added to both limits.").format(
                reason=_(slow), days=SLOW_TABLE_ALLOWANCE_DAYS))
        parts.append(_("An empty table is left to the completeness check."))
        return " ".join(parts)

    def evaluate(self, check: CheckDefinition, run: Run) -> dict[str, Any] | None:
        scan = run.scans[check.table]
        if scan.rows == 0:
            return None
        fresh = run.thresholds.fresh_days + check.allowance_days
        stale = run.thresholds.stale_days + check.allowance_days
        rule = _("pass within {fresh} days, warn within {stale}, fail beyond").format(fresh=fresh, stale=stale)
        result: dict[str, Any] = {"affected_rows": None, "share": None}
        if scan.newest is None:
            return result | {"status": "warn", "detail": _("no {column} values to date the rows; {rule}").format(
                column=check.column, rule=rule)}
        days = (run.today - as_date(scan.newest)).days
        status: Status = "pass" if days <= fresh else "warn" if days <= stale else "fail"
        return result | {"status": status, "detail": _("newest {column} {newest}, {days} days before {today}; {rule}")
                         .format(column=check.column, newest=f"{scan.newest:%Y-%m-%d %H:%M}", days=f"{days:,}",
                                 today=f"{run.today:%Y-%m-%d}", rule=rule)}


#: Every kind of check, in the order reports list them within a dimension and table.
KINDS: tuple[CheckKind, ...] = (Present(), Required(), Orphan(), Duplicate(), Negative(), BelowOne(), NetMismatch(),
                                Future(), TooOld(), Domain(), Freshness())
KIND_BY_KEY: dict[str, CheckKind] = {k.key: k for k in KINDS}
