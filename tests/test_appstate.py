"""The app-state database (saved audiences, audit log) on real SQLite files and real PostgreSQL
databases: every behaviour runs on both (PostgreSQL is skipped without MEMBERLENS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select, text

from analytics.errors import StateError
from analytics.storage.appstate import (
    AUDIENCE_COLUMNS,
    AUDIT_COLUMNS,
    STATE_URL_ENV,
    AppStateError,
    SavedAudience,
    audience_versions,
    audit_events,
    audit_log,
    list_audiences,
    load_audience,
    log_event,
    open_state,
    resolve_state_url,
    save_audience,
    saved_audiences,
)

HOSTILE = "'; DROP TABLE saved_audiences; --"
SPEC = {
    "tiers": ["gold", "diamond"],
    "city": "上海",
    "min_orders": 3,
    "recency_days": 30.5,
    "consent": {"sms": True, "email": False},
    "campaign": None,
    "emoji": "会员 🎉 «ç»",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty app-state database URL: a SQLite file in a folder that does not exist yet,
    or a new PostgreSQL database (skipped when no server is configured)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'app_state.sqlite'}"
    make: Callable[[], str] = request.getfixturevalue("new_postgres_database")
    return make()


@pytest.fixture
def state(state_url: str) -> Iterator[Engine]:
    engine = open_state(state_url)
    yield engine
    engine.dispose()


def count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- opening ----------------------------------------------------------------------------------------
def test_open_state_creates_the_folder_and_both_tables(state_url: str) -> None:
    engine = open_state(state_url)
    try:
        assert {"saved_audiences", "audit_log"} <= set(inspect(engine).get_table_names())
        if state_url.startswith("sqlite"):
            assert Path(state_url.removeprefix("sqlite:///")).is_file()
        assert count(engine, saved_audiences) == 0 and count(engine, audit_log) == 0
    finally:
        engine.dispose()


def test_open_state_twice_on_the_same_url_keeps_the_data(state: Engine, state_url: str) -> None:
    saved = save_audience(state, "VIPs", SPEC, 120, "ana")
    again = open_state(state_url)
    try:
        assert load_audience(again, "VIPs") == saved
        assert count(again, saved_audiences) == 1
    finally:
        again.dispose()


def test_open_state_from_several_threads_at_once_on_a_new_database(state_url: str) -> None:
    barrier = threading.Barrier(4)

    def opener() -> Engine:
        barrier.wait()
        return open_state(state_url)

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(opener) for _ in range(4)]
    engines = [f.result() for f in futures if f.exception() is None]
    try:
        assert [f.exception() for f in futures] == [None] * 4
        save_audience(engines[0], "after concurrent open", {}, None, "ana")
        assert load_audience(engines[3], "after concurrent open").version == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_data_survives_a_restart(state_url: str) -> None:
    engine = open_state(state_url)
    first = save_audience(engine, "Lapsed gold", SPEC, 42, "ana", note="for the win-back test")
    log_event(engine, "ana", "export_members", {"audience": "Lapsed gold", "rows": 42})
    engine.dispose()

    reopened = open_state(state_url)
    try:
        assert load_audience(reopened, "Lapsed gold") == first
        second = save_audience(reopened, "Lapsed gold", {**SPEC, "min_orders": 4}, 40, "bo")
        assert second.version == 2
        assert list(audit_events(reopened)["action"]) == ["save_audience", "export_members", "save_audience"]
    finally:
        reopened.dispose()


# --- saving and loading -----------------------------------------------------------------------------
def test_save_then_load_gives_the_same_spec_back(state: Engine) -> None:
    saved = save_audience(state, "  High value 上海  ", SPEC, 1_234, "  ana  ", note="первая версия")
    assert saved.name == "High value 上海" and saved.author == "ana"  # surrounding blanks stripped
    assert saved.version == 1 and saved.size == 1_234 and saved.note == "первая версия"
    loaded = load_audience(state, "High value 上海")
    assert loaded == saved
    assert loaded.spec == SPEC
    assert isinstance(loaded, SavedAudience)


def test_spec_is_stored_as_canonical_json(state: Engine) -> None:
    save_audience(state, "json", {"b": 1, "a": "é"}, None, "ana")
    with state.connect() as conn:
        stored = conn.execute(select(saved_audiences.c.spec)).scalar_one()
    assert stored == '{"a": "é", "b": 1}'


def test_created_at_is_naive_utc_now(state: Engine) -> None:
    before = datetime.now(UTC).replace(tzinfo=None)
    saved = save_audience(state, "timed", {}, None, "ana")
    after = datetime.now(UTC).replace(tzinfo=None)
    loaded = load_audience(state, "timed")
    assert loaded.created_at.tzinfo is None
    assert before - timedelta(seconds=1) <= loaded.created_at <= after + timedelta(seconds=1)
    assert loaded.created_at == saved.created_at


def test_hostile_text_is_stored_verbatim_and_the_tables_survive(state: Engine) -> None:
    other = save_audience(state, "Innocent", {"x": 1}, 1, "ana")
    spec = {"where": f"name = '{HOSTILE}'", HOSTILE: "\"quoted\" \\ back\nslash"}
    saved = save_audience(state, HOSTILE, spec, 7, f"{HOSTILE}author", note=f"{HOSTILE} Robert'); --")
    loaded = load_audience(state, HOSTILE)
    assert loaded == saved
    assert loaded.name == HOSTILE and loaded.spec == spec
    assert loaded.note == f"{HOSTILE} Robert'); --" and loaded.author == f"{HOSTILE}author"
    assert {"saved_audiences", "audit_log"} <= set(inspect(state).get_table_names())
    assert count(state, saved_audiences) == 2 and count(state, audit_log) == 2
    assert load_audience(state, "Innocent") == other
    assert HOSTILE in set(list_audiences(state)["name"])


def test_saving_a_name_again_adds_version_2_and_keeps_version_1(state: Engine) -> None:
    first = save_audience(state, "Churn risk", {"recency_days": 60}, 300, "ana", note="v1")
    second = save_audience(state, "Churn risk", {"recency_days": 90}, 450, "bo", note="wider")
    assert (first.version, second.version) == (1, 2)
    assert second.audience_id != first.audience_id
    assert load_audience(state, "Churn risk", 1) == first
    assert load_audience(state, "Churn risk") == second
    assert load_audience(state, "Churn risk", 2) == second
    assert audience_versions(state, "Churn risk") == [first, second]
    assert count(state, saved_audiences) == 2


def test_blank_note_is_stored_as_none(state: Engine) -> None:
    assert save_audience(state, "no note", {}, None, "ana", note="   ").note is None
    assert load_audience(state, "no note").note is None


def test_names_are_case_sensitive_and_separate(state: Engine) -> None:
    save_audience(state, "VIP", {}, None, "ana")
    assert save_audience(state, "vip", {}, None, "ana").version == 1
    assert save_audience(state, "VIP", {}, None, "ana").version == 2


def test_a_name_of_exactly_100_characters_is_accepted(state: Engine) -> None:
    name = "名" * 100
    saved = save_audience(state, name, {}, None, "a" * 100)
    assert load_audience(state, name) == saved


def test_audience_versions_are_oldest_first_and_empty_for_unknown_names(state: Engine) -> None:
    made = [save_audience(state, "Series", {"n": n}, n, "ana") for n in range(3)]
    versions = audience_versions(state, "Series")
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.spec["n"] for v in versions] == [0, 1, 2]
    assert versions == made
    assert audience_versions(state, "never saved") == []


# --- listing ----------------------------------------------------------------------------------------
def test_list_audiences_shows_the_latest_version_of_each_name_newest_first(state: Engine) -> None:
    save_audience(state, "A", {"v": 1}, 10, "ana")
    save_audience(state, "B", {"v": 1}, 20, "bo")
    save_audience(state, "A", {"v": 2}, 11, "ana", note="second")
    a3 = save_audience(state, "A", {"v": 3}, None, "cy")
    c1 = save_audience(state, "C", {"v": 1}, 30, "bo")

    latest = list_audiences(state)
    assert list(latest.columns) == AUDIENCE_COLUMNS
    assert list(latest["name"]) == ["C", "A", "B"]
    assert list(latest["version"]) == [1, 3, 1]
    assert list(latest["versions"]) == [1, 3, 1]
    assert latest.loc[1, "audience_id"] == a3.audience_id and latest.loc[0, "audience_id"] == c1.audience_id
    assert latest["size"].isna().tolist() == [False, True, False]
    assert latest.loc[1, "author"] == "cy"

    every = list_audiences(state, latest_only=False)
    assert list(every.columns) == AUDIENCE_COLUMNS
    assert len(every) == 5
    assert list(zip(every["name"], every["version"], strict=True)) == [
        ("C", 1), ("A", 3), ("A", 2), ("B", 1), ("A", 1)]
    assert every.loc[every["name"] == "A", "versions"].tolist() == [3, 3, 3]
    assert every.loc[2, "note"] == "second"


def test_list_audiences_on_an_empty_database_has_the_columns(state: Engine) -> None:
    for latest_only in (True, False):
        frame = list_audiences(state, latest_only=latest_only)
        assert frame.empty and list(frame.columns) == AUDIENCE_COLUMNS


# --- missing audiences ------------------------------------------------------------------------------
def test_loading_a_missing_name_or_version_says_which(state: Engine) -> None:
    save_audience(state, "Exists", {}, None, "ana")
    with pytest.raises(AppStateError, match="There is no saved audience named 'Nope'"):
        load_audience(state, "Nope")
    with pytest.raises(AppStateError, match="There is no saved audience named 'Nope'"):
        load_audience(state, "Nope", 1)
    with pytest.raises(AppStateError, match="'Exists' has no version 2"):
        load_audience(state, "Exists", 2)
    assert isinstance(AppStateError("x"), ValueError)


# --- invalid input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "spec", "size", "author", "message"),
    [
        ("", {}, 1, "ana", "audience name is empty"),
        ("   ", {}, 1, "ana", "audience name is empty"),
        ("x" * 101, {}, 1, "ana", "101 characters long; at most 100"),
        ("ok", {}, 1, "", "author is empty"),
        ("ok", {}, 1, " \t", "author is empty"),
        ("ok", {}, 1, "a" * 101, "author is 101 characters long"),
        ("ok", {"tiers": {"gold", "silver"}}, 1, "ana", "cannot be saved as JSON"),
        ("ok", {"when": datetime(2024, 1, 1)}, 1, "ana", "cannot be saved as JSON"),
        ("ok", {"ratio": float("nan")}, 1, "ana", "cannot be saved as JSON"),
        ("ok", ["not", "a", "mapping"], 1, "ana", "must be a mapping"),
        ("ok", {}, -1, "ana", "audience size must be a whole number"),
        ("ok", {}, 2.5, "ana", "audience size must be a whole number"),
    ],
)
def test_invalid_input_raises_and_writes_nothing(state: Engine, name, spec, size, author, message) -> None:
    with pytest.raises(AppStateError, match=message):
        save_audience(state, name, spec, size, author)
    assert count(state, saved_audiences) == 0
    assert count(state, audit_log) == 0


# --- audit log --------------------------------------------------------------------------------------
def test_a_save_writes_its_audit_row(state: Engine) -> None:
    saved = save_audience(state, "Audited", SPEC, 77, "ana")
    events = audit_events(state)
    assert list(events.columns) == AUDIT_COLUMNS
    assert len(events) == 1
    row = events.iloc[0]
    assert (row["actor"], row["action"]) == ("ana", "save_audience")
    assert json.loads(row["detail"]) == {"name": "Audited", "version": 1, "size": 77}
    assert row["at"].to_pydatetime() == saved.created_at


def test_save_and_its_audit_row_are_one_transaction(state: Engine) -> None:
    """With the audit table gone the audit insert fails, so the audience must not be saved either."""
    with state.begin() as conn:
        conn.execute(text("DROP TABLE audit_log"))
    with pytest.raises(StateError, match="app-state database"):
        save_audience(state, "Half saved?", {}, 1, "ana")
    assert count(state, saved_audiences) == 0


def test_log_event_and_audit_events_newest_first_with_limit(state: Engine) -> None:
    log_event(state, "ana", "export_members", {"audience": "VIP", "rows": 120, "城市": "上海"})
    log_event(state, "bo", "view_member", None)
    log_event(state, "cy", "export_members", {"audience": HOSTILE})

    events = audit_events(state)
    assert list(events["actor"]) == ["cy", "bo", "ana"]
    assert events["detail"].iloc[1] is None or events["detail"].isna().iloc[1]
    assert json.loads(events["detail"].iloc[2]) == {"audience": "VIP", "rows": 120, "城市": "上海"}
    assert json.loads(events["detail"].iloc[0]) == {"audience": HOSTILE}
    assert list(audit_events(state, limit=2)["actor"]) == ["cy", "bo"]


@pytest.mark.parametrize(
    ("actor", "action", "detail", "message"),
    [
        ("", "export_members", None, "actor is empty"),
        ("ana", "  ", None, "action is empty"),
        ("ana", "export_members", {"ids": {1, 2}}, "cannot be saved as JSON"),
    ],
)
def test_invalid_events_raise_and_write_nothing(state: Engine, actor, action, detail, message) -> None:
    with pytest.raises(AppStateError, match=message):
        log_event(state, actor, action, detail)
    assert count(state, audit_log) == 0


def test_audit_events_rejects_a_limit_below_one(state: Engine) -> None:
    with pytest.raises(AppStateError, match="limit"):
        audit_events(state, limit=0)


# --- concurrency ------------------------------------------------------------------------------------
def test_concurrent_saves_of_one_name_all_land_with_distinct_versions(state: Engine) -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)

    def saver(n: int) -> SavedAudience:
        barrier.wait()
        return save_audience(state, "Rush", {"by": n}, n, f"analyst {n}")

    with ThreadPoolExecutor(max_workers=threads_count) as pool:
        futures = [pool.submit(saver, n) for n in range(threads_count)]
    assert [f.exception() for f in futures] == [None] * threads_count
    saved = [f.result() for f in futures]
    assert sorted(s.version for s in saved) == list(range(1, threads_count + 1))
    stored = audience_versions(state, "Rush")
    assert [s.version for s in stored] == list(range(1, threads_count + 1))
    assert sorted(s.spec["by"] for s in stored) == list(range(threads_count))
    assert {(s.version, s.spec["by"]) for s in saved} == {(s.version, s.spec["by"]) for s in stored}
    audit_versions = sorted(json.loads(d)["version"] for d in audit_events(state)["detail"])
    assert audit_versions == list(range(1, threads_count + 1))


# --- configuration ----------------------------------------------------------------------------------
def write_secrets(path: Path, url: str) -> Path:
    path.write_text(f'[connections.app_state]\nurl = "{url}"\n\n[connections.warehouse]\nurl = "duckdb:///w"\n')
    return path


def test_resolve_state_url_prefers_the_environment(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path / "secrets.toml", "sqlite:////from/secrets.sqlite")
    env = {STATE_URL_ENV: "  postgresql+psycopg://u:p@db/state  "}
    assert resolve_state_url(env, [secrets]) == "postgresql+psycopg://u:p@db/state"


def test_resolve_state_url_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_URL_ENV, "sqlite:////from/env.sqlite")
    assert resolve_state_url(paths=[tmp_path / "missing.toml"]) == "sqlite:////from/env.sqlite"


def test_resolve_state_url_falls_back_to_secrets(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path / "secrets.toml", "sqlite:////from/secrets.sqlite")
    assert resolve_state_url({}, [tmp_path / "missing.toml", secrets]) == "sqlite:////from/secrets.sqlite"
    assert resolve_state_url({STATE_URL_ENV: "   "}, [secrets]) == "sqlite:////from/secrets.sqlite"


def test_resolve_state_url_defaults_to_sqlite_in_the_data_dir(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERLENS_DATA_DIR", str(tmp_path / "data"))
    warehouse_only = tmp_path / "secrets.toml"
    warehouse_only.write_text('[connections.warehouse]\nurl = "duckdb:///w"\n')
    url = resolve_state_url({}, [warehouse_only])
    assert url == f"sqlite:///{tmp_path / 'data' / 'app_state.sqlite'}"
    engine = open_state(url)
    try:
        assert (tmp_path / "data" / "app_state.sqlite").is_file()
    finally:
        engine.dispose()


# --- unusable databases -----------------------------------------------------------------------------
def test_an_unreachable_server_raises_warehouse_error_without_the_password() -> None:
    with pytest.raises(StateError) as caught:
        open_state("postgresql+psycopg://u:secret@127.0.0.1:1/x")
    error = caught.value
    assert "does not answer" in str(error)
    assert "***" in str(error)
    assert "secret" not in str(error)
    assert "secret@" not in error.fix and error.fix  # the fix may name .streamlit/secrets.toml, not the password


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a valid SQLAlchemy URL"),
        ("nosuchdialect+x://u:secret@h/db", "No database driver"),
    ],
)
def test_bad_urls_raise_warehouse_error(url: str, message: str) -> None:
    with pytest.raises(StateError, match=message) as caught:
        open_state(url)
    assert "secret" not in str(caught.value)
    assert "secret@" not in caught.value.fix


def test_a_sqlite_file_under_a_regular_file_raises_warehouse_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(StateError, match="Cannot create the folder"):
        open_state(f"sqlite:///{blocker / 'state' / 'app_state.sqlite'}")
