"""Members' rights under PIPL (and the acceptance plan): access, correction, erasure, objection to profiling, and
retention periods.

Each request is recorded in the app-state database (:mod:`analytics.storage.privacy_store`) with the signed-in
privacy officer or admin who recorded it, and written to the audit log in the same transaction:

* **Access / copy** (:func:`access_package`): every row MemberLens can find of the member, in every warehouse
  table linked to members (found from the contract's declared references, so a table added to the contract is
  included without a change here) and in the app-state database (their requests, their suppression entries, the
  audit events that name them), as JSON and as CSV files in one ZIP.
* **Erasure** (:func:`erase_member`): the member goes on the suppression list at once; from then on no member
  list, audience, export, model or recommendation contains them, and no analysis counts their rows (every analysis
  reads the list through :class:`analytics.filters.Scope`). In the embedded DuckDB warehouse their rows are deleted
  from every member-linked table; for an external warehouse the request stays ``pending_owner`` and appears in the
  file of pending changes for its owner (:func:`pending_for_owner`).
* **Correction** (:func:`correct_member`): recorded; applied to ``members`` in the embedded warehouse, pending
  for the owner otherwise.
* **Objection to profiling** (:func:`object_to_profiling`, and :func:`withdraw_objection`): the member is left out
  of segments, clusters, tags, basket rules, targeting and every member list (aggregates still count them).
* **Retention** (:class:`RetentionPolicy`, :func:`retention_report`, :func:`purge`): inactive members' personal
  data, audit rows, saved audience versions and uploaded files past their period; purging anonymises, deletes and
  removes them (audit rows younger than :data:`~analytics.storage.appstate.MIN_AUDIT_RETENTION_DAYS` never).
"""

from __future__ import annotations

import io
import json
import os
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Boolean, Date, Engine, Select, Table, delete, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from analytics.access import ERASE_MEMBER, PRIVACY_REQUESTS, PURGE, Principal, require
from analytics.errors import InputError
from analytics.filters import check_year
from analytics.i18n import N_, _
from analytics.storage import contract
from analytics.storage.appstate import (
    MIN_AUDIT_RETENTION_DAYS,
    _database_errors,
    _write_transaction,
    audit_log,
    saved_audiences,
    write_event,
)
from analytics.storage.databases import data_dir, secrets_paths
from analytics.storage.db import Bind, connection, read_frame
from analytics.storage.locks import warehouse_write_lock
from analytics.storage.privacy_store import (
    ACCESS,
    CORRECTION,
    ERASED,
    ERASURE,
    OBJECTED,
    OBJECTION,
    WITHDRAWAL,
    PrivacyError,
    check_member_id,
    complete_request,
    privacy_requests,
    record_request,
    requests,
    suppressed_members,
)
from analytics.storage.warehouse import create_warehouse_engine, duckdb_path, explain_error

#: Columns of ``members`` a correction may change, and how their values are read.
CORRECTABLE: tuple[str, ...] = ("name", "phone", "email", "gender", "birth_date", "city", "region",
                                "consent_email", "consent_sms", "consent_push")
#: How each correctable column is named on screen (translated where shown, with ``_``).
CORRECTABLE_LABELS: dict[str, str] = {
    "name": N_("Name"), "phone": N_("Phone"), "email": N_("Email address"), "gender": N_("Gender"),
    "birth_date": N_("Birth date"), "city": N_("City"), "region": N_("Region"),
    "consent_email": N_("Consent to email"), "consent_sms": N_("Consent to SMS"),
    "consent_push": N_("Consent to push notifications"),
}
#: Personal data anonymised when a member has been inactive past the retention period.
PERSONAL_COLUMNS: tuple[str, ...] = ("name", "phone", "email", "birth_date")
MAX_TEXT = 200


# --- which rows are a member's ------------------------------------------------------------------------------

def member_tables() -> list[tuple[Table, str, str | None]]:
    """Every warehouse table holding rows about a member, found from the contract's references: ``(table, column,
    via)``: the table's ``column`` names the member directly (``via`` None) or names a row of table ``via`` that is
    the member's (order lines through their orders). In dependency order: a table before the tables it needs."""
    found: dict[str, tuple[Table, str, str | None]] = {"members": (contract.members, "member_id", None)}
    changed = True
    while changed:
        changed = False
        for table in contract.WAREHOUSE_TABLES:
            if table.name in found:
                continue
            refs = contract.references(table)
            direct = [column for column, (parent, _key) in refs if parent == "members"]
            linked = [(column, parent) for column, (parent, _key) in refs if parent in found and parent != "members"]
            if direct:
                found[table.name] = (table, direct[0], None)
                changed = True
            elif linked:
                found[table.name] = (table, linked[0][0], linked[0][1])
                changed = True
    return list(found.values())


def _rows_of(table: Table, column: str, via: str | None, member_id: str) -> Any:
    """The condition selecting ``table``'s rows of the member."""
    if via is None:
        return table.c[column] == member_id
    parent = contract.TABLE_BY_NAME[via]
    parent_table, parent_column, _via = next(t for t in member_tables() if t[0].name == via)
    key = dict(contract.references(table))[column][1]
    return table.c[column].in_(select(parent.c[key]).where(parent_table.c[parent_column] == member_id))


def member_selects(member_id: str) -> dict[str, Select]:
    """Per member-linked warehouse table, the select of the member's rows (every column)."""
    return {table.name: select(table).where(_rows_of(table, column, via, member_id))
            for table, column, via in member_tables()}


# --- access ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AccessPackage:
    """Everything MemberLens knows about one member: per warehouse table and per app-state table, their rows."""

    member_id: str
    generated_at: datetime
    warehouse: dict[str, pd.DataFrame]
    app_state: dict[str, pd.DataFrame]

    @property
    def rows(self) -> int:
        return sum(len(f) for f in (*self.warehouse.values(), *self.app_state.values()))

    def to_dict(self) -> dict[str, Any]:
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))

        return {"member_id": self.member_id, "generated_at": self.generated_at.isoformat() + "Z",
                "about": _("Everything MemberLens holds about this member: the shop's warehouse tables and "
                           "MemberLens's own records (privacy requests, suppression list, audit events naming the "
                           "member)."),
                "warehouse": {name: records(frame) for name, frame in self.warehouse.items()},
                "memberlens": {name: records(frame) for name, frame in self.app_state.items()}}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2).encode()

    def to_zip(self) -> bytes:
        """``member.json`` and one CSV per table (``warehouse/orders.csv``, ``memberlens/audit_log.csv`` ...)."""
        from analytics.privacy import safe_csv

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("member.json", self.to_json())
            for folder, tables in (("warehouse", self.warehouse), ("memberlens", self.app_state)):
                for name, frame in tables.items():
                    archive.writestr(f"{folder}/{name}.csv", safe_csv(frame))
        return buffer.getvalue()


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def access_package(bind: Bind, state: Engine, by: Principal, member_id: str, *, record: bool = True) -> AccessPackage:
    """The member's access package (unmasked: it is theirs); recorded as an ``access`` request and written to the
    audit log (``access_package`` with the rows handed over) before it is returned."""
    require(by, PRIVACY_REQUESTS)
    clean = check_member_id(member_id)
    warehouse = {name: read_frame(bind, query) for name, query in member_selects(clean).items()}
    pattern = "%" + _like_literal(json.dumps({"member": clean}, ensure_ascii=False)[1:-1]) + "%"
    a = audit_log.c
    with _database_errors(state):
        own = {
            "privacy_requests": read_frame(state, select(privacy_requests)
                                           .where(privacy_requests.c.member_id == clean)
                                           .order_by(privacy_requests.c.request_id)),
            "suppressed_members": read_frame(state, select(suppressed_members)
                                             .where(suppressed_members.c.member_id == clean)),
            "audit_log": read_frame(state, select(audit_log).where(a.detail.like(pattern, escape="\\"))
                                    .order_by(a.event_id)),
        }
    package = AccessPackage(clean, datetime.now(UTC).replace(tzinfo=None), warehouse, own)
    if record:
        request_id = record_request(state, by.identity, clean, ACCESS, "done",
                                    {"rows": package.rows,
                                     "tables": {n: len(f) for n, f in {**warehouse, **own}.items()}})
        with _database_errors(state), _write_transaction(state) as conn:
            write_event(conn, by.identity, "access_package", {"member": clean, "request_id": request_id},
                        page="privacy_requests", rows=package.rows)
    return package


# --- changing the embedded warehouse ------------------------------------------------------------------------

def is_embedded(url: str) -> bool:
    """Whether MemberLens may change the warehouse itself for a request: a DuckDB file (the embedded warehouse)."""
    return duckdb_path(url) is not None


def _writer(url: str) -> Engine:
    return create_warehouse_engine(url, read_only=False)


def _delete_member_rows(url: str, member_id: str) -> dict[str, int]:
    """Delete the member's rows from every member-linked table of the embedded warehouse, in one transaction."""
    engine = _writer(url)
    counts: dict[str, int] = {}
    try:
        with warehouse_write_lock(url, "the erasure"), engine.begin() as conn:
            present = {r[0] for r in conn.exec_driver_sql("SELECT table_name FROM information_schema.tables")}
            for table, column, via in reversed(member_tables()):  # lines before their orders
                if table.name in present:
                    counts[table.name] = conn.execute(delete(table).where(
                        _rows_of(table, column, via, member_id))).rowcount
    except SQLAlchemyError as exc:
        raise explain_error(exc, url) from exc
    finally:
        engine.dispose()
    return {name: max(int(n), 0) for name, n in counts.items()}


@dataclass(frozen=True)
class RequestResult:
    """What a request did: its id, status, and rows changed per table (empty when pending for the owner)."""

    request_id: int
    status: str
    changed: dict[str, int]


def erase_member(url: str, state: Engine, by: Principal, member_id: str, reference: str = "") -> RequestResult:
    """Erase a member: suppressed from the moment this returns (or fails after recording), their rows deleted in the
    embedded warehouse, pending for the owner of an external one. ``reference`` is the member's own reference for
    the request (kept in its detail)."""
    require(by, ERASE_MEMBER)
    clean = check_member_id(member_id)
    detail = {"reference": reference[:MAX_TEXT]} if reference else {}
    request_id = record_request(state, by.identity, clean, ERASURE, "pending_owner", detail, suppress=ERASED)
    if not is_embedded(url):
        return RequestResult(request_id, "pending_owner", {})
    changed = _delete_member_rows(url, clean)
    complete_request(state, by.identity, request_id, "done", {"deleted": changed})
    return RequestResult(request_id, "done", changed)


def _correction_value(column: str, value: object) -> object:
    if column not in CORRECTABLE:
        raise PrivacyError(_("{column} cannot be corrected here; correctable: {columns}.").format(
            column=repr(column), columns=", ".join(CORRECTABLE)))
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = contract.members.c[column].type
    if isinstance(kind, Boolean):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false", "yes", "no", "1", "0"):
            raise PrivacyError(_("{column} is yes or no, not {value}.").format(column=column, value=repr(value)))
        return text in ("true", "yes", "1")
    if isinstance(kind, Date):
        try:
            day = value if isinstance(value, date) else date.fromisoformat(str(value).strip())
        except ValueError:
            raise PrivacyError(_("{column} is a date YYYY-MM-DD, not {value}.").format(
                column=column, value=repr(value))) from None
        try:
            return check_year(day, column)
        except InputError as problem:
            raise PrivacyError(str(problem)) from None
    text = str(value).strip()
    if len(text) > MAX_TEXT or "\x00" in text:
        raise PrivacyError(_("{column} has at most {n} characters.").format(column=column, n=MAX_TEXT))
    return text


def correct_member(url: str, state: Engine, by: Principal, member_id: str, changes: Mapping[str, object],
                   reference: str = "") -> RequestResult:
    """Record a correction of the member's ``members`` row (``changes``: column -> new value); applied to the
    embedded warehouse, pending for the owner otherwise."""
    require(by, PRIVACY_REQUESTS)
    clean = check_member_id(member_id)
    if not changes:
        raise PrivacyError(_("Name at least one value to correct."))
    values = {column: _correction_value(column, value) for column, value in changes.items()}
    shown = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}
    detail = {"changes": shown, **({"reference": reference[:MAX_TEXT]} if reference else {})}
    request_id = record_request(state, by.identity, clean, CORRECTION, "pending_owner", detail)
    if not is_embedded(url):
        return RequestResult(request_id, "pending_owner", {})
    engine = _writer(url)
    try:
        with warehouse_write_lock(url, "the correction"), engine.begin() as conn:
            changed = conn.execute(update(contract.members).where(contract.members.c.member_id == clean)
                                   .values(**values)).rowcount
    except SQLAlchemyError as exc:
        raise explain_error(exc, url) from exc
    finally:
        engine.dispose()
    if not changed:
        complete_request(state, by.identity, request_id, "refused", {"why": "no such member in the warehouse"})
        return RequestResult(request_id, "refused", {})
    complete_request(state, by.identity, request_id, "done", {"updated": {"members": int(changed)}})
    return RequestResult(request_id, "done", {"members": int(changed)})


def object_to_profiling(state: Engine, by: Principal, member_id: str, reference: str = "") -> RequestResult:
    """The member objects to profiling: left out of segments, models, targeting and member lists from now on."""
    require(by, PRIVACY_REQUESTS)
    detail = {"reference": reference[:MAX_TEXT]} if reference else {}
    request_id = record_request(state, by.identity, check_member_id(member_id), OBJECTION, "done", detail,
                                suppress=OBJECTED)
    return RequestResult(request_id, "done", {})


def withdraw_objection(state: Engine, by: Principal, member_id: str, reference: str = "") -> RequestResult:
    """The member withdraws their objection to profiling."""
    require(by, PRIVACY_REQUESTS)
    detail = {"reference": reference[:MAX_TEXT]} if reference else {}
    request_id = record_request(state, by.identity, check_member_id(member_id), WITHDRAWAL, "done", detail,
                                lift=OBJECTED)
    return RequestResult(request_id, "done", {})


def pending_for_owner(state: Engine) -> pd.DataFrame:
    """The file for an external warehouse's owner: every erasure and correction MemberLens honours but could not
    apply itself (``request_id, kind, member_id, recorded_at, changes``), oldest first. An erasure means deleting the
    member's rows from every table :func:`member_tables` names."""
    frame = requests(state, status="pending_owner", limit=1_000_000)
    frame = frame[frame["kind"].isin([ERASURE, CORRECTION])].sort_values("request_id")
    changes = frame["detail"].map(lambda text: json.dumps(json.loads(text or "{}").get("changes", {}),
                                                          ensure_ascii=False, sort_keys=True))
    out = frame[["request_id", "kind", "member_id", "recorded_at"]].assign(changes=changes.where(
        frame["kind"] == CORRECTION, ""))
    return out.reset_index(drop=True)


# --- retention ------------------------------------------------------------------------------------------------

RETENTION_ENV = "MEMBERLENS_RETENTION_"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long MemberLens keeps what (days). Configure with ``MEMBERLENS_RETENTION_<FIELD>`` (e.g.
    ``MEMBERLENS_RETENTION_INACTIVE_MEMBER_DAYS=730``) or ``[memberlens.retention]`` in ``.streamlit/secrets.toml``.

    * ``inactive_member_days``: a member with no order, event or registration for this long has their personal data
      (name, phone, email, birth date) anonymised;
    * ``audit_days``: audit rows (at least :data:`MIN_AUDIT_RETENTION_DAYS`);
    * ``saved_audience_days``: saved audience versions;
    * ``upload_days``: files uploaded on the Import data page (``data/uploads/``)."""

    inactive_member_days: int = 3 * 365
    audit_days: int = 3 * 365
    saved_audience_days: int = 2 * 365
    upload_days: int = 30

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 36_500:
                raise InputError(_("Retention {name} must be a whole number of days from 1 to 36,500.").format(
                    name=item.name))
        if self.audit_days < MIN_AUDIT_RETENTION_DAYS:
            raise InputError(_("Audit rows are kept at least {minimum} days; audit_days is {days}.").format(
                minimum=MIN_AUDIT_RETENTION_DAYS, days=self.audit_days))


def retention_policy(environ: Mapping[str, str] | None = None, paths: Sequence[Path] | None = None) -> RetentionPolicy:
    """The configured policy (environment first, then secrets, then the defaults)."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for path in secrets_paths() if paths is None else paths:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        section = data.get("memberlens", {}).get("retention", {}) if isinstance(data.get("memberlens"), dict) else {}
        values |= {k: v for k, v in section.items() if k in {f.name for f in fields(RetentionPolicy)}}
    for item in fields(RetentionPolicy):
        text = env.get(RETENTION_ENV + item.name.upper(), "").strip()
        if text:
            if not text.isdigit():
                raise InputError(_("{variable}={value} is not a number of days.").format(
                    variable=RETENTION_ENV + item.name.upper(), value=repr(text)))
            values[item.name] = int(text)
    return RetentionPolicy(**values)


def _cutoff(today: date, days: int) -> datetime:
    return datetime.combine(today - timedelta(days=days), time())


def _inactive_members(cutoff: datetime, dialect: str) -> Any:
    """Conditions on ``members``: no order, no event and no registration since ``cutoff``, and personal data left.
    ``NOT EXISTS``, not ``NOT IN``: PostgreSQL runs a ``NOT IN`` over millions of events row by row once the
    subquery outgrows ``work_mem`` (the Privacy page's retention tab ran for minutes at 50,000 members). On
    PostgreSQL (``dialect``) the recent events are grouped by member first: version 15 hashes the inner side of an
    anti-join, and a hash of 2.4M events spilled in 32 batches (1.1-1.4 s at 50,000 members) where one of their
    50,000 members takes 0.6 s. DuckDB picks the side to hash itself, and the grouping would only add to it (1M
    members: 1.6-2.4 s as it is, 2.5-3.4 s grouped)."""
    m, o, e = contract.members.c, contract.orders.c, contract.events.c
    recent_orders = select(o.member_id).where(o.member_id == m.member_id, o.ordered_at >= cutoff)
    if dialect == "postgresql":
        active = select(e.member_id).where(e.occurred_at >= cutoff).group_by(e.member_id).subquery("active")
        recent_events = select(active.c.member_id).where(active.c.member_id == m.member_id)
    else:
        recent_events = select(e.member_id).where(e.member_id == m.member_id, e.occurred_at >= cutoff)
    return [m.registered_at < cutoff, ~recent_orders.exists(), ~recent_events.exists(),
            or_(*(m[c].is_not(None) for c in PERSONAL_COLUMNS))]


def uploads_folder() -> Path:
    return data_dir() / "uploads"


def _old_uploads(folder: Path, cutoff: datetime) -> list[Path]:
    if not folder.is_dir():
        return []
    limit = cutoff.replace(tzinfo=UTC).timestamp()
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime < limit)


def retention_report(bind: Bind, state: Engine, policy: RetentionPolicy, today: date,
                     uploads: Path | None = None) -> pd.DataFrame:
    """What is past its retention period today: ``item, period_days, past_period, oldest, purge`` (what purging
    does), one row per kind of data."""
    folder = uploads or uploads_folder()
    m = contract.members.c
    member_cut = _cutoff(today, policy.inactive_member_days)
    with connection(bind) as conn:
        inactive = conn.execute(select(func.count(), func.min(m.registered_at))
                                .where(*_inactive_members(member_cut, conn.dialect.name))).one()
    audit_cut = _cutoff(today, policy.audit_days)
    saved_cut = _cutoff(today, policy.saved_audience_days)
    with _database_errors(state), state.connect() as conn:
        audit = conn.execute(select(func.count(), func.min(audit_log.c.at)).where(audit_log.c.at < audit_cut)).one()
        saved = conn.execute(select(func.count(), func.min(saved_audiences.c.created_at))
                             .where(saved_audiences.c.created_at < saved_cut)).one()
    files = _old_uploads(folder, _cutoff(today, policy.upload_days))
    oldest_file = (datetime.fromtimestamp(min(p.stat().st_mtime for p in files), UTC).replace(tzinfo=None)
                   if files else None)
    return pd.DataFrame([
        {"item": N_("inactive members' personal data"), "period_days": policy.inactive_member_days,
         "past_period": int(inactive[0]), "oldest": inactive[1],
         "purge": N_("name, phone, email and birth date set empty (embedded warehouse); listed for the owner "
                     "otherwise")},
        {"item": N_("audit log rows"), "period_days": policy.audit_days, "past_period": int(audit[0]),
         "oldest": audit[1], "purge": N_("deleted")},
        {"item": N_("saved audience versions"), "period_days": policy.saved_audience_days,
         "past_period": int(saved[0]), "oldest": saved[1], "purge": N_("deleted")},
        {"item": N_("uploaded files"), "period_days": policy.upload_days, "past_period": len(files),
         "oldest": oldest_file, "purge": N_("deleted")},
    ])


@dataclass(frozen=True)
class PurgeResult:
    anonymised_members: int
    members_for_owner: pd.DataFrame  # member_id of inactive members an external warehouse's owner must anonymise
    audit_rows: int
    saved_audiences: int
    uploads: int


def purge(url: str, bind: Bind, state: Engine, by: Principal, policy: RetentionPolicy, today: date,
          uploads: Path | None = None) -> PurgeResult:
    """Apply the retention policy as of ``today`` (see :func:`retention_report`); audited as ``retention_purge``."""
    require(by, PURGE)
    folder = uploads or uploads_folder()
    member_cut = _cutoff(today, policy.inactive_member_days)
    m = contract.members.c
    owner = pd.DataFrame({"member_id": pd.Series(dtype=object)})
    anonymised = 0
    if is_embedded(url):
        engine = _writer(url)
        try:
            with warehouse_write_lock(url, "the purge"), engine.begin() as conn:
                inactive = _inactive_members(member_cut, conn.dialect.name)
                anonymised = conn.execute(update(contract.members).where(*inactive)
                                          .values(**{c: None for c in PERSONAL_COLUMNS})).rowcount
        except SQLAlchemyError as exc:
            raise explain_error(exc, url) from exc
        finally:
            engine.dispose()
    else:
        owner = read_frame(bind, select(m.member_id).where(*_inactive_members(member_cut, bind.dialect.name))
                           .order_by(m.member_id))
    with _database_errors(state), _write_transaction(state) as conn:
        audit_rows = conn.execute(delete(audit_log).where(audit_log.c.at < _cutoff(today, policy.audit_days))).rowcount
        saved = conn.execute(delete(saved_audiences).where(
            saved_audiences.c.created_at < _cutoff(today, policy.saved_audience_days))).rowcount
    removed = 0
    for path in _old_uploads(folder, _cutoff(today, policy.upload_days)):
        try:
            path.unlink()
            removed += 1
        except OSError:
            continue
    result = PurgeResult(max(int(anonymised), 0), owner, max(int(audit_rows), 0), max(int(saved), 0), removed)
    with _database_errors(state), _write_transaction(state) as conn:
        write_event(conn, by.identity, "retention_purge", {
            "today": today.isoformat(), "policy": {f.name: getattr(policy, f.name) for f in fields(policy)},
            "anonymised_members": result.anonymised_members, "members_for_owner": len(owner),
            "audit_rows": result.audit_rows, "saved_audiences": result.saved_audiences, "uploads": removed},
            page="privacy_requests", rows=result.anonymised_members)
    return result
