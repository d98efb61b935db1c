"""Top-N lists for every member from a fitted :class:`~analytics.recommend_models.Recommender`, with a reason for
each item.

**How a list is made** (members in batches, so memory stays bounded whatever their number):

1. The personal model scores every product for the member (item-item, hybrid or ALS; none for the popularity
   baselines). Products the member may not get are removed first: those in an excluded category, and those
   they already bought unless the product's category is one that is bought again (consumables, see
   :func:`default_rebuy_categories`; products without a category count as :data:`UNKNOWN_CATEGORY`). Only
   positive scores count as personal evidence; a member with no history has none.
2. The candidates, in order: the best personal products, then the popular products of the member's segment,
   then the shop's popular products (with the same exclusions). Equal scores go to the lower product code.
3. Going down the candidates, a product is skipped if already taken or if its category already has
   ``max_per_category`` products in the list (diversity cap; products without a category are not capped). The
   first ``n`` left make the list. So every member gets a list (cold start: popular lists alone), and ``path``
   records how each member was served.

**Reasons** (:data:`REASON_KINDS`): a personal product names what contributed most to its score: a past product
bought together with it (item-item; the hybrid's co-purchase part) or closest to it in the factor space (ALS),
with the day it was last bought; for the hybrid also "bought before" (repeat), the member's favourite category,
subcategory or brand, or popularity. A popular product names the segment.
:func:`analytics.recommend_reasons.explain` gives them as structured rows with a plain English sentence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from analytics.errors import InputError
from analytics.i18n import N_, _
from analytics.recommend_data import SEGMENT_ATTRIBUTES, RecommendData, day_number
from analytics.recommend_models import (
    HYBRID_PARTS,
    FactorModel,
    HybridModel,
    ItemItemModel,
    PopularModel,
    Recommender,
    bm25_rows,
    recency_weights,
    top_items,
)
from analytics.recommenders import (
    ANY,
    DENSE_LOOKUP_ITEMS,
    SEGMENT_LEVELS,
    PairLookup,
    best_in_groups,
    expand_pairs,
    hybrid_pair_parts,
    hybrid_scores,
    hybrid_tables,
    similarity_sums,
)

#: The pseudo-category of products without one (may be named in rebuy_categories / exclude_categories).
UNKNOWN_CATEGORY = N_("(no category)")  # a value in the data; translated where shown
#: Category names containing one of these words are consumables by default: bought again, so recommended again.
CONSUMABLE_WORDS: tuple[str, ...] = ("grocer", "food", "beverage", "drink", "snack", "fresh", "baby", "pet",
                                     "beauty", "cosmetic", "consumable", "household", "toiletr", "personal care")
MAX_N = 100
#: Score matrices of one batch hold about this many cells (members x products).
BATCH_CELLS = 1 << 23
#: Batches made side by side (threads; the heavy steps release the GIL), at most one per core.
MAX_WORKERS = 2
PATHS: tuple[str, ...] = ("personal", "personal + popular", "segment popular", "popular overall")
#: How each path reads (the paths are stored as they are; translated where shown).
PATH_LABELS: dict[str, str] = {"personal": N_("personal"), "personal + popular": N_("personal + popular"),
                               "segment popular": N_("segment popular"), "popular overall": N_("popular overall")}
SOURCES: tuple[str, ...] = ("personal", "segment", "overall")
REASON_KINDS: tuple[str, ...] = ("bought_with", "similar_taste", "buy_again", "category", "subcategory", "brand",
                                 "popular_personal", "segment", "overall")
_HYBRID_KIND = {"repeat": 2, "co_purchase": 0, "category": 3, "subcategory": 4, "brand": 5, "popular": 8}


class ListSettingsError(InputError):
    """List settings out of range or naming unknown categories."""


@dataclass(frozen=True)
class ListSettings:
    """How lists are made (not learned): ``n`` items; ``exclude_bought`` (products already bought are left out
    unless their category is in ``rebuy_categories``; None = :func:`default_rebuy_categories`);
    ``exclude_categories`` never recommended; ``max_per_category`` at most so many items of one category
    (None = no cap)."""

    n: int = 10
    exclude_bought: bool = True
    rebuy_categories: tuple[str, ...] | None = None
    exclude_categories: tuple[str, ...] = ()
    max_per_category: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= MAX_N:
            raise ListSettingsError(_("The number of items must be a whole number from 1 to {most}, not {n}.")
                                    .format(most=MAX_N, n=repr(self.n)))
        cap = self.max_per_category
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= self.n):
            raise ListSettingsError(_("At most per category must be from 1 to {n}, not {cap}.")
                                    .format(n=self.n, cap=repr(cap)))
        for name in ("rebuy_categories", "exclude_categories"):
            value = getattr(self, name)
            if value is not None:
                if len(value) > 10_000:
                    raise ListSettingsError(f"Too many categories in {name}.")
                object.__setattr__(self, name, tuple(sorted(set(value))))

    @property
    def candidates(self) -> int:
        """How many personal and popular candidates each list is chosen from."""
        return self.n if self.max_per_category is None else max(50, 5 * self.n)


def default_rebuy_categories(categories: Sequence[str]) -> tuple[str, ...]:
    """The categories whose products are recommended again by default: names with a consumable word
    (:data:`CONSUMABLE_WORDS`: Groceries, Pet Food, Beauty, Mother & Baby ...), and products without a category,
    since a shop that does not classify its products cannot be told apart (Online Retail, where a fifth of a
    customer's products are bought again)."""
    return (*(c for c in categories if any(word in c.lower() for word in CONSUMABLE_WORDS)), UNKNOWN_CATEGORY)


@dataclass(frozen=True)
class Recommendations:
    """Lists for ``members`` (member codes of the data): ``items`` (members x n product codes, -1 = empty), their
    ``scores``, per slot the ``source`` (index into :data:`SOURCES`), the reason ``kind`` (index into
    :data:`REASON_KINDS`), ``because_item`` (the past product behind it, -1 none) and ``because_day`` (the day
    number it was last bought, -1); per member the popular ``segment`` (row of the popular model) and ``path``
    (index into :data:`PATHS`)."""

    algorithm: str
    members: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    source: np.ndarray
    kind: np.ndarray
    because_item: np.ndarray
    because_day: np.ndarray
    segment: np.ndarray
    path: np.ndarray

    def path_counts(self) -> dict[str, int]:
        counts = np.bincount(self.path, minlength=len(PATHS))
        return {name: int(c) for name, c in zip(PATHS, counts, strict=True)}


# --- alignment of a model with (possibly newer) data ------------------------------------------------------

@dataclass(frozen=True)
class _Space:
    """Products in the model's codes: data code -> model code and back, categories, and the history rows."""

    to_data: np.ndarray  # per model product: data code or -1
    category: np.ndarray  # per model product: category code in the data, -1 unknown
    history: sp.csr_matrix  # members x model products: order counts (sorted columns)
    last_day: sp.csr_matrix  # same structure: last purchase day


def _space(model_ids: np.ndarray, data: RecommendData) -> _Space:
    data_ids = data.products.ids
    h = data.history
    if len(model_ids) == len(data_ids) and bool(np.all(model_ids == data_ids)):
        return _Space(np.arange(len(data_ids)), data.products.category, h.matrix("orders"), h.matrix("last_day"))
    to_model = pd.Index(model_ids).get_indexer(pd.Index(data_ids))
    to_data = pd.Index(data_ids).get_indexer(pd.Index(model_ids))
    category = np.where(to_data >= 0, data.products.category[np.maximum(to_data, 0)], -1)
    rows = np.repeat(np.arange(h.shape[0]), np.diff(h.indptr))
    cols = to_model[h.indices]
    keep = cols >= 0

    def matrix(values: np.ndarray) -> sp.csr_matrix:
        out = sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=(h.shape[0], len(model_ids)))
        out.sort_indices()
        return out

    return _Space(to_data, category, matrix(h.orders.astype(np.float32)), matrix(h.last_day))


def _category_mask(data: RecommendData, category: np.ndarray, names: Sequence[str]) -> np.ndarray:
    known = set(data.products.categories)
    unknown = [n for n in names if n not in known and n != UNKNOWN_CATEGORY]
    if unknown:
        raise ListSettingsError((_("Unknown category: {names}.") if len(unknown) == 1 else
                                 _("Unknown categories: {names}.")).format(names=", ".join(unknown)))
    mask = np.isin(category, [data.products.category_code(n) for n in names if n != UNKNOWN_CATEGORY])
    return mask | (category < 0) if UNKNOWN_CATEGORY in names else mask


# --- popular lists ----------------------------------------------------------------------------------------

def member_segments(popular: PopularModel, data: RecommendData, members: np.ndarray) -> np.ndarray:
    """Per member, the row of the most specific segment with enough buyers (the overall row at worst)."""
    codes = np.empty((len(members), len(SEGMENT_ATTRIBUTES)), dtype=np.int64)
    for a in range(len(SEGMENT_ATTRIBUTES)):
        to_model = np.r_[pd.Index(popular.segment_labels_[a]).get_indexer(pd.Index(data.members.labels[a])), -1]
        values = data.members.segments[members, a]
        mapped = to_model[np.where(values >= 0, values, len(to_model) - 1)]
        codes[:, a] = np.where((values >= 0) & (mapped < 0), -3, mapped)  # -3: a value the model never saw
    keys = popular.segment_keys_.astype(np.int64)
    base = max(int(keys.max()) + 4, 4)
    weights = base ** np.arange(len(SEGMENT_ATTRIBUTES), dtype=np.int64)
    enough = popular.segment_buyers_ >= popular.settings.min_segment_buyers
    chosen = np.full(len(members), -1, dtype=np.int64)
    for level in SEGMENT_LEVELS:
        wildcard = np.ones(len(SEGMENT_ATTRIBUTES), dtype=bool)
        wildcard[list(level)] = False
        at_level = np.flatnonzero(np.all((keys == ANY) == wildcard, axis=1) & enough)
        if at_level.size == 0:
            continue
        level_keys = ((keys[at_level] + 3) * weights).sum(axis=1)
        order = np.argsort(level_keys)
        member_keys = ((np.where(wildcard, ANY, codes) + 3) * weights).sum(axis=1)
        pos = np.minimum(np.searchsorted(level_keys[order], member_keys), at_level.size - 1)
        take = (level_keys[order][pos] == member_keys) & (chosen < 0)
        chosen[take] = at_level[order][pos[take]]
    return np.where(chosen >= 0, chosen, popular.overall_segment)


def _popular_ranking(counts: np.ndarray, buyers: np.ndarray, allowed: np.ndarray, size: int) -> np.ndarray:
    """Product codes by buyers in the segment, then buyers overall, then code; only allowed ones with buyers."""
    order = np.lexsort((np.arange(len(counts)), -buyers, -counts))
    return order[(counts[order] > 0) & allowed[order]][:size]


# --- personal scores --------------------------------------------------------------------------------------

class _Scorer:
    """Scores and reasons of one personal model over model product codes."""

    def __init__(self, model: ItemItemModel | FactorModel | HybridModel, space: _Space, today: int) -> None:
        self.model, self.space, self.today = model, space, today
        if isinstance(model, FactorModel):
            from implicit.cpu.als import AlternatingLeastSquares

            s = model.settings
            self.als = AlternatingLeastSquares(factors=s.factors, regularization=s.regularization, alpha=s.alpha,
                                               num_threads=1, random_state=s.seed)
            self.als.item_factors = model.item_factors_
            norms = np.linalg.norm(model.item_factors_, axis=1)
            self.unit = model.item_factors_ / np.where(norms > 0, norms, 1.0)[:, None]
            small = len(norms) <= DENSE_LOOKUP_ITEMS
            self.cosine = (self.unit @ self.unit.T) if small else None  # product x product cosines, if they fit
        else:
            item_item = model.item_item if isinstance(model, HybridModel) else model
            self.similar = item_item.similarities()
            self.lookup = PairLookup(self.similar)
            self.tables = hybrid_tables(model) if isinstance(model, HybridModel) else None
            self.half_life = item_item.settings.half_life_days

    def weights(self, rows: np.ndarray) -> sp.csr_matrix:
        """Members' past products with the weight each carries in their scores."""
        if isinstance(self.model, FactorModel):
            m = self.model
            return bm25_rows(self.space.history[rows], m.idf_, m.mean_row_total_, m.settings.bm25_k1,
                             m.settings.bm25_b)
        days = self.space.last_day[rows]
        return recency_weights(days.indptr, days.indices, days.data, self.today, self.half_life, days.shape[1])

    def scores(self, weights: sp.csr_matrix) -> np.ndarray:
        if isinstance(self.model, FactorModel):
            factors = self.als.recalculate_user(np.arange(weights.shape[0]), weights)
            return factors @ self.model.item_factors_.T
        if isinstance(self.model, HybridModel):
            return hybrid_scores(self.model, weights, self.tables)
        return (weights @ self.similar).toarray()

    def reasons(self, weights: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For (row, product) pairs: the reason kind and the position in ``weights`` of the past product behind
        it (-1 none)."""
        if isinstance(self.model, FactorModel):
            pair, entry = expand_pairs(weights, rows)
            past = weights.indices[entry]
            value = self.cosine[past, items[pair]] if self.cosine is not None else \
                np.einsum("ij,ij->i", self.unit[past], self.unit[items[pair]])
            chosen = best_in_groups(pair, value, len(rows))
            best = np.where(chosen >= 0, entry[np.maximum(chosen, 0)] if entry.size else -1, -1)
            same = (best >= 0) & (weights.indices[np.maximum(best, 0)] == items)  # closest to itself: bought before
            return np.where(same, 2, np.where(best >= 0, 1, 6)), best
        if isinstance(self.model, HybridModel):
            parts, best = hybrid_pair_parts(self.model, weights, rows, items, self.lookup)
            winner = np.argmax(parts * self.model.weights_, axis=1)
            kinds = np.array([_HYBRID_KIND[p] for p in HYBRID_PARTS])[winner]
            repeat = winner == HYBRID_PARTS.index("repeat")
            own = _entry_of(weights, rows, items)
            best = np.where(repeat, own, np.where(kinds == 0, best, -1))
            kinds = np.where((kinds == 0) & (best < 0), 6, kinds)
            return kinds, best
        _, best = similarity_sums(weights, self.lookup, rows, items, best=True)
        return np.where(best >= 0, 0, 6), best


def _entry_of(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Position of (row, col) among the stored entries of a CSR matrix with sorted columns, -1 if absent."""
    n = matrix.shape[1]
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * n + matrix.indices
    wanted = rows.astype(np.int64) * n + cols
    if len(keys) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[pos] == wanted, pos, -1)


# --- lists ------------------------------------------------------------------------------------------------

#: Candidates in the shop-wide popular ranking (the last fallback): enough products to span every category.
OVERALL_CANDIDATES = 500

class ListMaker:
    """A model made ready to list for members of ``data`` under ``settings``: the product alignment, exclusion
    masks, popular rankings per segment and the personal scorer are prepared once, so lists for one member
    (a page) or for all members (a campaign) cost only their own scoring. Cache one per model and data pull."""

    def __init__(self, model: Recommender, data: RecommendData, settings: ListSettings = ListSettings(),
                 workers: int | None = None) -> None:
        self.model, self.data, self.settings = model, data, settings
        self.workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1) if workers is None else int(workers))
        popular = model.popular
        space = _space(popular.item_ids_, data)
        excluded = _category_mask(data, space.category, settings.exclude_categories) | (space.to_data < 0)
        rebuy = settings.rebuy_categories
        rebuy_mask = _category_mask(data, space.category,
                                    default_rebuy_categories(data.products.categories) if rebuy is None else rebuy)
        scorer = _Scorer(model.personal, space, day_number(data.history_end)) if model.personal is not None else None
        counts = popular.segment_counts()
        size = max(settings.candidates, 50)
        ranked, shares = {}, {}
        for s in range(counts.shape[0]):
            row = counts[s].toarray().ravel()
            # the shop's ranking is the last fallback: long enough that a diversity cap can always be filled
            width = max(size, OVERALL_CANDIDATES) if s == popular.overall_segment else size
            ranked[s] = _popular_ranking(row, popular.buyers_, ~excluded, width)
            shares[s] = row / max(int(popular.segment_buyers_[s]), 1)
        self._context = _Context(settings, space, excluded, rebuy_mask, scorer, ranked, shares,
                                 popular.overall_segment)

    def recommend(self, members: Sequence[int] | np.ndarray | None = None) -> Recommendations:
        """Top-``n`` lists for ``members`` (member codes of the data; default all), in batches."""
        data, c = self.data, self._context
        rows = np.arange(data.members.size) if members is None else np.asarray(members, dtype=np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= data.members.size):
            raise ListSettingsError("Member codes must refer to members of the data.")
        segments = member_segments(self.model.popular, data, rows)
        batch = max(1, BATCH_CELLS // max(len(c.excluded), 1))
        starts = list(range(0, rows.size, batch))

        def one(start: int):
            return _batch(c, rows[start:start + batch], segments[start:start + batch])

        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # batches run side by side instead (numpy and scipy release the GIL)
            if self.workers > 1 and len(starts) > 1:
                with ThreadPoolExecutor(self.workers) as pool:
                    parts = list(pool.map(one, starts))
            else:
                parts = [one(start) for start in starts]
        parts = parts or [_batch(c, rows[:0], segments[:0])]
        items, scores, source, kind, because, day, path = (np.concatenate(p) for p in zip(*parts, strict=True))
        to_data = np.r_[c.space.to_data, -1]
        return Recommendations(self.model.algorithm, rows, to_data[items].astype(np.int32), scores, source, kind,
                               to_data[because].astype(np.int32), day, segments.astype(np.int32), path)


def recommend(model: Recommender, data: RecommendData, settings: ListSettings = ListSettings(),
              members: Sequence[int] | np.ndarray | None = None) -> Recommendations:
    """Top-``settings.n`` lists for ``members`` (member codes of ``data``; default all): see :class:`ListMaker`."""
    return ListMaker(model, data, settings).recommend(members)


@dataclass(frozen=True)
class _Context:
    settings: ListSettings
    space: _Space
    excluded: np.ndarray
    rebuy: np.ndarray
    scorer: _Scorer | None
    ranked: dict[int, np.ndarray]
    shares: dict[int, np.ndarray]
    overall: int


def _batch(c: _Context, block: np.ndarray, segments: np.ndarray):
    n, n_items = c.settings.n, len(c.excluded)
    hist = c.space.history[block]
    blocked = np.broadcast_to(c.excluded, (block.size, n_items)).copy()
    if c.settings.exclude_bought:
        entry_rows = np.repeat(np.arange(block.size), np.diff(hist.indptr))
        durable = ~c.rebuy[hist.indices]
        blocked[entry_rows[durable], hist.indices[durable]] = True
    lists = np.full((block.size, n), -1, dtype=np.int64)
    values = np.zeros((block.size, n), dtype=np.float32)
    source = np.full((block.size, n), -1, dtype=np.int8)
    filled = np.zeros(block.size, dtype=np.int64)
    per_category = np.zeros((block.size, int(c.space.category.max()) + 2 if c.space.category.size else 1), np.int64)
    weights = None
    known = np.flatnonzero(np.diff(hist.indptr) > 0)  # members with no history have no personal scores
    if c.scorer is not None and known.size:
        weights = c.scorer.weights(block)
        scores = np.asarray(c.scorer.scores(weights[known]), dtype=np.float32)
        invalid = blocked[known] | ~(scores > 0)
        # distinct negatives for products that may not be chosen keep the partition fast (no mass of ties)
        np.copyto(scores, (-1.0 - np.arange(n_items, dtype=np.float32) / max(n_items, 1))[None, :], where=invalid)
        top = top_items(scores, c.settings.candidates)
        top_scores = np.take_along_axis(scores, top, axis=1)
        _take(c, lists, values, source, filled, per_category, blocked, np.where(top_scores > 0, top, -1), top_scores,
              0, _Rows(known))
    for s in np.unique(segments).tolist():
        chosen = np.flatnonzero(segments == s)
        ranking = c.ranked[s]
        cand = np.broadcast_to(ranking, (chosen.size, ranking.size))
        sub = _Rows(chosen)
        _take(c, lists, values, source, filled, per_category, blocked, cand, c.shares[s][ranking][None, :],
              2 if s == c.overall else 1, sub)
    ranking = c.ranked[c.overall]
    _take(c, lists, values, source, filled, per_category, blocked, np.broadcast_to(ranking, (block.size, ranking.size)),
          c.shares[c.overall][ranking][None, :], 2)
    kind = np.where(source == 1, 7, np.where(source == 2, 8, -1)).astype(np.int8)
    because = np.full(lists.shape, -1, dtype=np.int64)
    day = np.full(lists.shape, -1, dtype=np.int32)
    personal = source == 0
    if weights is not None and personal.any():
        r, col = np.nonzero(personal)
        kinds, entry = c.scorer.reasons(weights, r, lists[r, col])
        kind[r, col] = kinds
        found = entry >= 0
        because[r[found], col[found]] = weights.indices[entry[found]]
        day[r[found], col[found]] = c.space.last_day[block].data[entry[found]]
    n_personal = personal.sum(axis=1)
    path = np.where(n_personal == 0, np.where(segments == c.overall, 3, 2),
                    np.where(n_personal == filled, 0, 1)).astype(np.int8)
    return lists, values, source, kind, because, day, path


@dataclass(frozen=True)
class _Rows:
    """A subset of the batch's rows."""

    rows: np.ndarray


def _take(c: _Context, lists, values, source, filled, per_category, blocked, cand, cand_values, code,
          subset: _Rows | None = None) -> None:
    """Append candidates (rows x width, best first, -1 none) to the lists in place: skip blocked ones (already
    taken or excluded) and those over the category cap, stop at n. Updates ``blocked`` with what is taken."""
    rows = subset.rows if subset is not None else np.arange(lists.shape[0])
    n, cap = c.settings.n, c.settings.max_per_category
    if rows.size == 0 or cand.shape[1] == 0:
        return
    full_values = np.broadcast_to(cand_values, cand.shape)
    for j in range(cand.shape[1]):  # a column at a time, each step vectorised over the rows
        item = cand[:, j]
        sel = np.flatnonzero((filled[rows] < n) & (item >= 0))
        if sel.size == 0:
            if not (filled[rows] < n).any():
                break
            continue
        sel = sel[~blocked[rows[sel], item[sel]]]
        if cap is not None:
            cat = c.space.category[item[sel]]
            under = (cat < 0) | (per_category[rows[sel], cat] < cap)
            sel, cat = sel[under], cat[under]
            per_category[rows[sel], cat] += cat >= 0
        r, it = rows[sel], item[sel]
        slot = filled[r]
        lists[r, slot] = it
        values[r, slot] = full_values[sel, j]
        source[r, slot] = code
        filled[r] += 1
        blocked[r, it] = True
