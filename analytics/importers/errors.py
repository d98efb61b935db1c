"""The one exception importers raise for a file they will not load."""

from __future__ import annotations

import pandas as pd

REJECT_COLUMNS: tuple[str, ...] = ("sheet", "row", "column", "value", "reason")


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object" if c != "row" else "Int64") for c in REJECT_COLUMNS})


class ImportRefused(Exception):
    """The file was not imported, and the warehouse was not changed.

    ``problem`` says what is wrong in the user's terms, ``fix`` what to do about it; ``rejected``
    lists the offending rows (sheet, row, column, value, reason) where there are any.
    """

    def __init__(self, problem: str, fix: str = "", rejected: pd.DataFrame | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.rejected = rejected if rejected is not None else empty_rejects()
