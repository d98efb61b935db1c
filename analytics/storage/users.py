"""Users and their roles, as data in the app-state database (next to saved audiences and the audit log).

A user is the identity their sign-in provider vouches for (the OpenID Connect email, lower case; else the
subject), with one role from :data:`analytics.access.ROLES` and an optional row-level restriction (regions, sales
channels). Users are managed on the Admin → Users and roles page and with ``python -m analytics admin``; every
change is written to the audit log in the same transaction (action ``role_change``), by the admin who made it.

The first admin comes from configuration: the identities in ``MEMBERLENS_ADMINS`` (comma-separated) or in
``admins = [...]`` under ``[memberlens]`` in ``.streamlit/secrets.toml`` are made admin when they first sign in and
have no row yet. After that their role is data like anyone's: revoking it keeps a row without a role, so a
configured admin who was revoked is not made admin again. The last admin cannot be demoted or revoked (nobody
could manage users any more).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Column, DateTime, Engine, String, Table, Text, func, insert, select, update

from analytics.access import ADMIN, MANAGE_USERS, ROLES, Principal, require
from analytics.errors import InputError, StateError
from analytics.filters import MAX_SCOPE_VALUES
from analytics.storage.appstate import (
    _database_errors,
    _utc_now,
    _write_transaction,
    state_metadata,
    write_event,
)
from analytics.storage.databases import secrets_paths

ADMINS_ENV = "MEMBERLENS_ADMINS"
MAX_IDENTITY_LENGTH = 320
MAX_USERS = 10_000

users = Table(
    "users",
    state_metadata,
    Column("identity", String(MAX_IDENTITY_LENGTH), primary_key=True),
    Column("name", Text),
    Column("role", String(40)),  # None: signed in or known, but no role (revoked, or never granted)
    Column("regions", Text),  # JSON list; empty = every region
    Column("channels", Text),  # JSON list; empty = every sales channel
    Column("created_at", DateTime(timezone=False), nullable=False),  # naive UTC
    Column("updated_at", DateTime(timezone=False), nullable=False),
    Column("updated_by", Text, nullable=False),
)

USER_COLUMNS = ["identity", "name", "role", "regions", "channels", "created_at", "updated_at", "updated_by"]


class UserError(InputError):
    """A user or role change refused (unknown role, blank identity, the last admin ...)."""


@dataclass(frozen=True)
class User:
    identity: str
    name: str
    role: str | None
    regions: tuple[str, ...]
    channels: tuple[str, ...]
    updated_at: datetime
    updated_by: str

    def principal(self, name: str | None = None) -> Principal:
        return Principal(self.identity, name or self.name or self.identity, self.role, self.regions, self.channels)


def normalise_identity(identity: object) -> str:
    """An identity as users are keyed: stripped and lower case (emails compare case-insensitively in practice)."""
    if not isinstance(identity, str) or not identity.strip():
        raise UserError("A user is named by their sign-in identity (an email address): it cannot be empty.")
    clean = identity.strip().lower()
    if len(clean) > MAX_IDENTITY_LENGTH or any(ord(ch) < 32 for ch in clean):
        raise UserError(f"{clean[:40]!r}… is not a sign-in identity (at most {MAX_IDENTITY_LENGTH} printable "
                        "characters).")
    return clean


def _values(values: Sequence[str], what: str) -> tuple[str, ...]:
    clean = tuple(sorted({v.strip() for v in values if isinstance(v, str) and v.strip()}))
    if len(clean) > MAX_SCOPE_VALUES or any(len(v) > 200 for v in clean):
        raise UserError(f"At most {MAX_SCOPE_VALUES} {what} of at most 200 characters each.")
    return clean


def _user(row) -> User:
    return User(row.identity, row.name or "", row.role, tuple(json.loads(row.regions or "[]")),
                tuple(json.loads(row.channels or "[]")), row.updated_at, row.updated_by)


def get_user(engine: Engine, identity: str) -> User | None:
    """The user with this identity, or None."""
    with _database_errors(engine), engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.identity == normalise_identity(identity))).first()
    return None if row is None else _user(row)


def list_users(engine: Engine) -> pd.DataFrame:
    """Every user, by identity: ``identity, name, role, regions, channels, created_at, updated_at, updated_by``
    (regions and channels as comma-separated text, empty = all)."""
    with _database_errors(engine), engine.connect() as conn:
        rows = [_user(r) for r in conn.execute(select(users).order_by(users.c.identity))]
        created = dict(conn.execute(select(users.c.identity, users.c.created_at)).all())
    return pd.DataFrame([{"identity": u.identity, "name": u.name, "role": u.role, "regions": ", ".join(u.regions),
                          "channels": ", ".join(u.channels), "created_at": created[u.identity],
                          "updated_at": u.updated_at, "updated_by": u.updated_by} for u in rows], columns=USER_COLUMNS)


def _admins(conn) -> int:
    return int(conn.execute(select(func.count()).select_from(users).where(users.c.role == ADMIN)).scalar_one())


def grant(engine: Engine, by: Principal, identity: str, role: str, *, name: str | None = None,
          regions: Sequence[str] = (), channels: Sequence[str] = ()) -> User:
    """Give ``identity`` the ``role`` (and restrict them to ``regions`` / ``channels``, empty = all), as admin
    ``by``; the change and its audit row (``role_change``, before and after) are one transaction."""
    require(by, MANAGE_USERS)
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    return _set_role(engine, by.identity, normalise_identity(identity), role, name,
                     _values(regions, "regions"), _values(channels, "channels"))


def revoke(engine: Engine, by: Principal, identity: str) -> User:
    """Take ``identity``'s role away (their row stays, without a role: they can sign in and see nothing)."""
    require(by, MANAGE_USERS)
    return _set_role(engine, by.identity, normalise_identity(identity), None, None, (), ())


def _set_role(engine: Engine, actor: str, identity: str, role: str | None, name: str | None,
              regions: tuple[str, ...], channels: tuple[str, ...]) -> User:
    now = _utc_now()
    with _database_errors(engine), _write_transaction(engine) as conn:
        before = conn.execute(select(users).where(users.c.identity == identity)).first()
        if before is None and role is None:
            raise UserError(f"There is no user {identity!r}.")
        if before is not None and before.role == ADMIN and role != ADMIN and _admins(conn) <= 1:
            raise UserError(f"{identity} is the last admin: make someone else admin first.",)
        if before is None:
            total = int(conn.execute(select(func.count()).select_from(users)).scalar_one())
            if total >= MAX_USERS:
                raise UserError(f"MemberLens keeps at most {MAX_USERS:,} users.")
        values = {"role": role, "regions": json.dumps(list(regions)), "channels": json.dumps(list(channels)),
                  "updated_at": now, "updated_by": actor}
        if name is not None:
            values["name"] = name.strip()[:200]
        if before is None:
            conn.execute(insert(users).values(identity=identity, created_at=now, **{"name": "", **values}))
        else:
            conn.execute(update(users).where(users.c.identity == identity).values(**values))
        old = None if before is None else {"role": before.role, "regions": json.loads(before.regions or "[]"),
                                           "channels": json.loads(before.channels or "[]")}
        write_event(conn, actor, "role_change", {"user": identity, "before": old,
                                                 "after": {"role": role, "regions": list(regions),
                                                           "channels": list(channels)}}, page="admin_users")
        row = conn.execute(select(users).where(users.c.identity == identity)).first()
    return _user(row)


def configured_admins(environ: Mapping[str, str] | None = None, paths: Sequence[Path] | None = None) -> frozenset[str]:
    """The identities configuration names as admins: ``MEMBERLENS_ADMINS`` (comma-separated) and ``admins`` under
    ``[memberlens]`` in the secrets files."""
    env = os.environ if environ is None else environ
    found = {a for a in env.get(ADMINS_ENV, "").split(",") if a.strip()}
    for path in secrets_paths() if paths is None else paths:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        listed = data.get("memberlens", {}).get("admins", []) if isinstance(data.get("memberlens"), dict) else []
        found |= {a for a in (listed if isinstance(listed, list) else [listed]) if isinstance(a, str) and a.strip()}
    return frozenset(normalise_identity(a) for a in found)


def signed_in(engine: Engine, identity: str, name: str = "", admins: frozenset[str] = frozenset()) -> Principal:
    """The principal for someone who just signed in as ``identity``: their role from the users table, or admin when
    configuration names them and they have no row yet (recorded as a ``role_change`` by ``configuration``), or no
    role at all."""
    clean = normalise_identity(identity)
    user = get_user(engine, clean)
    if user is None and clean in admins:
        try:
            user = _set_role(engine, "configuration", clean, ADMIN, name or clean, (), ())
        except (UserError, StateError):  # e.g. two first sign-ins at once: the other one made the row
            user = get_user(engine, clean)
    if user is None:
        return Principal(clean, name or clean, None)
    return user.principal(name or None)
