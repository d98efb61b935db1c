"""Member value: what members are worth against guests, and what new members bring in their first 90 days by
the channel that brought them. The plan's "members spend several times what non-members do", made measurable.

Definitions (one place; the app shows them as help, :data:`VALUE_HELP`):

* **Orders** are the completed orders placed in the range through the channel filter. **Members' orders** carry a
  member id (of the chosen tiers, when the tier filter is set); **guests' orders** carry none (the tier filter
  does not apply to them).
* **Buyers**: members with at least one such order; a guest cannot be recognised from one order to the next, so
  **each guest order counts as one guest buyer**. Hence a guest's orders per buyer is 1, their repurchase rate 0
  and their spend per buyer their AOV by construction: the comparison is a member over the whole range against a
  single guest checkout, which is what the warehouse can tell.
* **Spend per buyer** = net sales / buyers; **orders per buyer** = orders / buyers; **AOV** = net sales / orders;
  **repurchase rate** = buyers with two or more orders / buyers. **Ratio** = members' figure / guests' figure.
* **New members' first-90-day value**: members who registered in the range (of the chosen tiers), by acquisition
  channel: net sales of their completed orders (channel filter applied) in the 90 days from registration (orders
  after the range count too) / members. Members who joined less than 90 days before the newest order in the
  warehouse have had less time: ``full_window`` counts those who have had all 90 days.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Double, and_, cast, func, or_, select

from analytics.filters import Filters, members_in_tiers
from analytics.i18n import N_, _
from analytics.programme_tiers import UNKNOWN, days_between
from analytics.sqlparts import count_if, sum_if
from analytics.storage.contract import members, orders
from analytics.storage.db import Bind, read_frame

FIRST_DAYS = 90
MEASURES: tuple[str, ...] = ("buyers", "orders", "net_sales", "spend_per_buyer", "orders_per_buyer", "aov",
                             "repurchase_rate")
VALUE_HELP: dict[str, str] = {
    "buyers": N_("Members with a completed order in the range; for guests, guest orders (a guest cannot be "
                 "recognised from one order to the next, so each guest order is one guest buyer)."),
    "orders": N_("Completed orders placed in the range (channel filter applied)."),
    "net_sales": N_("Net amount of those orders."),
    "spend_per_buyer": N_("Net sales / buyers."),
    "orders_per_buyer": N_("Orders / buyers (1 for guests by construction)."),
    "aov": N_("Net sales / orders."),
    "repurchase_rate": N_("Buyers with two or more orders / buyers (0 for guests by construction)."),
    "ratio": N_("Members' figure / guests' figure."),
    "first_90_days": N_("Members who registered in the range: net sales of their completed orders in the {days} "
                        "days from registration / members (orders after the range count too). 'With all 90 days': "
                        "members who joined at least {days} days before the newest order in the warehouse."),
}


def value_help(key: str) -> str:
    """A definition of :data:`VALUE_HELP` in the reader's language, its figures filled in."""
    return _(VALUE_HELP[key]).format(days=FIRST_DAYS)


def _order_conditions(filters: Filters) -> list:
    o = orders.c
    conditions = [o.status == "completed", o.ordered_at >= filters.start_ts, o.ordered_at < filters.end_ts]
    if filters.channels:
        conditions.append(o.channel.in_(filters.channels))
    if filters.tiers:
        conditions.append(or_(o.member_id.is_(None), o.member_id.in_(members_in_tiers(filters.tiers))))
    return conditions


def member_vs_guest(bind: Bind, filters: Filters) -> pd.DataFrame:
    """``measure`` (:data:`MEASURES`) ``, members, guests, ratio``: one pass over the range's orders grouped by
    member (all guest orders form one group)."""
    o = orders.c
    per_buyer = (select(o.member_id, func.count().label("n"), func.sum(o.net_amount).label("net"))
                 .where(*_order_conditions(filters)).group_by(o.member_id).subquery("per_buyer"))
    p = per_buyer.c
    member, guest = p.member_id.is_not(None), p.member_id.is_(None)
    row = read_frame(bind, select(
        count_if(member).label("m_buyers"), func.coalesce(sum_if(member, p.n), 0).label("m_orders"),
        cast(func.coalesce(sum_if(member, p.net), 0), Double).label("m_net"),
        count_if(and_(member, p.n >= 2)).label("m_repeat"),
        func.coalesce(sum_if(guest, p.n), 0).label("g_orders"),
        cast(func.coalesce(sum_if(guest, p.net), 0), Double).label("g_net"))).iloc[0]

    def per(a: float, b: float) -> float:
        return a / b if b else float("nan")

    def side(buyers: float, n: float, net: float, repeat: float) -> dict[str, float]:
        return {"buyers": buyers, "orders": n, "net_sales": net, "spend_per_buyer": per(net, buyers),
                "orders_per_buyer": per(n, buyers), "aov": per(net, n), "repurchase_rate": per(repeat, buyers)}

    m = side(float(row["m_buyers"]), float(row["m_orders"]), float(row["m_net"]), float(row["m_repeat"]))
    g = side(float(row["g_orders"]), float(row["g_orders"]), float(row["g_net"]), 0.0)
    frame = pd.DataFrame({"measure": list(MEASURES), "members": [m[k] for k in MEASURES],
                          "guests": [g[k] for k in MEASURES]})
    frame["ratio"] = frame["members"] / frame["guests"].where(frame["guests"] != 0)
    return frame


def new_member_value(bind: Bind, filters: Filters, days: int = FIRST_DAYS) -> pd.DataFrame:
    """Per acquisition channel of the members who registered in the range: ``acquisition_channel, members,
    buyers, buyer_share, orders, net_sales, value_per_member, value_per_buyer, full_window`` (see the module
    docstring); largest value per member first."""
    o, m = orders.c, members.c
    conditions = [m.registered_at >= filters.start_ts, m.registered_at < filters.end_ts]
    if filters.tiers:
        conditions.append(m.tier.in_(filters.tiers))
    joiners = select(m.member_id, m.registered_at, func.coalesce(m.acquisition_channel, UNKNOWN)
                     .label("acquisition_channel")).where(*conditions).subquery("joiners")
    j = joiners.c
    order_conditions = [o.member_id == j.member_id, o.status == "completed", o.ordered_at >= j.registered_at,
                        days_between(o.ordered_at, j.registered_at) < days]
    if filters.channels:
        order_conditions.append(o.channel.in_(filters.channels))
    per_member = (select(j.member_id, j.acquisition_channel, j.registered_at, func.count(o.order_id).label("n"),
                         func.coalesce(func.sum(o.net_amount), 0).label("net"))
                  .select_from(joiners.outerjoin(orders, and_(*order_conditions)))
                  .group_by(j.member_id, j.acquisition_channel, j.registered_at).subquery("first_days"))
    p = per_member.c
    newest = select(func.max(o.ordered_at)).scalar_subquery()
    frame = read_frame(bind, select(p.acquisition_channel, func.count().label("members"),
                                    count_if(p.n > 0).label("buyers"), func.sum(p.n).label("orders"),
                                    cast(func.sum(p.net), Double).label("net_sales"),
                                    count_if(days_between(newest, p.registered_at) >= days).label("full_window"))
                       .group_by(p.acquisition_channel))
    frame = frame.astype({"members": "int64", "buyers": "int64", "orders": "int64", "net_sales": "float64",
                          "full_window": "int64"})
    frame["buyer_share"] = frame["buyers"] / frame["members"]
    frame["value_per_member"] = frame["net_sales"] / frame["members"]
    frame["value_per_buyer"] = frame["net_sales"] / frame["buyers"].where(frame["buyers"] > 0)
    columns = ["acquisition_channel", "members", "buyers", "buyer_share", "orders", "net_sales", "value_per_member",
               "value_per_buyer", "full_window"]
    return frame[columns].sort_values(["value_per_member", "acquisition_channel"], ascending=[False, True],
                                      ignore_index=True)


def value_ratio(comparison: pd.DataFrame) -> float:
    """Members' spend per buyer / guests' (the plan's "members spend N times what non-members do")."""
    return float(comparison.set_index("measure").loc["spend_per_buyer", "ratio"])

