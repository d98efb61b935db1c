"""Bulk loading of Arrow batches into a warehouse: DuckDB appends and PostgreSQL ``COPY``.

Used by the demo generator (and the importers) so that millions of rows never go through
row-by-row ``INSERT``. A load lands whole or not at all:

* DuckDB: the new warehouse is written to a temporary file next to the target and renamed over it
  only when complete, so a crash leaves the old file (or none) rather than half a warehouse. Fact
  tables are staged and then written in time order, which lets DuckDB's zone maps skip most of
  a table when a query asks for a date range.
* PostgreSQL: everything happens in one transaction (tables, ``COPY``, indexes, ``ANALYZE``).

The SQL text below is built from identifiers of :mod:`analytics.storage.contract` only (table and column
names of the contract), never from user input; data arrives as Arrow batches, not as SQL.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Table, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from analytics.errors import InputError
from analytics.storage.contract import IMPORT_LOG_TABLE, table_key
from analytics.storage.databases import WAREHOUSE, mask_url
from analytics.storage.warehouse import (
    WarehouseError,
    create_warehouse_engine,
    duckdb_path,
    explain_error,
    table_names,
)


def driver_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the database refused something (as opposed to a bug in the caller)."""
    errors: list[type[BaseException]] = [DBAPIError, duckdb.Error]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:  # pragma: no cover - psycopg is in requirements
        pass
    return tuple(errors)


class BulkLoader(Protocol):
    def append(self, table: str, data: pa.Table) -> None: ...


def _duckdb_dialect():
    return create_engine("duckdb:///:memory:").dialect


_APPEND_ROWS = 500_000  # rows handed to DuckDB per INSERT


class DuckDBLoader:
    """Appends Arrow tables to a DuckDB file being built; ``finish`` writes facts in time order."""

    def __init__(self, con: duckdb.DuckDBPyConnection, tables: Sequence[Table],
                 sort_by: dict[str, tuple[str, ...]]) -> None:
        self.con = con
        self.sort_by = sort_by
        dialect = _duckdb_dialect()
        for table in tables:
            con.execute(str(CreateTable(table).compile(dialect=dialect)))
            if table.name in sort_by:
                con.execute(f"CREATE TABLE _stage_{table.name} AS SELECT * FROM {table.name} LIMIT 0")

    def append(self, table: str, data: pa.Table) -> None:
        target = f"_stage_{table}" if table in self.sort_by else table
        # A slice at a time: DuckDB's buffers for one INSERT of a chunk's 2.7M events went past its cap.
        for start in range(0, data.num_rows, _APPEND_ROWS):
            self.con.register("_incoming", data.slice(start, _APPEND_ROWS))
            try:
                self.con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _incoming")
            finally:
                self.con.unregister("_incoming")

    def finish(self) -> None:
        for table, columns in self.sort_by.items():
            order = ", ".join(columns)
            self.con.execute(f"INSERT INTO {table} SELECT * FROM _stage_{table} ORDER BY {order}")
            self.con.execute(f"DROP TABLE _stage_{table}")
        self.con.execute("CHECKPOINT")


class PostgresLoader:
    """Streams Arrow tables into PostgreSQL with ``COPY ... FROM STDIN`` inside one transaction."""

    def __init__(self, sa_connection, tables: Sequence[Table]) -> None:
        self.sa = sa_connection
        self.tables = tables
        for table in tables:
            self.sa.execute(CreateTable(table))  # indexes come after the data, in finish()

    def append(self, table: str, data: pa.Table) -> None:
        copy_batches(self.sa, table, data.column_names, data.to_batches())

    def finish(self) -> None:
        for table in self.tables:
            key = table_key(table)
            if key and not table.primary_key.columns:
                # Every contract key becomes a primary key once the rows are in (one index build, as a company
                # warehouse on PostgreSQL declares them): PostgreSQL then keeps it unique, so the data-quality
                # report need not recount it, and lookups by id use the index.
                self.sa.execute(text(f'ALTER TABLE {table.name} ADD CONSTRAINT "{table.name}_pkey" '
                                     f"PRIMARY KEY ({', '.join(key)})"))
            for index in table.indexes:
                index.create(self.sa)
            self.sa.execute(text(f"ANALYZE {table.name}"))


def copy_batches(sa_connection, table: str, columns: Sequence[str], batches: Iterable[pa.RecordBatch]) -> None:
    """Stream Arrow batches into a PostgreSQL table with ``COPY ... FROM STDIN`` (CSV, batch by batch).

    ``table`` and ``columns`` are identifiers of the contract (or its staging copies), never user text.
    """
    names = ", ".join(f'"{c}"' for c in columns)
    raw = sa_connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy:
        for batch in batches:
            buffer = io.BytesIO()
            pa_csv.write_csv(batch, buffer, pa_csv.WriteOptions(include_header=False))
            copy.write(buffer.getbuffer())


def existing_tables(url: str) -> list[str]:
    """The tables already in the warehouse at ``url`` (none if its DuckDB file does not exist)."""
    path = duckdb_path(url)
    if path is not None and not path.exists():
        return []
    engine = create_warehouse_engine(url, read_only=True)  # read-only: a running app may hold the file
    try:
        return table_names(engine)
    except driver_errors() as exc:
        raise explain_error(exc, url) from exc
    finally:
        engine.dispose()


@contextmanager
def bulk_load(
    url: str | None, tables: Sequence[Table], *, sort_by: dict[str, tuple[str, ...]] | None = None,
    replace: bool = False, memory_limit: str = "512MB", parquet_dir: str | Path | None = None,
) -> Iterator[BulkLoader]:
    """Create ``tables`` at ``url`` and yield a loader; commit on success, leave nothing on failure.

    With ``replace`` existing tables of the same names are dropped (atomically with the load);
    without it, finding any of them is an error, so nobody loses a warehouse by accident. A DuckDB
    file is rebuilt as a whole, so one that also holds other tables is never touched.
    A ``sparksql://`` URL or a ``parquet_dir`` (with no URL: files only) goes through
    :func:`analytics.storage.parquet_load.parquet_load`: Parquet files, then Spark tables defined over them.
    """
    if parquet_dir is not None or url is None or WAREHOUSE.parse(url).get_backend_name() == "sparksql":
        from analytics.storage.parquet_load import parquet_load

        with parquet_load(url, tables, sort_by=sort_by, replace=replace, directory=parquet_dir) as loader:
            yield loader
        return
    names = [t.name for t in tables]
    backend = WAREHOUSE.parse(url).get_backend_name()
    if backend not in ("duckdb", "postgresql"):
        raise WarehouseError(
            f"The demo generator writes to DuckDB, PostgreSQL or Spark SQL, not '{backend}' ({mask_url(url)}).",
            "Generate into DuckDB, PostgreSQL or Parquet files (--parquet DIR) and load those with your "
            "warehouse's own loader.",
        )
    present = existing_tables(url)
    clash = [n for n in names if n.lower() in {p.lower() for p in present}]
    # The import log describes the data being replaced: it goes with it (a re-import must not be
    # refused as "already imported" into the rebuilt warehouse).
    own = [p for p in present if p.lower() == IMPORT_LOG_TABLE]
    foreign = sorted(p for p in present if p.lower() not in {n.lower() for n in names} and p not in own)
    if backend == "duckdb" and foreign:
        raise WarehouseError(
            f"{duckdb_path(url)} also holds tables MemberLens does not manage ({', '.join(foreign)}); "
            "building the demo there would delete them.",
            "Choose another file for the demo warehouse.",
        )
    if clash and not replace:
        raise WarehouseError(
            f"The warehouse already holds {', '.join(clash)} ({mask_url(url)}).",
            "Pass --replace to rebuild it (this deletes those tables), or choose another URL.",
        )
    if backend == "duckdb":
        with _duckdb_load(url, tables, sort_by or {}, memory_limit) as loader:
            yield loader
    else:
        with _postgres_load(url, tables, [*clash, *own]) as loader:
            yield loader


@contextmanager
def _duckdb_load(
    url: str, tables: Sequence[Table], sort_by: dict[str, tuple[str, ...]], memory_limit: str
) -> Iterator[DuckDBLoader]:
    path = duckdb_path(url)
    if path is None:
        raise WarehouseError("An in-memory DuckDB URL cannot hold a warehouse.", "Use duckdb:///path/to/file.duckdb.")
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(path.name + ".building")
    for leftover in (building, Path(str(building) + ".wal")):
        leftover.unlink(missing_ok=True)
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", memory_limit):  # it goes into SQL text below
        raise InputError(f"memory_limit must look like '3GB', got {memory_limit!r}")
    con = duckdb.connect(str(building))
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute("SET preserve_insertion_order = true")
        loader = DuckDBLoader(con, tables, sort_by)
        yield loader
        loader.finish()
        con.close()
        os.replace(building, path)
        Path(str(path) + ".wal").unlink(missing_ok=True)
    except BaseException:
        con.close()
        building.unlink(missing_ok=True)
        Path(str(building) + ".wal").unlink(missing_ok=True)
        raise


@contextmanager
def _postgres_load(url: str, tables: Sequence[Table], drop: Sequence[str]) -> Iterator[PostgresLoader]:
    engine = create_warehouse_engine(url, read_only=False)
    try:
        with engine.connect() as conn, conn.begin():
            for name in drop:
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
            loader = PostgresLoader(conn, tables)
            yield loader
            loader.finish()
    except driver_errors() as exc:
        raise explain_error(exc, url) from exc
    finally:
        engine.dispose()
