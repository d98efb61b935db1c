"""Member clusters, part one: who is clustered, and their behavioural features, computed in the warehouse.

The definitions (who, which features, in which groups) are in :mod:`analytics.clustering`'s docstring; this
module builds the one SQL statement (:func:`feature_select`) and pulls its rows (:func:`member_features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Date, Double, Select, case, cast, func, literal, select

from analytics.errors import InputError
from analytics.filters import Filters, completed_order_conditions
from analytics.i18n import DEFAULT_LANGUAGE, N_, _, code_label, language
from analytics.sqlparts import NIGHT_TEXT, at_night, count_if, ratio
from analytics.storage.contract import events, members, order_items, orders, products
from analytics.storage.db import Bind, read_frame, read_frame_columnar

#: Algorithms by key, with their names (translated where shown: ``_(ALGORITHMS[key])``).
ALGORITHMS: dict[str, str] = {"kmeans": "k-means", "gmm": N_("Gaussian mixture")}
#: Above this many members k-means starts from mini-batch k-means on a seeded sample of MINIBATCH_SAMPLE
#: members, then refines the centres with full passes over all of them.
MINIBATCH_ABOVE = MINIBATCH_SAMPLE = 100_000
#: The Gaussian mixture is fitted on at most this many members (a seeded sample), then assigns all.
GMM_FIT_SAMPLE = 200_000
#: Standardised features are clipped at +-CLIP.
CLIP = 5.0
#: Members are scored against the centres this many rows at a time.
SCORE_BLOCK = 16_384
#: At most this many categories get a share feature (the window's best sellers); the rest are "other".
MAX_CATEGORIES = 8
MAX_CHANNELS = 6
#: Member attributes kept beside the features for the portraits' mix charts.
MIX_ATTRIBUTES: tuple[str, ...] = ("tier", "region", "gender", "age_band", "acquisition_channel")
AGE_BANDS: tuple[tuple[int, int, str], ...] = ((0, 25, "<25"), (25, 35, "25-34"), (35, 45, "35-44"),
                                               (45, 55, "45-54"), (55, 200, "55+"))

LOG, SQRT, PLAIN = "log", "sqrt", "plain"


@dataclass(frozen=True)
class FeatureGroup:
    """A group of features the user switches on or off: ``label`` and ``help`` are marked for the catalog and read
    in the reader's language through :meth:`shown_label` and :meth:`shown_help`."""

    label: str
    help: str

    def shown_label(self) -> str:
        return _(self.label)

    def shown_help(self) -> str:
        return _(self.help).format(night=NIGHT_TEXT, categories=MAX_CATEGORIES)


FEATURE_GROUPS: dict[str, FeatureGroup] = {
    "value": FeatureGroup(N_("Recency, frequency, monetary"), N_("Days since the last order, orders and net sales "
                          "in the window (as RFM).")),
    "tenure": FeatureGroup(N_("Tenure"), N_("Days from registration to the range's last day.")),
    "basket": FeatureGroup(N_("Basket"), N_("AOV (net sales / orders) and order lines per order.")),
    "promotions": FeatureGroup(N_("Discounts and points"), N_("Discount share (discounts / gross value) and points "
                               "redeem rate (points redeemed / points earned).")),
    "timing": FeatureGroup(N_("Time of day"), N_("Share of orders placed at night, {night}.")),
    "engagement": FeatureGroup(N_("Engagement"), N_("Sessions and tracked events in the window.")),
    "categories": FeatureGroup(N_("Category mix"), N_("Share of the member's line amount in each of the window's "
                               "top {categories} categories.")),
    "channels": FeatureGroup(N_("Sales channels"), N_("Share of the member's orders in each sales channel.")),
    "demographics": FeatureGroup(N_("Age"), N_("Age in years on the range's last day.")),
}

#: Fixed features: name -> (group, transform, label). The labels stay English in models and z-score tables (they
#: are keys there); :func:`feature_label` shows them in the reader's language.
_FIXED: dict[str, tuple[str, str, str]] = {
    "recency_days": ("value", LOG, N_("Days since last order")),
    "frequency": ("value", LOG, N_("Orders")),
    "monetary": ("value", LOG, N_("Net sales")),
    "tenure_days": ("tenure", LOG, N_("Tenure (days)")),
    "aov": ("basket", LOG, "AOV"),
    "lines_per_order": ("basket", LOG, N_("Lines per order")),
    "discount_share": ("promotions", PLAIN, N_("Discount share")),
    "points_redeem_rate": ("promotions", PLAIN, N_("Points redeem rate")),
    "night_share": ("timing", PLAIN, N_("Night orders share")),
    "sessions": ("engagement", LOG, N_("Sessions")),
    "events": ("engagement", LOG, N_("Events")),
    "age": ("demographics", PLAIN, N_("Age")),
}
CATEGORY_PREFIX, CHANNEL_PREFIX = "category: ", "channel: "


@dataclass(frozen=True)
class Feature:
    name: str
    group: str
    transform: str
    label: str


def feature_label(feature: Feature) -> str:
    """A feature's name as the reader reads it: a fixed feature's label translated, a category as stored (data), a
    sales channel's orders with the channel's label (``live_stream orders`` in English, as models store it)."""
    if feature.name.startswith(CATEGORY_PREFIX):
        return feature.label
    if feature.name.startswith(CHANNEL_PREFIX):
        if language() == DEFAULT_LANGUAGE:
            return feature.label
        return _("{channel} orders").format(channel=code_label(feature.name.removeprefix(CHANNEL_PREFIX)))
    return _(feature.label)


def features_for(categories: Sequence[str], channels: Sequence[str]) -> list[Feature]:
    """Every feature, fixed ones first, then one per category and per sales channel."""
    fixed = [Feature(name, group, transform, label) for name, (group, transform, label) in _FIXED.items()]
    return [*fixed, *(Feature(CATEGORY_PREFIX + c, "categories", SQRT, c) for c in categories),
            *(Feature(CHANNEL_PREFIX + c, "channels", SQRT, f"{c} orders") for c in channels)]


@dataclass(frozen=True)
class ClusterSettings:
    """What the user chooses: number of clusters, algorithm, feature groups, who is clustered, seed."""

    k: int = 6
    algorithm: str = "kmeans"
    groups: tuple[str, ...] = tuple(FEATURE_GROUPS)
    min_orders: int = 1
    seed: int = 42

    def __post_init__(self) -> None:
        if not 2 <= self.k <= 20:
            raise InputError(_("The number of clusters must be between 2 and 20, not {k}.").format(k=self.k))
        if self.algorithm not in ALGORITHMS:
            raise InputError(_("Unknown algorithm {name}; choose {choices}.").format(
                name=repr(self.algorithm), choices=_(" or ").join(ALGORITHMS)))
        unknown = [g for g in self.groups if g not in FEATURE_GROUPS]
        if unknown:
            raise InputError(_("Unknown feature group {name}; choose from {choices}.").format(
                name=repr(unknown[0]), choices=", ".join(FEATURE_GROUPS)))
        if not self.groups:
            raise InputError(_("Choose at least one feature group."))
        if self.min_orders < 1:
            raise InputError(_("The minimum number of orders must be at least 1."))
        object.__setattr__(self, "groups", tuple(g for g in FEATURE_GROUPS if g in self.groups))


# --- features in SQL ------------------------------------------------------------------------------

def _window_orders(filters: Filters) -> Any:
    o = orders.c
    return (select(o.order_id, o.member_id, o.ordered_at, o.channel, o.gross_amount, o.discount_amount, o.net_amount,
                   o.points_earned, o.points_redeemed)
            .where(o.member_id.is_not(None), *completed_order_conditions(filters, filters.start_ts, filters.end_ts))
            .subquery("window_orders"))


def top_categories(bind: Bind, filters: Filters, limit: int = MAX_CATEGORIES) -> list[str]:
    """The window's best-selling categories by members' line amount, best first (ties by name)."""
    w = _window_orders(filters)
    amount = func.sum(order_items.c.line_amount)
    query = (select(products.c.category, amount.label("amount"))
             .select_from(w.join(order_items, order_items.c.order_id == w.c.order_id)
                          .join(products, products.c.product_id == order_items.c.product_id))
             .where(products.c.category.is_not(None)).group_by(products.c.category)
             .order_by(amount.desc(), products.c.category).limit(limit))
    return [str(c) for c in read_frame(bind, query)["category"]]


def sales_channels(bind: Bind, filters: Filters, limit: int = MAX_CHANNELS) -> list[str]:
    """The window's sales channels by members' orders, most first (ties by name)."""
    w = _window_orders(filters)
    n = func.count()
    query = (select(w.c.channel, n.label("orders")).where(w.c.channel.is_not(None)).group_by(w.c.channel)
             .order_by(n.desc(), w.c.channel).limit(limit))
    return [str(c) for c in read_frame(bind, query)["channel"]]


def _ratio(numerator: Any, denominator: Any) -> Any:
    """numerator / denominator as a double, 0 where the denominator is 0 or missing."""
    return func.coalesce(ratio(numerator, denominator), 0.0)


def feature_select(filters: Filters, min_orders: int, categories: Sequence[str], channels: Sequence[str],
                   attributes: bool = True) -> Select:
    """One row per clustered member: ``member_id``, every feature of :func:`features_for` (raw, before
    the transform; age may be null) and, with ``attributes``, the member's tier, region, gender and
    acquisition channel. Categories and channels are bound parameters."""
    w = _window_orders(filters)
    per_order = (select(w.c.member_id, func.count().label("frequency"),
                        func.coalesce(func.sum(w.c.net_amount), 0).label("monetary"),
                        func.max(w.c.ordered_at).label("last_at"),
                        func.sum(w.c.discount_amount).label("discount"), func.sum(w.c.gross_amount).label("gross"),
                        func.sum(w.c.points_redeemed).label("redeemed"), func.sum(w.c.points_earned).label("earned"),
                        count_if(at_night(w.c.ordered_at)).label("night_orders"),
                        *(count_if(w.c.channel == literal(c)).label(f"ch{i}") for i, c in enumerate(channels)))
                 .group_by(w.c.member_id).having(func.count() >= min_orders).subquery("per_order"))
    lines = (select(w.c.member_id, func.count().label("lines"), func.sum(order_items.c.line_amount).label("amount"),
                    *(func.sum(case((products.c.category == literal(c), order_items.c.line_amount), else_=0))
                      .label(f"cat{i}") for i, c in enumerate(categories)))
             .select_from(w.join(order_items, order_items.c.order_id == w.c.order_id)
                          .outerjoin(products, products.c.product_id == order_items.c.product_id))
             .group_by(w.c.member_id).subquery("lines"))
    e = events.c
    activity = (select(e.member_id, count_if(e.event_type == "session_start").label("sessions"),
                       func.count().label("events"))
                .where(e.member_id.is_not(None), e.occurred_at >= filters.start_ts, e.occurred_at < filters.end_ts)
                .group_by(e.member_id).subquery("activity"))
    p, ln, a, m = per_order.c, lines.c, activity.c, members.c
    end = literal(filters.end, Date)
    columns = [
        p.member_id,
        cast(end - cast(p.last_at, Date), Double).label("recency_days"),
        cast(p.frequency, Double).label("frequency"),
        cast(p.monetary, Double).label("monetary"),
        cast(func.greatest(end - cast(m.registered_at, Date), 0), Double).label("tenure_days"),
        _ratio(p.monetary, p.frequency).label("aov"),
        _ratio(ln.lines, p.frequency).label("lines_per_order"),
        _ratio(p.discount, p.gross).label("discount_share"),
        _ratio(p.redeemed, p.earned).label("points_redeem_rate"),
        _ratio(p.night_orders, p.frequency).label("night_share"),
        cast(func.coalesce(a.sessions, 0), Double).label("sessions"),
        cast(func.coalesce(a.events, 0), Double).label("events"),
        (cast(end - m.birth_date, Double) / 365.25).label("age"),
        *(_ratio(ln[f"cat{i}"], ln.amount).label(CATEGORY_PREFIX + c) for i, c in enumerate(categories)),
        *(_ratio(p[f"ch{i}"], p.frequency).label(CHANNEL_PREFIX + c) for i, c in enumerate(channels)),
    ]
    if attributes:  # for the portraits: the mixes, and the categories' share of all line spend
        columns += [m.tier, m.region, m.gender, m.acquisition_channel,
                    cast(func.coalesce(ln.amount, 0), Double).label("line_amount")]
    joined = (per_order.join(members, m.member_id == p.member_id)
              .outerjoin(lines, ln.member_id == p.member_id).outerjoin(activity, a.member_id == p.member_id))
    return select(*columns).select_from(joined)


@dataclass
class MemberFeatures:
    """One row per clustered member (raw features and attributes), and the feature list."""

    frame: pd.DataFrame
    features: list[Feature]
    categories: list[str]
    channels: list[str]


def member_features(bind: Bind, filters: Filters, min_orders: int = 1) -> MemberFeatures:
    """Pull one feature row per clustered member, ordered by member id (see :func:`feature_select`)."""
    categories, channels = top_categories(bind, filters), sales_channels(bind, filters)
    query = feature_select(filters, min_orders, categories, channels)
    frame = read_frame_columnar(bind, query.order_by(query.selected_columns.member_id))
    features = features_for(categories, channels)
    for f in features:
        frame[f.name] = pd.to_numeric(frame[f.name], errors="coerce").astype("float64")
    frame["age_band"] = _age_bands(frame["age"])
    return MemberFeatures(frame.reset_index(drop=True), features, categories, channels)


def _age_bands(age: pd.Series) -> pd.Series:
    bands = pd.Series(pd.NA, index=age.index, dtype="object")
    for lo, hi, label in AGE_BANDS:
        bands[(age >= lo) & (age < hi)] = label
    return bands.fillna("unknown")


