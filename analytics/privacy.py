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


# --- ages, exports ------------------------------------------------------------------------------------------------

def age_band(age: int | None) -> str | None:
    """An age as the band every page shows (``25-34``; the cluster portraits' bands): exact ages and birth dates are
    never shown, only to the member's own access request."""
    if age is None or pd.isna(age):
        return None
    from analytics.cluster_features import AGE_BANDS

    return next((label for lo, hi, label in AGE_BANDS if lo <= age < hi), None)


#: First characters that make a spreadsheet read a cell as a formula (OWASP's list: also tab and carriage return).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` in which every text cell a spreadsheet would run as a formula (``=HYPERLINK(...)``,
    ``+1+1``, ``-2+3``, ``@SUM(...)``) starts with a single quote instead, so it opens as the text it is. Numbers keep
    their sign (a number column is not text)."""
    safe = frame.copy()
    for column in safe.columns:
        values = safe[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            safe[column] = values.map(_neutral, na_action="ignore")
    safe.columns = [_neutral(str(c)) for c in safe.columns]
    return safe


def _neutral(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_csv(frame: pd.DataFrame) -> bytes:
    """``frame`` as CSV bytes with formulas neutralised (:func:`neutralise_formulas`): every CSV MemberLens lets
    someone download goes through here."""
    return neutralise_formulas(frame).to_csv(index=False).encode()


def pseudonymise(frame: pd.DataFrame, salt: str, column: str = "member_id") -> pd.DataFrame:
    """A copy of ``frame`` whose ``column`` holds a pseudonym instead of the member id: the first 16 hex digits of
    HMAC-SHA256(salt, id). Stable within one export (the same member, the same pseudonym; joins within the file
    still work), unrelated between exports (each has its own random ``salt``), and not reversible without it."""
    import hashlib
    import hmac

    key = salt.encode()
    out = frame.copy()
    if column in out.columns:
        out[column] = out[column].map(
            lambda v: "P" + hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()[:16], na_action="ignore")
    return out
