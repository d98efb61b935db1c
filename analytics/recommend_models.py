"""The fitted recommendation models as plain data, their settings, and how they are stored.

A fitted model is a frozen dataclass: its settings apart from its learned state (numpy arrays, named with a
trailing underscore as in scikit-learn), and the product ids it was fitted on (``item_ids_``), so it can be used
on a later pull of the warehouse in which products were added. ``to_bytes()`` / :func:`model_from_bytes` store
one with ``np.savez`` and JSON (no pickle), so a registry can keep it. The fitting is in
:mod:`analytics.recommenders`; lists are made in :mod:`analytics.recommend_lists`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from analytics.errors import InputError

FORMAT_VERSION = 1
#: Named parts of the hybrid, in order (see analytics.recommenders).
HYBRID_PARTS: tuple[str, ...] = ("repeat", "co_purchase", "category", "subcategory", "brand", "popular")


class RecommenderError(InputError):
    """Settings a recommender cannot be fitted with, or a stored model that cannot be read."""


def _bounded(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise RecommenderError(f"{name} must be a number from {lo} to {hi}, not {value!r}")


# --- settings ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PopularSettings:
    """Popular lists: buyers in the last ``window_days``; segments need ``min_segment_buyers`` buyers."""

    window_days: int = 90
    min_segment_buyers: int = 50
    by_segment: bool = True

    def __post_init__(self) -> None:
        _bounded("window_days", self.window_days, 1, 3660)
        _bounded("min_segment_buyers", self.min_segment_buyers, 1, 10_000_000)


@dataclass(frozen=True)
class ItemItemSettings:
    """Item-item: ``similarity`` cosine or lift; ``neighbours`` kept per item; pairs need ``min_common`` buyers;
    a past purchase's weight halves every ``half_life_days``."""

    similarity: str = "cosine"
    neighbours: int = 50
    min_common: int = 2
    half_life_days: float = 180.0

    def __post_init__(self) -> None:
        if self.similarity not in ("cosine", "lift"):
            raise RecommenderError(f"similarity must be cosine or lift, not {self.similarity!r}")
        _bounded("neighbours", self.neighbours, 1, 1000)
        _bounded("min_common", self.min_common, 1, 1000)
        _bounded("half_life_days", self.half_life_days, 1, 100_000)


@dataclass(frozen=True)
class FactorSettings:
    """Implicit ALS: factors, iterations, regularisation, alpha (confidence scale of the BM25 weights), seed."""

    factors: int = 64
    iterations: int = 8
    regularization: float = 0.05
    alpha: float = 2.0
    bm25_k1: float = 100.0
    bm25_b: float = 0.8
    seed: int = 42

    def __post_init__(self) -> None:
        _bounded("factors", self.factors, 2, 512)
        _bounded("iterations", self.iterations, 1, 100)
        _bounded("regularization", self.regularization, 0, 1000)
        _bounded("alpha", self.alpha, 0.01, 1000)
        _bounded("seed", self.seed, 0, 2**32 - 1)


@dataclass(frozen=True)
class HybridSettings:
    """Hybrid: item-item settings for the co-purchase part, the popularity window for the content parts,
    ``prior_strength`` (how many purchases' worth of the shop-wide mix smooths a member's own), and the EM
    iterations that learn the part weights."""

    item_item: ItemItemSettings = ItemItemSettings()
    window_days: int = 90
    prior_strength: float = 0.2
    em_iterations: int = 200

    def __post_init__(self) -> None:
        _bounded("window_days", self.window_days, 1, 3660)
        _bounded("prior_strength", self.prior_strength, 0.001, 1000)
        _bounded("em_iterations", self.em_iterations, 1, 10_000)


# --- fitted models ----------------------------------------------------------------------------------------

class _Stored:
    """``to_bytes`` for the model dataclasses: arrays go into an ``.npz`` archive, everything else into JSON."""

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        meta = {"format": FORMAT_VERSION, "model": _pack(self, "", arrays)}
        buffer = io.BytesIO()
        np.savez(buffer, __meta__=np.array(json.dumps(meta)), **arrays)
        return buffer.getvalue()


@dataclass(frozen=True)
class PopularModel(_Stored):
    """Buyers per item in the popularity window, overall (``buyers_``) and per segment: ``segment_keys_[s]``
    holds a code per segment attribute (into ``segment_labels_``; -1 unknown, -2 any value),
    ``segment_buyers_[s]`` the members who bought anything, the CSR parts segments x items the buyers per item."""

    settings: PopularSettings
    item_ids_: np.ndarray
    buyers_: np.ndarray
    segment_labels_: tuple[tuple[str, ...], ...]
    segment_keys_: np.ndarray
    segment_buyers_: np.ndarray
    segment_counts_indptr_: np.ndarray
    segment_counts_indices_: np.ndarray
    segment_counts_data_: np.ndarray

    def segment_counts(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.segment_counts_data_, self.segment_counts_indices_, self.segment_counts_indptr_),
                             shape=(len(self.segment_keys_), len(self.item_ids_)))

    @property
    def overall_segment(self) -> int:
        return int(np.flatnonzero(np.all(self.segment_keys_ == -2, axis=1))[0])


@dataclass(frozen=True)
class ItemItemModel(_Stored):
    """Each item's most similar items: row i of an items x items CSR matrix (sorted columns)."""

    settings: ItemItemSettings
    item_ids_: np.ndarray
    neighbours_indptr_: np.ndarray
    neighbours_indices_: np.ndarray
    neighbours_data_: np.ndarray

    def similarities(self) -> sp.csr_matrix:
        n = len(self.item_ids_)
        return sp.csr_matrix((self.neighbours_data_, self.neighbours_indices_, self.neighbours_indptr_), shape=(n, n))


@dataclass(frozen=True)
class FactorModel(_Stored):
    """Item factors of an implicit ALS fit, and what BM25 weighting of a member's history needs (idf per item,
    the mean row total of the fit)."""

    settings: FactorSettings
    item_ids_: np.ndarray
    item_factors_: np.ndarray
    idf_: np.ndarray
    mean_row_total_: float


@dataclass(frozen=True)
class HybridModel(_Stored):
    """The hybrid's parts (see analytics.recommenders): item-item similarities, product codes per content
    attribute (-1 unknown), each product's share of its attribute value's recent buyers (``within_``, one row
    per content attribute), the shop-wide mix of values (``prior_``, concatenated per attribute,
    ``prior_offsets_``), smoothed popularity, and the part weights learned by EM (``weights_``, by HYBRID_PARTS)."""

    settings: HybridSettings
    item_ids_: np.ndarray
    item_item: ItemItemModel
    codes_: np.ndarray
    within_: np.ndarray
    prior_: np.ndarray
    prior_offsets_: np.ndarray
    popular_: np.ndarray
    weights_: np.ndarray
    validation_pairs_: int


@dataclass(frozen=True)
class Recommender(_Stored):
    """What makes lists: a named algorithm's personal model (None for the popularity baselines) and the popular
    lists that serve members with too little history (cold start)."""

    algorithm: str
    popular: PopularModel
    personal: ItemItemModel | FactorModel | HybridModel | None


MODEL_CLASSES = {c.__name__: c for c in (PopularSettings, ItemItemSettings, FactorSettings, HybridSettings,
                                         PopularModel, ItemItemModel, FactorModel, HybridModel, Recommender)}


def _pack(obj: Any, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {"class": type(obj).__name__, "fields": {}}
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if is_dataclass(value):
            out["fields"][f.name] = {"dataclass": _pack(value, key + ".", arrays)}
        elif isinstance(value, np.ndarray):
            arrays[key] = value.astype(str) if value.dtype == object else value
            out["fields"][f.name] = {"array": key}
        else:
            out["fields"][f.name] = {"value": value.item() if isinstance(value, np.generic) else value}
    return out


def _unpack(spec: dict[str, Any], arrays: Any) -> Any:
    cls = MODEL_CLASSES.get(spec.get("class", ""))
    if cls is None:
        raise RecommenderError(f"unknown model part {spec.get('class')!r} in the stored model")
    values = {}
    for name, entry in spec["fields"].items():
        if "dataclass" in entry:
            values[name] = _unpack(entry["dataclass"], arrays)
        elif "array" in entry:
            array = arrays[entry["array"]]
            values[name] = array.astype(object) if array.dtype.kind == "U" else array
        else:
            values[name] = _tuples(entry["value"])
    return cls(**values)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def model_from_bytes(blob: bytes) -> Any:
    """A model (or its settings) stored with ``to_bytes()``."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            meta = json.loads(str(archive["__meta__"]))
            if meta.get("format") != FORMAT_VERSION:
                raise RecommenderError(f"stored model format {meta.get('format')} is not {FORMAT_VERSION}")
            return _unpack(meta["model"], archive)
    except RecommenderError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RecommenderError(f"not a stored recommender model ({error})") from error


# --- shared numerics --------------------------------------------------------------------------------------

def top_items(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best columns of each row, best first. Equal scores go to the lower column, so the result never
    depends on partition internals or on which other rows share the batch. Scores must not be NaN."""
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0 or scores.shape[0] == 0:
        return np.zeros((scores.shape[0], max(k, 0)), dtype=np.int64)
    part = np.argpartition(scores, n - k, axis=1)[:, n - k:] if k < n else \
        np.broadcast_to(np.arange(n), scores.shape).copy()
    values = np.take_along_axis(scores, part, axis=1)
    if k < n:  # rows where the k-th value ties with a column left outside: choose exactly
        kth = values.min(axis=1)
        inside = (values == kth[:, None]).sum(axis=1)
        fix = np.flatnonzero((scores == kth[:, None]).sum(axis=1) > inside)
        if fix.size:
            keys = sortable_keys(scores[fix])
            part[fix] = np.argpartition(keys, n - k, axis=1)[:, n - k:]
            values[fix] = np.take_along_axis(scores[fix], part[fix], axis=1)
    order = np.lexsort((part, -values), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def sortable_keys(scores: np.ndarray) -> np.ndarray:
    """Unique int64 keys ordered like (score, -column): the float32 bit pattern made monotonic, then the column."""
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.int32).astype(np.int64)
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    n = scores.shape[1]
    shift = max(1, int(n - 1).bit_length())
    return (bits << shift) | (n - 1 - np.arange(n, dtype=np.int64))


def bm25_rows(matrix: sp.csr_matrix, idf: np.ndarray, mean_row_total: float, k1: float, b: float) -> sp.csr_matrix:
    """BM25 weights of order counts (as ``implicit.nearest_neighbours.bm25_weight``), with a given idf and mean
    row total, so a member's history weighs the same when lists are made as when the model was fitted."""
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    length_norm = (1.0 - b) + b * totals / max(mean_row_total, 1e-9)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    data = matrix.data * (k1 + 1.0) / (k1 * length_norm[rows] + matrix.data) * idf[matrix.indices]
    return sp.csr_matrix((data.astype(np.float32), matrix.indices, matrix.indptr), shape=matrix.shape)


def recency_weights(indptr: np.ndarray, indices: np.ndarray, last_day: np.ndarray, today: int, half_life: float,
                    n_items: int) -> sp.csr_matrix:
    """Members x items: 0.5^(days since last bought / half-life), each row normalised to sum 1."""
    weights = np.power(0.5, np.maximum(today - last_day, 0) / half_life).astype(np.float64)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    totals = np.bincount(rows, weights=weights, minlength=len(indptr) - 1)
    weights = weights / np.where(totals > 0, totals, 1.0)[rows]
    return sp.csr_matrix((weights.astype(np.float32), indices, indptr), shape=(len(indptr) - 1, n_items))


def csr_values(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows[i], cols[i]]`` for each i (0 where nothing is stored); the matrix needs sorted columns."""
    n = matrix.shape[1]
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * n + matrix.indices
    wanted = np.asarray(rows, dtype=np.int64) * n + np.asarray(cols, dtype=np.int64)
    if len(keys) == 0:
        return np.zeros(len(wanted), dtype=matrix.dtype)
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[pos] == wanted, matrix.data[pos], 0)
