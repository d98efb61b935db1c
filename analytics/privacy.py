"""Masking of personal data (names, phones, emails) wherever member rows are shown or exported.

Masked by default, as the programme's privacy rule requires; an analyst sees enough to tell rows
apart and to recognise a member they already know, never enough to contact one:

* **name**: the first character, then ``**`` (``张涵涵`` -> ``张**``, ``Wang Fang`` -> ``W**``);
* **phone**: at least half of it starred. 11 characters or more keep the first 3 and last 4
  (``18994935836`` -> ``189****5836``), 8 to 10 only the last 4 (``12345678`` -> ``****5678``),
  shorter ones only the last 2;
* **email**: the first character of the mailbox and the whole domain (``liyu@gmail.com`` ->
  ``l***@gmail.com``); text without ``@`` is masked as a name.

Missing values stay missing. Which columns are personal is defined once in
:data:`analytics.storage.contract.PII_COLUMNS`.
"""

from __future__ import annotations

import pandas as pd

from analytics.storage.contract import PII_COLUMNS

MASKED_MEMBER_COLUMNS: tuple[str, ...] = PII_COLUMNS["members"]


def mask_name(value: str | None) -> str | None:
    if value is None or pd.isna(value) or value == "":
        return value
    return value[0] + "**"


def mask_phone(value: str | None) -> str | None:
    if value is None or pd.isna(value) or value == "":
        return value
    text = str(value)
    if len(text) < 8:
        return "*" * max(len(text) - 2, 1) + text[-2:]
    if len(text) < 11:
        return "*" * (len(text) - 4) + text[-4:]
    return text[:3] + "*" * (len(text) - 7) + text[-4:]


def mask_email(value: str | None) -> str | None:
    if value is None or pd.isna(value) or value == "":
        return value
    mailbox, at, domain = str(value).partition("@")
    if not at:
        return mask_name(value)
    return (mailbox[:1] or "*") + "***@" + domain


MASKS = {"name": mask_name, "phone": mask_phone, "email": mask_email}


def mask_members(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every personal column it has (name, phone, email) masked."""
    masked = frame.copy()
    for column in MASKED_MEMBER_COLUMNS:
        if column in masked.columns:
            masked[column] = masked[column].map(MASKS[column], na_action="ignore")
    return masked
