"""Warehouse configuration, read-only access, the schema check and the messages for bad set-ups."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from analytics.storage.databases import DatabaseConfig, mask_url
from analytics.storage.warehouse import (
    WarehouseError,
    check_schema,
    data_span,
    default_warehouse_url,
    open_warehouse,
    resolve_warehouse_config,
    table_overview,
)


def write_secrets(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


# --- where the URL comes from ----------------------------------------------------------------------

def test_environment_beats_secrets_beats_default(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path / "secrets.toml", '[connections.warehouse]\nurl = "duckdb:///from_secrets.duckdb"\n')
    env = {"MEMBERLENS_WAREHOUSE_URL": "duckdb:///from_env.duckdb"}
    assert resolve_warehouse_config(env, [secrets]) == DatabaseConfig("duckdb:///from_env.duckdb", "environment")
    assert resolve_warehouse_config({}, [secrets]) == DatabaseConfig("duckdb:///from_secrets.duckdb", "secrets")
    default = resolve_warehouse_config({}, [tmp_path / "absent.toml"])
    assert default.is_embedded_default and default.url == default_warehouse_url()
    assert default.url.endswith("data/warehouse.duckdb")


def test_secrets_in_streamlit_split_form(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path / "secrets.toml", """
[connections.warehouse]
dialect = "postgresql"
driver = "psycopg"
username = "analyst"
password = "s3cret"
host = "db.example.com"
port = 5433
database = "shop"
""")
    config = resolve_warehouse_config({}, [secrets])
    assert make_url(config.url) == make_url("postgresql+psycopg://analyst:s3cret@db.example.com:5433/shop")
    assert "s3cret" not in config.display_url and "***" in config.display_url


def test_first_secrets_file_that_defines_the_connection_wins(tmp_path: Path) -> None:
    other = write_secrets(tmp_path / "a.toml", '[connections.app_state]\nurl = "sqlite:///x"\n')
    real = write_secrets(tmp_path / "b.toml", '[connections.warehouse]\nurl = "duckdb:///b.duckdb"\n')
    assert resolve_warehouse_config({}, [other, real]).url == "duckdb:///b.duckdb"


def test_broken_secrets_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = write_secrets(tmp_path / "secrets.toml", "[connections.warehouse\nurl = \n")
    with pytest.raises(WarehouseError, match=r"Cannot read .*secrets\.toml"):
        resolve_warehouse_config({}, [broken])


def test_data_dir_moves_the_embedded_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERLENS_DATA_DIR", str(tmp_path))
    assert default_warehouse_url() == f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.mark.parametrize(("url", "hidden"), [
    ("postgresql+psycopg://user:pa55word@host/db", "pa55word"),
    ("snowflake://me:hunter2@account/db/schema?warehouse=wh", "hunter2"),
    ("pg//analyst:topsecret@host/db (a typo SQLAlchemy cannot parse)", "topsecret"),
])
def test_passwords_are_masked(url: str, hidden: str) -> None:
    shown = mask_url(url)
    assert hidden not in shown and "***" in shown


# --- read-only access --------------------------------------------------------------------------

def test_analytics_cannot_write_to_the_warehouse(warehouse) -> None:
    with warehouse.engine.connect() as conn, pytest.raises(Exception, match=r"(?i)read.only"):
        conn.execute(text("CREATE TABLE scribble (x INTEGER)"))
    with warehouse.engine.connect() as conn, pytest.raises(Exception, match=r"(?i)read.only"):
        conn.execute(text("DELETE FROM orders"))
    with warehouse.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders")).scalar() > 0


# --- schema check ------------------------------------------------------------------------------

def test_schema_check_names_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "partial.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE members (member_id VARCHAR, registered_at TIMESTAMP, name VARCHAR)")
    con.execute("CREATE TABLE orders AS SELECT 'O1' AS order_id")
    con.close()
    engine = open_warehouse_unchecked(f"duckdb:///{path}")
    report = check_schema(engine)
    engine.dispose()
    assert not report.ok
    assert "events" in report.missing_tables and "members" not in report.missing_tables
    assert "phone" in report.missing_columns["members"] and "email" in report.missing_columns["members"]
    assert "ordered_at" in report.missing_columns["orders"]
    described = report.describe()
    assert "missing tables: products" in described and "members lacks phone" in described
    with pytest.raises(WarehouseError, match=r"missing tables: .*events.*members lacks phone"):
        open_warehouse(f"duckdb:///{path}")


def open_warehouse_unchecked(url: str):
    from analytics.storage.warehouse import create_warehouse_engine

    return create_warehouse_engine(url)


def test_schema_check_is_case_insensitive_and_ignores_extra_tables(warehouse) -> None:
    report = check_schema(warehouse.engine)  # the demo also has demo_personas, which is not in the contract
    assert report.ok and report.describe() == ""


def test_overview_counts_rows_and_time_coverage(warehouse) -> None:
    overview = table_overview(warehouse.engine).set_index("table")
    assert overview.loc["orders", "rows"] == len(warehouse.frame("orders"))
    assert overview.loc["events", "rows"] == len(warehouse.frame("events"))
    assert overview.loc["orders", "last"] == warehouse.frame("orders")["ordered_at"].max()
    span = data_span(warehouse.engine)
    assert span.last_day == overview.loc["orders", "last"].date()
    assert span.last_days(90)[1] == span.last_day
    assert (span.last_day - span.last_days(90)[0]).days == 89


# --- bad set-ups get one clear line --------------------------------------------------------------

@pytest.mark.parametrize(("url", "message"), [
    ("this is not a url", "not a valid SQLAlchemy URL"),
    ("snowflake://me:pw@account/db",
     "No database driver is installed for 'snowflake'.*Fix: .*pip install snowflake-sqlalchemy"),
    ("postgresql+psycopg2://me:pw@localhost/db", "No database driver is installed for 'postgresql\\+psycopg2'"),
    ("duckdb:////nonexistent/dir/warehouse.duckdb", "There is no DuckDB warehouse file at /nonexistent"),
    ("postgresql+psycopg://me:pw@127.0.0.1:9/db", "The warehouse server does not answer"),
])
def test_bad_urls_get_a_specific_message(url: str, message: str) -> None:
    with pytest.raises(WarehouseError) as caught:
        open_warehouse(url)
    assert re.search(message, f"{caught.value.problem} Fix: {caught.value.fix}")
    assert "\n" not in caught.value.problem and caught.value.fix
    assert ":pw@" not in caught.value.problem


def test_wrong_password_is_named(postgres_server_url: str) -> None:
    wrong = make_url(postgres_server_url).set(password="definitely-wrong").render_as_string(hide_password=False)
    with pytest.raises(WarehouseError, match="rejected the user name or password") as caught:
        open_warehouse(wrong)
    assert "definitely-wrong" not in str(caught.value)


def test_missing_database_is_named(postgres_server_url: str) -> None:
    url = make_url(postgres_server_url).set(database="no_such_shop").render_as_string(hide_password=False)
    with pytest.raises(WarehouseError, match="database named in the warehouse URL does not exist"):
        open_warehouse(url)


def test_empty_warehouse_has_no_data_span(tmp_path: Path) -> None:
    from analytics.storage.bulkload import bulk_load
    from analytics.storage.contract import WAREHOUSE_TABLES

    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    with bulk_load(url, WAREHOUSE_TABLES):
        pass
    engine = open_warehouse(url)  # the tables are all there ...
    assert data_span(engine) is None  # ... but nothing happened yet
    engine.dispose()
