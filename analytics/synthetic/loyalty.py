"""Tiers and points that follow from members' spending, by the rules in :mod:`analytics.programme`.

Tiers: on the first day of every month a member's tier becomes the highest whose threshold their
gross spend on completed orders in the previous twelve calendar months reaches (months before the
trading window count as zero). Every change is a ``tier_changes`` row, so the latest row's
``to_tier`` is the member's current tier.

Points: completed orders earn points at the tier's rate on gross value; new members get a sign-up
bonus and everyone a yearly birthday bonus. Each earned lot is either redeemed at the member's next
completed order (in whole hundreds, worth one currency unit per hundred; all redemptions on one
order together at most 30% of its value, oldest lots first) or stays; what is left of a lot
expires at the end of the next calendar year. A lot is only ever spent after it was earned, so
balances never go negative, and a member's balance is exactly the sum of their ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.programme import POINTS_EARN_RATE, TIER_THRESHOLDS
from analytics.storage.contract import LEDGER_REASONS
from analytics.synthetic.calendar import DemandCalendar
from analytics.synthetic.shopping import DAY, GUEST, STATUS_COMPLETED, MemberSet, Orders, persona_array

EARN, REDEEM, EXPIRE, BONUS = (LEDGER_REASONS.index(r) for r in ("earn", "redeem", "expire", "bonus"))
SIGNUP_BONUS = 100
BIRTHDAY_BONUS = 200
MAX_REDEEM_SHARE = 0.3


@dataclass
class Tiers:
    current: np.ndarray  # tier index per member
    at_order: np.ndarray  # tier index in force when each order was placed
    change_member: np.ndarray
    change_t: np.ndarray
    change_from: np.ndarray
    change_to: np.ndarray


@dataclass
class Points:
    earned: np.ndarray  # per order
    redeemed: np.ndarray  # per order
    balance: np.ndarray  # per member
    member: np.ndarray  # ledger rows ...
    t: np.ndarray
    delta: np.ndarray
    reason: np.ndarray
    order: np.ndarray  # order index or -1


def month_index(cal: DemandCalendar, t: np.ndarray) -> np.ndarray:
    """Calendar months since the window's first month for times ``t`` (seconds)."""
    day = np.datetime64(cal.start, "D") + (t // DAY).astype("timedelta64[D]")
    first = np.datetime64(cal.start, "M")
    return (day.astype("datetime64[M]") - first).astype(np.int64)


def month_starts(cal: DemandCalendar) -> np.ndarray:
    """Seconds (since the window start) of the first day of each calendar month the window spans."""
    first = np.datetime64(cal.start, "M")
    last = (np.datetime64(cal.start, "D") + np.timedelta64(cal.days - 1, "D")).astype("datetime64[M]")
    months = np.arange(first, last + 1)
    return (months.astype("datetime64[D]") - np.datetime64(cal.start, "D")).astype(np.int64) * DAY


def assign_tiers(members: MemberSet, orders: Orders, gross_cents: np.ndarray, cal: DemandCalendar) -> Tiers:
    starts = month_starts(cal)
    n_months = len(starts)
    is_spend = (orders.member != GUEST) & (orders.status == STATUS_COMPLETED)
    month = month_index(cal, orders.t)
    spend = np.bincount(orders.member[is_spend] * n_months + month[is_spend],
                        weights=gross_cents[is_spend], minlength=members.n * n_months).reshape(members.n, n_months)
    cum = np.concatenate([np.zeros((members.n, 1)), np.cumsum(spend, axis=1)], axis=1)
    thresholds = np.array(list(TIER_THRESHOLDS.values())) * 100
    tiers = np.zeros((members.n, n_months), dtype=np.int64)
    for k in range(1, n_months):  # evaluation on the first day of month k (month 0 starts the window)
        trailing = cum[:, k] - cum[:, max(0, k - 12)]
        tiers[:, k] = np.searchsorted(thresholds, trailing + 1e-6, side="right") - 1
    changed = np.zeros_like(tiers, dtype=bool)
    changed[:, 1:] = tiers[:, 1:] != tiers[:, :-1]
    who, k = np.nonzero(changed)
    at_order = np.where(orders.member != GUEST, tiers[np.maximum(orders.member, 0), month], 0)
    return Tiers(tiers[:, -1], at_order, who, starts[k], tiers[who, k - 1], tiers[who, k])


def assign_points(
    rng: np.random.Generator,
    members: MemberSet,
    orders: Orders,
    gross_cents: np.ndarray,
    tier_at_order: np.ndarray,
    birth_doy: tuple[np.ndarray, np.ndarray],
    cal: DemandCalendar,
) -> Points:
    """Earn, bonus, redeem and expire points; ``orders`` must be sorted by (member, time).

    ``birth_doy`` is (month, day) per member, month 0 when the birth date is unknown.
    """
    end_t = cal.days * DAY
    rate10 = np.rint(np.array(list(POINTS_EARN_RATE.values())) * 10).astype(np.int64)
    earns = (orders.member != GUEST) & (orders.status == STATUS_COMPLETED)
    earned = np.where(earns, gross_cents * rate10[tier_at_order] // 1000, 0)

    # lots: earned points, sign-up bonus, birthday bonuses
    lot_member = [orders.member[earns]]
    lot_t = [orders.t[earns]]
    lot_pts = [earned[earns]]
    lot_order = [np.flatnonzero(earns)]
    new = np.flatnonzero(members.registered_t >= 0)
    lot_member.append(new)
    lot_t.append(members.registered_t[new])
    lot_pts.append(np.full(new.size, SIGNUP_BONUS))
    lot_order.append(np.full(new.size, -1))
    month, day = birth_doy
    known = np.flatnonzero(month > 0)
    first_year = cal.start.year
    for year in range(first_year, first_year + cal.days // 365 + 2):
        bday = _dates(year, month[known], day[known])
        t = (bday - np.datetime64(cal.start, "D")).astype(np.int64) * DAY + 8 * 3600
        ok = (t >= 0) & (t < end_t) & (t > members.registered_t[known])
        lot_member.append(known[ok])
        lot_t.append(t[ok])
        lot_pts.append(np.full(int(ok.sum()), BIRTHDAY_BONUS))
        lot_order.append(np.full(int(ok.sum()), -1))
    l_member = np.concatenate(lot_member)
    l_t = np.concatenate(lot_t)
    l_pts = np.concatenate(lot_pts).astype(np.int64)
    l_order = np.concatenate(lot_order)
    l_reason = np.where(l_order >= 0, EARN, BONUS)
    l_year = (np.datetime64(cal.start, "D") + (l_t // DAY).astype("timedelta64[D]")).astype("datetime64[Y]")
    expiry_t = ((l_year + 2).astype("datetime64[D]") - np.datetime64(cal.start, "D")).astype(np.int64) * DAY - 1

    # redemption at the next completed order after the lot was credited
    key_scale = np.int64(cal.days + 2) * DAY
    buy = np.flatnonzero(earns)
    buy_key = orders.member[buy] * key_scale + orders.t[buy]
    pos = np.searchsorted(buy_key, l_member * key_scale + l_t, side="right")
    has_next = pos < buy.size
    nxt = buy[np.minimum(pos, buy.size - 1)] if buy.size else np.zeros(pos.size, dtype=np.int64)
    amount = (l_pts // 100) * 100
    redeem = (
        has_next
        & (orders.member[nxt] == l_member)
        & (orders.t[nxt] < expiry_t)
        & (amount > 0)
        & (rng.random(l_pts.size) < persona_array("redeem_propensity")[members.persona[l_member]])
    )
    _cap_per_order(redeem, nxt, l_t, amount, MAX_REDEEM_SHARE * gross_cents)
    redeemed = np.bincount(nxt[redeem], weights=amount[redeem], minlength=orders.n).astype(np.int64)
    remainder = l_pts - np.where(redeem, amount, 0)

    # expiry of what is left, one ledger row per member and expiry date
    expires = (remainder > 0) & (expiry_t < end_t)
    exp_key = l_member[expires] * key_scale + expiry_t[expires]
    uniq, inverse = np.unique(exp_key, return_inverse=True)
    exp_pts = np.bincount(inverse, weights=remainder[expires]).astype(np.int64)

    red_orders = np.flatnonzero(redeemed)
    member = np.concatenate([l_member, orders.member[red_orders], uniq // key_scale])
    t = np.concatenate([l_t, orders.t[red_orders], uniq % key_scale])
    delta = np.concatenate([l_pts, -redeemed[red_orders], -exp_pts])
    reason = np.concatenate([l_reason, np.full(red_orders.size, REDEEM), np.full(uniq.size, EXPIRE)])
    order = np.concatenate([l_order, red_orders, np.full(uniq.size, -1)])
    balance = np.bincount(member, weights=delta, minlength=members.n).astype(np.int64)
    return Points(earned.astype(np.int64), redeemed, balance, member, t, delta, reason, order)


def _cap_per_order(redeem: np.ndarray, order: np.ndarray, lot_t: np.ndarray, amount: np.ndarray,
                   cap: np.ndarray) -> None:
    """Keep an order's redemptions, oldest lot first, while their total stays within its cap
    (``redeem`` is updated in place). One point is worth one cent, so points compare with cents."""
    chosen = np.flatnonzero(redeem)
    if chosen.size == 0:
        return
    chosen = chosen[np.lexsort((lot_t[chosen], order[chosen]))]
    owner = order[chosen]
    spent = np.cumsum(amount[chosen])
    starts = np.concatenate([[0], np.flatnonzero(np.diff(owner)) + 1])
    before_group = np.repeat(spent[starts] - amount[chosen][starts], np.diff(np.append(starts, chosen.size)))
    redeem[chosen[(spent - before_group) > cap[owner]]] = False


def _dates(year: int, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Dates in ``year`` for (month, day) pairs; 29 February becomes the 28th in common years."""
    base = np.datetime64(f"{year:04d}-01", "M") + (month - 1).astype("timedelta64[M]")
    first = base.astype("datetime64[D]")
    last_day = ((base + 1).astype("datetime64[D]") - first).astype(np.int64)
    return first + (np.minimum(day, last_day) - 1).astype("timedelta64[D]")

