"""Uploaded files saved to disk, so importers can stream them like any other file.

Streamlit keeps an upload in memory; the importers read files by path (DuckDB's CSV reader,
openpyxl), so each upload is written once under ``<data dir>/uploads/<upload id>/<file name>``.
Uploads older than a day are removed whenever a new one is saved.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from streamlit.runtime.uploaded_file_manager import UploadedFile

from analytics.storage.databases import data_dir

KEEP_SECONDS = 24 * 3600
IMPORT_DIRS_ENV = "MEMBERLENS_IMPORT_DIRS"


def import_folders() -> list[Path]:
    """Folders whose files the Import data page may read by path: ``<data dir>/imports`` and those in
    ``MEMBERLENS_IMPORT_DIRS`` (separated by the OS path separator). Anyone who can open the app can
    preview what the page reads, so it never reads the server's other files."""
    folders = [data_dir() / "imports"]
    folders += [Path(p).expanduser() for p in os.environ.get(IMPORT_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    return [f.resolve() for f in folders]


def readable_server_path(typed: str) -> Path | None:
    """The typed path if it lies inside an import folder (symlinks resolved), else None."""
    path = Path(typed).expanduser().resolve()
    return path if any(path.is_relative_to(folder) for folder in import_folders()) else None


def uploads_dir() -> Path:
    return data_dir() / "uploads"


def saved_upload(upload: UploadedFile) -> Path:
    """The upload as a file on disk (written on first use, then reused on every rerun)."""
    folder = uploads_dir() / "".join(ch for ch in upload.file_id if ch.isalnum() or ch in "-_")
    target = folder / Path(upload.name).name
    if not target.exists():
        _remove_old(uploads_dir())
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with open(partial, "wb") as out:
            upload.seek(0)
            shutil.copyfileobj(upload, out, length=1 << 20)
        partial.replace(target)
    return target


def _remove_old(root: Path) -> None:
    if not root.exists():
        return
    cutoff = time.time() - KEEP_SECONDS
    for folder in root.iterdir():
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
