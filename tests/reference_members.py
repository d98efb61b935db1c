"""Independent pandas versions of the member lists' value columns (issue 23), the lapsed and the RFM migration, written
from the definitions in ``analytics.member_rows`` and ``analytics.rfm`` with pandas only (RFM from
``tests.reference.pandas_rfm``)."""

from __future__ import annotations

import pandas as pd

from analytics.filters import Filters
from tests.reference import pandas_rfm

LAPSED = "Lapsed"


def _completed(orders: pd.DataFrame, members: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Completed member orders through the channel and tier filters, any time."""
    o = orders[(orders["status"] == "completed") & orders["member_id"].notna()]
    if f.channels:
        o = o[o["channel"].isin(f.channels)]
    if f.tiers:
        o = o[o["member_id"].isin(set(members.loc[members["tier"].isin(f.tiers), "member_id"]))]
    return o


def pandas_lapsed(orders: pd.DataFrame, members: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Members with a completed order before the range and none in it: ``member_id``, ``last_at``,
    ``sales_before``, by id."""
    o = _completed(orders, members, f)
    before = o[o["ordered_at"] < pd.Timestamp(f.start_ts)]
    within = o[(o["ordered_at"] >= pd.Timestamp(f.start_ts)) & (o["ordered_at"] < pd.Timestamp(f.end_ts))]
    per = before.groupby("member_id").agg(last_at=("ordered_at", "max"), sales_before=("net_amount", "sum"))
    per = per[~per.index.isin(set(within["member_id"]))]
    return per.reset_index().sort_values("member_id", ignore_index=True)


def pandas_member_values(orders: pd.DataFrame, members: pd.DataFrame, ids: set[str], f: Filters) -> pd.DataFrame:
    """The value columns of the members ``ids`` in ``f`` (standard grid), sorted by net sales (highest first) then
    id: ``member_id``, ``net_sales``, ``orders``, ``last_order`` (a day), ``tier``, ``segment``."""
    o = _completed(orders, members, f)
    upto = o[o["ordered_at"] < pd.Timestamp(f.end_ts)]
    within = upto[upto["ordered_at"] >= pd.Timestamp(f.start_ts)]
    sales = within.groupby("member_id")["net_amount"].sum()
    count = within.groupby("member_id").size()
    last = upto.groupby("member_id")["ordered_at"].max().dt.normalize()
    segments = pandas_rfm(orders, members, f).set_index("member_id")["segment"]
    rows = members[members["member_id"].isin(ids)][["member_id", "tier"]].copy()
    rows["net_sales"] = rows["member_id"].map(sales).fillna(0.0).astype("float64").round(2)
    rows["orders"] = rows["member_id"].map(count).fillna(0).astype("int64")
    rows["last_order"] = rows["member_id"].map(last)
    rows["segment"] = rows["member_id"].map(segments)
    rows.loc[rows["segment"].isna() & rows["last_order"].notna(), "segment"] = LAPSED
    rows = rows.sort_values(["net_sales", "member_id"], ascending=[False, True], ignore_index=True)
    return rows[["member_id", "net_sales", "orders", "last_order", "tier", "segment"]]


def pandas_migration(orders: pd.DataFrame, members: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Each member scored in the previous period or in ``f``: ``member_id``, ``before``, ``after`` (segment, or
    "(no purchase)")."""
    before = pandas_rfm(orders, members, f.previous()).set_index("member_id")["segment"].rename("before")
    after = pandas_rfm(orders, members, f).set_index("member_id")["segment"].rename("after")
    both = pd.concat([before, after], axis=1).fillna("(no purchase)")
    both.index.name = "member_id"
    return both.reset_index()
