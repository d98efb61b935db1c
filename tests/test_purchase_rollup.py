"""The purchase rollup (analytics/purchase_rollup.py): what it keeps is completed member purchases summed by member,
channel, category and day (against pandas); "bought a category" selects the same members and the profile's
category mix has the same figures whether they read the rollup or the order lines; a rollup of an older state of
the warehouse is never read, and the app rebuilds it; only an embedded DuckDB file has one."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine

from analytics import audience_report, purchase_rollup, targeting
from analytics.filters import Scope
from analytics.storage import score_store
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse


def _purchases(warehouse: Warehouse) -> pd.DataFrame:
    """Every line of a completed member order with its member, channel, category, day and amount (pandas)."""
    orders = warehouse.frame("orders")
    orders = orders[(orders["status"] == "completed") & orders["member_id"].notna()]
    lines = warehouse.frame("order_items").merge(orders[["order_id", "member_id", "channel", "ordered_at"]],
                                                 on="order_id")
    lines = lines.merge(warehouse.frame("products")[["product_id", "category"]], on="product_id", how="left")
    lines["day"] = pd.to_datetime(lines["ordered_at"]).dt.normalize()
    return lines


def _spec(last_day, conditions, days: int = 180) -> targeting.CampaignAudience:
    return targeting.parse_spec({"version": 1, "kind": "audience", "start": str(last_day - timedelta(days=days - 1)),
                                 "end": str(last_day), "rules": {"match": "all", "conditions": conditions}})


def _reads_rollup(engine, audience) -> bool:
    return "read_parquet" in str(targeting.audience_member_ids(audience).compile(engine))


def _members(engine, audience) -> set[str]:
    return set(read_frame(engine, targeting.audience_member_ids(audience))["member_id"])


def test_the_rollup_sums_completed_member_purchases_by_member_channel_category_and_day(
        own_warehouse, duck_warehouse: Warehouse) -> None:
    engine, _path = own_warehouse
    kept = purchase_rollup.store_rollup(engine)
    assert kept is not None and kept.parent == score_store.store_for(engine.dialect).directory
    assert purchase_rollup.store_rollup(engine) == kept  # kept already: nothing computed again
    stored = pd.read_parquet(kept)
    assert list(stored.columns) == list(purchase_rollup.COLUMNS)
    keys = ["member_id", "channel", "category", "day"]
    lines = _purchases(duck_warehouse)
    want = lines.groupby(keys, dropna=False, as_index=False)["line_amount"].sum()
    got = stored.assign(day=pd.to_datetime(stored["day"]), sales=stored["sales"].astype("float64"))
    merged = want.merge(got, on=keys, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and len(got) == len(want) > 1000
    assert merged["sales"].to_numpy() == pytest.approx(merged["line_amount"].round(2).to_numpy(), abs=1e-6)
    assert stored["category"].dropna().is_monotonic_increasing  # the order the readers' filters skip by


@pytest.mark.parametrize("case", ["one category", "two categories, 30-day look-back", "a channel's user"])
def test_bought_category_selects_the_same_members_from_the_rollup_and_from_the_lines(
        own_warehouse, duck_warehouse: Warehouse, case: str) -> None:
    engine, _path = own_warehouse
    last = data_span(engine).last_day
    lines = _purchases(duck_warehouse)
    categories = lines["category"].value_counts().index[:2].tolist()
    condition = {"field": "bought_category", "op": "in", "value": categories[:1]}
    since, channels = last - timedelta(days=179), ()
    if case == "two categories, 30-day look-back":
        condition = {**condition, "value": categories, "days": 30}
        since = last - timedelta(days=29)
    audience = _spec(last, [condition, {"field": "tier", "op": "in", "value": ["basic", "silver", "gold"]}])
    if case == "a channel's user":
        channels = ("mini_program",)
        audience = replace(audience, window=replace(audience.window, scope=Scope(channels=channels)))
    assert not _reads_rollup(engine, audience)
    from_lines = _members(engine, audience)
    preview = targeting.preview(engine, audience)

    purchase_rollup.store_rollup(engine)
    assert _reads_rollup(engine, audience)
    from_rollup = _members(engine, audience)
    bought = lines[lines["category"].isin(condition["value"]) & (lines["day"] >= pd.Timestamp(since))
                   & (lines["day"] <= pd.Timestamp(last))]
    if channels:
        bought = bought[bought["channel"].isin(channels)]
    tiers = duck_warehouse.frame("members").set_index("member_id")["tier"]
    want = {m for m in bought["member_id"].unique() if tiers.get(m) in ("basic", "silver", "gold")}
    assert from_rollup == from_lines == want and len(want) > 20
    assert targeting.preview(engine, audience) == preview


def test_the_profile_s_category_mix_is_the_same_from_the_rollup(own_warehouse, duck_warehouse: Warehouse) -> None:
    engine, _path = own_warehouse
    last = data_span(engine).last_day
    audience = _spec(last, [{"field": "tier", "op": "in", "value": ["gold", "diamond"]}], days=90)
    before = audience_report.audience_profile(engine, audience)
    purchase_rollup.store_rollup(engine)
    after = audience_report.audience_profile(engine, audience)
    pd.testing.assert_frame_equal(after.categories, before.categories, check_exact=True)
    pd.testing.assert_frame_equal(after.mix, before.mix, check_exact=True)
    lines = _purchases(duck_warehouse)
    lines = lines[(lines["day"] >= pd.Timestamp(audience.window.start)) & (lines["day"] <= pd.Timestamp(last))]
    gold = set(duck_warehouse.frame("members").query("tier in ['gold', 'diamond']")["member_id"])
    want = lines.assign(category=lines["category"].fillna(audience_report.UNKNOWN)).groupby("category").agg(
        all_sales=("line_amount", "sum"),
        audience_sales=("line_amount", lambda s: s[lines.loc[s.index, "member_id"].isin(gold)].sum()))
    got = after.categories.set_index("category")
    assert set(got.index) == set(want.index) and len(got) > 3
    assert got["all_sales"].to_numpy() == pytest.approx(want.loc[got.index, "all_sales"].to_numpy(), rel=1e-12)
    assert got["audience_sales"].to_numpy() == pytest.approx(want.loc[got.index, "audience_sales"].to_numpy(),
                                                             rel=1e-12)


def test_a_rollup_of_an_older_warehouse_state_is_not_read_and_the_app_rebuilds_it(own_warehouse) -> None:
    from analytics import funnel_store
    from ui.warehouse import _keep_rollups

    engine, path = own_warehouse
    last = data_span(engine).last_day
    audience = _spec(last, [{"field": "bought_category", "op": "in", "value": ["Beauty", "Apparel"]}])
    _keep_rollups(f"duckdb:///{path}")  # what the demo set-up does
    assert all(funnel_store.current(engine, unit) is not None for unit in ("member", "session"))
    assert _reads_rollup(engine, audience)
    before = _members(engine, audience)
    old = purchase_rollup.current(engine)
    assert purchase_rollup.refresh_in_background(engine) is False  # fresh: nothing to do
    # a write to the warehouse (its modification time) leaves the rollup stale: the lines answer, same members
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert purchase_rollup.current(engine) is None and not _reads_rollup(engine, audience)
    assert _members(engine, audience) == before
    assert purchase_rollup.refresh_in_background(engine) is True  # what Campaign targeting does on each visit
    deadline = time.monotonic() + 60
    while purchase_rollup.current(engine) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    fresh = purchase_rollup.current(engine)
    assert fresh is not None and fresh != old and not old.exists()  # the older state's rollup is deleted
    assert _reads_rollup(engine, audience) and _members(engine, audience) == before


def test_only_an_embedded_duckdb_file_has_a_rollup(warehouse: Warehouse) -> None:
    if warehouse.name == "duckdb":
        assert score_store.store_for(warehouse.engine.dialect) is not None
    else:  # PostgreSQL cannot read the app's files: the conditions read the order lines there, nothing is kept
        assert purchase_rollup.store_rollup(warehouse.engine) is None
        assert purchase_rollup.refresh_in_background(warehouse.engine) is False
        assert purchase_rollup.current(warehouse.engine) is None
    memory = create_engine("duckdb:///:memory:")
    assert purchase_rollup.store_rollup(memory) is None and purchase_rollup.current(memory) is None
