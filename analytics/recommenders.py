"""Recommendation algorithms: fitting plain-data models (:mod:`analytics.recommend_models`) on the purchases of
:mod:`analytics.recommend_data`.

Algorithms (:data:`ALGORITHMS`):

* **popular** / **popular_segment**: products ranked by how many members bought them in the last
  ``window_days`` of the history, overall or within the member's segment. Segments back off from the most
  specific to the least: (tier, region, acquisition channel), (tier, region), (tier), everyone; a member gets the
  most specific one with at least ``min_segment_buyers`` buyers. Ties: more buyers overall, then product code.
* **item_cosine** / **item_lift**: item-item collaborative filtering on co-purchase. With X the members x
  products matrix of "bought" (0/1), C = XᵀX and n_i = C_ii: cosine s_ij = C_ij / sqrt(n_i n_j); lift-weighted
  s_ij = cosine_ij * max(0, log2(lift_ij)), lift_ij = N C_ij / (n_i n_j) with N the members with any purchase,
  which removes pairs that meet only because both sell a lot. Pairs bought by fewer than ``min_common`` common
  members are dropped; each product keeps its ``neighbours`` most similar products (ties: lower code). A
  member's score for j is sum over their past products i of w_i s_ij, w_i = 0.5^(days since i was last bought /
  half_life_days), normalised to sum 1 over the member's products.
* **als**: implicit-feedback matrix factorisation (alternating least squares, Hu, Koren and Volinsky 2008, the
  ``implicit`` package, one thread, seeded) on BM25-weighted order counts. Only the product factors are kept:
  a member's factors are solved from their history (exact least squares) when lists are made, so the model
  stays small and serves members who bought after it was fitted.
* **hybrid**: a mixture of six parts, each a probability over products for the member's next purchase:
  *repeat* (w_j: their own past products), *co_purchase* (the item-item cosine scores, normalised to sum 1),
  *category*, *subcategory* and *brand* taste (the member's mix of values, smoothed by ``prior_strength``
  purchases' worth of the shop-wide mix, times the product's share of its value's buyers in the last
  ``window_days``) and *popular* (share of recent buyers, +1 smoothed). Part weights are learned by EM
  (maximum likelihood of the mixture) on the history's last ``VALIDATION_DAYS`` held out, the parts fitted on
  the days before: a shop where members buy the same things again learns a heavy *repeat* weight, one where
  taste is by category a heavy *category* weight. Content attributes no product has are left out. This serves
  members with one or two purchases and products with few buyers, and every item's reason is the part that
  contributed most.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from analytics.i18n import N_
from analytics.recommend_data import SEGMENT_ATTRIBUTES, RecommendData, day_number
from analytics.recommend_models import (
    HYBRID_PARTS,
    FactorModel,
    FactorSettings,
    HybridModel,
    HybridSettings,
    ItemItemModel,
    ItemItemSettings,
    PopularModel,
    PopularSettings,
    Recommender,
    RecommenderError,
    bm25_rows,
    csr_values,
    recency_weights,
    top_items,
)

#: Segment levels for popular lists, most specific first (indices into SEGMENT_ATTRIBUTES).
SEGMENT_LEVELS: tuple[tuple[int, ...], ...] = ((0, 1, 2), (0, 1), (0,), ())
ANY = -2  # a segment key matching every value of an attribute
#: Dense blocks of the item-item product hold at most this many cells (bounded memory for big catalogues).
BLOCK_CELLS = 1 << 24
CONTENT_ATTRIBUTES: tuple[str, ...] = ("category", "subcategory", "brand")
LABELS_OF = {"category": "categories", "subcategory": "subcategories", "brand": "brands"}
#: Member-product pairs expanded at once when summing similarities pair by pair.
PAIR_CHUNK = 2_000_000
#: Up to this many products, pair lookups of similarities use a dense products x products table.
DENSE_LOOKUP_ITEMS = 4_096


# --- popular ----------------------------------------------------------------------------------------------

def window_buyers(data: RecommendData, window_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Per history entry, whether it falls in the last ``window_days`` (all entries when none does), and the
    buyers per product among those entries."""
    history = data.history
    recent = history.last_day >= day_number(data.history_end) - window_days + 1
    if not recent.any():
        recent = np.ones(history.nnz, dtype=bool)
    return recent, np.bincount(history.indices[recent], minlength=history.shape[1]).astype(np.float32)


def fit_popular(data: RecommendData, settings: PopularSettings | None = None) -> PopularModel:
    """Buyers per product in the last ``window_days`` of the history, overall and per segment."""
    settings = settings or PopularSettings()
    history = data.history
    recent, buyers = window_buyers(data, settings.window_days)
    member_of_entry = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    members, items = member_of_entry[recent], history.indices[recent].astype(np.int64)
    active = np.zeros(history.shape[0], dtype=bool)
    active[members] = True
    keys, seg_buyers, rows = [], [], []
    offset = 0
    for level in (SEGMENT_LEVELS if settings.by_segment else ((),)):
        key_columns = np.full((history.shape[0], len(SEGMENT_ATTRIBUTES)), ANY, dtype=np.int64)
        key_columns[:, list(level)] = data.members.segments[:, list(level)]
        if len(key_columns) == 0:
            key_columns = np.full((1, len(SEGMENT_ATTRIBUTES)), ANY, dtype=np.int64)
        unique, member_segment = np.unique(key_columns, axis=0, return_inverse=True)
        member_segment = member_segment.ravel()[:history.shape[0]]
        keys.append(unique)
        seg_buyers.append(np.bincount(member_segment[active], minlength=len(unique)))
        rows.append(offset + member_segment[members])
        offset += len(unique)
    counts = sp.csr_matrix((np.ones(len(items) * len(rows), dtype=np.float32),
                            (np.concatenate(rows), np.tile(items, len(rows)))), shape=(offset, history.shape[1]))
    counts.sum_duplicates()
    return PopularModel(settings, data.products.ids, buyers, data.members.labels, np.vstack(keys).astype(np.int32),
                        np.concatenate(seg_buyers).astype(np.int64), counts.indptr.astype(np.int64),
                        counts.indices.astype(np.int32), counts.data.astype(np.float32))


# --- item-item --------------------------------------------------------------------------------------------

def fit_item_item(data: RecommendData, settings: ItemItemSettings | None = None) -> ItemItemModel:
    """Each product's ``neighbours`` most similar products by co-purchase, computed in row blocks of the items x
    items product so memory stays bounded for large catalogues."""
    settings = settings or ItemItemSettings()
    x = data.history.matrix("binary")
    n_items = x.shape[1]
    xt = x.T.tocsr()
    bought = np.asarray(xt.sum(axis=1)).ravel().astype(np.float64)
    members = max(int(data.history.active_members().sum()), 1)
    k = min(settings.neighbours, max(n_items - 1, 1))
    block = max(1, BLOCK_CELLS // max(n_items, 1))
    counts, indices, values = [], [], []
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        common = (xt[start:stop] @ x).toarray().astype(np.float64)
        common[np.arange(stop - start), np.arange(start, stop)] = 0.0  # a product is not its own neighbour
        common[common < settings.min_common] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = np.where(common > 0, common / np.sqrt(np.outer(bought[start:stop], bought)), 0.0)
            if settings.similarity == "lift":
                lift = np.where(common > 0, common * members / np.outer(bought[start:stop], bought), 1.0)
                sim *= np.maximum(np.log2(lift), 0.0)
        sim = sim.astype(np.float32)
        top = top_items(sim, k)
        chosen = np.take_along_axis(sim, top, axis=1) > 0
        top = np.sort(np.where(chosen, top, n_items), axis=1)  # CSR wants sorted columns; n_items = dropped
        kept = top < n_items
        counts.append(kept.sum(axis=1))
        rows = np.broadcast_to(np.arange(stop - start)[:, None], top.shape)[kept]
        indices.append(top[kept].astype(np.int32))
        values.append(sim[rows, top[kept]])
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    return ItemItemModel(settings, data.products.ids, indptr,
                         np.concatenate(indices) if indices else np.zeros(0, np.int32),
                         np.concatenate(values) if values else np.zeros(0, np.float32))


class PairLookup:
    """``similar[past, item]`` for many pairs: a dense table for catalogues up to DENSE_LOOKUP_ITEMS products,
    else binary search in the sorted (row, column) keys of the sparse matrix."""

    def __init__(self, similar: sp.csr_matrix) -> None:
        self.n = similar.shape[0]
        self.dense = similar.toarray() if self.n <= DENSE_LOOKUP_ITEMS else None
        if self.dense is None:
            self.keys = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(similar.indptr)) * self.n + \
                similar.indices
            self.data = similar.data

    def __call__(self, past: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense[past, items]
        if len(self.keys) == 0:
            return np.zeros(len(past), dtype=np.float32)
        wanted = past.astype(np.int64) * self.n + items
        pos = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        return np.where(self.keys[pos] == wanted, self.data[pos], 0.0)


def expand_pairs(weights: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each given row, all its stored entries: (pair index, entry position in ``weights``), pair-major and in
    column order within a pair."""
    lengths = np.diff(weights.indptr)[rows]
    pair = np.repeat(np.arange(len(rows)), lengths)
    entry = np.repeat(weights.indptr[rows], lengths) + (np.arange(pair.size) - np.repeat(np.cumsum(lengths) - lengths,
                                                                                           lengths))
    return pair, entry


def best_in_groups(pair: np.ndarray, value: np.ndarray, n_pairs: int) -> np.ndarray:
    """Per pair, the index (into ``value``) of its largest positive value, the first one on ties; -1 if none.
    ``pair`` must be sorted (groups contiguous)."""
    best = np.full(n_pairs, -1, dtype=np.int64)
    if pair.size == 0:
        return best
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    top = np.full(n_pairs, -np.inf)
    top[pair[starts]] = np.maximum.reduceat(value, starts)
    hit = np.flatnonzero((value == top[pair]) & (value > 0))
    first = hit[np.r_[True, pair[hit][1:] != pair[hit][:-1]]] if hit.size else hit
    best[pair[first]] = first
    return best


def similarity_sums(weights: sp.csr_matrix, lookup: PairLookup, rows: np.ndarray, items: np.ndarray,
                    best: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For pairs (row of ``weights``, item): sum over the row's past items h of w_h s_h,item, and with ``best``
    the position in ``weights`` of the past item contributing most (ties: lower code; -1 when none does).
    Pairs are expanded in chunks, so memory stays bounded."""
    total = np.zeros(len(rows), dtype=np.float64)
    top = np.full(len(rows), -1, dtype=np.int64)
    lengths = np.diff(weights.indptr)[rows]
    start = 0
    while start < len(rows):
        stop = start + max(1, int(np.searchsorted(np.cumsum(lengths[start:]), PAIR_CHUNK, side="right")))
        pair, entry = expand_pairs(weights, rows[start:stop])
        value = weights.data[entry] * lookup(weights.indices[entry], items[start:stop][pair])
        total[start:stop] = np.bincount(pair, weights=value, minlength=stop - start)
        if best:
            chosen = best_in_groups(pair, value, stop - start)
            top[start:stop] = np.where(chosen >= 0, entry[np.maximum(chosen, 0)] if entry.size else -1, -1)
        start = stop
    return total, top


# --- ALS --------------------------------------------------------------------------------------------------

def fit_factors(data: RecommendData, settings: FactorSettings | None = None, threads: int | None = None) -> FactorModel:
    """Implicit ALS product factors, deterministic for a seed: each member's and each product's least-squares
    step is solved on its own, so ``threads`` (default: up to two cores) give bit-identical factors (tested);
    BLAS is held to one thread."""
    settings = settings or FactorSettings()
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    counts = data.history.matrix("orders")
    idf = (math.log(max(counts.shape[0], 1)) - np.log1p(np.bincount(counts.indices, minlength=counts.shape[1])))
    active = data.history.active_members()
    mean_total = float(np.asarray(counts.sum(axis=1)).ravel()[active].mean()) if active.any() else 1.0
    weighted = bm25_rows(counts, idf.astype(np.float32), mean_total, settings.bm25_k1, settings.bm25_b)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=settings.factors, regularization=settings.regularization,
                                        alpha=settings.alpha, iterations=settings.iterations,
                                        random_state=settings.seed,
                                        num_threads=threads or min(2, os.cpu_count() or 1))
        model.fit(weighted[active], show_progress=False)
    return FactorModel(settings, data.products.ids, np.ascontiguousarray(model.item_factors, dtype=np.float32),
                       idf.astype(np.float32), mean_total)


# --- hybrid -----------------------------------------------------------------------------------------------

def _content_tables(data: RecommendData, window_days: int) -> tuple[np.ndarray, ...]:
    """Bucket codes per content attribute (unknown = its own last bucket), each product's share of its bucket's
    recent buyers, the shop-wide bucket mix (concatenated) with offsets, smoothed popularity, and which
    attributes any product has."""
    _, buyers = window_buyers(data, window_days)
    buyers = buyers.astype(np.float64)
    n_items = data.products.size
    codes = np.zeros((len(CONTENT_ATTRIBUTES), n_items), dtype=np.int32)
    within = np.zeros((len(CONTENT_ATTRIBUTES), n_items), dtype=np.float32)
    priors, offsets, present = [], [0], []
    for a, name in enumerate(CONTENT_ATTRIBUTES):
        raw = getattr(data.products, name)
        buckets = len(getattr(data.products, LABELS_OF[name])) + 1
        codes[a] = np.where(raw >= 0, raw, buckets - 1)
        totals = np.bincount(codes[a], weights=buyers, minlength=buckets)
        within[a] = np.divide(buyers, totals[codes[a]], out=np.zeros(n_items), where=totals[codes[a]] > 0)
        priors.append(totals / max(totals.sum(), 1.0))
        offsets.append(offsets[-1] + buckets)
        present.append(bool((raw >= 0).any()))
    popular = (buyers + 1.0) / (buyers.sum() + n_items)
    return (codes, within, np.concatenate(priors).astype(np.float32), np.asarray(offsets, dtype=np.int64),
            popular.astype(np.float32), np.asarray(present))


@dataclass(frozen=True)
class HybridTables:
    """What scoring the hybrid needs, prepared once per model: the similarities and their row sums, and the
    content parts as one sparse (buckets of all attributes) x products matrix holding weight_a * within_a(j)."""

    similar: sp.csr_matrix
    similar_mass: np.ndarray
    onehot: sp.csr_matrix
    content: sp.csr_matrix


def hybrid_tables(model: HybridModel) -> HybridTables:
    pi = dict(zip(HYBRID_PARTS, model.weights_.tolist(), strict=True))
    n_items = len(model.item_ids_)
    rows, cols, vals = [], [], []
    for a, name in enumerate(CONTENT_ATTRIBUTES):
        rows.append(model.prior_offsets_[a] + model.codes_[a])
        cols.append(np.arange(n_items))
        vals.append(pi[name] * model.within_[a])
    buckets = int(model.prior_offsets_[-1])
    onehot = sp.csr_matrix((np.ones(n_items * len(CONTENT_ATTRIBUTES), np.float32),
                            (np.concatenate(cols), np.concatenate(rows))), shape=(n_items, buckets))
    content = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(buckets, n_items))
    similar = model.item_item.similarities()
    return HybridTables(similar, np.asarray(similar.sum(axis=1)).ravel(), onehot, content)


def _all_profiles(model: HybridModel, tables: HybridTables, weights: sp.csr_matrix) -> np.ndarray:
    """Members' smoothed mix over the buckets of every content attribute, side by side."""
    lam = model.settings.prior_strength
    return ((weights @ tables.onehot).toarray() + lam * model.prior_) / (1.0 + lam)


def hybrid_scores(model: HybridModel, weights: sp.csr_matrix, tables: HybridTables | None = None) -> np.ndarray:
    """Dense members x products mixture scores sum_k weight_k P_k(j | member) for the rows of ``weights``
    (recency weights, rows summing to 1; an empty row gives 0 everywhere)."""
    tables = hybrid_tables(model) if tables is None else tables
    pi = dict(zip(HYBRID_PARTS, model.weights_.tolist(), strict=True))
    profiles = _all_profiles(model, tables, weights).astype(np.float32)
    scores = np.ascontiguousarray((tables.content.T @ profiles.T).T, dtype=np.float32)  # the content parts
    has_history = np.diff(weights.indptr) > 0
    scores[~has_history] = 0.0
    scores[has_history] += pi["popular"] * model.popular_
    rows = np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))
    if pi["repeat"] > 0:
        scores[rows, weights.indices] += pi["repeat"] * weights.data
    if pi["co_purchase"] > 0:
        co = sp.csr_matrix(weights @ tables.similar)
        mass = weights @ tables.similar_mass
        scale = np.divide(pi["co_purchase"], mass, out=np.zeros_like(mass), where=mass > 0)
        co_rows = np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
        scores[co_rows, co.indices] += (co.data * scale[co_rows]).astype(np.float32)
    return scores


def hybrid_pair_parts(model: HybridModel, weights: sp.csr_matrix, rows: np.ndarray, items: np.ndarray,
                      lookup: PairLookup | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For pairs (row of ``weights``, product): each part's probability P_k (pairs x HYBRID_PARTS, unweighted),
    and for the co-purchase part the position in ``weights`` of the past product contributing most (-1 none)."""
    tables = hybrid_tables(model)
    lookup = PairLookup(tables.similar) if lookup is None else lookup
    parts = np.zeros((len(rows), len(HYBRID_PARTS)), dtype=np.float64)
    parts[:, 0] = csr_values(weights, rows, items)
    sums, best = similarity_sums(weights, lookup, rows, items, best=True)
    mass = (weights @ tables.similar_mass)[rows]
    parts[:, 1] = np.divide(sums, mass, out=np.zeros_like(sums), where=mass > 0)
    members = np.unique(rows)
    local = np.searchsorted(members, rows)
    chunk = max(1, PAIR_CHUNK // max(int(model.prior_offsets_[-1]), 1))
    for lo in range(0, len(members), chunk):
        inside = (local >= lo) & (local < lo + chunk)
        profiles = _all_profiles(model, tables, weights[members[lo:lo + chunk]])
        its = items[inside]
        for a in range(len(CONTENT_ATTRIBUTES)):
            bucket = model.prior_offsets_[a] + model.codes_[a][its]
            parts[inside, 2 + a] = profiles[local[inside] - lo, bucket] * model.within_[a][its]
    parts[:, 5] = model.popular_[items]
    return parts, best


def _em_weights(parts: np.ndarray, active: np.ndarray, iterations: int) -> np.ndarray:
    """Mixture weights maximising the likelihood of held-out purchases (EM from equal weights)."""
    pi = np.where(active, 1.0 / active.sum(), 0.0)
    if len(parts) == 0:
        return pi
    for _ in range(iterations):
        weighted = parts * pi
        totals = weighted.sum(axis=1, keepdims=True)
        pi = (weighted / np.where(totals > 0, totals, 1.0)).mean(axis=0)
        pi = pi / pi.sum()
    return pi


def _hybrid_parts_model(data: RecommendData, settings: HybridSettings, weights: np.ndarray,
                        validation_pairs: int) -> HybridModel:
    codes, within, prior, offsets, popular, _ = _content_tables(data, settings.window_days)
    return HybridModel(settings, data.products.ids, fit_item_item(data, settings.item_item), codes, within, prior,
                       offsets, popular, weights, validation_pairs)


def fit_hybrid(data: RecommendData, settings: HybridSettings | None = None) -> HybridModel:
    """The hybrid's parts on the whole history, weighted by EM on the held-out last days (see module doc)."""
    settings = settings or HybridSettings()
    present = _content_tables(data, settings.window_days)[-1]
    active = np.r_[True, True, present, True]
    inner = data.validation_split()
    start = np.full(len(HYBRID_PARTS), 0.0)
    probe = _hybrid_parts_model(inner, settings, start, 0)
    today = day_number(inner.history_end)
    h = inner.history
    weights = recency_weights(h.indptr, h.indices, h.last_day, today, settings.item_item.half_life_days, h.shape[1])
    truth = inner.test
    pair_rows = np.repeat(np.arange(truth.shape[0]), np.diff(truth.indptr))
    known = np.diff(weights.indptr)[pair_rows] > 0  # members with history before the held-out days
    parts, _ = hybrid_pair_parts(probe, weights, pair_rows[known], truth.indices[known].astype(np.int64))
    pi = _em_weights(parts[:, active], np.ones(int(active.sum()), dtype=bool), settings.em_iterations)
    full = np.zeros(len(HYBRID_PARTS))
    full[active] = pi
    return _hybrid_parts_model(data, settings, full, int(known.sum()))


# --- all together -----------------------------------------------------------------------------------------

#: name -> (label, fitter of the personal part or None, popular settings).
ALGORITHMS: dict[str, tuple[str, Any, PopularSettings]] = {
    "popular": (N_("Most popular overall"), None, PopularSettings(by_segment=False)),
    "popular_segment": (N_("Most popular in the member's segment"), None, PopularSettings()),
    "item_cosine": (N_("Item-item, cosine"), lambda d: fit_item_item(d, ItemItemSettings(similarity="cosine")),
                    PopularSettings()),
    "item_lift": (N_("Item-item, lift-weighted"), lambda d: fit_item_item(d, ItemItemSettings(similarity="lift")),
                  PopularSettings()),
    "als": (N_("Matrix factorisation (implicit ALS)"), fit_factors, PopularSettings()),
    "hybrid": (N_("Hybrid (repeat, co-purchase, content, popularity)"), fit_hybrid,
               PopularSettings()),
}
#: Chosen by the out-of-time evaluation on the demo and on Online Retail (see docs/recommendations.md).
DEFAULT_ALGORITHM = "hybrid"


def fit(data: RecommendData, algorithm: str = DEFAULT_ALGORITHM, *, popular: PopularSettings | None = None,
        personal: Any = None) -> Recommender:
    """Fit a named algorithm of :data:`ALGORITHMS`. ``popular``: other settings for the popular lists;
    ``personal``: an already fitted personal model (e.g. with other settings) instead of the default one."""
    if algorithm not in ALGORITHMS:
        raise RecommenderError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    if data.members.size == 0 or data.products.size == 0:
        raise RecommenderError("There are no members or no products to recommend.")
    _, fitter, popular_settings = ALGORITHMS[algorithm]
    if popular is not None:
        popular_settings = replace(popular, by_segment=popular_settings.by_segment and popular.by_segment)
    model = personal if personal is not None else (fitter(data) if fitter is not None else None)
    return Recommender(algorithm, fit_popular(data, popular_settings), model)
