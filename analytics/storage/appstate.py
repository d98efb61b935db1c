"""The app-state database: where MemberLens keeps what analysts create (saved audiences, audit log).

The warehouse is only ever read; everything the app itself writes goes here instead, so a
read-only warehouse account is enough and the shop's data is never at risk from the dashboard.

The URL is resolved like the warehouse's: the ``MEMBERLENS_STATE_URL`` environment variable;
``[connections.app_state]`` in ``.streamlit/secrets.toml``; otherwise the SQLite file
``app_state.sqlite`` in the data folder (``data/`` or ``MEMBERLENS_DATA_DIR``). SQLite and
PostgreSQL are both supported; every table is created on first open.

Saved audiences are versioned, never overwritten: saving a name again adds version N+1, so a
campaign can always be traced back to exactly the audience definition it was sent to. Each save
writes an audit-log row in the same transaction, so the log never misses a save and never records
one that did not happen. Timestamps are stored as naive UTC (``TIMESTAMP WITHOUT TIME ZONE``) on
every database, so they compare and sort the same way everywhere.

All values reach the database as bound parameters (SQLAlchemy Core); user text is never
formatted into SQL. Database failures surface as :class:`~analytics.errors.StateError`
(problem + fix, password masked); invalid input as :class:`AppStateError`.
"""

from __future__ import annotations

import importlib
import json
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from numbers import Integral
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, NoSuchModuleError, SQLAlchemyError

from analytics.errors import InputError, StateError
from analytics.storage.databases import APP_STATE, secrets_paths
from analytics.storage.db import read_frame

STATE_URL_ENV = APP_STATE.env
STATE_FILE_NAME = "app_state.sqlite"

#: Longest audience name and author (characters, after stripping surrounding blanks).
MAX_NAME_LENGTH = 100
MAX_AUTHOR_LENGTH = 100
#: How long a SQLite writer waits for another writer before giving up (seconds).
SQLITE_BUSY_TIMEOUT = 30
#: How often a save is retried when a concurrent save took the same version number.
SAVE_ATTEMPTS = 10

_WHERE_CONFIGURED = APP_STATE.where_configured
_WRITE_OPTION = "memberlens_appstate_write"
#: Arbitrary constant key: PostgreSQL sessions creating the tables take this advisory lock in turn.
_CREATE_LOCK_KEY = 0x4D4C5354  # "MLST"


class AppStateError(InputError):
    """Input the app-state database refuses (empty name, unserialisable spec, …) or a missing
    saved audience; the message says exactly which, so the UI can show it as it is."""


# --- tables -----------------------------------------------------------------------------------------
#: The app-state tables; deliberately separate from the warehouse contract in analytics.storage.contract.
state_metadata = MetaData()

saved_audiences = Table(
    "saved_audiences",
    state_metadata,
    Column("audience_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME_LENGTH), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", Text, nullable=False),  # the audience spec as JSON (sorted keys)
    Column("size", Integer),  # members targeted when saved: a snapshot, not kept up to date
    Column("author", String(MAX_AUTHOR_LENGTH), nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),  # naive UTC
    Column("note", Text),
    UniqueConstraint("name", "version", name="uq_saved_audiences_name_version"),
)

audit_log = Table(
    "audit_log",
    state_metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=False), nullable=False),  # naive UTC
    Column("actor", Text, nullable=False),  # the signed-in identity (never typed by the user)
    Column("action", Text, nullable=False),
    Column("detail", Text),  # JSON: the parameters
    Column("page", Text),  # where it happened (a page key, "cli", ...)
    Column("rows", Integer),  # member rows shown, exported or changed
)

AUDIENCE_COLUMNS = ["audience_id", "name", "version", "size", "author", "created_at", "note", "versions"]
AUDIT_COLUMNS = ["event_id", "at", "actor", "action", "detail", "page", "rows"]
#: Audit rows younger than this can never be deleted (a database trigger refuses it); retention may only be longer.
MIN_AUDIT_RETENTION_DAYS = 180
#: Longest actor (a signed-in identity: an email address can be 254 characters).
MAX_ACTOR_LENGTH = 320
#: Most audit rows one query returns (the viewer pages through filters, not through everything).
MAX_AUDIT_ROWS = 100_000


@dataclass(frozen=True)
class SavedAudience:
    """One saved version of an audience: its spec as saved, and how many members it had then."""

    audience_id: int
    name: str
    version: int
    spec: dict[str, Any]
    size: int | None
    author: str
    created_at: datetime  # naive UTC
    note: str | None


# --- configuration ----------------------------------------------------------------------------------
def default_state_url() -> str:
    """The SQLite file in the data folder (``data/`` unless ``MEMBERLENS_DATA_DIR`` says otherwise)."""
    return APP_STATE.default_url()


def resolve_state_url(environ: Mapping[str, str] | None = None, paths: Sequence[Path] | None = None) -> str:
    """The app-state URL: ``MEMBERLENS_STATE_URL``, then ``[connections.app_state]`` in the
    secrets files (``paths``, default Streamlit's locations), then the SQLite default."""
    return APP_STATE.resolve(environ, secrets_paths() if paths is None else paths).url


# --- opening ----------------------------------------------------------------------------------------
def open_state(url: str) -> Engine:
    """Open the app-state database, creating its folder (SQLite) and tables when missing.

    Safe to call repeatedly and from several processes at once: table creation is serialised
    (SQLite write lock, PostgreSQL advisory lock) and skips tables that exist. Raises
    StateError naming the problem and its fix, with any password masked.
    """
    parsed = APP_STATE.parse(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(
                    f"Cannot create the folder {path.parent} for the app-state database: {exc.strerror or exc}.",
                    f"Choose a writable location with {_WHERE_CONFIGURED}, or fix the folder's permissions.",
                ) from exc
        if "timeout" not in parsed.query:
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT
    try:
        engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=backend != "sqlite")
    except (NoSuchModuleError, ImportError) as exc:
        raise explain_state_error(exc, parsed) from exc
    if backend == "sqlite" and parsed.get_driver_name() == "pysqlite":
        _take_over_sqlite_transactions(engine)
    try:
        _create_tables(engine)
    except (SQLAlchemyError, OSError) as exc:
        engine.dispose()
        raise explain_state_error(exc, parsed) from exc
    return engine


def _sqlite_file(parsed: URL) -> Path | None:
    """The file behind a SQLite URL; None for in-memory and ``uri=true`` databases."""
    database = parsed.database
    if database in (None, "", ":memory:") or str(parsed.query.get("uri", "")).lower() in ("true", "1"):
        return None
    return Path(database)


def _take_over_sqlite_transactions(engine: Engine) -> None:
    """Make SQLite transactions real: the sqlite3 driver (before Python 3.16) begins none for SELECT
    or DDL, so a save could read the latest version outside its own transaction. SQLAlchemy emits
    BEGIN instead, and BEGIN IMMEDIATE for writes, which takes the write lock up front: concurrent
    saves then queue (up to the busy timeout) rather than fail with "database is locked"."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "BEGIN")


def _create_tables(engine: Engine) -> None:
    """Create missing tables (and columns added since, and the audit log's guard); a second process doing the same
    at once waits, then finds them."""
    from analytics.storage import model_registry, recommender_registry  # noqa: F401 - their tables are app state
    for module in ("analytics.storage.users", "analytics.storage.privacy_store"):  # their tables are in state_metadata
        importlib.import_module(module)

    for attempt in range(2):
        try:
            with _write_transaction(engine) as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK_KEY})
                state_metadata.create_all(conn, checkfirst=True)
                _add_missing_columns(conn)
                _guard_audit_log(conn)
            return
        except SQLAlchemyError as exc:
            # Another process created a table between our check and our CREATE (databases where
            # neither lock applies): the second pass sees it and skips it.
            message = str(getattr(exc, "orig", None) or exc).lower()
            if attempt or not ("already exists" in message or "duplicate" in message):
                raise


def _add_missing_columns(conn: Connection) -> None:
    """Columns added to a table after a database was created (``audit_log.page`` and ``rows``): nullable, added with
    ``ALTER TABLE ... ADD COLUMN`` (the same text on SQLite and PostgreSQL)."""
    from sqlalchemy import inspect

    inspector = inspect(conn)
    for table in state_metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def _guard_audit_log(conn: Connection) -> None:
    """Make the audit log append-only in the database itself: a trigger refuses every UPDATE, and every DELETE of a
    row younger than :data:`MIN_AUDIT_RETENTION_DAYS` (retention purges only older rows)."""
    days = int(MIN_AUDIT_RETENTION_DAYS)
    if conn.dialect.name == "sqlite":
        conn.execute(text("CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
                          "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"))
        conn.execute(text("CREATE TRIGGER IF NOT EXISTS audit_log_no_early_delete BEFORE DELETE ON audit_log "
                          f"WHEN old.\"at\" > datetime('now', '-{days} days') "
                          f"BEGIN SELECT RAISE(ABORT, 'audit rows younger than {days} days cannot be deleted'); END"))
    elif conn.dialect.name == "postgresql":
        conn.execute(text(
            "CREATE OR REPLACE FUNCTION memberlens_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF TG_OP = 'UPDATE' THEN RAISE EXCEPTION 'the audit log is append-only'; END IF; "
            f"IF OLD.at > (now() AT TIME ZONE 'utc') - interval '{days} days' THEN "
            f"RAISE EXCEPTION 'audit rows younger than {days} days cannot be deleted'; END IF; "
            "RETURN OLD; END $$"))
        conn.execute(text("CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                          "FOR EACH ROW EXECUTE FUNCTION memberlens_audit_append_only()"))


@contextmanager
def _write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction meant for writing, committed on success, rolled back on error."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


def explain_state_error(exc: BaseException, url: str | URL) -> StateError:
    """A database exception as a one-line problem and a fix about the app-state database, with
    the password masked in the URL and removed from the driver's text."""
    return APP_STATE.explain(exc, url)  # type: ignore[return-value]


@contextmanager
def _database_errors(engine: Engine) -> Iterator[None]:
    """Turn SQLAlchemy errors raised inside into StateError (AppStateError passes through)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise explain_state_error(exc, engine.url) from exc


# --- input checks -----------------------------------------------------------------------------------
def _to_json(value: Mapping[str, Any], what: str) -> str:
    """Canonical JSON text (sorted keys, unicode kept), or AppStateError saying why it cannot be."""
    if not isinstance(value, Mapping):
        raise AppStateError(f"The {what} must be a mapping (a dict), not {type(value).__name__}.")
    try:
        return json.dumps(dict(value), sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise AppStateError(f"The {what} cannot be saved as JSON: {exc}.") from exc


def _checked_text(value: object, what: str, limit: int) -> str:
    """``value`` stripped; AppStateError if it is not text, blank, or longer than ``limit``."""
    if not isinstance(value, str):
        raise AppStateError(f"The {what} must be text, not {type(value).__name__}.")
    stripped = value.strip()
    if not stripped:
        raise AppStateError(f"The {what} is empty: enter a {what}.")
    if len(stripped) > limit:
        raise AppStateError(f"The {what} is {len(stripped)} characters long; at most {limit} are allowed.")
    return stripped


def _checked_size(size: object) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, Integral) or size < 0:
        raise AppStateError(f"The audience size must be a whole number of members (0 or more), not {size!r}.")
    return int(size)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --- saved audiences --------------------------------------------------------------------------------
def save_audience(engine: Engine, name: str, spec: Mapping[str, Any], size: int | None, author: str,
                  note: str | None = None) -> SavedAudience:
    """Save ``spec`` as a new version of audience ``name`` (1 for a new name, else latest + 1).

    Nothing is ever overwritten: editing an audience saves a new version. The audience row and its
    audit-log row (action ``save_audience``) are written in one transaction. If a concurrent save
    took the same version number, the save is retried with the next one. ``note`` is kept as typed;
    a blank note is stored as None. Raises AppStateError for invalid input (nothing is written).
    """
    clean_name = _checked_text(name, "audience name", MAX_NAME_LENGTH)
    clean_author = _checked_text(author, "author", MAX_AUTHOR_LENGTH)
    spec_json = _to_json(spec, "audience spec")
    clean_size = _checked_size(size)
    if note is not None and not isinstance(note, str):
        raise AppStateError(f"The note must be text, not {type(note).__name__}.")
    clean_note = note if note is not None and note.strip() else None

    with _database_errors(engine):
        for attempt in range(SAVE_ATTEMPTS):
            try:
                with _write_transaction(engine) as conn:
                    latest = conn.execute(
                        select(func.max(saved_audiences.c.version)).where(saved_audiences.c.name == clean_name)
                    ).scalar()
                    version = int(latest or 0) + 1
                    created_at = _utc_now()
                    result = conn.execute(insert(saved_audiences).values(
                        name=clean_name, version=version, spec=spec_json, size=clean_size,
                        author=clean_author, created_at=created_at, note=clean_note,
                    ))
                    audience_id = int(result.inserted_primary_key[0])
                    _insert_event(conn, clean_author, "save_audience",
                                  {"name": clean_name, "version": version, "size": clean_size}, created_at)
            except IntegrityError:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.0, 0.02) * (attempt + 1))  # let the other save finish first
                continue
            return SavedAudience(audience_id, clean_name, version, json.loads(spec_json), clean_size,
                                 clean_author, created_at, clean_note)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _audience_from_row(row: Any) -> SavedAudience:
    return SavedAudience(
        audience_id=int(row.audience_id), name=row.name, version=int(row.version), spec=json.loads(row.spec),
        size=None if row.size is None else int(row.size), author=row.author, created_at=row.created_at,
        note=row.note,
    )


def list_audiences(engine: Engine, latest_only: bool = True) -> pd.DataFrame:
    """Saved audiences, newest first: ``audience_id, name, version, size, author, created_at, note,
    versions`` (how many versions the name has). ``latest_only``: one row per name, its latest
    version; otherwise every version. The spec itself is not listed (load_audience gives it)."""
    sa = saved_audiences
    per_name = (
        select(sa.c.name, func.max(sa.c.version).label("latest"), func.count().label("versions"))
        .group_by(sa.c.name)
        .subquery("per_name")
    )
    query = (
        select(sa.c.audience_id, sa.c.name, sa.c.version, sa.c.size, sa.c.author, sa.c.created_at, sa.c.note,
               per_name.c.versions)
        .join_from(sa, per_name, sa.c.name == per_name.c.name)
        .order_by(sa.c.created_at.desc(), sa.c.audience_id.desc())
    )
    if latest_only:
        query = query.where(sa.c.version == per_name.c.latest)
    with _database_errors(engine):
        frame = read_frame(engine, query)
    for column in ("audience_id", "version", "versions"):
        frame[column] = frame[column].astype("int64")
    frame["size"] = frame["size"].astype("Int64")
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    return frame[AUDIENCE_COLUMNS].reset_index(drop=True)


def load_audience(engine: Engine, name: str, version: int | None = None) -> SavedAudience:
    """Audience ``name`` at ``version`` (the latest when None); AppStateError when there is none."""
    clean_name = name.strip() if isinstance(name, str) else name
    if version is not None and (isinstance(version, bool) or not isinstance(version, Integral)):
        raise AppStateError(f"The version must be a whole number, not {version!r}.")
    sa = saved_audiences
    query = select(sa).where(sa.c.name == clean_name)
    query = query.where(sa.c.version == int(version)) if version is not None else query.order_by(
        sa.c.version.desc()).limit(1)
    exists = 0
    with _database_errors(engine), engine.connect() as conn:
        row = conn.execute(query).first()
        if row is None and version is not None:
            exists = conn.execute(select(func.count()).select_from(sa).where(sa.c.name == clean_name)).scalar()
    if row is None:
        if version is None or not exists:
            raise AppStateError(f"There is no saved audience named {clean_name!r}.")
        raise AppStateError(f"The saved audience {clean_name!r} has no version {version}.")
    return _audience_from_row(row)


def audience_versions(engine: Engine, name: str) -> list[SavedAudience]:
    """Every saved version of ``name``, oldest first (empty when the name was never saved)."""
    clean_name = name.strip() if isinstance(name, str) else name
    query = select(saved_audiences).where(saved_audiences.c.name == clean_name).order_by(
        saved_audiences.c.version)
    with _database_errors(engine), engine.connect() as conn:
        return [_audience_from_row(row) for row in conn.execute(query)]


# --- audit log --------------------------------------------------------------------------------------
def _insert_event(conn: Connection, actor: str, action: str, detail: Mapping[str, Any] | None,
                  at: datetime | None = None, *, page: str | None = None, rows: int | None = None) -> None:
    if detail is not None:
        page = page if page is not None else (detail.get("page") if isinstance(detail.get("page"), str) else None)
        counted = detail.get("rows")
        rows = rows if rows is not None else (counted if isinstance(counted, int) and counted >= 0 else None)
    conn.execute(insert(audit_log).values(
        at=at or _utc_now(), actor=actor, action=action,
        detail=None if detail is None else _to_json(detail, "audit detail"), page=page, rows=rows,
    ))


def write_event(conn: Connection, actor: str, action: str, detail: Mapping[str, Any] | None = None, *,
                page: str | None = None, rows: int | None = None) -> None:
    """Record an event inside the caller's transaction (so the change and its audit row land together)."""
    clean_actor = _checked_text(actor, "actor", MAX_ACTOR_LENGTH)
    clean_action = _checked_text(action, "action", MAX_NAME_LENGTH)
    _insert_event(conn, clean_actor, clean_action, detail, page=page, rows=rows)


def log_event(engine: Engine, actor: str, action: str, detail: Mapping[str, Any] | None = None, *,
              page: str | None = None, rows: int | None = None) -> None:
    """Record that ``actor`` did ``action`` (e.g. ``export_members``), with optional JSON ``detail``, the ``page``
    it happened on and the member ``rows`` it concerned (taken from ``detail["page"]`` and ``detail["rows"]`` when
    not given).

    Raises AppStateError for a blank actor or action, or a detail that is not JSON-serialisable.
    """
    clean_actor = _checked_text(actor, "actor", MAX_ACTOR_LENGTH)
    clean_action = _checked_text(action, "action", MAX_NAME_LENGTH)
    if detail is not None:
        _to_json(detail, "audit detail")  # validate before opening a transaction
    with _database_errors(engine), _write_transaction(engine) as conn:
        _insert_event(conn, clean_actor, clean_action, detail, page=page, rows=rows)


def audit_events(engine: Engine, limit: int = 100, *, actor: str | None = None, action: str | Sequence[str] | None
                 = None, page: str | None = None, since: datetime | None = None,
                 until: datetime | None = None) -> pd.DataFrame:
    """The latest ``limit`` audit events, newest first: ``event_id, at, actor, action, detail, page, rows``
    (``detail`` is the JSON text as stored; ``json.loads`` it for the values). Optionally only those of one
    ``actor``, ``action`` (or several), ``page``, at or after ``since`` and before ``until`` (naive UTC)."""
    if isinstance(limit, bool) or not isinstance(limit, Integral) or not 1 <= limit <= MAX_AUDIT_ROWS:
        raise AppStateError(f"The limit must be a whole number of events from 1 to {MAX_AUDIT_ROWS:,}, not {limit!r}.")
    a = audit_log.c
    query = select(audit_log).order_by(a.at.desc(), a.event_id.desc()).limit(int(limit))
    if actor:
        query = query.where(a.actor == actor)
    if action:
        query = query.where(a.action.in_([action] if isinstance(action, str) else list(action)))
    if page:
        query = query.where(a.page == page)
    if since is not None:
        query = query.where(a.at >= since)
    if until is not None:
        query = query.where(a.at < until)
    with _database_errors(engine):
        frame = read_frame(engine, query)
    frame["event_id"] = frame["event_id"].astype("int64")
    frame["at"] = pd.to_datetime(frame["at"])
    frame["rows"] = frame["rows"].astype("Int64")
    return frame[AUDIT_COLUMNS].reset_index(drop=True)


#: The audited actions that hand member rows over (a file): what the bulk-export alert adds up.
EXPORT_ACTIONS: tuple[str, ...] = ("export_members", "access_package")


def exported_rows(engine: Engine, since: datetime, until: datetime | None = None) -> pd.DataFrame:
    """Member rows exported per actor between ``since`` and ``until`` (naive UTC): ``actor, exports, rows``,
    most rows first. The bulk-export alert compares ``rows`` with its threshold."""
    a = audit_log.c
    rows = func.coalesce(func.sum(a.rows), 0)
    query = (select(a.actor, func.count().label("exports"), rows.label("rows"))
             .where(a.action.in_(EXPORT_ACTIONS), a.at >= since, *([a.at < until] if until is not None else []))
             .group_by(a.actor).order_by(rows.desc(), a.actor))
    with _database_errors(engine):
        frame = read_frame(engine, query)
    return frame.astype({"exports": "int64", "rows": "int64"}) if not frame.empty else frame
