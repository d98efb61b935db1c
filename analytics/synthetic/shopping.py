"""Members' buying: when they are active, when they order, and what is in each basket.

**The planted churn and purchase process** (the truth the prediction models are measured against):

* while a member is *alive*, their orders arrive as a Poisson process with their own rate (the persona's orders
  per year times a personal lognormal factor), shaped day by day by the demand calendar (weekly rhythm,
  festivals; sharper for festival-minded personas);
* after **each** order the member drops out for good with probability ``p`` (the BG/NBD story: a member who has
  not bought for a long time, given how often they used to buy, has probably dropped out, so recency matters);
  ``p`` depends on the persona (its mean active years: ``p = 1 / (orders per year x active years)``), on the
  member's **engagement** (a latent score that also drives their browsing sessions: engaged members drop out
  less) and on their **value** (the personal rate factor, which also sets their spend and so their tier:
  high-tier members drop out less): ``p = p_persona x exp(-0.35 engagement) x factor^-0.35``, within 0.5%-95%;
* a member is alive from registration (or the window's start) until the day of the order after which they drop
  out; welcome orders of new members come on top and do not count towards dropping out.

The hidden rate, engagement and drop-out day are written to ``demo_personas`` (outside the contract) so that the
true churn probability on any cutoff can be computed (:mod:`analytics.synthetic.truth`): the best any model could
do.

All times are integer seconds since the start of the trading window (day 0, 00:00:00), which keeps
every step vectorised; the builder turns them into timestamps at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analytics.storage.contract import ORDER_STATUSES
from analytics.synthetic.calendar import BASE_HOURS, NIGHT_OWL_HOURS, DemandCalendar
from analytics.synthetic.catalog import Catalog, sample_products
from analytics.synthetic.people import choice
from analytics.synthetic.personas import CATEGORIES, ORDER_CHANNELS, PERSONAS

DAY = 86_400
STATUS_COMPLETED, STATUS_CANCELLED, STATUS_RETURNED = (
    ORDER_STATUSES.index(s) for s in ("completed", "cancelled", "returned"))
GUEST = -1
#: Share of all orders placed without a member account.
GUEST_ORDER_SHARE = 0.08
#: Share of members registered before the trading window, per persona.
PRE_WINDOW_SHARE = np.array([0.60, 0.45, 0.40, 0.25, 0.30, 0.90])
CONSUMABLES = {CATEGORIES.index(c) for c in ("Groceries", "Mother & Baby", "Pets")}
#: How strongly engagement (per standard deviation) and value (per unit of log rate factor) lower the chance of
#: dropping out after an order.
DROPOUT_ENGAGEMENT = 0.35
DROPOUT_VALUE = 0.35


def persona_array(attr: str) -> np.ndarray:
    return np.array([getattr(p, attr) for p in PERSONAS], dtype=np.float64)


@dataclass
class MemberSet:
    """One chunk of members with the hidden parameters that drive their behaviour."""

    persona: np.ndarray  # int, index into PERSONAS
    registered_t: np.ndarray  # int64 seconds, negative = before the window
    spell_start: np.ndarray  # int day, first day of the active spell inside the window
    spell_end: np.ndarray  # int day (exclusive), when the member drops out (set by member_orders)
    rate: np.ndarray  # orders per average day while active
    dropout: np.ndarray  # chance of dropping out after each order
    engagement: np.ndarray  # latent engagement score (standard normal): browsing, and staying
    price_level: np.ndarray
    taste_cum: np.ndarray  # (n, len(CATEGORIES)) cumulative category taste
    night_owl: np.ndarray  # share of the member's activity on the night-owl clock
    app_share: np.ndarray  # share of the member's tracked sessions on the app (rest: web)

    @property
    def n(self) -> int:
        return len(self.persona)


@dataclass
class Orders:
    """Order headers (and later their money), one row per order."""

    member: np.ndarray  # int local member index, GUEST for guests
    t: np.ndarray  # int64 seconds
    channel: np.ndarray  # int index into ORDER_CHANNELS
    status: np.ndarray  # STATUS_*
    campaign: np.ndarray  # int campaign index, -1 if none
    coupon_cents: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.coupon_cents is None:
            self.coupon_cents = np.zeros(len(self.t), dtype=np.int64)

    @property
    def n(self) -> int:
        return len(self.t)

    @staticmethod
    def concat(parts: list[Orders]) -> Orders:
        return Orders(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("member", "t", "channel", "status", "campaign", "coupon_cents")))

    def take(self, idx: np.ndarray) -> Orders:
        return Orders(self.member[idx], self.t[idx], self.channel[idx], self.status[idx],
                      self.campaign[idx], self.coupon_cents[idx])


@dataclass
class Lines:
    """Order lines grouped by order (ascending), with per-order offsets for quick lookup."""

    order: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    unit_cents: np.ndarray
    line_no: np.ndarray
    offsets: np.ndarray  # offsets[o]..offsets[o+1] are the lines of order o

    @property
    def amount_cents(self) -> np.ndarray:
        return self.quantity * self.unit_cents


def make_members(rng: np.random.Generator, n: int, cal: DemandCalendar) -> MemberSet:
    """Draw personas, registration times, active spells and personal taste for ``n`` members."""
    persona = choice(rng, [p.share for p in PERSONAS], n)
    pre = rng.random(n) < PRE_WINDOW_SHARE[persona]
    cum = cal.cumulative()
    # in-window registrations follow demand (festivals bring sign-ups); never on the last day
    reg_day = np.searchsorted(cum, rng.random(n) * cum[-2], side="right") - 1
    reg_day = np.where(pre, -rng.integers(1, 3 * 365, n), reg_day)
    reg_t = reg_day * DAY + time_of_day(rng, np.full(n, 0.1))
    spell_start = np.maximum(reg_day, 0)
    spell_end = np.full(n, cal.days, dtype=np.int64)  # until the drop-out order (member_orders)
    heterogeneity = rng.lognormal(-0.18, 0.6, n)
    rate = persona_array("orders_per_year")[persona] / 365.0 * heterogeneity
    engagement = rng.standard_normal(n)
    base = 1.0 / (persona_array("orders_per_year")[persona] * persona_array("active_years")[persona])
    dropout = np.clip(base * np.exp(-DROPOUT_ENGAGEMENT * engagement) * heterogeneity ** -DROPOUT_VALUE, 0.005, 0.95)
    price_level = persona_array("price_level")[persona] * rng.lognormal(0, 0.25, n)
    taste = np.array([p.category_taste for p in PERSONAS])[persona]
    taste = rng.gamma(taste * 12 + 0.02)  # Dirichlet around the persona's taste
    taste_cum = np.cumsum(taste / taste.sum(axis=1, keepdims=True), axis=1)
    night_owl = np.clip(persona_array("night_owl")[persona] + rng.normal(0, 0.08, n), 0, 1)
    mix = np.array([p.channel_mix for p in PERSONAS])[persona]
    app_share = mix[:, 0] / (mix[:, 0] + mix[:, 2])
    return MemberSet(persona, reg_t, spell_start, spell_end, rate, dropout, engagement, price_level, taste_cum,
                     night_owl, app_share)


def time_of_day(rng: np.random.Generator, night_owl: np.ndarray, midnight_rush: np.ndarray | None = None) -> np.ndarray:
    """Seconds after midnight following the day/night-owl hour profiles.

    ``midnight_rush`` marks events on 11.11, when a third of orders land right after midnight
    as pre-sale balances are paid.
    """
    n = len(night_owl)
    owl = rng.random(n) < night_owl
    hour = np.where(owl, choice(rng, NIGHT_OWL_HOURS, n), choice(rng, BASE_HOURS, n))
    if midnight_rush is not None:
        hour = np.where(midnight_rush & (rng.random(n) < 0.33), 0, hour)
    return hour * 3600 + rng.integers(0, 3600, n)


def sample_days(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One day per row in [lo, hi), drawn in proportion to the calendar's demand."""
    u = cum[lo] + rng.random(len(lo)) * (cum[hi] - cum[lo])
    day = np.searchsorted(cum, u, side="right") - 1
    return np.clip(day, lo, np.maximum(hi - 1, lo))


def is_double_eleven(cal: DemandCalendar, day: np.ndarray) -> np.ndarray:
    dates = np.datetime64(cal.start, "D") + day.astype("timedelta64[D]")
    md = (dates - dates.astype("datetime64[M]")).astype(int) + 1
    month = dates.astype("datetime64[M]").astype(int) % 12 + 1
    return (month == 11) & (md == 11)


def order_channels(rng: np.random.Generator, persona: np.ndarray) -> np.ndarray:
    mix = np.array([p.channel_mix for p in PERSONAS])
    cum = np.cumsum(mix, axis=1)[persona]
    return (rng.random(len(persona))[:, None] > cum).sum(axis=1).clip(0, len(ORDER_CHANNELS) - 1)


def order_statuses(rng: np.random.Generator, persona: np.ndarray) -> np.ndarray:
    u = rng.random(len(persona))
    cancel = persona_array("cancel_rate")[persona]
    ret = persona_array("return_rate")[persona]
    return np.where(u < cancel, STATUS_CANCELLED, np.where(u < cancel + ret, STATUS_RETURNED, STATUS_COMPLETED))


def member_orders(rng: np.random.Generator, members: MemberSet, cal: DemandCalendar) -> Orders:
    """Organic orders: a Poisson process per member while alive, shaped by demand; each order may be the member's
    last (see the module docstring). Sets ``members.spell_end`` to the day after the last order of a member who
    dropped out."""
    parts_member, parts_day = [], []
    for p_idx, persona in enumerate(PERSONAS):
        rows = np.flatnonzero(members.persona == p_idx)
        cum = cal.cumulative(persona.peak_sharpness)
        lo, hi = members.spell_start[rows], members.spell_end[rows]
        expected = members.rate[rows] * (cum[hi] - cum[lo])
        count = rng.poisson(expected)
        who = np.repeat(rows, count)
        parts_member.append(who)
        parts_day.append(sample_days(rng, cum, np.repeat(lo, count), np.repeat(hi, count)))
    member = np.concatenate(parts_member)
    day = np.concatenate(parts_day)
    # drop-out: the member's K-th order is their last, K ~ geometric(p) (orders up to and including it)
    order = np.lexsort((day, member))
    member, day = member[order], day[order]
    starts = np.searchsorted(member, np.arange(members.n))
    rank = np.arange(member.size) - starts[member] + 1
    last = rng.geometric(members.dropout)
    kept = rank <= last[member]
    dropped = kept & (rank == last[member])
    members.spell_end[member[dropped]] = day[dropped] + 1
    member, day = member[kept], day[kept]
    # half of new members place a welcome order within three days of signing up
    new = np.flatnonzero((members.registered_t >= 0) & (members.spell_end > members.spell_start)
                         & (rng.random(members.n) < 0.5))
    welcome_day = np.minimum(members.spell_start[new] + rng.integers(0, 3, new.size), cal.days - 1)
    member = np.concatenate([member, new])
    day = np.concatenate([day, welcome_day])
    t = day * DAY + time_of_day(rng, members.night_owl[member], is_double_eleven(cal, day))
    # an order can never precede its member's registration
    reg = members.registered_t[member]
    t = np.where(t <= reg, reg + rng.integers(120, 5400, t.size), t)
    t = np.minimum(t, cal.days * DAY - 1)
    persona = members.persona[member]
    return Orders(member, t, order_channels(rng, persona), order_statuses(rng, persona),
                  np.full(t.size, -1, dtype=np.int64))


def guest_orders(rng: np.random.Generator, n_orders: int, cal: DemandCalendar) -> Orders:
    """Orders placed without an account, mostly on the web and the mini-program."""
    cum = cal.cumulative()
    day = sample_days(rng, cum, np.zeros(n_orders, dtype=np.int64), np.full(n_orders, cal.days))
    t = day * DAY + time_of_day(rng, np.full(n_orders, 0.12), is_double_eleven(cal, day))
    channel = choice(rng, [0.12, 0.40, 0.43, 0.05], n_orders)
    u = rng.random(n_orders)
    status = np.where(u < 0.07, STATUS_CANCELLED, np.where(u < 0.12, STATUS_RETURNED, STATUS_COMPLETED))
    return Orders(np.full(n_orders, GUEST, dtype=np.int64), t, channel, status,
                  np.full(n_orders, -1, dtype=np.int64))


def make_lines(
    rng: np.random.Generator, catalog: Catalog, orders: Orders, members: MemberSet, cal: DemandCalendar
) -> Lines:
    """Baskets: lines drawn from each buyer's category taste, with planted cross-sell partners."""
    is_member = orders.member != GUEST
    persona = np.where(is_member, members.persona[np.maximum(orders.member, 0)], -1)
    extra = np.where(is_member, persona_array("extra_items")[np.maximum(persona, 0)], 0.7)
    k = 1 + np.minimum(rng.poisson(extra), 9)
    line_order = np.repeat(np.arange(orders.n), k)
    first = np.zeros(line_order.size, dtype=bool)
    first[np.concatenate([[0], np.cumsum(k)[:-1]])] = True

    avg_taste = np.cumsum(np.array([p.category_taste for p in PERSONAS]).mean(axis=0))
    taste_cum = np.where(is_member[:, None], members.taste_cum[np.maximum(orders.member, 0)], avg_taste)
    line_taste = taste_cum[line_order]
    category = (rng.random(line_order.size)[:, None] > line_taste / line_taste[:, -1:]).sum(axis=1)
    category = np.minimum(category, len(CATEGORIES) - 1)
    first_cat = np.repeat(category[first], k)  # category of the order's first line
    same = (~first) & (rng.random(line_order.size) < 0.55)
    category = np.where(same, first_cat, category)
    level = np.where(is_member, members.price_level[np.maximum(orders.member, 0)], 1.0)[line_order]
    product = sample_products(rng, catalog, category, level * rng.lognormal(0, 0.3, line_order.size))

    partner = catalog.partner[product]
    adds = (partner >= 0) & (rng.random(product.size) < catalog.partner_prob[np.maximum(product, 0)])
    line_order = np.concatenate([line_order, line_order[adds]])
    product = np.concatenate([product, partner[adds]])

    # one line per product and order; buying the same product twice raises its quantity
    key = line_order * catalog.size + product
    key, quantity = np.unique(key, return_counts=True)
    line_order, product = key // catalog.size, key % catalog.size
    consumable = np.isin(catalog.category[product], list(CONSUMABLES))
    quantity = quantity + np.where(consumable, rng.poisson(0.5, key.size), rng.random(key.size) < 0.06)

    day = orders.t[line_order] // DAY
    flash = cal.promotion[np.clip(day, 0, cal.days - 1)] & (rng.random(key.size) < 0.5)
    unit = np.where(flash, np.rint(catalog.price_cents[product] * 0.85), catalog.price_cents[product]).astype(np.int64)
    counts = np.bincount(line_order, minlength=orders.n)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    line_no = np.arange(key.size) - offsets[line_order] + 1
    return Lines(line_order, product, quantity.astype(np.int64), unit, line_no, offsets)


def full_reduction_cents(cal: DemandCalendar, orders: Orders, gross_cents: np.ndarray) -> np.ndarray:
    """Festival full-reduction: 30 off every full 300 of an order's value on promotion days."""
    day = np.clip(orders.t // DAY, 0, cal.days - 1)
    return np.where(cal.promotion[day], (gross_cents // 30_000) * 3_000, 0)
