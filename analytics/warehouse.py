"""Which warehouse to use, how to open it safely, and whether it holds what MemberLens needs.

The warehouse URL is resolved in this order: the ``MEMBERLENS_WAREHOUSE_URL`` environment
variable; ``[connections.warehouse]`` in ``.streamlit/secrets.toml`` (Streamlit's
``st.connection`` convention, read here without importing Streamlit); otherwise the embedded DuckDB
file ``data/warehouse.duckdb``, which the app builds from the demo generator on first run.

Analytics open the warehouse read-only: DuckDB files with ``read_only=True``, PostgreSQL sessions
with ``default_transaction_read_only``. Every failure to open or use it is turned into a
:class:`WarehouseError` whose message names the problem and how to fix it, so neither the app
nor the command line ever shows a traceback for a configuration mistake.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Column, Engine, MetaData, String, Table, create_engine, event, func, inspect, select
from sqlalchemy.dialects import registry
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from analytics.db import Bind, connection
from analytics.schema import WAREHOUSE_TABLES, expected_columns, orders

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE_URL_ENV = "MEMBERLENS_WAREHOUSE_URL"
DATA_DIR_ENV = "MEMBERLENS_DATA_DIR"
SECRETS_CONNECTION = "warehouse"

# Apache Spark SQL through its Thrift Server (analytics/spark_dialect.py, loaded when a URL names it).
registry.register("sparksql", "analytics.spark_dialect", "SparkDialect")
registry.register("sparksql.pyhive", "analytics.spark_dialect", "SparkDialect")

#: Drivers MemberLens knows how to suggest when a URL names one that is not installed.
DRIVER_PACKAGES: dict[str, str] = {
    "duckdb": "duckdb-engine",
    "postgresql": "psycopg[binary]",
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "trino": "trino[sqlalchemy]",
    "snowflake": "snowflake-sqlalchemy",
    "bigquery": "sqlalchemy-bigquery",
    "clickhouse": "clickhouse-sqlalchemy",
    "hive": "pyhive[hive]",
    "sparksql": "pyhive thrift thrift-sasl pure-sasl",
    "databricks": "databricks-sqlalchemy",
    "mysql": "pymysql",
    "pymysql": "pymysql",
}


class WarehouseError(Exception):
    """A warehouse problem explained for people: what is wrong (one line) and how to fix it."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return self.problem


@dataclass(frozen=True)
class WarehouseConfig:
    """The warehouse to use and where that choice came from."""

    url: str
    source: str  # "environment", "secrets" or "default"

    @property
    def is_embedded_default(self) -> bool:
        return self.source == "default"

    @property
    def display_url(self) -> str:
        return mask_url(self.url)


def data_dir() -> Path:
    """Where the embedded warehouse (and later the app state) live: ``data/`` unless
    ``MEMBERLENS_DATA_DIR`` says otherwise."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(configured).expanduser().resolve() if configured else PROJECT_ROOT / "data"


def default_warehouse_path() -> Path:
    return data_dir() / "warehouse.duckdb"


def default_warehouse_url() -> str:
    """The embedded DuckDB warehouse inside the data folder."""
    return f"duckdb:///{default_warehouse_path()}"


def secrets_paths() -> list[Path]:
    """Where Streamlit looks for secrets, the project's own file first."""
    return [
        PROJECT_ROOT / ".streamlit" / "secrets.toml",
        Path.cwd() / ".streamlit" / "secrets.toml",
        Path.home() / ".streamlit" / "secrets.toml",
    ]


def url_from_secrets(name: str, paths: Sequence[Path]) -> str | None:
    """The URL of ``[connections.<name>]`` in the first secrets file that defines it.

    Accepts either ``url = "..."`` or Streamlit's split form (``dialect``, ``driver``, ``username``,
    ``password``, ``host``, ``port``, ``database``).
    """
    for path in paths:
        if not path.is_file():
            continue
        try:
            with path.open("rb") as fh:
                secrets = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise WarehouseError(
                f"Cannot read {path}: {exc}", "Fix the TOML syntax of the secrets file."
            ) from exc
        section = secrets.get("connections", {}).get(name)
        if not isinstance(section, Mapping):
            continue
        if section.get("url"):
            return str(section["url"])
        if section.get("dialect"):
            drivername = section["dialect"] + (f"+{section['driver']}" if section.get("driver") else "")
            return URL.create(
                drivername,
                username=section.get("username"),
                password=section.get("password"),
                host=section.get("host"),
                port=int(section["port"]) if section.get("port") else None,
                database=section.get("database"),
            ).render_as_string(hide_password=False)
    return None


def resolve_warehouse_config(
    environ: Mapping[str, str] | None = None, paths: Sequence[Path] | None = None
) -> WarehouseConfig:
    """Resolve the warehouse URL: environment, then secrets, then the embedded default."""
    env = os.environ if environ is None else environ
    if env.get(WAREHOUSE_URL_ENV, "").strip():
        return WarehouseConfig(env[WAREHOUSE_URL_ENV].strip(), "environment")
    from_secrets = url_from_secrets(SECRETS_CONNECTION, secrets_paths() if paths is None else paths)
    if from_secrets:
        return WarehouseConfig(from_secrets, "secrets")
    return WarehouseConfig(default_warehouse_url(), "default")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to show or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy understands: still hide anything like user:secret@
        return re.sub(r"([^:/@\s]+:)[^@/\s]+@", r"\1***@", url)


def duckdb_path(url: str) -> Path | None:
    """The file behind a DuckDB URL, or None for in-memory databases and other dialects."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "duckdb" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def parse_url(url: str) -> URL:
    """Parse a SQLAlchemy URL, or raise WarehouseError saying what a valid one looks like."""
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise WarehouseError(
            f"The warehouse URL is not a valid SQLAlchemy URL: {mask_url(url)!r}",
            "Use the form dialect+driver://user:password@host:port/database, "
            "for example duckdb:///data/warehouse.duckdb or postgresql+psycopg://user:pw@host/shop.",
        ) from exc


def create_warehouse_engine(url: str, *, read_only: bool = True) -> Engine:
    """Create an engine for the warehouse; read-only unless the caller is going to load data.

    Raises WarehouseError for an unparsable URL, a missing driver or a missing DuckDB file.
    Nothing is connected yet: call :func:`open_warehouse` to also check that it answers.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, object] = {}
    if backend == "duckdb":
        path = duckdb_path(url)
        if read_only and path is not None:
            if not path.exists():
                raise WarehouseError(
                    f"There is no DuckDB warehouse file at {path}.",
                    "Build the demo warehouse with `python -m analytics.synthetic --url "
                    f"duckdb:///{path}` or point MEMBERLENS_WAREHOUSE_URL at an existing file.",
                )
            connect_args["read_only"] = True
    try:
        engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=backend != "duckdb")
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise _missing_driver(parsed, exc) from exc

    if backend == "duckdb":

        @event.listens_for(engine, "connect")
        def _no_progress_bar(dbapi_connection, _record) -> None:
            # DuckDB draws progress bars on stdout for long queries; the CLI prints results there.
            dbapi_connection.execute("SET enable_progress_bar = false")

    if read_only and backend == "postgresql":

        @event.listens_for(engine, "connect")
        def _read_only_session(dbapi_connection, _record) -> None:
            autocommit = getattr(dbapi_connection, "autocommit", None)
            cursor = dbapi_connection.cursor()
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cursor.close()
            if autocommit is False:
                dbapi_connection.commit()

    if read_only and backend == "sparksql":
        from analytics.spark_dialect import assert_read_only

        @event.listens_for(engine, "before_cursor_execute")
        def _refuse_writes(_conn, _cursor, statement, _parameters, _context, _many) -> None:
            assert_read_only(statement)  # Spark has no read-only session mode

    return engine


def driver_fix(drivername: str) -> str:
    """How to install the driver a URL names (the driver if named, then the dialect)."""
    names = list(reversed(drivername.split("+")))
    package = next((DRIVER_PACKAGES[n] for n in names if n in DRIVER_PACKAGES), None)
    return f"Install it with `pip install {package}`." if package else "Install the SQLAlchemy dialect for it."


def _missing_driver(parsed: URL, exc: BaseException) -> WarehouseError:
    return WarehouseError(f"No database driver is installed for '{parsed.drivername}' ({exc}).",
                          driver_fix(parsed.drivername))


#: What drivers say when a database server cannot be reached.
UNREACHABLE_SIGNS: tuple[str, ...] = ("connection refused", "could not connect", "could not translate host",
                                      "name or service not known", "timeout expired", "no route to host",
                                      "connection failed", "server closed the connection")


def driver_text(exc: BaseException, url: str) -> tuple[str, str]:
    """A driver's message with the URL's password masked: the whole text and its first line."""
    text = str(getattr(exc, "orig", None) or exc)
    password = _password_of(url)
    if password:
        text = text.replace(password, "***")
    return text, text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def explain_error(exc: BaseException, url: str) -> WarehouseError:
    """Turn a driver or SQLAlchemy exception into a one-line problem and a fix."""
    if isinstance(exc, WarehouseError):
        return exc
    text, first_line = driver_text(exc, url)
    where = mask_url(url)
    lowered = text.lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return WarehouseError(
            f"The warehouse rejected the user name or password ({where}).",
            "Check the credentials in MEMBERLENS_WAREHOUSE_URL or .streamlit/secrets.toml.",
        )
    if "could not set lock" in lowered or "conflicting lock" in lowered:
        return WarehouseError(
            f"The warehouse file is in use by another program that is writing to it ({where}).",
            "Wait for the demo build or import to finish (or stop that program), then reload.",
        )
    if "same database file with a different configuration" in lowered:
        return WarehouseError(
            f"The warehouse file is open for reading in this MemberLens process, so it cannot be written now "
            f"({where}).",
            "Another page or session is still reading it: try again in a moment, or restart the app.",
        )
    if ("does not exist" in lowered and "database" in lowered) or "schema_not_found" in lowered:
        return WarehouseError(
            f"The database named in the warehouse URL does not exist ({where}).",
            "Create it, or correct the database name at the end of the URL.",
        )
    if any(s in lowered for s in UNREACHABLE_SIGNS):
        return WarehouseError(
            f"The warehouse server does not answer ({where}): {first_line}",
            "Check that the server is running and that host and port in the URL are right.",
        )
    if isinstance(exc, (NoSuchModuleError, ModuleNotFoundError, ImportError)):
        try:
            return _missing_driver(make_url(url), exc)
        except ArgumentError:
            pass
    if isinstance(exc, (DBAPIError, SQLAlchemyError, OSError)):
        return WarehouseError(f"The warehouse could not be used ({where}): {first_line}",
                              "Check the URL, the server and the account's permissions.")
    return WarehouseError(f"Unexpected problem with the warehouse ({where}): {first_line}")


def _password_of(url: str) -> str | None:
    try:
        return make_url(url).password  # type: ignore[return-value]
    except ArgumentError:
        return None


@dataclass(frozen=True)
class SchemaReport:
    """What a warehouse lacks compared with the contract in :mod:`analytics.schema`."""

    missing_tables: tuple[str, ...] = ()
    missing_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing_tables and not self.missing_columns

    def describe(self) -> str:
        """One line naming exactly what is missing (empty when nothing is)."""
        parts = []
        if self.missing_tables:
            parts.append("missing tables: " + ", ".join(self.missing_tables))
        for table, cols in self.missing_columns.items():
            parts.append(f"{table} lacks " + ", ".join(cols))
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


#: The timestamp that dates each contract table's rows.
TABLE_TIME_COLUMNS: dict[str, str] = {
    "members": "registered_at", "orders": "ordered_at", "events": "occurred_at",
    "points_ledger": "occurred_at", "tier_changes": "changed_at", "campaigns": "start_at",
    "campaign_members": "sent_at",
}


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
            f"The warehouse does not hold the MemberLens tables ({report.describe()}).",
            "Build them with `python -m analytics.synthetic --url URL` for demo data, or load your "
            "data into the tables listed in README's 'Warehouse contract'.",
        )
    return engine
