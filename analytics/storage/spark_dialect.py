"""Apache Spark SQL (through its Thrift Server) as a MemberLens warehouse: ``sparksql://host:10000/database``.

A SQLAlchemy dialect built on PyHive's ``hive://`` dialect, which speaks the HiveServer2 Thrift protocol
that Spark's Thrift Server implements. PyHive's dialect was written for Hive 1–2 and is stale on
Spark 4; this subclass fixes what MemberLens meets:

* **Types.** ``Numeric(14, 2)`` compiles to ``DECIMAL(14,2)`` (PyHive writes bare ``DECIMAL``, which
  Spark reads as ``DECIMAL(10,0)``: money rounded to whole units), ``Date`` to ``DATE`` (PyHive:
  ``TIMESTAMP``), a naive ``DateTime`` to ``TIMESTAMP_NTZ`` (the contract's "local time, no zone"),
  floats to ``DOUBLE``. ``DATE`` results arrive as text over Thrift and become ``date`` objects,
  day-time intervals become ``timedelta``; timestamps are parsed with ``datetime.fromisoformat``.
* **Parameters.** Thrift has no bound parameters, so the driver writes values into the SQL text
  (as PyHive does, and JDBC's Hive driver too). Here every Python type gets a typed Spark literal:
  ``DATE '…'``, ``TIMESTAMP_NTZ '…'``, ``1.25BD`` for ``Decimal``, ``0.5D`` for ``float``, ``INTERVAL
  '…' DAY TO SECOND`` for ``timedelta``, strings with backslash escapes (Spark's string syntax), and
  negative numbers in parentheses (so ``x - -1`` never becomes a ``--`` comment). PyHive refused
  ``Decimal`` and sent dates as plain strings.
* **SQL differences**, compiled here so that no analysis is written per engine: ``//`` is
  ``FLOOR(a / b)`` (Spark's ``/`` always divides exactly; PyHive rendered ``//`` as ``/``); ``date -
  date`` is ``datediff`` (Spark returns an interval); ``EXTRACT(epoch …)`` is the wall-clock epoch
  (Spark has no ``epoch`` field) and ``EXTRACT(dow …)`` counts from Sunday = 0 as in PostgreSQL and
  DuckDB; ``strpos`` is ``instr``; a cast of a decimal or float to an integer rounds first (Spark
  truncates, DuckDB and PostgreSQL round).
* **Reflection.** ``has_table`` and ``get_columns`` read ``DESCRIBE TABLE`` (Spark has no
  ``information_schema``) and map its types with precision; ``SHOW TABLES`` names come from its
  second column (PyHive took the database column).
* **Speed.** PyHive sleeps a second between result polls and fetches 1,000 rows per round trip;
  here it polls every 10 ms and fetches 10,000 rows.
* **Errors.** A failed statement raises PyHive's ``OperationalError`` with Spark's own message
  (the error class and text), not the whole Thrift response with a Java stack trace.

Spark keeps no transactions: MemberLens only reads through this dialect (see ``docs/spark.md``), and
:func:`assert_read_only` refuses any other statement on a read-only engine.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pyhive import hive
from pyhive.sqlalchemy_hive import HiveCompiler, HiveDialect, HiveExecutionContext, HiveIdentifierPreparer
from sqlalchemy import exc, func, types
from sqlalchemy.sql import compiler, elements, sqltypes

#: The URL scheme MemberLens registers for this dialect.
SCHEME = "sparksql"

#: Rows fetched per Thrift round trip and the pause between polls of a running statement.
FETCH_ROWS = 10_000
POLL_SECONDS = 0.01

_NOT_FOUND_SIGNS = ("TABLE_OR_VIEW_NOT_FOUND", "Table or view not found", "NoSuchTableException")


# --------------------------------------------------------------------------------------------------
# Values into Spark SQL literals
# --------------------------------------------------------------------------------------------------

_STRING_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0",
                   "\b": "\\b", "\x1a": "\\Z"}
_STRING_SPECIAL = re.compile("[\\\\'\n\r\t\0\b\x1a]")


def quote_string(value: str) -> str:
    """A Spark SQL string literal for ``value``: single quotes, special characters backslash-escaped.

    Spark's lexer reads ``\\`` followed by any character as part of the literal whatever
    ``spark.sql.parser.escapedStringLiterals`` says, so no value can end the literal early.
    """
    return "'" + _STRING_SPECIAL.sub(lambda m: _STRING_ESCAPES[m.group(0)], value) + "'"


def _signed(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


def _interval(value: dt.timedelta) -> str:
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return (f"INTERVAL '{sign}{value.days} {hours:02d}:{minutes:02d}:{seconds:02d}.{value.microseconds:06d}' "
            "DAY TO SECOND")


def spark_literal(value: Any) -> str:
    """The Spark SQL literal for a Python value, typed as SQLAlchemy's other dialects would bind it.

    Raises ``hive.ProgrammingError`` for a value with no literal form (so nothing is guessed).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return _signed(str(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "CAST('NaN' AS DOUBLE)"
        if math.isinf(value):
            return f"CAST('{'-' if value < 0 else ''}Infinity' AS DOUBLE)"
        return _signed(repr(value) + "D")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise hive.ProgrammingError(f"Spark SQL has no decimal literal for {value}")
        return _signed(f"{value:f}BD")
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return f"TIMESTAMP '{value.isoformat(sep=' ', timespec='microseconds')}'"
        return f"TIMESTAMP_NTZ '{value.isoformat(sep=' ', timespec='microseconds')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, dt.time):
        return quote_string(value.isoformat())
    if isinstance(value, dt.timedelta):
        return _interval(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"X'{bytes(value).hex()}'"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "(" + ", ".join(spark_literal(v) for v in value) + ")"
    try:  # numpy scalars and the like
        item = value.item()
    except (AttributeError, ValueError):
        item = None
    if item is not None and item is not value:
        return spark_literal(item)
    raise hive.ProgrammingError(f"Cannot write a {type(value).__name__} value into Spark SQL")


def render_statement(operation: str, parameters: Mapping[str, Any] | Sequence[Any]) -> str:
    """``operation`` (pyformat) with every parameter written as a Spark literal."""
    if isinstance(parameters, Mapping):
        return operation % {k: spark_literal(v) for k, v in parameters.items()}
    return operation % tuple(spark_literal(v) for v in parameters)


# --------------------------------------------------------------------------------------------------
# Results from Spark's text forms
# --------------------------------------------------------------------------------------------------

_INTERVAL = re.compile(r"^(-?)(\d+) (\d+):(\d+):(\d+)(?:\.(\d+))?$")


def _to_interval(text: str) -> dt.timedelta | str:
    match = _INTERVAL.match(text)
    if not match:
        return text
    sign, days, hours, minutes, seconds, fraction = match.groups()
    value = dt.timedelta(days=int(days), hours=int(hours), minutes=int(minutes), seconds=int(seconds),
                         microseconds=int((fraction or "0")[:6].ljust(6, "0")))
    return -value if sign else value


_CONVERTERS = {
    "DATE_TYPE": dt.date.fromisoformat,
    "TIMESTAMP_TYPE": dt.datetime.fromisoformat,
    "DECIMAL_TYPE": Decimal,
    "INTERVAL_DAY_TIME_TYPE": _to_interval,
}


def _column_values(column: Any) -> list[Any]:
    """The Python values of one Thrift result column (NULLs from its bit set)."""
    for wrapper in column.__dict__.values():
        if wrapper is None:
            continue
        values = list(wrapper.values)
        nulls = wrapper.nulls
        if any(nulls):
            for i, byte in enumerate(nulls):
                if byte:
                    for b in range(8):
                        if byte & (1 << b) and i * 8 + b < len(values):
                            values[i * 8 + b] = None
        return values
    raise hive.DataError(f"Empty result column {column!r}")


class SparkCursor(hive.Cursor):
    """PyHive's cursor with Spark literals for parameters, typed results, short polls, clean errors."""

    def __init__(self, connection: hive.Connection, arraysize: int = FETCH_ROWS) -> None:
        super().__init__(connection, arraysize=arraysize)
        self._poll_interval = POLL_SECONDS

    def execute(self, operation: str, parameters: Any = None, **kwargs: Any) -> None:
        sql = operation if parameters is None else render_statement(operation, parameters)
        try:
            super().execute(sql, **kwargs)
        except hive.OperationalError as error:
            raise hive.OperationalError(_message(error)) from None

    def _fetch_more(self) -> None:
        if not self._operationHandle.hasResultSet:
            raise hive.ProgrammingError("No result set")
        request = hive.ttypes.TFetchResultsReq(operationHandle=self._operationHandle,
                                               orientation=hive.ttypes.TFetchOrientation.FETCH_NEXT,
                                               maxRows=self.arraysize)
        response = self._connection.client.FetchResults(request)
        try:
            hive._check_status(response)
        except hive.OperationalError as error:
            raise hive.OperationalError(_message(error)) from None
        columns = []
        for column, described in zip(response.results.columns, self.description, strict=True):
            values = _column_values(column)
            convert = _CONVERTERS.get(described[1])
            if convert is not None:
                values = [None if v is None else convert(v) for v in values]
            columns.append(values)
        rows = list(zip(*columns, strict=True))
        self._data += rows
        if not rows:
            self._state = self._STATE_FINISHED


def _message(error: hive.OperationalError) -> str:
    """Spark's own message from a Thrift error response (error class and first lines, no stack trace)."""
    response = error.args[0] if error.args else None
    status = getattr(response, "status", None)
    text = getattr(status, "errorMessage", None) or str(error)
    text = text.removeprefix("Error running query: ")
    return "\n".join(line for line in text.splitlines()[:3] if not line.startswith("\tat "))


class SparkConnection(hive.Connection):
    """A HiveServer2 session whose cursors are :class:`SparkCursor`."""

    def cursor(self, *args: Any, **kwargs: Any) -> SparkCursor:
        return SparkCursor(self, *args, **kwargs)


# --------------------------------------------------------------------------------------------------
# SQL compilation
# --------------------------------------------------------------------------------------------------


def _affinity(element: Any) -> type:
    return element.type._type_affinity


class SparkCompiler(HiveCompiler):
    """Spark SQL forms of what MemberLens writes portably (see the module docstring)."""

    def visit_insert(self, insert_stmt: Any, **kw: Any) -> str:
        return compiler.SQLCompiler.visit_insert(self, insert_stmt, **kw)  # Spark takes column lists

    def visit_sub_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        left, right = _affinity(binary.left), _affinity(binary.right)
        if left is sqltypes.Date and right is sqltypes.Date:
            return f"datediff({self.process(binary.left, **kw)}, {self.process(binary.right, **kw)})"
        return self._generate_generic_binary(binary, " - ", **kw)

    def visit_extract(self, extract: Any, **kw: Any) -> str:
        field = str(extract.field).lower()
        expr = extract.expr._compiler_dispatch(self, **kw)
        if field == "epoch":  # seconds since 1970-01-01 00:00 on the wall clock, as for a naive timestamp
            return (f"(unix_date(CAST({expr} AS DATE)) * 86400 + EXTRACT(HOUR FROM {expr}) * 3600 "
                    f"+ EXTRACT(MINUTE FROM {expr}) * 60 + EXTRACT(SECOND FROM {expr}))")
        if field == "dow":  # Spark: Sunday = 1; PostgreSQL and DuckDB: Sunday = 0
            return f"(EXTRACT(DAYOFWEEK FROM {expr}) - 1)"
        if field == "isodow":
            return f"EXTRACT(DAYOFWEEK_ISO FROM {expr})"
        return f"EXTRACT({field.upper()} FROM {expr})"

    def visit_cast(self, cast: Any, **kw: Any) -> str:
        if (_affinity(cast) is sqltypes.Integer
                and _affinity(cast.clause) in (sqltypes.Numeric, sqltypes.Float)
                and not isinstance(cast.clause.type, sqltypes.Integer)):
            rounded = elements.Cast(_round(cast.clause), cast.type)
            return super().visit_cast(rounded, **kw)
        return super().visit_cast(cast, **kw)

    def render_literal_value(self, value: Any, type_: Any) -> str:
        if isinstance(value, str):  # e.g. LIKE's ESCAPE '\\': Spark's strings take backslash escapes
            return quote_string(value)
        return super().render_literal_value(value, type_)

    def visit_strpos_func(self, fn: Any, **kw: Any) -> str:
        return f"instr{self.function_argspec(fn, **kw)}"


def _round(clause: Any) -> Any:
    return func.round(clause, type_=clause.type)


class SparkInterval(sqltypes.NativeForEmulated, sqltypes._AbstractInterval):
    """Day-time intervals travel as ``timedelta`` both ways (SQLAlchemy's emulation would send a datetime)."""

    __visit_name__ = "INTERVAL"
    native = True

    @classmethod
    def adapt_emulated_to_native(cls, interval: Any, **kw: Any) -> SparkInterval:
        return cls()

    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None

    @property
    def python_type(self) -> type:
        return dt.timedelta


class SparkTypeCompiler(compiler.GenericTypeCompiler):
    """Spark SQL type names, precise where PyHive's were not."""

    def visit_NUMERIC(self, type_: Any, **kw: Any) -> str:
        if type_.precision is None:
            return "DECIMAL(38,10)"
        return f"DECIMAL({type_.precision},{type_.scale or 0})"

    visit_DECIMAL = visit_NUMERIC

    def visit_FLOAT(self, type_: Any, **kw: Any) -> str:
        return "DOUBLE"

    visit_REAL = visit_DOUBLE = visit_DOUBLE_PRECISION = visit_FLOAT

    def visit_INTEGER(self, type_: Any, **kw: Any) -> str:
        return "INT"

    def visit_SMALLINT(self, type_: Any, **kw: Any) -> str:
        return "SMALLINT"

    def visit_BIGINT(self, type_: Any, **kw: Any) -> str:
        return "BIGINT"

    def visit_BOOLEAN(self, type_: Any, **kw: Any) -> str:
        return "BOOLEAN"

    def visit_DATE(self, type_: Any, **kw: Any) -> str:
        return "DATE"

    def visit_DATETIME(self, type_: Any, **kw: Any) -> str:
        return "TIMESTAMP" if getattr(type_, "timezone", False) else "TIMESTAMP_NTZ"

    visit_TIMESTAMP = visit_DATETIME

    def visit_TIME(self, type_: Any, **kw: Any) -> str:
        return "STRING"

    def _string(self, type_: Any, **kw: Any) -> str:
        return "STRING"

    visit_VARCHAR = visit_CHAR = visit_NCHAR = visit_NVARCHAR = visit_TEXT = visit_CLOB = visit_STRING = _string

    def visit_INTERVAL(self, type_: Any, **kw: Any) -> str:
        return "INTERVAL DAY TO SECOND"

    def visit_BLOB(self, type_: Any, **kw: Any) -> str:
        return "BINARY"

    visit_BINARY = visit_VARBINARY = visit_LARGE_BINARY = visit_BLOB


# --------------------------------------------------------------------------------------------------
# The dialect
# --------------------------------------------------------------------------------------------------

_SIMPLE_TYPES: dict[str, Any] = {
    "boolean": types.Boolean, "tinyint": types.SmallInteger, "byte": types.SmallInteger,
    "smallint": types.SmallInteger, "short": types.SmallInteger, "int": types.Integer, "integer": types.Integer,
    "bigint": types.BigInteger, "long": types.BigInteger, "float": types.Float, "real": types.Float,
    "double": types.Double, "string": types.String, "varchar": types.String, "char": types.String,
    "date": types.Date, "timestamp_ntz": types.DateTime, "binary": types.LargeBinary,
}


def spark_type(name: str) -> types.TypeEngine[Any]:
    """The SQLAlchemy type for a Spark type name as ``DESCRIBE`` shows it (``decimal(14,2)``, ``timestamp``)."""
    name = name.strip().lower()
    decimal = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", name)
    if decimal:
        return types.Numeric(int(decimal.group(1)), int(decimal.group(2)))
    if name == "decimal":
        return types.Numeric(10, 0)
    if name == "timestamp":
        return types.DateTime(timezone=True)
    base = re.match(r"^[a-z_]+", name)
    kind = _SIMPLE_TYPES.get(base.group(0) if base else "")
    return kind() if kind is not None else types.NullType()


class SparkDialect(HiveDialect):
    """``sparksql://[user[:password]@]host[:port]/database[?auth=LDAP|NOSASL|...]`` (port 10000 by default)."""

    name = SCHEME
    driver = "pyhive"
    statement_compiler = SparkCompiler
    type_compiler = type_compiler_cls = SparkTypeCompiler  # PyHive sets the legacy name, which wins
    preparer = HiveIdentifierPreparer
    execution_ctx_cls = HiveExecutionContext
    div_is_floordiv = False
    supports_statement_cache = True
    supports_native_decimal = True
    supports_native_boolean = True
    supports_simple_order_by_label = True
    postfetch_lastrowid = False
    colspecs: Mapping[Any, Any] = {sqltypes.Interval: SparkInterval}

    @classmethod
    def import_dbapi(cls) -> Any:
        return hive

    dbapi = None  # SQLAlchemy 2 reads import_dbapi(); PyHive's legacy dbapi() classmethod only warns

    def connect(self, *cargs: Any, **cparams: Any) -> SparkConnection:
        return SparkConnection(*cargs, **cparams)

    def create_connect_args(self, url: Any) -> tuple[list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"host": url.host or "127.0.0.1", "port": url.port or 10000,
                                  "username": url.username, "database": url.database or "default"}
        if url.password:
            kwargs["password"] = url.password
            kwargs["auth"] = "LDAP"
        kwargs.update(url.query)
        return [], kwargs

    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        cursor.execute(statement, parameters or {})

    def do_ping(self, dbapi_connection: Any) -> bool:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()
        return True

    # ---- reflection -------------------------------------------------------------------------------

    def _describe(self, connection: Any, table_name: str, schema: str | None) -> list[tuple[str, str]]:
        quote = self.identifier_preparer.quote_identifier
        full = f"{quote(schema)}.{quote(table_name)}" if schema else quote(table_name)
        try:
            rows = connection.exec_driver_sql(f"DESCRIBE TABLE {full}").fetchall()
        except exc.DBAPIError as error:
            if any(sign in str(error.orig) for sign in _NOT_FOUND_SIGNS):
                raise exc.NoSuchTableError(table_name) from None
            raise
        columns = []
        for row in rows:
            name = (row[0] or "").strip()
            if not name or name.startswith("#"):
                break  # partition and detail sections follow a blank or '#' line
            columns.append((name, (row[1] or "").strip()))
        return columns

    def has_table(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> bool:
        try:
            self._describe(connection, table_name, schema)
        except exc.NoSuchTableError:
            return False
        return True

    def get_columns(self, connection: Any, table_name: str, schema: str | None = None,
                    **kw: Any) -> list[dict[str, Any]]:
        return [{"name": name, "type": spark_type(kind), "nullable": True, "default": None}
                for name, kind in self._describe(connection, table_name, schema)]

    def _show(self, connection: Any, what: str, schema: str | None) -> list[str]:
        query = f"SHOW {what}" + (f" IN {self.identifier_preparer.quote_identifier(schema)}" if schema else "")
        # Spark: (namespace, tableName, isTemporary); the name is the second column.
        return [row[1] for row in connection.exec_driver_sql(query) if not row[2]]

    def get_table_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return self._show(connection, "TABLES", schema)

    def get_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return self._show(connection, "VIEWS", schema)

    def get_temp_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return []

    def _get_default_schema_name(self, connection: Any) -> str:
        return connection.exec_driver_sql("SELECT current_database()").scalar()


#: Statements a read-only MemberLens engine may send to Spark.
READ_ONLY_STATEMENTS = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|SET|USE|VALUES|\()", re.IGNORECASE)


def assert_read_only(statement: str) -> None:
    """Refuse a statement that could change the warehouse (Spark has no read-only session mode).

    A guard against mistakes in MemberLens, not a permission system: give it a read-only account too."""
    if not READ_ONLY_STATEMENTS.match(statement):
        first = statement.strip().split(None, 1)[0] if statement.strip() else ""
        raise hive.NotSupportedError(
            f"This Spark warehouse is read-only to MemberLens: a {first.upper()} statement was refused.")

