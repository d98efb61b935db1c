"""Members' rights (access, erasure, correction, objection) and retention, on DuckDB and PostgreSQL.

The access package is checked for completeness against the contract itself: every warehouse table whose declared
references lead to a member is in it, with every column, and its rows are exactly the member's rows selected with
pandas. Erasure and correction change the embedded (DuckDB) warehouse and leave an external one (PostgreSQL)
untouched with the change listed for its owner. Retention is checked against pandas counts of what lies past each
period; the audit log's own guard (append-only) is checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, insert, text

from analytics.access import Principal
from analytics.errors import StateError
from analytics.filters import Scope
from analytics.privacy_rights import (
    PERSONAL_COLUMNS,
    RetentionPolicy,
    access_package,
    correct_member,
    erase_member,
    member_tables,
    object_to_profiling,
    pending_for_owner,
    purge,
    retention_policy,
    retention_report,
    withdraw_objection,
)
from analytics.storage import contract
from analytics.storage.appstate import audit_events, audit_log, open_state, saved_audiences
from analytics.storage.privacy_store import PrivacyError, requests, suppression
from analytics.storage.warehouse import open_warehouse
from tests.conftest import Warehouse

OFFICER = Principal("po@example.com", "Po", "privacy_officer")


@pytest.fixture
def state(tmp_path) -> Engine:
    engine = open_state(f"sqlite:///{tmp_path}/state.sqlite")
    yield engine
    engine.dispose()


@pytest.fixture
def duck_copy(duck_warehouse: Warehouse, tmp_path) -> Warehouse:
    """A writable copy of the DuckDB test warehouse (the embedded kind: erasures are applied to it)."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(duck_warehouse.url.removeprefix("duckdb:///"), path)
    url = f"duckdb:///{path}"
    engine = open_warehouse(url)
    engine.dispose()  # connections are opened when needed (the writer needs the file to itself)
    return Warehouse("duckdb", url, engine, {})


def busiest_member(warehouse: Warehouse) -> str:
    """A member with rows in as many member tables as possible (orders, events, points, campaigns, tiers)."""
    scores = pd.Series(0, index=warehouse.frame("members")["member_id"])
    for table in ("orders", "events", "points_ledger", "tier_changes", "campaign_members"):
        present = warehouse.frame(table)["member_id"].dropna().unique()
        scores[scores.index.isin(present)] += 1
    return str(scores.sort_values(ascending=False, kind="stable").index[0])


def members_rows_by_pandas(warehouse: Warehouse, member_id: str) -> dict[str, pd.DataFrame]:
    """Every table's rows of the member, from the contract's declared references, with pandas."""
    rows = {}
    for table in contract.WAREHOUSE_TABLES:
        frame = warehouse.frame(table.name)
        refs = dict(contract.references(table))
        if table.name == "members":
            rows[table.name] = frame[frame["member_id"] == member_id]
        elif any(parent == "members" for parent, _ in refs.values()):
            column = next(c for c, (parent, _) in refs.items() if parent == "members")
            rows[table.name] = frame[frame[column] == member_id]
        elif any(parent == "orders" for parent, _ in refs.values()):
            column = next(c for c, (parent, _) in refs.items() if parent == "orders")
            theirs = warehouse.frame("orders").loc[lambda o: o["member_id"] == member_id, "order_id"]
            rows[table.name] = frame[frame[column].isin(theirs)]
    return rows


# --- access --------------------------------------------------------------------------------------------------

def test_the_access_package_is_complete_against_the_contract(warehouse: Warehouse, state: Engine) -> None:
    member = busiest_member(warehouse)
    object_to_profiling(state, OFFICER, member, "ticket 1")  # something in the app-state database too
    package = access_package(warehouse.engine, state, OFFICER, member)
    expected = members_rows_by_pandas(warehouse, member)
    assert set(package.warehouse) == set(expected) == {t.name for t, _, _ in member_tables()}
    assert {"members", "orders", "order_items", "events", "points_ledger", "tier_changes", "campaign_members"} <= \
        set(package.warehouse)
    for name, frame in package.warehouse.items():
        table = contract.TABLE_BY_NAME[name]
        assert list(frame.columns) == [c.name for c in table.columns], name
        assert len(frame) == len(expected[name]), name
        key = [c for c in (contract.table_key(table) or tuple(frame.columns[:2]))]
        got = sorted(map(tuple, frame[key].astype(str).to_numpy().tolist()))
        want = sorted(map(tuple, expected[name][key].astype(str).to_numpy().tolist()))
        assert got == want, name
    assert sum(len(f) for f in package.warehouse.values()) > 10  # a member with history
    unmasked = package.warehouse["members"].iloc[0]
    raw = warehouse.frame("members").set_index("member_id").loc[member]
    assert unmasked["phone"] == raw["phone"] and unmasked["name"] == raw["name"]  # their own data, unmasked
    assert set(package.app_state) == {"privacy_requests", "suppressed_members", "audit_log"}
    assert package.app_state["privacy_requests"]["kind"].tolist() == ["objection"]
    assert package.app_state["suppressed_members"]["reason"].tolist() == ["objected"]
    assert len(package.app_state["audit_log"]) == 1  # the objection's audit row names the member
    data = json.loads(package.to_json())
    assert data["member_id"] == member and set(data["warehouse"]) == set(package.warehouse)
    assert {k: len(v) for k, v in data["warehouse"].items()} == {k: len(v) for k, v in package.warehouse.items()}
    with zipfile.ZipFile(io.BytesIO(package.to_zip())) as archive:
        names = set(archive.namelist())
        assert names == {"member.json"} | {f"warehouse/{n}.csv" for n in package.warehouse} | {
            f"memberlens/{n}.csv" for n in package.app_state}
        assert len(pd.read_csv(archive.open("warehouse/events.csv"))) == len(package.warehouse["events"])
    events = audit_events(state)
    handed = events[events["action"] == "access_package"]
    assert len(handed) == 1 and int(handed.iloc[0]["rows"]) == package.rows
    assert handed.iloc[0]["actor"] == OFFICER.identity
    assert requests(state, member_id=member, kind="access")["status"].tolist() == ["done"]


# --- erasure -------------------------------------------------------------------------------------------------

def test_erasure_deletes_the_embedded_members_rows_and_suppresses_them(duck_copy: Warehouse, state: Engine,
                                                                        duck_warehouse: Warehouse) -> None:
    member = busiest_member(duck_warehouse)
    before = members_rows_by_pandas(duck_warehouse, member)
    result = erase_member(duck_copy.url, state, OFFICER, member, "ticket 9")
    assert result.status == "done"
    assert result.changed == {name: len(rows) for name, rows in before.items()}
    engine = open_warehouse(duck_copy.url)
    try:
        after = access_package(engine, state, OFFICER, member, record=False)
        assert all(frame.empty for frame in after.warehouse.values())
        # nobody else lost a row
        for name in before:
            with engine.connect() as conn:
                left = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            assert left == len(duck_warehouse.frame(name)) - len(before[name]), name
    finally:
        engine.dispose()
    assert suppression(state).erased == (member,)
    rows = requests(state, member_id=member)
    assert rows["status"].tolist() == ["done"] and json.loads(rows.iloc[0]["detail"])["reference"] == "ticket 9"
    assert pending_for_owner(state).empty


def test_erasure_on_an_external_warehouse_is_pending_for_its_owner(pg_warehouse: Warehouse, state: Engine) -> None:
    member = busiest_member(pg_warehouse)
    before = {name: len(rows) for name, rows in members_rows_by_pandas(pg_warehouse, member).items()}
    result = erase_member(pg_warehouse.url, state, OFFICER, member)
    assert (result.status, result.changed) == ("pending_owner", {})
    package = access_package(pg_warehouse.engine, state, OFFICER, member, record=False)
    assert {name: len(frame) for name, frame in package.warehouse.items()} == before  # untouched
    assert suppression(state).erased == (member,)  # ... but honoured by MemberLens at once
    pending = pending_for_owner(state)
    assert pending[["kind", "member_id"]].to_numpy().tolist() == [["erasure", member]]
    scoped = Scope(excluded=suppression(state).excluded(profiling=False))
    from analytics.member360 import member_profile

    assert member_profile(pg_warehouse.engine, member, scope=scoped) is None


def test_an_erasure_recorded_first_even_if_the_warehouse_cannot_be_written(state: Engine, tmp_path) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "w.duckdb"
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver says: the point is what was recorded
        erase_member(f"duckdb:///{missing}/x", state, OFFICER, "M00000001")
    assert suppression(state).erased == ("M00000001",)  # honoured from the moment it is recorded
    assert requests(state)["status"].tolist() == ["pending_owner"]


# --- correction and objection --------------------------------------------------------------------------------

def test_corrections_apply_to_the_embedded_warehouse_and_wait_for_an_external_one(
        duck_copy: Warehouse, pg_warehouse: Warehouse, state: Engine) -> None:
    member = busiest_member(pg_warehouse)
    result = correct_member(duck_copy.url, state, OFFICER, member,
                            {"phone": "13800000000", "birth_date": "1990-02-03", "consent_sms": "no"})
    assert result.status == "done" and result.changed == {"members": 1}
    engine = open_warehouse(duck_copy.url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT phone, birth_date, consent_sms FROM members WHERE member_id = :m"),
                           {"m": member}).one()
    engine.dispose()
    assert (row.phone, row.birth_date, row.consent_sms) == ("13800000000", date(1990, 2, 3), False)
    pending = correct_member(pg_warehouse.url, state, OFFICER, member, {"city": "Xi'an"})
    assert pending.status == "pending_owner"
    listed = pending_for_owner(state)
    assert listed["kind"].tolist() == ["correction"] and json.loads(listed.iloc[0]["changes"]) == {"city": "Xi'an"}
    assert correct_member(duck_copy.url, state, OFFICER, "NO-SUCH-MEMBER", {"city": "x"}).status == "refused"
    for changes, message in (({"tier": "diamond"}, "cannot be corrected"), ({"birth_date": "1066-10-14"},
                             "outside the years"), ({"consent_email": "perhaps"}, "yes or no"),
                             ({"name": "x" * 201}, "at most 200"), ({}, "at least one")):
        with pytest.raises(PrivacyError, match=message):
            correct_member(duck_copy.url, state, OFFICER, member, changes)


def test_objection_and_its_withdrawal(state: Engine) -> None:
    object_to_profiling(state, OFFICER, "M00000005")
    object_to_profiling(state, OFFICER, "M00000005")  # twice: still one entry
    assert suppression(state).objected == ("M00000005",)
    assert suppression(state).excluded(profiling=False) == ()
    assert suppression(state).excluded(profiling=True) == ("M00000005",)
    withdraw_objection(state, OFFICER, "M00000005")
    assert suppression(state).objected == ()
    assert requests(state)["kind"].tolist() == ["withdrawal", "objection", "objection"]
    actions = audit_events(state)["action"].tolist()
    assert actions == ["privacy_request"] * 3
    with pytest.raises(PrivacyError, match="member id"):
        object_to_profiling(state, OFFICER, "   ")


# --- retention -----------------------------------------------------------------------------------------------

def _inactive_by_pandas(warehouse: Warehouse, cutoff: datetime) -> set[str]:
    m, o, e = (warehouse.frame(t) for t in ("members", "orders", "events"))
    recent = set(o.loc[o["ordered_at"] >= cutoff, "member_id"].dropna()) | set(
        e.loc[e["occurred_at"] >= cutoff, "member_id"].dropna())
    personal = m[list(PERSONAL_COLUMNS)].notna().any(axis=1)
    return set(m.loc[(m["registered_at"] < cutoff) & personal & ~m["member_id"].isin(recent), "member_id"])


def test_retention_report_and_purge(duck_copy: Warehouse, duck_warehouse: Warehouse, state: Engine,
                                    tmp_path: Path) -> None:
    today = duck_warehouse.frame("orders")["ordered_at"].max().date()
    policy = RetentionPolicy(inactive_member_days=365, audit_days=400, saved_audience_days=30, upload_days=7)
    old, new = datetime(2020, 1, 1), datetime.combine(today, datetime.min.time())
    with state.begin() as conn:
        conn.execute(insert(audit_log), [{"at": old, "actor": "x", "action": "export_members"},
                                         {"at": old, "actor": "x", "action": "view_page"},
                                         {"at": new, "actor": "x", "action": "view_page"}])
        conn.execute(insert(saved_audiences), [{"name": n, "version": 1, "spec": "{}", "author": "x",
                                                "created_at": at} for n, at in (("old", old), ("new", new))])
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for name, days in (("stale.csv", 30), ("fresh.csv", 1)):
        (uploads / name).write_text("x")
        stamp = time.mktime((datetime.combine(today, datetime.min.time()) - timedelta(days=days)).timetuple())
        os.utime(uploads / name, (stamp, stamp))
    inactive = _inactive_by_pandas(duck_warehouse, datetime.combine(today - timedelta(days=365), datetime.min.time()))
    assert inactive
    engine = open_warehouse(duck_copy.url)
    report = retention_report(engine, state, policy, today, uploads).set_index("item")["past_period"]
    engine.dispose()
    assert report.to_dict() == {"inactive members' personal data": len(inactive), "audit log rows": 2,
                                "saved audience versions": 1, "uploaded files": 1}
    done = purge(duck_copy.url, None, state, Principal("a@example.com", role="admin"), policy, today, uploads)
    assert (done.anonymised_members, done.audit_rows, done.saved_audiences, done.uploads) == (len(inactive), 2, 1, 1)
    engine = open_warehouse(duck_copy.url)
    after = pd.read_sql(text("SELECT * FROM members"), engine.connect())
    assert after.loc[after["member_id"].isin(inactive), list(PERSONAL_COLUMNS)].isna().all().all()
    assert after.loc[~after["member_id"].isin(inactive), "phone"].notna().sum() == \
        duck_warehouse.frame("members").loc[lambda m: ~m["member_id"].isin(inactive), "phone"].notna().sum()
    assert retention_report(engine, state, policy, today, uploads)["past_period"].sum() == 0
    engine.dispose()
    assert [p.name for p in uploads.iterdir()] == ["fresh.csv"]
    logged = audit_events(state)
    assert logged.iloc[0]["action"] == "retention_purge" and json.loads(logged.iloc[0]["detail"])["audit_rows"] == 2


@pytest.mark.parametrize("where", ["embedded", "external"])
def test_the_retention_tab_counts_then_purges_and_shows_what_is_left(where: str, request, duck_warehouse: Warehouse,
                                                                     tmp_path: Path, monkeypatch) -> None:
    """The page a privacy officer uses, under AppTest: the retention tab's counts equal pandas's and the state's;
    after Purge the same tab (its figures cached between runs) shows what is left: on the embedded warehouse no
    inactive member and no old audit row, on PostgreSQL the members still there (listed for the owner) and no old
    audit row. The Data quality page shows the same."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from tests.conftest import direct_page

    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    monkeypatch.setenv("MEMBERLENS_RETENTION_INACTIVE_MEMBER_DAYS", "365")
    monkeypatch.setenv("MEMBERLENS_DATA_DIR", str(tmp_path))
    with open_state(state_url).begin() as conn:
        conn.execute(insert(audit_log), [{"at": datetime(2020, 1, 1), "actor": "x", "action": "view_page"}] * 2)
    if where == "embedded":
        url = request.getfixturevalue("duck_copy").url
        reader = Warehouse("duckdb", url, create_engine(url, poolclass=NullPool,  # the purge writes to the file
                                                        connect_args={"read_only": True}), {})
    else:
        reader = request.getfixturevalue("pg_warehouse")
    cutoff = datetime.combine(date.today() - timedelta(days=365), datetime.min.time())
    inactive = _inactive_by_pandas(duck_warehouse if where == "embedded" else reader, cutoff)
    assert inactive

    def past(at) -> dict[str, int]:
        table = next(df.value for df in at.dataframe if "past_period" in df.value.columns)
        return table.set_index("item")["past_period"].astype(int).to_dict()

    at, run = direct_page(reader, "pages/privacy_requests.py", monkeypatch)
    run()
    before = past(at)
    assert (before["inactive members' personal data"], before["audit log rows"]) == (len(inactive), 2)
    at.checkbox(key="privacy_purge_sure").check()
    run()
    at.button(key="privacy_purge").click()
    run()
    anonymised = len(inactive) if where == "embedded" else 0
    assert any(f"{anonymised:,} members anonymised, 2 audit rows" in s.value for s in at.success)
    run()
    left = len(inactive) - anonymised
    assert (past(at)["inactive members' personal data"], past(at)["audit log rows"]) == (left, 0)
    quality, run_quality = direct_page(reader, "pages/data_quality.py", monkeypatch)
    run_quality()
    assert (past(quality)["inactive members' personal data"], past(quality)["audit log rows"]) == (left, 0)


def test_retention_policy_is_configured_and_bounded(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[memberlens.retention]\nupload_days = 3\naudit_days = 500\n")
    policy = retention_policy({"MEMBERLENS_RETENTION_UPLOAD_DAYS": "5"}, [secrets])
    assert (policy.upload_days, policy.audit_days, policy.saved_audience_days) == (5, 500, 730)
    with pytest.raises(ValueError, match="at least 180 days"):
        RetentionPolicy(audit_days=30)
    with pytest.raises(ValueError, match="number of days"):
        retention_policy({"MEMBERLENS_RETENTION_AUDIT_DAYS": "forever"}, [])


# --- the audit log guards itself -------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def any_state(request, tmp_path) -> Engine:
    if request.param == "sqlite":
        engine = open_state(f"sqlite:///{tmp_path}/guard.sqlite")
    else:
        engine = open_state(request.getfixturevalue("new_postgres_database")())
    yield engine
    engine.dispose()


def test_the_audit_log_is_append_only_in_the_database(any_state: Engine) -> None:
    with any_state.begin() as conn:
        conn.execute(insert(audit_log), [{"at": datetime(2020, 1, 1), "actor": "old", "action": "a"},
                                         {"at": datetime.now().replace(microsecond=0), "actor": "new",
                                          "action": "b"}])
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log WHERE actor = 'new'"):
        with pytest.raises(Exception, match=r"append-only|cannot be deleted"), any_state.begin() as conn:
            conn.execute(text(statement))
    with any_state.begin() as conn:
        assert conn.execute(text("DELETE FROM audit_log WHERE actor = 'old'")).rowcount == 1  # old enough
    assert audit_events(any_state)["actor"].tolist() == ["new"]
    open_state(str(any_state.url.render_as_string(hide_password=False))).dispose()  # opening again keeps the guard
    with pytest.raises(Exception, match="append-only"), any_state.begin() as conn:
        conn.execute(text("UPDATE audit_log SET action = 'x'"))


def test_an_audit_log_from_before_gets_its_new_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE audit_log (event_id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL, actor TEXT NOT "
                     "NULL, action TEXT NOT NULL, detail TEXT)")
        conn.execute("INSERT INTO audit_log (at, actor, action, detail) VALUES ('2026-01-01 00:00:00', 'ana', "
                     "'export_members', '{\"rows\": 3}')")
    engine = open_state(f"sqlite:///{path}")
    events = audit_events(engine)
    assert list(events.columns)[-2:] == ["page", "rows"] and events.loc[0, "actor"] == "ana"
    engine.dispose()


def test_unwritable_state_stops_a_request(tmp_path: Path) -> None:
    engine = open_state(f"sqlite:///{tmp_path}/s.sqlite")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE privacy_requests"))
    with pytest.raises(StateError):
        object_to_profiling(engine, OFFICER, "M00000001")
    assert suppression(engine).objected == ()  # one transaction: nothing half-recorded
    engine.dispose()
