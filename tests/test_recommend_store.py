"""Recommendations end to end: stored versions (files checked by SHA-256, deterministic, every member listed), the
stored lists read back with reasons, the one masked and audited export path with its campaign link, the
"recommended item bought" outcome per arm against pandas on both warehouses, and the command line."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from statsmodels.stats.proportion import proportions_ztest

from analytics import targeting
from analytics.access import Principal
from analytics.errors import StateError
from analytics.recommend_data import load_data
from analytics.recommend_lists import PATHS, ListMaker, ListSettings
from analytics.recommend_outcome import recommendation_outcome
from analytics.recommend_reasons import explain
from analytics.recommend_store import (
    RecommendationExport,
    RecommendStoreError,
    StoredLists,
    export_frame,
    find_members,
    linked_export,
    load_model,
    member_list,
    recent_purchases,
    train_version,
)
from analytics.storage.appstate import audit_events, open_state
from analytics.storage.recommender_registry import (
    CampaignLinkError,
    campaign_link,
    link_campaign,
    list_recommenders,
    load_recommender,
    read_lists,
)
from tests.conftest import Warehouse, run

ANA = Principal("ana@example.com", "Ana", "analyst")  # an analyst exports real member ids


@pytest.fixture()
def state(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", url)
    monkeypatch.delenv("MEMBERLENS_RECOMMENDER_DIR", raising=False)
    return open_state(url)


def _stored_frame(stored) -> pd.DataFrame:
    """The version's lists read straight from its Parquet files (not through StoredLists): member and product ids."""
    members = pq.read_table(stored.folder / "members.parquet").to_pandas()
    products = pq.read_table(stored.folder / "products.parquet").to_pandas()
    lists = pq.read_table(stored.folder / "lists.parquet").to_pandas()
    return lists.assign(member_id=members["member_id"].to_numpy()[lists["member"]],
                        product_id=products["product_id"].to_numpy()[lists["product"]],
                        path=members["path"].astype(str).to_numpy()[lists["member"]])


# --- versions -------------------------------------------------------------------------------------------------

def test_a_version_stores_every_members_list_as_the_engine_makes_it(warehouse: Warehouse, state) -> None:
    """Every member registered by the history's end has a full list (member coverage 100 %, cold start included),
    equal to the engine's lists from the same data; the model reads back identical; rows and audit are written."""
    settings = ListSettings(n=8, max_per_category=3)
    stored = train_version(warehouse.engine, state, "ana", "hybrid", None, settings)
    assert stored.version == 1 and stored.list_length == 8 and stored.folder.is_dir()
    frame = _stored_frame(stored)
    members = warehouse.frame("members")
    assert set(frame["member_id"]) == set(members["member_id"])  # every member, from the table itself
    assert (frame.groupby("member_id").size() == 8).all()
    orders = warehouse.frame("orders")
    never = set(members["member_id"]) - set(orders.loc[orders["status"] == "completed", "member_id"].dropna())
    assert len(never) > 50
    assert set(frame.loc[frame["member_id"].isin(never), "path"]) <= {"segment popular", "popular overall"}
    data = load_data(warehouse.engine)
    model = load_model(stored)
    assert model.algorithm == "hybrid"
    recs = ListMaker(model, data, settings).recommend()
    expected = pd.DataFrame({"member_id": np.repeat(data.members.ids, 8),
                             "rank": np.tile(np.arange(1, 9), data.members.size),
                             "product_id": data.products.ids[recs.items.ravel()]})
    got = frame.sort_values(["member_id", "rank"])[["member_id", "rank", "product_id"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.sort_values(["member_id", "rank"]).reset_index(drop=True),
                                  check_dtype=False)
    assert stored.summary["paths"] == recs.path_counts() and sum(stored.summary["paths"].values()) == len(members)
    again = train_version(warehouse.engine, state, "bo", "popular_segment", None, ListSettings(n=5))
    assert again.version == 2 and load_recommender(state).version == 2 and load_recommender(state, 1) == stored
    assert list(list_recommenders(state)["version"]) == [2, 1]
    actions = audit_events(state)["action"].tolist()
    assert actions.count("train_recommender") == 2


def test_versions_are_deterministic_and_checked(duck_warehouse: Warehouse, state) -> None:
    """The same data and settings give byte-identical files; a changed or missing file is refused by name."""
    first = train_version(duck_warehouse.engine, state, "ana", "item_cosine")
    second = train_version(duck_warehouse.engine, state, "ana", "item_cosine")
    assert first.folder != second.folder
    for name in ("members.parquet", "products.parquet", "lists.parquet"):
        assert first.files[name]["sha256"] == second.files[name]["sha256"], name
    with np.load(first.folder / "model.npz") as a, np.load(second.folder / "model.npz") as b:  # zip dates differ
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[f], b[f]) for f in a.files)
    lists = first.folder / "lists.parquet"
    lists.write_bytes(lists.read_bytes()[:-1] + b"x")
    with pytest.raises(StateError, match=r"lists\.parquet of recommender v1 has changed"):
        StoredLists(first).rows(["M00000001"])
    (second.folder / "model.npz").unlink()
    with pytest.raises(StateError, match=r"model\.npz of recommender v2 is missing"):
        load_model(second)
    with pytest.raises(Exception, match="no stored recommender version 9"):
        load_recommender(state, 9)


def test_stored_rows_say_what_explain_says(duck_warehouse: Warehouse, state) -> None:
    """Stored lists read back by member id give the same products, reasons, past products and days as the engine's
    own explain() on the same lists; ranks are cut at n; unknown members have no rows; n is bounded."""
    stored = train_version(duck_warehouse.engine, state, "ana", "item_cosine", None, ListSettings(n=6))
    data = load_data(duck_warehouse.engine)
    model = load_model(stored)
    lists = StoredLists(stored)
    ids = ["M00000011", "M00000003", "nobody", "M00001999"]
    rows = lists.rows(ids, 4)
    assert rows["member_id"].drop_duplicates().tolist() == ["M00000011", "M00000003", "M00001999"]  # asked order
    codes = [int(np.flatnonzero(data.members.ids == m)[0]) for m in ("M00000011", "M00000003", "M00001999")]
    expected = explain(ListMaker(model, data, ListSettings(n=6)).recommend(codes), model, data)
    expected = expected[expected["rank"] <= 4].reset_index(drop=True)
    for column in ("member_id", "rank", "product_id", "product", "category", "because_product", "reason"):
        assert rows[column].tolist() == expected[column].tolist(), column
    assert rows["because_date"].tolist() == expected["because_date"].tolist()
    assert rows["reason"].str.contains("bought together with").any()
    with pytest.raises(RecommendStoreError, match="ask for 1 to 6"):
        lists.rows(ids, 7)


# --- export ---------------------------------------------------------------------------------------------------

def _audience(warehouse: Warehouse, key: str) -> targeting.CampaignAudience:
    end = warehouse.frame("orders")["ordered_at"].max().date()
    return targeting.parse_spec({"version": 1, "kind": "audience", "start": str(end - timedelta(days=180)),
                                 "end": str(end), "holdout": 0.2, "campaign_key": key, "rules": {
                                     "match": "all", "conditions": [{"field": "tier", "op": "in",
                                                                     "value": ["gold", "diamond"]}]}})


def test_the_export_is_masked_audited_linked_and_reproducible(duck_warehouse: Warehouse, state) -> None:
    """Through the one export path (ui.member_sets.export_members): every targeted member with their arm and their
    stored top n, personal data masked, the audit row written with the version and the lists' hash, the campaign
    linked; the same export again gives the same bytes; another version for that campaign is refused."""
    from ui.member_sets import export_members

    stored = train_version(duck_warehouse.engine, state, "ana", "hybrid", None, ListSettings(n=10))
    audience = _audience(duck_warehouse, "CMP-REC-1")
    export = RecommendationExport(state, stored, 3, "CMP-REC-1")
    data = export_members(duck_warehouse.engine, audience, ANA, "campaign_targeting", recommendations=export)
    frame = pd.read_csv(io.BytesIO(data), dtype=str)
    arms = targeting.targeted_members(duck_warehouse.engine, audience)
    assert len(arms) > 50
    assert set(frame["member_id"]) == set(arms["member_id"]) and len(frame) == 3 * len(arms)
    assert frame.groupby("member_id")["rank"].apply(lambda r: sorted(r.astype(int)) == [1, 2, 3]).all()
    merged = frame.drop_duplicates("member_id").merge(arms, on="member_id", suffixes=("", "_expected"))
    assert (merged["arm"] == merged["arm_expected"]).all()
    stored_rows = _stored_frame(stored)
    top3 = stored_rows[stored_rows["rank"] <= 3].set_index(["member_id", "rank"])["product_id"]
    keys = list(zip(frame["member_id"], frame["rank"].astype(int), strict=True))
    assert frame["product_id"].tolist() == top3.loc[keys].tolist()
    raw = duck_warehouse.frame("members").set_index("member_id").loc[frame["member_id"]]
    assert not frame["phone"].dropna().isin(raw["phone"]).any() and not frame["name"].dropna().isin(raw["name"]).any()
    assert frame["reason"].str.len().gt(10).all()
    events = audit_events(state)
    exported = events[events["action"] == "export_recommendations"]
    detail = json.loads(exported.iloc[0]["detail"])
    assert detail["recommender"] == "v1" and detail["rows"] == len(frame) and detail["masked"] is True
    assert detail["lists_sha256"] == stored.files["lists.parquet"]["sha256"] and detail["campaign_id"] == "CMP-REC-1"
    link = campaign_link(state, "CMP-REC-1")
    assert (link.version, link.list_length, link.members) == (1, 3, len(arms))
    second = train_version(duck_warehouse.engine, state, "ana", "popular_segment", None, ListSettings(n=10))
    again, found = linked_export(state, second, 10, "CMP-REC-1")  # the campaign keeps v1 and its 3 items
    assert found == link and again.stored.version == 1 and again.n == 3
    assert export_members(duck_warehouse.engine, audience, ANA, "campaign_targeting", recommendations=again) == data
    with pytest.raises(CampaignLinkError, match="exported with the top 3 of recommender v1"):
        link_campaign(state, "CMP-REC-1", 2, 3, 10, "bo")
    with pytest.raises(RecommendStoreError, match="export 1 to 10"):
        RecommendationExport(state, second, 11)


def test_an_export_that_cannot_be_audited_does_not_happen(duck_warehouse: Warehouse, state) -> None:
    from analytics.recommend_store import export_recommendations

    stored = train_version(duck_warehouse.engine, state, "ana", "popular")

    def broken(actor, action, detail, rows=None):
        raise StateError("The audit log cannot be written.", "Fix it.")

    with pytest.raises(StateError, match="audit log"):
        export_recommendations(duck_warehouse.engine, _audience(duck_warehouse, ""), RecommendationExport(
            state, stored, 2), ANA, "test", broken)
    rows, detail = export_frame(duck_warehouse.engine, _audience(duck_warehouse, ""), RecommendationExport(
        state, stored, 2))
    assert detail["members_without_list"] == 0 and len(rows) == 2 * detail["members"]


# --- the recommender's A/B test ----------------------------------------------------------------------------------

def _campaign(warehouse: Warehouse) -> tuple[str, pd.Timestamp, pd.Timestamp]:
    """The latest campaign of the demo with both arms well filled and a year of history before it."""
    campaigns = warehouse.frame("campaigns")
    sizes = warehouse.frame("campaign_members").groupby(["campaign_id", "arm"]).size().unstack(fill_value=0)
    first = warehouse.frame("orders")["ordered_at"].min()
    ok = campaigns[campaigns["start_at"] > first + pd.Timedelta(days=365)].set_index("campaign_id").join(sizes)
    ok = ok[(ok["control"] >= 40) & (ok["treatment"] >= 200)].sort_values("start_at")
    return ok.index[-1], ok["start_at"].iloc[-1], ok["end_at"].iloc[-1]


def test_recommended_item_bought_per_arm_equals_pandas(warehouse: Warehouse, state) -> None:
    """A recommendation campaign made in the test: a version trained on the history before the campaign, linked to
    the campaign; per arm, members with a list and those who bought one of their stored top n in the window
    equal a pandas computation from the warehouse's tables and the version's files; the z-test as statsmodels."""
    campaign, start, end = _campaign(warehouse)
    stored = train_version(warehouse.engine, state, "ana", "hybrid", (start - timedelta(days=1)).date(),
                           ListSettings(n=10, exclude_bought=False))
    link = link_campaign(state, campaign, stored.version, 10, 0, "ana")
    result = recommendation_outcome(warehouse.engine, link, StoredLists(stored))

    cm = warehouse.frame("campaign_members")
    cm = cm[cm["campaign_id"] == campaign][["member_id", "arm"]]
    orders = warehouse.frame("orders")
    window = orders[(orders["status"] == "completed") & (orders["ordered_at"] >= start) & (orders["ordered_at"] <= end)]
    bought = window.merge(warehouse.frame("order_items"), on="order_id")[["member_id", "product_id"]].drop_duplicates()
    lists = _stored_frame(stored)
    lists = lists[lists["rank"] <= 10][["member_id", "product_id"]]
    hits = set(bought.merge(lists, on=["member_id", "product_id"])["member_id"])
    listed = cm[cm["member_id"].isin(set(lists["member_id"]))]
    for arm, got in (("treatment", result.treatment), ("control", result.control)):
        in_arm = listed[listed["arm"] == arm]
        assert got.members == len(in_arm), arm
        assert got.conversions == int(in_arm["member_id"].isin(hits).sum()), arm
        assert result.without_list[arm] == int((cm["arm"] == arm).sum()) - len(in_arm)
    assert result.treatment.conversions + result.control.conversions > 0  # the check above can fail
    _, p = proportions_ztest([result.treatment.conversions, result.control.conversions],
                             [result.treatment.members, result.control.members])
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert f"v{stored.version}" in result.verdict


def test_the_read_out_page_shows_the_outcome_or_says_there_is_none(duck_warehouse: Warehouse, state,
                                                                   monkeypatch) -> None:
    from tests.conftest import open_page
    from tests.figures import read_figure

    campaign, start, _ = _campaign(duck_warehouse)
    at = open_page(duck_warehouse.url, "pages/experiments.py", monkeypatch)
    at.selectbox(key="experiment_campaign").set_value(campaign).run()
    assert any(f"Campaign {campaign} is not a recommendation campaign" in i.value for i in at.info)
    stored = train_version(duck_warehouse.engine, state, "ana", "hybrid", (start - timedelta(days=1)).date(),
                           ListSettings(n=10, exclude_bought=False))
    link = link_campaign(state, campaign, stored.version, 10, 0, "ana")
    at.selectbox(key="experiment_campaign").set_value(campaign).run()
    assert not at.exception, [e.value for e in at.exception]
    result = recommendation_outcome(duck_warehouse.engine, link, StoredLists(stored))
    cards = {m.label: m.value for m in at.metric}
    assert read_figure(cards["Recommended item bought, treatment"]).close_to(result.treatment.rate)
    assert read_figure(cards["Recommended item bought, control"]).close_to(result.control.rate)
    assert read_figure(cards["Lift, recommended item"].removesuffix(" pp")).close_to(result.lift * 100)


# --- live lists for one member -----------------------------------------------------------------------------------

def test_recent_purchases_equal_pandas(warehouse: Warehouse) -> None:
    data = load_data(warehouse.engine)
    orders = warehouse.frame("orders")
    lines = orders[orders["status"] == "completed"].merge(warehouse.frame("order_items"), on="order_id")
    for member_id in ("M00000007", "M00000042", "M00001234"):
        mine = lines[lines["member_id"] == member_id]
        expected = (mine.groupby("product_id").agg(orders=("order_id", "nunique"), last=("ordered_at", "max"))
                    .assign(day=lambda f: f["last"].dt.date).reset_index()
                    .sort_values(["day", "product_id"], ascending=[False, True]).head(10))
        code = int(np.flatnonzero(data.members.ids == member_id)[0])
        got = recent_purchases(data, code, 10)
        assert got["product_id"].tolist() == expected["product_id"].tolist(), member_id
        assert got["orders"].tolist() == expected["orders"].tolist()
        assert got["last_bought"].tolist() == expected["day"].tolist()


def test_member_lookup_and_live_list(duck_warehouse: Warehouse) -> None:
    from analytics.recommenders import fit

    data = load_data(duck_warehouse.engine)
    assert find_members(data, " M00000007 ") == ["M00000007"]
    assert find_members(data, "M0000001", 5) == ["M00000010", "M00000011", "M00000012", "M00000013", "M00000014"]
    assert find_members(data, "nobody") == [] and find_members(data, "") == []
    maker = ListMaker(fit(data, "popular_segment"), data, ListSettings(n=4))
    assert member_list(maker, "nobody") is None
    rows = member_list(maker, "M00000007")
    assert len(rows) == 4 and rows["path"].iloc[0] in PATHS and rows["member_id"].eq("M00000007").all()


# --- a real shop ------------------------------------------------------------------------------------------------

def test_every_online_retail_customer_has_a_stored_list(tmp_path_factory, state) -> None:
    """The real Online Retail file imported: a stored version lists every customer (member coverage 100 %), and
    its reasons name the customers' own past purchases with their days."""
    import os

    from analytics.importers import import_file
    from analytics.storage.warehouse import open_warehouse
    from tests.conftest import DATASETS

    path = Path(os.environ.get("MEMBERLENS_DATASETS") or DATASETS) / "online_retail.csv.gz"
    if not path.exists():
        pytest.skip(f"{path.name} is not in {path.parent} (set MEMBERLENS_DATASETS to the shared datasets folder)")
    url = f"duckdb:///{tmp_path_factory.mktemp('retail') / 'retail.duckdb'}"
    import_file(url, "transactions", path)
    engine = open_warehouse(url)
    stored = train_version(engine, state, "ana")
    frame = _stored_frame(stored)
    from analytics.storage.contract import members
    from analytics.storage.db import read_frame

    ids = read_frame(engine, members.select().with_only_columns(members.c.member_id))["member_id"]
    engine.dispose()
    assert len(ids) > 4000 and set(frame["member_id"]) == set(ids)
    assert (frame.groupby("member_id").size() == 10).all()
    rows = StoredLists(stored).rows(ids.head(200).tolist())
    again = rows[rows["reason_kind"] == "buy_again"]
    assert len(again) > 50 and all(r.startswith("You bought this on") for r in again["reason"])


# --- command line ------------------------------------------------------------------------------------------------

def test_the_command_line(duck_warehouse: Warehouse, tmp_path: Path) -> None:
    """train, list, for, export (with the campaign key recorded), outcome and evaluate, as processes."""
    env = {"MEMBERLENS_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite", "MEMBERLENS_USER": "cron"}
    url = duck_warehouse.url
    trained = run("analytics", "recommend", "train", "--algorithm", "item_cosine", "--n", "5", "--url", url, env=env)
    assert trained.returncode == 0, trained.stderr
    summary = pd.read_csv(io.StringIO(trained.stdout))
    assert summary.loc[0, "version"] == 1 and summary.loc[0, "members"] == len(duck_warehouse.frame("members"))
    listed = run("analytics", "recommend", "list", "--url", url, env=env)
    assert listed.returncode == 0 and ",item_cosine," in listed.stdout and ",cron," in listed.stdout
    one = run("analytics", "recommend", "for", "--member", "M00000007", "--n", "3", "--url", url, env=env)
    rows = pd.read_csv(io.StringIO(one.stdout))
    assert one.returncode == 0 and rows["rank"].tolist() == [1, 2, 3] and rows["reason"].str.len().gt(0).all()
    spec = tmp_path / "audience.json"
    spec.write_text(json.dumps(_audience(duck_warehouse, "CMP0042").to_json()))
    exported = run("analytics", "recommend", "export", "--spec", str(spec), "--n", "2", "--url", url, env=env)
    assert exported.returncode == 0, exported.stderr
    frame = pd.read_csv(io.StringIO(exported.stdout))
    assert set(frame.columns) >= {"member_id", "arm", "rank", "product_id", "product", "reason"}
    assert "recorded for campaign CMP0042" in exported.stderr
    assert campaign_link(open_state(env["MEMBERLENS_STATE_URL"]), "CMP0042").list_length == 2
    outcome = run("analytics", "recommend", "outcome", "--campaign", "CMP0042", "--url", url, env=env)
    assert outcome.returncode == 0 and "verdict:" in outcome.stderr, outcome.stderr
    assert pd.read_csv(io.StringIO(outcome.stdout))["metric"].tolist() == ["members_with_list",
                                                                           "recommended_item_bought"]
    missing = run("analytics", "recommend", "outcome", "--campaign", "CMP9999", "--url", url, env=env)
    assert missing.returncode == 2 and "no recommendations were recorded for campaign CMP9999" in missing.stderr
    evaluated = run("analytics", "recommend", "evaluate", "--algorithm", "popular,item_cosine", "--k", "5", "--url",
                    url, env=env)
    assert evaluated.returncode == 0 and "verdict:" in evaluated.stderr
    table = pd.read_csv(io.StringIO(evaluated.stdout))
    assert table["algorithm"].tolist() == ["popular", "item_cosine"] and table["member_coverage"].eq(1.0).all()
    bad = run("analytics", "recommend", "export", "--url", url, env=env)
    assert bad.returncode == 2 and "export needs --spec" in bad.stderr
    assert read_lists(load_recommender(open_state(env["MEMBERLENS_STATE_URL"]))).num_rows == 5 * len(
        duck_warehouse.frame("members"))
