"""Campaign forecast: history against pandas on DuckDB and PostgreSQL, pooling against statsmodels, costs by hand,
refusals, and the interval's coverage by simulation."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from statsmodels.stats.meta_analysis import combine_effects

from analytics.forecast import (
    HISTORY_COLUMNS,
    MIN_CAMPAIGNS,
    MIN_CONTROL_MEMBERS,
    ForecastError,
    campaign_effects,
    campaign_history,
    forecast,
    forecast_campaign,
    forecast_types,
    random_effects,
)
from analytics.storage.contract import campaigns
from analytics.storage.db import read_frame
from tests.conftest import Warehouse

FIGURES = ("response_rate", "control_rate", "simple_uplift", "uplift", "uplift_se", "uplift_ci", "tau2",
           "expected_conversions", "incremental_conversions", "incremental_ci", "revenue_per_conversion",
           "coupon_cost", "message_cost", "incremental_margin", "roi", "roi_ci")


def reference_history(w: Warehouse, campaign_type: str, channel: str, before: pd.Timestamp | None = None
                      ) -> pd.DataFrame:
    """campaign_history with pandas, from plain SELECTs of the three tables."""
    c = w.frame("campaigns")
    c = c[(c["type"] == campaign_type) & (c["channel"] == channel)]
    if before is not None:
        c = c[c["start_at"] < before]
    cm = w.frame("campaign_members").merge(w.frame("orders")[["order_id", "net_amount"]], how="left",
                                           left_on="converted_order_id", right_on="order_id")
    cm["converted"] = cm["converted_order_id"].notna()
    cm["revenue"] = cm["net_amount"].fillna(0.0).astype(float)
    rows = []
    for campaign in c.itertuples():
        row = {"campaign_id": campaign.campaign_id, "name": campaign.name, "start_at": campaign.start_at,
               "coupon_value": 0.0 if pd.isna(campaign.coupon_value) else float(campaign.coupon_value)}
        part = cm[cm["campaign_id"] == campaign.campaign_id]
        for arm in ("treatment", "control"):
            members = part[part["arm"] == arm]
            row |= {f"{arm}_members": len(members), f"{arm}_conversions": int(members["converted"].sum()),
                    f"{arm}_revenue": float(members["revenue"].sum())}
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    return frame.sort_values(["start_at", "campaign_id"]).reset_index(drop=True)


def reference_effects(history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per-campaign uplift and variance, one campaign at a time (0.5 added to a zero or full cell's rates)."""
    effects, variances = [], []
    for row in history.itertuples():
        nt, xt, nc, xc = row.treatment_members, row.treatment_conversions, row.control_members, row.control_conversions
        if nt == 0 or nc == 0:
            continue
        effects.append(xt / nt - xc / nc)
        if xt in (0, nt) or xc in (0, nc):
            pt, pc = (xt + 0.5) / (nt + 1), (xc + 0.5) / (nc + 1)
        else:
            pt, pc = xt / nt, xc / nc
        variances.append(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    return np.array(effects), np.array(variances)


def pairs(w: Warehouse) -> list[tuple[str, str]]:
    kinds = w.frame("campaigns")[["type", "channel"]].dropna().drop_duplicates()
    return sorted((str(t), str(c)) for t, c in kinds.itertuples(index=False))


def assert_matches_statsmodels(pooled, effects: np.ndarray, variances: np.ndarray) -> str:
    """Compare with statsmodels' DerSimonian–Laird; says which of its rows matched. statsmodels 0.15 leaves a
    negative moment estimate of tau² as it is, where DerSimonian and Laird (and R's metafor and meta) take 0:
    then the pooled estimate is the fixed-effect one, which statsmodels reports too."""
    with np.errstate(invalid="ignore"):  # statsmodels takes the square root of a negative variance then
        reference = combine_effects(effects, variances, method_re="dl", use_t=False)
        truncated = reference.tau2 <= 0
        row = reference.summary_frame().loc["fixed effect" if truncated else "random effect"]
    assert pooled.tau2 == pytest.approx(max(reference.tau2, 0.0), rel=1e-9, abs=1e-15)
    assert pooled.estimate == pytest.approx(row["eff"], rel=1e-9, abs=1e-12)
    assert pooled.se == pytest.approx(row["sd_eff"], rel=1e-9)
    assert pooled.ci == pytest.approx((row["ci_low"], row["ci_upp"]), rel=1e-9, abs=1e-12)
    return "fixed" if truncated else "random"


def made_history(counts: list[tuple[int, int, int, int]], revenue_per_conversion: float = 80.0) -> pd.DataFrame:
    """A history from (treated, their conversions, control, their conversions) per campaign."""
    rows = [{"campaign_id": f"H{i:03d}", "name": f"made {i}", "start_at": pd.Timestamp("2025-01-01") + pd.Timedelta(
        days=30 * i), "treatment_members": nt, "treatment_conversions": xt,
        "treatment_revenue": xt * revenue_per_conversion, "control_members": nc, "control_conversions": xc,
        "control_revenue": xc * revenue_per_conversion, "coupon_value": 10.0} for i, (nt, xt, nc, xc) in
        enumerate(counts)]
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


def test_campaign_history_against_pandas(warehouse: Warehouse) -> None:
    found = pairs(warehouse)
    print("\n(type, channel) pairs in the demo:", found)
    assert len(found) >= 5
    usable = 0
    for campaign_type, channel in found:
        got = campaign_history(warehouse.engine, campaign_type, channel)
        expected = reference_history(warehouse, campaign_type, channel)
        assert list(got.columns) == list(HISTORY_COLUMNS)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-9)
        usable += len(campaign_effects(got)) >= MIN_CAMPAIGNS
    assert usable >= 2  # the demo has kinds with history enough to pool
    # started before a day: the campaigns starting on it are left out
    starts = warehouse.frame("campaigns").sort_values("start_at")
    middle = starts.iloc[len(starts) // 2]
    cut = middle["start_at"].normalize()
    got = campaign_history(warehouse.engine, middle["type"], middle["channel"], before=cut.date())
    expected = reference_history(warehouse, middle["type"], middle["channel"], before=cut)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-9)
    assert middle["campaign_id"] not in set(got["campaign_id"])
    assert len(got) < len(reference_history(warehouse, middle["type"], middle["channel"]))
    # values are bound parameters, never SQL
    assert campaign_history(warehouse.engine, "x'; DROP TABLE campaigns; --", "sms").empty
    assert campaign_history(warehouse.engine, "x' OR '1'='1", "x' OR '1'='1").empty
    assert len(read_frame(warehouse.engine, select(campaigns))) == len(starts)


def test_forecast_types_against_pandas(warehouse: Warehouse) -> None:
    got = forecast_types(warehouse.engine)
    rows = []
    for campaign_type, channel in pairs(warehouse):
        history = reference_history(warehouse, campaign_type, channel)
        both = history[(history["treatment_members"] > 0) & (history["control_members"] > 0)]
        rows.append({"type": campaign_type, "channel": channel, "campaigns": len(history),
                     "campaigns_with_control": len(both), "control_members": int(both["control_members"].sum())})
    print("\n" + got.to_string())
    pd.testing.assert_frame_equal(got, pd.DataFrame(rows), check_dtype=False)


def test_pooling_equals_statsmodels_on_the_warehouse_history(warehouse: Warehouse) -> None:
    rows_matched = []
    for campaign_type, channel in pairs(warehouse):
        history = campaign_history(warehouse.engine, campaign_type, channel)
        effects, variances = reference_effects(reference_history(warehouse, campaign_type, channel))
        used = campaign_effects(history)
        assert used["uplift"].to_numpy() == pytest.approx(effects, rel=1e-12, abs=1e-15)
        assert used["variance"].to_numpy() == pytest.approx(variances, rel=1e-12)
        if len(effects) < 2:
            continue
        rows_matched.append(assert_matches_statsmodels(random_effects(used["uplift"], used["variance"]), effects,
                                                       variances))
    print("\nstatsmodels rows matched per kind of campaign:", rows_matched)
    assert {"random", "fixed"} <= set(rows_matched)  # the demo has heterogeneous kinds and homogeneous ones


def test_pooling_equals_statsmodels_on_heterogeneous_campaigns() -> None:
    effects = np.array([0.010, 0.050, 0.030, 0.080, -0.010, 0.020])
    variances = np.array([1.0e-4, 2.0e-4, 1.5e-4, 3.0e-4, 1.0e-4, 0.5e-4])
    pooled = random_effects(effects, variances)
    assert pooled.tau2 > 5e-4  # clearly heterogeneous: the random effects matter
    assert assert_matches_statsmodels(pooled, effects, variances) == "random"
    # campaigns that agree within their noise: tau² = 0 and the fixed-effect answer
    calm = random_effects([0.02, 0.021, 0.019], [1e-4, 1e-4, 1e-4])
    assert calm.tau2 == 0.0 and calm.estimate == pytest.approx(0.02)
    assert calm.se == pytest.approx(math.sqrt(1e-4 / 3))
    # the whole forecast on a made-up, heterogeneous history
    history = made_history([(5000, 600, 1000, 50), (4000, 240, 800, 60), (6000, 900, 1200, 100),
                            (3000, 150, 600, 40), (5000, 450, 1000, 70)])
    result = forecast(history, 10_000, 10.0, 0.05, 0.3)
    effects, variances = reference_effects(history)
    reference = combine_effects(effects, variances, method_re="dl", use_t=False)
    row = reference.summary_frame().loc["random effect"]
    assert result.enough_history and result.tau2 == pytest.approx(reference.tau2, rel=1e-9) and result.tau2 > 0
    assert result.uplift == pytest.approx(row["eff"], rel=1e-9)
    assert result.uplift_se == pytest.approx(row["sd_eff"], rel=1e-9)
    assert result.uplift_ci == pytest.approx((row["ci_low"], row["ci_upp"]), rel=1e-9)
    assert result.incremental_ci == pytest.approx((10_000 * row["ci_low"], 10_000 * row["ci_upp"]), rel=1e-9)
    assert result.response_rate == pytest.approx(2340 / 23000)
    assert result.control_rate == pytest.approx(320 / 4600)
    assert result.simple_uplift == pytest.approx(2340 / 23000 - 320 / 4600)


def test_costs_and_roi_by_hand() -> None:
    # three alike campaigns: 10% of 5,000 treated against 6% of 1,000 control, 80 per conversion
    history = made_history([(5000, 500, 1000, 60)] * 3, revenue_per_conversion=80.0)
    result = forecast(history, 20_000, coupon_value=10.0, message_cost=0.05, margin=0.3, redemption_share=0.5)
    assert result.enough_history and result.campaigns_used == 3
    assert (result.treatment_members, result.control_members) == (15_000, 3_000)
    assert result.campaign_ids == ("H000", "H001", "H002")
    assert result.tau2 == 0.0
    assert result.response_rate == pytest.approx(0.10) and result.uplift == pytest.approx(0.04)
    se = math.sqrt((0.1 * 0.9 / 5000 + 0.06 * 0.94 / 1000) / 3)
    assert result.uplift_se == pytest.approx(se)
    low, high = 0.04 - 1.959964 * se, 0.04 + 1.959964 * se
    assert result.uplift_ci == pytest.approx((low, high), rel=1e-6)
    assert result.expected_conversions == pytest.approx(2_000)  # 20,000 x 10%
    assert result.incremental_conversions == pytest.approx(800)  # 20,000 x 4 points
    assert result.revenue_per_conversion == pytest.approx(80.0)
    assert result.coupon_cost == pytest.approx(10_000)  # every expected conversion, not only the 800: 2,000 x 0.5 x 10
    assert result.message_cost == pytest.approx(1_000)  # 20,000 x 0.05
    assert result.incremental_margin == pytest.approx(19_200)  # 800 x 80 x 0.3
    assert result.roi == pytest.approx((19_200 - 11_000) / 11_000)
    roi_low = (20_000 * low * 80 * 0.3 - 11_000) / 11_000
    roi_high = (20_000 * high * 80 * 0.3 - 11_000) / 11_000
    assert result.roi_ci == pytest.approx((roi_low, roi_high), rel=1e-6)
    assert result.roi_ci[0] < result.roi < result.roi_ci[1]
    assert result.message.startswith("From 3 past campaigns (15,000 treated and 3,000 control members): sending to "
                                     "20,000 members should bring about 800 extra conversions")
    assert "expected ROI of 75%" in result.message
    # nothing spent: no ROI, rather than a division by zero
    free = forecast(history, 20_000, coupon_value=0.0, message_cost=0.0, margin=0.3)
    assert math.isnan(free.roi) and all(math.isnan(x) for x in free.roi_ci) and "ROI" not in free.message
    # a losing kind of campaign: ROI interval still ordered around the point
    losing = forecast(made_history([(5000, 300, 1000, 70)] * 3), 20_000, 10.0, 0.05, 0.3)
    assert losing.uplift < 0 and losing.roi_ci[0] < losing.roi < losing.roi_ci[1] < 0


def test_too_little_history_gives_no_figures(warehouse: Warehouse) -> None:
    first = warehouse.frame("campaigns")["start_at"].min()
    none = forecast_campaign(warehouse.engine, "member_day", "push", 10_000, 20.0, 0.05, 0.3,
                             before=(first - timedelta(days=1)).date())
    assert not none.enough_history and none.campaigns_used == 0 and none.campaign_ids == ()
    assert none.message == "No past push member day campaigns with a control group (0 found, 3 needed): no forecast."
    assert all(getattr(none, name) is None for name in FIGURES)

    history = campaign_history(warehouse.engine, "member_day", "push")
    used = campaign_effects(history)
    assert len(used) >= MIN_CAMPAIGNS
    two = forecast(history[history["campaign_id"].isin(used["campaign_id"][:2])], 10_000, 20.0, 0.05, 0.3,
                   campaign_type="member_day", channel="push")
    assert not two.enough_history and two.campaigns_used == 2
    assert two.message.startswith("Only 2 past push member day campaigns with a control group (3 needed)")
    assert all(getattr(two, name) is None for name in FIGURES)

    # the whole demo history: enough campaigns, but are there enough control members?
    control = int(used["control_members"].sum())
    full = forecast(history, 10_000, 20.0, 0.05, 0.3, campaign_type="member_day", channel="push")
    assert full.control_members == control and full.campaigns_used == len(used)
    assert full.enough_history == (control >= MIN_CONTROL_MEMBERS)
    if not full.enough_history:
        assert full.message == (f"The {len(used)} past push member day campaigns with a control group had only "
                                f"{control:,} control members (1,000 needed): no forecast.")

    # campaigns with an empty arm are listed but not used
    win_back = campaign_history(warehouse.engine, "win_back", "email")
    one_armed = win_back[(win_back["treatment_members"] == 0) | (win_back["control_members"] == 0)]
    assert set(one_armed["campaign_id"]).isdisjoint(campaign_effects(win_back)["campaign_id"])


def test_the_thresholds_are_exact() -> None:
    enough = made_history([(3000, 300, 334, 20), (3000, 300, 333, 20), (3000, 300, 333, 20)])
    assert forecast(enough, 1_000, 10.0, 0.05, 0.3).enough_history  # 1,000 control members in 3 campaigns
    short = made_history([(3000, 300, 333, 20), (3000, 300, 333, 20), (3000, 300, 333, 20)])
    result = forecast(short, 1_000, 10.0, 0.05, 0.3, campaign_type="coupon", channel="email")
    assert not result.enough_history and result.uplift is None
    assert result.message == ("The 3 past email coupon campaigns with a control group had only 999 control members "
                              "(1,000 needed): no forecast.")
    few = forecast(made_history([(3000, 300, 5000, 20)] * 2), 1_000, 10.0, 0.05, 0.3, campaign_type="coupon",
                   channel="email")
    assert few.message == "Only 2 past email coupon campaigns with a control group (3 needed): no forecast."
    one = forecast(made_history([(3000, 300, 5000, 20)]), 1_000, 10.0, 0.05, 0.3, campaign_type="coupon",
                   channel="email")
    assert one.message == "Only 1 past email coupon campaign with a control group (3 needed): no forecast."
    both = forecast(made_history([(3000, 300, 50, 2)] * 2), 1_000, 10.0, 0.05, 0.3)
    assert both.message == ("Only 2 past campaigns with a control group (3 needed), with only 100 control members "
                            "(1,000 needed): no forecast.")
    assert MIN_CAMPAIGNS == 3 and MIN_CONTROL_MEMBERS == 1_000


@pytest.mark.parametrize(("change", "complaint"), [
    ({"treatment_size": -1}, "whole number of 0 or more"),
    ({"treatment_size": 10.5}, "whole number of 0 or more"),
    ({"coupon_value": -5.0}, "coupon value must be 0 or more"),
    ({"message_cost": math.nan}, "cost per message must be 0 or more"),
    ({"margin": 1.5}, "margin must be a share between 0 and 1"),
    ({"margin": -0.1}, "margin must be a share between 0 and 1"),
    ({"redemption_share": 2.0}, "redemption share must be a share between 0 and 1"),
])
def test_bad_inputs_are_refused(change: dict, complaint: str) -> None:
    inputs = {"treatment_size": 1_000, "coupon_value": 10.0, "message_cost": 0.05, "margin": 0.3,
              "redemption_share": 1.0} | change
    history = made_history([(5000, 500, 1000, 60)] * 3)
    with pytest.raises(ForecastError, match=complaint):
        forecast(history, **inputs)
    with pytest.raises(ForecastError, match=complaint):  # refused even when there is no history to forecast from
        forecast(history.iloc[:0], **inputs)
    with pytest.raises(ForecastError, match="lacks the columns control_members"):
        forecast(history.drop(columns="control_members"), 1_000, 10.0, 0.05, 0.3)


def test_the_interval_covers_the_true_uplift_by_simulation() -> None:
    """Campaigns whose true uplifts scatter around a known mean: the 95% interval of the pooled uplift covers
    that mean in about 95% of 400 synthetic histories."""
    rng = np.random.default_rng(20240601)
    true_uplift, spread, runs, covered = 0.02, 0.01, 400, 0
    for _ in range(runs):
        k = 8
        control_rate = rng.uniform(0.03, 0.08, k)
        treated_rate = np.clip(control_rate + rng.normal(true_uplift, spread, k), 0.001, 0.999)
        n_t, n_c = rng.integers(3_000, 8_000, k), rng.integers(300, 1_000, k)
        counts = list(zip(n_t, rng.binomial(n_t, treated_rate), n_c, rng.binomial(n_c, control_rate), strict=True))
        result = forecast(made_history([tuple(int(x) for x in c) for c in counts]), 10_000, 10.0, 0.05, 0.3)
        assert result.enough_history
        low, high = result.incremental_ci
        covered += low <= 10_000 * true_uplift <= high
    assert 0.90 <= covered / runs <= 0.99, covered / runs
