"""The Recommendations page under AppTest on DuckDB and PostgreSQL: first-run training from the page, the path
shares read back as the stored lists say, one member's list and recent purchases as the analytics make them, cold
start, the settings, the evaluation cards against an independent evaluation, and the versions tab; and Campaign
targeting's recommendation download."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analytics.recommend_data import load_data
from analytics.recommend_eval import compare_with_baseline, evaluate
from analytics.recommend_lists import PATHS, ListMaker, ListSettings
from analytics.recommend_store import load_model, member_list, recent_purchases, train_version
from analytics.recommenders import ALGORITHMS
from analytics.storage.appstate import open_state
from tests.conftest import Warehouse, direct_page, open_page
from tests.figures import read_figure


@pytest.fixture()
def state_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", url)
    monkeypatch.delenv("MEMBERLENS_RECOMMENDER_DIR", raising=False)
    return url


def test_first_run_trains_from_the_page(duck_warehouse: Warehouse, state_url: str, monkeypatch) -> None:
    at, run = direct_page(duck_warehouse, "pages/recommendations.py", monkeypatch)
    run()
    assert any("No recommender has been trained yet" in i.value for i in at.info)
    at.selectbox(key="rec_first_algorithm").set_value("popular_segment")
    at.button(key="rec_first_train").click()
    run()
    assert any(m.label == "Served: personal" for m in at.metric), [m.label for m in at.metric]
    assert any("v1 (Most popular in the member's segment)" in c.value for c in at.caption)


def test_the_page_reads_back_as_the_stored_version(warehouse: Warehouse, state_url: str, monkeypatch) -> None:
    state = open_state(state_url)
    stored = train_version(warehouse.engine, state, "ana", "hybrid", None, ListSettings(n=8))
    at = open_page(warehouse.url, "pages/recommendations.py", monkeypatch)
    # path shares, from the stored members file itself
    paths = pq.read_table(stored.folder / "members.parquet").to_pandas()["path"].astype(str)
    cards = {m.label: m.value for m in at.metric}
    for path in PATHS:
        assert read_figure(cards[f"Served: {path}"]).close_to((paths == path).mean()), path
    # one member: the list as a fresh list maker makes it, recent purchases as the data says
    data = load_data(warehouse.engine)
    maker = ListMaker(load_model(stored), data, ListSettings(n=8))
    at.text_input(key="rec_member").set_value("M00000007").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = next(df.value for df in at.dataframe if "reason" in df.value.columns)
    expected = member_list(maker, "M00000007")
    assert shown["product"].tolist() == expected["product"].tolist()
    assert shown["reason"].tolist() == expected["reason"].tolist()
    bought = next(df.value for df in at.dataframe if "last_bought" in df.value.columns)
    code = int(np.flatnonzero(data.members.ids == "M00000007")[0])
    assert bought["product"].tolist() == recent_purchases(data, code)["product"].tolist()
    # the diversity setting
    at.number_input(key="rec_cap").set_value(1).run()
    capped = next(df.value for df in at.dataframe if "reason" in df.value.columns)
    known = capped.loc[capped["category"] != "(no category)", "category"]
    assert len(capped) == 8 and known.is_unique
    # cold start: a member who never completed an order
    orders = warehouse.frame("orders")
    buyers = set(orders.loc[orders["status"] == "completed", "member_id"].dropna())
    cold = sorted(set(warehouse.frame("members")["member_id"]) - buyers)[0]
    at.text_input(key="rec_member").set_value(cold).run()
    assert any("Nothing yet" in c.value for c in at.caption)
    assert any("served: **segment popular**" in m.value or "served: **popular overall**" in m.value
               for m in at.markdown)


def test_the_evaluation_tab_reads_back_as_an_evaluation(warehouse: Warehouse, state_url: str, monkeypatch) -> None:
    state = open_state(state_url)
    train_version(warehouse.engine, state, "ana", "hybrid")
    at = open_page(warehouse.url, "pages/recommendations.py", monkeypatch)
    at.session_state["rec_tab"] = "Evaluation"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    result = evaluate(warehouse.engine, None, 30, 10, tuple(ALGORITHMS), ListSettings(n=10))
    versus = compare_with_baseline(result.table, 10, "hybrid")
    cards = {m.label: m.value for m in at.metric}
    assert read_figure(cards["Recall@10, Hybrid"]).close_to(versus.value)
    assert read_figure(cards["Recall@10, popularity baseline"]).close_to(versus.baseline_value)
    assert read_figure(cards["Better than the baseline by"]).close_to(versus.change)
    said = [s.value for s in at.success] + [w.value for w in at.warning]
    assert any(versus.sentence in text for text in said)
    table = next(df.value for df in at.dataframe if "recall" in df.value.columns)
    assert table["label"].tolist() == [label for label, *_ in ALGORITHMS.values()]
    assert table["member_coverage"].eq(1.0).all()
    at.session_state["rec_tab"] = "Versions"
    at.run()
    assert not at.exception and next(df.value for df in at.dataframe if "version" in df.value.columns)[
        "version"].tolist() == [1]


def test_campaign_targeting_offers_the_recommendation_download(duck_warehouse: Warehouse, state_url: str,
                                                               monkeypatch) -> None:
    at = open_page(duck_warehouse.url, "pages/campaign_targeting.py", monkeypatch)
    assert any("none stored yet" in c.value for c in at.caption)
    train_version(duck_warehouse.engine, open_state(state_url), "ana", "popular_segment", None, ListSettings(n=6))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [b.label for b in at.get("download_button")]
    assert "Top 6 recommendations per member (CSV)" in labels
    assert any('Recorded for campaign **campaign**' in c.value for c in at.caption)
    assert pd.Series(labels).str.contains("members").any()  # the member export is still there
