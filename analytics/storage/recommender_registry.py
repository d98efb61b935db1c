"""The recommender registry: trained recommenders and every member's stored list, outside the read-only warehouse.

A **version** is one training run: the fitted model and the top-N list it made for every member at the time,
with the product catalogue those lists refer to. Versions are numbered 1, 2, 3 … and never overwritten or
deleted, so a campaign export made with "v3" can be made again, byte for byte, a month later.

Where things live:

* a row per version in the app-state database (``recommender_versions``): algorithm, the history's last day
  (``as_of``), list length, settings and summary (members, paths, seconds, evaluation) as JSON, author, time, the
  version's folder and the SHA-256 and size of each file;
* the files, in a folder of their own under the **recommender folder** (``MEMBERLENS_RECOMMENDER_DIR``; else
  ``recommenders/`` next to a SQLite app-state file; else ``data/recommenders/``), written once and never changed:

  - ``model.npz``: the model's ``to_bytes()`` (numpy arrays and JSON, no pickle; 2.4 MB at 50,000 members,
    4.8 MB at 1M: it grows with products, not members);
  - ``members.parquet``: ``member`` (code), ``member_id``, ``segment`` (the popular segment in words), ``path``;
  - ``products.parquet``: ``product`` (code), ``product_id``, ``name``, ``category``, ``subcategory``, ``brand``;
  - ``lists.parquet``: one row per (member, rank): ``member``, ``rank``, ``product``, ``score``, ``source``,
    ``reason_kind``, ``because_product`` (code, -1 none), ``because_day`` (days since 1970-01-01, -1 none);
    sorted by member code, so one member is read from one row group.

  Codes keep the large file small and fast (a star schema: the lists refer to the two small tables by code);
  any tool that reads Parquet can join them back.

Files are written to a fresh folder first; the row (with an audit-log row) is inserted in one transaction after,
so a version either exists whole or not at all. Every read checks the file's SHA-256 against the row (a changed or
missing file is a :class:`~analytics.errors.StateError` naming the version), except one-member reads of the lists
for a page, which read one row group.

**Campaign links** (``recommendation_campaigns``): a campaign id (the campaign key a targeting audience splits its
control group by) → the version and list length its recommendation export used, written on the first export with
that key and fixed afterwards, so the experiment read-out knows exactly which items each member (treatment and
control) was, or would have been, recommended.

This module knows bytes and Arrow tables only; what they mean is :mod:`analytics.recommend_store`'s business.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import (
    BigInteger,
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

from analytics.errors import StateError
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
from analytics.storage.databases import data_dir

RECOMMENDER_DIR_ENV = "MEMBERLENS_RECOMMENDER_DIR"
MODEL_FILE, MEMBERS_FILE, PRODUCTS_FILE, LISTS_FILE = "model.npz", "members.parquet", "products.parquet", \
    "lists.parquet"
FILES: tuple[str, ...] = (MODEL_FILE, MEMBERS_FILE, PRODUCTS_FILE, LISTS_FILE)
#: A stored version older than this many days is shown with a warning (retrain daily or weekly from cron).
STALE_AFTER_DAYS = 7
#: Rows per row group of the lists: one member's rows are read from one group (about 0.2 MB).
LIST_ROW_GROUP = 1 << 16
MAX_CAMPAIGN_ID_LENGTH = 200
#: Longest list a version stores (the engine's maximum list length).
MAX_LIST_LENGTH = 100

recommender_versions = Table(
    "recommender_versions",
    state_metadata,
    Column("recommender_id", Integer, primary_key=True, autoincrement=True),
    Column("version", Integer, nullable=False),
    Column("algorithm", String(40), nullable=False),
    Column("as_of", Date, nullable=False),  # the last day of the history it learned from
    Column("list_length", Integer, nullable=False),  # N: items stored per member
    Column("settings", Text, nullable=False),  # JSON: the list settings (and anything else that made the lists)
    Column("summary", Text, nullable=False),  # JSON: members, products, paths, seconds, evaluation
    Column("folder", String(200), nullable=False),  # relative to the recommender folder
    Column("files", Text, nullable=False),  # JSON: file name -> {"sha256": ..., "bytes": ...}
    Column("total_bytes", BigInteger, nullable=False),
    Column("author", String(MAX_AUTHOR_LENGTH), nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),  # naive UTC
    UniqueConstraint("version", name="uq_recommender_versions_version"),
)

recommendation_campaigns = Table(
    "recommendation_campaigns",
    state_metadata,
    Column("link_id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(MAX_CAMPAIGN_ID_LENGTH), nullable=False),
    Column("version", Integer, nullable=False),
    Column("list_length", Integer, nullable=False),
    Column("members", Integer, nullable=False),  # members in the first export
    Column("author", String(MAX_AUTHOR_LENGTH), nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
    UniqueConstraint("campaign_id", name="uq_recommendation_campaigns_campaign"),
)

VERSION_COLUMNS = ["version", "algorithm", "as_of", "list_length", "members", "total_bytes", "author", "created_at"]


@dataclass(frozen=True)
class StoredRecommender:
    """One stored version: where its files are, what made it, and what it holds."""

    recommender_id: int
    version: int
    algorithm: str
    as_of: date
    list_length: int
    settings: dict[str, Any]
    summary: dict[str, Any]
    folder: Path  # absolute
    files: dict[str, dict[str, Any]]
    total_bytes: int
    author: str
    created_at: datetime  # naive UTC

    @property
    def label(self) -> str:
        return f"v{self.version}"

    def age_days(self, now: datetime | None = None) -> float:
        return ((now or _utc_now()) - self.created_at).total_seconds() / 86_400

    @property
    def stale(self) -> bool:
        return self.age_days() > STALE_AFTER_DAYS


@dataclass(frozen=True)
class CampaignLink:
    """A campaign id and the stored version (and list length) its recommendation export used."""

    campaign_id: str
    version: int
    list_length: int
    members: int
    author: str
    created_at: datetime


# --- where ------------------------------------------------------------------------------------------------

def recommender_root(state: Engine) -> Path:
    """The recommender folder: ``MEMBERLENS_RECOMMENDER_DIR``; else ``recommenders/`` beside a SQLite app-state
    file (so each app-state database has its own files); else ``recommenders/`` in the data folder. With a
    PostgreSQL app-state database shared by several servers, point ``MEMBERLENS_RECOMMENDER_DIR`` at storage they
    all see."""
    configured = os.environ.get(RECOMMENDER_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    url = state.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and \
            str(url.query.get("uri", "")).lower() not in ("true", "1"):
        return Path(url.database).expanduser().resolve().parent / "recommenders"
    return data_dir() / "recommenders"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- saving -----------------------------------------------------------------------------------------------

def save_recommender(state: Engine, *, algorithm: str, as_of: date, list_length: int, settings: Mapping[str, Any],
                     summary: Mapping[str, Any], model: bytes, members: pa.Table, products: pa.Table,
                     lists: pa.Table, author: str) -> StoredRecommender:
    """Write a version's files to a new folder, then insert its row as the next version (with an audit-log row)
    in one transaction. Nothing is overwritten; a failed insert removes the folder."""
    clean_author = _checked_text(author, "author", MAX_AUTHOR_LENGTH)
    if isinstance(list_length, bool) or not isinstance(list_length, int) or not 1 <= list_length <= MAX_LIST_LENGTH:
        raise AppStateError(f"The list length must be from 1 to {MAX_LIST_LENGTH}, not {list_length!r}.")
    settings_text, summary_text = _to_json(settings, "recommender settings"), _to_json(summary, "summary")
    root = recommender_root(state)
    created_at = _utc_now()
    name = f"{created_at:%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:10]}"
    folder = root / name
    try:
        folder.mkdir(parents=True)
        (folder / MODEL_FILE).write_bytes(model)
        pq.write_table(members, folder / MEMBERS_FILE, compression="zstd")
        pq.write_table(products, folder / PRODUCTS_FILE, compression="zstd")
        pq.write_table(lists, folder / LISTS_FILE, compression="zstd", row_group_size=LIST_ROW_GROUP)
        files = {f: {"sha256": _sha256(folder / f), "bytes": (folder / f).stat().st_size} for f in FILES}
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise StateError(f"Cannot write the recommender's files to {root}: {exc.strerror or exc}.",
                         f"Set {RECOMMENDER_DIR_ENV} to a writable folder, or fix the folder's permissions.") from exc
    total = sum(f["bytes"] for f in files.values())
    rv = recommender_versions
    try:
        with _database_errors(state):
            for attempt in range(10):
                try:
                    with _write_transaction(state) as conn:
                        latest = conn.execute(select(func.max(rv.c.version))).scalar()
                        version = int(latest or 0) + 1
                        result = conn.execute(insert(rv).values(
                            version=version, algorithm=str(algorithm)[:40], as_of=as_of, list_length=list_length,
                            settings=settings_text, summary=summary_text, folder=name, files=json.dumps(files),
                            total_bytes=total, author=clean_author, created_at=created_at))
                        _insert_event(conn, clean_author, "train_recommender",
                                      {"version": version, "algorithm": algorithm, "as_of": as_of.isoformat(),
                                       "list_length": list_length, "folder": name}, created_at)
                except IntegrityError:
                    if attempt == 9:
                        raise
                    continue
                return StoredRecommender(int(result.inserted_primary_key[0]), version, str(algorithm)[:40], as_of,
                                         list_length, json.loads(settings_text), json.loads(summary_text), folder,
                                         files, total, clean_author, created_at)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    raise AssertionError("unreachable")  # pragma: no cover


# --- reading the registry ---------------------------------------------------------------------------------

def _from_row(state: Engine, row: Any) -> StoredRecommender:
    try:
        settings, summary, files = json.loads(row.settings), json.loads(row.summary), json.loads(row.files)
    except (TypeError, ValueError):
        raise StateError(f"The stored recommender v{row.version} is corrupted (its JSON cannot be read).",
                         "Train a new version with `python -m analytics recommend train`.") from None
    return StoredRecommender(int(row.recommender_id), int(row.version), row.algorithm, row.as_of,
                             int(row.list_length), settings, summary, recommender_root(state) / row.folder, files,
                             int(row.total_bytes), row.author, row.created_at)


def load_recommender(state: Engine, version: int | None = None) -> StoredRecommender:
    """Version ``version`` (the latest when None); AppStateError when there is none."""
    if version is not None and (isinstance(version, bool) or not isinstance(version, int | np.integer)):
        raise AppStateError(f"The version must be a whole number, not {version!r}.")
    rv = recommender_versions
    query = select(rv).where(rv.c.version == int(version)) if version is not None else \
        select(rv).order_by(rv.c.version.desc())
    with _database_errors(state), state.connect() as conn:
        row = conn.execute(query.limit(1)).first()
    if row is None:
        raise AppStateError(f"There is no stored recommender version {version}." if version is not None else
                            "No recommender has been trained yet: train one with `python -m analytics recommend "
                            "train` (or on the Recommendations page).")
    return _from_row(state, row)


def latest_recommender(state: Engine) -> StoredRecommender | None:
    """The newest version, or None when none was trained."""
    with _database_errors(state), state.connect() as conn:
        row = conn.execute(select(recommender_versions).order_by(recommender_versions.c.version.desc())
                           .limit(1)).first()
    return None if row is None else _from_row(state, row)


def list_recommenders(state: Engine) -> pd.DataFrame:
    """Every stored version, newest first: ``version, algorithm, as_of, list_length, members, total_bytes,
    author, created_at``."""
    rv = recommender_versions
    with _database_errors(state), state.connect() as conn:
        rows = conn.execute(select(rv).order_by(rv.c.version.desc())).all()
    records = []
    for row in rows:
        stored = _from_row(state, row)
        records.append({"version": stored.version, "algorithm": stored.algorithm, "as_of": stored.as_of,
                        "list_length": stored.list_length, "members": stored.summary.get("members"),
                        "total_bytes": stored.total_bytes, "author": stored.author,
                        "created_at": stored.created_at})
    frame = pd.DataFrame(records, columns=VERSION_COLUMNS)
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    return frame


# --- reading the files ------------------------------------------------------------------------------------

def _checked(stored: StoredRecommender, name: str, verify: bool = True) -> Path:
    path = stored.folder / name
    fix = (f"Restore the folder {stored.folder} (or set {RECOMMENDER_DIR_ENV} to where it lives), or train a new "
           "version.")
    if not path.is_file():
        raise StateError(f"The file {name} of recommender {stored.label} is missing from {stored.folder}.", fix)
    expected = stored.files.get(name, {})
    if path.stat().st_size != expected.get("bytes") or (verify and _sha256(path) != expected.get("sha256")):
        raise StateError(f"The file {name} of recommender {stored.label} has changed since it was stored "
                         "(its SHA-256 differs).", fix)
    return path


def read_model_bytes(stored: StoredRecommender) -> bytes:
    """The model blob, checked against its SHA-256."""
    return _checked(stored, MODEL_FILE).read_bytes()


def read_members(stored: StoredRecommender, verify: bool = True) -> pa.Table:
    return pq.read_table(_checked(stored, MEMBERS_FILE, verify))


def read_products(stored: StoredRecommender, verify: bool = True) -> pa.Table:
    return pq.read_table(_checked(stored, PRODUCTS_FILE, verify))


def read_lists(stored: StoredRecommender, members: Sequence[int] | np.ndarray | None = None,
               max_rank: int | None = None, verify: bool = True) -> pa.Table:
    """The stored list rows of ``members`` (member codes; default every member), ranks up to ``max_rank``,
    ordered by member code and rank. One or a few members are read from their row groups only."""
    path = _checked(stored, LISTS_FILE, verify)
    codes = None if members is None else np.unique(np.asarray(members, dtype=np.int64))
    if codes is not None and codes.size <= 64:
        table = pq.read_table(path, filters=[("member", "in", codes.tolist())]) if codes.size else \
            pq.read_table(path).slice(0, 0)
    else:
        table = pq.read_table(path)
        if codes is not None:
            table = table.filter(pa.array(np.isin(table.column("member").to_numpy(), codes)))
    if max_rank is not None:
        table = table.filter(pc.less_equal(table.column("rank"), max_rank))
    return table


# --- campaign links ---------------------------------------------------------------------------------------

def _campaign_id(campaign_id: object) -> str:
    return _checked_text(campaign_id, "campaign id", MAX_CAMPAIGN_ID_LENGTH)


def campaign_link(state: Engine, campaign_id: str) -> CampaignLink | None:
    """The version a campaign's recommendation export used, or None when none was recorded."""
    rc = recommendation_campaigns
    with _database_errors(state), state.connect() as conn:
        row = conn.execute(select(rc).where(rc.c.campaign_id == str(campaign_id).strip())).first()
    return None if row is None else CampaignLink(row.campaign_id, int(row.version), int(row.list_length),
                                                 int(row.members), row.author, row.created_at)


class CampaignLinkError(AppStateError):
    """A campaign already linked to another version or list length."""


def link_campaign(state: Engine, campaign_id: str, version: int, list_length: int, members: int,
                  author: str) -> CampaignLink:
    """Record that ``campaign_id`` uses the top ``list_length`` of ``version`` (with an audit-log row, in one
    transaction). The first link stays: linking again with the same version and length returns it; another
    version or length is refused, so a campaign's read-out always measures the lists it was sent."""
    clean_id, clean_author = _campaign_id(campaign_id), _checked_text(author, "author", MAX_AUTHOR_LENGTH)
    existing = campaign_link(state, clean_id)
    if existing is None:
        try:
            with _database_errors(state), _write_transaction(state) as conn:
                created_at = _utc_now()
                conn.execute(insert(recommendation_campaigns).values(
                    campaign_id=clean_id, version=int(version), list_length=int(list_length), members=int(members),
                    author=clean_author, created_at=created_at))
                _insert_event(conn, clean_author, "link_recommendation_campaign",
                              {"campaign_id": clean_id, "version": int(version), "list_length": int(list_length),
                               "members": int(members)}, created_at)
            return CampaignLink(clean_id, int(version), int(list_length), int(members), clean_author, created_at)
        except StateError:
            existing = campaign_link(state, clean_id)  # a concurrent first export won the race
            if existing is None:
                raise
    if (existing.version, existing.list_length) != (int(version), int(list_length)):
        raise CampaignLinkError(
            f"Campaign {clean_id} was exported with the top {existing.list_length} of recommender "
            f"v{existing.version} on {existing.created_at:%d %b %Y}; its read-out measures those lists. Export it "
            f"again with v{existing.version} and {existing.list_length} items, or use another campaign key.")
    return existing
