"""The score store: every member's scores under a model version on a day, kept by MemberLens beside an embedded
DuckDB warehouse so that a targeting condition on a score reads them instead of computing them.

Why: a condition such as "churn risk >= 0.6" scores the members the audience's other conditions keep, and scoring
reads all their orders, points and sessions. At 1M members that made a preview 2.4x as long as the same preview
without the condition (0.73 s -> 1.75 s). The scores of a model on a day do not change until the warehouse does,
so they are computed once, when a model is trained or scored (``python -m analytics models train|score``, the
Predictions page's "Train now", the demo set-up), and a condition reads them back (the approach of Cube's
pre-aggregations; docs/architecture.md, "Acceleration: the score store").

When it is used, and why the result is the same:

* only on an **embedded DuckDB file** warehouse: DuckDB reads the store's Parquet files itself (the one folder it
  may read besides its spill folder). PostgreSQL, Spark and other warehouses cannot read the app's files: there,
  and whenever no stored file fits, the condition is computed in the warehouse exactly as before.
* a file fits a condition when it holds **this model** (by a digest of the model itself, not only its version
  number), **this day**, and **this state of the warehouse file** (its size and modification time, and its
  write-ahead log's). Any write to the warehouse changes the state, so stale scores are never read.
* the file is written from the same SQL the condition would run (:func:`analytics.predictions.score_select` for
  every member), so the members selected are identical (tests compare both ways on the same warehouse).

The store is a folder of Parquet files (``data/score_store`` by default), at most :data:`MAX_FILES` of them; files
of an older warehouse state are deleted when a new one is written.

The same folder keeps **rollups**: results MemberLens derives from the whole warehouse for a state, not per model
or day (:mod:`analytics.purchase_rollup`: completed purchases by member, channel, category and day). They follow
the same rules: named by the warehouse state, written whole, read only while the warehouse is unchanged. A rollup
may be a folder of files (:meth:`ScoreStore.write_folder`: :mod:`analytics.funnel_store`'s sorted events).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect

#: Most stored files kept (each is a model's scores on a day: about 20 MB at 1M members).
MAX_FILES = 24
_DIALECT_ATTRIBUTE = "memberlens_score_store"
#: Rows per row group of a rollup (DuckDB's own row group size).
ROLLUP_ROW_GROUP = 122_880
_log = logging.getLogger(__name__)
_building: set[Path] = set()
_building_lock = threading.Lock()


@dataclass(frozen=True)
class ScoreStore:
    """The store's folder and the DuckDB warehouse file whose scores it keeps."""

    directory: Path
    warehouse: Path

    def state(self) -> str:
        """A digest of the warehouse file's current state: it changes with any write to the warehouse. Its first
        half names the warehouse file (:meth:`owner`), so a folder shared by two warehouses tells their files
        apart."""
        parts = []
        for path in (self.warehouse, self.warehouse.with_name(self.warehouse.name + ".wal")):
            try:
                info = path.stat()
            except FileNotFoundError:
                parts.append(f"{path.name}:-")
            else:
                parts.append(f"{path.name}:{info.st_size}:{info.st_mtime_ns}")
        where = str(self.warehouse.resolve())
        return self.owner() + hashlib.sha1("|".join([where, *parts]).encode()).hexdigest()[:8]

    def owner(self) -> str:
        """A digest of the warehouse file's path: the first half of every :meth:`state` of it."""
        return hashlib.sha1(str(self.warehouse.resolve()).encode()).hexdigest()[:8]

    def file_for(self, kind: str, model: Mapping[str, Any], as_of: date, state: str | None = None) -> Path:
        """Where ``model``'s scores on ``as_of`` are kept for the warehouse ``state`` (the current one by default)."""
        return self.directory / (f"{kind}-{as_of:%Y%m%d}-{model_digest(model)}-{state or self.state()}.parquet")

    def find(self, kind: str, model: Mapping[str, Any], as_of: date) -> Path | None:
        """The stored scores that fit (this model, this day, the warehouse as it is now), or None."""
        path = self.file_for(kind, model, as_of)
        return path if path.is_file() else None

    def write(self, kind: str, model: Mapping[str, Any], as_of: date, state: str, table: Any) -> Path:
        """Keep ``table`` (a pyarrow table: ``member_id`` and the model's scores) as the scores of ``model`` on
        ``as_of`` for the warehouse ``state`` read before they were computed; whole or not at all."""
        return self._keep(self.file_for(kind, model, as_of, state), state, table)

    def rollup_file(self, name: str, state: str | None = None) -> Path:
        """Where the rollup ``name`` (e.g. :data:`analytics.purchase_rollup.ROLLUP`) of the warehouse ``state`` (the
        current one by default) is kept."""
        return self.directory / f"{name}-{state or self.state()}.parquet"

    def find_rollup(self, name: str) -> Path | None:
        """The rollup ``name`` of the warehouse as it is now, or None."""
        path = self.rollup_file(name)
        return path if path.is_file() else None

    def write_rollup(self, name: str, state: str, table: Any) -> Path:
        """Keep ``table`` (a pyarrow table, in the order its readers filter on) as the rollup ``name`` of the
        warehouse ``state`` read before it was computed; whole or not at all. Row groups of :data:`ROLLUP_ROW_GROUP`
        rows, so that a reader's filter skips the groups whose statistics rule them out."""
        return self._keep(self.rollup_file(name, state), state, table, ROLLUP_ROW_GROUP)

    def folder(self, name: str, state: str | None = None) -> Path:
        """Where the rollup ``name`` kept as a folder of files (:mod:`analytics.funnel_store`'s arrays) of the
        warehouse ``state`` (the current one by default) is kept."""
        return self.directory / f"{name}-{state or self.state()}"

    def find_folder(self, name: str) -> Path | None:
        """The folder rollup ``name`` of the warehouse as it is now, or None."""
        path = self.folder(name)
        return path if path.is_dir() else None

    def write_folder(self, name: str, state: str, write: Callable[[Path], None]) -> Path:
        """Keep what ``write`` puts into an empty folder as the folder rollup ``name`` of the warehouse ``state``
        read before it was computed; whole or not at all (written aside, then renamed into place)."""
        path = self.folder(name, state)
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            write(partial)
            shutil.rmtree(path, ignore_errors=True)  # another process kept the same state meanwhile
            os.replace(partial, path)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        self._prune(state)
        return path

    def _keep(self, path: Path, state: str, table: Any, row_group: int | None = None) -> Path:
        import pyarrow.parquet as pq

        self.directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            pq.write_table(table, partial, row_group_size=row_group)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        self._prune(state)
        return path

    def _prune(self, state: str) -> None:
        """Delete this warehouse's files of its other states, then the oldest beyond :data:`MAX_FILES`. Another
        warehouse's files (a folder shared by two warehouse files) are left to it: one may be being read."""
        dated = []
        for path in self.directory.iterdir():
            if path.name.startswith(".") or not (path.suffix == ".parquet" or path.is_dir()):
                continue
            try:
                dated.append((path.stat().st_mtime_ns, path))
            except FileNotFoundError:  # another process pruned it meanwhile
                continue
        mine = f"-{self.owner()}"
        for index, (_mtime, path) in enumerate(sorted(dated, reverse=True)):
            stale = mine in path.stem and not path.stem.endswith(f"-{state}")
            if stale or index >= MAX_FILES:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def build_in_background(target: Path, build: Callable[[], Any], what: str) -> bool:
    """Run ``build`` (which keeps ``target``) in a background thread unless one is building ``target`` already;
    True when one started. A failure is logged, not raised: what it builds is a cache the warehouse answers
    without."""
    with _building_lock:
        if target in _building:
            return False
        _building.add(target)

    def run() -> None:
        try:
            build()
        except Exception:  # noqa: BLE001 - a cache: the warehouse answers without it (a full disk, a stop)
            _log.warning("building the %s failed", what, exc_info=True)
        finally:
            with _building_lock:
                _building.discard(target)

    threading.Thread(target=run, name=f"memberlens-{what.replace(' ', '-')}", daemon=True).start()
    return True


def model_digest(model: Mapping[str, Any]) -> str:
    """A digest of a model's content (two versions with the same content share their scores)."""
    text = json.dumps(model, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def enable(engine: Engine, store: ScoreStore | None) -> None:
    """Let statements compiled for ``engine`` read ``store`` (None: none); its connections may read its folder."""
    setattr(engine.dialect, _DIALECT_ATTRIBUTE, store)


def store_for(dialect: Dialect) -> ScoreStore | None:
    """The score store statements for this dialect (one engine's) may read, or None."""
    return getattr(dialect, _DIALECT_ATTRIBUTE, None)
