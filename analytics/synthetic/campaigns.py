"""Campaigns with randomised control groups and a true, modest uplift.

Audiences are drawn the way a marketer would (a festival blast, regular buyers for member day,
birthdays of the month, lapsed buyers for win-back), restricted to members who consented to the
channel and left a contact. Each audience member is randomly held out at the campaign's holdout
share; the control group is never sent anything.

Truth is known by construction: both arms convert organically at the same rate (their own
orders in the campaign window); treatment members additionally convert with a probability that
raises their conversion by the persona's uplift. Read-outs should find that uplift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from analytics.synthetic.calendar import SPRING_FESTIVAL, DemandCalendar
from analytics.synthetic.shopping import (
    DAY,
    STATUS_COMPLETED,
    MemberSet,
    Orders,
    order_channels,
    persona_array,
    time_of_day,
)

CHANNELS = ("email", "sms", "push")
#: Chance a sent message is opened and clicked, by channel (SMS opens are not trackable).
OPEN_RATE = {"email": 0.24, "sms": None, "push": 0.12}
CLICK_RATE = {"email": 0.06, "sms": 0.05, "push": 0.05}
#: How strongly each campaign type moves people, relative to the persona's uplift.
TYPE_EFFECT = {"coupon": 1.0, "flash_sale": 0.8, "full_reduction": 0.8, "member_day": 1.0,
               "birthday": 1.2, "win_back": 1.5}


@dataclass(frozen=True)
class Campaign:
    index: int
    campaign_id: str
    name: str
    type: str
    channel: str
    start: date
    end: date  # inclusive last day
    holdout_pct: float
    coupon_cents: int
    audience_share: float

    def window(self, cal: DemandCalendar) -> tuple[int, int]:
        """Start and end (exclusive) of the campaign in seconds since the window start."""
        return cal.day_of(self.start) * DAY, (cal.day_of(self.end) + 1) * DAY


def plan_campaigns(rng: np.random.Generator, cal: DemandCalendar) -> list[Campaign]:
    """The shop's campaign calendar over the trading window, in start order."""
    first, last = cal.start, cal.start + timedelta(days=cal.days - 1)
    plans: list[tuple[date, date, str, str, str | None, float]] = []
    for y in range(first.year, last.year + 1):
        festival = SPRING_FESTIVAL.get(y)
        plans += [
            (date(y, 3, 5), date(y, 3, 8), "coupon", f"Women's Day Beauty Coupon {y}", None, 0.25),
            (date(y, 5, 18), date(y, 5, 20), "coupon", f"520 Sweetheart Coupon {y}", None, 0.20),
            (date(y, 6, 10), date(y, 6, 18), "full_reduction", f"6.18 Full Reduction {y}", None, 0.35),
            (date(y, 6, 16), date(y, 6, 18), "flash_sale", f"6.18 Flash Sale {y}", None, 0.25),
            (date(y, 10, 31), date(y, 11, 11), "full_reduction", f"11.11 Full Reduction {y}", None, 0.40),
            (date(y, 11, 9), date(y, 11, 11), "coupon", f"11.11 Final Countdown Coupon {y}", None, 0.30),
            (date(y, 12, 10), date(y, 12, 12), "coupon", f"Double 12 Coupon {y}", None, 0.25),
        ]
        if festival is not None:
            plans.append((festival - timedelta(days=20), festival - timedelta(days=14), "flash_sale",
                          f"New Year Goods Flash Sale {y}", None, 0.25))
        for month in range(1, 13):
            month_start = date(y, month, 1)
            month_end = (month_start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
            plans.append((month_start, month_end, "birthday", f"Birthday Treat {month_start:%b %Y}", "sms", 1.0))
            if month % 2 == 0:
                plans.append((date(y, month, 18), date(y, month, 20), "member_day",
                              f"Member Day {month_start:%b %Y}", "push", 1.0))
        for month, day_ in ((2, 24), (5, 25), (8, 20), (11, 25)):
            start = date(y, month, day_)
            plans.append((start, start + timedelta(days=13), "win_back",
                          f"Win-back Q{(month - 1) // 3 + 1} {y}", None, 1.0))
    plans = sorted(p for p in plans if p[0] >= first and p[1] <= last)
    campaigns = []
    for i, (start, end, ctype, name, channel, share) in enumerate(plans):
        if ctype == "win_back":
            chosen = ("email", "sms")[i % 2]
        else:
            chosen = channel or CHANNELS[int(rng.integers(0, 3))]
        coupon = {"coupon": rng.choice([1000, 2000, 3000, 5000]), "flash_sale": 0, "full_reduction": 0,
                  "member_day": 2000, "birthday": 3000, "win_back": 5000}[ctype]
        campaigns.append(Campaign(i, f"CMP{i + 1:04d}", name, ctype, chosen, start, end,
                                  float(rng.choice([10.0, 15.0, 20.0])), int(coupon), share))
    return campaigns


@dataclass
class CampaignMembers:
    campaign: np.ndarray
    member: np.ndarray
    control: np.ndarray  # bool
    sent_t: np.ndarray  # -1 when never sent (control)
    opened_t: np.ndarray
    clicked_t: np.ndarray
    converted_order: np.ndarray  # index into the chunk's concatenated orders, -1 if none


def run_campaigns(
    rng: np.random.Generator,
    campaigns: list[Campaign],
    members: MemberSet,
    reachable: dict[str, np.ndarray],
    birth_month: np.ndarray,
    organic: Orders,
    cal: DemandCalendar,
) -> tuple[CampaignMembers, Orders]:
    """Select audiences, split arms, record sends and conversions; return campaign rows and the
    incremental orders the campaigns caused.

    ``organic`` must be sorted by (member, time); its ``campaign`` and ``coupon_cents`` are set in
    place for treatment members' orders that the campaign converted.
    """
    n_org = organic.n
    key_scale = np.int64(cal.days + 1) * DAY
    org_key = organic.member * key_scale + organic.t
    completed = organic.status == STATUS_COMPLETED
    rows: dict[str, list[np.ndarray]] = {k: [] for k in CampaignMembers.__dataclass_fields__}
    inc_member: list[np.ndarray] = []
    inc_t: list[np.ndarray] = []
    inc_campaign: list[np.ndarray] = []
    inc_coupon: list[np.ndarray] = []
    inc_offset = n_org
    everyone = np.arange(members.n)
    uplift = persona_array("uplift")

    for c in campaigns:
        s, e = c.window(cal)
        eligible = (members.registered_t < s) & reachable[c.channel]
        if c.type == "birthday":
            eligible &= birth_month == c.start.month
        elif c.type in ("member_day", "win_back"):
            before = np.searchsorted(org_key, everyone * key_scale + s)
            year_ago = np.searchsorted(org_key, everyone * key_scale + max(s - 365 * DAY, 0))
            recent = np.searchsorted(org_key, everyone * key_scale + max(s - 120 * DAY, 0))
            if c.type == "member_day":
                eligible &= (before - year_ago) >= 2
            else:  # bought in the year before, but not in the last 120 days
                eligible &= (recent > year_ago) & (before == recent)
        else:
            eligible &= rng.random(members.n) < c.audience_share
        audience = np.flatnonzero(eligible)
        if audience.size == 0:
            continue
        control = rng.random(audience.size) < c.holdout_pct / 100.0

        # organic conversion: the member's first completed order in the window (either arm)
        lo = np.searchsorted(org_key, audience * key_scale + s)
        hi = np.searchsorted(org_key, audience * key_scale + e)
        first = _first_completed(completed, lo, hi)
        converted = np.where(first >= 0, first, -1)

        # incremental conversion for treatment members who would not have bought anyway
        s_day, e_day = s // DAY, e // DAY
        p = members.persona[audience]
        cum = cal.cumulative()
        active = (members.spell_start[audience] <= s_day) & (members.spell_end[audience] > s_day)
        mu = np.where(active, members.rate[audience] * (cum[e_day] - cum[s_day]), 0.002 * (e_day - s_day))
        q = 1 - np.exp(-mu)
        p_inc = np.minimum(0.9, uplift[p] * TYPE_EFFECT[c.type] * q / np.maximum(1 - q, 1e-6))
        sent_t = s + 9 * 3600 + rng.integers(0, 2 * 3600, audience.size)
        extra = (~control) & (converted < 0) & (rng.random(audience.size) < p_inc)
        n_extra = int(extra.sum())
        if n_extra:
            who = audience[extra]
            day = rng.integers(s_day, e_day, n_extra)
            t_extra = day * DAY + time_of_day(rng, members.night_owl[who])
            earliest = sent_t[extra] + 600
            t_extra = np.where(t_extra < earliest, earliest + rng.integers(0, 4 * 3600, n_extra), t_extra)
            t_extra = np.minimum(t_extra, e - 1)
            inc_member.append(who)
            inc_t.append(t_extra)
            inc_campaign.append(np.full(n_extra, c.index))
            inc_coupon.append(np.full(n_extra, c.coupon_cents))
            converted[extra] = inc_offset + np.arange(n_extra)
            inc_offset += n_extra

        # treatment members' organic conversions used the campaign (coupon, attribution)
        attributed = (~control) & (first >= 0)
        attributed_orders = first[attributed]
        free = organic.campaign[attributed_orders] < 0
        organic.campaign[attributed_orders[free]] = c.index
        organic.coupon_cents[attributed_orders[free]] = c.coupon_cents

        opened_t, clicked_t = _engagement(rng, c.channel, sent_t, converted >= 0)
        sent_t = np.where(control, -1, sent_t)
        opened_t = np.where(control, -1, opened_t)
        clicked_t = np.where(control, -1, clicked_t)
        for name, value in (("campaign", np.full(audience.size, c.index)), ("member", audience),
                            ("control", control), ("sent_t", sent_t), ("opened_t", opened_t),
                            ("clicked_t", clicked_t), ("converted_order", converted)):
            rows[name].append(value)

    cm = CampaignMembers(**{k: (np.concatenate(v) if v else np.empty(0, dtype=np.int64)) for k, v in rows.items()})
    if inc_member:
        who = np.concatenate(inc_member)
        channel = order_channels(rng, members.persona[who])
        incremental = Orders(who, np.concatenate(inc_t), channel, np.full(who.size, STATUS_COMPLETED),
                             np.concatenate(inc_campaign), np.concatenate(inc_coupon).astype(np.int64))
    else:
        empty = np.empty(0, dtype=np.int64)
        incremental = Orders(empty, empty, empty, empty, empty, empty)
    return cm, incremental


def _first_completed(completed: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Index of the first completed order in each [lo, hi) range of the sorted orders, or -1."""
    out = np.full(lo.size, -1, dtype=np.int64)
    pending = np.flatnonzero(hi > lo)
    pos = lo[pending].copy()
    while pending.size:
        hit = completed[pos]
        out[pending[hit]] = pos[hit]
        keep = ~hit & (pos + 1 < hi[pending])
        pending, pos = pending[keep], pos[keep] + 1
    return out


def _engagement(
    rng: np.random.Generator, channel: str, sent_t: np.ndarray, converted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Open and click times (-1 = none); converters click far more often."""
    n = sent_t.size
    click_p = np.where(converted, 0.45, CLICK_RATE[channel])
    clicked = rng.random(n) < click_p
    open_rate = OPEN_RATE[channel]
    if open_rate is None:  # SMS: opens are not tracked
        opened_t = np.full(n, -1, dtype=np.int64)
        clicked_t = np.where(clicked, sent_t + rng.exponential(3600, n).astype(np.int64) + 30, -1)
        return opened_t, clicked_t
    opened = clicked | (rng.random(n) < open_rate)
    opened_t = np.where(opened, sent_t + rng.exponential(3 * 3600, n).astype(np.int64) + 30, -1)
    clicked_t = np.where(clicked, opened_t + rng.exponential(600, n).astype(np.int64) + 5, -1)
    return opened_t, clicked_t


def campaign_channels_for_orders(orders: Orders, campaigns: list[Campaign]) -> np.ndarray:
    """The message channel (index into CHANNELS) behind each order's campaign, -1 for none."""
    by_campaign = np.array([CHANNELS.index(c.channel) for c in campaigns] + [-1])
    return by_campaign[orders.campaign]

