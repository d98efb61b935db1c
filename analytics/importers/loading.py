"""Landing staged rows in the warehouse: one transaction, natural keys, a fingerprint log.

Both targets run the same SQL, so DuckDB and PostgreSQL behave alike:

* **Whole or nothing.** Creating missing tables, inserting and logging the import happen in one
  transaction (DuckDB and PostgreSQL both roll DDL back). A new DuckDB file that ends up holding
  nothing is removed again, so a failed first import never leaves an empty warehouse behind.
* **Idempotent.** The file's fingerprint is logged in ``memberlens_imports``; the same file again
  changes nothing. Rows are inserted only where their natural key is new (member, product, order,
  event id), and an order's lines only with the order itself, so an overlapping file (a later
  export covering the same weeks) adds only what is new and never doubles an order.
* **Only the rows the file concerns.** Existing rows are left alone, except that a member's
  ``registered_at`` moves back to an earlier first purchase and an unknown region is filled in.
  ``replace`` (the user's explicit choice) instead empties MemberLens's tables first: the demo
  shop, or an earlier import.

The warehouse stays read-only to analyses; this module is the importer's own, read-write path.
SQL text is built from contract identifiers only; values travel as bound parameters or ``COPY``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.schema import CreateTable

from analytics.i18n import _
from analytics.importers.staging import duckdb_dialect
from analytics.storage import contract
from analytics.storage.bulkload import copy_batches, driver_errors
from analytics.storage.databases import WAREHOUSE, mask_url
from analytics.storage.warehouse import (
    WarehouseError,
    create_warehouse_engine,
    duckdb_path,
    explain_error,
    table_names,
)

imports_log = Table(
    contract.IMPORT_LOG_TABLE,
    MetaData(),
    Column("import_id", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("file_name", String),
    Column("fingerprint", String, nullable=False),
    Column("imported_at", DateTime, nullable=False),
    Column("rows_read", Integer),
    Column("rows_rejected", Integer),
    Column("details", String),  # JSON: options, rows inserted per table, the file's summary figures
)

#: Arbitrary constant: PostgreSQL imports into one database take this advisory lock in turn.
_IMPORT_LOCK_KEY = 0x4D4C494D  # "MLIM"

#: Tables MemberLens owns besides the contract: dropped with it when an import replaces the data.
OWN_EXTRA_TABLES: tuple[str, ...] = ("demo_personas", imports_log.name)

_TABLES = {t.name: t for t in contract.WAREHOUSE_TABLES}

#: Natural keys: a staged row is inserted only if no row with its key exists. Order lines go in only
#: with their (new) order, so they are checked against ``orders`` and loaded before the orders.
_LOAD_ORDER: tuple[tuple[str, str, str], ...] = (
    ("members", "members", "member_id"),
    ("products", "products", "product_id"),
    ("order_items", "orders", "order_id"),
    ("orders", "orders", "order_id"),
    ("events", "events", "event_id"),
)


@dataclass(frozen=True)
class PreviousImport:
    import_id: str
    file_name: str | None
    imported_at: datetime


class Target:
    """A warehouse being imported into; subclasses hold the connection and the staging database."""

    staging: duckdb.DuckDBPyConnection
    url: str

    def existing(self) -> set[str]:
        raise NotImplementedError

    def execute(self, sql: str, scalar: bool = False) -> int:
        """Run SQL; the number of rows it changed (or, with ``scalar``, the value it selected)."""
        raise NotImplementedError

    def create(self, table: Table) -> None:
        raise NotImplementedError

    def ship(self, table: Table) -> None:
        """Make ``_stage_<table>`` readable by the target's SQL."""

    def previous_import(self, fingerprint: str, in_transaction: bool = False) -> PreviousImport | None:
        """The earlier import of a file with this fingerprint, if any (``in_transaction``: read inside the load's
        transaction, so the check and the load are one)."""
        raise NotImplementedError

    def exclusive(self) -> None:
        """Inside the load's transaction: wait for any other import into the same warehouse to finish."""

    def record(self, values: dict) -> None:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def after_commit(self, changed: Sequence[str]) -> None:
        """Housekeeping once the data is in."""

    # -- the load itself, the same SQL on every target -----------------------------------------

    def prepare(self, replace: bool) -> None:
        present = {name.lower() for name in self.existing()}
        if replace:
            for name in (*reversed([t.name for t in contract.WAREHOUSE_TABLES]), *OWN_EXTRA_TABLES):
                if name in present:
                    self.execute(f"DROP TABLE {name}")
            present = set()
        for table in (*contract.WAREHOUSE_TABLES, imports_log):
            if table.name not in present:
                self.create(table)

    def load(self, staged: Sequence[str], report: Callable[[float, str], None]) -> dict[str, int]:
        """Insert staged rows whose natural key is new; returns rows inserted per table."""
        inserted: dict[str, int] = {}
        steps = [step for step in _LOAD_ORDER if step[0] in staged]
        for i, (table, keyed_by, key) in enumerate(steps):
            report(0.7 + 0.2 * i / len(steps), _("Loading {table}").format(table=table))
            columns = ", ".join(c.name for c in _TABLES[table].columns)
            order = ", ".join(f"s.{c}" for c in contract.SORT_KEYS.get(table, ()))
            inserted[table] = self.execute(
                f"INSERT INTO {table} ({columns}) SELECT {', '.join('s.' + c for c in columns.split(', '))} "
                f"FROM _stage_{table} s WHERE NOT EXISTS (SELECT 1 FROM {keyed_by} x WHERE x.{key} = s.{key})"
                + (f" ORDER BY {order}" if order else "")
            )
        if "orders" in staged:
            # Orders that were there already but differ from this file's version are kept as they
            # were (an order is taken whole from the first file that brings it); count them.
            inserted["orders_differing"] = self.execute(
                "SELECT count(*) FROM _stage_orders s JOIN orders o ON o.order_id = s.order_id "
                "WHERE o.status <> s.status OR o.net_amount <> s.net_amount", scalar=True)
        if "members" in staged:
            self.execute(
                "UPDATE members SET registered_at = CASE WHEN s.registered_at < members.registered_at "
                "THEN s.registered_at ELSE members.registered_at END, region = coalesce(members.region, s.region) "
                "FROM _stage_members s WHERE members.member_id = s.member_id "
                "AND (s.registered_at < members.registered_at OR (members.region IS NULL AND s.region IS NOT NULL))"
            )
        return inserted

    def close(self) -> None:
        self.staging.close()


class DuckDBTarget(Target):
    """A DuckDB warehouse file: staging happens in the same connection (temporary tables)."""

    def __init__(self, url: str, path: Path) -> None:
        self.url = url
        self.path = path
        self.created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.staging = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise explain_error(exc, url) from exc
        self.staging.execute("SET enable_progress_bar = false")
        self.staging.execute("SET preserve_insertion_order = true")
        self.committed = False

    def existing(self) -> set[str]:
        return {r[0] for r in self.staging.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_catalog = current_database()").fetchall()}

    def execute(self, sql: str, scalar: bool = False) -> int:
        rows = self.staging.execute(sql).fetchall()
        return int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0

    def create(self, table: Table) -> None:
        self.staging.execute(str(CreateTable(table).compile(dialect=duckdb_dialect())))

    def previous_import(self, fingerprint: str, in_transaction: bool = False) -> PreviousImport | None:
        if imports_log.name not in self.existing():
            return None
        rows = self.staging.execute(
            "SELECT import_id, file_name, imported_at FROM memberlens_imports WHERE fingerprint = $fp "
            "ORDER BY imported_at LIMIT 1", {"fp": fingerprint}).fetchall()
        return PreviousImport(*rows[0]) if rows else None

    def record(self, values: dict) -> None:
        columns = list(values)
        self.staging.execute(
            f"INSERT INTO memberlens_imports ({', '.join(columns)}) VALUES ({', '.join('$' + c for c in columns)})",
            values)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.staging.begin()
        try:
            yield
            self.staging.commit()
        except BaseException as exc:
            self.staging.rollback()
            if isinstance(exc, duckdb.Error):
                raise explain_error(exc, self.url) from exc
            raise
        self.committed = True

    def after_commit(self, changed: Sequence[str]) -> None:
        self.staging.execute("CHECKPOINT")

    def close(self) -> None:
        super().close()
        if self.created and not self.committed:
            for leftover in (self.path, Path(str(self.path) + ".wal")):
                leftover.unlink(missing_ok=True)


class PostgresTarget(Target):
    """A PostgreSQL warehouse: staged in memory, shipped with COPY into temporary tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_warehouse_engine(url, read_only=False)
        try:
            self.conn = self.engine.connect()
        except driver_errors() as exc:
            self.engine.dispose()
            raise explain_error(exc, url) from exc
        self.staging = duckdb.connect()
        self.staging.execute("SET enable_progress_bar = false")

    def existing(self) -> set[str]:
        return {n.lower() for n in table_names(self.conn)}

    def execute(self, sql: str, scalar: bool = False) -> int:
        result = self.conn.execute(text(sql))
        return int(result.scalar() or 0) if scalar else max(result.rowcount, 0)

    def create(self, table: Table) -> None:
        table.create(self.conn)  # with its PostgreSQL indexes

    def ship(self, table: Table) -> None:
        columns = ", ".join(f"{c.name} {c.type.compile(dialect=self.conn.dialect)}" for c in table.columns)
        self.conn.execute(text(f"CREATE TEMP TABLE _stage_{table.name} ({columns}) ON COMMIT DROP"))
        reader = self.staging.sql(f"SELECT * FROM _stage_{table.name}").to_arrow_reader(100_000)
        copy_batches(self.conn, f"_stage_{table.name}", [c.name for c in table.columns], reader)

    def previous_import(self, fingerprint: str, in_transaction: bool = False) -> PreviousImport | None:
        if imports_log.name not in self.existing():
            return None
        row = self.conn.execute(
            select(imports_log.c.import_id, imports_log.c.file_name, imports_log.c.imported_at)
            .where(imports_log.c.fingerprint == fingerprint).order_by(imports_log.c.imported_at).limit(1)).first()
        if not in_transaction:
            self.conn.rollback()
        return PreviousImport(*row) if row else None

    def exclusive(self) -> None:
        # one import at a time per database, across machines: held until the transaction ends
        self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _IMPORT_LOCK_KEY})

    def record(self, values: dict) -> None:
        self.conn.execute(insert(imports_log).values(**values))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.conn.in_transaction():  # reads so far ran in an implicit transaction: end it
            self.conn.rollback()
        try:
            with self.conn.begin():
                yield
        except driver_errors() as exc:
            raise explain_error(exc, self.url) from exc

    def after_commit(self, changed: Sequence[str]) -> None:
        if self.conn.in_transaction():
            self.conn.rollback()
        with self.conn.begin():
            for table in changed:
                self.conn.execute(text(f"ANALYZE {table}"))

    def close(self) -> None:
        super().close()
        self.conn.close()
        self.engine.dispose()


def import_refusal(url: str) -> WarehouseError | None:
    """Why files cannot be imported into the warehouse at ``url`` (None when they can: a DuckDB file or
    PostgreSQL), so a page can say so before anyone picks a file."""
    backend = WAREHOUSE.parse(url).get_backend_name()
    if backend == "duckdb" and duckdb_path(url) is None:
        return WarehouseError(_("An in-memory DuckDB URL cannot hold imported data."),
                              _("Use duckdb:///path/to/file.duckdb."))
    if backend == "sparksql":
        return WarehouseError(
            _("This Spark SQL warehouse is read-only to MemberLens, so files cannot be imported into it "
              "({url}).").format(url=mask_url(url)),
            _("Load the data into the Spark tables with Spark's own tools (docs/spark.md), or import into a DuckDB "
              "or PostgreSQL warehouse."))
    if backend not in ("duckdb", "postgresql"):
        return WarehouseError(
            _("The importers write to DuckDB or PostgreSQL, not '{backend}' ({url}).").format(backend=backend,
                                                                                             url=mask_url(url)),
            _("Import into DuckDB or PostgreSQL, then copy the tables with your warehouse's own loader."))
    return None


@contextmanager
def open_target(url: str) -> Iterator[Target]:
    """Open the warehouse at ``url`` for importing (DuckDB file or PostgreSQL)."""
    refusal = import_refusal(url)
    if refusal is not None:
        raise refusal
    target: Target
    if WAREHOUSE.parse(url).get_backend_name() == "duckdb":
        target = DuckDBTarget(url, duckdb_path(url))
    else:
        target = PostgresTarget(url)
    try:
        yield target
    finally:
        target.close()


def new_log_entry(kind: str, file_name: str, fingerprint: str, rows_read: int, rows_rejected: int,
                  details: dict) -> dict:
    return {
        "import_id": uuid.uuid4().hex, "kind": kind, "file_name": file_name, "fingerprint": fingerprint,
        "imported_at": datetime.now().replace(microsecond=0), "rows_read": rows_read,
        "rows_rejected": rows_rejected, "details": json.dumps(details, default=str, sort_keys=True),
    }
