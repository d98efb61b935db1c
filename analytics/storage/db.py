"""Small helpers shared by every analysis: one way to get a connection and to read a frame."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import Connection, Engine, text
from sqlalchemy.sql import Executable

Bind = Engine | Connection
T = TypeVar("T")

#: Statements :func:`each_on_its_own_connection` runs at once: the warehouse's cores, not Python's, do the work.
CONCURRENT_STATEMENTS = 3


#: PostgreSQL's ``work_mem`` inside ``connection(sort_memory=True)``: the default 4MB sends a sort of a few million
#: keys to disk; the duplicate-key screen of 2.7M event ids took 1.2 s that way and 0.85 s in memory.
SORT_WORK_MEM = "64MB"


@contextmanager
def connection(bind: Bind, *, hash_joins: bool = False, sort_memory: bool = False) -> Iterator[Connection]:
    """Yield a connection: the one given, or a fresh one from the engine (closed afterwards).

    Analyses accept either, so a notebook can pass an engine while a caller that wants several
    queries to see one snapshot passes a connection.

    On PostgreSQL two settings apply to what runs inside (and are restored afterwards); other warehouses
    ignore them. ``hash_joins``: nested-loop joins off. PostgreSQL has no statistics for CTEs and
    window-function outputs and estimates their filtered rows at 1, then loops over the whole CTE once per
    row: a funnel on 2,000 demo members took 5.7 s that way and 47 ms with hash joins. ``sort_memory``:
    ``work_mem`` raised to :data:`SORT_WORK_MEM` for a statement that sorts a whole table.
    """
    settings = {**({"enable_nestloop": "off"} if hash_joins else {}),
                **({"work_mem": SORT_WORK_MEM} if sort_memory else {})}
    with _plain_connection(bind) as conn:
        if not settings or conn.dialect.name != "postgresql":
            yield conn
            return
        previous = {name: conn.execute(text("SELECT current_setting(:name)"), {"name": name}).scalar_one()
                    for name in settings}
        _set_locally(conn, settings)
        try:
            yield conn
        finally:
            if not conn.invalidated and conn.in_transaction():
                _set_locally(conn, previous)


def _set_locally(conn: Connection, settings: Mapping[str, str]) -> None:
    """``SET LOCAL`` each setting: until the end of the transaction."""
    for name, value in settings.items():
        conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})


@contextmanager
def _plain_connection(bind: Bind) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def read_frame(bind: Bind, statement: Executable, params: Mapping[str, Any] | None = None, *,
               hash_joins: bool = False) -> pd.DataFrame:
    """Run a query and return its rows as a DataFrame (column names from the query); ``hash_joins``
    as for :func:`connection`."""
    with connection(bind, hash_joins=hash_joins) as conn:
        result = conn.execute(statement, dict(params or {}))
        columns = list(result.keys())
        # Plain tuples: pandas inspects SQLAlchemy Row objects one by one (seconds for 500,000 rows).
        rows = [tuple(row) for row in result.fetchall()]
        return pd.DataFrame.from_records(rows, columns=columns, nrows=len(rows)) if rows else pd.DataFrame(
            {c: pd.Series(dtype=object) for c in columns})



def read_frame_columnar(bind: Bind, statement: Executable, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """As :func:`read_frame`, for large results (one row per member): DuckDB hands its columns over as
    arrays (1M rows x 30 columns in about a second, without a Python object per value); other
    warehouses go through :func:`read_frame`. DuckDB returns decimals as float64 here."""
    with connection(bind) as conn:
        if conn.dialect.name != "duckdb":
            return read_frame(conn, statement, params)
        result = conn.execute(statement, dict(params or {}))
        columns = list(result.keys())
        frame = result.cursor.fetch_df()
        result.close()
        frame.columns = columns
        return frame


def each_on_its_own_connection(bind: Bind, tasks: Sequence[Callable[[Connection], T]],
                               workers: int = CONCURRENT_STATEMENTS) -> list[T]:
    """Run independent read-only tasks (each given a connection) and return their results in order.

    Given an engine, up to ``workers`` tasks run at once, each on a connection of its own: a PostgreSQL session
    runs one statement on one core (``count(DISTINCT ...)`` never in parallel), so the Data quality page's dozen
    whole-table checks finish sooner side by side. Given a connection, they run one after the other on it (the
    caller wants one session). The first task's error is raised, as if they had run in order.
    """
    if isinstance(bind, Connection) or len(tasks) < 2 or workers < 2:
        with connection(bind) as conn:
            return [task(conn) for task in tasks]

    def run(task: Callable[[Connection], T]) -> T:
        with connection(bind) as conn:
            return task(conn)

    with ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="memberlens-sql") as pool:
        futures = [pool.submit(run, task) for task in tasks]
        return [future.result() for future in futures]
