"""Member 360: one member at a time: search, masked profile, tier history, points history with a running
balance, order timeline and RFM row.

Everything is SQL in the warehouse; member ids and search text are always bound parameters. Personal data is
masked unless asked otherwise.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import (
    func,
    select,
)

from analytics.filters import OPEN_SCOPE, Filters, Scope, scope_conditions
from analytics.member_rows import member_rows
from analytics.privacy import MASKED_MEMBER_COLUMNS, MASKS, age_band
from analytics.rfm import member_rfm
from analytics.storage.contract import members, order_items, orders, points_ledger, products, tier_changes
from analytics.storage.db import Bind, connection, read_frame

# ---- member 360 ---------------------------------------------------------------------------------------------------

LIKE_ESCAPE = "\\"


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching values that start with ``text`` literally (``%``, ``_`` and the escape
    character itself escaped)."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return escaped + "%"


#: Longest search text (a member id is far shorter).
MAX_SEARCH_CHARS = 200


def find_members(bind: Bind, text: str, limit: int = 20, scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """Members whose id equals or starts with ``text`` (surrounding spaces ignored; matched literally, as a
    bound parameter), ordered by id, at most ``limit``: the masked rows of :func:`member_rows`, of the members
    ``scope`` allows. Empty text, text with a NUL character or longer than :data:`MAX_SEARCH_CHARS` finds nobody."""
    needle = (text or "").strip()
    m = members.c
    # no id holds a NUL character, and PostgreSQL refuses one in text
    if needle and "\x00" not in needle and len(needle) <= MAX_SEARCH_CHARS:
        ids = select(m.member_id).where((m.member_id == needle) | m.member_id.like(_like_prefix(needle),
                                                                                   escape=LIKE_ESCAPE))
    else:
        ids = select(m.member_id).where(m.member_id.is_(None))  # a primary key is never NULL: no rows
    return member_rows(bind, ids, limit=limit, scope=scope)


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
