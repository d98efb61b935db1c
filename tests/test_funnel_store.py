"""The funnel store (analytics/funnel_store.py): the funnels it answers are the SQL's, figure for figure.

Both ways: on random event logs its best attempt of every unit equals the plain-Python reference
(tests/funnel_reference.py) and its report and trend equal the SQL's; on the DuckDB demo every mode, unit, step
filter, tier filter, scope and breakdown gives the SQL's report. A stale store is never read.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine

from analytics import funnel_store
from analytics.filters import Filters, Scope
from analytics.funnel_spec import DIMENSIONS
from analytics.funnels import FunnelReport, FunnelSpec, FunnelStep, funnel_report, funnel_trend
from analytics.storage import score_store
from analytics.storage.score_store import ScoreStore
from analytics.storage.warehouse import data_span, open_warehouse
from tests.conftest import Warehouse
from tests.funnel_reference import reference_attempts
from tests.test_funnels import DAY, FOUR, TIED_STARTS, EventLog, event_logs, funnels

EPOCH = datetime(1970, 1, 1)


def without_store(engine: Engine, fn, *args):
    """``fn(engine, *args)`` answered by the warehouse alone (the store switched off meanwhile)."""
    store = score_store.store_for(engine.dialect)
    score_store.enable(engine, None)
    try:
        return fn(engine, *args)
    finally:
        score_store.enable(engine, store)


def assert_same_report(got: FunnelReport, expected: FunnelReport) -> None:
    assert got.steps.equals(expected.steps), (got.breakdown, got.steps.compare(expected.steps)
                                              if got.steps.shape == expected.steps.shape else got.steps,
                                              got.steps.dtypes, expected.steps.dtypes)
    assert got.histogram.equals(expected.histogram)
    assert got.median_seconds_to_last == expected.median_seconds_to_last


def stored_attempts(engine: Engine, funnel: FunnelSpec, filters: Filters) -> dict[str, tuple]:
    """The store's best attempt per unit id: (reached, seconds per step, entry time)."""
    store = funnel_store.current(engine, funnel.unit)
    assert store is not None
    best = funnel_store.best_attempts(engine, store, funnel, filters)
    ids = dict(zip(*pq.read_table(store.ids("units")).to_pydict().values(), strict=True))
    units = store.column("unit")[best.entry]
    seconds = {k: iter(best.seconds(k).tolist()) for k in range(2, len(funnel.steps) + 1)}
    result = {}
    for i, unit in enumerate(units.tolist()):
        reached = int(best.reached[i])
        steps = tuple(next(seconds[k]) for k in range(2, len(funnel.steps) + 1) if reached >= k)
        result[ids[unit]] = (reached, steps, EPOCH + timedelta(microseconds=int(best.times[0][i])))
    return result


# ---------------------------------------------------------------------------------------------
# Random event logs: the reference and the SQL
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EventLog, ScoreStore]]:
    folder = tmp_path_factory.mktemp("funnel_store")
    engine = create_engine(f"duckdb:///{folder / 'log.duckdb'}")
    store = ScoreStore(folder / "store", folder / "log.duckdb")
    score_store.enable(engine, store)
    yield EventLog(engine), store
    engine.dispose()


def load_and_store(log: EventLog, store: ScoreStore, events: list) -> None:
    log.load(events)
    shutil.rmtree(store.directory, ignore_errors=True)  # two loads within a clock tick could share a state
    assert len(funnel_store.store_funnel_events(log.engine)) == 2


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=event_logs(), funnel=funnels(), tiers=st.sampled_from([(), ("gold",), ("gold", "basic")]))
@example(log=TIED_STARTS, funnel=FunnelSpec((FunnelStep("product_view"), FunnelStep("add_to_cart")), 60), tiers=())
def test_store_equals_reference_and_sql_on_random_logs(stored_log, log, funnel: FunnelSpec, tiers) -> None:
    events, store = stored_log
    load_and_store(events, store, log)
    engine = events.engine
    filters = Filters(DAY, DAY, (), tiers)
    if not tiers:
        start = datetime.combine(DAY, datetime.min.time())
        expected = {unit: (a.reached, a.seconds, a.entry_at)
                    for unit, a in reference_attempts(funnel, log, start, start + timedelta(days=1)).items()}
        assert stored_attempts(engine, funnel, filters) == expected
    assert_same_report(funnel_report(engine, funnel, filters), without_store(engine, funnel_report, funnel, filters))
    for grain in ("day", "week"):
        got = funnel_trend(engine, funnel, filters, grain)
        assert got.equals(without_store(engine, funnel_trend, funnel, filters, grain))


def test_a_stale_store_is_not_read(stored_log) -> None:
    events, store = stored_log
    later = [*TIED_STARTS]
    load_and_store(events, store, later)
    assert funnel_store.current(events.engine, "member") is not None
    events.load(later[:1])  # a write: the store no longer describes the warehouse
    assert funnel_store.current(events.engine, "member") is None
    funnel = FunnelSpec((FunnelStep("product_view"), FunnelStep("add_to_cart")), 60)
    assert funnel_report(events.engine, funnel, Filters(DAY, DAY)).total["units"].tolist() == [1, 0]


def test_no_store_beside_other_warehouses() -> None:
    memory = create_engine("sqlite://")
    assert funnel_store.store_funnel_events(memory) == []
    assert funnel_store.refresh_in_background(memory) is False
    assert funnel_store.current(memory, "member") is None


# ---------------------------------------------------------------------------------------------
# The demo warehouse: every mode, unit, filter, scope and breakdown against the SQL
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored_demo(duck_warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A copy of the DuckDB demo with a data folder of its own, its funnel store built in the background as the
    Funnels page has it built."""
    folder = tmp_path_factory.mktemp("funnel_store_demo")
    path = folder / "warehouse.duckdb"
    shutil.copyfile(duck_warehouse.url.removeprefix("duckdb:///"), path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMBERLENS_DATA_DIR", str(folder / "data"))
        engine = open_warehouse(f"duckdb:///{path}")
    assert funnel_store.refresh_in_background(engine) is True
    deadline = time.monotonic() + 120
    while any(funnel_store.current(engine, u) is None for u in ("member", "session")):
        assert time.monotonic() < deadline, "the funnel store was not built in 120 s"
        time.sleep(0.1)
    assert funnel_store.refresh_in_background(engine) is False  # fresh: nothing to do
    yield engine
    engine.dispose()


def demo_funnels(unit: str, mode: str) -> list[FunnelSpec]:
    plain = FunnelSpec(tuple(FunnelStep(k) for k in FOUR), 2 * 86_400, mode, unit)
    filtered = FunnelSpec((FunnelStep("page_view", device="app"), FunnelStep("product_view", category="Beauty"),
                           FunnelStep("add_to_cart"), FunnelStep("product_view", category="Beauty")),
                          86_400, mode, unit)
    repeated = FunnelSpec((FunnelStep("product_view"), FunnelStep("product_view"), FunnelStep("purchase")),
                          3_600, mode, unit)
    return [plain, filtered, repeated]


@pytest.mark.parametrize("mode", ["ordered", "strict", "any"])
@pytest.mark.parametrize("unit", ["member", "session"])
def test_store_equals_sql_on_the_demo(stored_demo: Engine, unit: str, mode: str) -> None:
    last = data_span(stored_demo).last_day
    weeks = Filters(last - timedelta(days=27), last)
    with stored_demo.connect() as conn:
        members = [m for (m,) in conn.exec_driver_sql("SELECT member_id FROM members ORDER BY member_id LIMIT 40")]
    scopes = [Scope(), Scope(regions=("South China",)), Scope(excluded=tuple(members))]
    reached_last = 0
    for number, funnel in enumerate(demo_funnels(unit, mode)):
        for tiers in ((), ("gold", "silver")):
            for scope in scopes if not tiers else scopes[:1]:
                filters = Filters(weeks.start, weeks.end, (), tiers, scope)
                breakdowns = (None, *DIMENSIONS) if number == 0 and not tiers else (None, "tier", "device")
                for breakdown in breakdowns:
                    got = funnel_report(stored_demo, funnel, filters, breakdown)
                    assert_same_report(got, without_store(stored_demo, funnel_report, funnel, filters, breakdown))
                reached_last += int(got.total["units"].iloc[-1])
        for grain in ("day", "week"):
            got = funnel_trend(stored_demo, funnel, weeks, grain)
            assert got.equals(without_store(stored_demo, funnel_trend, funnel, weeks, grain))
    assert reached_last > 0  # not a comparison of empty funnels


def test_folders_of_an_older_state_are_pruned(tmp_path: Path) -> None:
    store = ScoreStore(tmp_path / "store", tmp_path / "warehouse.duckdb")
    (tmp_path / "warehouse.duckdb").write_bytes(b"one")
    old = store.write_folder("funnel-member", store.state(), lambda folder: (folder / "a.bin").write_bytes(b"1"))
    time.sleep(0.01)
    (tmp_path / "warehouse.duckdb").write_bytes(b"two, longer")
    new = store.write_folder("funnel-member", store.state(), lambda folder: (folder / "a.bin").write_bytes(b"2"))
    assert new != old and new.is_dir() and not old.exists()
    assert store.find_folder("funnel-member") == new
    assert [p.name for p in store.directory.iterdir()] == [new.name]  # no partial folder left behind


@pytest.mark.parametrize("unit", ["member", "session"])
def test_small_blocks_of_whole_units_give_the_same_attempts(stored_demo: Engine, unit: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The store is walked in blocks of whole units; blocks far smaller than a unit's events change nothing."""
    store = funnel_store.current(stored_demo, unit)
    assert store is not None
    last = data_span(stored_demo).last_day
    filters = Filters(last - timedelta(days=27), last)
    specs = [f for mode in ("ordered", "strict", "any") for f in demo_funnels(unit, mode)]
    expected = [funnel_store.best_attempts(stored_demo, store, f, filters) for f in specs]
    monkeypatch.setattr(funnel_store, "_BLOCK", 997)
    blocks = store.blocks()
    units = store.column("unit")
    assert len(blocks) > 20 and blocks[0][0] == 0 and blocks[-1][1] == store.rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))  # contiguous
    assert all(units[start - 1] != units[start] for start, _end in blocks[1:])  # cut between units
    for funnel, want in zip(specs, expected, strict=True):
        got = funnel_store.best_attempts(stored_demo, store, funnel, filters)
        assert np.array_equal(got.entry, want.entry) and np.array_equal(got.reached, want.reached)
        assert np.array_equal(got.times, want.times)


def test_sorting_a_slice_of_units_at_a_time_keeps_the_same_store(stored_demo: Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The build sorts a slice of units per statement (DuckDB holds a sorted result whole): many small slices
    write the very same files as one."""
    kept = score_store.store_for(stored_demo.dialect)
    sliced = ScoreStore(kept.directory / "sliced", kept.warehouse)
    monkeypatch.setattr(funnel_store, "_SORT_SLICE", 997)
    score_store.enable(stored_demo, sliced)
    try:
        folders = funnel_store.store_funnel_events(stored_demo)
    finally:
        score_store.enable(stored_demo, kept)
    for folder in folders:
        whole = kept.find_folder(folder.name.rsplit("-", 1)[0])
        assert whole is not None and whole != folder
        names = sorted(f.name for f in whole.iterdir())
        assert names == sorted(f.name for f in folder.iterdir()) and "ts.bin" in names
        for name in names:
            if name.endswith((".bin", ".json")):
                assert (folder / name).read_bytes() == (whole / name).read_bytes(), name
