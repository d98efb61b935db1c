"""Independent pandas computations of KPI breakdowns, of year-over-year comparisons and of the trailing-window
repurchase trend.

A breakdown value's KPI is the KPI of :func:`tests.reference.period_kpis` (written from the definitions) over the
rows that belong to that value: the orders of one channel, the orders holding an item of one category, the
members of one tier with their orders, sessions and points ... So the reference never shares a line with the
SQL of :mod:`analytics.kpis`, and a breakdown row is checked to be the card's KPI restricted to its value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta

import pandas as pd

from analytics.filters import Filters
from tests.reference import period_kpis

Frame = Callable[[str], pd.DataFrame]
GUEST, UNKNOWN, NO_CAMPAIGN, OTHER = "guest", "unknown", "no_campaign", "other"


def _restricted(frame: Frame, keep_orders: pd.Series | None = None, keep_members: set | None = None,
                guests: bool = False) -> Frame:
    """``frame`` with orders kept by a mask, and orders, members, events and points kept to ``keep_members``
    (plus guests' orders and anonymous events when ``guests``)."""
    cache: dict[str, pd.DataFrame] = {}

    def restricted(table: str) -> pd.DataFrame:
        if table in cache:
            return cache[table]
        rows = frame(table)
        if table == "orders" and keep_orders is not None:
            rows = rows[keep_orders.reindex(rows.index, fill_value=False).to_numpy()]
        if keep_members is not None and table in ("orders", "events", "members", "points_ledger"):
            by_member = rows["member_id"].isin(keep_members)
            rows = rows[by_member | (rows["member_id"].isna() if guests and table in ("orders", "events") else False)]
        cache[table] = rows
        return rows

    return restricted


def _first_orders(frame: Frame) -> pd.Series:
    orders = frame("orders")
    completed = orders[(orders["status"] == "completed") & orders["member_id"].notna()]
    return completed.groupby("member_id")["ordered_at"].min()


def _member_groups(frame: Frame, by: str, f: Filters) -> dict[str, set]:
    """Members of each value of a member dimension (tier, region, new vs returning) for period ``f``."""
    members = frame("members")
    if by in ("tier", "region"):
        values = members[by].fillna(UNKNOWN)
        return {v: set(members.loc[values == v, "member_id"]) for v in values.unique()}
    first = _first_orders(frame).reindex(members["member_id"]).to_numpy()
    first = pd.Series(first, index=members["member_id"])
    kind = pd.Series("returning", index=first.index)
    kind[(first >= pd.Timestamp(f.start_ts)) & (first < pd.Timestamp(f.end_ts))] = "new"
    kind[first.isna() | (first >= pd.Timestamp(f.end_ts))] = "not_yet_bought"
    return {v: set(kind.index[kind == v]) for v in kind.unique()}


def _value_frames(frame: Frame, by: str, f: Filters) -> dict[str, Frame]:
    """One restricted ``frame`` per value of breakdown ``by`` in period ``f``."""
    orders = frame("orders")
    if by == "channel":
        channel = orders["channel"].fillna(UNKNOWN)
        return {v: _restricted(frame, channel == v) for v in channel.unique()}
    if by == "campaign":
        campaign = orders["campaign_id"].fillna(NO_CAMPAIGN)
        return {v: _restricted(frame, campaign == v) for v in campaign.unique()}
    if by == "category":
        items, products = frame("order_items"), frame("products")
        lines = items.merge(products[["product_id", "category"]], how="left", on="product_id")
        lines["category"] = lines["category"].fillna(UNKNOWN)
        with_lines = set(lines["order_id"])
        groups = {v: set(rows["order_id"]) for v, rows in lines.groupby("category")}
        out = {v: _restricted(frame, orders["order_id"].isin(ids)) for v, ids in groups.items()}
        if (~orders["order_id"].isin(with_lines)).any():
            out[UNKNOWN] = _restricted(frame, ~orders["order_id"].isin(with_lines) | orders["order_id"].isin(
                groups.get(UNKNOWN, set())))
        return out
    out = {v: _restricted(frame, keep_members=ids) for v, ids in _member_groups(frame, by, f).items()}
    out[GUEST] = _restricted(frame, keep_members=set(), guests=True)
    return out


def _merged(frames: Iterable[Frame], by: str, frame: Frame, values: Iterable[str], f: Filters) -> Frame:
    """The rows of several values together (the ``other`` row of a folded breakdown)."""
    values = set(values)
    orders = frame("orders")
    if by in ("channel", "campaign"):
        column = orders["channel" if by == "channel" else "campaign_id"].fillna(UNKNOWN if by == "channel"
                                                                                else NO_CAMPAIGN)
        return _restricted(frame, column.isin(values))
    if by == "category":
        items, products = frame("order_items"), frame("products")
        lines = items.merge(products[["product_id", "category"]], how="left", on="product_id")
        ids = set(lines.loc[lines["category"].fillna(UNKNOWN).isin(values), "order_id"])
        return _restricted(frame, orders["order_id"].isin(ids))
    groups = _member_groups(frame, by, f)
    ids = set().union(*(groups.get(v, set()) for v in values))
    return _restricted(frame, keep_members=ids, guests=GUEST in values)


def _windowed(frame: Frame, lo: pd.Timestamp, hi: pd.Timestamp) -> Frame:
    """``frame`` with events and orders cut to [lo, hi) (what any KPI of a period inside it reads), so the many
    restricted copies stay small. Orders keep their whole history: first orders need it."""
    cache: dict[str, pd.DataFrame] = {}

    def windowed(table: str) -> pd.DataFrame:
        if table not in cache:
            rows = frame(table)
            if table == "events":
                rows = rows[(rows["occurred_at"] >= lo) & (rows["occurred_at"] < hi)]
            cache[table] = rows
        return cache[table]

    return windowed


def reference_breakdown(frame: Frame, by: str, current: Filters, compared: Filters,
                        ) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{value: {"cur": kpis, "prev": kpis}}``: every KPI (see :func:`tests.reference.period_kpis`) of each
    value of ``by`` in the period and the comparison period. Values with nothing to count have zeros and
    Nones."""
    frame = _windowed(frame, pd.Timestamp(min(current.start_ts, compared.start_ts)),
                      pd.Timestamp(max(current.end_ts, compared.end_ts)))
    periods = {"cur": current, "prev": compared}
    per_period = {tag: _value_frames(frame, by, f) for tag, f in periods.items()}
    values = set(per_period["cur"]) | set(per_period["prev"])
    empty = frame_empty(frame)
    return {value: {tag: period_kpis(per_period[tag].get(value, empty), f, f.start_ts, f.end_ts)
                    for tag, f in periods.items()} for value in sorted(values)}


def reference_other(frame: Frame, by: str, current: Filters, compared: Filters,
                    folded: Iterable[str]) -> dict[str, dict[str, float | None]]:
    """Every KPI of the values ``folded`` taken together (a folded breakdown's ``other`` row)."""
    return {tag: period_kpis(_merged([], by, frame, folded, f), f, f.start_ts, f.end_ts)
            for tag, f in (("cur", current), ("prev", compared))}


def frame_empty(frame: Frame) -> Frame:
    """``frame`` with no rows in any table."""
    return lambda table: frame(table).iloc[0:0]


_VOLUME = {"net_sales": "orders", "orders": "orders", "aov": "orders", "member_sales_share": "orders",
           "active_members": "active_members", "repurchase_rate": "active_members"}


def is_empty(values: dict[str, float | None], kpi: str) -> bool:
    """Nothing to count for ``kpi``: no completed orders (active members for the member KPIs), registrations,
    sessions or points."""
    if kpi == "session_conversion":
        return values[kpi] is None  # undefined without sessions; zero when none of them bought
    return not values[_VOLUME.get(kpi, kpi)]


def reference_trailing_repurchase(frame: Frame, f: Filters, points: Iterable[date]) -> list[float | None]:
    """The card's repurchase rate over the ``f.days`` days ending on each of ``points``."""
    out = []
    for day in points:
        window = Filters(day - timedelta(days=f.days - 1), day, f.channels, f.tiers)
        out.append(period_kpis(frame, window, window.start_ts, window.end_ts)["repurchase_rate"])
    return out

