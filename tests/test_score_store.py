"""The score store (analytics/storage/score_store.py): a targeting condition on a score reads the scores kept for its
model, day and warehouse state, and selects exactly the members it selects when it computes them; it never reads
scores of another model, another day or an older state of the warehouse; only an embedded DuckDB file has one."""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import create_engine, select

from analytics import predictions, targeting
from analytics.prediction_audiences import PinnedModel, store_scores
from analytics.storage import score_store
from analytics.storage.contract import members
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse, run


def _spec(as_of, *conditions):
    return targeting.parse_spec({"version": 1, "kind": "audience", "start": str(as_of - timedelta(days=89)),
                                 "end": str(as_of), "rules": {"match": "all", "conditions": [
                                     {"field": "tier", "op": "in", "value": ["basic", "silver", "gold"]},
                                     *conditions]}})


def _uses_store(engine, spec) -> bool:
    return "read_parquet" in str(targeting.audience_member_ids(spec).compile(engine))


def test_stored_scores_select_the_members_computed_ones_do(own_warehouse, trained_models: dict) -> None:
    engine, _path = own_warehouse
    as_of = data_span(engine).last_day
    churn, value = PinnedModel("churn", 1, trained_models["churn"]), PinnedModel("clv", 1, trained_models["clv"])
    scores = predictions.score_members(engine, predictions.Models.from_stored(
        {"churn": trained_models["churn"], "clv": trained_models["clv"]}), as_of)
    cut = float(scores["predicted_clv"].median())
    spec = _spec(as_of, {"field": "churn_risk", "op": "between", "value": [0.3, 0.9], "model": churn.to_json()},
                 {"field": "predicted_clv", "op": "between", "value": [cut, None], "model": value.to_json()})
    assert not _uses_store(engine, spec)
    computed = set(read_frame(engine, targeting.audience_member_ids(spec))["member_id"])
    preview = targeting.preview(engine, spec)

    kept = store_scores(engine, churn, as_of)
    assert kept is not None and kept.parent == score_store.store_for(engine.dialect).directory
    stored = pd.read_parquet(kept).sort_values("member_id").reset_index(drop=True)
    assert list(stored.columns) == ["member_id", "churn_risk"] and list(stored["member_id"]) == list(
        scores["member_id"])
    assert stored["churn_risk"].to_numpy() == pytest.approx(scores["churn_risk"].to_numpy(), abs=1e-12)
    assert store_scores(engine, churn, as_of) == kept  # already kept: nothing computed again
    assert store_scores(engine, value, as_of) is not None

    assert _uses_store(engine, spec)
    got = set(read_frame(engine, targeting.audience_member_ids(spec))["member_id"])
    rows = scores.merge(read_frame(engine, select(members.c.member_id, members.c.tier)), on="member_id")
    wanted = rows[rows["tier"].isin(["basic", "silver", "gold"]) & rows["churn_risk"].between(0.3, 0.9)
                  & (rows["predicted_clv"] >= cut)]
    assert got == computed == set(wanted["member_id"]) and 0 < len(got) < len(rows) / 2
    assert targeting.preview(engine, spec) == preview


def test_scores_of_another_model_day_or_warehouse_state_are_not_read(own_warehouse, trained_models: dict) -> None:
    engine, path = own_warehouse
    as_of = data_span(engine).last_day
    churn = PinnedModel("churn", 1, trained_models["churn"])
    condition = {"field": "churn_risk", "op": "between", "value": [0.5, None], "model": churn.to_json()}
    spec = _spec(as_of, condition)
    before = targeting.preview(engine, spec)
    store_scores(engine, churn, as_of)
    assert _uses_store(engine, spec)
    # another version with the same content shares the scores; another content does not
    assert _uses_store(engine, _spec(as_of, {**condition, "model": {**churn.to_json(), "version": 7}}))
    other = {**trained_models["churn"], "as_of": "2000-01-01"}
    assert not _uses_store(engine, _spec(as_of, {**condition, "model": PinnedModel("churn", 1, other).to_json()}))
    assert not _uses_store(engine, _spec(as_of - timedelta(days=1), condition))
    # a write to the warehouse (its modification time) leaves the kept scores stale: computed again, same result
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not _uses_store(engine, spec)
    assert targeting.preview(engine, spec) == before
    # keeping scores of the new state deletes those of the old one
    old = list(score_store.store_for(engine.dialect).directory.glob("*.parquet"))
    fresh = store_scores(engine, churn, as_of)
    assert fresh is not None and fresh not in old
    assert list(fresh.parent.glob("*.parquet")) == [fresh]


def test_the_store_keeps_at_most_its_files_and_writes_whole(tmp_path) -> None:
    store = score_store.ScoreStore(tmp_path / "store", tmp_path / "warehouse.duckdb")
    (tmp_path / "warehouse.duckdb").write_bytes(b"x")
    state = store.state()
    table = pa.table({"member_id": ["M1", "M2"], "churn_risk": [0.1, 0.9]})
    day = date(2026, 1, 1)
    written = [store.write("churn", {"n": n}, day, state, table) for n in range(score_store.MAX_FILES + 3)]
    left = sorted(store.directory.iterdir())
    assert len(left) == score_store.MAX_FILES and set(left) == set(written[3:])
    assert store.find("churn", {"n": 3}, day) == written[3] and store.find("churn", {"n": 0}, day) is None
    assert pd.read_parquet(written[-1])["churn_risk"].tolist() == [0.1, 0.9]
    with pytest.raises(pa.ArrowInvalid):
        store.write("churn", {"n": "broken"}, day, state, pa.table({"member_id": ["M1"]}).cast(
            pa.schema([("member_id", pa.int64())])))
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".")]  # no partial file left


def test_two_warehouses_sharing_a_folder_keep_their_own_files(tmp_path) -> None:
    """A new state of one warehouse deletes that warehouse's older files, never the other's (which a query may be
    reading at that moment)."""
    folder = tmp_path / "store"
    one, other = (score_store.ScoreStore(folder, tmp_path / name) for name in ("one.duckdb", "two.duckdb"))
    for store in (one, other):
        store.warehouse.write_bytes(b"x")
    table = pa.table({"member_id": ["M1"], "sales": [1.0]})
    first = one.write_rollup("purchases", one.state(), table)
    theirs = other.write_rollup("purchases", other.state(), table)
    assert one.owner() != other.owner() and one.state().startswith(one.owner())
    assert first.exists() and theirs.exists() and other.find_rollup("purchases") == theirs
    one.warehouse.write_bytes(b"xy")  # a write to the first warehouse: a new state
    again = one.write_rollup("purchases", one.state(), table)
    assert again != first and not first.exists()  # its own stale file goes
    assert theirs.exists() and other.find_rollup("purchases") == theirs  # the other's stays


def test_only_an_embedded_duckdb_file_has_a_store(warehouse: Warehouse, trained_models: dict) -> None:
    churn = PinnedModel("churn", 1, trained_models["churn"])
    as_of = data_span(warehouse.engine).last_day
    if warehouse.name == "duckdb":
        assert score_store.store_for(warehouse.engine.dialect) is not None
    else:  # PostgreSQL cannot read the app's files: conditions are computed there, nothing is kept
        assert score_store.store_for(warehouse.engine.dialect) is None
        assert store_scores(warehouse.engine, churn, as_of) is None
    memory = create_engine("duckdb:///:memory:")
    assert score_store.store_for(memory.dialect) is None and store_scores(memory, churn, as_of) is None


def test_training_from_the_command_line_keeps_the_scores(duck_warehouse: Warehouse, tmp_path) -> None:
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(duck_warehouse.url.removeprefix("duckdb:///"), path)
    env = {"MEMBERLENS_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite", "MEMBERLENS_DATA_DIR": str(tmp_path / "d")}
    trained = run("analytics", "models", "train", "--model", "churn", "--url", f"duckdb:///{path}", env=env)
    assert trained.returncode == 0, trained.stderr
    kept = list((tmp_path / "d" / "score_store").glob("churn-*.parquet"))
    assert len(kept) == 1 and "kept for targeting conditions" in trained.stderr and str(kept[0]) in trained.stderr
    assert len(pd.read_parquet(kept[0])) > 500
    # scoring from the command line keeps the scores it computed (the file removed first: nothing kept yet)
    first = pd.read_parquet(kept[0])
    kept[0].unlink()
    scored = run("analytics", "models", "score", "--model", "churn", "--url", f"duckdb:///{path}", env=env)
    assert scored.returncode == 0, scored.stderr
    again = pd.read_parquet(kept[0]).sort_values("member_id").reset_index(drop=True)
    first = first.sort_values("member_id").reset_index(drop=True)
    assert list(again.columns) == ["member_id", "churn_risk"] and again["member_id"].equals(first["member_id"])
    assert again["churn_risk"].to_numpy() == pytest.approx(first["churn_risk"].to_numpy(), abs=1e-12)


def test_the_demo_set_up_keeps_the_scores_of_its_models(own_warehouse, tmp_path, monkeypatch) -> None:
    """The first-run demo comes with its models (ui/warehouse.py) and their scores kept; a churn condition reads
    them and selects the members the stored model scores."""
    from analytics.storage.appstate import open_state
    from analytics.storage.model_registry import latest_model
    from ui.warehouse import _train_demo_models

    engine, path = own_warehouse
    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    _train_demo_models(f"duckdb:///{path}")
    kept = sorted(p.name.split("-")[0] for p in score_store.store_for(engine.dialect).directory.glob("*.parquet"))
    assert kept == ["churn", "clv", "propensity"]
    stored = latest_model(open_state(state_url), "churn")
    spec = _spec(stored.as_of, {"field": "churn_risk", "op": "between", "value": [0.6, None],
                                "model": PinnedModel.from_stored(stored).to_json()})
    assert _uses_store(engine, spec)
    scores = predictions.score_members(engine, predictions.Models.from_stored({"churn": stored.model}),
                                       stored.as_of).merge(read_frame(engine, select(members.c.member_id,
                                                                                     members.c.tier)))
    wanted = scores[scores["tier"].isin(["basic", "silver", "gold"]) & (scores["churn_risk"] >= 0.6)]
    assert targeting.preview(engine, spec).matching == len(wanted) > 0
