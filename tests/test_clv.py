"""Customer lifetime value: the published CDNOW fits (from a pandas summary and from the SQL summary of a DuckDB
orders table), the hypergeometric numerics against mpmath, weighted against unweighted fits, the BG/NBD SQL form
against Python on DuckDB and PostgreSQL, warehouse summaries against pandas, refusals and hand-checked CLV."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from sqlalchemy import Double, Integer, column, create_engine, literal, select, values
from sqlalchemy.schema import CreateTable

from analytics import clv, clv_sql
from analytics.clv import BgNbdParams, ClvError, GammaGammaParams, ParetoNbdParams
from analytics.clv_sql import ClvHistoryError
from analytics.storage.contract import orders
from analytics.storage.db import read_frame
from tests.conftest import DATASETS, Warehouse

# Published CDNOW estimates: BG/NBD and Pareto/NBD from Fader, Hardie & Lee (2005), "'Counting Your Customers'
# the Easy Way", Marketing Science 24(2), with their log-likelihoods; Gamma-Gamma from Fader & Hardie (2013),
# "The Gamma-Gamma Model of Monetary Value" (946 repeat buyers). The same values are asserted by the lifetimes
# and BTYD test suites.
PUBLISHED = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "paretonbd": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
    "gammagamma": {"p": 6.25, "q": 3.74, "v": 15.44},
}
PUBLISHED_LL = {"bgnbd": -9582.4, "paretonbd": -9595.0}
CALIBRATION_END, HOLDOUT_END = date(1997, 9, 30), date(1998, 6, 30)
WAREHOUSE_CALIBRATION_END, WAREHOUSE_HOLDOUT_END = date(2026, 5, 15), date(2026, 11, 15)


# --------------------------------------------------------------------------------------------------------------
# CDNOW, read independently with pandas


def cdnow_file() -> Path:
    folder = DATASETS
    path = folder / "CDNOW_sample.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets are not beside this checkout (CI has them)")
    return path


@pytest.fixture(scope="module")
def cdnow_rows() -> pd.DataFrame:
    rows = pd.read_csv(cdnow_file(), sep=r"\s+", header=None, names=["master_id", "customer", "date", "cds", "value"])
    rows["date"] = pd.to_datetime(rows["date"].astype(str), format="%Y%m%d")
    return rows


def pandas_summary(rows: pd.DataFrame, calibration_end: date, holdout_end: date | None = None) -> pd.DataFrame:
    """The BTYD summary with pandas: purchases = days (same-day rows merged), times in weeks from the first day."""
    end = pd.Timestamp(calibration_end)
    days = rows.groupby(["customer", "date"], as_index=False)["value"].sum()
    calibration = days[days["date"] <= end].sort_values(["customer", "date"])
    grouped = calibration.groupby("customer")
    first, last = grouped["date"].min(), grouped["date"].max()
    count, total = grouped.size(), grouped["value"].sum()
    first_value = grouped["value"].first()
    summary = pd.DataFrame({"frequency": count - 1, "recency": (last - first).dt.days / 7.0,
                            "T": (end - first).dt.days / 7.0})
    summary["monetary_value"] = np.where(summary["frequency"] > 0, (total - first_value)
                                         / summary["frequency"].clip(lower=1), 0.0)
    if holdout_end is not None:
        later = days[(days["date"] > end) & (days["date"] <= pd.Timestamp(holdout_end))]
        summary["holdout_purchases"] = later.groupby("customer").size().reindex(summary.index, fill_value=0)
    summary.index = summary.index.map(lambda c: f"{c:05d}")
    return summary.rename_axis("member_id").reset_index()


@pytest.fixture(scope="module")
def cdnow_summary(cdnow_rows: pd.DataFrame) -> pd.DataFrame:
    return pandas_summary(cdnow_rows, CALIBRATION_END, HOLDOUT_END)


@pytest.fixture(scope="module")
def cdnow_engine(cdnow_rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    """A DuckDB file with CDNOW as an ``orders`` table of the warehouse contract, plus rows that must be ignored:
    cancelled orders and guest orders."""
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.duckdb"
    engine = create_engine(f"duckdb:///{path}")
    frame = pd.DataFrame({
        "order_id": [f"O{i:06d}" for i in range(len(cdnow_rows))],
        "member_id": cdnow_rows["customer"].map(lambda c: f"{c:05d}"),
        "ordered_at": cdnow_rows["date"] + pd.Timedelta(hours=12),
        "status": "completed", "net_amount": cdnow_rows["value"]})
    noise = pd.DataFrame({"order_id": ["X1", "X2", "X3"], "member_id": ["00001", None, "00003"],
                          "ordered_at": pd.to_datetime(["1997-03-03", "1997-03-03", "1997-05-05"]),
                          "status": ["cancelled", "completed", "returned"], "net_amount": [99.0, 50.0, 10.0]})
    loaded = pd.concat([frame, noise], ignore_index=True)
    ddl = str(CreateTable(orders).compile(dialect=engine.dialect))
    con = duckdb.connect(str(path))
    con.execute(ddl)
    con.register("loaded", loaded)
    con.execute("INSERT INTO orders (order_id, member_id, ordered_at, status, net_amount) "
                "SELECT order_id, member_id, ordered_at, status, net_amount FROM loaded")
    con.close()
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def cdnow_models(cdnow_summary: pd.DataFrame) -> clv_sql.ClvModels:
    return clv_sql.fit_models(cdnow_summary, "week")


def assert_published(models: clv_sql.ClvModels) -> None:
    for fitted in (models.bgnbd, models.paretonbd, models.gammagamma):
        for name, value in PUBLISHED[fitted.model].items():
            estimate = getattr(fitted, name)
            assert abs(estimate - value) < 5e-3, (fitted.model, name, estimate, value)  # equal to 2 decimals
    for model, ll in PUBLISHED_LL.items():
        assert getattr(models, model).log_likelihood == pytest.approx(ll, abs=0.05)


def test_cdnow_summary_has_the_published_shape(cdnow_summary: pd.DataFrame) -> None:
    assert len(cdnow_summary) == 2357
    assert int((cdnow_summary["frequency"] > 0).sum()) == 946  # the Gamma-Gamma note's repeat buyers
    first = cdnow_summary.iloc[0]  # FHL 2005's example customer: x = 2, t_x = 30.43, T = 38.86
    assert (first["frequency"], round(first["recency"], 2), round(first["T"], 2)) == (2, 30.43, 38.86)
    assert cdnow_summary["T"].max() == pytest.approx(272 / 7)  # first purchase on 1997-01-01, 39 weeks


def test_cdnow_fit_reproduces_the_published_estimates(cdnow_models: clv_sql.ClvModels) -> None:
    assert_published(cdnow_models)
    assert cdnow_models.bgnbd.customers == 2357 and cdnow_models.gammagamma.customers == 946


def test_cdnow_sql_summary_equals_pandas_and_gives_the_published_fit(cdnow_engine, cdnow_summary: pd.DataFrame
                                                                     ) -> None:
    summary = clv_sql.clv_summary(cdnow_engine, CALIBRATION_END, "week")
    reference = cdnow_summary[list(clv_sql.SUMMARY_COLUMNS)]
    pd.testing.assert_frame_equal(summary, reference, check_exact=False, rtol=1e-12, atol=1e-9)
    assert_published(clv_sql.fit_models(summary, "week"))
    frame = clv_sql.clv_parameters_frame(cdnow_engine, CALIBRATION_END, "week")
    assert list(frame.columns) == ["model", "parameter", "value"]
    assert [tuple(r) for r in frame[["model", "parameter"]].to_numpy()] == [
        (m, p) for m in ("bgnbd", "paretonbd", "gammagamma") for p in PUBLISHED[m]]
    assert frame["value"].round(2).tolist() == pytest.approx(
        [round(v, 2) for m in PUBLISHED.values() for v in m.values()], abs=0.0101)


def test_cdnow_master_imports_as_a_whitespace_file_and_gives_the_pandas_summary(tmp_path: Path) -> None:
    """The full CDNOW file (23,570 customers, no invoice numbers, no prices) lands through the importer as it is:
    every row a purchase, a customer's rows of one day one order; its warehouse summary equals pandas' and the
    fit lands near the published one (which is of the 1/10 sample, so only near)."""
    path = DATASETS / "CDNOW_master.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets are not beside this checkout (CI has them)")
    from analytics.importers import import_file

    url = f"duckdb:///{tmp_path / 'master.duckdb'}"
    result = import_file(url, "transactions", path)
    rows = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    assert result.layout == "CDNOW" and result.rows_read == len(rows) == 69_659 and result.rows_rejected == 0
    figures = result.summary
    assert figures["members"] == rows["customer_id"].nunique() == 23_570
    assert figures["orders"] == len(rows.drop_duplicates(["customer_id", "date"]))
    assert float(figures["completed_net_sales"]) == pytest.approx(rows["dollar_value"].sum(), abs=0.005)

    engine = create_engine(url)
    try:
        summary = clv_sql.clv_summary(engine, CALIBRATION_END, "week")
    finally:
        engine.dispose()
    master = rows.rename(columns={"customer_id": "customer", "dollar_value": "value"})
    master["customer"] = master["customer"].astype(int)
    master["date"] = pd.to_datetime(master["date"], format="%Y%m%d")
    reference = pandas_summary(master, CALIBRATION_END)[list(clv_sql.SUMMARY_COLUMNS)]
    pd.testing.assert_frame_equal(summary, reference, check_exact=False, rtol=1e-12, atol=1e-9)
    fitted = clv_sql.fit_models(summary, "week").bgnbd
    for name, value in PUBLISHED["bgnbd"].items():
        assert getattr(fitted, name) == pytest.approx(value, rel=0.15), name


def test_cdnow_holdout_and_tracking_from_sql(cdnow_engine, cdnow_summary: pd.DataFrame, cdnow_rows: pd.DataFrame
                                            ) -> None:
    holdout = clv_sql.clv_holdout(cdnow_engine, CALIBRATION_END, HOLDOUT_END)
    assert holdout["holdout_purchases"].tolist() == cdnow_summary["holdout_purchases"].tolist()
    weekly = clv_sql.repeat_purchases_by_period(cdnow_engine, CALIBRATION_END, HOLDOUT_END, "week")
    assert len(weekly) == 78 and weekly["period_start"].iloc[0] == date(1997, 1, 1)
    days = cdnow_rows.drop_duplicates(["customer", "date"]).copy()
    days["first"] = days.groupby("customer")["date"].transform("min")
    repeat = days[days["date"] > days["first"]]
    expected = ((repeat["date"] - pd.Timestamp("1997-01-01")).dt.days // 7).value_counts().sort_index()
    assert weekly["repeat_purchases"].tolist() == expected.reindex(range(78), fill_value=0).tolist()

    models = clv_sql.fit_models(cdnow_summary, "week")
    tracking = clv_sql.tracking_comparison(cdnow_summary, weekly, models.bgnbd, CALIBRATION_END, HOLDOUT_END)
    # the fitted model reproduces the calibration total (FHL 2005, Figure 2: the curves meet at week 39)
    week_39 = tracking.loc[38]
    assert week_39["cumulative_actual"] == int(cdnow_summary["frequency"].sum()) == 2457
    assert week_39["cumulative_predicted"] == pytest.approx(2457, rel=0.02)
    # the prediction is the sum of E[X(t)] over members, t from each first purchase to the week's end
    born = pd.Timestamp(CALIBRATION_END) - pd.to_timedelta(np.rint(cdnow_summary["T"] * 7), unit="D")
    t_end = (pd.Timestamp("1997-01-01") + pd.Timedelta(days=7 * 78 - 1) - born).dt.days / 7
    assert tracking["cumulative_predicted"].iloc[-1] == pytest.approx(
        clv.expected_purchases(models.bgnbd, t_end.to_numpy()).sum(), rel=1e-12)

    comparison = clv_sql.holdout_comparison(cdnow_summary[list(clv_sql.SUMMARY_COLUMNS)], holdout, models.bgnbd,
                                            39.0)
    assert comparison["calibration_purchases"].tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert comparison["members"].sum() == 2357
    zero = cdnow_summary[cdnow_summary["frequency"] == 0]
    assert comparison.loc[0, "actual"] == pytest.approx(zero["holdout_purchases"].mean())
    assert comparison.loc[0, "predicted"] == pytest.approx(clv.conditional_expected_purchases(
        models.bgnbd, 39.0, zero["frequency"], zero["recency"], zero["T"]).mean())


def test_published_quantities(cdnow_models: clv_sql.ClvModels, cdnow_summary: pd.DataFrame) -> None:
    published = BgNbdParams(**PUBLISHED["bgnbd"])
    # FHL 2005: the example customer's expected purchases in the next 39 weeks
    assert clv.conditional_expected_purchases(published, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)
    assert clv.conditional_expected_purchases(cdnow_models.bgnbd, 39, 2, 30.43, 38.86) == pytest.approx(
        1.226, abs=5e-4)
    # Hardie's BG/NBD spreadsheet: E[X(t)] of a new customer (as checked by the lifetimes tests)
    times = np.array([0.1429, 1.0, 3.00, 31.8571, 32.00, 78.00])
    assert clv.expected_purchases(cdnow_models.bgnbd, times) == pytest.approx(
        [0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576], abs=1e-3)
    # BTYD walkthrough: Pareto/NBD for x = 26, t_x = 30.86, T = 31
    assert clv.conditional_expected_purchases(cdnow_models.paretonbd, 52, 26, 30.86, 31) == pytest.approx(
        25.46, abs=0.01)
    btyd = ParetoNbdParams(0.5534, 10.5802, 0.6061, 11.6562)
    assert clv.probability_alive(btyd, 26.0, 30.86, 31.0) == pytest.approx(0.9979, abs=1e-4)
    # Hardie's Gamma-Gamma spreadsheet: expected spend of the first ten customers
    spend = clv.expected_spend(cdnow_models.gammagamma, cdnow_summary["frequency"][:10],
                               cdnow_summary["monetary_value"][:10])
    assert spend == pytest.approx([24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17], abs=0.01)


# --------------------------------------------------------------------------------------------------------------
# Numerics against mpmath


def test_gauss_continued_fraction_against_mpmath() -> None:
    import mpmath as mp
    mp.mp.dps = 30
    grid = [(b, b + gap, z) for b in (0.3, 1.3, 5.0, 50.0, 300.0, 1000.0) for gap in (0.2, 1.5, 10.0, 100.0, 600.0)
            for z in (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999)]
    B, C, z = (np.array(v) for v in zip(*grid, strict=True))
    got = np.exp(clv._log_hyp2f1_one(B, C, z))
    want = np.array([float(mp.hyp2f1(1, b, c, zz)) for b, c, zz in grid])
    assert np.max(np.abs(got / want - 1.0)) < 1e-11  # includes the cases where scipy's hyp2f1 gives inf or nan


def test_bgnbd_expectation_against_mpmath() -> None:
    import mpmath as mp
    mp.mp.dps = 40
    rng = np.random.default_rng(5)
    for r, alpha, a, b in [(0.243, 4.414, 0.793, 2.426), (2.0, 30.0, 1.5, 4.0), (0.5, 2.0, 3.5, 0.7),
                           (1.2, 10.0, 1.0 + 1e-9, 3.0), (0.3, 1.0, 0.2, 0.3)]:
        params = BgNbdParams(r, alpha, a, b)
        for _ in range(12):
            x = int(rng.choice([0, 1, 2, 5, 20, 80, 300]))
            T = float(rng.uniform(0, 100))
            t_x = float(rng.uniform(0, T)) if x else 0.0
            t = float(rng.choice([1.0, 39.0, 52.0, 200.0]))
            R, A, AA, BB, X, TX, TT, HT = (mp.mpf(v) for v in (r, alpha, a, b, x, t_x, T, t))
            bracket = (AA + BB + X - 1) / (AA - 1) * (1 - ((A + TT) / (A + TT + HT)) ** (R + X)
                                                      * mp.hyp2f1(R + X, BB + X, AA + BB + X - 1, HT / (A + TT + HT)))
            alive = 1 / (1 + (AA / (BB + X - 1)) * ((A + TT) / (A + TX)) ** (R + X)) if x else 1
            want = float(bracket * alive)  # FHL 2005 eq. 10 as printed
            got = float(clv.conditional_expected_purchases(params, t, x, t_x, T))
            assert got == pytest.approx(want, rel=1e-9, abs=1e-300), (params, x, t_x, T, t)


def test_paretonbd_likelihood_against_mpmath() -> None:
    import mpmath as mp
    mp.mp.dps = 40
    rng = np.random.default_rng(3)
    # the second set is lifetimes' overflow case; the last ones put A0's argument near 1 with many purchases
    for r, alpha, s, beta in [(0.553, 10.578, 0.606, 11.669), (10.465, 7.98565181e-03, 3.0516, 2.820),
                              (0.5, 20.0, 2.0, 1.0), (2.0, 1.0, 0.3, 50.0), (2.0, 50.0, 0.3, 0.5)]:
        for _ in range(10):
            x = int(rng.choice([0, 1, 3, 20, 100, 500]))
            T = float(rng.uniform(0.5, 60))
            t_x = float(rng.uniform(0, T)) if x else 0.0
            R, A, S, BE, X, TX, TT = (mp.mpf(v) for v in (r, alpha, s, beta, x, t_x, T))
            rsx = R + S + X
            if A >= BE:
                def f(tau, rsx=rsx, A=A, BE=BE, S=S):
                    return mp.hyp2f1(rsx, S + 1, rsx + 1, (A - BE) / (A + tau)) / (A + tau) ** rsx
            else:
                def f(tau, rsx=rsx, A=A, BE=BE, R=R, X=X):
                    return mp.hyp2f1(rsx, R + X, rsx + 1, (BE - A) / (BE + tau)) / (BE + tau) ** rsx
            likelihood = (mp.gamma(R + X) * A**R * BE**S / mp.gamma(R)
                          * (1 / ((A + TT) ** (R + X) * (BE + TT) ** S) + S / rsx * (f(TX) - f(TT))))
            got = clv.paretonbd_log_likelihood((r, alpha, s, beta), [x], [t_x], [T])
            assert got == pytest.approx(float(mp.log(likelihood)), rel=1e-10, abs=1e-9), (r, alpha, s, beta, x)


# --------------------------------------------------------------------------------------------------------------
# Fitting on distinct triples


def test_weighted_fit_equals_the_fit_on_every_member(cdnow_summary: pd.DataFrame) -> None:
    x, t_x, T = cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    rows = clv.compress(x, t_x, T)
    assert len(rows) < len(cdnow_summary) and rows["weights"].sum() == len(cdnow_summary)
    weighted = clv.fit_bgnbd(rows["frequency"], rows["recency"], rows["T"], weights=rows["weights"])

    # independent path: Nelder-Mead on the plain sum over all 2,357 members, no compression, no gradient
    def negative(log_theta: np.ndarray) -> float:
        return -clv.bgnbd_log_likelihood(tuple(np.exp(log_theta)), x, t_x, T)

    plain = optimize.minimize(negative, np.zeros(4), method="Nelder-Mead",
                              options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 20000, "maxfev": 20000})
    assert weighted.values() == pytest.approx(tuple(np.exp(plain.x)), rel=1e-5)
    assert weighted.log_likelihood == pytest.approx(-plain.fun, abs=1e-6)
    assert clv.bgnbd_log_likelihood(weighted, x, t_x, T) == pytest.approx(weighted.log_likelihood, abs=1e-8)
    assert weighted.customers == 2357

    pareto = clv.fit_paretonbd(rows["frequency"], rows["recency"], rows["T"], weights=rows["weights"])
    assert clv.paretonbd_log_likelihood(pareto, x, t_x, T) == pytest.approx(pareto.log_likelihood, abs=1e-8)
    for i in range(4):  # a maximum of the per-member likelihood too: every coordinate step lowers it
        for step in (0.999, 1.001):
            moved = list(pareto.values())
            moved[i] *= step
            assert clv.paretonbd_log_likelihood(tuple(moved), x, t_x, T) < pareto.log_likelihood

    repeat = cdnow_summary[cdnow_summary["frequency"] > 0]
    doubled = pd.concat([repeat, repeat])
    once = clv.fit_gammagamma(repeat["frequency"], repeat["monetary_value"], weights=np.full(len(repeat), 2.0))
    twice = clv.fit_gammagamma(doubled["frequency"], doubled["monetary_value"])
    assert once.values() == pytest.approx(twice.values(), rel=1e-7)


def test_penalty_shrinks_parameters(cdnow_summary: pd.DataFrame) -> None:
    x, t_x, T = cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    plain, penalised = clv.fit_bgnbd(x, t_x, T), clv.fit_bgnbd(x, t_x, T, penalty=0.01)
    assert sum(v**2 for v in penalised.values()) < sum(v**2 for v in plain.values())
    assert penalised.log_likelihood < plain.log_likelihood


def test_fits_do_not_depend_on_time_unit_or_currency(cdnow_summary: pd.DataFrame,
                                                     cdnow_models: clv_sql.ClvModels) -> None:
    x, t_x, T, m = (cdnow_summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    in_days = clv.fit_bgnbd(x, t_x * 7, T * 7, unit="day")
    weekly = cdnow_models.bgnbd
    assert (in_days.r, in_days.alpha / 7, in_days.a, in_days.b) == pytest.approx(weekly.values(), rel=1e-5)
    assert in_days.unit == "day"
    pareto = clv.fit_paretonbd(x, t_x * 7, T * 7, unit="day")
    assert (pareto.r, pareto.alpha / 7, pareto.s, pareto.beta / 7) == pytest.approx(cdnow_models.paretonbd.values(),
                                                                                     rel=1e-4)
    in_cents = clv.fit_gammagamma(x, m * 100)
    spend = cdnow_models.gammagamma
    assert (in_cents.p, in_cents.q, in_cents.v / 100) == pytest.approx(spend.values(), rel=1e-5)
    with pytest.raises(ClvError, match="penalty"):
        clv.fit_bgnbd(x, t_x, T, penalty=-1.0)


def test_parameters_round_trip_through_json() -> None:
    fitted = BgNbdParams(0.243, 4.414, 0.793, 2.426, unit="day", log_likelihood=-9582.4, customers=2357)
    stored = json.loads(json.dumps(fitted.to_dict()))
    assert stored["model"] == "bgnbd" and stored["unit"] == "day"
    assert BgNbdParams.from_dict(stored) == fitted
    assert clv._Params.from_dict(GammaGammaParams(6.25, 3.74, 15.44).to_dict()) == GammaGammaParams(6.25, 3.74, 15.44)
    with pytest.raises(ClvError, match="Not stored bgnbd"):
        BgNbdParams.from_dict(GammaGammaParams(6.25, 3.74, 15.44).to_dict())
    with pytest.raises(ClvError, match="lack b"):
        BgNbdParams.from_dict({"model": "bgnbd", "r": 1, "alpha": 1, "a": 1})


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ClvError, match="Unknown time unit"):
        clv.fit_bgnbd([1, 0], [1.0, 0.0], [2.0, 2.0], unit="month")
    with pytest.raises(ClvError, match="Recency must lie"):
        clv.fit_bgnbd([1, 0], [3.0, 0.0], [2.0, 2.0])
    with pytest.raises(ClvError, match="whole number"):
        clv.fit_bgnbd([1.5, 0], [1.0, 0.0], [2.0, 2.0])
    with pytest.raises(ClvError, match="horizon must be 1 to 120"):
        clv.monthly_expected_purchases(BgNbdParams(1, 1, 1, 1), 121, [0], [0], [1])
    with pytest.raises(ClvError, match="margin"):
        clv.discounted_value(np.ones((1, 2)), [1.0], margin=1.5)
    with pytest.raises(ClvError, match="holdout end"):
        clv_sql.clv_holdout(None, date(2026, 1, 1), date(2025, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ClvError, match="not a time"):
        clv_sql.clv_summary_query(pd.Timestamp("2026-01-01").to_pydatetime())


# --------------------------------------------------------------------------------------------------------------
# CLV by hand


def test_discounting_by_hand() -> None:
    assert clv.discounted_value(np.array([[1.0, 1.0, 1.0]]), [10.0], margin=0.5, monthly_discount=0.1) \
        == pytest.approx([5.0 * (1 / 1.1 + 1 / 1.21 + 1 / 1.331)])
    assert clv.discounted_value(np.array([[0.5, 0.25]]), [8.0], monthly_discount=0.0) == pytest.approx([6.0])
    assert clv.discounted_value(np.array([[2.0]]), [3.0], margin=0.0) == pytest.approx([0.0])

    bg, gg = BgNbdParams(0.243, 4.414, 0.793, 2.426), GammaGammaParams(6.25, 3.74, 15.44)
    x, t_x, T, m = 2, 30.43, 38.86, 22.345
    month = 365.25 / 12 / 7  # weeks
    ends = [clv.conditional_expected_purchases(bg, k * month, x, t_x, T) for k in (1, 2, 3)]
    per_month = [ends[0], ends[1] - ends[0], ends[2] - ends[1]]
    spend = (15.44 + m * x) * 6.25 / (6.25 * x + 3.74 - 1)  # note 025, eq. 9
    by_hand = sum(n * spend * 0.3 / 1.01**k for k, n in enumerate(per_month, start=1))
    assert clv.customer_lifetime_value(bg, gg, [x], [t_x], [T], [m], months=3, margin=0.3) == pytest.approx(
        [by_hand], rel=1e-12)
    in_days = BgNbdParams(0.243, 4.414 * 7, 0.793, 2.426, unit="day")  # the same model counted in days
    assert clv.customer_lifetime_value(in_days, gg, [x], [t_x * 7], [T * 7], [m], months=3, margin=0.3) \
        == pytest.approx([by_hand], rel=1e-9)


def test_median_wait_to_next_purchase() -> None:
    params = BgNbdParams(0.243, 4.414, 0.793, 2.426)
    days = clv.median_days_to_next_purchase(params, [2, 0], [38.86, 10.0])
    weeks = days / 7
    # P(wait > s | active) = ((α+T)/(α+T+s))^(r+x) is one half at the median
    assert ((4.414 + np.array([38.86, 10.0])) / (4.414 + np.array([38.86, 10.0]) + weeks)) ** (
        0.243 + np.array([2, 0])) == pytest.approx([0.5, 0.5])


# --------------------------------------------------------------------------------------------------------------
# BG/NBD in SQL


def test_series_terms_bound_holds() -> None:
    params = BgNbdParams(0.243, 4.414, 0.793, 2.426)
    for z_max in (0.3, 0.8, 0.9):
        terms, bound = clv_sql.series_terms(params, z_max)
        assert bound <= 1e-12
        z, x = np.array([z_max]), np.array([0.0])
        full = clv._bgnbd_series(params, x, z)[0]
        partial, term = 0.0, (params.a + params.b - 1 - params.r) * z_max
        for n in range(1, terms + 1):
            partial += term
            c_n, d_n = clv.bgnbd_series_ratio(params, n)
            term *= z_max * c_n / d_n
        assert 0 < abs(full - partial) <= bound
    with pytest.raises(ClvError, match="series terms"):
        clv_sql.series_terms(params, 0.999)


def _sql_against_python(w: Warehouse, params: BgNbdParams, horizon: float, unit: str) -> None:
    query = clv_sql.bgnbd_scores_query(params, WAREHOUSE_CALIBRATION_END, horizon)
    got = read_frame(w.engine, query)
    summary = reference_summary(w, WAREHOUSE_CALIBRATION_END, unit)
    assert got["member_id"].tolist() == summary["member_id"].tolist()
    x, t_x, T = summary["frequency"], summary["recency"], summary["T"]
    expected = clv.conditional_expected_purchases(params, horizon, x, t_x, T)
    assert np.max(np.abs(got["expected_purchases"].astype(float).to_numpy() - expected)) < 1e-9
    assert np.max(np.abs(got["p_alive"].astype(float).to_numpy() - clv.probability_alive(params, x, t_x, T))) < 1e-9


def test_bgnbd_sql_equals_python(warehouse: Warehouse) -> None:
    summary = clv_sql.clv_summary(warehouse.engine, WAREHOUSE_CALIBRATION_END, "week")
    fitted = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    _sql_against_python(warehouse, fitted, 52.0, "week")
    # a within the Taylor branch's reach of 1, and the CDNOW parameters (a < 1, z up to 0.92)
    _sql_against_python(warehouse, BgNbdParams(fitted.r, fitted.alpha, 1.0 + 1e-7, fitted.b), 26.0, "week")
    _sql_against_python(warehouse, BgNbdParams(**PUBLISHED["bgnbd"]), 52.0, "week")
    in_days = BgNbdParams(fitted.r, fitted.alpha * 7, fitted.a, fitted.b, unit="day")
    _sql_against_python(warehouse, in_days, 365.0, "day")


def test_bgnbd_sql_takes_expressions_with_bound_values(warehouse: Warehouse) -> None:
    rows = values(column("x", Integer), column("t_x", Double), column("age", Double), name="rows").data(
        [(0, 0.0, 0.0), (2, 30.43, 38.86), (7, 20.0, 21.0), (60, 70.0, 80.0)])
    params = BgNbdParams(**PUBLISHED["bgnbd"])
    sql = clv_sql.bgnbd_sql(params, rows.c.x + literal(0, Integer), rows.c.t_x, rows.c.age + literal(0.0, Double),
                            39.0)
    got = read_frame(warehouse.engine, select(sql.expected_purchases.label("e"), sql.p_alive.label("p")))
    assert got["e"].astype(float).tolist() == pytest.approx(clv.conditional_expected_purchases(
        params, 39.0, [0, 2, 7, 60], [0, 30.43, 20, 70], [0, 38.86, 21, 80]), abs=1e-9)
    assert got["e"].iloc[1] == pytest.approx(1.226, abs=5e-4)
    assert sql.terms > 100 and sql.error_bound <= 1e-12


# --------------------------------------------------------------------------------------------------------------
# Warehouse summaries against pandas


def reference_days(w: Warehouse, through: date) -> pd.DataFrame:
    o = w.frame("orders")
    o = o[(o["status"] == "completed") & o["member_id"].notna() & (o["ordered_at"] < pd.Timestamp(through)
                                                                     + pd.Timedelta(days=1))].copy()
    o["day"] = o["ordered_at"].dt.normalize()
    days = o.groupby(["member_id", "day"], as_index=False)["net_amount"].sum()
    days["first"] = days.groupby("member_id")["day"].transform("min")
    return days


def reference_summary(w: Warehouse, calibration_end: date, unit: str, start: date | None = None) -> pd.DataFrame:
    per_unit = 7.0 if unit == "week" else 1.0
    days = reference_days(w, calibration_end)
    if start is not None:
        days = days[days["first"] >= pd.Timestamp(start)]
    rows = []
    for member, group in days.groupby("member_id", sort=True):
        group = group.sort_values("day")
        x = len(group) - 1
        rows.append({"member_id": member, "frequency": x,
                     "recency": (group["day"].iloc[-1] - group["day"].iloc[0]).days / per_unit,
                     "T": (pd.Timestamp(calibration_end) - group["day"].iloc[0]).days / per_unit,
                     "monetary_value": group["net_amount"].iloc[1:].mean() if x else 0.0})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("unit", "start"), [("week", None), ("day", date(2025, 6, 1))])
def test_summary_holdout_and_periods_match_pandas(warehouse: Warehouse, unit: str, start: date | None) -> None:
    summary = clv_sql.clv_summary(warehouse.engine, WAREHOUSE_CALIBRATION_END, unit, start)
    reference = reference_summary(warehouse, WAREHOUSE_CALIBRATION_END, unit, start)
    assert len(summary) > 500
    pd.testing.assert_frame_equal(summary, reference.astype(summary.dtypes.to_dict()), check_exact=False,
                                  rtol=1e-12, atol=1e-9)

    holdout = clv_sql.clv_holdout(warehouse.engine, WAREHOUSE_CALIBRATION_END, WAREHOUSE_HOLDOUT_END, start)
    days = reference_days(warehouse, WAREHOUSE_HOLDOUT_END)
    days = days[days["member_id"].isin(reference["member_id"])]
    later = days[days["day"] > pd.Timestamp(WAREHOUSE_CALIBRATION_END)].groupby("member_id").size()
    assert holdout["member_id"].tolist() == reference["member_id"].tolist()
    assert holdout["holdout_purchases"].tolist() == later.reindex(reference["member_id"], fill_value=0).tolist()
    assert holdout["holdout_purchases"].sum() > 0

    periods = clv_sql.repeat_purchases_by_period(warehouse.engine, WAREHOUSE_CALIBRATION_END,
                                                 WAREHOUSE_HOLDOUT_END, unit, start)
    origin = pd.Timestamp(start) if start else reference_days(warehouse, WAREHOUSE_CALIBRATION_END)["day"].min()
    length = 7 if unit == "week" else 1
    repeat = days[days["day"] > days["first"]]
    counts = ((repeat["day"] - origin).dt.days // length).value_counts()
    assert periods["period_start"].iloc[0] == origin.date()
    assert periods["period"].iloc[-1] == (pd.Timestamp(WAREHOUSE_HOLDOUT_END) - origin).days // length
    assert periods["repeat_purchases"].tolist() == counts.reindex(periods["period"], fill_value=0).tolist()


def test_member_frame_and_validation(warehouse: Warehouse) -> None:
    frame = clv_sql.clv_member_frame(warehouse.engine, WAREHOUSE_CALIBRATION_END, "week", months=12,
                                     margin=0.4, monthly_discount=0.02)
    assert list(frame.columns) == list(clv_sql.MEMBER_COLUMNS)
    summary = clv_sql.clv_summary(warehouse.engine, WAREHOUSE_CALIBRATION_END, "week")
    assert frame["member_id"].tolist() == summary["member_id"].tolist()
    bg = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    gg = clv.fit_gammagamma(summary["frequency"], summary["monetary_value"])
    x, t_x, T, m = (summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    year = 12 * 365.25 / 12 / 7
    assert frame["expected_orders"].to_numpy() == pytest.approx(clv.conditional_expected_purchases(
        bg, year, x, t_x, T), rel=1e-9)
    assert frame["clv"].to_numpy() == pytest.approx(clv.customer_lifetime_value(
        bg, gg, x, t_x, T, m, months=12, margin=0.4, monthly_discount=0.02), rel=1e-9)
    assert (frame["clv"] < frame["expected_orders"] * frame["expected_spend"] * 0.4 + 1e-9).all()
    assert frame["p_alive"].between(0, 1).all() and (frame.loc[frame["frequency"] == 0, "p_alive"] == 1).all()
    assert (pd.to_datetime(frame["next_order_date"]) > pd.Timestamp(WAREHOUSE_CALIBRATION_END)).all()

    chart = clv_sql.holdout_validation(warehouse.engine, WAREHOUSE_CALIBRATION_END, WAREHOUSE_HOLDOUT_END)
    assert chart["members"].sum() == len(summary)
    tracking = clv_sql.tracking_validation(warehouse.engine, WAREHOUSE_CALIBRATION_END, WAREHOUSE_HOLDOUT_END)
    assert tracking["cumulative_actual"].iloc[-1] == tracking["actual"].sum() > 0
    assert tracking["predicted"].min() >= 0 and tracking["cumulative_predicted"].is_monotonic_increasing


# --------------------------------------------------------------------------------------------------------------
# Too little history


def test_too_little_history_is_refused(warehouse: Warehouse) -> None:
    first = warehouse.frame("orders")["ordered_at"].min().date()
    with pytest.raises(ClvHistoryError, match=r"members have a purchase.*spans \d+ days"):
        clv_sql.clv_parameters_frame(warehouse.engine, first + timedelta(days=60))
    with pytest.raises(ClvHistoryError, match="members have a purchase") as refused:
        clv_sql.clv_member_frame(warehouse.engine, WAREHOUSE_CALIBRATION_END,
                                 start=WAREHOUSE_CALIBRATION_END - timedelta(days=120))
    assert "days" not in str(refused.value).split("members have a purchase")[1].split(";")[0]
    clv_sql.check_history(clv_sql.clv_summary(warehouse.engine, WAREHOUSE_CALIBRATION_END))  # enough: no error


def test_history_thresholds_one_at_a_time() -> None:
    rng = np.random.default_rng(1)
    summary = pd.DataFrame({"member_id": [f"M{i}" for i in range(600)], "frequency": rng.integers(0, 2, 600),
                            "recency": 0.0, "T": rng.uniform(0, 200 / 7, 600)})
    summary.loc[0, "T"] = 200 / 7
    clv_sql.check_history(summary)
    few_repeaters = summary.assign(frequency=np.where(np.arange(600) < 99, 1, 0))
    with pytest.raises(ClvHistoryError, match=r"^Too little history for lifetime value: 99 members bought again"):
        clv_sql.check_history(few_repeaters)
    with pytest.raises(ClvHistoryError, match=r"spans 179 days"):
        clv_sql.check_history(summary.assign(T=summary["T"].clip(upper=179 / 7)))
    with pytest.raises(ClvHistoryError, match=r"^Too little history for lifetime value: 499 members"):
        clv_sql.check_history(summary.iloc[:499].assign(T=200 / 7))
    with pytest.raises(ClvHistoryError, match="0 members"):
        clv_sql.check_history(summary.iloc[:0])


def test_pareto_expectation_is_finite_for_heavy_buyers() -> None:
    # lifetimes' overflow case: hundreds of purchases in a few weeks
    params = ParetoNbdParams(10.465, 7.98565181e-03, 3.0516, 2.820)
    alive = clv.probability_alive(params, [400.0, 500.0, 500.0], [5.0, 1.0, 4.0], [6.0, 37.0, 37.0])
    assert np.isfinite(alive).all() and ((alive >= 0) & (alive <= 1)).all()
    assert math.isfinite(clv.paretonbd_log_likelihood(params, [400, 500, 500], [5, 1, 4], [6, 37, 37]))
