"""The staging database of an import: parsing checks, rejected rows and the contract-shaped tables.

Every importer works the same way inside a DuckDB connection: the file is staged as text
(:mod:`analytics.importers.reading`), parsed in SQL into ``_parsed``, every row that fails a check
is written to ``_rejects`` with its row, column, value and reason, and the remaining rows are
shaped into ``_stage_<table>`` tables with exactly the contract's columns and types. Only those
tables travel to the warehouse (:mod:`analytics.importers.loading`).

Checks come in two kinds: *unreadable* values (a date that is not a date, text in a number column,
a missing id) stop the import unless the user asks to skip such rows, because they mean the file
or the mapping is wrong; *excluded* rows (zero prices, exact duplicates ...) are expected in real
exports and are always reported and left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import duckdb
import pandas as pd
from sqlalchemy import Table, create_engine

from analytics.errors import ImportRefused
from analytics.i18n import _
from analytics.importers.errors import REJECT_COLUMNS
from analytics.importers.reading import SourceFile

#: How many rejected rows a refusal message quotes; the full list comes with it.
QUOTED_REJECTS = 3
#: Most rejected-row entries kept for the report and its download (the count of rejected rows stays exact).
MAX_REJECTS_KEPT = 100_000


@dataclass(frozen=True)
class Check:
    """A condition on ``_parsed`` rows that rejects them, with the column and value to report."""

    condition: str  # SQL over _parsed, from code only
    reason: str  # SQL: a quoted constant, or a $parameter for text that comes from the user
    column: str | None  # the file's column name, reported as is (bound, never in SQL text)
    value: str  # SQL expression for the offending value
    unreadable: bool


def sql_text(text: str) -> str:
    """A reason written by the code (translated into the run's language) as a SQL string constant."""
    return "'" + text.replace("'", "''") + "'"


@cache
def duckdb_dialect():
    return create_engine("duckdb:///:memory:").dialect


class Staging:
    """A DuckDB connection holding one import's staged file, checks and contract-shaped tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: SourceFile) -> None:
        self.con = con
        self.source = source
        con.execute("CREATE TEMP TABLE _rejects (_rid BIGINT, _row BIGINT, _sheet VARCHAR, column_name VARCHAR, "
                    "value VARCHAR, reason VARCHAR, unreadable BOOLEAN)")

    def run(self, sql: str, params: dict | None = None) -> None:
        self.con.execute(sql, _used(sql, params))

    def scalar(self, sql: str, params: dict | None = None):
        return self.con.execute(sql, _used(sql, params)).fetchall()[0][0]

    def rows_read(self) -> int:
        return int(self.scalar("SELECT count(*) FROM _raw"))

    def column(self, role_position: int | None) -> str:
        """The staged column for a role, or a typed NULL where the file lacks it."""
        return "CAST(NULL AS VARCHAR)" if role_position is None else self.source.internal(role_position)

    def column_name(self, role_position: int | None) -> str | None:
        return None if role_position is None else self.source.columns[role_position]

    def reject(self, checks: Sequence[Check], table: str = "_parsed", params: dict | None = None) -> None:
        """Write one entry per failed check per row to ``_rejects``, in a single scan of ``table``."""
        bound = dict(params or {})
        entries = []
        for i, check in enumerate(checks):
            bound[f"column_{i}"] = check.column
            entries.append(
                f"CASE WHEN {check.condition} THEN {{'column_name': $column_{i}, "
                f"'value': CAST({check.value} AS VARCHAR), 'reason': {check.reason}, "
                f"'unreadable': {'true' if check.unreadable else 'false'}}} END")
        any_failed = " OR ".join(f"({check.condition})" for check in checks)
        self.run(
            "INSERT INTO _rejects SELECT _rid, _row, _sheet, e.column_name, e.value, e.reason, e.unreadable FROM ("
            f"  SELECT _rid, _row, _sheet, unnest(list_filter([{', '.join(entries)}], lambda x: x IS NOT NULL)) AS e "
            f"  FROM {table} WHERE {any_failed})",
            bound,
        )

    def reject_duplicates(self, what: str | None = None) -> None:
        """Reject every repeat of an identical raw row (all of the file's columns), keeping the first.

        Candidates are found by a 64-bit hash of the row and then compared column by column, so
        the result is exact while the full comparison runs only on the few candidate rows.
        """
        what = what or _("exact duplicate of row {row}")
        cols = ", ".join(self.source.internal(i) for i in range(len(self.source.columns)))
        self.run(f"CREATE TEMP TABLE _row_hashes AS SELECT _rid, hash({cols}) AS h FROM _raw")
        self.run(
            "INSERT INTO _rejects SELECT _rid, _row, _sheet, NULL, NULL, replace($what, '{row}', CAST(first_row AS "
            "VARCHAR)), false FROM ("
            f"  SELECT _rid, _row, _sheet, first_value(_rid) OVER w AS first_rid, first_value(_row) OVER w AS first_row"
            f"  FROM _raw WHERE _rid IN (SELECT _rid FROM _row_hashes WHERE h IN "
            f"    (SELECT h FROM _row_hashes GROUP BY h HAVING count(*) > 1))"
            f"  WINDOW w AS (PARTITION BY {cols} ORDER BY _rid)"
            ") WHERE _rid <> first_rid",
            {"what": what},
        )

    def keep_accepted(self, source: str, target: str) -> None:
        """``target`` = rows of ``source`` with no reject entry."""
        self.run(f"CREATE TEMP TABLE {target} AS SELECT * FROM {source} WHERE _rid NOT IN (SELECT _rid FROM _rejects)")

    def rejects(self, unreadable_only: bool = False) -> pd.DataFrame:
        """The rejected rows' entries (row, column, value, reason), the first :data:`MAX_REJECTS_KEPT` of them:
        a file whose every row is rejected must not become a frame of millions of rows."""
        where = "WHERE unreadable" if unreadable_only else ""
        frame = self.con.execute(
            f"SELECT _sheet AS sheet, _row AS row, column_name AS column, left(value, 200) AS value, reason "
            f"FROM _rejects {where} ORDER BY _rid, column_name NULLS FIRST LIMIT {MAX_REJECTS_KEPT}").df()
        frame["row"] = frame["row"].astype("Int64")
        return frame[list(REJECT_COLUMNS)]

    def rejected_rows(self) -> int:
        """How many rows were rejected (all of them, however many entries are kept)."""
        return int(self.scalar("SELECT count(DISTINCT _rid) FROM _rejects"))

    def refuse_unreadable(self, skip_bad_rows: bool) -> None:
        """Stop the import when values cannot be read (unless asked to skip those rows)."""
        unreadable = int(self.scalar("SELECT count(DISTINCT _rid) FROM _rejects WHERE unreadable"))
        if unreadable == 0 or skip_bad_rows:
            return
        frame = self.rejects(unreadable_only=True)
        total = self.rows_read()
        entries = int(self.scalar("SELECT count(*) FROM _rejects WHERE unreadable"))
        quoted = "; ".join(_describe(r) for r in frame.head(QUOTED_REJECTS).itertuples())
        more = (" " + _("and {n} more").format(n=f"{entries - QUOTED_REJECTS:,}")) if entries > QUOTED_REJECTS else ""
        if unreadable == total:
            problem = _("No row of {file} can be read ({rows}).").format(file=self.source.path.name,
                                                                          rows=quoted + more)
            fix = _("Check the column mapping, the date format, the delimiter and the decimal mark; "
                    "nothing was imported.")
        else:
            problem = _("{n} of {total} rows of {file} cannot be read: {rows}.").format(
                n=f"{unreadable:,}", total=f"{total:,}", file=self.source.path.name, rows=quoted + more)
            fix = _("Correct those rows and import again, or import with 'skip unreadable rows' "
                    "(--skip-bad-rows) to load the others and list these. Nothing was imported.")
        raise ImportRefused(problem, fix, frame)

    def create_stage(self, table: Table) -> str:
        """An empty ``_stage_<table>`` with the contract's columns and types; returns its name."""
        dialect = duckdb_dialect()
        name = f"_stage_{table.name}"
        columns = ", ".join(f"{c.name} {c.type.compile(dialect=dialect)}" for c in table.columns)
        self.run(f"CREATE TEMP TABLE {name} ({columns})")
        return name

    def stage_count(self, table: Table) -> int:
        return int(self.scalar(f"SELECT count(*) FROM _stage_{table.name}"))


def most_frequent(value: str, by: str, source: str) -> str:
    """SQL for each ``by`` key's most frequent non-empty ``value`` in ``source`` (columns ``by, value``).

    The one rule for "the usual value" (a product's name and price, a customer's country ...): the
    value on the most rows; a tie goes to the greatest value, so a re-import gives the same answer.
    """
    return (f"(SELECT {by}, arg_max({value}, (n, {value})) AS {value} FROM (SELECT {by}, {value}, count(*) AS n "
            f"FROM {source} WHERE {value} IS NOT NULL AND {by} IS NOT NULL GROUP BY {by}, {value}) GROUP BY {by})")


def _used(sql: str, params: dict | None) -> dict:
    """The parameters ``sql`` refers to (DuckDB refuses unused ones)."""
    return {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", sql)}


def _describe(row) -> str:
    where = f"{row.sheet}!" if isinstance(row.sheet, str) else ""
    column = f", {row.column}" if isinstance(row.column, str) else ""
    value = f" {row.value!r}" if isinstance(row.value, str) else " " + _("(empty)")
    return _("row {row}: {reason}").format(row=f"{where}{row.row}{column}{value}", reason=row.reason)
