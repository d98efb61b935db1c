"""App sessions whose events drop off step by step like a real funnel.

Orders placed in the app are tracked: each has a converting session (landing, browsing, product
views of what was bought, add-to-cart, checkout, purchase at the order's timestamp). Around them
members browse without buying, most sessions ending after the landing page, fewer reaching a
product, the cart, checkout. Anonymous visitors browse too. Orders from the mini-program, the web
shop and live streams come from other systems and have no clickstream, as in many real shops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.synthetic.calendar import DemandCalendar
from analytics.synthetic.catalog import Catalog, sample_products
from analytics.synthetic.people import choice
from analytics.synthetic.personas import ORDER_CHANNELS, PERSONAS
from analytics.synthetic.shopping import (
    DAY,
    DROPOUT_ENGAGEMENT,
    GUEST,
    Lines,
    MemberSet,
    Orders,
    persona_array,
    sample_days,
    time_of_day,
)

DEVICES = ("ios", "android", "harmonyos")
SOURCES = ("direct", "organic_search", "paid_search", "social", "referral", "email", "sms", "push")
BASE_SOURCE_WEIGHTS = (0.40, 0.18, 0.12, 0.20, 0.10, 0, 0, 0)
LANDING_PAGES = ("home", "promo", "category", "live_room")
BROWSE_PAGES = ("home", "category", "promo", "member_center", "live_room")
FIXED_PAGES = {2: "search", 3: "product", 4: "product", 5: "checkout", 6: "payment_success"}
PAGES = tuple(dict.fromkeys(LANDING_PAGES + BROWSE_PAGES + tuple(FIXED_PAGES.values())))
TRACKED_CHANNEL = ORDER_CHANNELS.index("app")
#: Non-buying sessions for every tracked order, multiplied by the persona's own factor.
BROWSE_PER_ORDER = 2.4
#: Share of sessions from visitors who are not logged in.
ANONYMOUS_SHARE = 0.12


@dataclass
class Events:
    session: np.ndarray  # session index within the chunk
    member: np.ndarray  # GUEST for anonymous
    t: np.ndarray
    type: np.ndarray  # index into EVENT_TYPES
    page: np.ndarray  # index into PAGES
    product: np.ndarray  # product index, -1 for none
    device: np.ndarray  # per session, index into DEVICES
    source: np.ndarray  # per session, index into SOURCES
    n_sessions: int


def make_events(
    rng: np.random.Generator,
    catalog: Catalog,
    members: MemberSet,
    orders: Orders,
    lines: Lines,
    order_source: np.ndarray,
    cal: DemandCalendar,
) -> Events:
    """Sessions and their events for one chunk. ``order_source`` is a SOURCES index per order."""
    end_t = cal.days * DAY
    # (a) converting sessions, one per tracked order
    conv_order = np.flatnonzero(orders.channel == TRACKED_CHANNEL)
    n_conv = conv_order.size
    n_lines = np.diff(lines.offsets)[conv_order]

    # (b) members' browsing sessions around their orders and while active
    tracked_per_member = np.bincount(orders.member[conv_order][orders.member[conv_order] != GUEST],
                                     minlength=members.n)
    years = (members.spell_end - members.spell_start) / 365.0
    per_order = persona_array("browse_sessions_per_order")[members.persona] * BROWSE_PER_ORDER / 2
    per_year = persona_array("browse_sessions_per_year")[members.persona] * members.app_share
    engaged = np.exp(DROPOUT_ENGAGEMENT * members.engagement)  # engaged members browse more (and stay longer)
    count = rng.poisson((per_order * tracked_per_member + per_year * years) * engaged)
    b_member = np.repeat(np.arange(members.n), count)
    lo = members.spell_start[b_member]
    hi = np.maximum(members.spell_end[b_member], np.minimum(lo + 30, cal.days))
    cum = cal.cumulative()
    b_day = sample_days(rng, cum, lo, hi)
    b_t = b_day * DAY + time_of_day(rng, members.night_owl[b_member])
    b_t = np.maximum(b_t, np.maximum(members.registered_t[b_member], 0))

    # (c) anonymous visitors
    n_anon = int(ANONYMOUS_SHARE / (1 - ANONYMOUS_SHARE) * (n_conv + b_member.size))
    a_day = sample_days(rng, cum, np.zeros(n_anon, dtype=np.int64), np.full(n_anon, cal.days))
    a_t = a_day * DAY + time_of_day(rng, np.full(n_anon, 0.15))

    n_browse = b_member.size + n_anon
    n_s = n_conv + n_browse
    member = np.concatenate([orders.member[conv_order], b_member, np.full(n_anon, GUEST)])
    converting = np.arange(n_s) < n_conv

    # depth of each session: how far down the funnel it gets
    pv = np.where(converting, rng.poisson(0.3, n_s), 0)
    reach_pv = rng.random(n_s) < 0.55
    pv = np.where(converting, pv, reach_pv * (1 + rng.poisson(0.3, n_s)))
    search = np.where(converting, rng.random(n_s) < 0.35, reach_pv & (rng.random(n_s) < 0.3)).astype(np.int64)
    reach_view = reach_pv & (rng.random(n_s) < 0.6)
    views = np.where(converting, np.concatenate([n_lines, np.zeros(n_browse, dtype=np.int64)]) + rng.poisson(0.5, n_s),
                     reach_view * (1 + rng.poisson(0.8, n_s)))
    reach_cart = reach_view & (rng.random(n_s) < 0.3)
    carts = np.where(converting, np.minimum(np.concatenate([n_lines, np.zeros(n_browse, dtype=np.int64)]), 2),
                     np.minimum(reach_cart * (1 + rng.poisson(0.15, n_s)), views))
    checkout = np.where(converting, 1, reach_cart & (rng.random(n_s) < 0.35)).astype(np.int64)
    purchase = converting.astype(np.int64)
    b1 = np.ones(n_s, dtype=np.int64)
    b2 = b1 + pv
    b3 = b2 + search
    b4 = b3 + views
    b5 = b4 + carts
    b6 = b5 + checkout
    n_events = b6 + purchase

    session = np.repeat(np.arange(n_s), n_events)
    first_row = np.concatenate([[0], np.cumsum(n_events)[:-1]])
    pos = np.arange(session.size) - first_row[session]
    etype = sum((pos >= b[session]).astype(np.int64) for b in (b1, b2, b3, b4, b5, b6))

    # timing: a few seconds to a minute between events; purchases land on the order's timestamp
    gap = np.where(pos == 0, 0, 2 + rng.exponential(30, session.size).astype(np.int64))
    offset = np.cumsum(gap)
    offset -= offset[first_row][session]
    duration = offset[first_row + n_events - 1]
    start = np.empty(n_s, dtype=np.int64)
    start[:n_conv] = orders.t[conv_order] - duration[:n_conv]
    start[n_conv:] = np.minimum(np.concatenate([b_t, a_t]), end_t - 1 - duration[n_conv:])
    t = start[session] + offset

    # products: browsing follows taste; a converting session's last views are what was bought
    is_view = etype == 3
    is_cart = etype == 4
    product = np.full(session.size, -1, dtype=np.int64)
    view_rows = np.flatnonzero(is_view)
    vs = session[view_rows]
    v_idx = pos[view_rows] - b3[vs]
    conv_lines = np.concatenate([n_lines, np.zeros(n_browse, dtype=np.int64)])
    from_order = converting[vs] & (v_idx >= views[vs] - conv_lines[vs])
    order_of_session = np.concatenate([conv_order, np.full(n_browse, -1)])
    line_pos = lines.offsets[np.maximum(order_of_session[vs], 0)] + v_idx - (views[vs] - conv_lines[vs])
    avg_taste = np.cumsum(np.array([p.category_taste for p in PERSONAS]).mean(axis=0))
    taste = np.where((member[vs] != GUEST)[:, None], members.taste_cum[np.maximum(member[vs], 0)], avg_taste)
    category = np.minimum((rng.random(vs.size)[:, None] > taste).sum(axis=1), len(avg_taste) - 1)
    level = np.where(member[vs] != GUEST, members.price_level[np.maximum(member[vs], 0)], 1.0)
    browsed = sample_products(rng, catalog, category, level)
    product[view_rows] = np.where(from_order, lines.product[np.where(from_order, line_pos, 0)], browsed)
    cart_rows = np.flatnonzero(is_cart)
    cs = session[cart_rows]
    viewed_row = first_row[cs] + b3[cs] + views[cs] - carts[cs] + (pos[cart_rows] - b4[cs])
    product[cart_rows] = product[viewed_row]

    # pages, device and traffic source
    page = np.empty(session.size, dtype=np.int64)
    landing = choice(rng, [0.55, 0.20, 0.15, 0.10], n_s)
    page[pos == 0] = np.array([PAGES.index(p) for p in LANDING_PAGES])[landing]
    pv_rows = etype == 1
    page[pv_rows] = np.array([PAGES.index(p) for p in BROWSE_PAGES])[choice(rng, [0.3, 0.35, 0.2, 0.1, 0.05],
                                                                              int(pv_rows.sum()))]
    for code, name in FIXED_PAGES.items():
        page[etype == code] = PAGES.index(name)
    device = choice(rng, [0.52, 0.40, 0.08], n_s)
    source = choice(rng, BASE_SOURCE_WEIGHTS, n_s)
    conv_source = order_source[conv_order]
    source[:n_conv] = np.where(conv_source >= 0, conv_source, source[:n_conv])
    return Events(session, member[session], t, etype, page, product, device[session], source[session], n_s)

