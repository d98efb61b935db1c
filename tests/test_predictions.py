"""Predictions: features and labels against pandas, the models' Python scores against scikit-learn, their SQL
against their Python (1e-9) on DuckDB and PostgreSQL, prediction audiences against a pandas filter, the model
registry, refusals, and the page."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from analytics import predictions
from analytics.errors import InputError
from analytics.prediction_audiences import PinnedModel, PredictionAudience
from analytics.prediction_features import (
    FEATURE_NAMES,
    SINGLE_ORDER_GAP_DAYS,
    features_and_labels,
    features_and_labels_at,
)
from analytics.prediction_models import (
    GBDT_SETTINGS,
    SEED,
    Classifier,
    calibration_rows,
    fit_classifier,
    sample_rows,
)
from analytics.storage.appstate import AppStateError, open_state
from analytics.storage.db import read_frame
from analytics.storage.model_registry import list_models, load_model, model_versions, save_model
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse, store_models


def cutoff_of(w: Warehouse) -> date:
    return data_span(w.engine).last_day - timedelta(days=90)


def pandas_features(w: Warehouse, cutoff: date, horizon: int) -> pd.DataFrame:
    """The features and label written from the module's definitions with pandas only."""
    end = pd.Timestamp(cutoff + timedelta(days=1))
    o = w.frame("orders")
    done = o[(o["status"] == "completed") & o["member_id"].notna() & (o["ordered_at"] < end)]
    m = w.frame("members").set_index("member_id")
    g = done.groupby("member_id")
    out = pd.DataFrame({"first": g["ordered_at"].min(), "last": g["ordered_at"].max(), "orders_all": g.size(),
                        "net_all": g["net_amount"].sum()})
    out = out[out.index.isin(m.index[m["registered_at"] < end])]
    day = pd.Timedelta(days=1)
    out["recency_days"] = (end - out["last"]) / day
    out["tenure_days"] = (end - m.loc[out.index, "registered_at"]) / day
    for days in (365, 90, 30):
        recent = done[done["ordered_at"] >= end - pd.Timedelta(days=days)]
        out[f"orders_{days}"] = recent.groupby("member_id").size().reindex(out.index).fillna(0)
    year = done[done["ordered_at"] >= end - pd.Timedelta(days=365)].groupby("member_id")
    out["net_365"] = year["net_amount"].sum().reindex(out.index).fillna(0)
    out["aov_all"] = out["net_all"] / out["orders_all"]
    span = (out["last"] - out["first"]) / day
    out["gap_days"] = np.where(out["orders_all"] > 1, span / (out["orders_all"] - 1).clip(lower=1),
                               SINGLE_ORDER_GAP_DAYS)
    out["overdue"] = out["recency_days"] / out["gap_days"].clip(lower=1)
    gross, discount = year["gross_amount"].sum(), year["discount_amount"].sum()
    out["discount_share"] = (discount / gross).where(gross > 0).reindex(out.index).fillna(0)
    app = done[(done["ordered_at"] >= end - pd.Timedelta(days=365)) & (done["channel"] == "app")].groupby("member_id")
    out["app_share"] = (app.size() / year.size()).reindex(out.index).fillna(0)
    changes = w.frame("tier_changes")
    changes = changes[changes["changed_at"] < end].sort_values("changed_at").groupby("member_id")["to_tier"].last()
    rank = {"basic": 0, "silver": 1, "gold": 2, "diamond": 3}
    out["tier_rank"] = changes.reindex(out.index).map(rank).fillna(0)
    ledger = w.frame("points_ledger")
    out["points_balance"] = ledger[ledger["occurred_at"] < end].groupby("member_id")["delta"].sum().reindex(
        out.index).fillna(0)
    e = w.frame("events")
    sessions = e[(e["event_type"] == "session_start") & (e["occurred_at"] < end)
                 & (e["occurred_at"] >= end - pd.Timedelta(days=90))].groupby("member_id").size()
    out["sessions_90"] = sessions.reindex(out.index).fillna(0)
    later = o[(o["status"] == "completed") & (o["ordered_at"] >= end)
              & (o["ordered_at"] < end + pd.Timedelta(days=horizon))]["member_id"]
    out["ordered"] = out.index.isin(set(later)).astype(int)
    return out.sort_index()


def test_features_and_labels_match_pandas(warehouse: Warehouse) -> None:
    cutoff = cutoff_of(warehouse)
    got = features_and_labels(warehouse.engine, cutoff, 90).set_index("member_id")
    expected = pandas_features(warehouse, cutoff, 90)
    assert list(got.index) == list(expected.index) and len(got) > 500
    for name in FEATURE_NAMES:
        assert got[name].to_numpy() == pytest.approx(expected[name].astype(float).to_numpy(), rel=1e-9,
                                                     abs=1e-6), name
    assert got["ordered"].tolist() == expected["ordered"].tolist()


def test_several_cutoffs(warehouse: Warehouse) -> None:
    """The features and labels of two cutoffs read together equal each cutoff's written with pandas, and the
    features alone (what scoring reads) equal the first cutoff's."""
    later = cutoff_of(warehouse)
    earlier = later - timedelta(days=120)
    frames = features_and_labels_at(warehouse.engine, [earlier, later], 30)
    for cutoff, got in zip((earlier, later), frames, strict=True):
        expected = pandas_features(warehouse, cutoff, 30)
        got = got.set_index("member_id")
        assert list(got.index) == list(expected.index), cutoff
        for name in FEATURE_NAMES:
            assert got[name].to_numpy() == pytest.approx(expected[name].astype(float).to_numpy(), rel=1e-9,
                                                         abs=1e-6), (cutoff, name)
        assert got["ordered"].tolist() == expected["ordered"].tolist(), cutoff
    alone = features_and_labels(warehouse.engine, earlier).set_index("member_id")
    assert alone[list(FEATURE_NAMES)].equals(frames[0].set_index("member_id")[list(FEATURE_NAMES)])


def test_samples_are_stable_and_capped() -> None:
    ids = pd.Series([f"M{i:06d}" for i in range(20_000)])
    chosen = sample_rows(ids, 5_000)
    assert 4_500 < chosen.sum() < 5_500
    assert (sample_rows(ids.iloc[::-1], 5_000)[::-1] == chosen).all()  # by id, not by position
    assert sample_rows(ids, 30_000).all()


def test_python_scores_equal_scikit_learn(duck_warehouse: Warehouse) -> None:
    """The plain-data trees score exactly as the fitted scikit-learn model (before calibration)."""
    frame = features_and_labels(duck_warehouse.engine, cutoff_of(duck_warehouse), 90)
    y = 1 - frame["ordered"].to_numpy()
    model = fit_classifier(frame, y, FEATURE_NAMES, "gbdt")
    aside = calibration_rows(frame["member_id"])
    X = frame[list(FEATURE_NAMES)].to_numpy(dtype="float64")
    reference = HistGradientBoostingClassifier(random_state=SEED, **GBDT_SETTINGS).fit(X[~aside], y[~aside])
    assert model.score(frame) == pytest.approx(reference.decision_function(X), abs=1e-12)
    again = fit_classifier(frame, y, FEATURE_NAMES, "gbdt")
    assert again == model  # same data and seed, same model


@pytest.mark.parametrize("algorithm", ["logistic", "gbdt"])
def test_sql_scores_equal_python_scores(warehouse: Warehouse, algorithm: str) -> None:
    cutoff = cutoff_of(warehouse)
    frame = features_and_labels(warehouse.engine, cutoff, 90)
    model = fit_classifier(frame, 1 - frame["ordered"].to_numpy(), FEATURE_NAMES, algorithm)
    model = Classifier.from_dict(json.loads(json.dumps(model.to_dict())))  # as stored
    scored = predictions.score_members(warehouse.engine, predictions.Models(churn=model), cutoff)
    assert scored["member_id"].tolist() == frame["member_id"].tolist()
    assert scored["churn_risk"].to_numpy() == pytest.approx(model.predict(frame), abs=1e-9)


@pytest.fixture(scope="module")
def trained(trained_models: dict) -> dict:
    return trained_models


def test_models_beat_recency_and_are_calibrated_on_the_demo(trained: dict) -> None:
    """On the demo shop, whose churn is planted: each chosen model beats recency alone on PR AUC, stays below the
    planted truth's ceiling, and its probabilities are calibrated within 0.05 (ECE)."""
    for kind in ("churn", "propensity"):
        card = trained[kind]["card"]
        chosen = card["metrics"][card["algorithm"]]
        assert chosen["pr_auc"] > card["metrics"]["recency"]["pr_auc"], kind
        assert chosen["pr_auc"] > card["metrics"]["rfm_rule"]["pr_auc"], kind
        assert chosen["roc_auc"] < card["ceiling"]["roc_auc"], kind
        assert chosen["ece"] <= 0.05, (kind, chosen["ece"])
        assert card["train_cutoff"] < card["test_cutoff"] < card["as_of"]


def test_threshold_measures_from_the_stored_histogram(trained: dict) -> None:
    card = trained["churn"]["card"]
    at = predictions.measures_at(card["score_histogram"], 0.5)
    for name in ("precision", "recall", "f1", "accuracy"):
        assert at[name] == pytest.approx(card["metrics"][card["algorithm"]][name], abs=0.02), name
    assert at["tp"] + at["fn"] == round(card["test_base_rate"] * card["test_members"])


def test_a_prediction_audience_is_a_pandas_filter_of_the_scores(warehouse: Warehouse, trained: dict) -> None:
    """Members with churn risk of 0.6 or more, as the page lists them and targeting selects them."""
    from analytics import targeting

    as_of = data_span(warehouse.engine).last_day
    pinned = PinnedModel("churn", 1, trained["churn"])
    models = predictions.Models.from_stored({"churn": trained["churn"]})
    scores = predictions.score_members(warehouse.engine, models, as_of)
    expected = set(scores.loc[scores["churn_risk"] >= 0.6, "member_id"])
    audience = PredictionAudience("churn_risk", 0.6, None, as_of, pinned)
    got = set(read_frame(warehouse.engine, audience.member_ids())["member_id"])
    assert got == expected and 0 < len(got) < len(scores)
    spec = targeting.parse_spec({"version": 1, "kind": "audience", "start": str(as_of - timedelta(days=89)),
                                 "end": str(as_of), "rules": {"match": "all", "conditions": [
                                     {"field": "churn_risk", "op": "between", "value": [0.6, None],
                                      "model": pinned.to_json()}]}})
    assert targeting.preview(warehouse.engine, spec).matching == len(expected)
    assert json.loads(json.dumps(spec.to_json()))["rules"]["conditions"][0]["model"]["version"] == 1
    # two scores in one statement (they share the materialised features of the day)
    value = PinnedModel("clv", 1, trained["clv"])
    both = predictions.score_members(warehouse.engine, predictions.Models.from_stored(
        {"churn": trained["churn"], "clv": trained["clv"]}), as_of)
    cut = both["predicted_clv"].median()
    spec = targeting.parse_spec({"version": 1, "kind": "audience", "start": str(as_of - timedelta(days=89)),
                                 "end": str(as_of), "rules": {"match": "all", "conditions": [
                                     {"field": "churn_risk", "op": "between", "value": [0.6, None],
                                      "model": pinned.to_json()},
                                     {"field": "predicted_clv", "op": "between", "value": [cut, None],
                                      "model": value.to_json()}]}})
    wanted = both[(both["churn_risk"] >= 0.6) & (both["predicted_clv"] >= cut)]
    assert targeting.preview(warehouse.engine, spec).matching == len(wanted) > 0


def test_a_score_among_other_conditions_is_computed_for_the_members_they_keep(warehouse: Warehouse,
                                                                          trained: dict) -> None:
    """Under a top-level "all", prediction conditions are scored only for the members the other conditions keep
    (a materialised CTE): the same members as a pandas filter of every member's scores and attributes, with a
    negated condition and an "any" group among the others, and the scores computed that way equal the full ones."""
    from analytics import targeting

    as_of = data_span(warehouse.engine).last_day
    churn, value = PinnedModel("churn", 1, trained["churn"]), PinnedModel("clv", 1, trained["clv"])
    both = predictions.score_members(warehouse.engine, predictions.Models.from_stored(
        {"churn": trained["churn"], "clv": trained["clv"]}), as_of)
    cut = float(both["predicted_clv"].median())
    rows = both.merge(warehouse.frame("members"), on="member_id")
    spec = targeting.parse_spec({"version": 1, "kind": "audience", "start": str(as_of - timedelta(days=89)),
                                 "end": str(as_of), "rules": {"match": "all", "conditions": [
                                     {"field": "tier", "op": "in", "value": ["basic", "silver", "gold"]},
                                     {"field": "churn_risk", "op": "between", "value": [0.3, None],
                                      "model": churn.to_json()},
                                     {"match": "any", "conditions": [
                                         {"field": "acquisition_channel", "op": "in", "value": ["referral"]},
                                         {"field": "gender", "op": "in", "value": ["female"]}]},
                                     {"field": "predicted_clv", "op": "between", "value": [None, cut],
                                      "model": value.to_json()},
                                     {"not": True, "field": "acquisition_channel", "op": "in",
                                      "value": ["paid_search"]}]}})
    assert targeting._Compiler(spec).narrowed  # the path under test
    wanted = rows[rows["tier"].isin(["basic", "silver", "gold"]) & (rows["churn_risk"] >= 0.3)
                  & ((rows["acquisition_channel"] == "referral") | (rows["gender"] == "female"))
                  & (rows["predicted_clv"] <= cut) & (rows["acquisition_channel"] != "paid_search")]
    got = set(read_frame(warehouse.engine, targeting.audience_member_ids(spec))["member_id"])
    assert got == set(wanted["member_id"]) and 0 < len(got) < len(rows) / 2
    assert targeting.preview(warehouse.engine, spec).matching == len(wanted)
    # the narrowed scores themselves: those of the full statement, for the kept members only
    from sqlalchemy import select

    from analytics.sqlparts import materialised
    from analytics.storage.contract import members

    kept = materialised(select(members.c.member_id).where(members.c.tier == "gold"))
    models = predictions.Models.from_stored({"churn": trained["churn"], "clv": trained["clv"]})
    narrowed = predictions.score_select(models, as_of, kept).subquery()
    part = read_frame(warehouse.engine, select(narrowed).order_by(narrowed.c.member_id))
    full = both[both["member_id"].isin(rows.loc[rows["tier"] == "gold", "member_id"])].reset_index(drop=True)
    assert list(part["member_id"]) == list(full["member_id"]) and len(part) > 0
    for column in ("churn_risk", "expected_orders", "p_alive", "predicted_clv"):
        assert part[column].astype(float).to_numpy() == pytest.approx(full[column].to_numpy(), abs=1e-9), column


def test_clv_scores_in_sql_match_the_python_model(duck_warehouse: Warehouse, trained: dict) -> None:
    from analytics import clv
    from analytics.clv_sql import clv_summary

    as_of = data_span(duck_warehouse.engine).last_day
    models = predictions.Models.from_stored({"clv": trained["clv"]})
    scores = predictions.score_members(duck_warehouse.engine, models, as_of).set_index("member_id")
    summary = clv_summary(duck_warehouse.engine, as_of, "week").set_index("member_id")
    horizon = predictions.CLV_MONTHS * predictions.WEEKS_PER_MONTH
    expected = clv.conditional_expected_purchases(models.bgnbd, horizon, summary["frequency"], summary["recency"],
                                                  summary["T"])
    spend = clv.expected_spend(models.gammagamma, summary["frequency"], summary["monetary_value"])
    common = scores.index.intersection(summary.index)
    assert len(common) == len(scores) > 500
    assert scores.loc[common, "expected_orders"].to_numpy() == pytest.approx(
        pd.Series(expected, index=summary.index).loc[common].to_numpy(), rel=1e-9, abs=1e-9)
    assert scores.loc[common, "predicted_clv"].to_numpy() == pytest.approx(
        (pd.Series(expected, index=summary.index) * pd.Series(spend, index=summary.index)).loc[common].to_numpy(),
        rel=1e-9)


def test_too_little_history_is_refused(duck_warehouse: Warehouse) -> None:
    first = data_span(duck_warehouse.engine).first_day
    with pytest.raises(InputError, match="Too little history"):
        predictions.train_classifier(duck_warehouse.engine, "churn", first + timedelta(days=200))
    with pytest.raises(InputError, match="Too little history for lifetime values"):
        predictions.train_clv(duck_warehouse.engine, first + timedelta(days=100))
    with pytest.raises(InputError, match="Unknown model"):
        predictions.train_classifier(duck_warehouse.engine, "horoscope")


def test_the_registry_keeps_every_version(tmp_path, trained: dict) -> None:
    state = open_state(f"sqlite:///{tmp_path}/state.sqlite")
    first = save_model(state, "churn", "gbdt", date(2026, 11, 15), trained["churn"], "ana")
    second = save_model(state, "churn", "logistic", date(2026, 11, 16), trained["churn"], "bo")
    assert (first.version, second.version) == (1, 2)
    assert load_model(state, "churn").version == 2 and load_model(state, "churn", 1).author == "ana"
    assert list_models(state)["version"].tolist() == [2, 1]
    with pytest.raises(AppStateError, match="no churn model version 7"):
        load_model(state, "churn", 7)
    with pytest.raises(AppStateError, match="Unknown model kind"):
        load_model(state, "churn'; DROP TABLE model_versions; --")
    with state.begin() as conn:
        conn.execute(model_versions.update().where(model_versions.c.version == 2).values(model="{not json"))
    with pytest.raises(AppStateError, match="corrupted"):
        load_model(state, "churn")
    broken = {"churn": {**trained["churn"], "classifier": {"algorithm": "gbdt", "features": ["x"]}}}
    with pytest.raises(InputError, match="corrupted"):
        predictions.Models.from_stored(broken)


def test_models_command_line(duck_warehouse: Warehouse, tmp_path) -> None:
    from tests.conftest import run

    env = {"MEMBERLENS_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite"}
    trained = run("analytics", "models", "train", "--model", "churn", "--url", duck_warehouse.url, env=env)
    assert trained.returncode == 0, trained.stderr
    assert "stored churn v1" in trained.stderr and trained.stdout.startswith("model,candidate,")
    listed = run("analytics", "models", "list", "--url", duck_warehouse.url, env=env)
    assert listed.returncode == 0 and "churn,1," in listed.stdout
    scored = run("analytics", "models", "score", "--model", "churn", "--members", "--url", duck_warehouse.url, env=env)
    frame = pd.read_csv(__import__("io").StringIO(scored.stdout))
    assert scored.returncode == 0 and frame["churn_risk"].between(0, 1).all() and len(frame) > 500
    hostile = run("analytics", "models", "show", "churn'; DROP TABLE x; --", "--url", duck_warehouse.url, env=env)
    assert hostile.returncode == 2 and "show takes KIND" in hostile.stderr
    params = run("analytics", "clv", "--params", "--url", duck_warehouse.url)
    assert params.returncode == 0 and params.stdout.splitlines()[0] == "model,parameter,value"
    assert [line.split(",")[:2] for line in params.stdout.splitlines()[1:]] == [
        ["bgnbd", "r"], ["bgnbd", "alpha"], ["bgnbd", "a"], ["bgnbd", "b"], ["paretonbd", "r"], ["paretonbd", "alpha"],
        ["paretonbd", "s"], ["paretonbd", "beta"], ["gammagamma", "p"], ["gammagamma", "q"], ["gammagamma", "v"]]


def test_predictions_page_shows_the_bands(warehouse: Warehouse, trained: dict, tmp_path, monkeypatch) -> None:
    """Under AppTest on DuckDB and PostgreSQL, with the models stored: the cards read back as the bands computed
    here, and the high band's members are listed with their reasons."""
    from tests.conftest import open_page
    from tests.figures import read_figure

    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    store_models(state_url, warehouse.engine, trained)
    as_of = data_span(warehouse.engine).last_day
    at = open_page(warehouse.url, "pages/predictions.py", monkeypatch)
    models = predictions.Models.from_stored(trained)
    scores = predictions.score_members(warehouse.engine, models, as_of)
    cards = {m.label: m.value for m in at.metric}
    assert read_figure(cards["Members scored"]).close_to(len(scores))
    assert read_figure(cards["High churn risk"]).close_to(int((scores["churn_risk"] >= 0.6).sum()))
    assert read_figure(cards["Value at risk"]).close_to(float(scores["value_at_risk"].sum()))
    listed = next(df.value for df in at.dataframe if "reasons" in df.value.columns).set_index("member_id")
    assert (listed["churn_risk"] >= 0.6).all() and listed["reasons"].str.len().gt(0).all()
    # every score of the listed members, as scored here (the other models are shown with the churn band)
    expected = scores.set_index("member_id").loc[listed.index]
    for column in ("churn_risk", "purchase_propensity", "expected_orders", "p_alive", "predicted_clv",
                   "value_at_risk"):
        assert listed[column].to_numpy() == pytest.approx(expected[column].to_numpy(), rel=1e-9), column
    assert (listed["next_order_date"] == expected["next_order_date"]).all()
    for tab in ("Churn model card", "Propensity model card", "Lifetime value"):
        at.session_state["pred_tab"] = tab
        at.run()
        assert not at.exception, (tab, [e.value for e in at.exception])
        if tab == "Churn model card":  # the card reads back as stored, and the threshold cards as recomputed
            card = trained["churn"]["card"]
            table = next(df.value for df in at.dataframe if "candidate" in df.value.columns).set_index("candidate")
            chosen = table.loc[next(c for c in table.index if c.endswith("(chosen)"))]
            assert float(chosen["pr_auc"]) == pytest.approx(card["metrics"][card["algorithm"]]["pr_auc"], abs=5e-4)
            assert float(table.loc["Recency alone", "roc_auc"]) == pytest.approx(
                card["metrics"]["recency"]["roc_auc"], abs=5e-4)
            at_half = predictions.measures_at(card["score_histogram"], 0.5)
            shown = {m.label: m.value for m in at.metric}
            assert read_figure(shown["Precision"]).close_to(at_half["precision"])
            assert read_figure(shown["F1"]).close_to(at_half["f1"])
    assert any(m.label == "Top 10% hold" for m in at.metric)


def test_models_shown_with_an_audience_are_checked(trained: dict) -> None:
    """The models listed beside a prediction audience's members are read strictly: a known kind each, once."""
    from analytics.audiences import dumps, loads

    churn = PinnedModel("churn", 1, trained["churn"])
    body = json.loads(dumps(PredictionAudience("churn_risk", 0.6, None, date(2026, 11, 15), churn)))
    assert "shown_with" not in body
    for shown, message in (([{"kind": "horoscope", "version": 1}], 'needs its "kind"'),
                           ([{"kind": "churn", "version": 1}], "each model once"),
                           ("clv", "at most two other models"),
                           ([{"kind": "clv"}], '"version"')):
        with pytest.raises(InputError, match=message):
            loads(json.dumps({**body, "shown_with": shown}))
