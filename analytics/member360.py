"""Member 360: one member at a time: search, masked profile, tier history, points history with a running
balance, order timeline and RFM row.

Everything is SQL in the warehouse; member ids and search text are always bound parameters. Personal data is
masked unless asked otherwise.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import case, func, select

from analytics.filters import OPEN_SCOPE, Filters, Scope, scope_conditions
from analytics.member_rows import MEMBER_COLUMNS, listed_member_ids, member_rows, segment_rows
from analytics.privacy import MASKED_MEMBER_COLUMNS, MASKS, age_band, mask_members
from analytics.rfm import lapsed_members, member_rfm
from analytics.storage.contract import members, order_items, orders, points_ledger, products, tier_changes
from analytics.storage.db import Bind, connection, read_frame

# ---- member 360 ---------------------------------------------------------------------------------------------------

LIKE_ESCAPE = "\\"
#: The most characters of search text read (an id is far shorter).
MAX_SEARCH_TEXT = 100
#: How a member matched the search text, best first (the ``match`` column of :func:`find_members`).
MATCHES: tuple[str, ...] = ("id", "number", "prefix", "contains")
#: The most candidates read for a typed number (the number's own id comes first among them).
NUMBER_CANDIDATES = 20
#: The most members :func:`find_members` returns.
MAX_FOUND = 200
_TEXT_AND_NUMBER = re.compile(r"^([^0-9]*?)\s*0*([0-9]+)$")


def _like_literal(text: str) -> str:
    """``text`` for a LIKE pattern, matched literally (``%``, ``_`` and the escape character itself escaped)."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching values that start with ``text`` literally."""
    return _like_literal(text) + "%"


def _number_of(member_id: str) -> tuple[str, int] | None:
    """An id's text part (lower case) and trailing number: ``M00000028`` -> ``("m", 28)``; None without digits at
    the end."""
    found = _TEXT_AND_NUMBER.match(member_id.strip())
    return (found[1].strip().lower(), int(found[2])) if found else None


def find_members(bind: Bind, text: str, limit: int = 20, window: Filters | None = None,
                 scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """Members whose id matches ``text``, forgivingly, best matches first, at most ``limit`` (at most
    :data:`MAX_FOUND`): their masked rows (:func:`~analytics.member_rows.member_rows`, valued over ``window``; with
    no window, the members' own columns only) and ``match``, one of :data:`MATCHES`:

    * ``id``: the id itself, in any case (``m00000028``);
    * ``number``: the same trailing number, leading zeros and case aside, after the text typed before the number
      if any (``28``, ``M28`` and ``m 0028`` find ``M00000028``);
    * ``prefix``: ids that start with the text, in any case; ``contains``: ids that contain it.

    Each member once, under its best match; ties in order of id. The text is a bound parameter matched literally
    (``%`` and ``_`` are plain characters); surrounding spaces are ignored; empty text, or text with a NUL character,
    finds nobody, and members ``scope`` does not allow are never found. Two bounded statements: the number's
    candidates (ids ending in its digits, those with the fewest characters besides zeros first: the zero-padded id
    of the number itself comes first), and the text's matches."""
    needle = (text or "").strip()[:MAX_SEARCH_TEXT].lower()
    limit = max(0, min(int(limit), MAX_FOUND))
    if not needle or "\x00" in needle or not limit:  # no id holds a NUL character; PostgreSQL refuses one in text
        return _found(bind, [], [], window, scope)
    low = func.lower(members.c.member_id)
    best: dict[str, int] = {}
    number = _number_of(needle)
    if number is not None:
        head, value = number
        candidates = (select(members.c.member_id)
                      .where(low.like(_like_prefix(head) + "%" + str(value), escape=LIKE_ESCAPE),
                             *scope_conditions(scope))
                      .order_by(func.length(func.replace(low, "0", "")), members.c.member_id).limit(NUMBER_CANDIDATES))
        for member_id in read_frame(bind, candidates)["member_id"]:
            own = _number_of(str(member_id))
            if own is not None and own[1] == value and own[0].startswith(head):
                best[str(member_id)] = MATCHES.index("number")
    rank = case((low == needle, 0), (low.like(_like_prefix(needle), escape=LIKE_ESCAPE), 2), else_=3)
    query = (select(members.c.member_id, rank.label("rank"))
             .where(low.like("%" + _like_literal(needle) + "%", escape=LIKE_ESCAPE), *scope_conditions(scope))
             .order_by(rank, members.c.member_id).limit(limit))
    found = read_frame(bind, query)
    for member_id, rank_value in zip(found["member_id"], found["rank"], strict=True):
        best[str(member_id)] = min(best.get(str(member_id), 9), int(rank_value))
    chosen = sorted(best, key=lambda i: (best[i], i))[:limit]
    return _found(bind, chosen, [MATCHES[best[i]] for i in chosen], window, scope)


def _found(bind: Bind, ids: list[str], matches: list[str], window: Filters | None, scope: Scope) -> pd.DataFrame:
    """The rows of these members in this order, with how each matched."""
    listed = listed_member_ids(ids)
    if window is None:
        rows = read_frame(bind, select(*(members.c[c] for c in MEMBER_COLUMNS)).where(members.c.member_id.in_(ids),
                                                                                      *scope_conditions(scope)))
        rows = mask_members(rows) if len(rows) else pd.DataFrame(columns=list(MEMBER_COLUMNS))
    else:
        rows = member_rows(bind, listed, window, scope=scope)
    rank = {member_id: i for i, member_id in enumerate(ids)}
    rows = rows.assign(match=rows["member_id"].map(dict(zip(ids, matches, strict=True))))
    return rows.sort_values("member_id", key=lambda s: s.map(rank)).reset_index(drop=True)


def top_members(bind: Bind, window: Filters, limit: int = 10, scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """The members with the largest net sales in ``window`` (ties by id), at most ``limit`` (up to
    :data:`MAX_FOUND`): masked rows of :func:`~analytics.member_rows.segment_rows`, to start Member 360 from."""
    return segment_rows(bind, window, None, max(0, min(int(limit), MAX_FOUND)), scope=scope)


def _age(birth_date: date | None, as_of: date | None) -> int | None:
    if birth_date is None or as_of is None or pd.isna(birth_date):
        return None
    return as_of.year - birth_date.year - ((as_of.month, as_of.day) < (birth_date.month, birth_date.day))


def member_profile(bind: Bind, member_id: str, *, unmasked: bool = False,
                   as_of: date | None = None, scope: Scope = OPEN_SCOPE) -> dict[str, Any] | None:
    """One member's row (every ``members`` column, plain Python values) plus ``age`` (whole years at ``as_of``,
    e.g. the reference day; None without ``as_of`` or a birth date) and ``age_band`` (``25-34``).

    Masked unless ``unmasked`` is asked for explicitly: names, phones and emails masked, and the exact birth date
    and age left out (None); the band stays. None when there is no such member, or ``scope`` does not allow them."""
    with connection(bind) as conn:
        row = conn.execute(select(members).where(members.c.member_id == member_id, *scope_conditions(scope))
                           ).mappings().first()
    if row is None:
        return None
    profile = dict(row)
    age = _age(profile.get("birth_date"), as_of)
    profile["age"], profile["age_band"] = age, age_band(age)
    if not unmasked:
        for column in MASKED_MEMBER_COLUMNS:
            profile[column] = MASKS[column](profile[column])
        profile["birth_date"] = profile["age"] = None
    return profile


def tier_history(bind: Bind, member_id: str) -> pd.DataFrame:
    """A member's tier changes, oldest first: ``changed_at, from_tier, to_tier``."""
    t = tier_changes.c
    frame = read_frame(bind, select(t.changed_at, t.from_tier, t.to_tier).where(t.member_id == member_id)
                       .order_by(t.changed_at, t.to_tier))
    if frame.empty:
        frame["changed_at"] = pd.Series(dtype="datetime64[us]")
    return frame


def points_history(bind: Bind, member_id: str) -> pd.DataFrame:
    """A member's points ledger, oldest first: ``occurred_at, delta, reason, order_id, balance, entry_id``.

    ``balance`` is the running total after each row, a window SUM in the warehouse ordered by time and,
    for rows at the same moment (an order's earn and redeem), by entry id.
    """
    lg = points_ledger.c
    order = (lg.occurred_at, lg.entry_id)
    balance = func.sum(lg.delta).over(order_by=order, rows=(None, 0)).label("balance")
    frame = read_frame(bind, select(lg.occurred_at, lg.delta, lg.reason, lg.order_id, balance, lg.entry_id)
                       .where(lg.member_id == member_id).order_by(*order))
    return frame.astype({"delta": "int64", "balance": "int64"})


TIMELINE_COLUMNS = ["order_id", "ordered_at", "channel", "status", "gross", "discount", "net", "points_earned",
                    "points_redeemed", "campaign_id", "items", "top_category"]


def order_timeline(bind: Bind, member_id: str, limit: int = 200, scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """A member's orders (every status), newest first, at most ``limit``: ``order_id, ordered_at, channel,
    status, gross, discount, net, points_earned, points_redeemed, campaign_id``, ``items`` (lines) and
    ``top_category`` (the category with the largest line amount; ties by name). A user restricted to some sales
    channels (``scope``) sees the orders placed in those."""
    o, i, p = orders.c, order_items.c, products.c
    allowed = [o.channel.in_(scope.channels)] if scope.channels else []
    mine = select(o.order_id).where(o.member_id == member_id, *allowed)
    per_category = (select(i.order_id, p.category, func.sum(i.line_amount).label("amount"),
                           func.count().label("lines"))
                    .select_from(order_items.outerjoin(products, p.product_id == i.product_id))
                    .where(i.order_id.in_(mine)).group_by(i.order_id, p.category).subquery("order_categories"))
    c = per_category.c
    ranked = select(c.order_id, c.category, func.sum(c.lines).over(partition_by=c.order_id).label("items"),
                    func.row_number().over(partition_by=c.order_id,
                                           order_by=(c.amount.desc().nulls_last(), c.category.asc().nulls_last()))
                    .label("line_rank")).subquery("order_lines")
    r = ranked.c
    query = (select(o.order_id, o.ordered_at, o.channel, o.status, o.gross_amount.label("gross"),
                    o.discount_amount.label("discount"), o.net_amount.label("net"), o.points_earned,
                    o.points_redeemed, o.campaign_id, func.coalesce(r["items"], 0).label("items"),
                    r.category.label("top_category"))
             .select_from(orders.outerjoin(ranked, (r.order_id == o.order_id) & (r.line_rank == 1)))
             .where(o.member_id == member_id, *allowed).order_by(o.ordered_at.desc(), o.order_id.desc()).limit(limit))
    frame = read_frame(bind, query, hash_joins=True)
    return frame.astype({"gross": "float64", "discount": "float64", "net": "float64", "items": "int64"})


def member_summary(bind: Bind, filters: Filters, member_id: str) -> dict[str, Any] | None:
    """The member's RFM row in the window (``recency_days, frequency, monetary, r_score, f_score, m_score,
    fm_score, segment``; see :mod:`analytics.rfm`), or None when they have no order in it (not scored).
    Scores rank the member among everyone scored under ``filters``."""
    rfm = member_rfm(filters)
    frame = read_frame(bind, select(rfm).where(rfm.c.member_id == member_id))
    if frame.empty:
        return None
    row = frame.iloc[0]
    summary: dict[str, Any] = {"member_id": str(row["member_id"]), "segment": str(row["segment"]),
                               "monetary": float(row["monetary"])}
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score", "fm_score"):
        summary[column] = int(row[column])
    return summary


def is_lapsed(bind: Bind, filters: Filters, member_id: str) -> bool:
    """Whether the member is lapsed in the window (:data:`~analytics.rfm.LAPSED`: a completed order before it, none
    in it, through its filters)."""
    lapsed = lapsed_members(filters)
    with connection(bind) as conn:
        return conn.execute(select(lapsed.c.member_id).where(lapsed.c.member_id == member_id)).first() is not None
