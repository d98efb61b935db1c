"""Bulk loading into Parquet files, and from there into Apache Spark SQL tables.

Spark's Thrift Server takes ``INSERT ... VALUES`` at about a second per row, so the demo generator
never sends rows through it. Instead (the way data reaches Spark in practice):

1. every batch is written as a Parquet file into a staging folder (pyarrow);
2. at the end each table is written once, fact tables in sort-key order (:data:`analytics.storage.contract.SORT_KEYS`,
   so Parquet row-group statistics let Spark skip row groups outside a date range), by DuckDB reading
   the staged files (it sorts larger-than-memory data on disk); the finished folders replace the old
   ones only when all tables are written;
3. a DDL script ``create_tables.sql`` is written next to them (``CREATE TABLE ... USING parquet
   LOCATION ...`` with the contract's column types), and, given a ``sparksql://`` URL, run on the server.

The Parquet folder must be readable by the Spark server under the same path: on one machine (a trial
Thrift Server) any local folder is; on a cluster, write to shared storage or copy the folder and pass
the location the cluster sees (``location``). SQL text here holds only contract identifiers, folder
paths (as quoted string literals) and DuckDB settings, never user data.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Table, create_engine

from analytics.errors import WarehouseError
from analytics.storage.databases import WAREHOUSE, data_dir, mask_url
from analytics.storage.warehouse import explain_error

#: The DDL script written next to the tables.
DDL_FILE = "create_tables.sql"
#: Rows per Parquet row group in the finished files (DuckDB's default; Spark skips whole row groups).
ROW_GROUP_ROWS = 122_880
#: Size at which a table's output is split into another file.
FILE_BYTES = "256MB"


def default_parquet_dir(url: str) -> Path:
    """Where a ``sparksql://`` demo build writes its Parquet files when no folder is given:
    ``data/spark/<database>`` (right for a Thrift Server on the same machine)."""
    database = WAREHOUSE.parse(url).database or "default"
    return data_dir() / "spark" / database


def sql_path_literal(location: str) -> str:
    """A location as a Spark SQL string literal (backslashes and quotes escaped)."""
    from analytics.storage.spark_dialect import quote_string

    return quote_string(location)


def location_uri(directory: Path) -> str:
    """The ``file:`` URI of a local folder (a bare path would resolve against a cluster's HDFS)."""
    return directory.resolve().as_uri()


def spark_ddl(tables: Sequence[Table], database: str | None, location: str) -> list[str]:
    """``CREATE TABLE`` statements for Parquet tables under ``location`` (``location/<table>``), typed
    as the contract says (``DECIMAL(14,2)``, ``TIMESTAMP_NTZ``, ``DATE``)."""
    from analytics.storage.spark_dialect import SparkDialect

    dialect = SparkDialect()
    quote = dialect.identifier_preparer.quote_identifier
    prefix = f"{quote(database)}." if database else ""
    statements = []
    for table in tables:
        columns = ", ".join(f"{quote(c.name)} {dialect.type_compiler_instance.process(c.type)}" for c in table.columns)
        where = sql_path_literal(f"{location.rstrip('/')}/{table.name}")
        statements.append(f"CREATE TABLE {prefix}{quote(table.name)} ({columns}) USING parquet LOCATION {where}")
    return statements


class ParquetLoader:
    """Stages appended Arrow tables as Parquet files; :meth:`finish` writes each table once, in order."""

    def __init__(self, staging: Path, tables: Sequence[Table], sort_by: dict[str, tuple[str, ...]]) -> None:
        self.staging = staging
        self.tables = {t.name: t for t in tables}
        self.sort_by = sort_by
        self.parts: dict[str, int] = {}

    def append(self, table: str, data: pa.Table) -> None:
        if table not in self.tables:
            raise ValueError(f"{table} is not one of the tables being loaded")
        folder = self.staging / "_stage" / table
        folder.mkdir(parents=True, exist_ok=True)
        part = self.parts.get(table, 0)
        pq.write_table(data, folder / f"part-{part:05d}.parquet", compression="zstd")
        self.parts[table] = part + 1

    def finish(self, memory_limit: str = "2GB") -> None:
        con = duckdb.connect()
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute("SET preserve_insertion_order = true")
            con.execute(f"SET memory_limit = {_duck_string(memory_limit)}")
            con.execute(f"SET temp_directory = {_duck_string(str(self.staging / '_spill'))}")
            types = create_engine("duckdb:///:memory:").dialect.type_compiler_instance
            for name, table in self.tables.items():
                target = self.staging / name
                casts = ", ".join(f'CAST("{c.name}" AS {types.process(c.type)}) AS "{c.name}"' for c in table.columns)
                if self.parts.get(name):
                    source = f"read_parquet({_duck_string(str(self.staging / '_stage' / name / '*.parquet'))})"
                    order = ", ".join(f'"{c}"' for c in self.sort_by.get(name, ()))
                    query = f"SELECT {casts} FROM {source}" + (f" ORDER BY {order}" if order else "")
                else:  # an empty table still gets a file with its columns
                    nulls = ", ".join(f'CAST(NULL AS {types.process(c.type)}) AS "{c.name}"' for c in table.columns)
                    query = f"SELECT {nulls} LIMIT 0"
                con.execute(f"COPY ({query}) TO {_duck_string(str(target))} (FORMAT parquet, COMPRESSION zstd, "
                            f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}, FILE_SIZE_BYTES '{FILE_BYTES}', "
                            "FILENAME_PATTERN 'data_{i}')")
        finally:
            con.close()
        shutil.rmtree(self.staging / "_stage", ignore_errors=True)
        shutil.rmtree(self.staging / "_spill", ignore_errors=True)


def _duck_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def parquet_load(url: str | None, tables: Sequence[Table], *, sort_by: dict[str, tuple[str, ...]] | None = None,
                 replace: bool = False, directory: str | Path | None = None,
                 location: str | None = None) -> Iterator[ParquetLoader]:
    """Write ``tables`` as Parquet folders under ``directory`` and, for a ``sparksql://`` ``url``, define
    them on the server (``CREATE TABLE ... USING parquet LOCATION``); nothing changes on failure.

    ``location`` is the folder as the Spark server sees it (default: ``directory``'s ``file:`` URI).
    Without ``replace``, existing table folders or Spark tables of the same names are an error.
    """
    if url is None and directory is None:
        raise ValueError("Give a sparksql:// URL, a Parquet folder, or both.")
    backend = WAREHOUSE.parse(url).get_backend_name() if url else None
    if url is not None and backend != "sparksql":
        raise WarehouseError(f"Parquet output defines tables on Spark SQL only, not on '{backend}' ({mask_url(url)}).",
                             "Leave out --url to write only the Parquet files, or give a sparksql:// URL.")
    folder = Path(directory).expanduser().resolve() if directory is not None else default_parquet_dir(url or "")
    names = [t.name for t in tables]
    present = [n for n in names if (folder / n).exists()]
    if present and not replace:
        raise WarehouseError(f"{folder} already holds Parquet tables ({', '.join(present)}).",
                             "Pass --replace to rebuild them, or choose another folder.")
    spark_tables: list[str] = []
    database = WAREHOUSE.parse(url).database if url else None
    if url is not None:
        spark_tables = _spark_existing(url, names)
        if spark_tables and not replace:
            raise WarehouseError(f"The warehouse already holds {', '.join(spark_tables)} ({mask_url(url)}).",
                                 "Pass --replace to redefine them (their old files stay where they are), "
                                 "or choose another database.")
    folder.mkdir(parents=True, exist_ok=True)
    building = folder / ".building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        loader = ParquetLoader(building, tables, sort_by or {})
        yield loader
        loader.finish()
        for name in names:  # the new folders replace the old ones only once every table is written
            old = folder / name
            if old.exists():
                shutil.rmtree(old)
            os.replace(building / name, old)
        shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    statements = spark_ddl(tables, database, location or location_uri(folder))
    (folder / DDL_FILE).write_text(";\n".join(statements) + ";\n", encoding="utf-8")
    if url is not None:
        _define_tables(url, database, names, statements)


def _admin_engine(url: str):
    """A writing engine on the server's ``default`` database (the target database may not exist yet)."""
    from analytics.storage.warehouse import create_warehouse_engine

    parsed = WAREHOUSE.parse(url)
    return create_warehouse_engine(parsed.set(database="default").render_as_string(hide_password=False),
                                   read_only=False)


def _spark_existing(url: str, names: Sequence[str]) -> list[str]:
    engine = _admin_engine(url)
    database = WAREHOUSE.parse(url).database or "default"
    try:
        with engine.connect() as conn:
            schemas = {r[0].lower() for r in conn.exec_driver_sql("SHOW DATABASES")}
            if database.lower() not in schemas:
                return []
            found = {n.lower() for n in conn.dialect.get_table_names(conn, schema=database)}
        return [n for n in names if n.lower() in found]
    except Exception as exc:
        raise explain_error(exc, url) from exc
    finally:
        engine.dispose()


def _define_tables(url: str, database: str | None, names: Sequence[str], statements: Sequence[str]) -> None:
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote_identifier
            if database:
                conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {quote(database)}")
            prefix = f"{quote(database)}." if database else ""
            for name in names:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}{quote(name)}")
            for statement in statements:
                conn.exec_driver_sql(statement)
    except Exception as exc:
        raise explain_error(exc, url) from exc
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analytics.storage.parquet_load --location URI [--database DB]``: print the Spark DDL for demo Parquet
    folders that were copied to ``URI`` (a cluster's HDFS, S3 or shared folder), to run with beeline or spark-sql."""
    import argparse

    from analytics.synthetic.build import DEMO_TABLES

    parser = argparse.ArgumentParser(prog="python -m analytics.storage.parquet_load", description=main.__doc__)
    parser.add_argument("--location", required=True, help="where the table folders are, as the cluster sees it "
                        "(e.g. s3a://bucket/memberlens or hdfs:///warehouse/memberlens)")
    parser.add_argument("--database", help="database to create the tables in (default: the session's)")
    args = parser.parse_args(argv)
    for statement in spark_ddl(DEMO_TABLES, args.database, args.location):
        print(statement + ";")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
