"""Bring your own data: import a shop's transaction, clickstream and basket files into the warehouse.

``import_file(url, kind, path, options)`` reads a file (CSV, CSV.GZ or XLSX), checks every row,
shapes it into the warehouse contract and lands it in one transaction; ``preview_file`` shows the
first rows and the column mapping before anything is written. Kinds:

* ``transactions`` - line-level sales (:mod:`analytics.importers.transactions`),
* ``events`` - clickstream logs (:mod:`analytics.importers.events`),
* ``baskets`` - one basket per line (:mod:`analytics.importers.baskets`).

Guarantees (see :mod:`analytics.importers.loading`): an import lands whole or not at all; the same
file twice changes nothing (fingerprint, then natural keys); rows the file does not concern are
never touched; every row left out is reported with its row number, column, value and reason. A
file that cannot be used raises :class:`ImportRefused` (``problem``, ``fix``, ``rejected``) and
changes nothing; a warehouse that cannot be written raises ``WarehouseError``.

Files are streamed: DuckDB's CSV reader (or openpyxl's read-only mode for XLSX) feeds a staging
database, so a large file never has to fit in pandas. Command line: ``python -m analytics.importers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from analytics.errors import ImportRefused, report_bug
from analytics.i18n import N_, _
from analytics.importers.baskets import stage_baskets
from analytics.importers.errors import empty_rejects
from analytics.importers.events import stage_events
from analytics.importers.loading import PreviousImport, import_refusal, imports_log, new_log_entry, open_target
from analytics.importers.reading import (
    DELIMITERS,
    ENCODINGS,
    WHITESPACE,
    SourceFile,
    check_readable,
    describe_date_format,
    detect_date_format,
    file_format,
    fingerprint,
    stage_csv,
    stage_lines,
    stage_xlsx,
)
from analytics.importers.roles import (
    KINDS,
    ROLES,
    MappingError,
    Role,
    detect_layout,
    missing_required,
    resolve_mapping,
)
from analytics.importers.staging import Staging
from analytics.importers.transactions import stage_transactions
from analytics.storage import contract
from analytics.storage.locks import warehouse_write_lock

__all__ = [
    "DELIMITERS",
    "ENCODINGS",
    "KINDS",
    "ROLES",
    "WHITESPACE",
    "FilePreview",
    "ImportOptions",
    "ImportRefused",
    "ImportResult",
    "PreviousImport",
    "Role",
    "import_file",
    "import_history",
    "import_refusal",
    "import_url",
    "preview_file",
]

Progress = Callable[[float, str], None]
#: A writer's URL for imports (the warehouse URL given to analyses can then be a read-only account).
IMPORT_URL_ENV = "MEMBERLENS_IMPORT_URL"


def import_url(warehouse_url: str, environ: Mapping[str, str] | None = None,
               paths: Sequence[Path] | None = None) -> str:
    """Where imports write: ``MEMBERLENS_IMPORT_URL``, else ``[connections.warehouse_import]`` in the secrets
    files, else the warehouse URL itself (the embedded DuckDB file; or a PostgreSQL account that may write)."""
    import os

    from analytics.storage.databases import secrets_paths, url_from_secrets

    env = os.environ if environ is None else environ
    configured = env.get(IMPORT_URL_ENV, "").strip()
    return configured or url_from_secrets("warehouse_import", secrets_paths() if paths is None else paths) \
        or warehouse_url
_DATE_ROLE = {"transactions": "invoice_date", "events": "occurred_at"}


@dataclass(frozen=True)
class ImportOptions:
    """How to read a file. Every field has a default that suits the well-known layouts."""

    mapping: Mapping[str, str | None] = field(default_factory=dict)  # role -> the file's column name
    delimiter: str = ","
    encoding: str = "utf-8"
    date_format: str | None = None  # strptime format; None: detected from the values
    sheet: str | None = None  # XLSX: one sheet; None: every sheet with the first one's header
    skip_bad_rows: bool = False  # load the readable rows and list the others, instead of refusing
    replace: bool = False  # empty MemberLens's tables first (e.g. to replace the demo shop)
    channel: str | None = None  # sales channel of every imported order (the files do not say)
    basket_date: date | None = None  # baskets: the day they were bought (default: today)


@dataclass(frozen=True)
class FilePreview:
    """What the importer sees in a file before importing it."""

    kind: str
    format: str
    columns: tuple[str, ...]
    rows: pd.DataFrame  # the first rows, as text
    layout: str | None  # a recognised layout, e.g. "UCI Online Retail"
    mapping: dict[str, str | None]  # role -> column name (None: not in the file)
    missing: tuple[str, ...]  # labels of required roles no column fills
    sheets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    """What an import did. ``inserted`` counts new rows per table; ``already_present`` staged rows
    whose key was in the warehouse already (an overlapping file); ``rejected`` the rows left out."""

    kind: str
    file_name: str
    fingerprint: str
    already_imported: PreviousImport | None
    rows_read: int = 0
    rows_rejected: int = 0
    inserted: dict[str, int] = field(default_factory=dict)
    already_present: dict[str, int] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)
    rejected: pd.DataFrame = field(default_factory=empty_rejects)
    layout: str | None = None
    mapping: dict[str, str | None] = field(default_factory=dict)
    date_format: str | None = None
    orders_differing: int = 0  # orders already present whose status or amount differ in this file (kept as were)

    @property
    def rows_accepted(self) -> int:
        return self.rows_read - self.rows_rejected

    def rejected_by_reason(self) -> pd.DataFrame:
        """Rejected rows counted per reason (the reason's row number suffix removed)."""
        if self.rejected.empty:
            return pd.DataFrame({"reason": pd.Series(dtype=object), "rows": pd.Series(dtype="int64")})
        reasons = self.rejected["reason"].str.replace(r" \d+$", " N", regex=True)
        return (reasons.value_counts().rename_axis("reason").reset_index(name="rows")
                .sort_values(["rows", "reason"], ascending=[False, True], ignore_index=True))


def _check_options(kind: str, options: ImportOptions) -> None:
    if kind not in KINDS:
        raise ImportRefused(_("Unknown import kind {kind}.").format(kind=repr(kind)),
                            _("Choose one of {choices}.").format(choices=", ".join(KINDS)))
    if options.delimiter not in DELIMITERS:
        raise ImportRefused(_("Unsupported delimiter {delimiter}.").format(delimiter=repr(options.delimiter)),
                            _("Choose comma, semicolon, tab, vertical bar or whitespace."))
    if options.encoding not in ENCODINGS:
        raise ImportRefused(_("Unsupported encoding {encoding}.").format(encoding=repr(options.encoding)),
                            _("Choose one of {choices}.").format(choices=", ".join(ENCODINGS)))
    for what, text in ((N_("sales channel"), options.channel), (N_("date format"), options.date_format),
                       (N_("sheet name"), options.sheet)):
        if text is not None and (len(text) > 100 or "\x00" in text):
            raise ImportRefused(_("The {what} is too long (at most 100 characters).").format(what=_(what)),
                                _("Shorten the {what}.").format(what=_(what)))
    if len(options.mapping) > 50 or any(v is not None and len(str(v)) > 200 for v in options.mapping.values()):
        raise ImportRefused(_("The column mapping is too large."), _("Map each role to one of the file's columns."))
    if options.basket_date is not None and not 1900 <= options.basket_date.year <= 2999:
        raise ImportRefused(_("The baskets' day {day} is outside the years 1900 to 2999.").format(
            day=options.basket_date), _("Choose the day the baskets were bought."))


def _stage_file(con: duckdb.DuckDBPyConnection, kind: str, path: Path, options: ImportOptions) -> SourceFile:
    if file_format(path) == "xlsx":
        return stage_xlsx(con, path, options.sheet)
    if kind == "baskets":
        return stage_lines(con, path, options.encoding)
    return stage_csv(con, path, options.delimiter, options.encoding)


def _roles(kind: str, source: SourceFile, options: ImportOptions) -> dict[str, int | None]:
    if kind == "baskets":
        return {}
    try:
        roles = resolve_mapping(kind, source.columns, options.mapping)
    except MappingError as exc:
        raise ImportRefused(str(exc) + ".", _("Correct the column mapping.")) from None
    missing = missing_required(kind, roles)
    if missing:
        labels = ", ".join(_("{role} (e.g. {example})").format(role=_(r.label), example=r.aliases[0]) for r in missing)
        raise ImportRefused(
            _("{file} has no column for {roles}; its columns are {columns}.").format(
                file=source.path.name, roles=labels, columns=", ".join(source.columns)),
            _("Map those roles to the file's columns (--map ROLE=COLUMN on the command line), or check that this "
              "is a {kind} file.").format(kind=kind))
    return roles


def _named(source: SourceFile, roles: Mapping[str, int | None]) -> dict[str, str | None]:
    return {role: None if pos is None else source.columns[pos] for role, pos in roles.items()}


def preview_file(kind: str, path: str | Path, options: ImportOptions = ImportOptions(), rows: int = 20) -> FilePreview:
    """The first ``rows`` rows and the column mapping the import would use (reads only the start)."""
    _check_options(kind, options)
    path = Path(path)
    check_readable(path, decompress=False)
    fmt = file_format(path)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        if fmt == "xlsx":
            source = stage_xlsx(con, path, options.sheet, max_rows=rows)
        elif kind == "baskets":
            source = stage_lines(con, path, options.encoding, max_rows=rows)
        else:
            source = stage_csv(con, path, options.delimiter, options.encoding, max_rows=rows)
        names = [source.internal(i) for i in range(len(source.columns))]
        frame = con.execute(f"SELECT {', '.join(names)} FROM _raw ORDER BY _rid LIMIT {int(rows)}").df()
        frame.columns = list(source.columns)
        if kind == "baskets":
            return FilePreview(kind, fmt, source.columns, frame, None, {}, (), source.sheets)
        try:
            resolved = resolve_mapping(kind, source.columns, options.mapping)
        except MappingError:
            resolved = resolve_mapping(kind, source.columns, {})
        missing = tuple(r.label for r in missing_required(kind, resolved))
        return FilePreview(kind, fmt, source.columns, frame, detect_layout(kind, source.columns),
                           _named(source, resolved), missing, source.sheets)
    finally:
        con.close()


def import_file(
    url: str,
    kind: str,
    path: str | Path,
    options: ImportOptions = ImportOptions(),
    *,
    file_name: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one file into the warehouse at ``url``; see the module docstring for the guarantees.

    ``file_name`` is the name to log and show (an uploaded file's original name); ``progress`` is
    called with (fraction done, what is happening).
    """
    _check_options(kind, options)
    path = Path(path)
    check_readable(path)
    report = progress or (lambda fraction, message: None)
    name = file_name or path.name
    report(0.02, _("Fingerprinting the file"))
    fp = fingerprint(path, kind)
    try:
        return _import_locked(url, kind, path, options, name, fp, report)
    except _AlreadyImported as again:
        report(1.0, _("Already imported"))
        return ImportResult(kind, name, fp, again.previous)


def _import_locked(url: str, kind: str, path: Path, options: ImportOptions, name: str, fp: str,
                   report: Progress) -> ImportResult:
    with warehouse_write_lock(url, _("the import of {file}").format(file=name)), open_target(url) as target:
        previous = None if options.replace else target.previous_import(fp)
        if previous is not None:
            report(1.0, _("Already imported"))
            return ImportResult(kind, name, fp, previous)
        report(0.05, _("Reading {file}").format(file=name))
        source = _stage_file(target.staging, kind, path, options)
        stage = Staging(target.staging, source)
        roles = _roles(kind, source, options)
        report(0.35, _("Checking every row"))
        date_format = None
        if kind in _DATE_ROLE:
            position = roles[_DATE_ROLE[kind]]
            date_format = detect_date_format(target.staging, source.internal(position), options.date_format)
        if kind == "transactions":
            summary = stage_transactions(stage, roles, date_format, options.channel, options.skip_bad_rows)
        elif kind == "events":
            summary = stage_events(stage, roles, date_format, options.skip_bad_rows)
        else:
            summary = stage_baskets(stage, options.basket_date or date.today(), options.channel, fp[:8])
        rows_read = stage.rows_read()
        rejected = stage.rejects()
        rows_rejected = stage.rejected_rows()
        temporary = _temp_tables(target.staging)
        staged = {t.name: stage.stage_count(t) for t in contract.WAREHOUSE_TABLES if f"_stage_{t.name}" in temporary}
        if rows_read == 0:
            raise ImportRefused(_("{file} holds a header but no data rows.").format(file=name),
                                _("Export the data again."))
        if not any(staged.values()):
            raise ImportRefused(
                _("None of the {rows} rows of {file} can be imported: every one was excluded.").format(
                    rows=f"{rows_read:,}", file=name),
                _("See the rejected rows for the reasons."), rejected)
        report(0.7, _("Loading into the warehouse"))
        with target.transaction():
            target.exclusive()  # writers on other machines (PostgreSQL) wait here
            previous = None if options.replace else target.previous_import(fp, in_transaction=True)
            if previous is not None:  # the same file landed meanwhile: checked again inside the transaction
                raise _AlreadyImported(previous)
            target.prepare(options.replace)
            for table in staged:
                target.ship(next(t for t in contract.WAREHOUSE_TABLES if t.name == table))
            inserted = target.load(list(staged), report)
            differing = inserted.pop("orders_differing", 0)
            layout = detect_layout(kind, source.columns) if kind in _DATE_ROLE else None
            details = {"options": _options_record(options, date_format), "inserted": inserted,
                       "summary": summary, "layout": layout}
            target.record(new_log_entry(kind, name, fp, rows_read, rows_rejected, details))
        report(0.95, _("Tidying up"))
        try:  # committed: whatever happens now, the import happened and is reported as such
            target.after_commit([t for t, n in inserted.items() if n])
        except Exception as exc:  # noqa: BLE001 - statistics or a checkpoint: housekeeping, not the import
            report_bug(exc, f"housekeeping after importing {name}")
    report(1.0, _("Done"))
    return ImportResult(
        kind, name, fp, None, rows_read, rows_rejected, inserted,
        {t: staged[t] - inserted.get(t, 0) for t in staged}, summary, rejected, layout, _named(source, roles),
        describe_date_format(date_format) if date_format else None, differing,
    )


class _AlreadyImported(Exception):
    def __init__(self, previous: PreviousImport) -> None:
        super().__init__(previous.import_id)
        self.previous = previous


def import_history(bind) -> pd.DataFrame:
    """Earlier imports into the warehouse, newest first (empty if nothing was ever imported)."""
    from sqlalchemy import select

    from analytics.storage.db import read_frame
    from analytics.storage.warehouse import table_names

    columns = ["imported_at", "kind", "file_name", "rows_read", "rows_rejected", "import_id", "fingerprint"]
    if imports_log.name not in {n.lower() for n in table_names(bind)}:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    query = select(*(imports_log.c[c] for c in columns)).order_by(imports_log.c.imported_at.desc())
    return read_frame(bind, query)


def _temp_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}


def _options_record(options: ImportOptions, date_format: str | None) -> dict[str, object]:
    return {"mapping": dict(options.mapping), "delimiter": options.delimiter, "encoding": options.encoding,
            "date_format": date_format, "sheet": options.sheet, "skip_bad_rows": options.skip_bad_rows,
            "replace": options.replace, "channel": options.channel,
            "basket_date": options.basket_date.isoformat() if options.basket_date else None}
