"""Members' privacy requests and the suppression list, in the app-state database.

* ``privacy_requests``: every request a privacy officer recorded (access, correction, erasure, objection to
  profiling, withdrawal of an objection), with who recorded it, when, its status and what was done.
* ``suppressed_members``: the members MemberLens must leave out, from the moment a request is recorded: ``erased``
  members out of everything (every analysis, list, audience, export, model and recommendation), ``objected``
  members out of segments, models and targeting. Kept after the warehouse rows are gone, so a later import of an
  old file cannot bring an erased member back into any result.

The list is read on every page run (it is small: at most :data:`analytics.filters.MAX_EXCLUDED` members) and
travels into the SQL of every analysis as one bound list (:class:`analytics.filters.Scope`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)

from analytics.errors import InputError
from analytics.filters import MAX_EXCLUDED
from analytics.i18n import _
from analytics.storage.appstate import (
    _database_errors,
    _to_json,
    _utc_now,
    _write_transaction,
    state_metadata,
    write_event,
)
from analytics.storage.db import read_frame

ACCESS, CORRECTION, ERASURE, OBJECTION, WITHDRAWAL = "access", "correction", "erasure", "objection", "withdrawal"
REQUEST_KINDS: tuple[str, ...] = (ACCESS, CORRECTION, ERASURE, OBJECTION, WITHDRAWAL)
#: done: carried out; pending_owner: recorded and honoured by MemberLens, the warehouse's owner must still delete or
#: correct the rows (an external warehouse); refused: not carried out (the detail says why).
STATUSES: tuple[str, ...] = ("done", "pending_owner", "refused")
ERASED, OBJECTED = "erased", "objected"
MAX_MEMBER_ID_LENGTH = 200

privacy_requests = Table(
    "privacy_requests",
    state_metadata,
    Column("request_id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(MAX_MEMBER_ID_LENGTH), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("recorded_at", DateTime(timezone=False), nullable=False),  # naive UTC
    Column("recorded_by", Text, nullable=False),
    Column("completed_at", DateTime(timezone=False)),
    Column("detail", Text),  # JSON: the correction, rows changed, the reference the member gave ...
)

suppressed_members = Table(
    "suppressed_members",
    state_metadata,
    Column("member_id", String(MAX_MEMBER_ID_LENGTH), nullable=False),
    Column("reason", String(20), nullable=False),  # erased | objected
    Column("since", DateTime(timezone=False), nullable=False),
    Column("request_id", Integer),
    PrimaryKeyConstraint("member_id", "reason", name="pk_suppressed_members"),
)

REQUEST_COLUMNS = ["request_id", "member_id", "kind", "status", "recorded_at", "recorded_by", "completed_at",
                   "detail"]


class PrivacyError(InputError):
    """A privacy request refused as given (no member id, unknown kind, the list full ...)."""


@dataclass(frozen=True)
class Suppression:
    """Who is left out: ``erased`` members everywhere, ``objected`` members from profiling."""

    erased: tuple[str, ...] = ()
    objected: tuple[str, ...] = ()

    def excluded(self, profiling: bool) -> tuple[str, ...]:
        """The member ids a page leaves out: the erased, and on profiling pages (segments, models, targeting,
        member lists) those who objected too."""
        return tuple(sorted(set(self.erased) | (set(self.objected) if profiling else set())))


def check_member_id(member_id: object) -> str:
    if not isinstance(member_id, str) or not member_id.strip():
        raise PrivacyError(_("A privacy request names the member by their member id."))
    clean = member_id.strip()
    if len(clean) > MAX_MEMBER_ID_LENGTH or "\x00" in clean:
        raise PrivacyError(_("A member id has at most {n} characters.").format(n=MAX_MEMBER_ID_LENGTH))
    return clean


def suppression(engine: Engine) -> Suppression:
    """The suppression list as it is now."""
    s = suppressed_members.c
    with _database_errors(engine), engine.connect() as conn:
        rows = conn.execute(select(s.member_id, s.reason)).all()
    return Suppression(tuple(sorted(m for m, r in rows if r == ERASED)),
                       tuple(sorted(m for m, r in rows if r == OBJECTED)))


def record_request(engine: Engine, actor: str, member_id: str, kind: str, status: str,
                   detail: Mapping[str, Any] | None = None, *, suppress: str | None = None,
                   lift: str | None = None) -> int:
    """Record a request (and its audit row, action ``privacy_request``) in one transaction; with ``suppress`` also
    put the member on the suppression list for that reason, with ``lift`` take them off it. The request id."""
    clean = check_member_id(member_id)
    if kind not in REQUEST_KINDS or status not in STATUSES:
        raise PrivacyError(f"Unknown request kind {kind!r} or status {status!r}.")
    text_detail = None if detail is None else _to_json(detail, "request detail")
    now = _utc_now()
    with _database_errors(engine), _write_transaction(engine) as conn:
        if suppress is not None:
            _check_room(conn, clean)
        result = conn.execute(insert(privacy_requests).values(
            member_id=clean, kind=kind, status=status, recorded_at=now, recorded_by=actor,
            completed_at=now if status == "done" else None, detail=text_detail))
        request_id = int(result.inserted_primary_key[0])
        s = suppressed_members.c
        if suppress is not None:
            exists = conn.execute(select(func.count()).select_from(suppressed_members)
                                  .where(s.member_id == clean, s.reason == suppress)).scalar_one()
            if not exists:
                conn.execute(insert(suppressed_members).values(member_id=clean, reason=suppress, since=now,
                                                               request_id=request_id))
        if lift is not None:
            conn.execute(delete(suppressed_members).where(s.member_id == clean, s.reason == lift))
        write_event(conn, actor, "privacy_request", {"member": clean, "kind": kind, "status": status,
                                                     "request_id": request_id, **(detail or {})},
                    page="privacy_requests", rows=1)
    return request_id


def _check_room(conn: Connection, member_id: str) -> None:
    total = conn.execute(select(func.count(suppressed_members.c.member_id.distinct()))).scalar_one()
    if total >= MAX_EXCLUDED:
        raise PrivacyError(
            _("The suppression list holds {total} members, the most MemberLens carries into every query.").format(
                total=f"{total:,}"),
            _("Have the warehouse's owner apply the pending deletions, then purge the list (privacy purge)."))


def complete_request(engine: Engine, actor: str, request_id: int, status: str,
                     detail: Mapping[str, Any] | None = None) -> None:
    """Mark a request carried out (``done``) or still with the warehouse's owner, adding to its detail; audited."""
    if status not in STATUSES:
        raise PrivacyError(f"Unknown status {status!r}.")
    r = privacy_requests.c
    with _database_errors(engine), _write_transaction(engine) as conn:
        row = conn.execute(select(privacy_requests).where(r.request_id == int(request_id))).first()
        if row is None:
            raise PrivacyError(_("There is no privacy request {request_id}.").format(request_id=request_id))
        merged = {**json.loads(row.detail or "{}"), **(detail or {})}
        conn.execute(update(privacy_requests).where(r.request_id == int(request_id)).values(
            status=status, completed_at=_utc_now() if status == "done" else None,
            detail=_to_json(merged, "request detail")))
        write_event(conn, actor, "privacy_request_update", {"request_id": int(request_id), "member": row.member_id,
                                                             "status": status, **(detail or {})},
                    page="privacy_requests")


def requests(engine: Engine, *, member_id: str | None = None, kind: str | None = None,
             status: str | None = None, limit: int = 1_000) -> pd.DataFrame:
    """Recorded requests, newest first (optionally of one member, kind or status)."""
    r = privacy_requests.c
    query = select(privacy_requests).order_by(r.recorded_at.desc(), r.request_id.desc()).limit(int(limit))
    if member_id:
        query = query.where(r.member_id == member_id)
    if kind:
        query = query.where(r.kind == kind)
    if status:
        query = query.where(r.status == status)
    with _database_errors(engine):
        frame = read_frame(engine, query)
    return frame[REQUEST_COLUMNS]


def suppression_rows(engine: Engine, member_id: str | None = None) -> pd.DataFrame:
    """The suppression list as rows (``member_id, reason, since, request_id``), optionally of one member."""
    s = suppressed_members.c
    query = select(suppressed_members).order_by(s.since.desc(), s.member_id)
    if member_id:
        query = query.where(s.member_id == member_id)
    with _database_errors(engine):
        return read_frame(engine, query)


def requests_before(engine: Engine, before: datetime) -> int:
    """How many requests were recorded before ``before`` (naive UTC)."""
    with _database_errors(engine), engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(privacy_requests)
                                .where(privacy_requests.c.recorded_at < before)).scalar_one())
