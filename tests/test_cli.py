"""The headless entry points, run as a user would: ``python -m analytics`` and the generator CLI."""

from __future__ import annotations

import io
import json
from datetime import date

import pandas as pd
import pytest

from analytics import kpis
from analytics.filters import Filters
from analytics.storage.warehouse import data_span
from tests.conftest import run


def test_kpis_csv_defaults_to_the_last_90_days_of_data(warehouse) -> None:
    done = run("analytics", "kpis", "--url", warehouse.url)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(io.StringIO(done.stdout))
    span = data_span(warehouse.engine)
    start, end = span.last_days(90)
    assert list(table["kpi"]) == [k.key for k in kpis.KPIS]
    assert (table["start"] == str(start)).all() and (table["end"] == str(end)).all()
    expected = kpis.kpi_summary(warehouse.engine, Filters(start, end)).to_frame()
    assert table["current"].to_numpy() == pytest.approx(expected["current"].astype(float).to_numpy(), nan_ok=True)
    assert table["previous"].to_numpy() == pytest.approx(expected["previous"].astype(float).to_numpy(), nan_ok=True)


def test_kpis_json_with_dates_and_filters(duck_warehouse) -> None:
    done = run("analytics", "kpis", "--url", duck_warehouse.url, "--start", "2026-01-01", "--end", "2026-01-31",
               "--channel", "app,web", "--tier", "gold", "--tier", "diamond", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = {r["kpi"]: r for r in json.loads(done.stdout)}
    filters = Filters(date(2026, 1, 1), date(2026, 1, 31), ("app", "web"), ("gold", "diamond"))
    summary = kpis.kpi_summary(duck_warehouse.engine, filters)
    assert rows["net_sales"]["current"] == pytest.approx(summary["net_sales"].current)
    assert rows["active_members"]["previous"] == summary["active_members"].previous
    assert rows["orders"]["previous_start"] == "2025-12-01" and rows["orders"]["previous_end"] == "2025-12-31"


def test_kpis_uses_the_configured_warehouse_without_url(duck_warehouse) -> None:
    done = run("analytics", "kpis", "--start", "2026-03-01", "--end", "2026-03-07",
               env={"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url})
    assert done.returncode == 0, done.stderr
    assert "net_sales" in done.stdout


def test_kpis_in_an_empty_range_says_so(duck_warehouse) -> None:
    done = run("analytics", "kpis", "--url", duck_warehouse.url, "--start", "2031-01-01", "--end", "2031-01-31")
    assert done.returncode == 0
    assert "no orders, sessions or registrations between 2031-01-01 and 2031-01-31" in done.stderr
    table = pd.read_csv(io.StringIO(done.stdout)).set_index("kpi")
    assert table.loc["orders", "current"] == 0


@pytest.mark.parametrize(("args", "status", "message"), [
    (["--start", "2026-02-30"], 2, "'2026-02-30' is not a date in the form YYYY-MM-DD"),
    (["--start", "2026-03-01", "--end", "2026-02-01"], 2, "--end 2026-02-01 is before --start 2026-03-01"),
    (["--tier", "platinum"], 2, "unknown value platinum; choose from basic, silver, gold, diamond"),
    (["--format", "xml"], 2, "invalid choice: 'xml'"),
    (["--channel", "apps"], 2, "unknown sales channel apps; the warehouse has app, live_stream, mini_program, web"),
    (["--start", "0001-01-01"], 2, "dates must lie between 1900-01-01 and 2999-12-31"),
    (["--end", "9999-12-31"], 2, "dates must lie between 1900-01-01 and 2999-12-31"),
])
def test_kpis_bad_arguments(duck_warehouse, args: list[str], status: int, message: str) -> None:
    done = run("analytics", "kpis", "--url", duck_warehouse.url, *args)
    assert done.returncode == status
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("url", "message"), [
    ("duckdb:////nowhere/warehouse.duckdb", "There is no DuckDB warehouse file at /nowhere/warehouse.duckdb"),
    ("nonsense", "not a valid SQLAlchemy URL"),
    ("trino://analyst@localhost:8080/hive", "No database driver is installed for 'trino'"),
])
def test_kpis_bad_warehouse(url: str, message: str) -> None:
    done = run("analytics", "kpis", "--url", url)
    assert done.returncode == 1
    assert message in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("members", "message"), [
    ("-5", "--members must be a positive whole number, got -5"),
    ("0", "--members must be a positive whole number, got 0"),
    ("99999999999", "is more than the generator supports"),
    ("lots", "invalid int value: 'lots'"),
])
def test_generator_refuses_absurd_member_counts(members: str, message: str, tmp_path) -> None:
    done = run("analytics.synthetic", "--members", members, "--url", f"duckdb:///{tmp_path / 'x.duckdb'}")
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_generator_cli_builds_a_warehouse_and_reports_progress(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    done = run("analytics.synthetic", "--members", "150", "--seed", "3", "--url", url)
    assert done.returncode == 0, done.stderr
    assert "[100%] Demo warehouse ready: 150 members" in done.stderr
    assert "members 150" in done.stderr
    again = run("analytics.synthetic", "--members", "150", "--url", url)
    assert again.returncode == 1 and "--replace" in again.stderr


def test_generator_reports_an_unreachable_postgres() -> None:
    done = run("analytics.synthetic", "--members", "10", "--url", "postgresql+psycopg://u:secret@127.0.0.1:9/x")
    assert done.returncode == 1
    assert "The warehouse server does not answer" in done.stderr and "secret" not in done.stderr


def test_help_lists_every_subcommand(capsys) -> None:
    """``--help`` works (a '%' in a subcommand's help once broke argparse's formatting) and names them all."""
    from analytics.cli import _SUBCOMMANDS, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in _SUBCOMMANDS) and "95% interval" in out
