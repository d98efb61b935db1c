"""The two databases MemberLens talks to, resolved and explained the same way.

* the **warehouse** (read-only to analytics): ``MEMBERLENS_WAREHOUSE_URL``, else ``[connections.warehouse]`` in
  ``.streamlit/secrets.toml``, else the embedded DuckDB file ``data/warehouse.duckdb``;
* the **app-state database** (saved audiences, audit log): ``MEMBERLENS_STATE_URL``, else
  ``[connections.app_state]``, else the SQLite file ``data/app_state.sqlite``.

Secrets are read with ``tomllib`` (Streamlit's ``st.connection`` convention, without importing Streamlit).
A driver's or SQLAlchemy's exception becomes the database's own error class (:class:`WarehouseError` or
:class:`StateError`) with one line saying what is wrong and one saying how to fix it; passwords are masked
in every URL shown and removed from drivers' texts.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from analytics.errors import MemberLensError, StateError, WarehouseError
from analytics.i18n import N_, _

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_ENV = "MEMBERLENS_DATA_DIR"

#: Drivers MemberLens knows how to suggest when a URL names one that is not installed.
DRIVER_PACKAGES: dict[str, str] = {
    "duckdb": "duckdb-engine",
    "postgresql": "psycopg[binary]",
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "trino": "trino[sqlalchemy]",
    "snowflake": "snowflake-sqlalchemy",
    "bigquery": "sqlalchemy-bigquery",
    "clickhouse": "clickhouse-sqlalchemy",
    "hive": "pyhive[hive]",
    "sparksql": "pyhive thrift thrift-sasl pure-sasl",
    "databricks": "databricks-sqlalchemy",
    "mysql": "pymysql",
    "pymysql": "pymysql",
}

#: What drivers say when a database server cannot be reached.
UNREACHABLE_SIGNS: tuple[str, ...] = ("connection refused", "could not connect", "could not translate host",
                                      "name or service not known", "timeout expired", "no route to host",
                                      "connection failed", "server closed the connection")
#: Query-string keys whose values are secrets (masked like a password).
SECRET_QUERY_KEYS: tuple[str, ...] = ("password", "pwd", "token", "secret", "key", "access_token", "api_key")


def data_dir() -> Path:
    """Where the embedded warehouse and the app-state file live: ``data/`` unless ``MEMBERLENS_DATA_DIR``
    says otherwise."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(configured).expanduser().resolve() if configured else PROJECT_ROOT / "data"


def secrets_paths() -> list[Path]:
    """Where Streamlit looks for secrets, the project's own file first."""
    return [
        PROJECT_ROOT / ".streamlit" / "secrets.toml",
        Path.cwd() / ".streamlit" / "secrets.toml",
        Path.home() / ".streamlit" / "secrets.toml",
    ]


def read_secrets(paths: Sequence[Path], error: type[MemberLensError] = WarehouseError) -> list[dict]:
    """The parsed secrets files that exist, in order; a file with broken TOML raises ``error``."""
    found = []
    for path in paths:
        if not path.is_file():
            continue
        try:
            with path.open("rb") as fh:
                found.append(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise error(_("Cannot read {path}: {reason}").format(path=path, reason=exc),
                        _("Fix the TOML syntax of the secrets file.")) from exc
    return found


def url_from_secrets(name: str, paths: Sequence[Path], error: type[MemberLensError] = WarehouseError) -> str | None:
    """The URL of ``[connections.<name>]`` in the first secrets file that defines it.

    Accepts either ``url = "..."`` or Streamlit's split form (``dialect``, ``driver``, ``username``,
    ``password``, ``host``, ``port``, ``database``).
    """
    for secrets in read_secrets(paths, error):
        section = secrets.get("connections", {}).get(name)
        if not isinstance(section, Mapping):
            continue
        if section.get("url"):
            return str(section["url"])
        if section.get("dialect"):
            drivername = section["dialect"] + (f"+{section['driver']}" if section.get("driver") else "")
            return URL.create(
                drivername,
                username=section.get("username"),
                password=section.get("password"),
                host=section.get("host"),
                port=int(section["port"]) if section.get("port") else None,
                database=section.get("database"),
            ).render_as_string(hide_password=False)
    return None


def mask_url(url: str | URL) -> str:
    """The URL with its password and secret query values (``token``, ``key`` ...) replaced by ``***``, safe to
    show or log."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:  # not a URL SQLAlchemy understands: still hide anything like user:secret@ or token=
        text = re.sub(r"([^:/@\s]+:)[^@/\s]+@", r"\1***@", str(url))
        return re.sub(rf"(?i)\b({'|'.join(SECRET_QUERY_KEYS)})=[^&\s]*", r"\1=***", text)
    query = {k: ("***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def _secrets_of(url: str) -> list[str]:
    """The secret parts of a URL (password, secret query values), to strip from drivers' texts."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        found = re.findall(r"[^:/@\s]+:([^@/\s]+)@", url)
        query = url.split("?", 1)[1] if "?" in url else ""
        return found + [v for k, v in parse_qsl(query) if k.lower() in SECRET_QUERY_KEYS and v]
    values = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in SECRET_QUERY_KEYS:
            values += [value] if isinstance(value, str) else list(value)
    return [str(v) for v in values if v]


def driver_text(exc: BaseException, url: str) -> tuple[str, str]:
    """A driver's message with the URL's secrets masked: the whole text and its first line."""
    text = str(getattr(exc, "orig", None) or exc)
    for secret in _secrets_of(url):
        text = text.replace(secret, "***")
    return text, text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def driver_fix(drivername: str) -> str:
    """How to install the driver a URL names (the driver if named, then the dialect)."""
    names = list(reversed(drivername.split("+")))
    package = next((DRIVER_PACKAGES[n] for n in names if n in DRIVER_PACKAGES), None)
    return (_("Install it with `pip install {package}`.").format(package=package) if package
            else _("Install the SQLAlchemy dialect for it."))


@dataclass(frozen=True)
class DatabaseConfig:
    """A database URL and where that choice came from: ``environment``, ``secrets`` or ``default``."""

    url: str
    source: str

    @property
    def is_embedded_default(self) -> bool:
        return self.source == "default"

    @property
    def display_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class Database:
    """One of MemberLens's databases: how its URL is found and how its problems are told."""

    label: str  # "warehouse", "app-state database" (marked for translation, translated where a message uses it)
    url_label: str  # "warehouse", "app-state": "the database named in the <url_label> URL" (likewise)
    env: str
    section: str  # [connections.<section>] in secrets.toml
    error: type[MemberLensError]
    default_url: Callable[[], str]
    example: str  # an example URL for the "not a valid URL" fix

    @property
    def where_configured(self) -> str:
        return _("{env} or [connections.{section}] in .streamlit/secrets.toml").format(env=self.env,
                                                                                       section=self.section)

    def resolve(self, environ: Mapping[str, str] | None = None, paths: Sequence[Path] | None = None) -> DatabaseConfig:
        """The URL: the environment variable, then the secrets files (``paths``, default Streamlit's), then
        the embedded default."""
        env = os.environ if environ is None else environ
        configured = env.get(self.env, "").strip()
        if configured:
            return DatabaseConfig(configured, "environment")
        from_secrets = url_from_secrets(self.section, secrets_paths() if paths is None else paths, self.error)
        if from_secrets:
            return DatabaseConfig(from_secrets, "secrets")
        return DatabaseConfig(self.default_url(), "default")

    def parse(self, url: str) -> URL:
        """Parse a SQLAlchemy URL, or raise this database's error saying what a valid one looks like."""
        try:
            return make_url(url)
        except ArgumentError as exc:
            raise self.error(
                _("The {database} URL is not a valid SQLAlchemy URL: {url}").format(database=_(self.url_label),
                                                                                    url=repr(mask_url(url))),
                _("Set {where} to the form dialect+driver://user:password@host:port/database, for example "
                  "{example}.").format(where=self.where_configured, example=self.example),
            ) from exc

    def missing_driver(self, parsed: URL, exc: BaseException) -> MemberLensError:
        return self.error(_("No database driver is installed for '{driver}' (the {database} URL; {reason}).").format(
            driver=parsed.drivername, database=_(self.url_label), reason=exc), driver_fix(parsed.drivername))

    def explain(self, exc: BaseException, url: str | URL) -> MemberLensError:
        """Turn a driver or SQLAlchemy exception into this database's error: a one-line problem and a fix."""
        if isinstance(exc, MemberLensError):
            return exc
        raw = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        text, first_line = driver_text(exc, raw)
        where = mask_url(raw)
        lowered = text.lower()
        database = _(self.label)
        if isinstance(exc, (NoSuchModuleError, ModuleNotFoundError, ImportError)):
            try:
                return self.missing_driver(make_url(raw), exc)
            except ArgumentError:
                pass
        if "password authentication failed" in lowered or "authentication failed" in lowered:
            return self.error(_("The {database} rejected the user name or password ({url}).").format(
                database=database, url=where),
                _("Check the credentials in {where}.").format(where=self.where_configured))
        if "could not set lock" in lowered or "conflicting lock" in lowered:
            return self.error(_("The {database} file is in use by another program that is writing to it ({url}).")
                              .format(database=database, url=where),
                              _("Wait for the demo build or import to finish (or stop that program), then reload."))
        if "same database file with a different configuration" in lowered:
            return self.error(
                _("The {database} file is open for reading in this MemberLens process, so it cannot be written "
                  "now ({url}).").format(database=database, url=where),
                _("Another page or session is still reading it: try again in a moment, or restart the app."))
        if ("does not exist" in lowered and "database" in lowered) or "schema_not_found" in lowered:
            return self.error(_("The database named in the {database} URL does not exist ({url}).").format(
                database=_(self.url_label), url=where),
                _("Create it (MemberLens creates its own tables where it writes), or correct the "
                  "database name at the end of the URL."))
        if "unable to open database file" in lowered or "readonly database" in lowered:
            return self.error(_("The {database} file cannot be opened for writing ({url}): {reason}").format(
                database=database, url=where, reason=first_line),
                _("Make the file and its folder writable, or choose another location with {where}.").format(
                    where=self.where_configured))
        if any(s in lowered for s in UNREACHABLE_SIGNS):
            return self.error(_("The {database} server does not answer ({url}): {reason}").format(
                database=database, url=where, reason=first_line),
                _("Check that the server is running and that host and port in the URL are right."))
        if isinstance(exc, (DBAPIError, SQLAlchemyError, OSError)):
            return self.error(_("The {database} could not be used ({url}): {reason}").format(
                database=database, url=where, reason=first_line),
                _("Check {where}, the server and the account's permissions.").format(where=self.where_configured))
        return self.error(_("Unexpected problem with the {database} ({url}): {reason}").format(
            database=database, url=where, reason=first_line))


def _default_warehouse_url() -> str:
    return f"duckdb:///{data_dir() / 'warehouse.duckdb'}"


def _default_state_url() -> str:
    return f"sqlite:///{data_dir() / 'app_state.sqlite'}"


WAREHOUSE = Database(N_("warehouse"), N_("warehouse"), "MEMBERLENS_WAREHOUSE_URL", "warehouse", WarehouseError,
                     _default_warehouse_url,
                     "duckdb:///data/warehouse.duckdb or postgresql+psycopg://user:pw@host/shop")
APP_STATE = Database(N_("app-state database"), N_("app-state"), "MEMBERLENS_STATE_URL", "app_state", StateError,
                     _default_state_url,
                     "sqlite:///data/app_state.sqlite or postgresql+psycopg://user:pw@host/memberlens")
