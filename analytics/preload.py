"""The heavy libraries some analyses need (scikit-learn, SciPy's statistics and optimiser), imported when first used
and, in the app, ahead of use in the background.

Why: importing them costs seconds (``sklearn.cluster`` 1.3 s and ``scipy.stats`` 0.7 s on the 2-core reference
machine), which the app's first page must not pay, so the analyses import them where they use them. Paid instead on
the first visit of Member clusters, it was a third of that page's 3.7 s. So once the app has drawn its first page,
:func:`preload_in_background` imports them in a daemon thread while the reader looks at that page.

Every such import goes through :func:`heavy_imports`, one process-wide lock shared with the background thread:
two threads importing parts of one package at once can meet in its circular imports, where Python hands one of
them a half-initialised module ("cannot import name ... from partially initialized module"). Under the lock an
analysis that needs a library the thread is importing waits for it, which costs no more than importing it itself.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: What the background thread imports, in the order the app's pages are likely to need them.
LIBRARIES: tuple[str, ...] = (
    "sklearn.cluster", "sklearn.decomposition", "sklearn.metrics", "sklearn.mixture", "scipy.stats",
    "sklearn.linear_model", "sklearn.ensemble", "scipy.optimize",
)

_lock = threading.RLock()  # held around every heavy import
_start_lock = threading.Lock()  # only for starting the thread once: never waits on an import
_started = False
_log = logging.getLogger(__name__)


@contextmanager
def heavy_imports() -> Iterator[None]:
    """Hold the import lock around ``from sklearn... import ...`` (see the module docstring)."""
    with _lock:
        yield


def preload_in_background(libraries: tuple[str, ...] = LIBRARIES) -> threading.Thread | None:
    """Import ``libraries`` in a daemon thread, once per process; returns the thread, or None when it was started
    before. A library that fails to import is logged and skipped: the analysis that needs it reports the error."""
    global _started
    with _start_lock:
        if _started:
            return None
        _started = True
    thread = threading.Thread(target=_import_all, args=(libraries,), name="memberlens-preload", daemon=True)
    thread.start()
    return thread


def _import_all(libraries: tuple[str, ...]) -> None:
    for name in libraries:
        try:
            with _lock:  # one library at a time, so an analysis waits for one import at most
                importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a broken optional install must not take the app down
            _log.warning("could not preload %s", name, exc_info=True)
