"""Small helpers shared by every analysis: one way to get a connection and to read a frame."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine
from sqlalchemy.sql import Executable

Bind = Engine | Connection


@contextmanager
def connection(bind: Bind) -> Iterator[Connection]:
    """Yield a connection: the one given, or a fresh one from the engine (closed afterwards).

    Analyses accept either, so a notebook can pass an engine while a caller that wants several
    queries to see one snapshot passes a connection.
    """
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def read_frame(bind: Bind, statement: Executable, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run a query and return its rows as a DataFrame (column names from the query)."""
    with connection(bind) as conn:
        result = conn.execute(statement, dict(params or {}))
        columns = list(result.keys())
        # Plain tuples: pandas inspects SQLAlchemy Row objects one by one (seconds for 500,000 rows).
        rows = [tuple(row) for row in result.fetchall()]
        return pd.DataFrame.from_records(rows, columns=columns, nrows=len(rows)) if rows else pd.DataFrame(
            {c: pd.Series(dtype=object) for c in columns})

