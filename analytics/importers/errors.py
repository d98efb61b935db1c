"""The shape of the rows an import leaves out (the exception itself is :class:`analytics.errors.ImportRefused`)."""

from __future__ import annotations

import pandas as pd

REJECT_COLUMNS: tuple[str, ...] = ("sheet", "row", "column", "value", "reason")


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object" if c != "row" else "Int64") for c in REJECT_COLUMNS})
