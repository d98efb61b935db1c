"""The model registry: prediction models kept in the app-state database, never in the warehouse.

Every training run stores a new **version** of its kind (``churn``, ``propensity``, ``clv``): the whole model as
JSON (parameters, the model card with its windows, sample sizes and metrics), who trained it, when, and for which
scoring day. Versions are never overwritten or deleted, so a saved audience that used "churn v3" can always be
traced to exactly that model. Saving reads the latest version and inserts the next in one transaction, with an
audit-log row, as saved audiences do (:mod:`analytics.storage.appstate`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from analytics.storage.appstate import (
    MAX_AUTHOR_LENGTH,
    AppStateError,
    _checked_text,
    _database_errors,
    _insert_event,
    _to_json,
    _utc_now,
    _write_transaction,
    state_metadata,
)

MODEL_KINDS: tuple[str, ...] = ("churn", "propensity", "clv")
#: A model older than this many days is shown with a warning (retrain daily or weekly, e.g. from cron).
STALE_AFTER_DAYS = 7

model_versions = Table(
    "model_versions",
    state_metadata,
    Column("model_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("algorithm", String(40), nullable=False),
    Column("as_of", Date, nullable=False),  # the scoring day the model was trained for
    Column("model", Text, nullable=False),  # the model and its card as JSON
    Column("author", String(MAX_AUTHOR_LENGTH), nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),  # naive UTC
    UniqueConstraint("kind", "version", name="uq_model_versions_kind_version"),
)
MODEL_COLUMNS = ["model_id", "kind", "version", "algorithm", "as_of", "author", "created_at"]


@dataclass(frozen=True)
class StoredModel:
    """One stored version: its data as stored (``model``: the model and its card) and where it came from."""

    model_id: int
    kind: str
    version: int
    algorithm: str
    as_of: date
    model: dict[str, Any]
    author: str
    created_at: datetime  # naive UTC

    @property
    def label(self) -> str:
        return f"{self.kind} v{self.version}"

    def age_days(self, now: datetime | None = None) -> float:
        return ((now or _utc_now()) - self.created_at).total_seconds() / 86_400


def _kind(kind: object) -> str:
    if kind not in MODEL_KINDS:
        raise AppStateError(f"Unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}.")
    return str(kind)


def save_model(engine: Engine, kind: str, algorithm: str, as_of: date, model: Mapping[str, Any],
               author: str) -> StoredModel:
    """Store ``model`` as the next version of ``kind``; its audit-log row in the same transaction."""
    clean_kind = _kind(kind)
    clean_author = _checked_text(author, "author", MAX_AUTHOR_LENGTH)
    text = _to_json(model, "model")
    with _database_errors(engine):
        for attempt in range(10):
            try:
                with _write_transaction(engine) as conn:
                    latest = conn.execute(select(func.max(model_versions.c.version))
                                          .where(model_versions.c.kind == clean_kind)).scalar()
                    version, created_at = int(latest or 0) + 1, _utc_now()
                    result = conn.execute(insert(model_versions).values(
                        kind=clean_kind, version=version, algorithm=str(algorithm)[:40], as_of=as_of, model=text,
                        author=clean_author, created_at=created_at))
                    _insert_event(conn, clean_author, "train_model",
                                  {"kind": clean_kind, "version": version, "algorithm": algorithm,
                                   "as_of": as_of.isoformat()}, created_at)
            except IntegrityError:
                if attempt == 9:
                    raise
                continue
            return StoredModel(int(result.inserted_primary_key[0]), clean_kind, version, str(algorithm)[:40], as_of,
                               json.loads(text), clean_author, created_at)
    raise AssertionError("unreachable")  # pragma: no cover


def _from_row(row: Any) -> StoredModel:
    try:
        model = json.loads(row.model)
    except (TypeError, ValueError):
        raise AppStateError(f"The stored model {row.kind} v{row.version} is corrupted (its JSON cannot be read); "
                            "train a new version.") from None
    if not isinstance(model, dict):
        raise AppStateError(f"The stored model {row.kind} v{row.version} is corrupted; train a new version.")
    return StoredModel(int(row.model_id), row.kind, int(row.version), row.algorithm, row.as_of, model, row.author,
                       row.created_at)


def load_model(engine: Engine, kind: str, version: int | None = None) -> StoredModel:
    """Version ``version`` of ``kind`` (the latest when None); AppStateError when there is none."""
    clean_kind = _kind(kind)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise AppStateError(f"The version must be a whole number, not {version!r}.")
    mv = model_versions
    query = select(mv).where(mv.c.kind == clean_kind)
    query = query.where(mv.c.version == version) if version is not None else query.order_by(mv.c.version.desc())
    with _database_errors(engine), engine.connect() as conn:
        row = conn.execute(query.limit(1)).first()
    if row is None:
        raise AppStateError(f"There is no {clean_kind} model" + (f" version {version}." if version else " yet: train "
                            f"one with `python -m analytics models train --model {clean_kind}`."))
    return _from_row(row)


def latest_model(engine: Engine, kind: str) -> StoredModel | None:
    """The newest version of ``kind``, or None when none was trained."""
    try:
        return load_model(engine, kind)
    except AppStateError as problem:
        if "There is no" in problem.problem:
            return None
        raise


def list_models(engine: Engine) -> pd.DataFrame:
    """Every stored version, newest first: ``model_id, kind, version, algorithm, as_of, author, created_at``."""
    mv = model_versions
    with _database_errors(engine), engine.connect() as conn:
        rows = conn.execute(select(*(mv.c[c] for c in MODEL_COLUMNS)).order_by(mv.c.created_at.desc(),
                                                                                mv.c.model_id.desc())).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=MODEL_COLUMNS)
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    return frame
