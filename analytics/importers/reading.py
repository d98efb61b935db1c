"""Reading a file into the staging database: its header, its rows as text, its fingerprint.

Files are never loaded into pandas whole. CSV (plain or gzip) goes through DuckDB's parallel CSV
reader straight into a staging table of text columns (``_raw``); XLSX is streamed row by row with
openpyxl's read-only mode in batches. Every row keeps its position: ``_row`` is the row number a
spreadsheet shows for it (the header is row 1), ``_sheet`` the worksheet (XLSX only).

Columns are staged under positional names ``c0 .. cN`` so that no name from the file ever reaches
SQL text; the file's own names are kept alongside for messages. Values are parsed later, in SQL,
where an unreadable value can be reported with its row and column.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from analytics.errors import ImportRefused
from analytics.i18n import N_, _

ENCODINGS: tuple[str, ...] = ("utf-8", "latin-1", "utf-16")
#: Runs of spaces or tabs (files that align columns with spaces, such as CDNOW's), written as the word.
WHITESPACE = "whitespace"
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|", WHITESPACE)
DELIMITER_NAMES = {",": N_("comma"), ";": N_("semicolon"), "\t": N_("tab"), "|": N_("vertical bar"),
                   WHITESPACE: N_("whitespace")}
XLSX_BATCH_ROWS = 50_000
_GZIP_MAGIC = b"\x1f\x8b"
_XLSX_MAGIC = b"PK\x03\x04"

# --- limits on what a file may be (a file is user input: bounded before it is read) ---------------------------
#: Largest file after decompression (bytes): a .gz or .xlsx expanding beyond this is refused before it is staged.
MAX_FILE_BYTES_ENV = "MEMBERLENS_IMPORT_MAX_BYTES"
MAX_FILE_BYTES = 4 * 1024**3
#: Most columns in a file's header.
MAX_COLUMNS = 500
#: Longest line (bytes), the header included.
MAX_LINE_BYTES = 1024**2
#: Most files inside an XLSX workbook (a workbook is a ZIP archive).
MAX_XLSX_ENTRIES = 10_000


def max_file_bytes() -> int:
    """The decompressed size limit (``MEMBERLENS_IMPORT_MAX_BYTES``, default 4 GiB)."""
    import os

    text = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else MAX_FILE_BYTES


def _too_big(path: Path, size: str) -> ImportRefused:
    return ImportRefused(_("{file} is {size} once decompressed; MemberLens imports files up to {limit} GiB.").format(
                             file=path.name, size=size, limit=f"{max_file_bytes() / 1024**3:.1f}"),
                         _("Split the export into smaller files (or raise {setting} on the server).").format(
                             setting=MAX_FILE_BYTES_ENV))


def check_size(path: Path, decompress: bool = True) -> None:
    """Refuse a file larger than :func:`max_file_bytes` once decompressed: a plain file by its size, a .gz by
    decompressing it (streamed, stopping at the limit: a compression bomb costs at most the limit), an XLSX by its
    archive's declared sizes (Python's ZIP reader never inflates an entry past its declared size). A damaged
    archive is refused as such."""
    import zipfile
    import zlib

    limit = max_file_bytes()
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head[:2] == _GZIP_MAGIC:
        if not decompress:  # a preview reads only the first rows
            return
        total = 0
        try:
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(1 << 20):
                    total += len(chunk)
                    if total > limit:
                        raise _too_big(path, _("more than {n} bytes").format(n=f"{limit:,}"))
        except (OSError, EOFError, zlib.error) as exc:
            raise ImportRefused(_("{file} is not a complete gzip file ({reason}).").format(file=path.name, reason=exc),
                                _("Compress the export again, or import it uncompressed.")) from None
        return
    if head == _XLSX_MAGIC or path.suffix.lower() == ".xlsx":
        try:
            with zipfile.ZipFile(path) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ImportRefused(_("{file} is not a readable XLSX workbook ({reason}).").format(file=path.name,
                                                                                              reason=exc),
                                _("Open it in Excel and save it again as .xlsx, or export it as CSV.")) from None
        if len(entries) > MAX_XLSX_ENTRIES:
            raise ImportRefused(_("{file} holds {n} parts; a workbook has far fewer.").format(
                file=path.name, n=f"{len(entries):,}"), _("Save the data as a plain XLSX workbook or as CSV."))
        declared = sum(e.file_size for e in entries)
        if declared > limit:
            raise _too_big(path, _("{n} bytes").format(n=f"{declared:,}"))
        return
    if path.stat().st_size > limit:
        raise _too_big(path, _("{n} bytes").format(n=f"{path.stat().st_size:,}"))


@dataclass(frozen=True)
class SourceFile:
    """A file as staged: its format, its columns (file names) and how it was read."""

    path: Path
    format: str  # csv | xlsx
    columns: tuple[str, ...]
    sheets: tuple[str, ...] = ()

    def internal(self, position: int) -> str:
        """The staging column holding the file's column at ``position``."""
        return f"c{position}"


def file_format(path: Path) -> str:
    """'xlsx' for Excel workbooks, else 'csv' (plain or gzip-compressed text)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == _XLSX_MAGIC or path.suffix.lower() == ".xlsx":
        return "xlsx"
    return "csv"


def fingerprint(path: Path, kind: str) -> str:
    """SHA-256 of the kind and the file's bytes: the same file imported again is recognised."""
    digest = hashlib.sha256(kind.encode() + b"\0")
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_readable(path: Path, decompress: bool = True) -> None:
    """Refuse a missing, empty or oversized file (``decompress``: measure a .gz by decompressing it; a preview,
    which reads only the first rows, skips that)."""
    if not path.exists():
        raise ImportRefused(_("There is no file at {path}.").format(path=path),
                            _("Check the path, or upload the file."))
    if path.is_dir():
        raise ImportRefused(_("{path} is a folder, not a file.").format(path=path), _("Choose one file."))
    if path.stat().st_size == 0:
        raise ImportRefused(_("{file} is empty (0 bytes).").format(file=path.name),
                            _("Export the data again; the file holds nothing."))
    check_size(path, decompress)


def _open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    with open(path, "rb") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
    binary = gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115 - wrapped below
    return io.TextIOWrapper(binary, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")


def read_header(path: Path, delimiter: str, encoding: str) -> list[str]:
    """The file's column names, with specific messages for an empty file, a wrong encoding or delimiter, a first
    line longer than :data:`MAX_LINE_BYTES` and more than :data:`MAX_COLUMNS` columns."""
    try:
        with _open_text(path, encoding) as text:
            first = text.readline(MAX_LINE_BYTES + 1)
        header = next(csv.reader([first], delimiter=delimiter), None)
    except UnicodeDecodeError:
        raise not_utf8(path, encoding, 1) from None
    except (OSError, EOFError) as exc:  # a truncated .gz, say
        raise ImportRefused(_("{file} cannot be read: {reason}.").format(file=path.name, reason=exc),
                            _("Check that the file is complete.")) from None
    except csv.Error as exc:
        raise ImportRefused(_("{file}: the first line cannot be read as CSV ({reason}).").format(file=path.name,
                                                                                                reason=exc),
                            _("Check the delimiter and the quotes of the header.")) from None
    if len(first) > MAX_LINE_BYTES:
        raise ImportRefused(_("The first line of {file} is longer than {n} characters.").format(
                                file=path.name, n=f"{MAX_LINE_BYTES:,}"),
                            _("This is not a shop's export with a header line; check the file."))
    if header is None or not any(h.strip() for h in header):
        raise ImportRefused(_("{file} has no header row (the first line is empty).").format(file=path.name),
                            _("Export the file with its column names on the first line."))
    if len(header) > MAX_COLUMNS:
        raise ImportRefused(_("{file} has {n} columns; MemberLens reads files of at most {most} columns.").format(
                                file=path.name, n=f"{len(header):,}", most=MAX_COLUMNS),
                            _("Export only the columns the import needs."))
    header = [h.strip()[:200] for h in header]
    if len(header) == 1 and delimiter != WHITESPACE and len(header[0].split()) > 1 and not any(
            d in header[0] for d in DELIMITERS[:4]):
        return header[0].split()  # columns aligned with spaces: read as whitespace-separated (see stage_csv)
    if len(header) == 1:
        others = [d for d in DELIMITERS if d != delimiter and d in header[0]]
        if others:
            found = others[0]
            raise ImportRefused(
                _("{file} does not look {delimiter}-separated: its header is one column {header}, which holds "
                  "{found}s.").format(file=path.name, delimiter=_(DELIMITER_NAMES[delimiter]),
                                      header=repr(header[0][:80]), found=_(DELIMITER_NAMES[found])),
                _("Choose {found} ({mark}) as the delimiter.").format(found=_(DELIMITER_NAMES[found]),
                                                                       mark=repr(found)),
            )
    return header


def not_utf8(path: Path, encoding: str, line: int | None) -> ImportRefused:
    alternatives = [e for e in ENCODINGS if e != encoding]
    problem = (_("{file} is not {encoding} text (line {line}): some bytes are not valid in that encoding.") if line
               else _("{file} is not {encoding} text: some bytes are not valid in that encoding."))
    return ImportRefused(
        problem.format(file=path.name, encoding=encoding, line=line),
        _("Choose the file's encoding ({choices}; Excel on Windows often writes latin-1), or save it as UTF-8.").format(
            choices=_(" or ").join(alternatives)),
    )


def explain_csv_error(exc: duckdb.Error, path: Path, encoding: str, columns: int) -> ImportRefused:
    """DuckDB's CSV reader messages turned into one specific sentence."""
    message = str(exc)
    line = re.search(r"Line: (\d+)", message)
    line_no = int(line.group(1)) if line else None
    if "maximum line size" in message.lower():
        return ImportRefused(_("Line {line} of {file} is longer than {n} bytes.").format(
                                 line=line_no, file=path.name, n=f"{MAX_LINE_BYTES:,}"),
                             _("A shop's export has short lines: check that this is the right file (and its "
                               "quotes)."))
    if "unicode" in message.lower() or "utf-8" in message.lower():
        return not_utf8(path, encoding, line_no)
    found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    if found:
        return ImportRefused(
            _("Line {line} of {file} has {found} fields where the header has {expected}.").format(
                line=line_no, file=path.name, found=found.group(2), expected=found.group(1)),
            _("A value probably holds the delimiter without quotes, or the line is cut short: correct that "
              "line (or quote the value) and import again."),
        )
    if "quote" in message.lower():
        return ImportRefused(_("{file} has an unclosed quote near line {line}.").format(file=path.name, line=line_no),
                             _("Close the quote on that line, or choose the right delimiter."))
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return ImportRefused(_("{file} cannot be read as CSV: {reason}").format(file=path.name, reason=first),
                         _("Check the delimiter and encoding."))


def _limit(max_rows: int | None) -> str:
    return "" if max_rows is None else f" LIMIT {int(max_rows)}"


def stage_csv(
    con: duckdb.DuckDBPyConnection, path: Path, delimiter: str, encoding: str, max_rows: int | None = None
) -> SourceFile:
    """Stage a CSV (or CSV.GZ) file as ``_raw(_row, _sheet, c0..cN)``, all text (the first ``max_rows``)."""
    header = read_header(path, delimiter, encoding)
    if delimiter == WHITESPACE or (len(header) > 1 and not _splits_on(path, delimiter, encoding)):
        return _stage_whitespace(con, path, header, encoding, max_rows)
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header))) + "}"
    try:
        con.execute(
            f"CREATE TEMP TABLE _raw_rows AS SELECT * FROM read_csv($path, columns = {columns}, header = true, "
            "auto_detect = false, delim = $delim, quote = '\"', escape = '\"', skip = 0, strict_mode = true, "
            f"encoding = $encoding, max_line_size = {MAX_LINE_BYTES})" + _limit(max_rows),
            {"path": str(path), "delim": delimiter, "encoding": encoding},
        )
    except duckdb.Error as exc:
        raise explain_csv_error(exc, path, encoding, len(header)) from None
    con.execute("CREATE TEMP VIEW _raw AS SELECT rowid AS _rid, rowid + 2 AS _row, CAST(NULL AS VARCHAR) AS _sheet, * "
                "FROM _raw_rows")
    return SourceFile(path, "csv", tuple(header))


def _splits_on(path: Path, delimiter: str, encoding: str) -> bool:
    """Whether the header line holds the delimiter (else the header was read as whitespace-separated)."""
    with _open_text(path, encoding) as text:
        return delimiter in text.readline()


def _stage_whitespace(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], encoding: str,
                      max_rows: int | None) -> SourceFile:
    """Stage a file whose columns are separated by runs of spaces or tabs: each line split on whitespace."""
    check_encoding_of_start(path, encoding)
    try:
        con.execute(
            "CREATE TEMP TABLE _raw_lines AS SELECT * FROM read_csv($path, columns = {'line': 'VARCHAR'}, "
            "header = true, auto_detect = false, delim = $delim, quote = '', escape = '', skip = 0, "
            "encoding = $encoding)" + _limit(max_rows),
            {"path": str(path), "delim": "\x1f", "encoding": encoding},
        )
    except duckdb.Error as exc:
        raise explain_csv_error(exc, path, encoding, len(header)) from None
    parts = ", ".join(f"parts[{i + 1}] AS c{i}" for i in range(len(header)))
    con.execute("CREATE TEMP TABLE _raw_rows AS SELECT " + parts + " FROM (SELECT rowid AS r, "
                "string_split_regex(trim(line), '\\s+') AS parts FROM _raw_lines WHERE trim(line) <> '') ORDER BY r")
    con.execute("CREATE TEMP VIEW _raw AS SELECT rowid AS _rid, rowid + 2 AS _row, CAST(NULL AS VARCHAR) AS _sheet, * "
                "FROM _raw_rows")
    return SourceFile(path, "csv", tuple(header))


def stage_lines(
    con: duckdb.DuckDBPyConnection, path: Path, encoding: str, max_rows: int | None = None
) -> SourceFile:
    """Stage a file line by line, unsplit, as ``_raw(_row, _sheet, c0)`` (baskets: no header)."""
    check_encoding_of_start(path, encoding)
    try:
        con.execute(
            "CREATE TEMP TABLE _raw_rows AS SELECT * FROM read_csv($path, columns = {'c0': 'VARCHAR'}, "
            "header = false, auto_detect = false, delim = $delim, quote = '', escape = '', skip = 0, "
            f"encoding = $encoding, max_line_size = {MAX_LINE_BYTES})" + _limit(max_rows),
            {"path": str(path), "delim": "\x1f", "encoding": encoding},
        )
    except duckdb.Error as exc:
        raise explain_csv_error(exc, path, encoding, 1) from None
    con.execute("CREATE TEMP VIEW _raw AS SELECT rowid AS _rid, rowid + 1 AS _row, CAST(NULL AS VARCHAR) AS _sheet, * "
                "FROM _raw_rows")
    return SourceFile(path, "csv", ("basket",))


def check_encoding_of_start(path: Path, encoding: str) -> None:
    try:
        with _open_text(path, encoding) as text:
            text.read(1 << 16)
    except UnicodeDecodeError:
        raise not_utf8(path, encoding, None) from None


def _cell_text(value: object) -> str | None:
    """An Excel cell as the text a CSV export would hold (so both go through the same parsing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def stage_xlsx(
    con: duckdb.DuckDBPyConnection, path: Path, sheet: str | None, max_rows: int | None = None
) -> SourceFile:
    """Stage an XLSX workbook: the chosen sheet, or every sheet whose header matches the first one's."""
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ImportRefused(_("{file} is not a readable XLSX workbook ({reason}).").format(file=path.name, reason=exc),
                            _("Open it in Excel and save it again as .xlsx, or export it as CSV.")) from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise ImportRefused(_("{file} has no sheet {sheet}; its sheets are {sheets}.").format(
                                    file=path.name, sheet=repr(sheet), sheets=", ".join(book.sheetnames)),
                                _("Choose one of those sheets."))
        header: list[str] | None = None
        used: list[str] = []
        for name in [sheet] if sheet else book.sheetnames:
            rows = book[name].iter_rows(values_only=True)
            first = next(rows, None)
            this_header = [(_cell_text(v) or "")[:200] for v in first[:MAX_COLUMNS + 1]] if first else []
            while this_header and not this_header[-1]:
                this_header.pop()
            if len(this_header) > MAX_COLUMNS:
                raise ImportRefused(_("Sheet {sheet} of {file} has more than {most} columns.").format(
                                        sheet=name, file=path.name, most=MAX_COLUMNS),
                                    _("Export only the columns the import needs."))
            if not any(this_header):
                continue
            if header is None:
                header = this_header
                con.execute(
                    "CREATE TEMP TABLE _raw (_rid BIGINT, _row BIGINT, _sheet VARCHAR, "
                    + ", ".join(f"c{i} VARCHAR" for i in range(len(header))) + ")")
            elif this_header != header:
                continue  # another table in the workbook: not this import's
            used.append(name)
            _append_sheet(con, name, rows, len(header), max_rows)
            if max_rows is not None:
                break
        if header is None:
            raise ImportRefused(_("{file} holds no rows with a header.").format(file=path.name),
                                _("Check that the data is on a sheet."))
        return SourceFile(path, "xlsx", tuple(header), tuple(used))
    finally:
        book.close()


def _append_sheet(con: duckdb.DuckDBPyConnection, sheet: str, rows, width: int, max_rows: int | None) -> None:
    """Append a worksheet's rows to ``_raw`` in batches, numbering them as Excel does."""
    names = ["_rid", "_row", "_sheet", *(f"c{i}" for i in range(width))]
    (next_rid,) = con.execute("SELECT count(*) FROM _raw").fetchall()[0]
    batch: list[list[str | None]] = [[] for _ in range(width)]
    numbers: list[int] = []
    appended = 0

    def flush() -> None:
        nonlocal next_rid
        if not numbers:
            return
        data = pa.table([pa.array(range(next_rid, next_rid + len(numbers)), pa.int64()),
                         pa.array(numbers, pa.int64()), pa.array([sheet] * len(numbers), pa.string()),
                         *(pa.array(col, pa.string()) for col in batch)], names=names)
        con.register("_xlsx_batch", data)
        try:
            con.execute("INSERT INTO _raw SELECT * FROM _xlsx_batch")
        finally:
            con.unregister("_xlsx_batch")
        next_rid += len(numbers)
        numbers.clear()
        for col in batch:
            col.clear()

    for row_no, values in enumerate(rows, start=2):  # row 1 is the header
        cells = [_cell_text(v) for v in values[:width]]
        if not any(cells):
            continue  # blank rows in a sheet are layout, not data
        cells += [None] * (width - len(cells))
        numbers.append(row_no)
        for col, cell in zip(batch, cells, strict=True):
            col.append(cell)
        appended += 1
        if len(numbers) >= XLSX_BATCH_ROWS:
            flush()
        if max_rows is not None and appended >= max_rows:
            break
    flush()


# --- dates -------------------------------------------------------------------------------------

#: Date-time formats tried, in order of preference when several read every value. ISO 8601 goes
#: through DuckDB's own cast (with or without seconds, 'T', fractions, a trailing UTC/Z).
DATE_FORMATS: tuple[str, ...] = (
    "iso",
    "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y",
    "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y",
    "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d",
    "%Y%m%d",
    "epoch_ms", "epoch_s",
)
DATE_FORMAT_NAMES = {"iso": N_("ISO 8601 (YYYY-MM-DD HH:MM:SS)"), "%Y%m%d": "YYYYMMDD",
                     "epoch_ms": N_("Unix time in milliseconds"), "epoch_s": N_("Unix time in seconds")}
DATE_SAMPLE = 2_000


#: Rows whose date lies outside these years are refused (MemberLens accepts no other date anywhere: a year
#: 0001 or 9999 would stretch every date range). ``{column}`` is a parsed timestamp column.
OUT_OF_YEARS = "year({column}) NOT BETWEEN 1900 AND 2999"


def timestamp_sql(column: str, fmt: str) -> str:
    """SQL reading text ``column`` as a TIMESTAMP in ``fmt`` (NULL where it does not fit).

    ``fmt`` comes from :data:`DATE_FORMATS` or is a user's strptime format passed as the bound
    parameter ``$date_format``; it never enters the SQL text.
    """
    if fmt == "iso":
        # The plain cast first: the pattern only runs on values it does not read.
        return (f"coalesce(TRY_CAST(trim({column}) AS TIMESTAMP), "
                f"TRY_CAST(regexp_replace(trim({column}), '\\s*(UTC|GMT|Z|[+-]00:?00)$', '') AS TIMESTAMP))")
    if fmt in ("epoch_ms", "epoch_s"):
        scale = "1000" if fmt == "epoch_ms" else "1000000"
        digits = r"^\d{12,14}$" if fmt == "epoch_ms" else r"^\d{9,11}$"
        return (f"CASE WHEN regexp_matches(trim({column}), '{digits}') "
                f"THEN make_timestamp(TRY_CAST(trim({column}) AS BIGINT) * {scale}) END")
    return f"try_strptime(trim({column}), $date_format)"


def _format_counts(con: duckdb.DuckDBPyConnection, column: str, formats: Sequence[str], source: str) -> list[int]:
    params: dict[str, str] = {}
    counts = []
    for i, fmt in enumerate(formats):
        expr = timestamp_sql(column, fmt)
        if "$date_format" in expr:
            expr = expr.replace("$date_format", f"$format_{i}")
            params[f"format_{i}"] = fmt
        counts.append(f"count({expr})")
    return list(con.execute(f"SELECT {', '.join(counts)} FROM {source}", params).fetchall()[0])


def detect_date_format(con: duckdb.DuckDBPyConnection, column: str, user_format: str | None) -> str:
    """The format that reads the most values of ``column``; ties go to the earlier in DATE_FORMATS.

    A sample of the first values picks the candidates; where several read all of it (01/02/2011
    reads as January or February) the whole column decides, since a later 13/02/2011 settles it.
    """
    if user_format:
        return user_format
    con.execute(f"CREATE OR REPLACE TEMP TABLE _date_sample AS SELECT {column} FROM _raw "
                f"WHERE nullif(trim({column}), '') IS NOT NULL LIMIT {DATE_SAMPLE}")
    found = _format_counts(con, column, DATE_FORMATS, "_date_sample")
    best = max(found)
    candidates = [fmt for fmt, n in zip(DATE_FORMATS, found, strict=True) if n == best]
    if len(candidates) > 1 and best > 0:
        found = _format_counts(con, column, candidates, "_raw")
        best = max(found)
        candidates = [fmt for fmt, n in zip(candidates, found, strict=True) if n == best]
    return candidates[0]


def date_params(fmt: str) -> dict[str, str]:
    return {} if fmt in ("iso", "epoch_ms", "epoch_s") else {"date_format": fmt}


def describe_date_format(fmt: str) -> str:
    return _(DATE_FORMAT_NAMES[fmt]) if fmt in DATE_FORMAT_NAMES else fmt



def id_sql(column: str) -> str:
    """An id column as text; ids exported through Excel as numbers (17850.0) lose the '.0'."""
    return (f"CASE WHEN {column} LIKE '%.0' THEN regexp_replace(trim({column}), '\\.0+$', '') "
            f"ELSE nullif(trim({column}), '') END")
