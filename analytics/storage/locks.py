"""One writer at a time per warehouse: imports, erasures, corrections and retention purges take this lock.

A lock file per warehouse URL in ``data/locks/`` held with ``flock`` (every process on this machine: the app's
sessions, the command line) plus a lock per URL inside the process (sessions of one server are threads, and
``flock`` is per open file, not per thread). Taken without waiting: a second writer is told that one is already
running, instead of queueing behind an import that may take minutes. PostgreSQL imports additionally take an
advisory lock inside their transaction (:mod:`analytics.importers.loading`), for writers on other machines.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from analytics.errors import WarehouseError
from analytics.i18n import N_, _
from analytics.storage.databases import data_dir

_process_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


class WarehouseBusy(WarehouseError):
    """Another import or change is writing to the same warehouse right now; nothing was done."""


def lock_key(url: str) -> str:
    """A short stable name for the warehouse (the URL itself, with its password, never reaches the disk)."""
    return hashlib.sha256(url.encode()).hexdigest()[:24]


@contextmanager
def warehouse_write_lock(url: str, what: str = N_("an import")) -> Iterator[None]:
    """Hold the warehouse's write lock while the block runs; :class:`WarehouseBusy` if another writer holds it.
    ``what`` names the change in words (in English, marked for the catalog; or already in the reader's language)."""
    key = lock_key(url)
    with _guard:
        local = _process_locks.setdefault(key, threading.Lock())
    busy = WarehouseBusy(_("Another import or change is writing to this warehouse right now, so {what} did not "
                           "start.").format(what=_(what)),
                         _("Try again when it has finished (the Import data page and the audit log show imports)."))
    if not local.acquire(blocking=False):
        raise busy
    try:
        folder = data_dir() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(folder / f"warehouse-{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise busy from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            os.close(handle)
    finally:
        local.release()
