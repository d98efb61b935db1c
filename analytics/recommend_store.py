"""Trained recommenders as stored versions, and what is made from them: the stored lists of any members with
reasons in words, and campaign exports.

A **version** (see :mod:`analytics.storage.recommender_registry` for where and how it is kept) is a model fitted on
the warehouse's purchases up to a day, plus the top-N list it made for every member then, under the list settings
of the version. Training is a batch job (``python -m analytics recommend train`` from cron, or the page's button);
pages and exports only read versions.

Why the lists are stored and not remade on demand: a campaign export must be reproducible (the same version gives
the same rows however the warehouse has moved on), and the experiment read-out must know what each member of both
arms was, or would have been, recommended. Reasons are stored structured (kind, past product, day) and put into
words when read (:func:`analytics.recommend_reasons.reason_sentences`), so a million lists stay small.

A campaign export (:func:`export_recommendations`) is the one path for "top N per member of an audience": masked
member rows (with the audience's own columns, such as a campaign's arm) joined to the version's stored lists,
the campaign link recorded, the audit-log row written, then the rows handed over; the page's download and the
command line both call it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from analytics.access import EXPORT_IDS, EXPORT_MEMBERS, Principal, allowed, require
from analytics.audiences import Audience
from analytics.errors import InputError
from analytics.exports import MemberExport
from analytics.filters import OPEN_SCOPE, Scope
from analytics.member_rows import audience_rows
from analytics.privacy import pseudonymise
from analytics.recommend_data import RecommendData, load_data
from analytics.recommend_lists import PATHS, REASON_KINDS, SOURCES, UNKNOWN_CATEGORY, ListMaker, ListSettings
from analytics.recommend_models import Recommender, model_from_bytes
from analytics.recommend_reasons import day_dates, explain, reason_sentences, segment_words
from analytics.recommenders import ALGORITHMS, DEFAULT_ALGORITHM, fit
from analytics.storage.db import Bind
from analytics.storage.recommender_registry import (
    CampaignLink,
    StoredRecommender,
    campaign_link,
    link_campaign,
    load_recommender,
    read_lists,
    read_members,
    read_model_bytes,
    read_products,
    save_recommender,
)

#: At most this many rows (members x items) in one export.
MAX_EXPORT_ROWS = 5_000_000
#: At most this many members' stored lists read at once by id.
MAX_MEMBERS_READ = 2_000_000
LIST_COLUMNS = ["member_id", "rank", "product_id", "product", "category", "score", "source", "reason_kind",
                "because_product_id", "because_product", "because_date", "segment", "path", "reason"]
#: The recommendation columns of an export, after the member's own (masked) columns.
EXPORT_LIST_COLUMNS = ["rank", "product_id", "product", "category", "reason"]


class RecommendStoreError(InputError):
    """A request the stored versions cannot serve (an unknown algorithm, too many rows, a member without a list)."""


# --- settings as JSON -------------------------------------------------------------------------------------

def settings_to_json(settings: ListSettings) -> dict[str, Any]:
    return {"n": settings.n, "exclude_bought": settings.exclude_bought,
            "rebuy_categories": None if settings.rebuy_categories is None else list(settings.rebuy_categories),
            "exclude_categories": list(settings.exclude_categories), "max_per_category": settings.max_per_category}


def settings_from_json(data: dict[str, Any]) -> ListSettings:
    rebuy = data.get("rebuy_categories")
    return ListSettings(n=int(data.get("n", 10)), exclude_bought=bool(data.get("exclude_bought", True)),
                        rebuy_categories=None if rebuy is None else tuple(rebuy),
                        exclude_categories=tuple(data.get("exclude_categories", ())),
                        max_per_category=data.get("max_per_category"))


# --- training and storing ---------------------------------------------------------------------------------

def list_tables(maker: ListMaker) -> tuple[pa.Table, pa.Table, pa.Table, dict[str, int]]:
    """Every member's list under the maker's settings, as the three stored tables (members, products, lists) and
    the members per path."""
    data, model = maker.data, maker.model
    recs = maker.recommend()
    rows, ranks = np.nonzero(recs.items >= 0)
    slot = (rows, ranks)
    words = {s: segment_words(model.popular, s) for s in np.unique(recs.segment).tolist()}
    segment_codes, segment_rows = pd.factorize(recs.segment)
    members = pa.table({
        "member": pa.array(recs.members.astype(np.int32)),
        "member_id": pa.array(data.members.ids[recs.members].astype(str)),
        "segment": pa.DictionaryArray.from_arrays(pa.array(segment_codes.astype(np.int32)),
                                                  pa.array([words[int(s)] for s in segment_rows])),
        "path": pa.DictionaryArray.from_arrays(pa.array(recs.path.astype(np.int32)), pa.array(list(PATHS))),
    })
    products = product_table(data)

    def labelled(codes: np.ndarray, labels: Sequence[str]) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(list(labels)))

    lists = pa.table({
        "member": pa.array(recs.members[rows].astype(np.int32)),
        "rank": pa.array((ranks + 1).astype(np.int16)),
        "product": pa.array(recs.items[slot].astype(np.int32)),
        "score": pa.array(recs.scores[slot].astype(np.float32)),
        "source": labelled(recs.source[slot], SOURCES),
        "reason_kind": labelled(recs.kind[slot], REASON_KINDS),
        "because_product": pa.array(recs.because_item[slot].astype(np.int32)),
        "because_day": pa.array(recs.because_day[slot].astype(np.int32)),
    })
    return members, products, lists, recs.path_counts()


def product_table(data: RecommendData) -> pa.Table:
    p = data.products

    def names(codes: np.ndarray, labels: tuple[str, ...]) -> pa.Array:
        table = np.asarray((*labels, None), dtype=object)
        return pa.array(table[np.where(codes >= 0, codes, len(labels))], type=pa.string())

    return pa.table({"product": pa.array(np.arange(p.size, dtype=np.int32)), "product_id": pa.array(p.ids.astype(str)),
                     "name": pa.array(p.names.astype(str)), "category": names(p.category, p.categories),
                     "subcategory": names(p.subcategory, p.subcategories), "brand": names(p.brand, p.brands)})


def store_version(state: Engine, model: Recommender, data: RecommendData, settings: ListSettings, author: str,
                  summary: dict[str, Any] | None = None) -> StoredRecommender:
    """Make every member's list with ``model`` under ``settings`` and store them with the model as a new version."""
    began = time.perf_counter()
    maker = ListMaker(model, data, settings)
    members, products, lists, paths = list_tables(maker)
    listed = time.perf_counter() - began
    facts = {"members": int(data.members.size), "products": int(data.products.size), "pairs": int(data.history.nnz),
             "paths": paths, "list_seconds": round(listed, 2), "history_end": data.history_end.isoformat(),
             **(summary or {})}
    return save_recommender(state, algorithm=model.algorithm, as_of=data.history_end, list_length=settings.n,
                            settings=settings_to_json(settings), summary=facts, model=model.to_bytes(),
                            members=members, products=products, lists=lists, author=author)


def train_version(engine: Bind, state: Engine, author: str, algorithm: str = DEFAULT_ALGORITHM,
                  as_of: date | None = None, settings: ListSettings | None = None,
                  evaluation: dict[str, Any] | None = None) -> StoredRecommender:
    """Read the purchases up to ``as_of`` (default: the last order day), fit ``algorithm``, make and store every
    member's list: the batch job behind ``python -m analytics recommend train``. ``evaluation`` (an out-of-time
    evaluation's figures) is kept in the version's summary when given."""
    if algorithm not in ALGORITHMS:
        raise RecommendStoreError(f"Unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    began = time.perf_counter()
    data = load_data(engine, history_end=as_of, release_memory=True)  # the fit and the lists need the memory
    loaded = time.perf_counter()
    model = fit(data, algorithm)
    fitted = time.perf_counter()
    summary = {"load_seconds": round(loaded - began, 2), "fit_seconds": round(fitted - loaded, 2)}
    if evaluation is not None:
        summary["evaluation"] = evaluation
    return store_version(state, model, data, settings or ListSettings(), author, summary)


def path_shares(stored: StoredRecommender) -> dict[str, float]:
    """Share of the version's members served by each path (:data:`analytics.recommend_lists.PATHS`)."""
    members = max(int(stored.summary.get("members", 0)), 1)
    return {path: int(stored.summary.get("paths", {}).get(path, 0)) / members for path in PATHS}


def load_model(stored: StoredRecommender) -> Recommender:
    """The version's model, read from its checked file."""
    return model_from_bytes(read_model_bytes(stored))


# --- stored lists -----------------------------------------------------------------------------------------

class StoredLists:
    """A version's stored lists, read by member id, with reasons in words. ``verify`` checks every file's SHA-256
    once (exports and read-outs); a page reading one member may skip it."""

    def __init__(self, stored: StoredRecommender, verify: bool = True) -> None:
        self.stored, self.verify = stored, verify
        members = read_members(stored, verify)
        if not np.array_equal(members.column("member").to_numpy(), np.arange(members.num_rows)):
            raise RecommendStoreError(f"The stored members of {stored.label} are not numbered 0 to "
                                      f"{members.num_rows - 1}; train a new version.")
        self.member_ids = members.column("member_id").combine_chunks()  # Arrow: looked up in C, no Python index
        self.segment = members.column("segment").combine_chunks()
        self.path = members.column("path").combine_chunks()
        products = read_products(stored, verify)
        self.products = {name: products.column(name).to_numpy(zero_copy_only=False).astype(object)
                         for name in ("product_id", "name", "category", "subcategory", "brand")}

    @property
    def list_length(self) -> int:
        return self.stored.list_length

    def member_codes(self, member_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Per member id, its code in the stored lists (-1 = no stored list: registered after training)."""
        ids = np.asarray(member_ids, dtype=object)
        if ids.size > MAX_MEMBERS_READ:
            raise RecommendStoreError(f"Read at most {MAX_MEMBERS_READ:,} members' lists at once, not {ids.size:,}.")
        if ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        found = pc.index_in(pa.array(ids.tolist(), type=pa.string()), value_set=self.member_ids)
        return found.fill_null(-1).to_numpy().astype(np.int64)

    def _take(self, column: pa.Array, codes: np.ndarray) -> np.ndarray:
        values = column.take(pa.array(codes))
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        return values.to_numpy(zero_copy_only=False).astype(object)

    def _n(self, n: int | None) -> int:
        n = self.list_length if n is None else n
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= self.list_length:
            raise RecommendStoreError(f"Version {self.stored.label} stores {self.list_length} items per member: "
                                      f"ask for 1 to {self.list_length}, not {n!r}.")
        return int(n)

    def rows(self, member_ids: Sequence[str] | np.ndarray, n: int | None = None) -> pd.DataFrame:
        """The stored top ``n`` (default all stored) of these members, in the order given, then by rank:
        :data:`LIST_COLUMNS`. Members without a stored list have no rows."""
        n = self._n(n)
        codes = self.member_codes(member_ids)
        table = read_lists(self.stored, codes[codes >= 0], n, self.verify)
        if table.num_rows == 0:
            return pd.DataFrame(columns=LIST_COLUMNS)
        member = table.column("member").to_numpy().astype(np.int64)
        product = table.column("product").to_numpy().astype(np.int64)
        because = table.column("because_product").to_numpy().astype(np.int64)
        known = because >= 0
        p = self.products

        def past(column: str) -> np.ndarray:
            return np.where(known, p[column][np.maximum(because, 0)], None)

        kind = table.column("reason_kind").to_pandas().to_numpy(dtype=object)
        frame = pd.DataFrame({
            "member_id": self._take(self.member_ids, member),
            "rank": table.column("rank").to_numpy().astype(np.int64),
            "product_id": p["product_id"][product],
            "product": p["name"][product],
            "category": np.where(pd.isna(p["category"][product]), UNKNOWN_CATEGORY, p["category"][product]),
            "score": table.column("score").to_numpy().astype(np.float64),
            "source": table.column("source").to_pandas().to_numpy(dtype=object),
            "reason_kind": kind,
            "because_product_id": past("product_id"),
            "because_product": past("name"),
            "because_date": day_dates(np.where(known, table.column("because_day").to_numpy(), -1)),
            "segment": self._take(self.segment, member),
            "path": self._take(self.path, member),
        })
        frame["reason"] = reason_sentences(pd.DataFrame({
            "kind": kind, "because_product": frame["because_product"], "because_date": frame["because_date"],
            "category": p["category"][product], "subcategory": p["subcategory"][product],
            "brand": p["brand"][product], "segment": frame["segment"]}))
        position = np.full(len(self.member_ids), -1, dtype=np.int64)  # the order the members were asked in
        position[codes[codes >= 0][::-1]] = np.arange((codes >= 0).sum())[::-1]
        order = np.lexsort((frame["rank"].to_numpy(), position[member]))
        return frame.iloc[order].reset_index(drop=True)[LIST_COLUMNS]

    def pairs(self, member_ids: Sequence[str] | np.ndarray, n: int | None = None) -> pd.DataFrame:
        """``member_id, product_id`` of the stored top ``n`` of these members (no reasons: for read-outs)."""
        codes = self.member_codes(member_ids)
        table = read_lists(self.stored, codes[codes >= 0], self._n(n), self.verify)
        return pd.DataFrame({"member_id": self._take(self.member_ids, table.column("member").to_numpy()),
                             "product_id": self.products["product_id"][table.column("product").to_numpy()]})


# --- campaign export --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecommendationExport:
    """What a recommendation export takes from a version: the app-state database it is registered in, the version,
    how many items per member, and the campaign id to link it to (None: no link)."""

    state: Engine
    stored: StoredRecommender
    n: int
    campaign_id: str | None = None

    def __post_init__(self) -> None:
        n = self.n
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.stored.list_length:
            raise RecommendStoreError(f"Version {self.stored.label} stores {self.stored.list_length} items per "
                                      f"member: export 1 to {self.stored.list_length}, not {n!r}.")


def export_frame(engine: Bind, audience: Audience, export: RecommendationExport, lists: StoredLists | None = None,
                 scope: Scope = OPEN_SCOPE) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The masked member rows of ``audience`` that ``scope`` allows (with the audience's own columns, e.g. the arm)
    and each member's stored top ``n``: one row per (member, rank), members ordered by id; and the facts an audit
    row records."""
    members = audience_rows(engine, audience, scope=scope)
    extra = audience.annotations(engine)
    if extra is not None:
        members = members.merge(extra, on="member_id", how="left")
    if len(members) * export.n > MAX_EXPORT_ROWS:
        raise RecommendStoreError(f"That is {len(members):,} members x {export.n} items, more than "
                                  f"{MAX_EXPORT_ROWS:,} rows: narrow the audience or export fewer items.")
    lists = lists or StoredLists(export.stored)
    recs = lists.rows(members["member_id"].to_numpy(dtype=object), export.n)
    rows = members.merge(recs[["member_id", *EXPORT_LIST_COLUMNS]], on="member_id", how="inner")
    without = int(len(members) - recs["member_id"].nunique())
    detail = {"audience": audience.kind, "source": audience.describe(), "rows": len(rows),
              "members": int(recs["member_id"].nunique()), "members_without_list": without, "masked": True,
              "recommender": export.stored.label, "list_length": export.n,
              "lists_sha256": export.stored.files["lists.parquet"]["sha256"]}
    if export.campaign_id:
        detail["campaign_id"] = export.campaign_id
    return rows.reset_index(drop=True), detail


def export_recommendations(engine: Bind, audience: Audience, export: RecommendationExport, principal: Principal,
                           page: str, audit: Callable[..., None], scope: Scope = OPEN_SCOPE) -> MemberExport:
    """The one path of a recommendation export: AccessDenied unless ``principal`` may export members; rows made for
    the members ``scope`` allows, the campaign linked (refused when the campaign already uses another version or
    length), the audit row written by ``audit(principal, action, detail, rows=...)`` (an export that cannot be
    logged does not happen), then the file's rows (member ids pseudonymised unless the role may export ids)."""
    require(principal, EXPORT_MEMBERS)
    rows, detail = export_frame(engine, audience, export, scope=scope)
    pseudonymous = not allowed(principal, EXPORT_IDS)
    detail["member_ids"] = "pseudonymous" if pseudonymous else "real"
    if export.campaign_id:
        link_campaign(export.state, export.campaign_id, export.stored.version, export.n, detail["members"],
                      principal.identity)
    audit(principal, "export_recommendations", {"page": page, **detail}, rows=len(rows))
    return MemberExport(pseudonymise(rows, secrets.token_hex(16)) if pseudonymous else rows, pseudonymous)


def linked_export(state: Engine, stored: StoredRecommender, n: int, campaign_id: str | None) -> tuple[
        RecommendationExport, CampaignLink | None]:
    """The export a campaign id allows: a campaign already linked keeps its version and length (so an export can be
    made again identically); otherwise ``stored`` and ``n``."""
    link = campaign_link(state, campaign_id) if campaign_id else None
    if link is not None and (link.version, link.list_length) != (stored.version, n):
        return RecommendationExport(state, load_recommender(state, link.version), link.list_length, campaign_id), link
    return RecommendationExport(state, stored, n, campaign_id or None), link


# --- one member, live ---------------------------------------------------------------------------------------

#: Longest member id or id prefix searched for.
MAX_ID_LENGTH = 200


def member_index(data: RecommendData) -> pd.Index:
    """Member ids -> codes of ``data``: build it once per data pull and pass it to the look-ups below."""
    return pd.Index(data.members.ids)


def find_members(data: RecommendData, text: str, limit: int = 20, index: pd.Index | None = None) -> list[str]:
    """Member ids of ``data`` equal to ``text`` (that one alone) or starting with it, in id order, at most
    ``limit``; empty for blank text."""
    needle = (text or "").strip()[:MAX_ID_LENGTH]
    if not needle:
        return []
    index = member_index(data) if index is None else index
    if index.get_indexer([needle])[0] >= 0:
        return [needle]
    ids = data.members.ids
    starts = pd.Series(ids, dtype=object).str.startswith(needle).to_numpy(dtype=bool)
    return sorted(ids[starts].tolist())[:limit]


def member_list(maker: ListMaker, member_id: str, index: pd.Index | None = None) -> pd.DataFrame | None:
    """One member's list made now by ``maker`` (its model over its data, under its settings) with reasons in
    words (:data:`analytics.recommend_reasons.EXPLAIN_COLUMNS` and ``path``); None for an unknown member."""
    index = member_index(maker.data) if index is None else index
    code = int(index.get_indexer([member_id])[0])
    if code < 0:
        return None
    recs = maker.recommend([code])
    return explain(recs, maker.model, maker.data).assign(path=PATHS[int(recs.path[0])])


def recent_purchases(data: RecommendData, member: int, limit: int = 10) -> pd.DataFrame:
    """What a member bought (completed orders up to the data's end), latest first: ``product_id, product,
    category, orders, last_bought``, at most ``limit`` products."""
    h, products = data.history, data.products
    items = h.row(member)
    start = h.indptr[member]
    days = h.last_day[start:start + items.size]
    counts = h.orders[start:start + items.size]
    order = np.lexsort((items, -days))[:limit]
    category = products.category[items[order]]
    return pd.DataFrame({
        "product_id": products.ids[items[order]],
        "product": products.names[items[order]],
        "category": np.where(category >= 0, np.asarray((*products.categories, ""), dtype=object)[category],
                             UNKNOWN_CATEGORY),
        "orders": counts[order].astype(np.int64),
        "last_bought": day_dates(days[order]),
    })

