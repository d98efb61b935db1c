"""What recommenders learn from, read from the warehouse: who bought which product, when, and the attributes of
members and products.

One SQL statement aggregates the completed orders of members to one row per (member, product): the number of
distinct orders holding the product and the day of the last one before the cutoff, and the number of orders in
the test window after it (an out-of-time split: history up to day T - H, test purchases in (T - H, T]). Members
and products are numbered in the warehouse (``ROW_NUMBER`` over their ids), so only integer codes travel; the
rows become sparse CSR matrices (members x products, :class:`Purchases`), never a dense one. Every member
registered by the end of the data gets a row, bought or not, so every member can be given recommendations.

Member segments (tier, region, acquisition channel) are the members' current values; in an out-of-time
evaluation that is a mild look-ahead for tiers, accepted because they only pick which popular list a cold member
sees. Days are counted from 1970-01-01 in the shop's local time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sqlalchemy import Integer, Select, case, cast, extract, func, literal, select

from analytics.errors import InputError
from analytics.sqlparts import count_if
from analytics.storage.contract import members, order_items, orders, products
from analytics.storage.db import Bind, connection, read_frame_columnar
from analytics.storage.warehouse import release_cached_memory

#: The member attributes that define segments for popular-item lists, most important first.
SEGMENT_ATTRIBUTES: tuple[str, ...] = ("tier", "region", "acquisition_channel")
#: At most this many (member, product) rows are read; a longer history is refused (shorten it with history_days).
MAX_PAIRS = 60_000_000
#: Longest history and test window accepted, in days.
MAX_DAYS = 3_660
#: The last days of the history that models may hold out to tune themselves (see ``Purchases.earlier_day``).
VALIDATION_DAYS = 30
EPOCH = date(1970, 1, 1)


class RecommendDataError(InputError):
    """Settings the data cannot be read with (a date outside the data, too many rows)."""


@dataclass(frozen=True)
class Catalogue:
    """Products by code (0..n-1, in product_id order): ids, names and category, subcategory and brand codes
    (-1 = unknown) with their labels."""

    ids: np.ndarray
    names: np.ndarray
    category: np.ndarray
    categories: tuple[str, ...]
    subcategory: np.ndarray
    subcategories: tuple[str, ...]
    brand: np.ndarray
    brands: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.ids)

    def category_code(self, name: str) -> int:
        """The code of a category name, -1 when no product has it."""
        return self.categories.index(name) if name in self.categories else -1


@dataclass(frozen=True)
class MemberTable:
    """Members by code (0..n-1, in member_id order): ids and one segment code per attribute of
    :data:`SEGMENT_ATTRIBUTES` (``segments[:, a]``, -1 = unknown) with the labels per attribute."""

    ids: np.ndarray
    segments: np.ndarray
    labels: tuple[tuple[str, ...], ...]

    @property
    def size(self) -> int:
        return len(self.ids)

    def segment_values(self, member: int) -> dict[str, str | None]:
        """A member's segment attributes by name (None = unknown)."""
        return {attr: (self.labels[a][c] if (c := int(self.segments[member, a])) >= 0 else None)
                for a, attr in enumerate(SEGMENT_ATTRIBUTES)}


@dataclass(frozen=True)
class Purchases:
    """Members x products in CSR form: row ``m`` holds ``indices[indptr[m]:indptr[m + 1]]`` (sorted product
    codes), with the number of distinct completed orders holding each product, the day of the last one, and the
    day of the last one before the final ``VALIDATION_DAYS`` of the history (-1 = none; what a model tuning itself
    on those days may know)."""

    indptr: np.ndarray
    indices: np.ndarray
    orders: np.ndarray
    last_day: np.ndarray
    earlier_day: np.ndarray
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def matrix(self, values: str = "orders") -> sp.csr_matrix:
        """The CSR matrix of ``orders`` counts (float32), ``binary`` ones, or ``last_day`` numbers."""
        data = {"orders": lambda: self.orders.astype(np.float32), "binary": lambda: np.ones(self.nnz, np.float32),
                "last_day": lambda: self.last_day}[values]()
        return sp.csr_matrix((data, self.indices, self.indptr), shape=self.shape)

    def row(self, member: int) -> np.ndarray:
        return self.indices[self.indptr[member]:self.indptr[member + 1]]

    def buyers(self) -> np.ndarray:
        """Members who bought each product."""
        return np.bincount(self.indices, minlength=self.shape[1])

    def active_members(self) -> np.ndarray:
        """Booleans per member: bought anything."""
        return np.diff(self.indptr) > 0


@dataclass(frozen=True)
class RecommendData:
    """Everything a recommender is fitted on and evaluated against. ``history`` covers purchases up to
    ``history_end`` (inclusive); ``test`` those in the following days up to ``test_end`` (None without a test
    window)."""

    members: MemberTable
    products: Catalogue
    history: Purchases
    test: Purchases | None
    history_end: date
    test_end: date | None

    def validation_split(self) -> RecommendData:
        """The same members and products, with the history's last ``VALIDATION_DAYS`` held out as the test
        window: what a model may tune itself on without seeing the real test window. Order counts are not known
        per sub-period there, so every earlier purchase counts as one order."""
        h = self.history
        keep = h.earlier_day >= 0
        rows = np.repeat(np.arange(h.shape[0]), np.diff(h.indptr))
        end = self.history_end - timedelta(days=VALIDATION_DAYS)
        held_out = h.last_day > day_number(end)

        def part(mask: np.ndarray, days: np.ndarray) -> Purchases:
            indptr = np.zeros(h.shape[0] + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows[mask], minlength=h.shape[0]), out=indptr[1:])
            none = np.full(int(mask.sum()), -1, dtype=np.int32)
            return Purchases(indptr, h.indices[mask], np.ones(int(mask.sum()), np.int32), days[mask], none, h.shape)

        return RecommendData(self.members, self.products, part(keep, h.earlier_day), part(held_out, h.last_day), end,
                             self.history_end)


def day_number(day: date) -> int:
    """Days since 1970-01-01 (how purchase days are held)."""
    return (day - EPOCH).days


def from_day_number(number: int) -> date:
    return EPOCH + timedelta(days=int(number))


def _midnight_after(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time())


def _numbered(id_column, where=None) -> Select:
    query = select(id_column.label("id"), cast(func.row_number().over(order_by=id_column) - 1, Integer).label("code"))
    return query.where(where) if where is not None else query


def _factorized(values: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    codes, labels = pd.factorize(values, sort=True, use_na_sentinel=True)
    return codes.astype(np.int32), tuple(str(v) for v in labels)


def pairs_select(registered_before: datetime | None, lo: datetime | None, cutoff: datetime | None,
                 hi: datetime | None, validation_start: datetime | None = None) -> Select:
    """Per (member code, product code): ``n_history`` orders in [lo, cutoff), ``last_day`` of the last of them,
    ``earlier_day`` of the last before ``validation_start``, ``n_test`` orders in [cutoff, hi). Without a cutoff
    everything up to ``hi`` is history.

    Lines are first grouped by (member code, product code, order), so a product on two lines of one order counts
    once; counting distinct orders per pair instead took 2.6 times as long at 1M members."""
    member_codes = _numbered(members.c.member_id, members.c.registered_at < registered_before
                             if registered_before is not None else None).subquery("member_codes")
    product_codes = _numbered(products.c.product_id).subquery("product_codes")
    o = orders.c
    conditions = [o.status == "completed", o.member_id.is_not(None)]
    if lo is not None:
        conditions.append(o.ordered_at >= lo)
    if hi is not None:
        conditions.append(o.ordered_at < hi)
    source = (orders.join(order_items, order_items.c.order_id == o.order_id)
              .join(member_codes, member_codes.c.id == o.member_id)
              .join(product_codes, product_codes.c.id == order_items.c.product_id))
    per_order = (select(member_codes.c.code.label("member"), product_codes.c.code.label("product"),
                        func.max(o.ordered_at).label("at"))
                 .select_from(source).where(*conditions)
                 .group_by(member_codes.c.code, product_codes.c.code, o.order_id).subquery("per_order"))
    at = per_order.c.at
    in_history = at < cutoff if cutoff is not None else None
    history_count = count_if(in_history) if in_history is not None else func.count()
    last = func.max(case((in_history, at))) if in_history is not None else func.max(at)
    earlier = _day_of(func.max(case((at < validation_start, at)))) if validation_start is not None else \
        cast(None, Integer)
    test_count = count_if(at >= cutoff) if cutoff is not None else literal(0)
    return (select(per_order.c.member, per_order.c.product,
                   cast(history_count, Integer).label("n_history"),
                   _day_of(last).label("last_day"),
                   earlier.label("earlier_day"),
                   cast(test_count, Integer).label("n_test"))
            .group_by(per_order.c.member, per_order.c.product))


def _day_of(timestamp):
    return cast(func.floor(extract("epoch", timestamp) / 86_400), Integer)


def load_data(bind: Bind, history_end: date | None = None, test_days: int = 0, history_days: int | None = None,
              max_pairs: int = MAX_PAIRS, release_memory: bool = False) -> RecommendData:
    """Purchases and attributes for recommenders.

    ``history_end``: last day of the history (default: the last order day). ``test_days``: length of the test
    window after it (0 = none; then members registered after ``history_end`` are left out). ``history_days``:
    only the last so many days of history (default: all). Refuses more than ``max_pairs`` (member, product) rows.
    ``release_memory``: once read, give a DuckDB warehouse file's cached blocks back before the purchases are
    arranged (a batch job's peak; see :func:`~analytics.storage.warehouse.release_cached_memory`).
    """
    if not 0 <= test_days <= MAX_DAYS:
        raise RecommendDataError(f"The test window must be 0 to {MAX_DAYS} days, not {test_days}.")
    if history_days is not None and not 1 <= history_days <= MAX_DAYS:
        raise RecommendDataError(f"The history must be 1 to {MAX_DAYS} days, not {history_days}.")
    with connection(bind) as conn:
        if history_end is None:
            last = conn.execute(select(func.max(orders.c.ordered_at))).scalar()
            if last is None:
                raise RecommendDataError("The warehouse holds no orders to learn from.")
            history_end = last.date() - timedelta(days=test_days)
        test_end = history_end + timedelta(days=test_days) if test_days else None
        cutoff = _midnight_after(history_end)
        hi = _midnight_after(test_end) if test_end else cutoff
        lo = cutoff - timedelta(days=history_days) if history_days else None
        member_frame = read_frame_columnar(conn, _member_select(hi))
        product_frame = read_frame_columnar(conn, _product_select())
        pairs = read_frame_columnar(conn, pairs_select(hi, lo, cutoff if test_days else None, hi,
                                                       cutoff - timedelta(days=VALIDATION_DAYS))
                                    .limit(max_pairs + 1))
    if release_memory:
        release_cached_memory(bind)
    if len(pairs) > max_pairs:
        raise RecommendDataError(f"More than {max_pairs:,} member-product pairs to learn from; "
                                 "use a shorter history (history_days).")
    member_table = _member_table(member_frame)
    catalogue = _catalogue(product_frame)
    shape = (member_table.size, catalogue.size)
    history, test = _purchases(pairs, shape)
    return RecommendData(member_table, catalogue, history, test if test_days else None, history_end, test_end)


def _member_select(registered_before: datetime) -> Select:
    m = members.c
    numbered = _numbered(m.member_id, m.registered_at < registered_before).subquery()
    return (select(numbered.c.code, m.member_id, *(m[a] for a in SEGMENT_ATTRIBUTES))
            .join_from(numbered, members, numbered.c.id == m.member_id))


def _product_select() -> Select:
    p = products.c
    numbered = _numbered(p.product_id).subquery()
    return (select(numbered.c.code, p.product_id, p.name, p.category, p.subcategory, p.brand)
            .join_from(numbered, products, numbered.c.id == p.product_id))


def _member_table(frame: pd.DataFrame) -> MemberTable:
    frame = frame.sort_values("code", kind="stable")
    columns = [_factorized(frame[a]) for a in SEGMENT_ATTRIBUTES]
    segments = np.column_stack([c for c, _ in columns]) if len(frame) else np.zeros((0, len(columns)), np.int32)
    return MemberTable(frame["member_id"].to_numpy(dtype=object), segments.astype(np.int32),
                       tuple(labels for _, labels in columns))


def _catalogue(frame: pd.DataFrame) -> Catalogue:
    frame = frame.sort_values("code", kind="stable")
    category, categories = _factorized(frame["category"])
    subcategory, subcategories = _factorized(frame["subcategory"])
    brand, brands = _factorized(frame["brand"])
    names = frame["name"].fillna(frame["product_id"]).to_numpy(dtype=object)
    return Catalogue(frame["product_id"].to_numpy(dtype=object), names, category, categories, subcategory,
                     subcategories, brand, brands)


def _purchases(pairs: pd.DataFrame, shape: tuple[int, int]) -> tuple[Purchases, Purchases]:
    """History and test purchases in CSR order (by member, then product; pairs are unique). Each column is put in
    that order and the frame's copy dropped one column at a time: at 1M members the pairs are 11.6M rows."""
    member = pairs["member"].to_numpy(dtype=np.int32)
    order = np.argsort(member.astype(np.int64) * shape[1] + pairs["product"].to_numpy(dtype=np.int64))
    columns = {}
    for name, dtype in (("member", np.int32), ("product", np.int32), ("n_history", np.int32),
                        ("last_day", np.int32), ("earlier_day", np.int32), ("n_test", np.int32)):
        column = pairs.pop(name)
        if name in ("last_day", "earlier_day"):  # none: -1
            column = column.fillna(-1)
        columns[name] = column.to_numpy(dtype=dtype)[order]
        del column
    del order
    member, product = columns["member"], columns["product"]

    def build(keep: np.ndarray, counts: np.ndarray, days: np.ndarray, earlier: np.ndarray) -> Purchases:
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(member[keep], minlength=shape[0]), out=indptr[1:])
        return Purchases(indptr, product[keep], counts[keep], days[keep], earlier[keep], shape)

    n_history, n_test = columns["n_history"], columns["n_test"]
    history = build(n_history > 0, n_history, columns["last_day"], columns["earlier_day"])
    none = np.full(len(n_test), -1, dtype=np.int32)
    test = build(n_test > 0, n_test, none, none)
    return history, test
