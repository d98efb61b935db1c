"""Heatmaps against an independent pandas computation over the raw rows, on DuckDB and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pandas as pd
import pytest

from analytics.filters import Filters
from analytics.heatmaps import activity_rhythm, browsing_hotspots, category_affinity, cohort_retention
from analytics.warehouse import data_span
from tests.conftest import PROJECT_ROOT, Warehouse


def window(warehouse: Warehouse, days: int = 180) -> Filters:
    span = data_span(warehouse.engine)
    return Filters(span.last_day - timedelta(days=days - 1), span.last_day)


def completed(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    o = warehouse.frame("orders")
    return o[(o["status"] == "completed") & (o["ordered_at"] >= pd.Timestamp(filters.start_ts))
             & (o["ordered_at"] < pd.Timestamp(filters.end_ts))]


@pytest.mark.parametrize(("cohort", "period"), [("first_purchase", "month"), ("registration", "week")])
def test_cohort_retention_matches_pandas(warehouse: Warehouse, cohort: str, period: str) -> None:
    filters = window(warehouse)
    table = cohort_retention(warehouse.engine, filters, cohort, period, max_periods=6)
    o = warehouse.frame("orders")
    buys = o[(o["status"] == "completed") & o["member_id"].notna()]
    if cohort == "first_purchase":
        starts = buys.groupby("member_id")["ordered_at"].min()
    else:
        starts = warehouse.frame("members").set_index("member_id")["registered_at"]
    starts = starts[(starts >= pd.Timestamp(filters.start_ts)) & (starts < pd.Timestamp(filters.end_ts))]
    freq = "M" if period == "month" else "W-SUN"
    cohorts = starts.dt.to_period(freq).dt.start_time
    active = buys.assign(active=buys["ordered_at"].dt.to_period(freq).dt.start_time)[["member_id", "active"]]
    joined = active.merge(cohorts.rename("cohort").reset_index(), on="member_id").drop_duplicates()
    joined = joined[joined["active"] >= joined["cohort"]]
    if period == "month":
        joined["period"] = ((joined["active"].dt.year - joined["cohort"].dt.year) * 12
                            + joined["active"].dt.month - joined["cohort"].dt.month)
    else:
        joined["period"] = (joined["active"] - joined["cohort"]).dt.days // 7
    expected = joined[joined["period"] <= 6].groupby(["cohort", "period"])["member_id"].nunique()
    got = table.set_index(["cohort", "period"])["active"]
    assert (got[got > 0].sort_index() == expected.sort_index()).all() and len(got[got > 0]) == len(expected)
    sizes = cohorts.value_counts()
    assert table.groupby("cohort")["size"].first().sort_index().tolist() == sizes.sort_index().tolist()
    assert (table["share"] == table["active"] / table["size"]).all()
    if cohort == "first_purchase":
        assert (table.loc[table["period"] == 0, "share"] == 1).all()


def test_activity_rhythm_matches_pandas(warehouse: Warehouse) -> None:
    filters = window(warehouse)
    rhythm = activity_rhythm(warehouse.engine, filters, "net_sales").set_index(["weekday", "hour"])["value"]
    done = completed(warehouse, filters)
    expected = done.groupby([done["ordered_at"].dt.day_of_week, done["ordered_at"].dt.hour])["net_amount"].sum()
    assert len(rhythm) == 7 * 24
    for (weekday, hour), value in expected.items():
        assert rhythm[(weekday, hour)] == pytest.approx(value)
    assert rhythm.sum() == pytest.approx(done["net_amount"].sum())
    orders_count = activity_rhythm(warehouse.engine, filters, "orders")["value"].sum()
    assert orders_count == len(done)


def test_category_affinity_matches_pandas(warehouse: Warehouse) -> None:
    filters = window(warehouse)
    affinity = category_affinity(warehouse.engine, filters, "tier")
    done = completed(warehouse, filters)
    lines = (warehouse.frame("order_items").merge(done[["order_id", "member_id"]], on="order_id")
             .merge(warehouse.frame("products")[["product_id", "category"]], on="product_id")
             .merge(warehouse.frame("members")[["member_id", "tier"]], on="member_id"))
    spend = lines.groupby(["tier", "category"])["line_amount"].sum()
    share = spend / spend.groupby(level=0).transform("sum")
    overall = lines.groupby("category")["line_amount"].sum() / lines["line_amount"].sum()
    got = affinity.set_index(["group", "category"])
    for (tier, category), value in share.items():
        assert got.loc[(tier, category), "share"] == pytest.approx(value)
        assert got.loc[(tier, category), "index"] == pytest.approx(100 * value / overall[category])


def test_browsing_hotspots_match_pandas(warehouse: Warehouse) -> None:
    filters = window(warehouse, 30)
    hot = browsing_hotspots(warehouse.engine, filters, "event_type").set_index(["page", "column"])["events"]
    e = warehouse.frame("events")
    e = e[(e["occurred_at"] >= pd.Timestamp(filters.start_ts)) & (e["occurred_at"] < pd.Timestamp(filters.end_ts))]
    expected = e.assign(page=e["page"].fillna("unknown")).groupby(["page", "event_type"]).size()
    assert hot.sort_index().tolist() == expected.sort_index().tolist()


def test_retention_command_line(duck_warehouse: Warehouse) -> None:
    done = subprocess.run([sys.executable, "-m", "analytics", "retention", "--url", duck_warehouse.url, "--cohort",
                           "registration", "--period", "week"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "cohort,size,period,active,share"
