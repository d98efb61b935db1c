"""One import at a time per warehouse, the duplicate-file check inside the load's transaction, and an import that
committed reported as committed; analysis connections bounded (statement timeout, DuckDB without file access)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from analytics.importers import ImportResult, import_file
from analytics.importers.loading import DuckDBTarget
from analytics.storage.locks import WarehouseBusy, warehouse_write_lock
from analytics.storage.warehouse import (
    QueryStopped,
    create_warehouse_engine,
    open_warehouse,
    release_cached_memory,
    stopped_query,
)
from tests.conftest import Warehouse

HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"


@pytest.fixture
def target(duck_warehouse: Warehouse, tmp_path: Path) -> tuple[str, Path]:
    copy = tmp_path / "w.duckdb"
    shutil.copy(duck_warehouse.url.removeprefix("duckdb:///"), copy)
    export = tmp_path / "shop.csv"
    export.write_text(HEADER + "".join(f"X{i},SKU-{i % 7},Mug,2,2026-11-10 09:30:00,4.50,9{i % 50},UK\n"
                                       for i in range(2000)), encoding="utf-8")
    return f"duckdb:///{copy}", export


def orders_like(url: str, pattern: str) -> int:
    engine = open_warehouse(url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM orders WHERE order_id LIKE :p"), {"p": pattern}).scalar_one()
    engine.dispose()
    return int(found)


def test_a_second_writer_is_told_the_warehouse_is_busy(target) -> None:
    url, export = target
    with warehouse_write_lock(url, "a test"), pytest.raises(WarehouseBusy, match="Another import or change"):
        import_file(url, "transactions", export)
    assert orders_like(url, "X%") == 0
    assert import_file(url, "transactions", export).rows_accepted == 2000  # free again afterwards


def test_the_same_file_twice_at_once_lands_once(target) -> None:
    url, export = target
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            outcomes.append(import_file(url, "transactions", export))
        except WarehouseBusy as busy:
            outcomes.append(busy)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    landed = [o for o in outcomes if isinstance(o, ImportResult) and o.already_imported is None]
    assert len(landed) == 1 and len(outcomes) == 2
    assert orders_like(url, "X%") == 2000
    again = import_file(url, "transactions", export)
    assert again.already_imported is not None and orders_like(url, "X%") == 2000


def test_an_import_that_committed_is_reported_as_committed(target, monkeypatch) -> None:
    url, export = target

    def broken_housekeeping(self, changed) -> None:
        raise OSError("the disk filled up during the checkpoint")

    monkeypatch.setattr(DuckDBTarget, "after_commit", broken_housekeeping)
    result = import_file(url, "transactions", export)
    assert result.already_imported is None and result.inserted["orders"] == 2000
    assert orders_like(url, "X%") == 2000


def test_analysis_connections_are_bounded(duck_warehouse: Warehouse, monkeypatch) -> None:
    engine = open_warehouse(duck_warehouse.url)
    with engine.connect() as conn:
        external, limit = conn.execute(text("SELECT current_setting('enable_external_access'), "
                                            "current_setting('memory_limit')")).one()
        assert external in (False, "false") and limit
        with pytest.raises(Exception, match=r"(?i)permission|disabled"):
            conn.execute(text("SELECT * FROM read_csv('/etc/hostname')")).fetchall()
    engine.dispose()
    monkeypatch.setenv("MEMBERLENS_STATEMENT_TIMEOUT", "0.5")
    engine = open_warehouse(duck_warehouse.url)
    with engine.connect() as conn, pytest.raises(Exception) as stopped:
        conn.execute(text("SELECT count(*) FROM range(100000000000) a")).fetchall()
    engine.dispose()
    explained = stopped_query(stopped.value)
    assert isinstance(explained, QueryStopped) and "longer than 0.5 s" in explained.problem


def test_postgres_sessions_have_a_statement_timeout(pg_warehouse: Warehouse, monkeypatch) -> None:
    monkeypatch.setenv("MEMBERLENS_STATEMENT_TIMEOUT", "0.5")
    engine = open_warehouse(pg_warehouse.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "500ms"
            assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
            assert conn.execute(text("SHOW jit")).scalar_one() == "off"  # JIT compiled models for seconds
            with pytest.raises(Exception) as stopped:
                conn.execute(text("SELECT pg_sleep(3)"))
        assert isinstance(stopped_query(stopped.value), QueryStopped)
    finally:
        engine.dispose()


def test_a_batch_job_hands_cached_blocks_back_and_keeps_its_guard(tmp_path: Path) -> None:
    """recommend train reads, then releases the warehouse file's cached blocks before its in-memory work: the
    memory DuckDB holds drops, the next statement reads the same data again under the same guard, and an
    in-memory database (whose data would go with it) is left alone."""
    url = f"duckdb:///{tmp_path / 'released.duckdb'}"
    writer = create_warehouse_engine(url, read_only=False)
    with writer.begin() as conn:
        conn.execute(text("CREATE TABLE lines AS SELECT i AS line, i % 7 AS quantity FROM range(3000000) t(i)"))
    writer.dispose()
    held = text("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
    engine = create_warehouse_engine(url)  # read-only, guarded, as open_warehouse makes it (without the tables check)
    with engine.connect() as conn:
        lines = conn.execute(text("SELECT count(*), sum(quantity) FROM lines")).one()
        before = conn.execute(held).scalar_one()
    release_cached_memory(engine)
    with engine.connect() as conn:
        after = conn.execute(held).scalar_one()
        assert conn.execute(text("SELECT count(*), sum(quantity) FROM lines")).one() == lines
        external, limit = conn.execute(text("SELECT current_setting('enable_external_access'), "
                                            "current_setting('memory_limit')")).one()
    engine.dispose()
    assert lines[0] == 3_000_000 and after < before / 2, (before, after)
    assert external in (False, "false") and limit
    memory = create_warehouse_engine("duckdb:///:memory:", read_only=False)
    with memory.begin() as conn:
        conn.execute(text("CREATE TABLE kept AS SELECT 42 AS answer"))
    release_cached_memory(memory)
    with memory.connect() as conn:
        assert conn.execute(text("SELECT answer FROM kept")).scalar_one() == 42
    memory.dispose()
