"""One family of errors for every problem a user can act on.

Each carries ``problem`` (one line: what is wrong, in the user's terms) and ``fix`` (what to do about it, may
be empty). The app and the command line turn exactly these into messages; any other exception is a bug: the
app logs it with its traceback and shows one line with an error id, the CLI prints one line and exits 1.

* :class:`InputError` (also a ``ValueError``): input that is refused: settings out of range, a malformed
  audience (:class:`SpecError`), bad command-line arguments (:class:`UsageError`), too little data to answer.
* :class:`WarehouseError`: the warehouse cannot be used (URL, driver, server, password, missing tables).
* :class:`StateError`: the app-state database (saved audiences, audit log) cannot be used.
* :class:`ImportRefused`: a file that was not imported (nothing changed); ``rejected`` lists its bad rows.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

_LOG = logging.getLogger("memberlens")


class MemberLensError(Exception):
    """A problem explained for people: what is wrong (one line) and how to fix it."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return self.problem

    @property
    def message(self) -> str:
        """Problem and fix as one text, for places with room for one line."""
        return f"{self.problem} {self.fix}".strip()


class InputError(MemberLensError, ValueError):
    """Input refused: the message says what to change."""


class SpecError(InputError):
    """An audience definition that cannot be used; the message says what to change."""


class UsageError(InputError):
    """Bad command-line arguments: reported with exit status 2."""


class WarehouseError(MemberLensError):
    """The warehouse cannot be used."""


class StateError(MemberLensError):
    """The app-state database cannot be used."""


class ImportRefused(MemberLensError):
    """The file was not imported, and the warehouse was not changed.

    ``rejected`` lists the offending rows (sheet, row, column, value, reason) where there are any.
    """

    def __init__(self, problem: str, fix: str = "", rejected: Any = None) -> None:
        super().__init__(problem, fix)
        if rejected is None:
            from analytics.importers.errors import empty_rejects

            rejected = empty_rejects()
        self.rejected = rejected


def report_bug(exc: BaseException, where: str) -> str:
    """Log an unexpected exception with its traceback (the server's log, or the command line's log file) and
    return a short error id that the user is shown, so a report can be matched to the log."""
    error_id = uuid.uuid4().hex[:8]
    _LOG.error("unexpected failure %s in %s", error_id, where, exc_info=exc)
    return error_id
