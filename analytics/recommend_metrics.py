"""Quality measures of recommendation lists, each defined once in :data:`METRICS` (label, help text, function).

The measures compare ranked lists with what members bought afterwards (the *truth*, from the test window of
an out-of-time split) and with what they had bought before (their *history*). Everything operates on arrays:
the lists are one ``(members, L)`` integer array of item codes in rank order, ``-1`` marking an empty slot;
truth and history are ``members x items`` CSR matrices (any nonzero entry counts). No member is looped over,
so 50,000+ members take milliseconds.

Definitions (the help texts below say the same in the app):

* **Top k.** Each measure reads the first ``k`` positions of every list. A list shorter than ``k`` (or padded
  with ``-1``) simply has fewer items there; ``k`` larger than the array width reads the whole list.
* **Ties.** The metrics never see scores: a list's order is the recommender's, which breaks score ties by item
  code (see :mod:`analytics.recommenders`). An item repeated in one list counts once, at its first position.
* **Relevance** is binary: an item is relevant to a member when it is in their truth set.
* **precision@k** = relevant items in the top k / k. The divisor is k even when the list is shorter, so a
  short list is not rewarded for saying less.
* **recall@k** = relevant items in the top k / size of the member's truth set.
* **hit rate@k** = 1 when at least one relevant item is in the top k, else 0.
* **NDCG@k** = DCG / IDCG with DCG = sum over positions j = 1..k of rel_j / log2(j + 1) and IDCG the DCG of a
  perfect list, which has min(|truth|, k) relevant items on top.
* **MAP@k** = mean over members of AP@k = (sum over j = 1..k of rel_j * precision@j) / min(|truth|, k).
* Members with an **empty truth set** (bought nothing in the test window) are left out of these five averages
  (their per-member value is NaN); with no member left the average is NaN.
* **catalogue coverage@k** = distinct items in all top-k lists / items in the catalogue.
* **member coverage@k** = share of all members (rows) whose top k holds at least one item.
* **diversity@k** (intra-list, by category) = among the unordered pairs of items of a member's top k whose
  category is known, the share whose two categories differ: 1 - sum_c C(n_c, 2) / C(n, 2) for n such items,
  n_c of them in category c. 0 = one category, 1 = all different. Undefined (left out) below two such items.
* **novelty@k** (unseen share) = share of a member's top-k items that are not in their history. Members with
  an empty top k are left out.
* **self-information@k** = mean over a member's top k of -log2(p_i), p_i = buyers of item i in the history /
  members with any history (an item nobody bought counts as bought by one member, so p_i > 0). Higher =
  less-known items. Averaged over members with a non-empty top k.
* **head share@k** (popularity bias) = share of a member's top k that belongs to the head: the ceil(10 %) of
  catalogue items with the most buyers (ties in buyers go to the lower item code).
* **popularity percentile@k** = mean over the top k of each item's mid-rank percentile of buyers across the
  catalogue: (items with fewer buyers + (items with as many buyers - 1) / 2) / (items - 1), 0 = least bought,
  1 = most bought.

Member-level measures are averaged with equal weight per member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from analytics.errors import InputError
from analytics.i18n import N_

#: The largest k a metric accepts (bounded user input).
MAX_K = 1_000
#: The head of the catalogue for head share: this share of the items, rounded up.
HEAD_SHARE = 0.10


class MetricError(InputError):
    """Inputs a metric cannot use (wrong shapes, k out of range, a missing truth set)."""


@dataclass(frozen=True)
class RankedLists:
    """Recommendation lists and what they are measured against.

    ``items``: ``(members, L)`` item codes in rank order, ``-1`` = empty slot. ``truth`` and ``history``:
    ``members x n_items`` sparse matrices, nonzero = bought (in the test window / before it). ``item_category``:
    category code per item, ``-1`` = unknown. ``item_buyers``: members who bought each item in the history,
    and ``history_members`` the members with any history (both derived from ``history`` when not given).
    Measures that need a missing piece raise :class:`MetricError`.
    """

    items: np.ndarray
    n_items: int
    truth: sp.csr_matrix | None = None
    history: sp.csr_matrix | None = None
    item_category: np.ndarray | None = None
    item_buyers: np.ndarray | None = None
    history_members: int | None = None

    def __post_init__(self) -> None:
        items = np.asarray(self.items)
        if items.ndim != 2:
            raise MetricError(f"lists must be a 2-D array (members x positions), got {items.ndim} dimension(s)")
        if items.size and (items.min() < -1 or items.max() >= self.n_items):
            raise MetricError(f"item codes must lie in 0..{self.n_items - 1} (or -1 for an empty slot)")
        object.__setattr__(self, "items", items.astype(np.int64, copy=False))
        for name in ("truth", "history"):
            matrix = getattr(self, name)
            if matrix is not None:
                if matrix.shape != (items.shape[0], self.n_items):
                    raise MetricError(f"{name} must be members x items = {(items.shape[0], self.n_items)}, "
                                      f"got {matrix.shape}")
                object.__setattr__(self, name, _canonical(matrix))
        for name in ("item_category", "item_buyers"):
            values = getattr(self, name)
            if values is not None and len(values) != self.n_items:
                raise MetricError(f"{name} must have one value per item ({self.n_items}), got {len(values)}")

    @property
    def members(self) -> int:
        return self.items.shape[0]


def _canonical(matrix: sp.spmatrix) -> sp.csr_matrix:
    """CSR with sorted, unique column indices and explicit zeros removed (so every stored entry is 'bought')."""
    csr = sp.csr_matrix(matrix, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def top_k(lists: RankedLists, k: int) -> np.ndarray:
    """The first ``k`` positions of every list, as ``(members, k)``; positions past a list's end are ``-1``,
    and an item's repeats after its first position become ``-1`` too."""
    if not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
        raise MetricError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    top = lists.items[:, :k]
    if top.shape[1] < k:
        top = np.hstack([top, np.full((top.shape[0], k - top.shape[1]), -1, dtype=np.int64)])
    top = top.copy()
    valid = top >= 0
    if valid.any():
        rows = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)[valid]
        keys = rows * lists.n_items + top[valid]
        _, first = np.unique(keys, return_index=True)
        keep = np.zeros(keys.size, dtype=bool)
        keep[first] = True
        flat = np.flatnonzero(valid.ravel())
        top.ravel()[flat[~keep]] = -1
    return top


def contains(matrix: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
    """For a ``(members, k)`` array of item codes, whether each is stored in row ``member`` of ``matrix``
    (a canonical CSR matrix); ``-1`` slots give False."""
    n_items = matrix.shape[1]
    rows_of_entries = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    stored = rows_of_entries * n_items + matrix.indices  # sorted: rows ascend, columns ascend within a row
    valid = items >= 0
    keys = np.arange(items.shape[0], dtype=np.int64)[:, None] * n_items + np.where(valid, items, 0)
    pos = np.searchsorted(stored, keys)
    found = np.zeros(items.shape, dtype=bool)
    inside = pos < stored.size
    found[inside] = stored[pos[inside]] == keys[inside]
    return found & valid


def _need(value, what: str):
    if value is None:
        raise MetricError(f"this measure needs {what}")
    return value


def _relevance(lists: RankedLists, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hits of the top k (``(members, k)`` booleans) and each member's truth-set size."""
    truth = _need(lists.truth, "the test-window purchases (truth)")
    return contains(truth, top_k(lists, k)), np.diff(truth.indptr)


def _over_truth(values: np.ndarray, truth_sizes: np.ndarray) -> np.ndarray:
    return np.where(truth_sizes > 0, values, np.nan)


def precision_at_k(lists: RankedLists, k: int) -> np.ndarray:
    hits, sizes = _relevance(lists, k)
    return _over_truth(hits.sum(axis=1) / k, sizes)


def recall_at_k(lists: RankedLists, k: int) -> np.ndarray:
    hits, sizes = _relevance(lists, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _over_truth(hits.sum(axis=1) / sizes, sizes)


def hit_rate_at_k(lists: RankedLists, k: int) -> np.ndarray:
    hits, sizes = _relevance(lists, k)
    return _over_truth(hits.any(axis=1).astype(np.float64), sizes)


def ndcg_at_k(lists: RankedLists, k: int) -> np.ndarray:
    hits, sizes = _relevance(lists, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discount
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(sizes, k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return _over_truth(dcg / ideal, sizes)


def map_at_k(lists: RankedLists, k: int) -> np.ndarray:
    hits, sizes = _relevance(lists, k)
    precision_at_j = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _over_truth((precision_at_j * hits).sum(axis=1) / np.minimum(sizes, k), sizes)


def catalogue_coverage(lists: RankedLists, k: int) -> float:
    top = top_k(lists, k)
    return float(np.unique(top[top >= 0]).size / lists.n_items) if lists.n_items else math.nan


def member_coverage(lists: RankedLists, k: int) -> np.ndarray:
    return (top_k(lists, k) >= 0).any(axis=1).astype(np.float64)


def diversity_at_k(lists: RankedLists, k: int) -> np.ndarray:
    category = np.asarray(_need(lists.item_category, "each item's category"), dtype=np.int64)
    top = top_k(lists, k)
    cat = np.where(top >= 0, category[np.maximum(top, 0)], -1)
    known = cat >= 0
    n = known.sum(axis=1)
    n_cat = int(category.max()) + 1 if category.size and category.max() >= 0 else 1
    rows = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)[known]
    per_cell = np.bincount(rows * n_cat + cat[known], minlength=top.shape[0] * n_cat).reshape(top.shape[0], n_cat)
    same_pairs = (per_cell * (per_cell - 1) / 2).sum(axis=1)
    all_pairs = n * (n - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= 2, 1.0 - same_pairs / all_pairs, np.nan)


def novelty_at_k(lists: RankedLists, k: int) -> np.ndarray:
    history = _need(lists.history, "the members' purchase history")
    top = top_k(lists, k)
    length = (top >= 0).sum(axis=1)
    unseen = ((top >= 0) & ~contains(history, top)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(length > 0, unseen / length, np.nan)


def _item_buyers_and_base(lists: RankedLists) -> tuple[np.ndarray, int]:
    if lists.item_buyers is not None:
        buyers = np.asarray(lists.item_buyers, dtype=np.float64)
    else:
        history = _need(lists.history, "the members' purchase history or each item's buyers")
        buyers = np.bincount(history.indices, minlength=lists.n_items).astype(np.float64)
    if lists.history_members is not None:
        base = int(lists.history_members)
    else:
        base = int((np.diff(_need(lists.history, "the members with any history").indptr) > 0).sum())
    return buyers, base


def _mean_over_list(values: np.ndarray, top: np.ndarray) -> np.ndarray:
    valid = top >= 0
    length = valid.sum(axis=1)
    total = np.where(valid, values[np.maximum(top, 0)], 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(length > 0, total / length, np.nan)


def self_information_at_k(lists: RankedLists, k: int) -> np.ndarray:
    buyers, base = _item_buyers_and_base(lists)
    if base <= 0:
        return np.full(lists.members, np.nan)
    information = -np.log2(np.maximum(buyers, 1.0) / base)
    return _mean_over_list(information, top_k(lists, k))


def head_items(buyers: np.ndarray) -> np.ndarray:
    """Booleans per item: in the head (the ceil(HEAD_SHARE) most-bought items, ties to the lower code)."""
    size = math.ceil(HEAD_SHARE * len(buyers))
    order = np.lexsort((np.arange(len(buyers)), -np.asarray(buyers)))
    head = np.zeros(len(buyers), dtype=bool)
    head[order[:size]] = True
    return head


def head_share_at_k(lists: RankedLists, k: int) -> np.ndarray:
    buyers, _ = _item_buyers_and_base(lists)
    return _mean_over_list(head_items(buyers).astype(np.float64), top_k(lists, k))


def popularity_percentiles(buyers: np.ndarray) -> np.ndarray:
    """Each item's mid-rank percentile of buyers across the catalogue (0 = least bought, 1 = most)."""
    buyers = np.asarray(buyers)
    n = len(buyers)
    if n < 2:
        return np.full(n, 0.5)
    ordered = np.sort(buyers)
    fewer = np.searchsorted(ordered, buyers, side="left")
    equal = np.searchsorted(ordered, buyers, side="right") - fewer
    return (fewer + (equal - 1) / 2) / (n - 1)


def popularity_percentile_at_k(lists: RankedLists, k: int) -> np.ndarray:
    buyers, _ = _item_buyers_and_base(lists)
    return _mean_over_list(popularity_percentiles(buyers), top_k(lists, k))


@dataclass(frozen=True)
class Metric:
    """One measure: ``function(lists, k)`` gives a value per member (NaN = left out of the average) or, for a
    catalogue-level measure, one number."""

    label: str
    help: str
    function: Callable[[RankedLists, int], np.ndarray | float]
    higher_is_better: bool | None = True
    needs_truth: bool = False


METRICS: dict[str, Metric] = {
    "precision": Metric(
        N_("Precision@k"), N_("Of the k items recommended, the share the member bought in the test window. Divided "
                              "by k even when a list is shorter. Members who bought nothing in the test window are "
                              "left out."),
        precision_at_k, needs_truth=True),
    "recall": Metric(
        N_("Recall@k"), N_("Of the items the member bought in the test window, the share that were among the k "
        "recommended. Members who bought nothing in the test window are left out."), recall_at_k, needs_truth=True),
    "ndcg": Metric(
        N_("NDCG@k"), N_("Like recall, but a hit near the top of the list counts more (a hit at position j is worth "
        "1/log2(j+1)); 1 = every bought item sits at the top. Members who bought nothing are left out."),
        ndcg_at_k, needs_truth=True),
    "map": Metric(
        N_("MAP@k"), N_("Mean average precision: the precision at each hit's position, averaged over min(bought, k). "
        "Rewards lists whose hits come early. Members who bought nothing are left out."), map_at_k,
        needs_truth=True),
    "hit_rate": Metric(
        N_("Hit rate@k"), N_("Share of members with at least one of the k recommended items among their purchases in "
        "the test window. Members who bought nothing are left out."), hit_rate_at_k, needs_truth=True),
    "catalogue_coverage": Metric(
        N_("Catalogue coverage"), N_("Share of the catalogue's products that appear in at least one member's top k."),
        catalogue_coverage),
    "member_coverage": Metric(
        N_("Member coverage"), N_("Share of members who get at least one recommendation."), member_coverage),
    "diversity": Metric(
        N_("Diversity"), N_("Do the results cover different kinds of goods? Of all pairs of items in a member's top k "
        "(with a known category), the share from two different categories: 0 = all one category, 1 = all "
        "different."), diversity_at_k),
    "novelty": Metric(
        N_("Novelty (unseen)"), N_("Goods the member has not found yet: share of a member's top k they never bought "
        "before."), novelty_at_k),
    "self_information": Metric(
        N_("Novelty (self-information)"), N_("How little-known the recommended goods are: mean of -log2(share of "
                                             "members who bought the item) over the top k. One bit more = bought by "
                                             "half as many members."),
        self_information_at_k),
    "head_share": Metric(
        N_("Popularity bias (head share)"), N_("Share of the recommended items that are among the 10% most-bought "
        "products. Lower = less concentrated on best sellers."), head_share_at_k, higher_is_better=None),
    "popularity_percentile": Metric(
        N_("Popularity percentile"), N_("Mean popularity rank of the recommended items across the catalogue, from 0 "
        "(least bought) to 1 (most bought)."), popularity_percentile_at_k, higher_is_better=None),
}


def metric_values(lists: RankedLists, k: int, names: Sequence[str] | None = None) -> dict[str, float]:
    """The average of each named measure (all of :data:`METRICS` by default; measures that need a truth set are
    skipped when ``lists`` has none). Member-level values are averaged over the members they are defined for."""
    chosen = list(names) if names is not None else [n for n, m in METRICS.items()
                                                     if lists.truth is not None or not m.needs_truth]
    unknown = [n for n in chosen if n not in METRICS]
    if unknown:
        raise MetricError(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    return {name: _average(METRICS[name].function(lists, k)) for name in chosen}


def _average(values: np.ndarray | float) -> float:
    if np.isscalar(values):
        return float(values)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan
