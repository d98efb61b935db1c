"""Experiment read-out against pandas and scipy's own tests, on DuckDB and PostgreSQL; sample size by simulation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analytics.experiments import (
    Arm,
    ExperimentError,
    ReadOut,
    arm_totals,
    campaign_list,
    read_out,
    read_out_table,
    sample_size_per_arm,
)
from tests.conftest import PROJECT_ROOT, Warehouse


def per_member_revenue(w: Warehouse, campaign_id: str) -> dict[str, np.ndarray]:
    """Each member's revenue (net amount of the converted order, else 0) per arm, with pandas."""
    cm = w.frame("campaign_members")
    cm = cm[cm["campaign_id"] == campaign_id].merge(w.frame("orders")[["order_id", "net_amount"]], how="left",
                                                    left_on="converted_order_id", right_on="order_id")
    cm["revenue"] = cm["net_amount"].fillna(0.0).astype(float)
    cm["converted"] = cm["converted_order_id"].notna()
    return {arm: part for arm, part in cm.groupby("arm")}


def busiest_campaign(w: Warehouse) -> str:
    return str(campaign_list(w.engine).sort_values(["members", "campaign_id"], ascending=[False, True])
               ["campaign_id"].iloc[0])


def test_arm_totals_and_tests_against_pandas_and_scipy(warehouse: Warehouse) -> None:
    campaign = busiest_campaign(warehouse)
    arms = arm_totals(warehouse.engine, campaign)
    frames = per_member_revenue(warehouse, campaign)
    for arm in ("treatment", "control"):
        part = frames[arm]
        assert arms[arm].members == len(part)
        assert arms[arm].conversions == int(part["converted"].sum())
        assert arms[arm].revenue == pytest.approx(part["revenue"].sum())
        assert arms[arm].revenue_variance == pytest.approx(part["revenue"].var(ddof=1))
    result = read_out(warehouse.engine, campaign)
    t, c = frames["treatment"], frames["control"]
    table = [[t["converted"].sum(), (~t["converted"]).sum()], [c["converted"].sum(), (~c["converted"]).sum()]]
    # the pooled two-proportion z-test is the 2 x 2 chi-square test without continuity correction
    assert result.rate_p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
    welch = stats.ttest_ind(t["revenue"], c["revenue"], equal_var=False)
    assert result.revenue_p_value == pytest.approx(welch.pvalue, rel=1e-7)
    low, high = welch.confidence_interval(0.95)
    assert result.revenue_ci == pytest.approx((low, high), rel=1e-7)
    assert result.lift == pytest.approx(t["converted"].mean() - c["converted"].mean())
    se = np.sqrt(t["converted"].var(ddof=0) / len(t) + c["converted"].var(ddof=0) / len(c))
    assert result.lift_ci == pytest.approx((result.lift - 1.959964 * se, result.lift + 1.959964 * se), rel=1e-5)
    planned = float(warehouse.frame("campaigns").set_index("campaign_id").loc[campaign, "holdout_pct"]) / 100
    n = len(t) + len(c)
    assert result.srm_p_value == pytest.approx(
        stats.chisquare([len(t), len(c)], [n * (1 - planned), n * planned]).pvalue, rel=1e-9)
    rows = read_out_table(result).set_index("metric")
    assert rows.loc["members", "treatment"] == len(t) and rows.loc["conversion_rate", "p_value"] == result.rate_p_value


def test_the_demo_campaigns_show_their_planted_uplift(warehouse: Warehouse) -> None:
    """The generator gives treated members extra conversions: pooled over every campaign, treatment converts
    more than control, and the read-outs agree in sign with it."""
    campaigns = campaign_list(warehouse.engine)["campaign_id"]
    totals = [arm_totals(warehouse.engine, c) for c in campaigns]
    rate = {arm: sum(t[arm].conversions for t in totals) / sum(t[arm].members for t in totals)
            for arm in ("treatment", "control")}
    assert rate["treatment"] > rate["control"]


def test_verdicts_read_plainly() -> None:
    def made(t: Arm, c: Arm, holdout: float = 0.1, p: float = 0.5, lift: float = 0.0, srm: float = 0.5) -> ReadOut:
        return ReadOut("C1", "n", "coupon", "sms", holdout, t, c, lift, (lift - 0.01, lift + 0.01), 0.0, p, 0.0,
                       (0.0, 0.0), 0.5, srm)

    base = Arm(9000, 900, 0.0, 0.0), Arm(1000, 80, 0.0, 0.0)
    assert made(*base, p=0.001, lift=0.02).verdict.startswith("The campaign raised conversion by 2.00 points")
    assert made(*base, p=0.4).verdict.startswith("No clear effect on conversion")
    assert made(*base, srm=1e-6).verdict.startswith("Do not trust this result: control is 10.0% of the members")


def test_unknown_or_one_armed_campaigns_are_refused(duck_warehouse: Warehouse) -> None:
    with pytest.raises(ExperimentError, match="no campaign 'NOPE'"):
        read_out(duck_warehouse.engine, "NOPE")
    listed = set(campaign_list(duck_warehouse.engine)["campaign_id"])
    empty = sorted(set(duck_warehouse.frame("campaigns")["campaign_id"]) - listed)
    if empty:
        with pytest.raises(ExperimentError, match="needs both arms"):
            read_out(duck_warehouse.engine, empty[0])


def test_sample_size_gives_the_asked_power_by_simulation() -> None:
    n = sample_size_per_arm(0.10, 0.02, power=0.8, alpha=0.05)
    assert 3_500 < n < 4_200  # 10% -> 12% needs about 3,800 per arm (normal approximation)
    rng = np.random.default_rng(7)
    sims = 4_000
    a, b = rng.binomial(n, 0.10, sims), rng.binomial(n, 0.12, sims)
    pooled = (a + b) / (2 * n)
    z = (b / n - a / n) / np.sqrt(pooled * (1 - pooled) * 2 / n)
    power = float((np.abs(z) > stats.norm.ppf(0.975)).mean())
    assert abs(power - 0.8) < 0.03, power
    assert sample_size_per_arm(0.10, 0.01) > n > sample_size_per_arm(0.10, 0.04)
    with pytest.raises(ValueError, match="between 0 and 1"):
        sample_size_per_arm(0.99, 0.05)


def test_command_line(duck_warehouse: Warehouse) -> None:
    campaign = busiest_campaign(duck_warehouse)
    run = subprocess.run([sys.executable, "-m", "analytics", "experiment", "--url", duck_warehouse.url, "--campaign",
                          campaign], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "metric,treatment,control,difference,ci_low,ci_high,p_value"
    arms = arm_totals(duck_warehouse.engine, campaign)
    assert lines[1].startswith(f"members,{arms['treatment'].members},{arms['control'].members},")
    assert "verdict: " in run.stderr
    bad = subprocess.run([sys.executable, "-m", "analytics", "experiment", "--url", duck_warehouse.url, "--campaign",
                          "x'; DROP TABLE campaigns; --"], capture_output=True, text=True, cwd=PROJECT_ROOT,
                         timeout=60)
    assert bad.returncode == 2 and "no campaign" in bad.stderr
    assert len(pd.DataFrame(campaign_list(duck_warehouse.engine))) > 0


def test_experiments_page_reads_out_the_chosen_campaign(warehouse: Warehouse, monkeypatch) -> None:
    from tests.conftest import open_page

    at = open_page(warehouse.url, "pages/experiments.py", monkeypatch)
    campaign = busiest_campaign(warehouse)
    at.selectbox(key="experiment_campaign").set_value(campaign).run()
    assert not at.exception, [e.value for e in at.exception]
    result = read_out(warehouse.engine, campaign)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Conversion, treatment"] == f"{result.treatment.rate:.2%}"
    assert cards["Lift"] == f"{result.lift * 100:+.2f} pts"
    notes = [*(e.value for e in at.info), *(e.value for e in at.success), *(e.value for e in at.warning)]
    assert result.verdict in notes
    expected = sample_size_per_arm(0.10, 0.02, 0.8, 0.05)
    at.number_input(key="plan_baseline").set_value(10.0)
    at.number_input(key="plan_mde").set_value(2.0).run()
    assert {m.label: m.value for m in at.metric}["Members per arm"] == f"{expected:,}"
