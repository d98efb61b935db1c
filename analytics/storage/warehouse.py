"""Which warehouse to use, how to open it safely, and whether it holds what MemberLens needs.

The warehouse URL is resolved as :mod:`analytics.storage.databases` describes (environment, secrets, else
the embedded DuckDB file ``data/warehouse.duckdb``, which the app builds from the demo generator on first run).

Analytics open the warehouse read-only: DuckDB files with ``read_only=True``, PostgreSQL sessions
with ``default_transaction_read_only``. Every failure to open or use it is turned into a
:class:`WarehouseError` whose message names the problem and how to fix it, so neither the app
nor the command line ever shows a traceback for a configuration mistake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import ARRAY, Column, Engine, MetaData, String, Table, create_engine, event, func, inspect, select
from sqlalchemy.dialects import registry
from sqlalchemy.exc import NoSuchModuleError

from analytics.errors import InputError, WarehouseError
from analytics.i18n import _
from analytics.storage import score_store
from analytics.storage.contract import TABLE_TIME_COLUMNS, WAREHOUSE_TABLES, expected_columns, orders
from analytics.storage.databases import WAREHOUSE, DatabaseConfig, data_dir, secrets_paths
from analytics.storage.db import Bind, connection
from analytics.storage.score_store import ScoreStore

WAREHOUSE_URL_ENV = WAREHOUSE.env

#: Longest an analysis statement may run (seconds) before it is stopped: ``MEMBERLENS_STATEMENT_TIMEOUT``.
STATEMENT_TIMEOUT_ENV = "MEMBERLENS_STATEMENT_TIMEOUT"
DEFAULT_STATEMENT_TIMEOUT = 120
#: DuckDB's memory cap for analyses (unless the URL sets ``memory_limit``): ``MEMBERLENS_DUCKDB_MEMORY_LIMIT``.
DUCKDB_MEMORY_ENV = "MEMBERLENS_DUCKDB_MEMORY_LIMIT"
DEFAULT_DUCKDB_MEMORY = "1GB"
#: A PostgreSQL role analysis sessions switch to (``SET ROLE``), e.g. a read-only one: ``MEMBERLENS_WAREHOUSE_ROLE``.
WAREHOUSE_ROLE_ENV = "MEMBERLENS_WAREHOUSE_ROLE"
#: The score store's folder inside the data folder (:mod:`analytics.storage.score_store`).
SCORE_STORE_DIR = "score_store"


class QueryStopped(InputError):
    """An analysis statement was stopped: it ran past the statement timeout or past the memory limit."""


def statement_timeout() -> float:
    """Seconds an analysis statement may run (``MEMBERLENS_STATEMENT_TIMEOUT``, default 120; 0 = no limit)."""
    text = os.environ.get(STATEMENT_TIMEOUT_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_STATEMENT_TIMEOUT
    except ValueError:
        raise WarehouseError(_("{setting} is not a number of seconds.").format(
                                 setting=f"{STATEMENT_TIMEOUT_ENV}={text!r}"),
                             _("Set it to e.g. 120, or unset it for {seconds} s.").format(
                                 seconds=DEFAULT_STATEMENT_TIMEOUT)) from None
    return max(value, 0.0)


def stopped_query(exc: BaseException) -> QueryStopped | None:
    """The :class:`QueryStopped` an exception stands for (a timeout or the memory limit), or None."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "interrupted" in text or "statement timeout" in text or "canceling statement" in text:
        return QueryStopped(_("The analysis took longer than {seconds} s and was stopped.").format(
                                seconds=f"{statement_timeout():g}"),
                            _("Narrow the date range or the filters (or raise MEMBERLENS_STATEMENT_TIMEOUT on the "
                              "server)."))
    if "out of memory" in text:
        return QueryStopped(_("The analysis needed more memory than the warehouse may use and was stopped."),
                            _("Narrow the date range or the filters (or raise MEMBERLENS_DUCKDB_MEMORY_LIMIT on the "
                              "server)."))
    return None


def _duckdb_guard(engine: Engine, parsed_query: Mapping[str, object], warehouse_file: Path | None) -> None:
    """Analysis connections to DuckDB: a memory cap (unless the URL sets one), spilling into a folder of this
    process's own, no access to files or the network beyond it and the score store of a warehouse file
    (:mod:`analytics.storage.score_store`), and statements interrupted at the timeout."""
    memory = None if "memory_limit" in parsed_query else _duckdb_size(
        os.environ.get(DUCKDB_MEMORY_ENV, "").strip() or DEFAULT_DUCKDB_MEMORY)
    spill = data_dir() / "duckdb_tmp" / str(os.getpid())
    readable = [spill]
    if warehouse_file is not None:  # it may read the scores MemberLens stored for it (and nothing else)
        store = ScoreStore(data_dir() / SCORE_STORE_DIR, warehouse_file)
        score_store.enable(engine, store)
        readable.append(store.directory)

    @event.listens_for(engine, "connect")
    def _guard(dbapi_connection, _record) -> None:
        external = dbapi_connection.execute("SELECT current_setting('enable_external_access')").fetchone()[0]
        if external in (True, "true"):  # the first connection to this database in this process
            spill.mkdir(parents=True, exist_ok=True)
            if memory:  # checked to be a size: nothing else reaches the SQL text
                dbapi_connection.execute(f"SET memory_limit = '{memory}'")
            dbapi_connection.execute(f"SET temp_directory = '{_quoted(str(spill))}'")
            for folder in readable:
                folder.mkdir(parents=True, exist_ok=True)
            folders = ", ".join(f"'{_quoted(str(folder))}/'" for folder in readable)
            dbapi_connection.execute(f"SET allowed_directories = [{folders}]")
            dbapi_connection.execute("SET enable_external_access = false")

    _interrupt_at_timeout(engine, lambda dbapi: dbapi.interrupt())


def _duckdb_size(text: str) -> str:
    """A DuckDB memory size (``4GB``, ``512MB``, ``75%``) checked before it reaches SQL text."""
    import re

    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)", text.strip(), re.IGNORECASE):
        raise WarehouseError(_("{setting} is not a memory size.").format(setting=f"{DUCKDB_MEMORY_ENV}={text!r}"),
                             _("Use e.g. 4GB or 512MB."))
    return text.strip()


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def _interrupt_at_timeout(engine: Engine, interrupt) -> None:
    """Stop a statement that runs past :func:`statement_timeout` (DuckDB has no statement timeout of its own)."""
    import threading

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, _cursor, _statement, _parameters, context, _many) -> None:
        limit = statement_timeout()
        if limit and context is not None:
            dbapi = conn.connection.dbapi_connection
            timer = threading.Timer(limit, interrupt, args=(dbapi,))
            timer.daemon = True
            context._memberlens_timer = timer
            timer.start()

    def _stop(context) -> None:
        timer = getattr(context, "_memberlens_timer", None)
        if timer is not None:
            timer.cancel()

    @event.listens_for(engine, "after_cursor_execute")
    def _done(_conn, _cursor, _statement, _parameters, context, _many) -> None:
        _stop(context)

    @event.listens_for(engine, "handle_error")
    def _failed(exception_context) -> None:
        _stop(exception_context.execution_context)

# Apache Spark SQL through its Thrift Server (analytics/storage/spark_dialect.py, loaded when a URL names it).
registry.register("sparksql", "analytics.storage.spark_dialect", "SparkDialect")
registry.register("sparksql.pyhive", "analytics.storage.spark_dialect", "SparkDialect")


def default_warehouse_path() -> Path:
    return data_dir() / "warehouse.duckdb"


def default_warehouse_url() -> str:
    """The embedded DuckDB warehouse inside the data folder."""
    return WAREHOUSE.default_url()


def resolve_warehouse_config(
    environ: Mapping[str, str] | None = None, paths: Sequence[Path] | None = None
) -> DatabaseConfig:
    """Resolve the warehouse URL: environment, then secrets, then the embedded default."""
    return WAREHOUSE.resolve(environ, secrets_paths() if paths is None else paths)


def explain_error(exc: BaseException, url: str) -> WarehouseError:
    """Turn a driver or SQLAlchemy exception into a one-line problem and a fix about the warehouse."""
    return WAREHOUSE.explain(exc, url)  # type: ignore[return-value]


def duckdb_path(url: str) -> Path | None:
    """The file behind a DuckDB URL, or None for in-memory databases and other dialects."""
    parsed = WAREHOUSE.parse(url)
    if parsed.get_backend_name() != "duckdb" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def release_cached_memory(bind: Bind) -> None:
    """Give a DuckDB warehouse file's cached blocks back between a batch job's read and its in-memory work.

    DuckDB keeps the blocks a statement read (up to its memory cap) until the database closes; a job that has
    read what it needs (``recommend train`` at 1M members: about 0.4 GiB) closes the engine's idle connections,
    which closes the database, and the next statement opens it again. Other warehouses, in-memory DuckDB (whose
    data would go with it) and a connection passed in are left alone."""
    if isinstance(bind, Engine) and duckdb_path(bind.url.render_as_string(hide_password=False)) is not None:
        bind.dispose()


def create_warehouse_engine(url: str, *, read_only: bool = True) -> Engine:
    """Create an engine for the warehouse; read-only unless the caller is going to load data.

    Raises WarehouseError for an unparsable URL, a missing driver or a missing DuckDB file.
    Nothing is connected yet: call :func:`open_warehouse` to also check that it answers.
    """
    parsed = WAREHOUSE.parse(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, object] = {}
    if backend == "duckdb":
        path = duckdb_path(url)
        if read_only and path is not None:
            if not path.exists():
                raise WarehouseError(
                    _("There is no DuckDB warehouse file at {path}.").format(path=path),
                    _("Build the demo warehouse with `python -m analytics.synthetic --url duckdb:///{path}` or point "
                      "MEMBERLENS_WAREHOUSE_URL at an existing file.").format(path=path),
                )
            connect_args["read_only"] = True
    try:
        engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=backend != "duckdb")
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise WAREHOUSE.missing_driver(parsed, exc) from exc

    if backend == "duckdb":

        @event.listens_for(engine, "connect")
        def _no_progress_bar(dbapi_connection, _record) -> None:
            # DuckDB draws progress bars on stdout for long queries; the CLI prints results there.
            dbapi_connection.execute("SET enable_progress_bar = false")

        if read_only:
            _duckdb_guard(engine, parsed.query, duckdb_path(url))

    if read_only and backend == "postgresql":
        timeout_ms = int(statement_timeout() * 1000)
        role = os.environ.get(WAREHOUSE_ROLE_ENV, "").strip()

        @event.listens_for(engine, "connect")
        def _read_only_session(dbapi_connection, _record) -> None:
            autocommit = getattr(dbapi_connection, "autocommit", None)
            cursor = dbapi_connection.cursor()
            if role:  # e.g. a role granted only SELECT: the session cannot write whatever the URL's user may do
                from psycopg import sql

                cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cursor.execute(f"SET statement_timeout = {timeout_ms:d}")
            # No JIT: MemberLens's statements carry large expressions (models and clusters compiled to SQL), and
            # compiling them took PostgreSQL far longer than running them (a cluster audience of 22,000 members:
            # 20.6 s with JIT, 1.2 s without).
            cursor.execute("SET jit = off")
            cursor.close()
            if autocommit is False:
                dbapi_connection.commit()

    if read_only and backend == "sparksql":
        from analytics.storage.spark_dialect import assert_read_only

        @event.listens_for(engine, "before_cursor_execute")
        def _refuse_writes(_conn, _cursor, statement, _parameters, _context, _many) -> None:
            assert_read_only(statement)  # Spark has no read-only session mode

    return engine


@dataclass(frozen=True)
class SchemaReport:
    """What a warehouse lacks compared with the contract in :mod:`analytics.storage.contract`."""

    missing_tables: tuple[str, ...] = ()
    missing_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing_tables and not self.missing_columns

    def describe(self) -> str:
        """One line naming exactly what is missing (empty when nothing is)."""
        parts = []
        if self.missing_tables:
            parts.append(_("missing tables: {tables}").format(tables=", ".join(self.missing_tables)))
        for table, cols in self.missing_columns.items():
            parts.append(_("{table} lacks {columns}").format(table=table, columns=", ".join(cols)))
        return "; ".join(parts)


def present_columns(bind: Bind, tables: Sequence[str]) -> dict[str, set[str]]:
    """Lower-cased column names of those ``tables`` that exist (as tables or views).

    DuckDB is read from ``information_schema`` (duckdb-engine's reflection does not work with
    SQLAlchemy 2.1); every other dialect through SQLAlchemy's inspector.
    """
    wanted = [t.lower() for t in tables]
    found: dict[str, set[str]] = {}
    with connection(bind) as conn:
        if conn.dialect.name == "duckdb":
            rows = conn.execute(
                select(_info_columns.c.table_name, _info_columns.c.column_name).where(
                    _info_columns.c.table_schema == func.current_schema(),
                    _info_columns.c.table_catalog == func.current_database(),
                )
            )
            for table, column in rows:
                if table.lower() in wanted:
                    found.setdefault(table.lower(), set()).add(column.lower())
            return found
        inspector = inspect(conn)
        names = {n.lower(): n for n in [*inspector.get_table_names(), *inspector.get_view_names()]}
        for table in wanted:
            if table in names:
                found[table] = {c["name"].lower() for c in inspector.get_columns(names[table])}
    return found


def table_names(bind: Bind) -> list[str]:
    """Every table and view in the warehouse's current schema."""
    with connection(bind) as conn:
        if conn.dialect.name == "duckdb":
            return list(conn.execute(
                select(_info_tables.c.table_name).where(
                    _info_tables.c.table_schema == func.current_schema(),
                    _info_tables.c.table_catalog == func.current_database(),
                )
            ).scalars())
        inspector = inspect(conn)
        return [*inspector.get_table_names(), *inspector.get_view_names()]


def enforced_unique_keys(bind: Bind, table: str) -> list[tuple[str, tuple[str, ...]]]:
    """``(constraint name, columns)`` of each primary key or unique constraint on ``table`` that the warehouse
    enforces on every write, so that no two rows with every one of those columns filled can share them.

    Only DuckDB and PostgreSQL are asked: both check such a constraint on every insert and update, with no way to
    switch it off. Other warehouses (Snowflake, BigQuery, Databricks) accept key constraints as documentation
    without enforcing them, so nothing is trusted there. Foreign keys are not trusted either: PostgreSQL checks
    them with triggers that a load may bypass (``session_replication_role = replica``, as ``pg_restore
    --disable-triggers`` does)."""
    with connection(bind) as conn:
        reader = _UNIQUE_KEY_READERS.get(conn.dialect.name)
        return reader(conn, table.lower()) if reader else []


def _duckdb_unique_keys(conn: Any, table: str) -> list[tuple[str, tuple[str, ...]]]:
    rows = conn.execute(
        select(_duckdb_constraints.c.constraint_name, _duckdb_constraints.c.constraint_column_names).where(
            _duckdb_constraints.c.table_name == table,
            _duckdb_constraints.c.schema_name == func.current_schema(),
            _duckdb_constraints.c.database_name == func.current_database(),
            _duckdb_constraints.c.constraint_type.in_(("PRIMARY KEY", "UNIQUE"))))
    return [(name, tuple(c.lower() for c in columns)) for name, columns in rows]


def _inspected_unique_keys(conn: Any, table: str) -> list[tuple[str, tuple[str, ...]]]:
    inspector = inspect(conn)
    if not inspector.has_table(table):
        return []
    primary = inspector.get_pk_constraint(table)
    keys = [(primary.get("name") or "primary key", tuple(primary["constrained_columns"]))] \
        if primary.get("constrained_columns") else []
    keys += [(u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)]
    return [(name, tuple(c.lower() for c in columns)) for name, columns in keys]


#: How each warehouse that enforces key constraints lists them (see :func:`enforced_unique_keys`).
_UNIQUE_KEY_READERS = {"duckdb": _duckdb_unique_keys, "postgresql": _inspected_unique_keys}

_duckdb_constraints = Table(
    "duckdb_constraints", MetaData(),
    Column("database_name", String), Column("schema_name", String), Column("table_name", String),
    Column("constraint_name", String), Column("constraint_type", String),
    Column("constraint_column_names", ARRAY(String)),
)


_info_tables = Table(
    "tables", MetaData(schema="information_schema"),
    Column("table_catalog", String), Column("table_schema", String), Column("table_name", String),
)
_info_columns = Table(
    "columns", MetaData(schema="information_schema"),
    Column("table_catalog", String), Column("table_schema", String),
    Column("table_name", String), Column("column_name", String),
)


def check_schema(bind: Bind) -> SchemaReport:
    """Compare the warehouse's tables and columns with the contract (names, case-insensitive)."""
    contract = expected_columns()
    present = present_columns(bind, list(contract))
    missing_tables = tuple(t for t in contract if t not in present)
    missing_columns = {
        t: lacking for t, cols in contract.items() if t in present
        and (lacking := tuple(c for c in cols if c not in present[t]))
    }
    return SchemaReport(missing_tables, missing_columns)


@dataclass(frozen=True)
class DataSpan:
    """First and last day with orders: what the date pickers offer and defaults count back from."""

    first_day: date
    last_day: date

    def last_days(self, days: int) -> tuple[date, date]:
        """The last ``days`` days of data (inclusive), clipped to the first day."""
        start = max(self.first_day, self.last_day - timedelta(days=days - 1))
        return start, self.last_day


def data_span(bind: Bind) -> DataSpan | None:
    """The span of order dates in the warehouse, or None when it holds no orders."""
    with connection(bind) as conn:
        first, last = conn.execute(select(func.min(orders.c.ordered_at), func.max(orders.c.ordered_at))).one()
    if first is None or last is None:
        return None
    return DataSpan(first.date(), last.date())


def table_overview(bind: Bind) -> pd.DataFrame:
    """Rows and time coverage of each contract table present: ``table, rows, first, last``."""
    present = present_columns(bind, [t.name for t in WAREHOUSE_TABLES])
    records = []
    with connection(bind) as conn:
        for table in WAREHOUSE_TABLES:
            if table.name not in present:
                continue
            time_col = TABLE_TIME_COLUMNS.get(table.name)
            columns = [func.count()]
            if time_col and time_col in present[table.name]:
                columns += [func.min(table.c[time_col]), func.max(table.c[time_col])]
            row = conn.execute(select(*columns).select_from(table)).one()
            records.append({"table": table.name, "rows": int(row[0]),
                            "first": row[1] if len(row) > 1 else None, "last": row[2] if len(row) > 2 else None})
    return pd.DataFrame(records, columns=["table", "rows", "first", "last"])


def open_warehouse(url: str, *, read_only: bool = True) -> Engine:
    """Open the warehouse and prove it answers; raise WarehouseError naming any problem.

    Checks, in order: the URL parses and its driver is installed, the server accepts the
    connection, and every contract table and column is present.
    """
    engine = create_warehouse_engine(url, read_only=read_only)
    try:
        report = check_schema(engine)
    except Exception as exc:
        engine.dispose()
        raise explain_error(exc, url) from exc
    if not report.ok:
        engine.dispose()
        raise WarehouseError(
            _("The warehouse does not hold the MemberLens tables ({problems}).").format(problems=report.describe()),
            _("Build them with `python -m analytics.synthetic --url URL` for demo data, or load your "
              "data into the tables listed in README's 'Warehouse contract'."),
        )
    return engine
