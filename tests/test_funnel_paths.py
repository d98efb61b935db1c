"""The funnel engine's two paths (see ``analytics.funnels._best``): the fast path keys units by a 64-bit
hash and orders their events by time alone; units with two events at one moment, a shared key, or more
step events than the fast path's packed counts hold are taken by the exact path. These tests force each
reason for the exact path and check every result against the plain-Python reference, on DuckDB and
PostgreSQL (and Spark against DuckDB), so that a path that is never taken by the demo data is still
checked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import case, literal, select

from analytics import funnels
from analytics.filters import Filters
from analytics.funnels import FunnelSpec, FunnelStep, best_attempts, dropoff_member_ids, funnel_report
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse
from tests.funnel_reference import Event, reference_attempts, reference_counts

FOUR = ("product_view", "add_to_cart", "checkout", "purchase")
SPECS = [FunnelSpec(tuple(FunnelStep(k) for k in FOUR), 2 * 86_400, mode, unit)
         for mode in funnels.MODES for unit in funnels.UNITS]


def demo_events(warehouse: Warehouse) -> list[Event]:
    e = warehouse.frame("events").merge(warehouse.frame("products")[["product_id", "category"]], on="product_id",
                                        how="left")
    e = e.astype(object).where(e.notna(), None)
    return [Event(r["event_id"], r["member_id"], r["session_id"], r["occurred_at"].to_pydatetime(), r["event_type"],
                  r["page"], r["device"], r["source"], r["category"]) for r in e.to_dict("records")]


@pytest.fixture(scope="module")
def log(warehouse: Warehouse) -> list[Event]:
    return demo_events(warehouse)


def last_weeks(warehouse: Warehouse) -> Filters:
    span = data_span(warehouse.engine)
    return Filters(span.last_day - timedelta(days=27), span.last_day)


def per_unit(engine: Any, spec: FunnelSpec, filters: Filters) -> dict[str, tuple]:
    frame = read_frame(engine, select(best_attempts(spec, filters)), hash_joins=True)
    return {r["unit"]: (int(r["reached"]), tuple(float(r[f"sec{k}"]) for k in range(2, int(r["reached"]) + 1)),
                        r["entry_id"]) for r in frame.to_dict("records")}


def assert_equals_reference(warehouse: Warehouse, log: list[Event], spec: FunnelSpec) -> None:
    filters = last_weeks(warehouse)
    expected = reference_attempts(spec, log, filters.start_ts, filters.end_ts)
    assert expected
    assert per_unit(warehouse.engine, spec, filters) == {
        u: (a.reached, a.seconds, a.entry.event_id) for u, a in expected.items()}
    assert funnel_report(warehouse.engine, spec, filters).total["units"].tolist() == reference_counts(spec, expected)
    members = set(read_frame(warehouse.engine, dropoff_member_ids(spec, filters, 1), hash_joins=True)["member_id"])
    assert members == {a.member_id for a in expected.values() if a.reached == 1 and a.member_id is not None}


@pytest.fixture
def shared_keys(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two busiest members, and the two busiest sessions, share their fast-path key (their second
    hash stays their own): their events interleave in one sequence there, so the fast path would merge
    them unless it flags the key as shared and sends them to the exact path."""
    events = warehouse.frame("events")
    events = events[events["event_type"].isin(FOUR)]
    pairs = [events["member_id"].value_counts().index[:2].tolist(),
             events["session_id"].value_counts().index[:2].tolist()]
    real = funnels._unit_key

    def shared(unit: Any, salt: int) -> Any:
        if salt == 1:
            return real(unit, salt)
        return case(*((unit.in_(pair), literal(7 + i)) for i, pair in enumerate(pairs)), else_=real(unit, 0))

    monkeypatch.setattr(funnels, "_unit_key", shared)


@pytest.fixture
def every_key_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every unit gets the same fast-path key: all of them take the exact path."""
    real = funnels._unit_key
    monkeypatch.setattr(funnels, "_unit_key", lambda unit, salt: literal(7) if salt == 0 else real(unit, salt))


@pytest.fixture
def tiny_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast-path count fields of 2 bits: a unit with 4 or more step events overflows them and must be
    sent to the exact path; units with fewer stay on the fast path with 31 fields to a sum."""
    monkeypatch.setattr(funnels, "_BITS", {True: 2, False: 31})


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.mode}-{s.unit}" for s in SPECS])
def test_units_sharing_a_key_take_the_exact_path(warehouse: Warehouse, log: list[Event], shared_keys: None,
                                                 spec: FunnelSpec) -> None:
    assert_equals_reference(warehouse, log, spec)


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.mode}-{s.unit}" for s in SPECS])
def test_every_unit_on_the_exact_path(warehouse: Warehouse, log: list[Event], every_key_shared: None,
                                      spec: FunnelSpec) -> None:
    assert_equals_reference(warehouse, log, spec)


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.mode}-{s.unit}" for s in SPECS])
def test_units_beyond_the_packed_counts_take_the_exact_path(warehouse: Warehouse, log: list[Event],
                                                            tiny_counts: None, spec: FunnelSpec) -> None:
    assert_equals_reference(warehouse, log, spec)


def test_the_flags_pick_the_units_with_same_moment_events(tmp_path: Any) -> None:
    """Unit A has two step events at one moment, B does not: only A is flagged for the exact path, and the
    result is the reference's (A's tie is ordered by event_id: E2's add_to_cart before E3's view)."""
    from sqlalchemy import create_engine

    from tests.test_funnels import DAY, EventLog, ev

    engine = create_engine(f"duckdb:///{tmp_path / 'ties.duckdb'}")
    db = EventLog(engine)
    log = [ev(1, 0, "product_view"), ev(3, 1, "product_view"), ev(2, 1, "add_to_cart"),
           ev(4, 0, "product_view", member="B", session="S2"), ev(5, 1, "add_to_cart", member="B", session="S2")]
    db.load(log)
    spec = FunnelSpec((FunnelStep("product_view"), FunnelStep("add_to_cart")), 3_600)
    filters = Filters(DAY, DAY)
    seq = funnels._numbered(spec, filters, False, True, None)
    odd = read_frame(engine, select(seq.rows.c.unit).where(seq.flag(seq.rows, "odd")).distinct())["unit"].tolist()
    keys = read_frame(engine, select(funnels._unit_key(literal("A"), 0).label("a"),
                                     funnels._unit_key(literal("B"), 0).label("b"))).iloc[0]
    assert odd == [keys["a"]] and keys["a"] != keys["b"]
    expected = reference_attempts(spec, log, filters.start_ts, filters.end_ts)
    assert per_unit(engine, spec, filters) == {u: (a.reached, a.seconds, a.entry.event_id) for u, a in expected.items()}
    engine.dispose()


def test_spark_exact_path_equals_duckdb(spark_warehouse: Warehouse, duck_twin: Warehouse,
                                        every_key_shared: None) -> None:
    """The exact path on Spark (every unit sent there) gives DuckDB's results."""
    from tests.test_spark import assert_same

    span = data_span(duck_twin.engine)
    quarter = Filters(*span.last_days(90))
    for spec in SPECS:
        duck = funnel_report(duck_twin.engine, spec, quarter, "device")
        assert_same(funnel_report(spark_warehouse.engine, spec, quarter, "device"), duck, where=spec.mode)
        rows = read_frame(duck_twin.engine, select(best_attempts(spec, quarter)))
        spark_rows = read_frame(spark_warehouse.engine, select(best_attempts(spec, quarter)))
        assert_same(spark_rows, rows, ordered=False, where=f"{spec.mode} {spec.unit} best attempts")
        assert isinstance(rows, pd.DataFrame) and len(rows)
