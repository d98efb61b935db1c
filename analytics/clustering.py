"""Member clusters: behavioural features per member from SQL, k-means or a Gaussian mixture, portraits.

Definitions (one place; the page shows them as help):

* **Who is clustered**: members with at least ``min_orders`` completed orders in the window (the global
  date range, channel and tier filters, as for RFM).
* **Features**, one row per member, computed in the warehouse in one statement
  (:func:`feature_select`), in groups the user may switch on or off (:data:`FEATURE_GROUPS`):
  recency, frequency and monetary value as in :mod:`analytics.rfm`; tenure (days since registration);
  AOV (net sales / orders) and lines per order; discount share (discounts / gross value) and points
  redeem rate (points redeemed / points earned in the window, 0 when none earned; above 1 when older
  points are spent); night share (orders placed at night, :func:`analytics.sqlparts.at_night`);
  sessions (``session_start`` events) and events in the window; age; the share of the member's line
  amount in each of the window's top categories (the rest is "other"); the share of their orders in
  each of the window's main sales channels.
* **Transform**: amounts, counts and days are skewed (a few members buy a hundred times more), so they
  are taken as ``ln(1 + x)``; shares are square-rooted (which spreads the small shares that tell
  members apart); then every feature is standardised (minus its mean, divided by its standard
  deviation) and clipped at +-5, so each counts equally and a handful of extreme members cannot drag a
  centre. A missing age takes the mean.
* **Algorithms**: k-means (Lloyd's, several starts; above :data:`MINIBATCH_ABOVE` members mini-batch
  k-means on a seeded sample first, then full passes over everyone from its centres) or a Gaussian
  mixture with one variance per feature and cluster. Both are seeded (``seed``), so the same data and
  settings give the same clusters.
* **Cluster numbers** follow value: cluster 1 has the highest average net sales per member.
* **Portraits** compare each cluster with all clustered members: feature means as z-scores (the
  cluster's mean of the standardised feature), top categories, tier / region / gender / age mix, and a
  plain-language name built from them (:func:`cluster_name`).

Only one feature row per member leaves the warehouse (never raw orders). A fitted model is plain data
(:class:`ClusterModel`): the same assignment can be compiled back into SQL (:func:`assignment_select`),
which is how a cluster becomes a targeting audience (:func:`cluster_audience_spec`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Date, Double, Select, case, cast, func, literal, select

from analytics.errors import InputError
from analytics.filters import Filters, completed_order_conditions
from analytics.sqlparts import NIGHT_TEXT, at_night, count_if
from analytics.storage.contract import events, members, order_items, orders, products
from analytics.storage.db import Bind, read_frame, read_frame_columnar

ALGORITHMS: dict[str, str] = {"kmeans": "k-means", "gmm": "Gaussian mixture"}
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
    label: str
    help: str


FEATURE_GROUPS: dict[str, FeatureGroup] = {
    "value": FeatureGroup("Recency, frequency, monetary", "Days since the last order, orders and net sales in the "
                          "window (as RFM)."),
    "tenure": FeatureGroup("Tenure", "Days from registration to the range's last day."),
    "basket": FeatureGroup("Basket", "AOV (net sales / orders) and order lines per order."),
    "promotions": FeatureGroup("Discounts and points", "Discount share (discounts / gross value) and points "
                               "redeem rate (points redeemed / points earned)."),
    "timing": FeatureGroup("Time of day", f"Share of orders placed at night, {NIGHT_TEXT}."),
    "engagement": FeatureGroup("Engagement", "Sessions and tracked events in the window."),
    "categories": FeatureGroup("Category mix", f"Share of the member's line amount in each of the window's top "
                               f"{MAX_CATEGORIES} categories."),
    "channels": FeatureGroup("Sales channels", "Share of the member's orders in each sales channel."),
    "demographics": FeatureGroup("Age", "Age in years on the range's last day."),
}

#: Fixed features: name -> (group, transform, label).
_FIXED: dict[str, tuple[str, str, str]] = {
    "recency_days": ("value", LOG, "Days since last order"),
    "frequency": ("value", LOG, "Orders"),
    "monetary": ("value", LOG, "Net sales"),
    "tenure_days": ("tenure", LOG, "Tenure (days)"),
    "aov": ("basket", LOG, "AOV"),
    "lines_per_order": ("basket", LOG, "Lines per order"),
    "discount_share": ("promotions", PLAIN, "Discount share"),
    "points_redeem_rate": ("promotions", PLAIN, "Points redeem rate"),
    "night_share": ("timing", PLAIN, "Night orders share"),
    "sessions": ("engagement", LOG, "Sessions"),
    "events": ("engagement", LOG, "Events"),
    "age": ("demographics", PLAIN, "Age"),
}
CATEGORY_PREFIX, CHANNEL_PREFIX = "category: ", "channel: "


@dataclass(frozen=True)
class Feature:
    name: str
    group: str
    transform: str
    label: str


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
            raise InputError(f"The number of clusters must be between 2 and 20, not {self.k}.")
        if self.algorithm not in ALGORITHMS:
            raise InputError(f"Unknown algorithm {self.algorithm!r}; choose {' or '.join(ALGORITHMS)}.")
        unknown = [g for g in self.groups if g not in FEATURE_GROUPS]
        if unknown:
            raise InputError(f"Unknown feature group {unknown[0]!r}; choose from {', '.join(FEATURE_GROUPS)}.")
        if not self.groups:
            raise InputError("Choose at least one feature group.")
        if self.min_orders < 1:
            raise InputError("The minimum number of orders must be at least 1.")
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
    return func.coalesce(cast(numerator, Double) / func.nullif(cast(denominator, Double), 0.0), 0.0)


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


# --- transform and models -------------------------------------------------------------------------

def _transformed(values: np.ndarray, transform: str) -> np.ndarray:
    if transform == LOG:
        return np.log1p(np.maximum(values, 0.0))
    if transform == SQRT:
        return np.sqrt(np.maximum(values, 0.0))
    return values


@dataclass
class ClusterModel:
    """A fitted clustering as plain, JSON-serialisable data.

    Each member goes to the cluster ``j`` minimising ``sum_d weight[j][d] * (z_d - centre[j][d])^2 +
    offset[j]``, where ``z`` is the standardised feature vector: k-means has weights 1 and offsets 0; the
    diagonal Gaussian mixture has weights 1 / variance and offsets ``sum_d ln variance - 2 ln share``
    (its most likely component). ``centres`` etc. are listed in cluster-number order (cluster 1 first).
    """

    settings: ClusterSettings
    features: list[Feature]
    means: list[float]
    stds: list[float]
    centres: list[list[float]]
    weights: list[list[float]]
    offsets: list[float]
    categories: list[str]
    channels: list[str]
    names: list[str] = field(default_factory=list)

    def standardise(self, frame: pd.DataFrame) -> np.ndarray:
        """The standardised, clipped feature matrix of ``frame`` (columns in model order)."""
        columns = np.empty((len(self.features), len(frame)))  # one contiguous row per feature, then transposed
        for d, (f, mean, std) in enumerate(zip(self.features, self.means, self.stds, strict=True)):
            z = _transformed(frame[f.name].to_numpy(dtype="float64", na_value=np.nan), f.transform) - mean
            z /= std
            np.clip(np.nan_to_num(z, copy=False, nan=0.0), -CLIP, CLIP, out=columns[d])
        return np.ascontiguousarray(columns.T)

    def _scores(self, z: np.ndarray) -> np.ndarray:
        """Each member's score against each centre in model order (the nearest has the lowest), from the
        standardised matrix ``z``; computed in blocks of rows so the temporaries stay small."""
        params = [(np.asarray(c), np.asarray(w), b) for c, w, b in zip(self.centres, self.weights, self.offsets,
                                                                          strict=True)]
        out = np.empty((len(z), len(params)))
        work = np.empty((min(len(z), SCORE_BLOCK), z.shape[1]))
        for lo in range(0, len(z), SCORE_BLOCK):
            block = z[lo:lo + SCORE_BLOCK]
            d = work[:len(block)]
            for j, (c, w, b) in enumerate(params):
                np.subtract(block, c, out=d)  # (z - c)^2 * w, summed per member, as in one expression
                np.multiply(d, d, out=d)
                np.multiply(d, w, out=d)
                out[lo:lo + SCORE_BLOCK, j] = d.sum(axis=1) + b
        return out

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        """Cluster numbers (1..k) for the members of ``frame``."""
        return self._scores(self.standardise(frame)).argmin(axis=1) + 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"]["groups"] = list(self.settings.groups)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterModel:
        settings = dict(data["settings"])
        settings["groups"] = tuple(settings["groups"])
        return cls(ClusterSettings(**settings), [Feature(**f) for f in data["features"]], list(data["means"]),
                   list(data["stds"]), [list(c) for c in data["centres"]], [list(w) for w in data["weights"]],
                   list(data["offsets"]), list(data["categories"]), list(data["channels"]), list(data["names"]))


def _fit_scaling(frame: pd.DataFrame, features: Sequence[Feature]) -> tuple[list[float], list[float]]:
    means, stds = [], []
    for f in features:
        x = _transformed(frame[f.name].to_numpy(dtype="float64", na_value=np.nan), f.transform)
        mean = float(np.nanmean(x)) if np.isfinite(x).any() else 0.0
        std = float(np.nanstd(x)) if np.isfinite(x).any() else 0.0
        means.append(mean)
        stds.append(std if std > 1e-12 else 1.0)
    return means, stds


def _fit_kmeans(z: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(z) <= MINIBATCH_ABOVE:
        return KMeans(k, n_init=4, random_state=seed).fit(z).cluster_centers_
    # mini-batch k-means on a seeded sample finds the starting centres (scikit-learn draws every mini-batch
    # with an O(members) weighted choice, 2 s of 10 at 641k members on all of them), then full Lloyd passes
    # over every member refine them
    sample = z[np.random.default_rng(seed).choice(len(z), MINIBATCH_SAMPLE, replace=False)]
    start = MiniBatchKMeans(k, batch_size=8192, n_init=3, random_state=seed).fit(sample).cluster_centers_
    return KMeans(k, init=start, n_init=1, max_iter=30, random_state=seed).fit(z).cluster_centers_


def _fit_gmm(z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    sample = z[rng.choice(len(z), GMM_FIT_SAMPLE, replace=False)] if len(z) > GMM_FIT_SAMPLE else z
    gmm = GaussianMixture(k, covariance_type="diag", n_init=2, random_state=seed, reg_covar=1e-4).fit(sample)
    return gmm.means_, 1.0 / gmm.covariances_, np.log(gmm.covariances_).sum(axis=1) - 2.0 * np.log(gmm.weights_)


def fit_model(data: MemberFeatures, settings: ClusterSettings) -> ClusterModel:
    """Fit the clustering on the chosen feature groups; clusters numbered by average net sales."""
    return _fit(data, settings)[0]


def _fit(data: MemberFeatures, settings: ClusterSettings) -> tuple[ClusterModel, np.ndarray, np.ndarray]:
    """:func:`fit_model`, also returning the standardised matrix of ``data.frame`` and each member's
    cluster number (what ``model.standardise`` and ``model.assign`` would give, computed once)."""
    if len(data.frame) < settings.k:
        raise InputError(f"Only {len(data.frame):,} members match, fewer than the {settings.k} clusters asked for: "
                         "widen the date range, lower the minimum orders or ask for fewer clusters.")
    used = [f for f in data.features if f.group in settings.groups]
    if not used:
        raise InputError("The chosen feature groups have no features in this window.")
    means, stds = _fit_scaling(data.frame, used)
    model = ClusterModel(settings, used, means, stds, [], [], [], data.categories, data.channels)
    z = model.standardise(data.frame)
    if settings.algorithm == "kmeans":
        centres = _fit_kmeans(z, settings.k, settings.seed)
        weights, offsets = np.ones_like(centres), np.zeros(settings.k)
    else:
        centres, weights, offsets = _fit_gmm(z, settings.k, settings.seed)
    model.centres, model.weights, model.offsets = centres.tolist(), weights.tolist(), offsets.tolist()
    # renumber: cluster 1 = highest average net sales per member (ties: larger cluster first)
    scores = model._scores(z)
    raw = scores.argmin(axis=1)
    sales = data.frame["monetary"].to_numpy(dtype="float64")
    value = [(-(np.nanmean(sales[raw == j]) if (raw == j).any() else -np.inf), -(raw == j).sum(), j)
             for j in range(settings.k)]
    order = [j for *_, j in sorted(value)]
    model.centres = [model.centres[j] for j in order]
    model.weights = [model.weights[j] for j in order]
    model.offsets = [model.offsets[j] for j in order]
    # the same scores with the columns in the new order: exactly what model.assign(data.frame) gives
    return model, z, scores[:, order].argmin(axis=1) + 1


# --- the result: labels, portraits, names ---------------------------------------------------------

@dataclass
class ClusterResult:
    """A fitted model, every clustered member's cluster, and the portraits."""

    model: ClusterModel
    members: pd.DataFrame  # member_id, cluster, cluster_name, raw features, attributes
    portraits: pd.DataFrame  # one row per cluster
    zscores: pd.DataFrame  # cluster x feature label: mean standardised value against all members
    all_features: list[Feature]

    @property
    def total_sales(self) -> float:
        """Net sales of every clustered member in the window."""
        return float(self.portraits["sales"].sum())

    @property
    def empty_clusters(self) -> list[int]:
        """Clusters no member is closest to (a Gaussian mixture may leave a component empty)."""
        return self.portraits.loc[self.portraits["members"] == 0, "cluster"].tolist()


def cluster_members(bind: Bind, filters: Filters, settings: ClusterSettings) -> ClusterResult:
    """Cluster the members of the window: pull features, fit, label, portray."""
    return cluster_features(member_features(bind, filters, settings.min_orders), settings)


def cluster_features(data: MemberFeatures, settings: ClusterSettings) -> ClusterResult:
    """As :func:`cluster_members`, from features already pulled (the k-selection chart reuses them)."""
    model, fitted, labels = _fit(data, settings)
    frame = data.frame.copy(deep=False)  # copy-on-write: the new columns do not reach data.frame
    frame["cluster"] = labels
    # portraits describe every feature, used for fitting or not (with every feature used, the same matrix)
    if model.features == data.features:
        described = fitted
    else:
        described = ClusterModel(settings, data.features, *_fit_scaling(frame, data.features), [], [], [],
                                 data.categories, data.channels).standardise(frame)
    z = pd.DataFrame(described, columns=[f.label for f in data.features])
    zscores = z.groupby(frame["cluster"].to_numpy()).mean().reindex(range(1, settings.k + 1)).fillna(0.0)
    zscores.index.name = "cluster"
    portraits = _portraits(frame, data, zscores, settings.k)
    model.names = portraits["name"].tolist()
    frame["cluster_name"] = frame["cluster"].map(dict(zip(portraits["cluster"], portraits["name"], strict=True)))
    ordered = ["member_id", "cluster", "cluster_name", *(c for c in frame.columns
                                                        if c not in ("member_id", "cluster", "cluster_name"))]
    return ClusterResult(model, frame[ordered], portraits, zscores, data.features)


#: Traits a name may mention: feature label -> (word when well above the population, word when well below).
_TRAITS: dict[str, tuple[str | None, str | None]] = {
    "Days since last order": ("lapsing", "recently active"),
    "Discount share": ("deal-seeking", None),
    "Points redeem rate": ("points-redeeming", None),
    "Night orders share": ("night-owl", None),
    "Lines per order": ("big-basket", "single-item"),
    "Age": ("older", "young"),
    "Tenure (days)": ("long-standing", "newly joined"),
    "Sessions": ("highly engaged", None),
}
#: The name of a cluster no member is closest to (possible with a Gaussian mixture or few distinct members).
EMPTY = "(empty)"
#: The share of spend outside the top categories.
OTHER = "other categories"
#: A z-score beyond this counts as "well above / below" the population.
NAME_Z = 0.5
FAVOURITE_SHARE, FAVOURITE_LIFT = 0.15, 1.2


def cluster_name(z: Mapping[str, float], category_share: Mapping[str, float],
                 category_lift: Mapping[str, float]) -> str:
    """A plain-language name from a cluster's z-scores, its category shares of spend and their lifts (share
    in the cluster / share overall): value word, frequency word, the most distinctive other trait and the
    favourite category (the highest lift, at least :data:`FAVOURITE_LIFT`, among categories with at least
    :data:`FAVOURITE_SHARE` of the cluster's spend).
    E.g. "High-value frequent · Electronics", "Low-value occasional, lapsing · mixed categories"."""
    monetary, frequency = z.get("Net sales", 0.0), z.get("Orders", 0.0)
    value = "High-value" if monetary >= NAME_Z else "Low-value" if monetary <= -NAME_Z else "Mid-value"
    often = "frequent" if frequency >= NAME_Z else "occasional" if frequency <= -NAME_Z else "regular"
    traits = sorted(((abs(z.get(label, 0.0)), word) for label, (up, down) in _TRAITS.items()
                     for word in [up if z.get(label, 0.0) >= NAME_Z else down if z.get(label, 0.0) <= -NAME_Z
                                  else None] if word), reverse=True)
    name = f"{value} {often}" + (f", {traits[0][1]}" if traits else "")
    best = max(((lift, c) for c, lift in category_lift.items() if category_share.get(c, 0.0) >= FAVOURITE_SHARE),
               default=None)
    return f"{name} · {best[1] if best and best[0] >= FAVOURITE_LIFT else 'mixed categories'}"


def _portraits(frame: pd.DataFrame, data: MemberFeatures, zscores: pd.DataFrame, k: int) -> pd.DataFrame:
    total_sales = float(frame["monetary"].sum()) or 1.0
    cat_cols = [CATEGORY_PREFIX + c for c in data.categories]
    # spend per category = its share of the member's line amount x that amount; the rest is "other"
    amount = frame["line_amount"].to_numpy(dtype="float64")
    spend = frame[cat_cols].mul(amount, axis=0)
    spend[OTHER] = np.maximum(amount - spend.sum(axis=1).to_numpy(), 0.0)
    overall = spend.sum() / (amount.sum() or 1.0)
    rows, names = [], []
    figures = frame[["monetary", "frequency", "recency_days"]]  # the rows of a cluster: only what is summarised
    for j in range(1, k + 1):
        in_cluster = (frame["cluster"] == j).to_numpy()
        part = figures[in_cluster]
        mix = spend[in_cluster].sum() / (amount[in_cluster].sum() or 1.0)
        lift = {c: float(mix[CATEGORY_PREFIX + c] / overall[CATEGORY_PREFIX + c])
                for c in data.categories if overall[CATEGORY_PREFIX + c] > 0}
        shares = {c: float(mix[CATEGORY_PREFIX + c]) for c in data.categories}
        name = cluster_name(zscores.loc[j].to_dict(), shares, lift) if in_cluster.any() else EMPTY
        names.append(name)
        top = mix.sort_values(ascending=False).head(3)
        rows.append({
            "cluster": j, "members": len(part), "member_share": len(part) / len(frame),
            "sales": float(part["monetary"].sum()), "sales_share": float(part["monetary"].sum()) / total_sales,
            "avg_sales": float(part["monetary"].mean()) if len(part) else np.nan,
            "avg_orders": float(part["frequency"].mean()) if len(part) else np.nan,
            "aov": float(part["monetary"].sum() / part["frequency"].sum()) if len(part) else np.nan,
            "avg_recency_days": float(part["recency_days"].mean()) if len(part) else np.nan,
            "top_categories": ", ".join(f"{c.removeprefix(CATEGORY_PREFIX)} {s:.0%}" for c, s in top.items() if s > 0),
        })
    # the same name twice gets the cluster number, so names identify clusters (empty ones always have it)
    counts = pd.Series(names).value_counts()
    for row, name in zip(rows, names, strict=True):
        row["name"] = f"{name} ({row['cluster']})" if counts[name] > 1 or name == EMPTY else name
    table = pd.DataFrame(rows)
    return table[["cluster", "name", *[c for c in table.columns if c not in ("cluster", "name")]]]


def cluster_mix(result: ClusterResult, attribute: str) -> pd.DataFrame:
    """Share of each value of a member attribute (tier, region, gender, age band, acquisition channel)
    within each cluster and among all clustered members (cluster 0): ``cluster``, ``value``,
    ``members``, ``share``."""
    if attribute not in MIX_ATTRIBUTES:
        raise InputError(f"Unknown attribute {attribute!r}; choose from {', '.join(MIX_ATTRIBUTES)}.")
    frame = result.members[["cluster", attribute]].fillna({attribute: "unknown"})
    per_cluster = frame.groupby(["cluster", attribute]).size()
    overall = pd.concat({0: per_cluster.groupby(level=1).sum()}, names=["cluster"])
    counts = pd.concat([overall, per_cluster]).rename("members").reset_index()
    counts["share"] = counts["members"] / counts.groupby("cluster")["members"].transform("sum")
    return counts.rename(columns={attribute: "value"})


def projection(result: ClusterResult, sample: int = 5_000) -> pd.DataFrame:
    """A seeded sample of members on the first two principal components of the fitted (standardised)
    features, fitted on the sample: ``member_id``, ``pc1``, ``pc2``, ``cluster``, ``cluster_name``;
    ``attrs['explained']`` holds the share of the variance each axis explains."""
    from sklearn.decomposition import PCA

    model, frame = result.model, result.members
    if len(frame) > sample:
        frame = frame.sample(sample, random_state=model.settings.seed)
    z = model.standardise(frame)
    pca = PCA(2, random_state=model.settings.seed).fit(z) if z.shape[1] >= 2 else None
    xy = pca.transform(z) if pca is not None else np.column_stack([z[:, 0], np.zeros(len(z))])
    out = pd.DataFrame({"member_id": frame["member_id"].to_numpy(), "pc1": xy[:, 0], "pc2": xy[:, 1],
                        "cluster": frame["cluster"].to_numpy(), "cluster_name": frame["cluster_name"].to_numpy()})
    out.attrs["explained"] = list(pca.explained_variance_ratio_) if pca is not None else [1.0, 0.0]
    return out


#: k-selection works on a seeded sample of at most this many members (silhouette on fewer still).
K_SELECTION_SAMPLE = 10_000
SILHOUETTE_SAMPLE = 3_000


def k_selection(data: MemberFeatures, settings: ClusterSettings, ks: Sequence[int] = range(2, 11)) -> pd.DataFrame:
    """For each k: ``inertia`` (mean squared distance to the nearest centre: lower is tighter, look for
    the elbow), ``silhouette`` (-1..1, higher is better separated) and ``davies_bouldin`` (lower is
    better), from the chosen algorithm fitted on a seeded sample."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    frame = data.frame
    if len(frame) > K_SELECTION_SAMPLE:
        frame = frame.sample(K_SELECTION_SAMPLE, random_state=settings.seed)
    sample = MemberFeatures(frame.reset_index(drop=True), data.features, data.categories, data.channels)
    rows = []
    for k in ks:
        if k >= len(sample.frame):
            break
        candidate = ClusterSettings(k, settings.algorithm, settings.groups, settings.min_orders, settings.seed)
        model = fit_model(sample, candidate)
        z = model.standardise(sample.frame)
        labels = model.assign(sample.frame)
        centres = np.array([z[labels == j].mean(axis=0) if (labels == j).any() else np.zeros(z.shape[1])
                            for j in range(1, k + 1)])
        inertia = float(((z - centres[labels - 1]) ** 2).sum(axis=1).mean())
        distinct = len(np.unique(labels)) > 1
        rows.append({"k": k, "inertia": inertia,
                     "silhouette": float(silhouette_score(z, labels, sample_size=min(SILHOUETTE_SAMPLE, len(z)),
                                                          random_state=settings.seed)) if distinct else np.nan,
                     "davies_bouldin": float(davies_bouldin_score(z, labels)) if distinct else np.nan})
    return pd.DataFrame(rows, columns=["k", "inertia", "silhouette", "davies_bouldin"])


# --- clusters in SQL: audiences ---------------------------------------------------------------------

def _sql_transform(column: Any, transform: str) -> Any:
    """The transform of :func:`_transformed` in SQL; a missing value stays missing (``GREATEST`` would
    turn it into 0, where Python keeps NaN and later takes the mean)."""
    if transform == LOG:
        return case((column.is_(None), None), else_=func.ln(1.0 + func.greatest(column, 0.0)))
    if transform == SQRT:
        return case((column.is_(None), None), else_=func.sqrt(func.greatest(column, 0.0)))
    return column


def assignment_select(model: ClusterModel, filters: Filters) -> Select:
    """``member_id``, ``cluster`` for every member the model would cluster in this window, computed in
    the warehouse with the same transform and rule as :meth:`ClusterModel.assign` (no rows leave it)."""
    raw = feature_select(filters, model.settings.min_orders, model.categories, model.channels,
                         attributes=False).subquery("features")
    zs = []
    for f, mean, std in zip(model.features, model.means, model.stds, strict=True):
        z = (_sql_transform(raw.c[f.name], f.transform) - literal(mean, Double)) / literal(std, Double)
        zs.append(func.least(func.greatest(func.coalesce(z, 0.0), -CLIP), CLIP).label(f"z{len(zs)}"))
    standard = select(raw.c.member_id, *zs).subquery("standard")
    scores = []
    for j, (centre, weight, offset) in enumerate(zip(model.centres, model.weights, model.offsets, strict=True)):
        terms = [literal(w, Double) * (standard.c[f"z{d}"] - literal(c, Double))
                 * (standard.c[f"z{d}"] - literal(c, Double)) for d, (c, w) in enumerate(zip(centre, weight,
                                                                                            strict=True))]
        scores.append((sum(terms[1:], terms[0]) + literal(offset, Double)).label(f"s{j}"))
    scored = select(standard.c.member_id, *scores).subquery("scored")
    s = [scored.c[f"s{j}"] for j in range(len(scores))]
    best = func.least(*s) if len(s) > 1 else s[0]
    cluster = case(*((s[j] <= best, j + 1) for j in range(len(s))))
    return select(scored.c.member_id, cluster.label("cluster"))


AUDIENCE_KIND = "cluster"


def cluster_audience_spec(filters: Filters, model: ClusterModel, clusters: Sequence[int]) -> dict[str, Any]:
    """A serialisable targeting audience: the members of these clusters, with the model itself, so the
    audience is the same members whenever it is rebuilt on the same data."""
    unknown = [c for c in clusters if not 1 <= int(c) <= len(model.centres)]
    if unknown or not clusters:
        raise InputError(f"Choose clusters between 1 and {len(model.centres)}.")
    names = [model.names[int(c) - 1] for c in clusters] if model.names else [str(c) for c in clusters]
    return {"version": 1, "kind": AUDIENCE_KIND, "clusters": [int(c) for c in clusters], **filters.to_spec(),
            "model": model.to_dict(), "source": f"Clusters {', '.join(names)}"}


def audience_member_ids(audience: Mapping[str, Any]) -> Select:
    """The member ids of a ``cluster`` audience spec (see :func:`cluster_audience_spec`), in SQL."""
    if audience.get("version") != 1 or audience.get("kind") != AUDIENCE_KIND:
        raise InputError("Not a version-1 cluster audience.")
    try:
        filters = Filters.from_spec(audience)
        model = ClusterModel.from_dict(audience["model"])
        _check_model(model)
        clusters = [int(c) for c in audience["clusters"]]
    except (KeyError, TypeError, ValueError) as problem:
        raise InputError(f"Not a valid cluster audience: {problem!s} ({type(problem).__name__}).") from None
    assigned = assignment_select(model, filters).subquery("assigned")
    return select(assigned.c.member_id).where(assigned.c.cluster.in_(clusters))


def _check_model(model: ClusterModel) -> None:
    """Refuse a model (read from a file) whose parts do not fit together."""
    known = {f.name for f in features_for(model.categories, model.channels)}
    unknown = [f.name for f in model.features if f.name not in known or f.transform not in (LOG, SQRT, PLAIN)]
    if unknown:
        raise InputError(f"unknown feature or transform {unknown[0]!r}")
    d, k = len(model.features), model.settings.k
    if not (len(model.means) == len(model.stds) == d and len(model.centres) == len(model.weights) == len(
            model.offsets) == k and all(len(v) == d for v in (*model.centres, *model.weights))):
        raise InputError(f"the model needs {k} centres, weights and offsets of {d} numbers each")


def cluster_member_ids(model: ClusterModel, filters: Filters, clusters: Sequence[int]) -> Select:
    """The members of these clusters, in SQL (for member lists)."""
    return audience_member_ids(cluster_audience_spec(filters, model, clusters))

