"""Member exports: who may download which members, and what the file holds.

Every file of member rows MemberLens hands out (a page's CSV download, the command line's member lists) is made
here, so the rules are in one place:

* only roles allowed ``export_members`` get one (:mod:`analytics.access`);
* the members are those of the audience the user's scope allows (their regions and channels, nobody erased or
  objecting to profiling);
* names, phones and emails are masked; member ids are replaced by a pseudonym stable within the file (a fresh
  random key per export) unless the role may see ids (``export_ids``);
* text cells that a spreadsheet would run as formulas are neutralised (:func:`analytics.privacy.safe_csv`).

Writing the audit row is the caller's part (the app's ``ui.member_sets.export_members``, the CLI): it happens
before the file is handed over, and an export that cannot be logged does not happen.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from analytics.access import EXPORT_IDS, EXPORT_MEMBERS, Principal, allowed, require
from analytics.audiences import Audience
from analytics.filters import OPEN_SCOPE, Filters, Scope
from analytics.i18n import DEFAULT_LANGUAGE, N_, _, language
from analytics.member_rows import audience_rows
from analytics.privacy import pseudonymise, safe_csv
from analytics.storage.db import Bind

#: Member rows one user may export in a (UTC) day before the audit log raises a bulk-export alert.
BULK_EXPORT_ENV = "MEMBERLENS_BULK_EXPORT_ROWS"
DEFAULT_BULK_EXPORT_ROWS = 50_000


def bulk_export_rows() -> int:
    """The bulk-export alert threshold (``MEMBERLENS_BULK_EXPORT_ROWS``, default 50,000 rows per user per day)."""
    text = os.environ.get(BULK_EXPORT_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_BULK_EXPORT_ROWS


@dataclass(frozen=True)
class MemberExport:
    """The rows of one export and how they were made."""

    frame: pd.DataFrame
    pseudonymous: bool

    @property
    def rows(self) -> int:
        return len(self.frame)

    def csv(self, headers: Mapping[str, str] | None = None) -> bytes:
        """The file: CSV with formulas neutralised; ``headers`` renames columns for the reader (the Chinese file's
        headers, :func:`reader_headers`); without it, the columns keep their names in the contract."""
        return safe_csv(self.frame.rename(columns=dict(headers)) if headers else self.frame)

    def audit_detail(self, audience: Audience, page: str) -> dict[str, object]:
        """What the audit row records about this export."""
        return {"page": page, "audience": audience.kind, "source": audience.describe(), "rows": self.rows,
                "masked": True, "member_ids": "pseudonymous" if self.pseudonymous else "real"}


#: The member rows' columns as a reader names them, for files made in a language other than English.
EXPORT_HEADERS: dict[str, str] = {
    "member_id": N_("Member id"), "net_sales": N_("Net sales"), "orders": N_("Orders"),
    "last_order": N_("Last order"), "tier": N_("Tier"), "segment": N_("RFM segment"), "name": N_("Name"),
    "phone": N_("Phone"), "email": N_("Email"), "region": N_("Region"), "city": N_("City"),
    "registered_at": N_("Registered"), "points_balance": N_("Points"), "arm": N_("Arm"),
}


def reader_headers() -> dict[str, str]:
    """Column headers in the run's language: none in English (the file keeps the contract's column names, which
    scripts read), translated ones otherwise."""
    return {} if language() == DEFAULT_LANGUAGE else {column: _(text) for column, text in EXPORT_HEADERS.items()}


def member_export(bind: Bind, audience: Audience, principal: Principal, scope: Scope = OPEN_SCOPE,
                  window: Filters | None = None) -> MemberExport:
    """Every member of ``audience`` that ``scope`` allows, masked, valued over ``window`` (default: the audience's
    own) and in the same order as a page's preview, with the columns the audience adds (a campaign's arm), ids
    pseudonymised unless ``principal`` may export ids; AccessDenied unless they may export members."""
    require(principal, EXPORT_MEMBERS)
    rows = audience_rows(bind, audience, window, scope=scope)
    extra = audience.annotations(bind)
    if extra is not None:
        rows = rows.merge(extra, on="member_id", how="left")
    if allowed(principal, EXPORT_IDS):
        return MemberExport(rows, False)
    return MemberExport(pseudonymise(rows, secrets.token_hex(16)), True)
