"""Apache Spark SQL as a warehouse: every analysis module's main result on Spark equals DuckDB's.

Both warehouses hold the same tiny demo (``TINY_SPARK``: the generator is deterministic per seed); Spark's
is built through Parquet files and ``CREATE TABLE ... USING parquet LOCATION`` on the Thrift Server that
``MEMBERLENS_TEST_SPARK_URL`` names (CI starts one with ``.ci/start_spark``). DuckDB's results are
themselves checked against pandas by each module's own tests, so equality here means Spark is right.
The dialect's own pieces (literals, types, reflection, read-only guard) are tested directly as well.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Date, Integer, Numeric, cast, literal, select
from sqlalchemy.exc import DBAPIError

from analytics import (
    audience_report,
    campaign_results,
    clustering,
    experiments,
    forecast,
    funnels,
    heatmaps,
    kpis,
    member360,
    member_value,
    programme_points,
    programme_tiers,
    programme_whatif,
    quality,
    rfm,
    rule_views,
    rules,
    tags,
    targeting,
)
from analytics.cluster_audiences import assignment_select
from analytics.errors import WarehouseError
from analytics.filters import Filters
from analytics.member_rows import audience_rows, member_count, member_rows
from analytics.storage.contract import WAREHOUSE_TABLES, members
from analytics.storage.warehouse import check_schema, data_span, open_warehouse, table_overview
from tests.conftest import Warehouse

pytestmark = pytest.mark.spark


# --------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if series.dtype == object:
            series = series.map(_plain)
            kinds = {type(v) for v in series.dropna()}
            if kinds and kinds <= {int, float}:
                series = series.astype("float64")
            elif kinds and kinds <= {dt.datetime, dt.date}:
                series = pd.to_datetime(series).astype("datetime64[us]")
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            series = series.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(series):
            series = series.astype("datetime64[us]")
        out[column] = series
    return out.reset_index(drop=True)


def assert_same(spark: Any, duck: Any, *, ordered: bool = True, where: str = "result") -> None:
    """Spark's result equals DuckDB's: frames cell by cell (floats to 1e-9 relative), dataclasses field by
    field, numbers as numbers (a Decimal equals the float of the same value)."""
    if isinstance(duck, pd.DataFrame):
        assert isinstance(spark, pd.DataFrame), f"{where}: {type(spark)}"
        assert list(spark.columns) == list(duck.columns), f"{where}: columns differ"
        left, right = _frame(spark), _frame(duck)
        if not ordered and len(right):
            keys = list(right.columns)
            left = left.sort_values(keys, key=lambda s: s.astype(str)).reset_index(drop=True)
            right = right.sort_values(keys, key=lambda s: s.astype(str)).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=False, rtol=1e-9, atol=1e-9, obj=where)
    elif dataclasses.is_dataclass(duck) and not isinstance(duck, type):
        for item in dataclasses.fields(duck):
            assert_same(getattr(spark, item.name), getattr(duck, item.name), ordered=ordered,
                        where=f"{where}.{item.name}")
    elif isinstance(duck, dict):
        assert set(spark) == set(duck), f"{where}: keys differ"
        for key in duck:
            assert_same(spark[key], duck[key], ordered=ordered, where=f"{where}[{key!r}]")
    elif isinstance(duck, (list, tuple)) and not isinstance(duck, str):
        assert len(spark) == len(duck), f"{where}: lengths differ"
        for i, (a, b) in enumerate(zip(spark, duck, strict=True)):
            assert_same(a, b, ordered=ordered, where=f"{where}[{i}]")
    elif isinstance(duck, np.ndarray):
        np.testing.assert_allclose(np.asarray(spark, dtype=float), np.asarray(duck, dtype=float), rtol=1e-9)
    else:
        a, b = _plain(spark), _plain(duck)
        if isinstance(b, float) or isinstance(a, float):
            if b is None or a is None:
                assert a is None and b is None, f"{where}: {a!r} != {b!r}"
            elif math.isnan(b):
                assert math.isnan(a), f"{where}: {a!r} != nan"
            else:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-9), f"{where}: {a!r} != {b!r}"
        else:
            assert a == b, f"{where}: {a!r} != {b!r}"


def both(spark_warehouse: Warehouse, duck_twin: Warehouse, run: Callable[[Any], Any], **options: Any) -> Any:
    """Run ``run(engine)`` on Spark and on DuckDB and assert the results are the same; return DuckDB's."""
    duck = run(duck_twin.engine)
    assert_same(run(spark_warehouse.engine), duck, **options)
    return duck


@pytest.fixture(scope="module")
def year(duck_twin: Warehouse) -> Filters:
    """The demo's last year: enough orders in a 300-member shop for every analysis to have rows."""
    span = data_span(duck_twin.engine)
    return Filters(span.last_day - dt.timedelta(days=364), span.last_day)


@pytest.fixture(scope="module")
def quarter(duck_twin: Warehouse) -> Filters:
    span = data_span(duck_twin.engine)
    return Filters(*span.last_days(90))


# --------------------------------------------------------------------------------------------------
# The dialect
# --------------------------------------------------------------------------------------------------


def test_contract_types_survive_the_round_trip(spark_warehouse: Warehouse, duck_twin: Warehouse) -> None:
    """Money stays exact (DECIMAL(14,2), not rounded), dates are dates, timestamps naive, in every table."""
    for table in WAREHOUSE_TABLES:
        spark = spark_warehouse.frame(table.name)
        duck = duck_twin.frame(table.name)
        key = list(spark.columns)
        assert_same(spark.sort_values(key, key=lambda s: s.astype(str)).reset_index(drop=True),
                    duck.sort_values(key, key=lambda s: s.astype(str)).reset_index(drop=True), where=table.name)
    birth = spark_warehouse.frame("members")["birth_date"].dropna()
    assert {type(v) for v in birth} == {dt.date}
    assert spark_warehouse.frame("orders")["net_amount"].map(lambda v: round(v * 100) % 100 != 0).any()


def test_schema_check_span_and_overview(spark_warehouse: Warehouse, duck_twin: Warehouse) -> None:
    from sqlalchemy import inspect

    assert check_schema(spark_warehouse.engine).ok
    with spark_warehouse.engine.connect() as conn:
        inspector = inspect(conn)
        assert inspector.has_table("orders") and not inspector.has_table("no_such_table")
        assert {c["name"]: str(c["type"]) for c in inspector.get_columns("orders")}["net_amount"] == "NUMERIC(14, 2)"
        assert "orders" in inspector.get_table_names()
    assert data_span(spark_warehouse.engine) == data_span(duck_twin.engine)
    both(spark_warehouse, duck_twin, table_overview)


def test_parameters_are_typed_literals(spark_warehouse: Warehouse) -> None:
    """Dates, datetimes, decimals, floats, negative numbers, intervals and hostile text as parameters."""
    hostile = "O'Brien \\' -- ; DROP TABLE members; \n\t\\"
    row = select(
        literal(dt.date(2024, 3, 1), Date) - literal(dt.date(2024, 2, 1), Date),
        literal(Decimal("-1234.56"), Numeric(14, 2)) * 2,
        literal(dt.datetime(2024, 3, 1, 12, 30, 15, 250000)) + literal(dt.timedelta(minutes=90)),
        literal(-2.5) - literal(-0.5),
        literal(hostile),
        cast(literal(Decimal("2.50"), Numeric(14, 2)), Integer),
        literal(7) // literal(2),
    )
    with spark_warehouse.engine.connect() as conn:
        got = tuple(conn.execute(row).one())
    assert got == (29, Decimal("-2469.12"), dt.datetime(2024, 3, 1, 14, 0, 15, 250000), -2.0, hostile, 3, 3)


def test_reading_only(spark_warehouse: Warehouse) -> None:
    """The read-only engine refuses a write before it reaches Spark."""
    with pytest.raises(DBAPIError, match="read-only to MemberLens"), spark_warehouse.engine.connect() as conn:
        conn.execute(members.delete())
    assert spark_warehouse.frame("members").shape[0] == 300


def test_a_missing_database_and_a_dead_server_are_explained(spark_warehouse: Warehouse) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(spark_warehouse.url)
    with pytest.raises(WarehouseError, match="does not exist"):
        open_warehouse(url.set(database="memberlens_no_such_db").render_as_string(hide_password=False))
    with pytest.raises(WarehouseError, match="does not answer"):
        open_warehouse(url.set(port=9).render_as_string(hide_password=False))


# --------------------------------------------------------------------------------------------------
# Every analysis: Spark equals DuckDB
# --------------------------------------------------------------------------------------------------


def test_kpis(spark_warehouse: Warehouse, duck_twin: Warehouse, quarter: Filters) -> None:
    for comparison in ("previous", "year_ago"):
        both(spark_warehouse, duck_twin, lambda e, c=comparison: kpis.kpi_summary(e, quarter, c))


@pytest.mark.parametrize("by", kpis.BREAKDOWNS)
def test_kpi_breakdowns(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters, by: str) -> None:
    """Every breakdown of a sum, a ratio of sums and a ratio over members (and of sessions, registrations and
    points where it applies), against the same period last year; campaigns folded into "other" too."""
    for kpi in ("net_sales", "aov", "repurchase_rate", "session_conversion", "new_members", "points_liability"):
        if by in kpis.dimensions_for(kpi):
            both(spark_warehouse, duck_twin, lambda e, k=kpi: kpis.kpi_breakdown(e, year, by, k, "year_ago"))


def test_kpi_breakdown_folding(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters,
                               monkeypatch) -> None:
    monkeypatch.setattr(kpis, "MAX_BREAKDOWN_VALUES", 3)
    result = both(spark_warehouse, duck_twin, lambda e: kpis.kpi_breakdown(e, year, "region", "orders"))
    assert result.folded and result.rows["value"].iloc[-1] == "other"


@pytest.mark.parametrize("kpi", [k.key for k in kpis.KPIS])
def test_kpi_trend(spark_warehouse: Warehouse, duck_twin: Warehouse, quarter: Filters, kpi: str) -> None:
    """Every KPI by week; the grains (one date_trunc construct for all) on net sales and points."""
    grains = ("day", "week", "month") if kpi in ("net_sales", "points_liability", "repurchase_rate") else ("week",)
    for grain in grains:
        both(spark_warehouse, duck_twin, lambda e, g=grain: kpis.kpi_trend(e, quarter, kpi, g))


def test_rfm(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    both(spark_warehouse, duck_twin, lambda e: rfm.rfm_members(e, year), ordered=False)
    both(spark_warehouse, duck_twin, lambda e: rfm.segment_summary(e, year))
    both(spark_warehouse, duck_twin, lambda e: rfm.score_grid(e, year))
    before = Filters(year.start - dt.timedelta(days=365), year.start - dt.timedelta(days=1))
    both(spark_warehouse, duck_twin, lambda e: rfm.segment_migration(e, before, year))


def test_cluster_features_and_assignment_sql(spark_warehouse: Warehouse, duck_twin: Warehouse,
                                             year: Filters) -> None:
    data = both(spark_warehouse, duck_twin, lambda e: clustering.member_features(e, year, 1).frame)
    assert len(data) > 50
    result = clustering.cluster_members(duck_twin.engine, year, clustering.ClusterSettings(k=4))
    ids = assignment_select(result.model, year)
    both(spark_warehouse, duck_twin, lambda e: member_frame(e, ids), ordered=False)


def member_frame(engine: Any, statement: Any) -> pd.DataFrame:
    from analytics.storage.db import read_frame

    return read_frame(engine, statement)


def test_tags(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    both(spark_warehouse, duck_twin, lambda e: tags.tag_coverage(e, year))
    keys = [t.key for t in tags.TAGS if not t.is_family] + [f"{tags.CATEGORY_LOVER}Beauty"]
    for key in keys:
        ids = tags.tag_member_ids(year, key)
        both(spark_warehouse, duck_twin, lambda e, ids=ids: member_frame(e, ids), ordered=False)


def test_member_360(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    member = duck_twin.frame("orders").dropna(subset=["member_id"])["member_id"].value_counts().index[0]
    both(spark_warehouse, duck_twin, lambda e: member360.find_members(e, member[:5]))
    both(spark_warehouse, duck_twin, lambda e: member360.member_profile(e, member))
    both(spark_warehouse, duck_twin, lambda e: member360.tier_history(e, member))
    both(spark_warehouse, duck_twin, lambda e: member360.points_history(e, member))
    both(spark_warehouse, duck_twin, lambda e: member360.order_timeline(e, member))
    both(spark_warehouse, duck_twin, lambda e: member360.member_summary(e, year, member))
    both(spark_warehouse, duck_twin, lambda e: tags.member_tags(e, year, member))


FUNNEL_STEPS = (funnels.FunnelStep("product_view"), funnels.FunnelStep("add_to_cart"),
                funnels.FunnelStep("checkout"), funnels.FunnelStep("purchase"))


@pytest.mark.parametrize("mode", funnels.MODES)
@pytest.mark.parametrize("unit", funnels.UNITS)
def test_funnels(spark_warehouse: Warehouse, duck_twin: Warehouse, quarter: Filters, mode: str, unit: str) -> None:
    spec = funnels.FunnelSpec(FUNNEL_STEPS, funnels.parse_window("1d"), mode, unit)
    report = both(spark_warehouse, duck_twin, lambda e: funnels.funnel_report(e, spec, quarter))
    assert report.total["units"].iloc[0] > 0
    if mode == "ordered":  # the breakdown's ROLLUP is the same statement after any mode's attempts
        both(spark_warehouse, duck_twin, lambda e: funnels.funnel_report(e, spec, quarter, "device"))
    both(spark_warehouse, duck_twin, lambda e: funnels.funnel_trend(e, spec, quarter, "week"))
    ids = funnels.dropoff_member_ids(spec, quarter, 2)
    both(spark_warehouse, duck_twin, lambda e: member_frame(e, ids), ordered=False)


@pytest.mark.parametrize("cohort", heatmaps.COHORTS)
@pytest.mark.parametrize("period", heatmaps.PERIODS)
@pytest.mark.parametrize("activity", heatmaps.ACTIVITIES)
def test_retention(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters, cohort: str, period: str,
                   activity: str) -> None:
    table = both(spark_warehouse, duck_twin,
                 lambda e: heatmaps.cohort_retention(e, year, cohort, period, activity))
    assert table["active"].sum() > 0
    first = table.iloc[0]
    ids = heatmaps.retention_cell_members(year, first["cohort"], int(first["period"]), cohort=cohort, period=period,
                                          activity=activity)
    both(spark_warehouse, duck_twin, lambda e: member_frame(e, ids), ordered=False)


def test_heatmaps(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    for measure in heatmaps.RHYTHM_MEASURES:
        both(spark_warehouse, duck_twin, lambda e, m=measure: heatmaps.activity_rhythm(e, year, m))
    for by in heatmaps.AFFINITY_GROUPS:
        both(spark_warehouse, duck_twin, lambda e, by=by: heatmaps.category_affinity(e, year, by))
    for across in heatmaps.BROWSING_ACROSS:
        both(spark_warehouse, duck_twin, lambda e, a=across: heatmaps.browsing_hotspots(e, year, a))
    ids = heatmaps.rhythm_cell_members(year, 2, 20)
    both(spark_warehouse, duck_twin, lambda e: member_frame(e, ids), ordered=False)


def test_rule_baskets(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    for level in ("subcategory", "product"):
        duck = rules.load_baskets(duck_twin.engine, year, level)
        spark = rules.load_baskets(spark_warehouse.engine, year, level)
        assert duck.count > 100
        assert_same(_basket_sets(spark), _basket_sets(duck), where=f"baskets by {level}")
    audience = rule_views.rule_audience("Phones", "Phone Accessories", "subcategory", year.start, year.end)
    both(spark_warehouse, duck_twin, lambda e: member_count(e, audience.member_ids()))


def _basket_sets(baskets: rules.Baskets) -> list[tuple[str, ...]]:
    """The baskets as sorted tuples of item labels, in basket order (codes may be numbered differently)."""
    labels = np.asarray(baskets.labels, dtype=object)
    return sorted(tuple(sorted(labels[baskets.items[a:b]])) for a, b in zip(baskets.indptr[:-1], baskets.indptr[1:],
                                                                             strict=True))


TARGETING_SPECS = {
    "attributes": [{"field": "tier", "op": "in", "value": ["gold", "diamond", "silver"]},
                   {"not": True, "field": "bought_category", "op": "in", "value": ["Pets", "Home"]}],
    "numbers": [{"field": "net_sales", "op": "between", "value": [100, None]},
                {"field": "age", "op": "between", "value": [25, 60]},
                {"field": "days_since_last_order", "op": "between", "value": [None, 200]},
                {"field": "aov", "op": "between", "value": [50, None]},
                {"field": "registered", "op": "between", "value": ["2024-01-01", None]}],
}


@pytest.mark.parametrize("name", list(TARGETING_SPECS))
def test_targeting(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters, name: str) -> None:
    spec = targeting.parse_spec({"version": 1, "kind": "audience", "start": year.start.isoformat(),
                                 "end": year.end.isoformat(), "rules": {"match": "all", "conditions":
                                 TARGETING_SPECS[name]}, "holdout": 0.2, "campaign_key": "spark-test",
                                 "frequency_cap_days": 30, "max_size": 200})
    result = both(spark_warehouse, duck_twin, lambda e: targeting.preview(e, spec))
    assert result.matching > 0 and result.control > 0
    both(spark_warehouse, duck_twin, lambda e: targeting.targeted_members(e, spec), ordered=False)
    funnel = both(spark_warehouse, duck_twin, lambda e: targeting.condition_funnel(e, spec))
    assert min(funnel.steps[-1].remaining, 200) == result.targeted  # the funnel stops before the maximum size


def test_targeting_lookbacks_and_known_values(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    """Behaviour conditions over their own look-backs (the recency reach, a condition's own days), the funnel of
    counts, and the known values the page offers."""
    from analytics import targeting_values

    spec = targeting.parse_spec({"version": 1, "kind": "audience", "start": year.start.isoformat(),
                                 "end": year.end.isoformat(), "lookback": "recency", "frequency_cap_days": 30,
                                 "rules": {"match": "all", "conditions": [
                                     {"field": "days_since_last_order", "op": "between", "value": [30, 500]},
                                     {"field": "bought_category", "op": "in", "value": ["Beauty", "Apparel"]},
                                     {"field": "order_count", "op": "between", "value": [1, None], "days": 200},
                                     {"field": "net_sales", "op": "between", "value": [50, None]}]}})
    sizes = both(spark_warehouse, duck_twin, lambda e: targeting.preview(e, spec))
    funnel = both(spark_warehouse, duck_twin, lambda e: targeting.condition_funnel(e, spec))
    assert sizes.matching > 0 and funnel.steps[-1].remaining == sizes.targeted
    for key in ("tier", "region", "bought_category"):
        both(spark_warehouse, duck_twin, lambda e, k=key: targeting_values.known_values(e, k))
    both(spark_warehouse, duck_twin, lambda e: targeting_values.existing_values(e, "bought_product",
                                                                                ["p0001", "P0002", "nope"]))


def test_targeting_buckets_agree_with_python(spark_warehouse: Warehouse) -> None:
    ids = ["M00000001", "M00000042", "M00000299"]
    statement = select(*(targeting.bucket(literal(i), "spark-test").label(f"b{n}") for n, i in enumerate(ids)))
    with spark_warehouse.engine.connect() as conn:
        got = list(conn.execute(statement).one())
    assert got == [targeting.python_bucket(i, "spark-test") for i in ids]


def test_audience_report_and_forecast(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    data = {"version": 1, "kind": "audience", "start": year.start.isoformat(), "end": year.end.isoformat(),
            "rules": {"match": "all", "conditions": TARGETING_SPECS["attributes"]}, "holdout": 0.3,
            "campaign_key": "spark-report"}
    spec = targeting.parse_spec(data)
    other = targeting.parse_spec({**data, "rules": {"match": "all", "conditions": TARGETING_SPECS["numbers"]}})
    both(spark_warehouse, duck_twin, lambda e: audience_report.overlap_matrix(e, {"a": spec, "b": other}))
    sizes, matrix = audience_report.preview_and_overlap(spark_warehouse.engine, spec, {"b": other}, "a")
    assert sizes == targeting.preview(duck_twin.engine, spec)
    pd.testing.assert_frame_equal(matrix, audience_report.overlap_matrix(duck_twin.engine, {"a": spec, "b": other}))
    both(spark_warehouse, duck_twin, lambda e: audience_report.audience_profile(e, spec), ordered=False)  # ties
    both(spark_warehouse, duck_twin, lambda e: audience_report.balance_check(e, spec))
    types = both(spark_warehouse, duck_twin, forecast.forecast_types)
    first = types.iloc[0]
    both(spark_warehouse, duck_twin, lambda e: forecast.campaign_history(e, first["type"], first["channel"]))


def test_programme(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters, quarter: Filters) -> None:
    """Tiers (counts, flows, time to tier, retention and spend, next threshold, sales when held), the what-if and its
    audience, points (flows, by tier, expiring and its audience), members against guests."""
    for grain in ("week", "month"):
        both(spark_warehouse, duck_twin, lambda e, g=grain: programme_tiers.tier_counts_over_time(e, year, g))
    both(spark_warehouse, duck_twin, lambda e: programme_tiers.tier_flows(e, year.start, year.end))
    both(spark_warehouse, duck_twin, lambda e: programme_tiers.time_to_tier(e, year))
    both(spark_warehouse, duck_twin, lambda e: programme_tiers.tier_performance(e, quarter))
    both(spark_warehouse, duck_twin, lambda e: programme_tiers.upgrade_gap(e, quarter))
    both(spark_warehouse, duck_twin, lambda e: programme_tiers.sales_by_tier(e, quarter))
    rule = programme_whatif.TierRule((2_000, 8_000, 30_000), months=6, measure="net")
    both(spark_warehouse, duck_twin, lambda e: programme_whatif.whatif_tiers(e, quarter.end, rule, {"gold": 0.02}))
    both(spark_warehouse, duck_twin, lambda e: member_frame(
        e, programme_whatif.TierMoveAudience(quarter.end, rule, "down").member_ids()), ordered=False)
    both(spark_warehouse, duck_twin, lambda e: programme_points.points_flows(e, year, "month"))
    both(spark_warehouse, duck_twin, lambda e: programme_points.points_by_tier(e, quarter))
    both(spark_warehouse, duck_twin, lambda e: programme_points.expiring_summary(e, quarter))
    both(spark_warehouse, duck_twin, lambda e: member_frame(
        e, programme_points.ExpiringPointsAudience(quarter, 90, 100).member_ids()), ordered=False)
    both(spark_warehouse, duck_twin, lambda e: member_value.member_vs_guest(e, year))
    both(spark_warehouse, duck_twin, lambda e: member_value.new_member_value(e, year))


def test_campaign_results(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    both(spark_warehouse, duck_twin, lambda e: campaign_results.campaign_results(e, year, margin=0.4))
    both(spark_warehouse, duck_twin, lambda e: campaign_results.send_frequency(e, year, 2))


def test_experiments(spark_warehouse: Warehouse, duck_twin: Warehouse) -> None:
    campaigns = both(spark_warehouse, duck_twin, experiments.campaign_list)
    for campaign_id in campaigns["campaign_id"].head(5):
        both(spark_warehouse, duck_twin, lambda e, c=campaign_id: experiments.read_out(e, c))


def test_quality(spark_warehouse: Warehouse, duck_twin: Warehouse) -> None:
    """Same figures and statuses. Spark SQL enforces no key, so its key checks count the rows; the DuckDB twin
    enforces its entity tables' primary keys, and there the detail names the constraint instead."""
    from tests.test_quality import DUCKDB_ENFORCED, KEYED_TABLES, enforced_by

    today = data_span(duck_twin.engine).last_day
    spark, duck = quality.quality_report(spark_warehouse.engine, today), quality.quality_report(duck_twin.engine, today)
    assert enforced_by(spark) == {f"duplicate:{t}.{k}": None for t, k in KEYED_TABLES.items()}
    assert enforced_by(duck) == DUCKDB_ENFORCED
    keys = duck.checks["key"].str.startswith("duplicate:")
    assert_same(spark.checks[~keys], duck.checks[~keys])
    assert_same(spark.checks[keys].drop(columns="detail"), duck.checks[keys].drop(columns="detail"))
    assert_same(spark.tables, duck.tables)
    assert_same(spark.columns, duck.columns)


def test_member_rows(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters, quarter: Filters) -> None:
    """Member lists with their value columns (issue 23): the general path, an RFM segment scored once, the lapsed,
    a migration cell, previews, and the lapsed summary; sorted by value, so compared in order."""
    ids = rfm.segment_member_ids(year, ("Champions", "Loyal"))
    both(spark_warehouse, duck_twin, lambda e: member_rows(e, ids, year))
    both(spark_warehouse, duck_twin, lambda e: member_count(e, ids))
    tagged = tags.tag_member_ids(quarter, "dormant_90")
    both(spark_warehouse, duck_twin, lambda e: member_rows(e, tagged, quarter, 25))
    for segments in (("At Risk", "Can't Lose Them"), (rfm.LAPSED,)):
        audience = rfm.segment_audience(quarter, segments)
        both(spark_warehouse, duck_twin, lambda e, a=audience: audience_rows(e, a))
        both(spark_warehouse, duck_twin, lambda e, a=audience: audience_rows(e, a, limit=10))
    moved = rfm.migration_audience(quarter, "Loyal", rfm.NO_PURCHASE)
    both(spark_warehouse, duck_twin, lambda e: audience_rows(e, moved))
    both(spark_warehouse, duck_twin, lambda e: rfm.lapsed_summary(e, quarter))
    both(spark_warehouse, duck_twin, lambda e: member360.top_members(e, quarter, 10))
    for text in ("28", "m28", "M0000001", "%"):
        both(spark_warehouse, duck_twin, lambda e, t=text: member360.find_members(e, t, 20, quarter))


def test_recommend_purchases(spark_warehouse: Warehouse, duck_twin: Warehouse) -> None:
    """The recommenders' one pull (member x product aggregate with ROW_NUMBER codes, an out-of-time split) and the
    recommended-item read-out's bounded pulls of a campaign's members and their purchases in its window."""
    from analytics.recommend_data import load_data
    from analytics.recommend_outcome import campaign_arms, campaign_window, window_purchases

    def pull(engine: Any) -> dict[str, Any]:
        data = load_data(engine, test_days=30)
        h, t = data.history, data.test
        return {"members": data.members.ids.tolist(), "segments": data.members.segments, "labels": data.members.labels,
                "products": data.products.ids.tolist(), "categories": data.products.category,
                "history": [h.indptr, h.indices, h.orders, h.last_day, h.earlier_day],
                "test": [t.indptr, t.indices, t.orders], "ends": [data.history_end, data.test_end]}

    both(spark_warehouse, duck_twin, pull)
    campaign = experiments.campaign_list(duck_twin.engine)["campaign_id"].iloc[0]
    start, end = both(spark_warehouse, duck_twin, lambda e: campaign_window(e, campaign))
    both(spark_warehouse, duck_twin, lambda e: campaign_arms(e, campaign))
    both(spark_warehouse, duck_twin, lambda e: window_purchases(e, campaign, start, end), ordered=False)


# --------------------------------------------------------------------------------------------------
# Without a server: literals, compiled SQL, the Parquet output
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (None, "NULL"), (True, "TRUE"), (-3, "(-3)"), (0.5, "0.5D"), (-1e-07, "(-1e-07D)"),
    (Decimal("1234.50"), "1234.50BD"), (Decimal("-1E+2"), "(-100BD)"), (dt.date(2026, 1, 31), "DATE '2026-01-31'"),
    (dt.datetime(2026, 1, 31, 23, 59, 1), "TIMESTAMP_NTZ '2026-01-31 23:59:01.000000'"),
    (dt.timedelta(days=-1, seconds=30), "INTERVAL '-0 23:59:30.000000' DAY TO SECOND"),
    ("it's a \\ test\n", "'it\\'s a \\\\ test\\n'"), ("50%", "'50%'"), (b"\x00\xff", "X'00ff'"),
    (np.int64(7), "7"), (("a", 1), "('a', 1)"),
])
def test_literals(value: Any, expected: str) -> None:
    from analytics.storage.spark_dialect import spark_literal

    assert spark_literal(value) == expected


def test_no_literal_is_guessed() -> None:
    from pyhive.exc import ProgrammingError

    from analytics.storage.spark_dialect import spark_literal

    for value in (Decimal("NaN"), object()):
        with pytest.raises(ProgrammingError):
            spark_literal(value)


def test_a_parameter_cannot_leave_its_literal() -> None:
    """Whatever the text, it is one string literal to Spark's lexer: the quote count outside escapes is two."""
    import re

    from analytics.storage.spark_dialect import render_statement

    for text in ("'", "\\'", "\\", "'; DROP TABLE members; --", "%(x)s", "\\\\'", "a\x1a\x00b"):
        sql = render_statement("SELECT %(x)s AS v", {"x": text})
        body = sql.removeprefix("SELECT ").removesuffix(" AS v")
        assert re.fullmatch(r"'(?:[^'\\]|\\.)*'", body), sql


def test_compiled_forms() -> None:
    from sqlalchemy import DateTime, column, create_engine, extract, func
    from sqlalchemy.schema import CreateTable

    from analytics.storage.contract import orders
    from analytics.storage.spark_dialect import spark_type

    dialect = create_engine("sparksql://127.0.0.1/x").dialect
    ddl = str(CreateTable(orders).compile(dialect=dialect))
    assert "`net_amount` DECIMAL(14,2)" in ddl and "`ordered_at` TIMESTAMP_NTZ" in ddl
    d, t, n = column("d", Date), column("t", DateTime), column("n", Integer)
    sql = str(select(d - d, extract("epoch", t), extract("dow", t), n // 7, func.strpos("ab", "b"),
                     cast(column("m", Numeric(14, 2)), Integer)).compile(dialect=dialect))
    assert "datediff(`d`, `d`)" in sql and "unix_date(CAST(`t` AS DATE)) * 86400" in sql
    assert "(EXTRACT(DAYOFWEEK FROM `t`) - 1)" in sql and "FLOOR(`n` / " in sql and "instr(" in sql
    assert "CAST(round(`m`) AS INT)" in sql
    assert spark_type("decimal(14,2)").precision == 14 and spark_type("decimal(14,2)").scale == 2
    assert isinstance(spark_type("timestamp_ntz"), DateTime) and isinstance(spark_type("date"), Date)


def test_parquet_output_equals_the_duckdb_build(duck_twin: Warehouse, tmp_path) -> None:
    """``--parquet DIR`` alone: one folder per table holding exactly the rows of the same demo in DuckDB,
    facts in sort-key order, and the DDL script for Spark."""
    import duckdb

    from analytics.storage.contract import SORT_KEYS
    from analytics.synthetic.__main__ import main
    from tests.conftest import TINY_SPARK

    folder = tmp_path / "parquet"
    assert main(["--members", str(TINY_SPARK.members), "--seed", str(TINY_SPARK.seed), "--parquet", str(folder)]) == 0
    con = duckdb.connect()
    for table in WAREHOUSE_TABLES:
        got = con.execute(f"SELECT * FROM read_parquet('{folder / table.name}/*.parquet')").df()
        expected = duck_twin.frame(table.name)
        key = list(expected.columns)
        assert_same(got.sort_values(key, key=lambda s: s.astype(str)).reset_index(drop=True),
                    expected.sort_values(key, key=lambda s: s.astype(str)).reset_index(drop=True), where=table.name)
        if table.name in SORT_KEYS:
            sort = list(SORT_KEYS[table.name])
            assert got[sort].equals(got.sort_values(sort, kind="stable")[sort].reset_index(drop=True))
    ddl = (folder / "create_tables.sql").read_text()
    assert ddl.count("CREATE TABLE") == len(WAREHOUSE_TABLES) + 1 and f"LOCATION '{folder.as_uri()}/orders'" in ddl
    assert main(["--members", "10", "--parquet", str(folder)]) == 1  # exists: --replace needed


def test_predictions(spark_warehouse: Warehouse, duck_twin: Warehouse, year: Filters) -> None:
    """Features, labels and every score of the prediction models (compiled to SQL) on Spark equal DuckDB's."""
    from analytics import predictions
    from analytics.clv_sql import clv_summary, fit_models
    from analytics.prediction_features import FEATURE_NAMES, features_and_labels
    from analytics.prediction_models import fit_classifier

    cutoff = year.end - dt.timedelta(days=90)
    frame = both(spark_warehouse, duck_twin, lambda e: features_and_labels(e, cutoff, 90))
    churn = fit_classifier(frame, 1 - frame["ordered"].to_numpy(), FEATURE_NAMES, "gbdt")
    propensity = fit_classifier(frame, frame["ordered"].to_numpy(), FEATURE_NAMES, "logistic")
    clv_models = fit_models(clv_summary(duck_twin.engine, year.end, "week"), "week", check=False)
    models = predictions.Models(churn, propensity, clv_models.bgnbd, clv_models.gammagamma)
    scores = both(spark_warehouse, duck_twin, lambda e: predictions.score_members(e, models, year.end))
    # a score among other conditions: computed for the members those keep (a CTE the score's statement reads)
    from analytics.prediction_audiences import PinnedModel

    pinned = PinnedModel("churn", 1, {"classifier": churn.to_dict()}).to_json()
    value = PinnedModel("clv", 1, {"bgnbd": clv_models.bgnbd.to_dict(),
                                   "gammagamma": clv_models.gammagamma.to_dict()}).to_json()
    cut = float(scores["churn_risk"].median())
    spec = targeting.parse_spec({"version": 1, "kind": "audience", "start": year.start.isoformat(),
                                 "end": year.end.isoformat(), "rules": {"match": "all", "conditions": [
                                     {"field": "tier", "op": "in", "value": ["basic", "silver", "gold"]},
                                     {"field": "churn_risk", "op": "between", "value": [cut, None], "model": pinned},
                                     {"field": "p_alive", "op": "between", "value": [0.2, None], "model": value}]}})
    assert targeting._Compiler(spec).narrowed
    kept = both(spark_warehouse, duck_twin, lambda e: targeting.targeted_members(e, spec), ordered=False)
    assert 0 < len(kept) < len(scores) / 2


# --------------------------------------------------------------------------------------------------
# The app on Spark
# --------------------------------------------------------------------------------------------------


def test_pages_on_spark(spark_warehouse: Warehouse, duck_twin: Warehouse, monkeypatch) -> None:
    """Under AppTest on Spark: the KPI page reads back the figures DuckDB's page shows, and the import page says
    up front that this warehouse is read-only to MemberLens (no file picker to find it out with)."""
    from tests.conftest import open_page

    def cards(url: str) -> dict[str, str]:
        at = open_page(url, "pages/executive_kpis.py", monkeypatch)
        return {m.label: m.value for m in at.metric}

    from analytics.kpis import KPIS

    shown = cards(spark_warehouse.url)
    assert list(shown) == [k.label for k in KPIS] and shown == cards(duck_twin.url)
    assert shown["Orders"] not in ("0", "—")
    at = open_page(spark_warehouse.url, "pages/import_data.py", monkeypatch)
    assert any("read-only to MemberLens" in i.value for i in at.info)
    assert not at.get("file_uploader") and not at.main.text_input  # (the sidebar has its typed dates)
