"""Data-quality checks against an independent pandas computation over the raw rows, on DuckDB and
PostgreSQL: the clean demo warehouse, and a small hand-written warehouse with planted faults."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Column, Engine, MetaData, Table, create_engine, event, text
from sqlalchemy.engine import make_url

from analytics import quality
from analytics.filters import Filters, filter_options
from analytics.quality import CHECKS, QualityThresholds, quality_report
from analytics.storage.contract import TABLE_TIME_COLUMNS, WAREHOUSE_TABLES
from analytics.storage.warehouse import create_warehouse_engine, data_span, resolve_warehouse_config
from tests.conftest import PROJECT_ROOT, Warehouse, run

Frames = Callable[[str], pd.DataFrame]
#: Each keyed contract table's key, as its key check names it, and the entity tables (keys declared by the contract).
KEYED_TABLES = {t.name: "+".join(t.info["key"]) for t in WAREHOUSE_TABLES if t.info.get("key")}
ENTITY_TABLES = {t.name for t in WAREHOUSE_TABLES if t.primary_key.columns}


# --- the reference: every check's affected rows computed with pandas from the raw rows -------------

def reference_affected(frame: Frames, check: quality.CheckDefinition, today: date) -> int:
    """What ``check`` should count, from plain SELECTs of the tables."""
    df = frame(check.table)
    column = df[check.columns[0]]
    end_of_today = pd.Timestamp(today + timedelta(days=1))
    if check.kind == "required":
        return int(column.isna().sum())
    if check.kind == "duplicate":
        keyed = df.dropna(subset=list(check.columns))
        return int(keyed.duplicated(subset=list(check.columns), keep=False).sum())
    if check.kind == "orphan":
        parent_table, parent_column = check.parent
        return int((column.notna() & ~column.isin(frame(parent_table)[parent_column])).sum())
    if check.kind == "negative":
        return int((column < 0).sum())
    if check.kind == "below_one":
        return int((column < 1).sum())
    if check.kind == "net_mismatch":
        return int(((df["net_amount"] - (df["gross_amount"] - df["discount_amount"])).abs() > 0.005).sum())
    if check.kind == "future":
        return int((pd.to_datetime(column) >= end_of_today).sum())
    if check.kind == "too_old":
        return int((pd.to_datetime(column) < pd.Timestamp(1990, 1, 1)).sum())
    if check.kind == "domain":
        return int((column.notna() & ~column.isin(check.allowed)).sum())
    raise AssertionError(f"no reference for {check.kind}")


def reference_newest(frame: Frames, table: str, today: date) -> pd.Timestamp | None:
    stamps = pd.to_datetime(frame(table)[TABLE_TIME_COLUMNS[table]])
    newest = stamps[stamps < pd.Timestamp(today + timedelta(days=1))].max()
    return None if pd.isna(newest) else newest


def assert_matches_reference(report: quality.QualityReport, frame: Frames) -> None:
    """Every row-level, key and reference check against pandas, and row counts, null shares, freshness."""
    checks = report.checks.set_index("key")
    compared = 0
    for check in CHECKS:
        if check.kind in ("present", "freshness"):
            continue
        rows = len(frame(check.table))
        got = checks.loc[check.key]
        want = reference_affected(frame, check, report.today)
        assert got["affected_rows"] == want, (check.key, got["affected_rows"], want)
        assert got["share"] == pytest.approx(want / rows), check.key
        compared += 1
    assert compared == len(CHECKS) - 9 - 7
    for row in report.tables.itertuples():
        assert row.rows == len(frame(row.table)), row.table
        if row.table in TABLE_TIME_COLUMNS:
            newest = reference_newest(frame, row.table, report.today)
            assert row.newest == newest, row.table
            assert row.days_since_newest == (report.today - newest.date()).days, row.table
    for row in report.columns.itertuples():
        values = frame(row.table)[row.column]
        assert (row.rows, row.nulls) == (len(values), values.isna().sum()), (row.table, row.column)
        assert row.null_share == pytest.approx(values.isna().mean()), (row.table, row.column)
        assert row.required == (not next(t for t in WAREHOUSE_TABLES if t.name == row.table).c[row.column].nullable)


def statuses(report: quality.QualityReport) -> dict[str, str]:
    return dict(zip(report.checks["key"], report.checks["status"], strict=True))


# --- the clean demo warehouse ---------------------------------------------------------------------

def test_the_clean_demo_passes_every_check_on_its_last_day(warehouse) -> None:
    last_day = data_span(warehouse.engine).last_day
    report = quality_report(warehouse.engine, last_day)
    problems = report.checks[report.checks["status"] != "pass"]
    assert problems.empty, problems[["key", "detail"]].to_dict("records")
    assert report.counts() == {"pass": len(CHECKS), "warn": 0, "fail": 0}
    assert list(report.checks["key"]) == [c.key for c in CHECKS]  # every check ran, in definition order
    assert report.status == "pass" and report.summary() == f"0 fail · 0 warn · {len(CHECKS)} pass"
    assert_matches_reference(report, warehouse.frame)


def test_checks_run_side_by_side_give_the_report_of_one_connection(warehouse) -> None:
    """Given an engine the checks run on three connections at once; given a connection, one after the other on
    it. Both reports are the same, row for row, and a failing task's error reaches the caller."""
    from sqlalchemy import select, text

    from analytics.storage.db import each_on_its_own_connection

    today = date(2026, 6, 30)
    together = quality_report(warehouse.engine, today)
    with warehouse.engine.connect() as conn:
        alone = quality_report(conn, today)
    pd.testing.assert_frame_equal(together.checks, alone.checks)
    pd.testing.assert_frame_equal(together.tables, alone.tables)
    tasks = [lambda c, n=n: c.execute(select(text(str(n)))).scalar_one() for n in range(7)]
    assert each_on_its_own_connection(warehouse.engine, tasks) == list(range(7))

    def broken(conn):
        conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(Exception, match="no_such_table"):
        each_on_its_own_connection(warehouse.engine, [tasks[0], broken, tasks[1]])


def test_figures_match_pandas_when_part_of_the_data_lies_in_the_future(warehouse) -> None:
    """Checked as of mid-2026, the rows after that day are "in the future": real counts to compare."""
    today = date(2026, 6, 30)
    report = quality_report(warehouse.engine, today)
    assert_matches_reference(report, warehouse.frame)
    future = report.checks.set_index("key").loc["future:orders.ordered_at"]
    orders = warehouse.frame("orders")
    assert future["affected_rows"] == (orders["ordered_at"] >= pd.Timestamp(2026, 7, 1)).sum() > 0
    assert future["status"] == "fail"  # far more than 1% of the orders
    assert "after 2026-06-30" in future["detail"] and "more than 1% of rows fails" in future["detail"]
    assert (report.tables.set_index("table").loc["orders", "newest"]
            == orders.loc[orders["ordered_at"] < pd.Timestamp(2026, 7, 1), "ordered_at"].max())


@pytest.mark.parametrize(("days_later", "expected"), [
    (0, {}),
    (10, {"members": "warn", "orders": "warn", "events": "warn", "points_ledger": "warn"}),
    (40, {"members": "fail", "orders": "fail", "events": "fail", "points_ledger": "fail", "tier_changes": "warn",
          "campaigns": "warn", "campaign_members": "warn"}),
])
def test_freshness_is_measured_against_today(duck_warehouse, days_later: int, expected: dict[str, str]) -> None:
    today = data_span(duck_warehouse.engine).last_day + timedelta(days=days_later)
    report = quality_report(duck_warehouse.engine, today)
    timely = report.checks[report.checks["dimension"] == "timely"]
    assert set(timely["table"]) == set(TABLE_TIME_COLUMNS)
    assert {t: s for t, s in zip(timely["table"], timely["status"], strict=True) if s != "pass"} == expected
    assert not (report.checks.loc[report.checks["dimension"] != "timely", "status"] != "pass").any()
    assert report.counts("timely")["pass"] == len(TABLE_TIME_COLUMNS) - len(expected)
    assert report.counts("accurate") == {"pass": (report.checks["dimension"] == "accurate").sum(), "warn": 0, "fail": 0}
    orders = report.checks.set_index("key").loc["freshness:orders"]
    assert f"{days_later} days before {today:%Y-%m-%d}" in orders["detail"]


def test_thresholds_are_parameters(duck_warehouse) -> None:
    today = data_span(duck_warehouse.engine).last_day + timedelta(days=10)
    report = quality_report(duck_warehouse.engine, today, QualityThresholds(fresh_days=11, stale_days=20))
    assert report.status == "pass"  # the newest member registered the day before the last order
    assert "pass within 11 days, warn within 20" in report.checks.set_index("key").loc["freshness:orders", "detail"]
    for bad in ({"fresh_days": 5, "stale_days": 2}, {"fresh_days": -1}, {"fail_share": 1.5}):
        with pytest.raises(ValueError):
            QualityThresholds(**bad)


#: What the key checks name on the DuckDB test warehouse: the entity tables' primary keys; the rest are counted.
DUCKDB_ENFORCED = {f"duplicate:{t}.{k}": (f"{t}_{k}_pkey" if t in ENTITY_TABLES else None)
                   for t, k in KEYED_TABLES.items()}


def enforced_by(report: quality.QualityReport) -> dict[str, str | None]:
    """Per key check, the constraint its detail names as ruling repeats out (None: the keys were counted)."""
    keys = report.checks[report.checks["key"].str.startswith("duplicate:")]
    return {key: (detail.split("constraint ")[1].split(" ")[0] if "enforces the constraint" in detail else None)
            for key, detail in zip(keys["key"], keys["detail"], strict=True)}


def test_duckdb_and_postgresql_agree(duck_warehouse, pg_warehouse) -> None:
    """Same figures and statuses on both. Only the key checks' wording may differ, where PostgreSQL enforces a key
    that DuckDB's demo merely declares: the PostgreSQL load makes every contract key a primary key, the DuckDB demo
    only the entity tables' keys, so there the key is counted and here the constraint is named."""
    today = date(2026, 9, 1)
    duck, pg = quality_report(duck_warehouse.engine, today), quality_report(pg_warehouse.engine, today)
    assert enforced_by(duck) == DUCKDB_ENFORCED
    assert enforced_by(pg) == {f"duplicate:{t}.{k}": f"{t}_pkey" for t, k in KEYED_TABLES.items()}
    keys = duck.checks["key"].str.startswith("duplicate:")
    pd.testing.assert_frame_equal(duck.checks[~keys], pg.checks[~keys])
    pd.testing.assert_frame_equal(duck.checks[keys].drop(columns="detail"), pg.checks[keys].drop(columns="detail"))
    pd.testing.assert_frame_equal(duck.tables, pg.tables)
    pd.testing.assert_frame_equal(duck.columns, pg.columns)


def test_a_connection_is_accepted_as_well_as_an_engine(duck_warehouse) -> None:
    with duck_warehouse.engine.connect() as conn:
        by_connection = quality_report(conn, date(2026, 11, 15))
    by_engine = quality_report(duck_warehouse.engine, date(2026, 11, 15))
    pd.testing.assert_frame_equal(by_connection.checks, by_engine.checks)


# --- a warehouse with planted faults --------------------------------------------------------------

TODAY = date(2026, 3, 31)
#: check key -> (affected rows, status by default, status when up to half the rows may be affected).
#: One row in ten is far above the default failure share of 1%; faults that fail on any row stay failures.
PLANTED = {
    "duplicate:orders.order_id": (2, "fail", "fail"),  # one order loaded twice: both copies are affected
    "orphan:order_items.product_id": (1, "fail", "warn"),
    "negative:orders.net_amount": (1, "fail", "warn"),
    "future:orders.ordered_at": (1, "fail", "warn"),
    "domain:orders.status": (1, "fail", "fail"),  # 'shipped'
    "required:orders.status": (1, "fail", "fail"),
}


def _at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour)


def planted_rows() -> dict[str, list[dict[str, object]]]:
    """A shop of four members and ten orders, fresh on 31 March 2026, with six faults (PLANTED)."""
    def member(member_id: str, day: int, tier: str) -> dict[str, object]:
        return {"member_id": member_id, "registered_at": _at(day), "name": f"Member {member_id}", "tier": tier,
                "points_balance": 50, "consent_email": True, "consent_sms": False, "consent_push": False}

    def order(order_id: str, member_id: str | None, at: datetime, status: str | None, gross: str, discount: str,
              net: str) -> dict[str, object]:
        return {"order_id": order_id, "member_id": member_id, "ordered_at": at, "channel": "app", "status": status,
                "gross_amount": Decimal(gross), "discount_amount": Decimal(discount), "net_amount": Decimal(net),
                "points_earned": 1, "points_redeemed": 0, "campaign_id": "C1" if order_id == "O01" else None}

    def line(order_id: str, line_no: int, product_id: str) -> dict[str, object]:
        return {"order_id": order_id, "line_no": line_no, "product_id": product_id, "quantity": 1,
                "unit_price": Decimal("10.00"), "line_amount": Decimal("10.00")}

    return {
        "members": [member("M1", 1, "gold"), member("M2", 2, "basic"), member("M3", 3, "silver"),
                    member("M4", 30, "diamond")],
        "products": [{"product_id": p, "name": p, "category": "toys", "list_price": Decimal("10.00")}
                     for p in ("P1", "P2", "P3")],
        "campaigns": [{"campaign_id": "C1", "name": "Spring", "type": "coupon", "channel": "sms",
                       "start_at": _at(20, 0), "end_at": datetime(2026, 4, 5), "holdout_pct": Decimal("10.00"),
                       "coupon_value": Decimal("5.00")}],
        "orders": [
            order("O01", "M1", _at(30), "completed", "100.00", "10.00", "90.00"),
            order("O02", "M2", _at(29), "completed", "50.00", "0.00", "50.00"),
            order("O02", "M2", _at(29), "completed", "50.00", "0.00", "50.00"),  # duplicate order_id
            order("O03", "M3", _at(28), "completed", "10.00", "20.00", "-10.00"),  # negative net (adds up)
            order("O04", "M1", datetime(2026, 4, 3, 9), "completed", "20.00", "0.00", "20.00"),  # in the future
            order("O05", None, _at(27), "shipped", "30.00", "0.00", "30.00"),  # not a contract status
            order("O06", "M4", _at(26), None, "40.00", "0.00", "40.00"),  # required status missing
            order("O07", "M2", _at(25), "cancelled", "15.00", "5.00", "10.00"),
            order("O08", "M3", _at(24), "returned", "60.00", "0.00", "60.00"),
            order("O09", "M4", _at(23), "completed", "25.00", "0.00", "25.00"),
        ],
        "order_items": [line("O01", 1, "P1"), line("O01", 2, "P2"), line("O02", 1, "P3"), line("O03", 1, "P1"),
                        line("O04", 1, "P2"), line("O05", 1, "P9"),  # P9 is not in the catalogue
                        line("O06", 1, "P3"), line("O07", 1, "P1"), line("O08", 1, "P2"), line("O09", 1, "P3")],
        "events": [{"event_id": f"E{i}", "member_id": "M1", "session_id": "S1", "occurred_at": _at(30, 10 + i),
                    "event_type": kind, "page": "home", "product_id": product, "device": "ios", "source": "direct"}
                   for i, (kind, product) in enumerate((("session_start", None), ("product_view", "P1"),
                                                        ("purchase", "P1")))],
        "points_ledger": [{"entry_id": "L1", "member_id": "M1", "occurred_at": _at(30), "delta": 90, "reason": "earn",
                           "order_id": "O01"},
                          {"entry_id": "L2", "member_id": "M4", "occurred_at": _at(30), "delta": 100,
                           "reason": "bonus", "order_id": None}],
        "tier_changes": [{"member_id": "M1", "changed_at": _at(1, 0), "from_tier": "silver", "to_tier": "gold"}],
        "campaign_members": [{"campaign_id": "C1", "member_id": m, "arm": arm, "sent_at": _at(20, 9),
                              "opened_at": _at(20, 10) if arm == "treatment" else None, "clicked_at": None,
                              "converted_order_id": "O01" if m == "M1" else None}
                             for m, arm in (("M1", "treatment"), ("M2", "control"))],
    }


def unconstrained_tables() -> MetaData:
    """The contract's tables and column types without keys or NOT NULL, as an analytic warehouse that
    enforces nothing would hold them (the contract's own DuckDB tables would refuse the faults)."""
    loose = MetaData()
    for table in WAREHOUSE_TABLES:
        Table(table.name, loose, *(Column(c.name, c.type) for c in table.columns))
    return loose


def build(url: str, rows: dict[str, list[dict[str, object]]], tables: MetaData | None = None) -> None:
    engine = create_warehouse_engine(url, read_only=False)
    loose = tables or unconstrained_tables()
    with engine.begin() as conn:
        loose.create_all(conn, checkfirst=False)
        for name, records in rows.items():
            if records:
                conn.execute(loose.tables[name].insert(), records)
    engine.dispose()


@pytest.fixture(scope="module")
def pg_scratch(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Make throwaway PostgreSQL databases on the test server (dropped at the end of the module)."""
    made: list[str] = []
    admin: list[Engine] = []

    def make() -> str:
        server = request.getfixturevalue("postgres_server_url")
        if not admin:
            admin.append(create_engine(server, isolation_level="AUTOCOMMIT"))
        name = f"memberlens_quality_{uuid.uuid4().hex[:10]}"
        with admin[0].connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    yield make
    if admin:
        with admin[0].connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin[0].dispose()


@pytest.fixture(params=["duckdb", "postgresql"])
def scratch_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A function giving the URL of a new, empty warehouse database on DuckDB or PostgreSQL."""
    if request.param == "duckdb":
        return lambda: f"duckdb:///{tmp_path / f'w_{uuid.uuid4().hex[:6]}.duckdb'}"
    return request.getfixturevalue("pg_scratch")


@pytest.fixture
def planted(scratch_url) -> Iterator[Warehouse]:
    url = scratch_url()
    build(url, planted_rows())
    engine = create_warehouse_engine(url)
    yield Warehouse("planted", url, engine, {})
    engine.dispose()


def test_each_planted_fault_is_flagged_with_its_exact_count_and_the_rest_pass(planted) -> None:
    report = quality_report(planted.engine, TODAY)
    checks = report.checks.set_index("key")
    assert list(report.checks["key"]) == [c.key for c in CHECKS]
    for key, (affected, status, _lenient) in PLANTED.items():
        rows = len(planted.frame(quality.CHECK_BY_KEY[key].table))
        assert checks.loc[key, "affected_rows"] == affected, key
        assert checks.loc[key, "share"] == pytest.approx(affected / rows), key
        assert checks.loc[key, "status"] == status, key
    others = checks.drop(index=list(PLANTED))
    assert (others["status"] == "pass").all(), others.loc[others["status"] != "pass", "detail"].to_dict()
    assert report.counts() == {"pass": len(CHECKS) - len(PLANTED), "warn": 0, "fail": len(PLANTED)}
    assert_matches_reference(report, planted.frame)
    assert "'shipped' ×1" in checks.loc["domain:orders.status", "detail"]
    assert "1 key occurs more than once; 1 extra copy" in checks.loc["duplicate:orders.order_id", "detail"]
    assert "not found in products.product_id: 1 of 10 rows (10.00%)" in checks.loc["orphan:order_items.product_id",
                                                                                    "detail"]
    tables = report.tables.set_index("table")
    assert tables.loc["orders", "status"] == "fail" and tables.loc["products", "status"] == "pass"
    assert tables.loc["orders", "newest"] == _at(30)  # the future order does not make the table look fresh
    assert tables.loc["orders", "days_since_newest"] == 1
    nulls = report.columns.set_index(["table", "column"])
    assert nulls.loc[("orders", "status"), "nulls"] == 1
    assert nulls.loc[("orders", "status"), "null_share"] == pytest.approx(0.1)


def test_a_repeated_composite_key_is_counted_exactly(scratch_url) -> None:
    """Order line O01/1 loaded twice, and campaign member C1/M2 twice: the key screen (distinct hashes of
    order_id and line_no) finds them, and the grouping counts both copies of each, as pandas does."""
    rows = planted_rows()
    rows["order_items"].append(dict(rows["order_items"][0]))
    rows["campaign_members"].append(dict(rows["campaign_members"][1]))
    url = scratch_url()
    build(url, rows)
    engine = create_warehouse_engine(url)
    warehouse = Warehouse("composite", url, engine, {})
    try:
        report = quality_report(engine, TODAY)
        checks = report.checks.set_index("key")
        for key in ("duplicate:order_items.order_id+line_no", "duplicate:campaign_members.campaign_id+member_id"):
            assert checks.loc[key, "affected_rows"] == 2 and checks.loc[key, "status"] == "fail", key
            assert "1 key occurs more than once; 1 extra copy" in checks.loc[key, "detail"], key
        assert_matches_reference(report, warehouse.frame)
    finally:
        engine.dispose()


def test_a_key_the_warehouse_enforces_is_not_recounted(scratch_url) -> None:
    """A unique or primary key constraint on some of a key's columns proves the key (DuckDB and PostgreSQL check it
    on every write: a repeat is refused), so the check passes naming it without counting; a constraint on more
    columns than the key proves nothing and the key is counted, repeats found as before."""
    from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

    from analytics.storage.warehouse import enforced_unique_keys

    tables = unconstrained_tables()
    tables.tables["events"].append_constraint(UniqueConstraint("event_id", name="events_one_id"))
    tables.tables["order_items"].append_constraint(PrimaryKeyConstraint("order_id", "line_no", name="lines_pk"))
    tables.tables["campaign_members"].append_constraint(
        UniqueConstraint("campaign_id", "member_id", "arm", name="wider_than_the_key"))
    rows = planted_rows()
    rows["campaign_members"].append(dict(rows["campaign_members"][1], arm="treatment"))  # C1/M2 twice, other arm
    url = scratch_url()
    build(url, rows, tables)
    engine = create_warehouse_engine(url)
    try:
        (events_key, columns), = enforced_unique_keys(engine, "events")  # (DuckDB names constraints itself)
        assert columns == ("event_id",) and enforced_unique_keys(engine, "orders") == []
        (lines_key, columns), = enforced_unique_keys(engine, "order_items")
        assert columns == ("order_id", "line_no")
        assert [c for _, c in enforced_unique_keys(engine, "campaign_members")] == [("campaign_id", "member_id", "arm")]
        report = quality_report(engine, TODAY)
        checks = report.checks.set_index("key")
        assert {k: v for k, v in enforced_by(report).items() if v} == {
            "duplicate:events.event_id": events_key, "duplicate:order_items.order_id+line_no": lines_key}
        for key in ("duplicate:events.event_id", "duplicate:order_items.order_id+line_no"):
            assert checks.loc[key, "status"] == "pass" and checks.loc[key, "affected_rows"] == 0, key
        wider = checks.loc["duplicate:campaign_members.campaign_id+member_id"]
        assert wider["status"] == "fail" and wider["affected_rows"] == 2  # counted: the constraint proves nothing
        assert checks.loc["duplicate:orders.order_id", "affected_rows"] == 2  # no constraint: the planted repeat
        assert_matches_reference(report, Warehouse("enforced", url, engine, {}).frame)
    finally:
        engine.dispose()
    writer = create_warehouse_engine(url, read_only=False)
    try:  # the premise: the warehouse refuses a repeated event id
        with writer.begin() as conn, pytest.raises(Exception, match=r"(?i)unique|duplicate|constraint"):
            conn.execute(tables.tables["events"].insert(), [dict(rows["events"][0])])
    finally:
        writer.dispose()


def test_keys_sharing_a_hash_are_not_mistaken_for_repeats(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key screen compares hashes: give every key the same one (a collision everywhere) and the grouping on
    the values decides, so the report is the one the real hashes give: only the planted repeat."""
    from sqlalchemy import literal

    from analytics import quality_checks

    honest = quality_report(planted.engine, TODAY)
    monkeypatch.setattr(quality_checks, "key_hash", lambda *columns, salt=0: literal(7))
    colliding = quality_report(planted.engine, TODAY)
    pd.testing.assert_frame_equal(honest.checks, colliding.checks)
    duplicates = colliding.checks[colliding.checks["key"].str.startswith("duplicate:")].set_index("key")
    assert duplicates["affected_rows"].to_dict() == {
        key: (2 if key == "duplicate:orders.order_id" else 0) for key in duplicates.index}


def test_below_the_failure_share_a_fault_only_warns(planted) -> None:
    report = quality_report(planted.engine, TODAY, QualityThresholds(fail_share=0.5))
    got = statuses(report)
    for key, (_affected, _status, lenient) in PLANTED.items():
        assert got[key] == lenient, key


def test_a_missing_table_or_column_is_a_failed_check_not_an_error(scratch_url) -> None:
    url = scratch_url()
    contract = unconstrained_tables()
    partial = MetaData()
    for table in contract.sorted_tables:
        if table.name in ("events", "campaign_members"):
            continue
        keep = [c for c in table.columns if (table.name, c.name) not in {("orders", "net_amount"),
                                                                         ("order_items", "product_id")}]
        Table(table.name, partial, *(Column(c.name, c.type) for c in keep))
    rows = planted_rows()
    for name in ("orders", "order_items"):
        for record in rows[name]:
            record.pop("net_amount" if name == "orders" else "product_id")
    build(url, {k: v for k, v in rows.items() if k in partial.tables}, partial)
    engine = create_warehouse_engine(url)
    try:
        report = quality_report(engine, TODAY)
    finally:
        engine.dispose()
    checks = report.checks.set_index("key")
    assert checks.loc["present:events", "detail"] == "the table events is missing from the warehouse"
    assert checks.loc["present:events", "status"] == checks.loc["present:campaign_members", "status"] == "fail"
    assert checks.loc["present:orders", "status"] == "fail"
    assert "missing columns: net_amount" in checks.loc["present:orders", "detail"]
    assert "missing columns: product_id" in checks.loc["present:order_items", "detail"]
    skipped = {"negative:orders.net_amount", "net_mismatch:orders.net_amount", "orphan:order_items.product_id",
               "required:order_items.product_id", "freshness:events", "duplicate:events.event_id"}
    assert not skipped & set(checks.index)
    assert checks.loc["negative:orders.gross_amount", "status"] == "pass"  # the rest still ran
    assert checks.loc["domain:orders.status", "affected_rows"] == 1
    tables = report.tables.set_index("table")
    assert pd.isna(tables.loc["events", "rows"]) and tables.loc["events", "status"] == "fail"
    assert "product_id" not in set(report.columns.loc[report.columns["table"] == "order_items", "column"])


def test_empty_tables_fail_when_core_and_warn_as_not_loaded_otherwise(scratch_url) -> None:
    url = scratch_url()
    rows = planted_rows()
    build(url, {k: v for k, v in rows.items() if k in ("members", "products")})
    engine = create_warehouse_engine(url)
    try:
        report = quality_report(engine, TODAY)
    finally:
        engine.dispose()
    is_presence = report.checks["key"].str.startswith("present:")
    present = report.checks[is_presence].set_index("table")
    assert present.loc["members", "status"] == present.loc["products", "status"] == "pass"
    assert present.loc["orders", "status"] == present.loc["order_items", "status"] == "fail"
    for table in ("events", "points_ledger", "tier_changes", "campaigns", "campaign_members"):
        assert present.loc[table, "status"] == "warn"
        assert present.loc[table, "detail"] == "empty: not loaded"
    assert set(report.checks.loc[report.checks["dimension"] == "timely", "table"]) == {"members"}
    assert report.columns.loc[report.columns["table"] == "orders", "null_share"].isna().all()
    assert (report.checks.loc[~is_presence, "status"] == "pass").all()


# --- SQL hygiene and definitions --------------------------------------------------------------------

def test_every_check_is_defined_once_with_a_description() -> None:
    assert len({c.key for c in CHECKS}) == len(CHECKS)
    assert {c.dimension for c in CHECKS} == set(quality.DIMENSIONS)
    contract = {t.name: t for t in WAREHOUSE_TABLES}
    for check in CHECKS:
        assert len(check.description) > 60, check.key
        assert set(check.columns) <= set(contract[check.table].c.keys()), check.key
        if check.parent:
            assert check.parent[1] in contract[check.parent[0]].c, check.key
    required = [c for c in CHECKS if c.kind == "required"]
    assert {(c.table, c.column) for c in required} == {
        (t.name, col.name) for t in WAREHOUSE_TABLES for col in t.columns if not col.nullable}
    assert len([c for c in CHECKS if c.kind == "orphan"]) == 12
    assert len([c for c in CHECKS if c.kind == "duplicate"]) == 8


def test_today_and_codes_are_bound_parameters(duck_warehouse) -> None:
    """No value is written into the SQL text: "today" and the allowed codes travel as parameters."""
    statements: list[str] = []
    parameters: list[object] = []

    def capture(_conn, _cursor, statement, params, _context, _executemany) -> None:
        statements.append(statement)
        parameters.append(params)

    event.listen(duck_warehouse.engine, "before_cursor_execute", capture)
    try:
        quality_report(duck_warehouse.engine, date(2031, 5, 17))
    finally:
        event.remove(duck_warehouse.engine, "before_cursor_execute", capture)
    sql = "\n".join(statements)
    assert "2031" not in sql and "shipped" not in sql and "'completed'" not in sql
    assert "FILTER (" not in sql.upper()
    assert any(datetime(2031, 5, 18) in (p.values() if isinstance(p, dict) else p) for p in parameters)
    # schema look-up, one scan per table; per key its enforced constraints and, unless one proves it, a count;
    # one query per reference
    assert len(statements) <= 2 + 9 + 2 * 8 + 12


# --- the command line -------------------------------------------------------------------------------

def test_quality_cli_csv(warehouse) -> None:
    last_day = data_span(warehouse.engine).last_day
    done = run("analytics", "quality", "--url", warehouse.url, "--today", last_day.isoformat())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == ",".join(quality.CHECK_COLUMNS)
    table = pd.read_csv(io.StringIO(done.stdout))
    assert list(table["key"]) == [c.key for c in CHECKS]
    assert set(table["status"]) == {"pass"}
    assert f"quality as of {last_day}: 0 fail · 0 warn · {len(CHECKS)} pass" in done.stderr


def test_quality_cli_json_on_a_faulty_warehouse(planted) -> None:
    done = run("analytics", "quality", "--url", planted.url, "--today", TODAY.isoformat(), "--format", "json",
               "--start", "2000-01-01")  # dates are accepted and ignored
    assert done.returncode == 0, done.stderr
    records = {r["key"]: r for r in json.loads(done.stdout)}
    assert len(records) == len(CHECKS)
    for key, (affected, status, _lenient) in PLANTED.items():
        assert records[key]["affected_rows"] == affected and records[key]["status"] == status, key
    assert records["present:orders"]["affected_rows"] is None


def test_quality_cli_refuses_inverted_freshness_limits(duck_warehouse) -> None:
    done = run("analytics", "quality", "--url", duck_warehouse.url, "--fresh-days", "9", "--stale-days", "3")
    assert done.returncode == 2
    assert "fresh_days <= stale_days" in done.stderr and "Traceback" not in done.stderr


# --- the page -----------------------------------------------------------------------------------

@pytest.fixture
def quality_page(monkeypatch: pytest.MonkeyPatch):
    """Run pages/data_quality.py under AppTest with the context app.py would hand it (the page is not
    routed by app.py here, so the test does not depend on the navigation)."""
    from streamlit.testing.v1 import AppTest

    from analytics.access import local_principal
    from ui.context import _CONTEXT_KEY, PageContext

    def start(warehouse: Warehouse) -> tuple[AppTest, Callable[[], AppTest]]:
        monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", warehouse.url)
        span = data_span(warehouse.engine)
        context = PageContext(resolve_warehouse_config(), warehouse.engine, span, filter_options(warehouse.engine),
                              Filters(*span.last_days(90)), local_principal())
        at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "data_quality.py"), default_timeout=120)

        def rerun() -> AppTest:
            at.session_state[_CONTEXT_KEY] = context  # app.py hands it over on every run
            return at.run()

        return rerun(), rerun

    return start


def test_the_page_shows_the_verdict_checks_tables_and_null_shares(quality_page, warehouse) -> None:
    at, rerun = quality_page(warehouse)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Data quality"]
    expected = quality_report(warehouse.engine, date.today())
    verdict = " ".join(x.value for x in [*at.error, *at.warning, *at.success])
    n = expected.counts()
    assert f"{n['fail']} checks fail" in verdict or f"{n['fail']} check fails" in verdict
    assert {m.label for m in at.metric} == {"Complete", "Accurate", "Timely"}
    accurate = (expected.checks["dimension"] == "accurate").sum()
    assert {m.label: m.value for m in at.metric}["Accurate"] == f"{accurate} of {accurate} pass"
    tables = at.dataframe[1].value.set_index("table")
    assert tables["rows"].to_dict() == {t: len(warehouse.frame(t)) for t in tables.index}

    at.date_input(key="quality_as_of").set_value(data_span(warehouse.engine).last_day)
    at = rerun()
    assert not at.exception
    assert f"0 checks fail, 0 warn, {len(CHECKS)} pass" in at.success[0].value
    at.toggle(key="quality_problems_only").set_value(False)
    at = rerun()
    checks = at.dataframe[0].value
    assert len(checks) == len(CHECKS) and set(checks["status"]) == {"✔ Pass"}
    assert checks["definition"].str.len().min() > 60  # each check's definition is shown with it
    at.segmented_control(key="quality_dimension").set_value("timely")
    at = rerun()
    assert set(at.dataframe[0].value["dimension"]) == {"Timely"}
    at.selectbox(key="quality_null_table").set_value("members")
    at = rerun()
    nulls = at.dataframe[-1].value
    members = warehouse.frame("members")
    assert nulls.set_index("column")["nulls"].to_dict() == members.isna().sum().to_dict()


def test_the_page_lists_the_planted_faults_first(quality_page, planted) -> None:
    at, rerun = quality_page(planted)
    at.date_input(key="quality_as_of").set_value(TODAY)
    at = rerun()
    assert not at.exception, [e.value for e in at.exception]
    assert f"{len(PLANTED)} checks fail, 0 warn" in at.error[0].value
    shown = at.dataframe[0].value  # only warnings and failures by default, failures first
    assert set(shown["key"]) == set(PLANTED)
    assert set(shown["status"]) == {"✖ Fail"}
