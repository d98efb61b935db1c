"""Campaign results against independent pandas computations (tests/reference_programme.py) and against the
Experiment read-out of each campaign, on DuckDB and PostgreSQL; and the two KPIs they add."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import campaign_results, experiments, forecast, kpis
from analytics.errors import InputError
from analytics.filters import Filters
from analytics.programme import POINTS_PER_CURRENCY_UNIT
from analytics.storage.warehouse import data_span
from tests import reference_programme as ref

CHECKED = ["treatment_members", "control_members", "sent", "opened", "clicked", "treatment_conversions",
           "control_conversions", "treatment_retained", "control_retained", "coupons_redeemed", "coupon_cost", "cost",
           "lift", "lift_low", "lift_high", "p_value", "incremental_conversions", "incremental_low", "incremental_high",
           "incremental_revenue", "revenue_low", "revenue_high", "roi", "roi_low"]


def _same(a: float, b: float) -> bool:
    if isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    return a == pytest.approx(b, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("margin, message_cost", [(0.3, 0.0), (0.45, 0.05)])
def test_every_campaign_row_matches_pandas(warehouse, margin: float, message_cost: float) -> None:
    span = data_span(warehouse.engine)
    filters = Filters(span.first_day, span.last_day)
    got = campaign_results.campaign_results(warehouse.engine, filters, margin=margin, message_cost=message_cost)
    expected = ref.campaign_rows(warehouse.frame, filters.start, filters.end, margin, message_cost)
    assert list(got["campaign_id"]) == list(expected["campaign_id"])
    by_id = got.set_index("campaign_id")
    for row in expected.to_dict("records"):
        mine = by_id.loc[row["campaign_id"]]
        for column in CHECKED:
            if column in row:
                assert _same(float(mine[column]), float(row[column])), (row["campaign_id"], column, mine[column],
                                                                        row[column])
        assert mine["read_out"] == f"/experiments?campaign={row['campaign_id']}"
        if row["channel"] == "sms":
            assert math.isnan(mine["open_rate"])
        elif row["sent"]:
            assert mine["open_rate"] == pytest.approx(row["opened"] / row["sent"])
    assert (got["treatment_retained"] > 0).any() and (got["coupons_redeemed"] > 0).any()


def test_campaign_rows_equal_their_read_outs(warehouse) -> None:
    """The page's promise: each row's figures are the ones its Experiment read-out shows."""
    span = data_span(warehouse.engine)
    got = campaign_results.campaign_results(warehouse.engine, Filters(span.first_day, span.last_day))
    for row in got[got["lift"].notna()].itertuples():
        read = experiments.read_out(warehouse.engine, row.campaign_id)
        assert row.lift == pytest.approx(read.lift, rel=1e-9, abs=1e-12)
        assert (row.lift_low, row.lift_high) == pytest.approx(read.lift_ci, rel=1e-9, abs=1e-12)
        assert row.incremental_revenue == pytest.approx(row.treatment_members * read.revenue_diff, rel=1e-7, abs=1e-7)
        assert row.srm_p_value == pytest.approx(read.srm_p_value, rel=1e-7, abs=1e-12)


def test_filters_and_refusals(warehouse) -> None:
    span = data_span(warehouse.engine)
    filters = Filters(span.first_day, span.last_day)
    everything = campaign_results.campaign_results(warehouse.engine, filters)
    coupons = campaign_results.campaign_results(warehouse.engine, filters, "coupon", "sms")
    expected = everything[(everything["type"] == "coupon") & (everything["channel"] == "sms")]
    assert list(coupons["campaign_id"]) == list(expected["campaign_id"]) and len(coupons) > 0
    recent = Filters(*span.last_days(90))
    starts = campaign_results.campaign_results(warehouse.engine, recent)["start_at"]
    assert ((starts >= pd.Timestamp(recent.start)) & (starts < ref.end_of(recent.end))).all()
    for bad, message in (({"campaign_type": "spam"}, "Unknown campaign type"), ({"channel": "fax"}, "message channel"),
                         ({"margin": 1.5}, "margin"), ({"message_cost": -1}, "cost per message")):
        with pytest.raises(InputError, match=message):
            campaign_results.campaign_results(warehouse.engine, filters, **bad)


def test_pooled_by_type_and_channel(warehouse) -> None:
    span = data_span(warehouse.engine)
    results = campaign_results.campaign_results(warehouse.engine, Filters(span.first_day, span.last_day))
    for by in ("type", "channel"):
        pooled = campaign_results.pooled_effects(results, by).set_index(by)
        for value, group in results[results["lift"].notna()].groupby(by):
            n_t, x_t = group["treatment_members"].to_numpy(float), group["treatment_conversions"].to_numpy(float)
            n_c, x_c = group["control_members"].to_numpy(float), group["control_conversions"].to_numpy(float)
            zero = ((x_t == 0) | (x_t == n_t) | (x_c == 0) | (x_c == n_c)).astype(float)
            p_t, p_c = (x_t + 0.5 * zero) / (n_t + zero), (x_c + 0.5 * zero) / (n_c + zero)
            mu, low, high = ref.dersimonian_laird(x_t / n_t - x_c / n_c, p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
            assert pooled.loc[value, "uplift"] == pytest.approx(mu, rel=1e-9, abs=1e-12)
            assert (pooled.loc[value, "uplift_low"], pooled.loc[value, "uplift_high"]) == pytest.approx((low, high))
            assert pooled.loc[value, "campaigns"] == len(group)
            cost = group["cost"].sum()
            expected_roi = (group["incremental_margin"].sum() - cost) / cost if cost else math.nan
            assert _same(pooled.loc[value, "roi"], expected_roi)
        # the forecast's pooling of the same history gives the same estimate
        first = pooled.index[0]
        history = results[(results[by] == first) & results["lift"].notna()]
        effects = forecast.campaign_effects(history)
        assert forecast.random_effects(effects["uplift"], effects["variance"]).estimate == pytest.approx(
            pooled.loc[first, "uplift"])
    with pytest.raises(InputError):
        campaign_results.pooled_effects(results, "colour")


def test_roi_trend_and_realised_roi(warehouse) -> None:
    span = data_span(warehouse.engine)
    filters = Filters(span.first_day, span.last_day)
    results = campaign_results.campaign_results(warehouse.engine, filters)
    used = results[results["lift"].notna()]
    trend = campaign_results.roi_trend(results, filters, "month")
    assert trend["campaigns"].sum() == len(used)
    assert trend["cost"].sum() == pytest.approx(used["cost"].sum())
    month = used["start_at"].dt.to_period("M").dt.start_time
    for start, group in used.groupby(month):
        row = trend.set_index("period_start").loc[start]
        cost = group["cost"].sum()
        assert _same(row["roi"], (group["incremental_margin"].sum() - cost) / cost if cost else math.nan)
    total_cost = used["cost"].sum()
    assert campaign_results.realised_roi(results) == pytest.approx(
        (used["incremental_revenue"].sum() * 0.3 - total_cost) / total_cost)

    # The Executive KPIs' realised ROI skips the statistics (no SciPy on the first page): same estimates, no intervals.
    totals = campaign_results.campaign_totals(warehouse.engine, filters)
    bare = campaign_results.results_from_totals(totals, statistics=False)
    estimates = ["lift", "incremental_conversions", "incremental_revenue", "incremental_margin", "cost", "roi"]
    assert len(used) > 0
    pd.testing.assert_frame_equal(bare[estimates], results[estimates], rtol=1e-12)
    assert bare[["lift_low", "lift_high", "p_value", "srm_p_value", "roi_low"]].isna().all().all()
    assert campaign_results.realised_roi(bare) == pytest.approx(campaign_results.realised_roi(results))


def test_retention_effect_pooled(warehouse) -> None:
    span = data_span(warehouse.engine)
    results = campaign_results.campaign_results(warehouse.engine, Filters(span.first_day, span.last_day))
    effect = campaign_results.retention_effect(results)
    used = results[(results["treatment_conversions"] > 0) & (results["control_conversions"] > 0)]
    t_n, t_x = used["treatment_conversions"].sum(), used["treatment_retained"].sum()
    c_n, c_x = used["control_conversions"].sum(), used["control_retained"].sum()
    assert (effect.treatment.members, effect.treatment.conversions) == (t_n, t_x)
    assert (effect.control.members, effect.control.conversions) == (c_n, c_x)
    stats = ref.read_out_stats(int(t_n), int(t_x), int(c_n), int(c_x), np.zeros(2), np.zeros(2))
    assert effect.difference == pytest.approx(stats["lift"])
    assert effect.ci == pytest.approx((stats["lift_low"], stats["lift_high"]))
    assert effect.p_value == pytest.approx(stats["p_value"])


@pytest.mark.parametrize("cap", [1, 2, 4])
def test_send_frequency_against_the_cap(warehouse, cap: int) -> None:
    span = data_span(warehouse.engine)
    filters = Filters(span.last_day - timedelta(days=364), span.last_day)
    got = campaign_results.send_frequency(warehouse.engine, filters, cap)
    cm = warehouse.frame("campaign_members")
    sent = cm[(cm["sent_at"] >= pd.Timestamp(filters.start_ts)) & (cm["sent_at"] < ref.end_of(filters.end))].copy()
    sent["block"] = ((ref.end_of(filters.end) - sent["sent_at"]).dt.total_seconds() // (30 * 86400)).astype(int)
    most = sent.groupby(["member_id", "block"]).size().groupby("member_id").max()
    assert got.histogram.set_index("sends")["members"].to_dict() == most.value_counts().to_dict()
    assert got.members == len(most) and got.over_cap == int((most > cap).sum())
    assert got.blocks == 13
    with pytest.raises(InputError, match="cap"):
        campaign_results.send_frequency(warehouse.engine, filters, 0)


# ---- the two KPIs --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda span: Filters(*span.last_days(90)),
                                  lambda span: Filters(date(2025, 9, 1), date(2025, 12, 31), tiers=("gold",))])
def test_points_liability_in_money_and_campaign_roi_kpis(warehouse, make) -> None:
    filters = make(data_span(warehouse.engine))
    summary = kpis.kpi_summary(warehouse.engine, filters)
    assert summary["points_liability_value"].current == pytest.approx(
        summary["points_liability"].current / POINTS_PER_CURRENCY_UNIT)
    for period, value in ((filters, summary["campaign_roi"].current),
                          (filters.previous(), summary["campaign_roi"].previous)):
        expected = ref.realised_roi(warehouse.frame, period.start, period.end)
        assert (value is None and expected is None) or value == pytest.approx(expected, rel=1e-7), (period, value,
                                                                                                   expected)
    assert summary["campaign_roi"].current is not None
    trend = kpis.kpi_trend(warehouse.engine, filters, "points_liability_value", "week")
    liability = kpis.kpi_trend(warehouse.engine, filters, "points_liability", "week")
    assert trend["value"].to_numpy() == pytest.approx(liability["value"].to_numpy() / POINTS_PER_CURRENCY_UNIT)
    roi = kpis.kpi_trend(warehouse.engine, filters, "campaign_roi", "month")
    assert len(roi) == len(kpis.kpi_trend(warehouse.engine, filters, "orders", "month"))
    assert roi["value"].notna().any()
