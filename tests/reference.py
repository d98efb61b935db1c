"""Independent pandas implementations of the executive KPIs, RFM (and the window of orders RFM and clusters
count), written from their definitions.

They read the raw rows of each table (a plain SELECT) and compute every KPI with pandas, so a
mistake in the SQL of :mod:`analytics.kpis` shows up as a disagreement.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd

from analytics.filters import Filters
from analytics.programme import POINTS_PER_CURRENCY_UNIT
from analytics.rfm import DEFAULT_GRID
from tests.reference_programme import realised_roi


def _members_in_tiers(members: pd.DataFrame, tiers: tuple[str, ...]) -> set[str]:
    return set(members.loc[members["tier"].isin(tiers), "member_id"])


def period_kpis(frame, f: Filters, lo: datetime, hi: datetime) -> dict[str, float | None]:
    """Every KPI for [lo, hi) under the channel and tier filters of ``f``."""
    members = frame("members")
    orders = frame("orders")
    o = orders[(orders["status"] == "completed") & (orders["ordered_at"] >= lo) & (orders["ordered_at"] < hi)]
    if f.channels:
        o = o[o["channel"].isin(f.channels)]
    in_tiers = _members_in_tiers(members, f.tiers) if f.tiers else None
    if in_tiers is not None:
        o = o[o["member_id"].isin(in_tiers)]
    net = float(o["net_amount"].sum())
    n = len(o)
    per_member = o.dropna(subset=["member_id"]).groupby("member_id").size()
    active = len(per_member)
    member_net = float(o.loc[o["member_id"].notna(), "net_amount"].sum())

    m = members[(members["registered_at"] >= lo) & (members["registered_at"] < hi)]
    if f.tiers:
        m = m[m["tier"].isin(f.tiers)]

    events = frame("events")
    e = events[(events["occurred_at"] >= lo) & (events["occurred_at"] < hi)]
    if in_tiers is not None:
        e = e[e["member_id"].isin(in_tiers)]
    sessions = int((e["event_type"] == "session_start").sum())
    converted = e.loc[e["event_type"] == "purchase", "session_id"].nunique()

    ledger = frame("points_ledger")
    lg = ledger[ledger["occurred_at"] < hi]
    if in_tiers is not None:
        lg = lg[lg["member_id"].isin(in_tiers)]

    return {
        "net_sales": net,
        "orders": float(n),
        "aov": net / n if n else None,
        "active_members": float(active),
        "new_members": float(len(m)),
        "repurchase_rate": float((per_member >= 2).sum()) / active if active else None,
        "member_sales_share": member_net / net if net else None,
        "session_conversion": converted / sessions if sessions else None,
        "points_liability": float(lg["delta"].sum()),
        "points_liability_value": float(lg["delta"].sum()) / POINTS_PER_CURRENCY_UNIT,
        "campaign_roi": realised_roi(frame, lo.date(), (hi - timedelta(days=1)).date()),
    }


def reference_summary(frame, f: Filters) -> dict[str, tuple[float | None, float | None]]:
    prev = f.previous()
    cur = period_kpis(frame, f, f.start_ts, f.end_ts)
    before = period_kpis(frame, f, prev.start_ts, prev.end_ts)
    return {k: (cur[k], before[k]) for k in cur}


def reference_daily_net_sales(frame, f: Filters) -> pd.Series:
    orders = frame("orders")
    o = orders[(orders["status"] == "completed") & (orders["ordered_at"] >= f.start_ts)
               & (orders["ordered_at"] < f.end_ts)]
    return o.groupby(o["ordered_at"].dt.normalize())["net_amount"].sum()


def window_member_orders(orders: pd.DataFrame, members: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Members' completed orders in the window, through the channel and tier filters: the orders RFM and the
    cluster features count, selected with pandas."""
    o = orders[(orders["status"] == "completed") & orders["member_id"].notna()
               & (orders["ordered_at"] >= pd.Timestamp(f.start_ts)) & (orders["ordered_at"] < pd.Timestamp(f.end_ts))]
    if f.channels:
        o = o[o["channel"].isin(f.channels)]
    if f.tiers:
        o = o[o["member_id"].isin(_members_in_tiers(members, f.tiers))]
    return o


def pandas_rfm(orders: pd.DataFrame, members: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """RFM written from the module's definitions with pandas only."""
    o = window_member_orders(orders, members, filters)
    per = o.groupby("member_id").agg(last=("ordered_at", "max"), frequency=("order_id", "size"),
                                     monetary=("net_amount", "sum")).reset_index()
    per["recency_days"] = (pd.Timestamp(filters.end) - per["last"].dt.normalize()).dt.days
    n = len(per)

    def score(values: pd.Series, lower_is_better: bool) -> pd.Series:
        worse = [(values > v).sum() if lower_is_better else (values < v).sum() for v in values]
        return pd.Series([1 + math.floor(5 * w / n) for w in worse], index=values.index)

    per["r_score"] = score(per["recency_days"], lower_is_better=True)
    per["f_score"] = score(per["frequency"], lower_is_better=False)
    per["m_score"] = score(per["monetary"].round(2), lower_is_better=False)
    per["fm_score"] = [math.floor((f + m + 1) / 2) for f, m in zip(per["f_score"], per["m_score"], strict=True)]
    per["segment"] = [DEFAULT_GRID[(r, fm)] for r, fm in zip(per["r_score"], per["fm_score"], strict=True)]
    return per.drop(columns="last").sort_values("member_id", ignore_index=True)
