"""The hidden member personas that drive the demo shop's behaviour.

Each persona differs in value, frequency, category taste, discount appetite, time of day, channel
and loyalty, so that segments and clusters found by the analyses are real structure. The persona of
every member is written to the side table ``demo_personas`` (not part of the contract) so tests
can check that clustering recovers it.
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES: tuple[str, ...] = (
    "Electronics", "Beauty", "Apparel", "Home", "Groceries", "Mother & Baby", "Sports & Outdoor", "Pets",
)
ORDER_CHANNELS: tuple[str, ...] = ("app", "mini_program", "web", "live_stream")
ACQUISITION_CHANNELS: tuple[str, ...] = (
    "organic_search", "paid_search", "social_media", "live_stream", "referral", "offline_store", "app_store",
)


@dataclass(frozen=True)
class Persona:
    name: str
    share: float
    orders_per_year: float  # while active
    extra_items: float  # mean number of lines beyond the first
    price_level: float  # multiplies list-price taste (chooses dearer products)
    category_taste: tuple[float, ...]  # weights over CATEGORIES
    peak_sharpness: float  # >1 concentrates buying on festival days
    redeem_propensity: float  # chance a points lot is redeemed at the next order
    uplift: float  # relative uplift of conversion when targeted by a campaign
    active_years: float  # mean length of an active spell before going dormant
    night_owl: float  # share of orders placed on the night-owl clock
    channel_mix: tuple[float, ...]  # weights over ORDER_CHANNELS
    acquisition_mix: tuple[float, ...]  # weights over ACQUISITION_CHANNELS
    age_range: tuple[int, int]
    female_share: float
    return_rate: float
    cancel_rate: float
    browse_sessions_per_order: float  # non-buying sessions for each tracked order
    browse_sessions_per_year: float  # non-buying sessions while active, regardless of orders


PERSONAS: tuple[Persona, ...] = (
    Persona("vip_loyalist", 0.06, 13.0, 1.2, 2.2,
            (0.34, 0.28, 0.16, 0.10, 0.04, 0.02, 0.05, 0.01), 1.0, 0.30, 0.10, 8.0, 0.10,
            (0.70, 0.10, 0.18, 0.02), (0.25, 0.10, 0.10, 0.05, 0.30, 0.15, 0.05), (28, 52), 0.55,
            0.03, 0.02, 1.4, 6.0),
    Persona("family_planner", 0.20, 6.5, 2.6, 0.9,
            (0.03, 0.06, 0.06, 0.22, 0.33, 0.26, 0.02, 0.02), 1.1, 0.40, 0.15, 5.0, 0.05,
            (0.35, 0.45, 0.15, 0.05), (0.30, 0.15, 0.15, 0.05, 0.20, 0.10, 0.05), (27, 42), 0.72,
            0.03, 0.03, 1.8, 4.0),
    Persona("bargain_hunter", 0.18, 4.8, 1.6, 0.65,
            (0.14, 0.16, 0.16, 0.16, 0.16, 0.08, 0.08, 0.06), 2.2, 0.75, 0.35, 3.0, 0.15,
            (0.40, 0.35, 0.15, 0.10), (0.15, 0.30, 0.30, 0.15, 0.05, 0.00, 0.05), (22, 60), 0.62,
            0.05, 0.06, 2.6, 6.0),
    Persona("young_trendsetter", 0.20, 5.2, 0.8, 0.85,
            (0.08, 0.34, 0.42, 0.03, 0.04, 0.00, 0.08, 0.01), 1.2, 0.30, 0.20, 2.5, 0.65,
            (0.45, 0.30, 0.05, 0.20), (0.10, 0.10, 0.40, 0.30, 0.05, 0.00, 0.05), (18, 29), 0.70,
            0.12, 0.05, 3.0, 10.0),
    Persona("occasional_buyer", 0.26, 1.3, 0.5, 1.0,
            (0.16, 0.12, 0.16, 0.18, 0.14, 0.06, 0.12, 0.06), 1.3, 0.15, 0.10, 2.0, 0.12,
            (0.30, 0.25, 0.40, 0.05), (0.30, 0.20, 0.15, 0.05, 0.15, 0.10, 0.05), (18, 65), 0.55,
            0.06, 0.06, 2.2, 2.5),
    Persona("lapsed_regular", 0.10, 7.0, 1.2, 1.1,
            (0.18, 0.18, 0.18, 0.14, 0.14, 0.08, 0.06, 0.04), 1.0, 0.35, 0.25, 0.45, 0.10,
            (0.40, 0.25, 0.30, 0.05), (0.25, 0.20, 0.20, 0.05, 0.15, 0.10, 0.05), (22, 50), 0.60,
            0.07, 0.05, 1.8, 4.0),
)

PERSONA_NAMES: tuple[str, ...] = tuple(p.name for p in PERSONAS)
