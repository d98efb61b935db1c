"""Recommenders: similarities against dense numpy, the SQL pull against pandas on both warehouses, coverage of every
member (cold start included), determinism, exclusion rules, the diversity cap, reasons that refer to the member's
own purchases, stored models, the out-of-time evaluation, and a real shop's data (Online Retail)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.recommend_data import (
    Catalogue,
    MemberTable,
    Purchases,
    RecommendData,
    RecommendDataError,
    day_number,
    load_data,
)
from analytics.recommend_eval import EvaluationError, evaluate, evaluate_data, pair_hit_rates
from analytics.recommend_lists import (
    PATHS,
    REASON_KINDS,
    UNKNOWN_CATEGORY,
    ListMaker,
    ListSettings,
    ListSettingsError,
    default_rebuy_categories,
    recommend,
)
from analytics.recommend_models import (
    HYBRID_PARTS,
    ItemItemSettings,
    RecommenderError,
    model_from_bytes,
    recency_weights,
    top_items,
)
from analytics.recommend_reasons import explain
from analytics.recommenders import (
    ALGORITHMS,
    fit,
    fit_factors,
    fit_hybrid,
    fit_item_item,
    hybrid_pair_parts,
    hybrid_scores,
)
from tests.conftest import DATASETS, Warehouse

ALL = tuple(ALGORITHMS)


def datasets() -> Path:
    """The shared datasets: ``MEMBERLENS_DATASETS`` if set (a worktree has no ``../shared``), else the project's."""
    return Path(os.environ.get("MEMBERLENS_DATASETS") or DATASETS)


# --- a hand-made shop -------------------------------------------------------------------------------------

def small_data(purchases: list[tuple[int, int, int]], n_members: int, n_items: int, *, end: date = date(2026, 1, 31),
               categories: list[int] | None = None) -> RecommendData:
    """Data from (member, item, days before ``end``) purchases; one order each."""
    frame = pd.DataFrame(purchases, columns=["m", "i", "ago"]).groupby(["m", "i"], as_index=False).agg(
        n=("ago", "size"), ago=("ago", "min")).sort_values(["m", "i"])
    indptr = np.zeros(n_members + 1, dtype=np.int64)
    np.cumsum(np.bincount(frame["m"], minlength=n_members), out=indptr[1:])
    last = (day_number(end) - frame["ago"]).to_numpy(np.int32)
    history = Purchases(indptr, frame["i"].to_numpy(np.int32), frame["n"].to_numpy(np.int32), last,
                        np.where(frame["ago"] >= 30, last, -1).astype(np.int32), (n_members, n_items))
    cats = np.asarray(categories if categories is not None else [i % 2 for i in range(n_items)], dtype=np.int32)
    products = Catalogue(np.array([f"P{i}" for i in range(n_items)], dtype=object),
                         np.array([f"Product {i}" for i in range(n_items)], dtype=object), cats, ("Home", "Snacks"),
                         cats.copy(), ("Kitchen", "Nuts"), np.full(n_items, -1, np.int32), ())
    members = MemberTable(np.array([f"M{m}" for m in range(n_members)], dtype=object),
                          np.zeros((n_members, 3), dtype=np.int32), (("basic",), ("East",), ("web",)))
    return RecommendData(members, products, history, None, end, None)


def random_purchases(seed: int, n_members: int, n_items: int, per_member: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    return [(m, int(i), int(rng.integers(0, 200))) for m in range(n_members)
            for i in rng.choice(n_items, size=int(rng.integers(1, per_member + 1)), replace=False)]


@pytest.mark.parametrize("similarity", ["cosine", "lift"])
def test_item_item_similarities_equal_a_dense_computation(similarity: str) -> None:
    data = small_data(random_purchases(3, 60, 12, 5), 60, 12)
    model = fit_item_item(data, ItemItemSettings(similarity=similarity, neighbours=11, min_common=1))
    x = np.zeros((60, 12))
    for m in range(60):
        x[m, data.history.row(m)] = 1
    common = x.T @ x
    n = np.diag(common).copy()
    np.fill_diagonal(common, 0)
    expected = common / np.sqrt(np.outer(n, n))
    if similarity == "lift":
        buyers = (x.sum(axis=1) > 0).sum()
        with np.errstate(divide="ignore"):
            expected *= np.maximum(np.log2(np.where(common > 0, common * buyers / np.outer(n, n), 1)), 0)
    np.testing.assert_allclose(model.similarities().toarray(), expected, rtol=1e-5, atol=1e-7)


def test_neighbours_keep_the_top_k_with_ties_to_the_lower_code() -> None:
    # item 0 is bought with items 1, 2 and 3 by two members each: equal similarities
    purchases = [(m, 0, 1) for m in range(6)] + [(0, 1, 1), (1, 1, 1), (2, 2, 1), (3, 2, 1), (4, 3, 1), (5, 3, 1),
                                                  (6, 4, 1)]
    data = small_data(purchases, 7, 5)
    model = fit_item_item(data, ItemItemSettings(neighbours=2, min_common=2))
    sim = model.similarities().toarray()
    assert np.flatnonzero(sim[0]).tolist() == [1, 2]  # 3 ties with them and loses on its code
    assert np.count_nonzero(sim[:, 4]) == 0  # bought by one member with nothing else: no neighbour
    np.testing.assert_allclose(sim[0, 1], 2 / np.sqrt(6 * 2))


def test_top_items_breaks_ties_by_column_whatever_the_batch() -> None:
    scores = np.array([[1, 3, 3, 0, 3], [5, 4, 3, 2, 1]], dtype=np.float32)
    assert top_items(scores, 2).tolist() == [[1, 2], [0, 1]]
    assert top_items(scores[:1], 3).tolist() == [[1, 2, 4]]
    rng = np.random.default_rng(1)
    big = rng.integers(0, 4, size=(50, 40)).astype(np.float32)
    together = top_items(big, 7)
    alone = np.vstack([top_items(big[r:r + 1], 7) for r in range(50)])
    reference = np.vstack([np.lexsort((np.arange(40), -row))[:7] for row in big])
    assert (together == alone).all() and (together == reference).all()


# --- the warehouse pull -----------------------------------------------------------------------------------

def reference_pairs(warehouse: Warehouse, history_end: date, test_days: int) -> pd.DataFrame:
    """(member_id, product_id) -> orders before / in the test window, last and earlier day, from plain frames."""
    orders = warehouse.frame("orders")
    lines = warehouse.frame("order_items")
    cutoff = pd.Timestamp(history_end + timedelta(days=1))
    end = cutoff + pd.Timedelta(days=test_days)
    members = warehouse.frame("members")
    known = set(members.loc[members["registered_at"] < end, "member_id"])
    done = orders[(orders["status"] == "completed") & orders["member_id"].isin(known) & (orders["ordered_at"] < end)]
    rows = done.merge(lines[["order_id", "product_id"]], on="order_id").drop_duplicates(["order_id", "product_id"])
    rows["day"] = (rows["ordered_at"].dt.normalize() - pd.Timestamp("1970-01-01")).dt.days
    before = rows[rows["ordered_at"] < cutoff]
    earlier = before[before["ordered_at"] < cutoff - pd.Timedelta(days=30)]
    keys = ["member_id", "product_id"]
    out = before.groupby(keys).agg(n_history=("order_id", "size"), last_day=("day", "max"))
    out = out.join(earlier.groupby(keys).agg(earlier_day=("day", "max")), how="left")
    out = out.join(rows[rows["ordered_at"] >= cutoff].groupby(keys).agg(n_test=("order_id", "size")), how="outer")
    return out.fillna({"n_history": 0, "n_test": 0, "last_day": -1, "earlier_day": -1}).astype(int).sort_index()


def pulled_pairs(data: RecommendData) -> pd.DataFrame:
    frames = []
    for name, part in (("history", data.history), ("test", data.test)):
        rows = np.repeat(np.arange(part.shape[0]), np.diff(part.indptr))
        frame = pd.DataFrame({"member_id": data.members.ids[rows], "product_id": data.products.ids[part.indices]})
        if name == "history":
            frame = frame.assign(n_history=part.orders, last_day=part.last_day, earlier_day=part.earlier_day)
        else:
            frame = frame.assign(n_test=part.orders)
        frames.append(frame.set_index(["member_id", "product_id"]))
    out = frames[0].join(frames[1], how="outer")
    return out.fillna({"n_history": 0, "n_test": 0, "last_day": -1, "earlier_day": -1}).astype(int).sort_index()


def test_pairs_from_sql_equal_pandas(warehouse: Warehouse) -> None:
    history_end = date(2026, 9, 30)
    data = load_data(warehouse.engine, history_end, test_days=45)
    expected = reference_pairs(warehouse, history_end, 45)
    pd.testing.assert_frame_equal(pulled_pairs(data)[expected.columns], expected, check_names=False)
    members = warehouse.frame("members")
    in_scope = members[members["registered_at"] < pd.Timestamp(history_end + timedelta(days=46))]
    assert sorted(data.members.ids) == sorted(in_scope["member_id"])
    tiers = pd.Series([data.members.segment_values(m)["tier"] for m in range(data.members.size)],
                      index=data.members.ids)
    assert (tiers.sort_index() == in_scope.set_index("member_id")["tier"].sort_index()).all()
    products = warehouse.frame("products").set_index("product_id")
    names = [data.products.categories[c] for c in data.products.category]
    assert names == products.loc[list(data.products.ids), "category"].tolist()
    assert data.history_end == history_end and data.test_end == history_end + timedelta(days=45)


def test_validation_split_equals_a_fresh_pull(duck_warehouse: Warehouse) -> None:
    full = load_data(duck_warehouse.engine, date(2026, 9, 30), test_days=10)
    inner = full.validation_split()
    fresh = load_data(duck_warehouse.engine, date(2026, 8, 31), test_days=30)
    fresh_rows = {m: i for i, m in enumerate(fresh.members.ids)}
    for m, member in enumerate(full.members.ids[:400]):
        f = fresh_rows.get(member)
        history = inner.history.row(m)
        assert history.tolist() == (fresh.history.row(f).tolist() if f is not None else [])
        assert inner.test.row(m).tolist() == (fresh.test.row(f).tolist() if f is not None else [])
        if f is not None:
            days = inner.history.last_day[inner.history.indptr[m]:inner.history.indptr[m + 1]]
            assert days.tolist() == fresh.history.last_day[fresh.history.indptr[f]:fresh.history.indptr[f + 1]].tolist()


def test_bad_pull_settings_are_refused(duck_warehouse: Warehouse) -> None:
    with pytest.raises(RecommendDataError, match="test window"):
        load_data(duck_warehouse.engine, test_days=-1)
    with pytest.raises(RecommendDataError, match="member-product pairs"):
        load_data(duck_warehouse.engine, max_pairs=10)


# --- lists on the tiny demo -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(duck_warehouse: Warehouse) -> RecommendData:
    return load_data(duck_warehouse.engine)


@pytest.fixture(scope="module")
def models(demo: RecommendData) -> dict:
    return {name: fit(demo, name) for name in ALL}


def test_every_member_gets_a_full_list(demo: RecommendData, models: dict, duck_warehouse: Warehouse) -> None:
    orders = duck_warehouse.frame("orders")
    buyers = set(orders.loc[orders["status"] == "completed", "member_id"].dropna())
    never = [m for m, member in enumerate(demo.members.ids) if member not in buyers]
    assert len(never) > 50  # the tiny demo has members who never completed an order: cold start
    for name, model in models.items():
        recs = recommend(model, demo)
        assert (recs.items >= 0).all(), name  # 100 % member coverage, every list full
        assert recs.items.shape == (demo.members.size, 10)
        assert set(recs.path[never].tolist()) <= {PATHS.index("segment popular"), PATHS.index("popular overall")}
        assert (np.sort(recs.items, axis=1)[:, 1:] != np.sort(recs.items, axis=1)[:, :-1]).all(), name  # no repeats


def test_lists_are_deterministic(demo: RecommendData, models: dict) -> None:
    for name in ALL:
        again = fit(demo, name)
        first, second = recommend(models[name], demo), recommend(again, demo)
        for field in ("items", "scores", "kind", "because_item", "path"):
            assert np.array_equal(getattr(first, field), getattr(second, field)), (name, field)
        stored = model_from_bytes(models[name].to_bytes())
        assert np.array_equal(recommend(stored, demo).items, first.items), name
        some = [3, 777, 1500]
        assert np.array_equal(ListMaker(models[name], demo).recommend(some).items, first.items[some]), name


def test_durable_purchases_are_not_recommended_again(demo: RecommendData, models: dict) -> None:
    history = demo.history.matrix("binary").tolil()
    categories = np.asarray(demo.products.categories)
    rebuy = set(default_rebuy_categories(demo.products.categories))
    assert {"Groceries", "Mother & Baby", "Pets", "Beauty"} <= rebuy and "Electronics" not in rebuy
    for name in ("hybrid", "item_cosine", "als"):
        recs = recommend(models[name], demo)
        bought = np.array([[history[m, i] > 0 for i in row] for m, row in enumerate(recs.items)])
        category = categories[demo.products.category[recs.items]]
        assert not (bought & ~np.isin(category, list(rebuy))).any(), name
        if name == "hybrid":
            assert (bought & np.isin(category, list(rebuy))).any()  # consumables do come back
        strict = recommend(models[name], demo, ListSettings(rebuy_categories=()))
        assert not np.array([[history[m, i] > 0 for i in row] for m, row in enumerate(strict.items)]).any()


def test_excluded_categories_never_appear(demo: RecommendData, models: dict) -> None:
    settings = ListSettings(exclude_categories=("Electronics", "Home"))
    for name in ALL:
        recs = recommend(models[name], demo, settings)
        names = np.asarray(demo.products.categories)[demo.products.category[recs.items]]
        assert not np.isin(names, ["Electronics", "Home"]).any(), name
        assert (recs.items >= 0).all()
    with pytest.raises(ListSettingsError, match="Unknown category: Toys"):
        recommend(models["popular"], demo, ListSettings(exclude_categories=("Toys",)))


def test_diversity_cap(demo: RecommendData, models: dict) -> None:
    for name in ("hybrid", "item_cosine", "popular_segment"):
        recs = recommend(models[name], demo, ListSettings(n=10, max_per_category=2))
        assert (recs.items >= 0).all(), name  # eight categories: ten items fit under the cap
        per_list = [np.bincount(demo.products.category[row], minlength=8).max() for row in recs.items]
        assert max(per_list) <= 2, name
        uncapped = recommend(models[name], demo)
        assert max(np.bincount(demo.products.category[row], minlength=8).max() for row in uncapped.items) > 2


def test_reasons_refer_to_what_the_member_bought(demo: RecommendData, models: dict) -> None:
    history = demo.history.matrix("binary").tocsr()
    days = demo.history.matrix("last_day").tocsr()
    for name in ("hybrid", "item_cosine", "item_lift", "als"):
        recs = recommend(models[name], demo)
        rows, cols = np.nonzero(recs.because_item >= 0)
        assert rows.size > (50 if name == "hybrid" else 1000), name  # the hybrid mostly names a category here
        items = recs.because_item[rows, cols]
        assert (np.asarray(history[rows, items]).ravel() > 0).all(), name
        assert (np.asarray(days[rows, items]).ravel() == recs.because_day[rows, cols]).all(), name
        kinds = np.asarray(REASON_KINDS)[recs.kind]
        assert set(np.unique(kinds[recs.source == 0])) <= set(REASON_KINDS) - {"segment"}
        assert (kinds[recs.source == 1] == "segment").all()
        assert (recs.items[kinds == "buy_again"] == recs.because_item[kinds == "buy_again"]).all()
    member = int(rows[0])
    frame = explain(recommend(models["item_cosine"], demo, members=[member]), models["item_cosine"], demo)
    with_reason = frame[frame["kind"] == "bought_with"].iloc[0]
    assert with_reason["because_product"] in with_reason["reason"]
    assert f"{with_reason['because_date'].day} {with_reason['because_date']:%b %Y}" in with_reason["reason"]


def test_segment_reasons_name_the_members_segment(demo: RecommendData, models: dict) -> None:
    recs = recommend(models["popular_segment"], demo, members=np.arange(300))
    frame = explain(recs, models["popular_segment"], demo)
    segment = frame[frame["kind"] == "segment"]
    assert len(segment) > 100  # the tiny demo's tiers have enough buyers; finer segments mostly do not
    for member_id, reason in zip(segment["member_id"], segment["reason"], strict=True):
        values = demo.members.segment_values(int(np.flatnonzero(demo.members.ids == member_id)[0]))
        assert reason.startswith(f"Popular with {values['tier']} members")
        assert values["region"] in reason or " in " not in reason
    assert (frame.loc[frame["kind"] == "overall", "reason"] == "One of the shop's best sellers lately.").all()


def test_hybrid_scores_equal_its_parts(demo: RecommendData, models: dict) -> None:
    model = models["hybrid"].personal
    assert model.weights_.sum() == pytest.approx(1.0) and model.validation_pairs_ > 100
    h = demo.history
    weights = recency_weights(h.indptr, h.indices, h.last_day, day_number(demo.history_end), 180.0, h.shape[1])
    rows = np.flatnonzero(np.diff(h.indptr) > 0)[:60]
    dense = hybrid_scores(model, weights[rows])
    local = np.repeat(np.arange(rows.size), 40)
    items = np.tile(np.arange(0, demo.products.size, demo.products.size // 40)[:40], rows.size)
    parts, _ = hybrid_pair_parts(model, weights[rows], local, items)
    np.testing.assert_allclose(dense[local, items], parts @ model.weights_, rtol=1e-4, atol=1e-8)
    for k in range(len(HYBRID_PARTS)):  # each part is a distribution over products
        assert parts[:, k].max() <= 1.0


def test_hybrid_learns_repeat_buying() -> None:
    # members buy the same products again and again: the repeat part must win
    purchases = [(m, (m + j) % 20, ago) for m in range(200) for j in range(3) for ago in (5, 40, 80, 120)]
    data = small_data(purchases, 200, 20)
    model = fit_hybrid(data)
    assert HYBRID_PARTS[int(np.argmax(model.weights_))] == "repeat"


def test_als_is_the_same_on_one_or_two_threads(demo: RecommendData) -> None:
    one, two = fit_factors(demo, threads=1), fit_factors(demo, threads=2)
    assert np.array_equal(one.item_factors_, two.item_factors_)


def test_bad_settings_are_refused(demo: RecommendData) -> None:
    with pytest.raises(ListSettingsError):
        ListSettings(n=0)
    with pytest.raises(ListSettingsError):
        ListSettings(n=5, max_per_category=6)
    with pytest.raises(RecommenderError, match="unknown algorithm"):
        fit(demo, "deep_learning")
    with pytest.raises(RecommenderError):
        ItemItemSettings(neighbours=0)
    with pytest.raises(RecommenderError, match="not a stored"):
        model_from_bytes(b"not a model")


# --- evaluation -------------------------------------------------------------------------------------------

def test_evaluation_on_both_warehouses(warehouse: Warehouse) -> None:
    result = evaluate(warehouse.engine, date(2026, 11, 15), horizon_days=30, k=10,
                      algorithms=("popular", "popular_segment", "item_cosine", "hybrid"))
    table = result.table.set_index("algorithm")
    assert list(table.index) == ["popular", "popular_segment", "item_cosine", "hybrid"]
    assert (table["member_coverage"] == 1.0).all()
    assert table["recall"].between(0, 1).all() and table["precision"].between(0, 1).all()
    assert "recall@10" in result.sentence
    assert result.history_end == date(2026, 10, 16) and result.members_with_purchases > 100
    assert set(result.by_path["path"]) <= set(PATHS)
    # the same numbers as the metrics module gives on lists made by hand
    data = load_data(warehouse.engine, date(2026, 10, 16), test_days=30)
    recs = recommend(fit(data, "popular"), data)
    hits = [len(set(row) & set(data.test.row(m))) for m, row in enumerate(recs.items)]
    bought = np.diff(data.test.indptr)
    recalls = [h / b for h, b in zip(hits, bought, strict=True) if b]
    assert table.loc["popular", "recall"] == pytest.approx(np.mean(recalls))


def test_evaluation_input_is_bounded(duck_warehouse: Warehouse, demo: RecommendData) -> None:
    with pytest.raises(EvaluationError, match="test window"):
        evaluate(duck_warehouse.engine, horizon_days=0)
    with pytest.raises(EvaluationError, match="no test window"):
        evaluate_data(demo)
    data = replace(demo, test=demo.history, test_end=demo.history_end)
    with pytest.raises(EvaluationError, match="Choose algorithms"):
        evaluate_data(data, algorithms=("magic",))


def test_pair_hit_rates_by_hand() -> None:
    # members 0-2 bought item 0; the popular list holds items 0..; item 1 is recommended to those without it
    data = small_data([(0, 0, 1), (1, 0, 1), (2, 0, 1), (2, 1, 1), (3, 2, 1)], 5, 6)
    recs = recommend(fit(data, "popular"), data, ListSettings(n=2, rebuy_categories=()))
    frame = pair_hit_rates(recs, data, [("P0", "P1")])
    row = frame.iloc[0]
    assert row["buyers"] == 2  # members 0 and 1 (member 2 already has P1)
    has = [(1 in list(r)) for r in recs.items]
    assert row["recommended"] == sum(has[m] for m in (0, 1))
    assert row["base_rate"] == pytest.approx(np.mean([has[m] for m in (0, 1, 3, 4)]))


# --- a real shop ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def retail_url(tmp_path_factory) -> str:
    from analytics.importers import import_file

    path = datasets() / "online_retail.csv.gz"
    if not path.exists():
        pytest.skip(f"{path.name} is not in {path.parent} (the shared datasets folder is absent)")
    url = f"duckdb:///{tmp_path_factory.mktemp('recommend') / 'retail.duckdb'}"
    import_file(url, "transactions", path)
    return url


def test_online_retail_hybrid_beats_popularity(retail_url: str) -> None:
    from analytics.storage.warehouse import open_warehouse

    engine = open_warehouse(retail_url)
    result = evaluate(engine, horizon_days=30, k=10, algorithms=("popular", "popular_segment", "hybrid"))
    engine.dispose()
    table = result.table.set_index("algorithm")
    # products have no category here: they count as one unknown category, bought again by default
    assert table.loc["hybrid", "recall"] > 2 * table[["recall"]].loc[["popular", "popular_segment"]].max().item()
    assert result.sentence.startswith("Hybrid") and "beats the popularity baseline" in result.sentence
    assert table["member_coverage"].eq(1.0).all()
    assert UNKNOWN_CATEGORY in default_rebuy_categories(())
