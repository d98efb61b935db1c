"""Member clusters: behavioural features per member from SQL, k-means or a Gaussian mixture, portraits.

Definitions (one place; the page shows them as help):

* **Who is clustered**: members with at least ``min_orders`` completed orders in the window (the global
  date range, channel and tier filters, as for RFM).
* **Features**, one row per member, computed in the warehouse in one statement
  (:func:`analytics.cluster_features.feature_select`), in groups the user may switch on or off (:data:`FEATURE_GROUPS`):
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
which is how a cluster becomes a targeting audience (:mod:`analytics.cluster_audiences`). The features are built
in :mod:`analytics.cluster_features`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from analytics.cluster_features import (
    AGE_BANDS,
    ALGORITHMS,
    CATEGORY_PREFIX,
    CHANNEL_PREFIX,
    CLIP,
    FEATURE_GROUPS,
    GMM_FIT_SAMPLE,
    LOG,
    MINIBATCH_ABOVE,
    MINIBATCH_SAMPLE,
    MIX_ATTRIBUTES,
    SCORE_BLOCK,
    SQRT,
    ClusterSettings,
    Feature,
    MemberFeatures,
    features_for,
    member_features,
)
from analytics.errors import InputError
from analytics.filters import Filters
from analytics.i18n import DEFAULT_LANGUAGE, N_, _, code_label, language, using
from analytics.preload import heavy_imports
from analytics.storage.db import Bind

__all__ = ["AGE_BANDS", "ALGORITHMS", "FEATURE_GROUPS", "ClusterModel", "ClusterResult", "ClusterSettings",
           "cluster_features", "cluster_members", "fit_model", "k_selection", "member_features"]


# --- transform and models -------------------------------------------------------------------------

def _transformed(values: np.ndarray, transform: str) -> np.ndarray:
    if transform == LOG:
        return np.log1p(np.maximum(values, 0.0))
    if transform == SQRT:
        return np.sqrt(np.maximum(values, 0.0))
    return values


@dataclass(frozen=True)
class ClusterModel:
    """A fitted clustering as plain, JSON-serialisable data: the settings it was fitted with, and what it learned
    (names ending in ``_``, as scikit-learn's fitted attributes).

    Each member goes to the cluster ``j`` minimising ``sum_d weight[j][d] * (z_d - centre[j][d])^2 +
    offset[j]``, where ``z`` is the standardised feature vector: k-means has weights 1 and offsets 0; the
    diagonal Gaussian mixture has weights 1 / variance and offsets ``sum_d ln variance - 2 ln share``
    (its most likely component). ``centres_`` etc. are listed in cluster-number order (cluster 1 first).
    """

    settings: ClusterSettings
    features_: tuple[Feature, ...]
    means_: tuple[float, ...]
    stds_: tuple[float, ...]
    centres_: tuple[tuple[float, ...], ...]
    weights_: tuple[tuple[float, ...], ...]
    offsets_: tuple[float, ...]
    categories_: tuple[str, ...]
    channels_: tuple[str, ...]
    names_: tuple[str, ...] = ()

    def standardise(self, frame: pd.DataFrame) -> np.ndarray:
        """The standardised, clipped feature matrix of ``frame`` (columns in model order)."""
        columns = np.empty((len(self.features_), len(frame)))  # one contiguous row per feature, then transposed
        for d, (f, mean, std) in enumerate(zip(self.features_, self.means_, self.stds_, strict=True)):
            z = _transformed(frame[f.name].to_numpy(dtype="float64", na_value=np.nan), f.transform) - mean
            z /= std
            np.clip(np.nan_to_num(z, copy=False, nan=0.0), -CLIP, CLIP, out=columns[d])
        return np.ascontiguousarray(columns.T)

    def _scores(self, z: np.ndarray) -> np.ndarray:
        """Each member's score against each centre in model order (the nearest has the lowest), from the
        standardised matrix ``z``; computed in blocks of rows so the temporaries stay small."""
        params = [(np.asarray(c), np.asarray(w), b) for c, w, b in zip(self.centres_, self.weights_, self.offsets_,
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
        """The model as JSON-ready data (the keys without the trailing ``_``)."""
        data: dict[str, Any] = {"settings": {**asdict(self.settings), "groups": list(self.settings.groups)}}
        for name in _LEARNED:
            value = getattr(self, name + "_")
            data[name] = ([asdict(f) for f in value] if name == "features"
                          else [list(v) for v in value] if name in ("centres", "weights") else list(value))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterModel:
        settings = dict(data["settings"])
        settings["groups"] = tuple(settings["groups"])
        return cls(ClusterSettings(**settings), tuple(Feature(**f) for f in data["features"]),
                   tuple(map(float, data["means"])), tuple(map(float, data["stds"])),
                   tuple(tuple(map(float, c)) for c in data["centres"]),
                   tuple(tuple(map(float, w)) for w in data["weights"]), tuple(map(float, data["offsets"])),
                   tuple(data["categories"]), tuple(data["channels"]), tuple(data.get("names", ())))


_LEARNED = ("features", "means", "stds", "centres", "weights", "offsets", "categories", "channels", "names")


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
    with heavy_imports():
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
    with heavy_imports():
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
        raise InputError(_("Only {members} members match, fewer than the {k} clusters asked for: widen the date range, "
                           "lower the minimum orders or ask for fewer clusters.").format(
            members=f"{len(data.frame):,}", k=settings.k))
    used = [f for f in data.features if f.group in settings.groups]
    if not used:
        raise InputError(_("The chosen feature groups have no features in this window."))
    means, stds = _fit_scaling(data.frame, used)
    scaling = ClusterModel(settings, tuple(used), tuple(means), tuple(stds), (), (), (), tuple(data.categories),
                           tuple(data.channels))
    z = scaling.standardise(data.frame)
    if settings.algorithm == "kmeans":
        centres = _fit_kmeans(z, settings.k, settings.seed)
        weights, offsets = np.ones_like(centres), np.zeros(settings.k)
    else:
        centres, weights, offsets = _fit_gmm(z, settings.k, settings.seed)
    fitted = replace(scaling, centres_=_rows(centres), weights_=_rows(weights), offsets_=tuple(offsets.tolist()))
    # renumber: cluster 1 = highest average net sales per member (ties: larger cluster first)
    scores = fitted._scores(z)
    raw = scores.argmin(axis=1)
    sales = data.frame["monetary"].to_numpy(dtype="float64")
    value = [(-(np.nanmean(sales[raw == j]) if (raw == j).any() else -np.inf), -(raw == j).sum(), j)
             for j in range(settings.k)]
    order = [j for *_, j in sorted(value)]
    model = replace(fitted, centres_=tuple(fitted.centres_[j] for j in order),
                    weights_=tuple(fitted.weights_[j] for j in order),
                    offsets_=tuple(fitted.offsets_[j] for j in order))
    # the same scores with the columns in the new order: exactly what model.assign(data.frame) gives
    return model, z, scores[:, order].argmin(axis=1) + 1


def _rows(matrix: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(row) for row in matrix.tolist())


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
    if list(model.features_) == list(data.features):
        described = fitted
    else:
        means, stds = _fit_scaling(frame, data.features)
        described = ClusterModel(settings, tuple(data.features), tuple(means), tuple(stds), (), (), (),
                                 tuple(data.categories), tuple(data.channels)).standardise(frame)
    z = pd.DataFrame(described, columns=[f.label for f in data.features])
    zscores = z.groupby(frame["cluster"].to_numpy()).mean().reindex(range(1, settings.k + 1)).fillna(0.0)
    zscores.index.name = "cluster"
    portraits, english_names = _portraits(frame, data, zscores, settings.k)
    model = replace(model, names_=english_names)  # part of audience definitions: one wording, not per reader
    frame["cluster_name"] = frame["cluster"].map(dict(zip(portraits["cluster"], portraits["name"], strict=True)))
    ordered = ["member_id", "cluster", "cluster_name", *(c for c in frame.columns
                                                        if c not in ("member_id", "cluster", "cluster_name"))]
    return ClusterResult(model, frame[ordered], portraits, zscores, data.features)


#: Words for a fixed feature well above / below the clustered members (value and frequency have their own words).
_TRAITS: dict[str, tuple[str, str]] = {
    "recency_days": (N_("lapsing"), N_("recently active")),
    "tenure_days": (N_("long-standing"), N_("newly joined")),
    "aov": (N_("big-ticket"), N_("small-ticket")),
    "lines_per_order": (N_("big-basket"), N_("single-item")),
    "discount_share": (N_("deal-seeking"), N_("full-price")),
    "points_redeem_rate": (N_("points-redeeming"), N_("points-hoarding")),
    "night_share": (N_("night-owl"), N_("daytime")),
    "sessions": (N_("highly engaged"), N_("rarely browsing")),
    "events": (N_("heavy browsing"), N_("light browsing")),
    "age": (N_("older"), N_("young")),
}
#: Features the value and frequency words already describe.
_NAMED_APART = ("monetary", "frequency")
#: The name of a cluster no member is closest to (possible with a Gaussian mixture or few distinct members).
EMPTY = N_("(empty)")
#: The share of spend outside the top categories.
OTHER = N_("other categories")
#: A z-score beyond this counts as "well above / below" the population.
NAME_Z = 0.5
FAVOURITE_SHARE, FAVOURITE_LIFT = 0.15, 1.2


def trait_word(feature: Feature, z: float) -> str | None:
    """How a name says that a cluster sits ``z`` standard deviations from the clustered members on ``feature``:
    "night-owl", "live-stream heavy", "rarely app", "Beauty heavy"; None within :data:`NAME_Z`."""
    if abs(z) < NAME_Z:
        return None
    if feature.name in _TRAITS:
        return _(_TRAITS[feature.name][0 if z > 0 else 1])
    if feature.name.startswith(CHANNEL_PREFIX):
        code = feature.name.removeprefix(CHANNEL_PREFIX)
        channel = code.replace("_", "-") if language() == DEFAULT_LANGUAGE else code_label(code)
        return (_("{channel} heavy") if z > 0 else _("rarely {channel}")).format(channel=channel)
    if feature.name.startswith(CATEGORY_PREFIX):
        category = feature.name.removeprefix(CATEGORY_PREFIX)
        return (_("{category} heavy") if z > 0 else _("little {category}")).format(category=category)
    return None


def distinctive_trait(z: Mapping[str, float], features: Sequence[Feature]) -> tuple[Feature, float] | None:
    """The cluster's most distinctive trait: the feature (value and frequency aside, which the name states anyway)
    with the largest |z|, if it reaches :data:`NAME_Z` and can be put in words; ties by feature order."""
    named = [(abs(z.get(f.label, 0.0)), -i, f) for i, f in enumerate(features)
             if f.name not in _NAMED_APART and trait_word(f, z.get(f.label, 0.0))]
    if not named:
        return None
    _, _, feature = max(named, key=lambda t: t[:2])
    return feature, float(z.get(feature.label, 0.0))


def cluster_name(z: Mapping[str, float], category_share: Mapping[str, float],
                 category_lift: Mapping[str, float], features: Sequence[Feature] = ()) -> str:
    """A plain-language name from a cluster's z-scores (by feature label), its category shares of spend and their
    lifts (share in the cluster / share overall): value word, frequency word, the most distinctive trait (the
    largest |z| among the other ``features``, :func:`distinctive_trait`) and the favourite category (the highest
    lift, at least :data:`FAVOURITE_LIFT`, among categories with at least :data:`FAVOURITE_SHARE` of the cluster's
    spend). E.g. "High-value frequent, highly engaged · Electronics", "Mid-value regular, live-stream heavy ·
    Apparel", "Low-value occasional, lapsing · mixed categories"."""
    monetary, frequency = z.get("Net sales", 0.0), z.get("Orders", 0.0)
    value = _("High-value") if monetary >= NAME_Z else _("Low-value") if monetary <= -NAME_Z else _("Mid-value")
    often = _("frequent") if frequency >= NAME_Z else _("occasional") if frequency <= -NAME_Z else _("regular")
    trait = distinctive_trait(z, features or features_for(list(category_share), []))
    best = max(((lift, c) for c, lift in category_lift.items() if category_share.get(c, 0.0) >= FAVOURITE_SHARE),
               default=None)
    favourite = best[1] if best and best[0] >= FAVOURITE_LIFT else None
    words = None
    if trait is not None:
        feature, score = trait
        words = trait_word(feature, score)
        if feature.name.startswith(CATEGORY_PREFIX) and score > 0:  # the category is named after the dot
            favourite, words = feature.label, None
    name = _("{value} {often}").format(value=value, often=often)
    if words:
        name = _("{name}, {trait}").format(name=name, trait=words)
    return _("{name} · {favourite}").format(name=name, favourite=favourite or _("mixed categories"))


def _portraits(frame: pd.DataFrame, data: MemberFeatures, zscores: pd.DataFrame,
               k: int) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The portrait table (names in the reader's language), and the clusters' names in English (kept in the
    model, which audience definitions carry)."""
    total_sales = float(frame["monetary"].sum()) or 1.0
    cat_cols = [CATEGORY_PREFIX + c for c in data.categories]
    # spend per category = its share of the member's line amount x that amount; the rest is "other"
    amount = frame["line_amount"].to_numpy(dtype="float64")
    spend = frame[cat_cols].mul(amount, axis=0)
    spend[OTHER] = np.maximum(amount - spend.sum(axis=1).to_numpy(), 0.0)
    overall = spend.sum() / (amount.sum() or 1.0)
    rows, names, english = [], [], []
    figures = frame[["monetary", "frequency", "recency_days"]]  # the rows of a cluster: only what is summarised
    for j in range(1, k + 1):
        in_cluster = (frame["cluster"] == j).to_numpy()
        part = figures[in_cluster]
        mix = spend[in_cluster].sum() / (amount[in_cluster].sum() or 1.0)
        lift = {c: float(mix[CATEGORY_PREFIX + c] / overall[CATEGORY_PREFIX + c])
                for c in data.categories if overall[CATEGORY_PREFIX + c] > 0}
        shares = {c: float(mix[CATEGORY_PREFIX + c]) for c in data.categories}
        if in_cluster.any():
            name = cluster_name(zscores.loc[j].to_dict(), shares, lift, data.features)
            with using(DEFAULT_LANGUAGE):
                english.append(cluster_name(zscores.loc[j].to_dict(), shares, lift, data.features))
        else:
            name = EMPTY
            english.append(EMPTY)
        names.append(name)
        top = mix.sort_values(ascending=False).head(3)
        rows.append({
            "cluster": j, "members": len(part), "member_share": len(part) / len(frame),
            "sales": float(part["monetary"].sum()), "sales_share": float(part["monetary"].sum()) / total_sales,
            "avg_sales": float(part["monetary"].mean()) if len(part) else np.nan,
            "avg_orders": float(part["frequency"].mean()) if len(part) else np.nan,
            "aov": float(part["monetary"].sum() / part["frequency"].sum()) if len(part) else np.nan,
            "avg_recency_days": float(part["recency_days"].mean()) if len(part) else np.nan,
            "top_categories": ", ".join(f"{_(OTHER) if c == OTHER else c.removeprefix(CATEGORY_PREFIX)} {s:.0%}"
                                        for c, s in top.items() if s > 0),
        })
    # the same name twice gets the cluster number, so names identify clusters (empty ones always have it)
    counts, english_counts = pd.Series(names).value_counts(), pd.Series(english).value_counts()
    for row, name, in_english in zip(rows, names, english, strict=True):
        shown = _(EMPTY) if name == EMPTY else name
        row["name"] = f"{shown} ({row['cluster']})" if counts[name] > 1 or name == EMPTY else shown
        row["english"] = (f"{in_english} ({row['cluster']})" if english_counts[in_english] > 1 or name == EMPTY
                          else in_english)
    table = pd.DataFrame(rows)
    english_names = tuple(table.pop("english"))
    return table[["cluster", "name", *[c for c in table.columns if c not in ("cluster", "name")]]], english_names


def cluster_mix(result: ClusterResult, attribute: str) -> pd.DataFrame:
    """Share of each value of a member attribute (tier, region, gender, age band, acquisition channel)
    within each cluster and among all clustered members (cluster 0): ``cluster``, ``value``,
    ``members``, ``share``."""
    if attribute not in MIX_ATTRIBUTES:
        raise InputError(_("Unknown attribute {name}; choose from {choices}.").format(
            name=repr(attribute), choices=", ".join(MIX_ATTRIBUTES)))
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
    with heavy_imports():
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
    with heavy_imports():
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




@dataclass(frozen=True)
class KSuggestion:
    """The k to try, from the k-selection table, and why: ``elbow`` (where inertia stops falling steeply),
    ``silhouette`` (its highest) and ``davies_bouldin`` (its lowest) are what each chart points at."""

    k: int
    elbow: int
    silhouette: int | None
    davies_bouldin: int | None
    agree: bool
    reason: str


def elbow(ks: Sequence[int], inertia: Sequence[float]) -> int:
    """The elbow of an inertia curve: the k farthest below the straight line from the first point to the last,
    both axes scaled to 0..1 (the "kneedle" rule); the first k when the curve is a straight line or shorter than 3."""
    x, y = np.asarray(ks, dtype="float64"), np.asarray(inertia, dtype="float64")
    if len(x) < 3 or not np.isfinite(y).all() or y.max() == y.min():
        return int(x[0])
    xs, ys = (x - x[0]) / (x[-1] - x[0]), (y - y.min()) / (y.max() - y.min())
    line = ys[0] + (ys[-1] - ys[0]) * xs  # the chord from the first point to the last
    gap = line - ys  # how far the curve sags below it
    return int(x[int(np.argmax(gap))]) if gap.max() > 1e-12 else int(x[0])


def suggest_k(table: pd.DataFrame) -> KSuggestion:
    """A k to try from :func:`k_selection`'s table, with the reason in words.

    Each chart points at one k: the elbow of inertia (:func:`elbow`), the highest silhouette, the lowest
    Davies–Bouldin index. When two or three agree, that k. When all three differ, the k with the best mean rank over
    the three (the elbow's rank by distance from the elbow; silhouette highest first; Davies–Bouldin lowest first),
    ties to the smaller k (fewer clusters are easier to act on)."""
    if table.empty:
        raise InputError(_("There are too few members to compare values of k."))
    ks = table["k"].astype(int).tolist()
    at_elbow = elbow(ks, table["inertia"].tolist())
    sil = table.dropna(subset=["silhouette"])
    dbi = table.dropna(subset=["davies_bouldin"])
    best_sil = int(sil.loc[sil["silhouette"].idxmax(), "k"]) if len(sil) else None
    best_dbi = int(dbi.loc[dbi["davies_bouldin"].idxmin(), "k"]) if len(dbi) else None
    points = _("the elbow of inertia is at k = {k}").format(k=at_elbow)
    if best_sil is not None:
        points += _(", silhouette is highest at k = {k}").format(k=best_sil)
    if best_dbi is not None:
        points += _(" and Davies–Bouldin lowest at k = {k}").format(k=best_dbi)
    points = f"{points[0].upper()}{points[1:]}"
    votes = [k for k in (at_elbow, best_sil, best_dbi) if k is not None]
    counted = {k: votes.count(k) for k in votes}
    top = max(counted.values())
    if top == len(votes):
        return KSuggestion(at_elbow, at_elbow, best_sil, best_dbi, True,
                           _("All three charts agree on k = {k}.").format(k=at_elbow))
    if top >= 2:
        k = min(k for k, n in counted.items() if n == top)
        alone = [name for name, v in ((_("the elbow"), at_elbow), (_("silhouette"), best_sil),
                                      ("Davies–Bouldin", best_dbi)) if v is not None and v != k]
        return KSuggestion(k, at_elbow, best_sil, best_dbi, False,
                           _("{points}: two of the three agree on {k} ({others} points elsewhere).").format(
                               points=points, k=k, others=", ".join(alone)))
    ranks = pd.DataFrame({"k": ks, "elbow": [abs(k - at_elbow) for k in ks]})
    ranks["elbow"] = ranks["elbow"].rank(method="min")
    ranks["silhouette"] = table["silhouette"].rank(ascending=False, method="min").to_numpy()
    ranks["davies_bouldin"] = table["davies_bouldin"].rank(ascending=True, method="min").to_numpy()
    ranks["mean"] = ranks[["elbow", "silhouette", "davies_bouldin"]].mean(axis=1, skipna=True)
    chosen = ranks.sort_values(["mean", "k"]).iloc[0]
    k = int(chosen["k"])
    return KSuggestion(k, at_elbow, best_sil, best_dbi, False,
                       _("{points}: the charts disagree, and k = {k} ranks best on the three together (mean rank "
                         "{rank} of {n}).").format(points=points, k=k, rank=f"{chosen['mean']:.1f}", n=len(ks)))
