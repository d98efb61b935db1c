"""Recommendation metrics: hand-computed values on a small fixture (with a repeated item, an empty truth set,
an empty list, an unknown category, k beyond the list length), tie rules, and a plain-Python reference on
random lists."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.recommend_metrics import (
    METRICS,
    MetricError,
    RankedLists,
    head_items,
    metric_values,
    popularity_percentiles,
    top_k,
)


def csr(rows: list[set[int]], n_items: int) -> sp.csr_matrix:
    matrix = sp.lil_matrix((len(rows), n_items))
    for r, items in enumerate(rows):
        for i in items:
            matrix[r, i] = 1
    return matrix.tocsr()


# 4 members, 6 items; categories 0, 0, 1, 1, 2 and unknown for item 5.
LISTS = np.array([[0, 2, 1], [1, 1, 0], [5, -1, -1], [-1, -1, -1]])
TRUTH = csr([{2, 3}, {1}, set(), {0}], 6)  # member 2 bought nothing in the test window
HISTORY = csr([{0}, set(), {5}, {1}], 6)
CATEGORY = np.array([0, 0, 1, 1, 2, -1])
BUYERS = np.array([8, 4, 2, 1, 0, 16])


@pytest.fixture
def lists() -> RankedLists:
    return RankedLists(LISTS, 6, truth=TRUTH, history=HISTORY, item_category=CATEGORY, item_buyers=BUYERS,
                       history_members=16)


def test_top_k_pads_and_drops_repeats(lists) -> None:
    assert top_k(lists, 3).tolist() == [[0, 2, 1], [1, -1, 0], [5, -1, -1], [-1, -1, -1]]
    assert top_k(lists, 5).tolist()[1] == [1, -1, 0, -1, -1]
    assert top_k(lists, 1).tolist() == [[0], [1], [5], [-1]]


def test_ranking_metrics_by_hand(lists) -> None:
    values = metric_values(lists, 3)
    # hits: member 0 at position 2 (of truth {2, 3}), member 1 at position 1 (of {1}), member 3 none; member 2
    # has an empty truth set and is left out of these averages
    assert values["precision"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert values["recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert values["hit_rate"] == pytest.approx(2 / 3)
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert values["ndcg"] == pytest.approx((ndcg0 + 1 + 0) / 3)
    assert values["map"] == pytest.approx(((1 / 2) / 2 + 1 + 0) / 3)


def test_beyond_list_metrics_by_hand(lists) -> None:
    values = metric_values(lists, 3)
    assert values["catalogue_coverage"] == pytest.approx(4 / 6)  # items 0, 1, 2, 5
    assert values["member_coverage"] == pytest.approx(3 / 4)  # member 3's list is empty
    # member 0: categories 0, 1, 0 -> 1 same pair of 3 -> 2/3; member 1: 0, 0 -> 0; member 2: unknown only
    assert values["diversity"] == pytest.approx((2 / 3 + 0) / 2)
    # unseen: member 0 had bought item 0 (2 of 3 new), member 1 nothing (2 of 2), member 2 item 5 (0 of 1)
    assert values["novelty"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # -log2(buyers / 16): item 0 -> 1, 1 -> 2, 2 -> 3, 5 -> 0
    assert values["self_information"] == pytest.approx(((1 + 3 + 2) / 3 + (2 + 1) / 2 + 0) / 3)
    # head = ceil(0.6) = 1 item, item 5
    assert values["head_share"] == pytest.approx((0 + 0 + 1) / 3)
    # mid-rank percentiles: item 0 -> .8, 1 -> .6, 2 -> .4, 5 -> 1
    assert values["popularity_percentile"] == pytest.approx(((0.8 + 0.4 + 0.6) / 3 + 0.7 + 1.0) / 3)


def test_k_beyond_the_list_and_k_one(lists) -> None:
    five = metric_values(lists, 5, ["precision", "recall", "ndcg"])
    assert five["precision"] == pytest.approx((1 / 5 + 1 / 5 + 0) / 3)  # divided by k, not by the list length
    assert five["recall"] == pytest.approx(0.5)
    one = metric_values(lists, 1)
    assert one["precision"] == pytest.approx(1 / 3)
    assert one["ndcg"] == pytest.approx(1 / 3)  # member 0: ideal list of 1 hit, none found
    assert one["catalogue_coverage"] == pytest.approx(3 / 6)


def test_average_precision_by_hand() -> None:
    lists = RankedLists(np.array([[0, 9, 1, 8]]), 10, truth=csr([{0, 1, 2}], 10))
    assert metric_values(lists, 4, ["map"])["map"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert metric_values(lists, 2, ["map"])["map"] == pytest.approx((1 / 1) / 2)


def test_empty_truth_everywhere_gives_nan() -> None:
    lists = RankedLists(np.array([[0, 1]]), 3, truth=csr([set()], 3))
    assert all(math.isnan(v) for v in metric_values(lists, 2, ["precision", "recall", "ndcg", "map"]).values())


def test_ties_in_popularity() -> None:
    assert head_items(np.array([3, 3, 1, 0])).tolist() == [True, False, False, False]  # ceil(.4) = 1: lower code
    assert popularity_percentiles(np.array([2, 2, 0])).tolist() == [0.75, 0.75, 0.0]
    assert popularity_percentiles(np.array([5])).tolist() == [0.5]


def test_bad_input_is_refused() -> None:
    with pytest.raises(MetricError, match="k must be"):
        metric_values(RankedLists(LISTS, 6, truth=TRUTH), 0)
    with pytest.raises(MetricError, match="item codes"):
        RankedLists(np.array([[7]]), 6)
    with pytest.raises(MetricError, match="truth must be"):
        RankedLists(LISTS, 6, truth=csr([{1}], 6))
    with pytest.raises(MetricError, match="needs"):
        metric_values(RankedLists(LISTS, 6), 3, ["recall"])
    with pytest.raises(MetricError, match="unknown measure"):
        metric_values(RankedLists(LISTS, 6, truth=TRUTH), 3, ["accuracy"])


def test_every_metric_has_label_and_help() -> None:
    assert all(m.label and len(m.help) > 40 for m in METRICS.values())


# --- a plain-Python reference, one member at a time ------------------------------------------------------

def reference(items, truth, history, category, k):
    """Per-member values written from the definitions, with loops."""
    out = {name: [] for name in ("precision", "recall", "ndcg", "map", "hit_rate", "diversity", "novelty")}
    for row, bought, seen in zip(items, truth, history, strict=True):
        top = []
        for item in list(row)[:k]:
            if item >= 0 and item not in top:
                top.append(item)
        ranked = [item if item >= 0 and item not in list(row)[:j] else -1 for j, item in enumerate(list(row)[:k])]
        if bought:
            rel = [1 if item in bought else 0 for item in ranked]
            hits = sum(rel)
            out["precision"].append(hits / k)
            out["recall"].append(hits / len(bought))
            out["hit_rate"].append(float(hits > 0))
            dcg = sum(r / math.log2(j + 2) for j, r in enumerate(rel))
            idcg = sum(1 / math.log2(j + 2) for j in range(min(len(bought), k)))
            out["ndcg"].append(dcg / idcg)
            ap = sum(sum(rel[: j + 1]) / (j + 1) for j, r in enumerate(rel) if r)
            out["map"].append(ap / min(len(bought), k))
        cats = [category[i] for i in top if category[i] >= 0]
        if len(cats) >= 2:
            pairs = [(a, b) for x, a in enumerate(cats) for b in cats[x + 1:]]
            out["diversity"].append(sum(a != b for a, b in pairs) / len(pairs))
        if top:
            out["novelty"].append(sum(i not in seen for i in top) / len(top))
    return {name: (sum(v) / len(v) if v else math.nan) for name, v in out.items()}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_vectorised_metrics_equal_the_loop_reference(data) -> None:
    n_items = data.draw(st.integers(1, 8))
    members = data.draw(st.integers(1, 6))
    width = data.draw(st.integers(1, 6))
    k = data.draw(st.integers(1, 8))
    items = np.array(data.draw(st.lists(st.lists(st.integers(-1, n_items - 1), min_size=width, max_size=width),
                                        min_size=members, max_size=members)))
    sets = st.lists(st.sets(st.integers(0, n_items - 1)), min_size=members, max_size=members)
    truth, history = data.draw(sets), data.draw(sets)
    category = np.array(data.draw(st.lists(st.integers(-1, 2), min_size=n_items, max_size=n_items)))
    lists = RankedLists(items, n_items, truth=csr(truth, n_items), history=csr(history, n_items),
                        item_category=category)
    ours = metric_values(lists, k, list(reference(items, truth, history, category, k)))
    expected = reference(items, truth, history, category, k)
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(ours[name]), name
        else:
            assert ours[name] == pytest.approx(value), name
