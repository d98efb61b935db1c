"""Predictions, part two: the classifiers behind churn risk and purchase propensity, as plain data that scores in
Python and compiles to SQL.

Two candidates are fitted on the training cutoff's members (features of :mod:`analytics.prediction_features`):

* a **regularised logistic regression** (standardised features, L2, ``C = 1``);
* a **gradient-boosted classifier** (scikit-learn's ``HistGradientBoostingClassifier``: 50 trees of at most 8
  leaves, learning rate 0.2, fixed ``random_state``; small trees keep the SQL short and generalise better on
  a few thousand members). Scoring time in the warehouse grows with the number of trees (at 1M members each
  model's 100 trees took 0.7 s of the 4-5 s scoring): on the 1M-member demo, 50 trees at 0.2 score in half the
  time with the same test measures as 100 at 0.1 (churn ROC AUC 0.8805 vs 0.8802, PR AUC 0.9178 both;
  propensity ROC AUC 0.8514 vs 0.8515, PR AUC 0.6729 vs 0.6737).

Each is fitted on 80 % of the training members and **calibrated** on the other 20 % (chosen by a hash of the
member id, so the split is the same every time) with Platt scaling: ``p = 1 / (1 + exp(-(a x score + b)))``
where ``score`` is the model's log-odds. The result (:class:`Classifier`) is plain, JSON-serialisable data:
the logistic model is its means, scales and coefficients; the boosted one is its trees' split features,
thresholds and leaf values. :meth:`Classifier.predict` scores a frame in Python exactly as scikit-learn would
(checked in the tests), and :meth:`Classifier.sql` compiles the same arithmetic into one SQL expression over
the feature columns (the trees as nested ``CASE``), so a targeting condition on a score runs in the warehouse
and selects exactly the members the Python model would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Double, case, func, literal
from threadpoolctl import threadpool_limits

from analytics.errors import InputError
from analytics.i18n import N_
from analytics.preload import heavy_imports

ALGORITHMS: dict[str, str] = {"logistic": N_("Regularised logistic regression"),
                              "gbdt": N_("Gradient-boosted trees (HistGradientBoosting)")}
SEED = 42
#: Share of the training members kept aside to calibrate the probabilities.
CALIBRATION_SHARE = 0.2
#: Threads of the fits (OpenMP in the boosted trees, BLAS in the logistic regression). One: on a small shared machine
#: more threads than free cores make the boosted trees' many short parallel loops wait for each other (measured on
#: 2 busy cores: 183 s with two threads against 15 s with one for 520,000 members).
FIT_THREADS = 1
GBDT_SETTINGS = {"max_iter": 50, "max_leaf_nodes": 8, "learning_rate": 0.2, "early_stopping": False,
                 "l2_regularization": 1.0}


@dataclass(frozen=True)
class Tree:
    """One regression tree: per node the feature index, threshold, left and right child, leaf flag and value
    (a member goes left when its feature value is at most the threshold)."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    leaf: tuple[bool, ...]
    value: tuple[float, ...]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The leaf value of each row of ``X`` (rows x features)."""
        return self.predict_columns(np.ascontiguousarray(np.asarray(X, dtype="float64").T))

    def predict_columns(self, columns: np.ndarray) -> np.ndarray:
        """As :meth:`predict`, from the features as contiguous columns (features x rows): each inner node splits
        its rows in two with one comparison of one column, so a row costs one step per level of its path."""
        out = np.empty(columns.shape[1])
        pending = [(0, np.arange(columns.shape[1]))]
        while pending:
            node, rows = pending.pop()
            if self.leaf[node]:
                out[rows] = self.value[node]
                continue
            go_left = columns[self.feature[node]][rows] <= self.threshold[node]
            pending.append((self.left[node], rows[go_left]))
            pending.append((self.right[node], rows[~go_left]))
        return out

    def sql(self, columns: Sequence[Any], node: int = 0) -> Any:
        if self.leaf[node]:
            return literal(self.value[node], Double)
        return case((columns[self.feature[node]] <= literal(self.threshold[node], Double),
                     self.sql(columns, self.left[node])), else_=self.sql(columns, self.right[node]))


@dataclass(frozen=True)
class Classifier:
    """A fitted, calibrated classifier as plain data (see the module docstring)."""

    algorithm: str
    features: tuple[str, ...]
    # logistic: standardisation and coefficients
    means: tuple[float, ...] = ()
    scales: tuple[float, ...] = ()
    coefficients: tuple[float, ...] = ()
    intercept: float = 0.0
    # gbdt: the trees and the baseline log-odds
    trees: tuple[Tree, ...] = ()
    baseline: float = 0.0
    # Platt calibration of the log-odds
    calibration: tuple[float, float] = (1.0, 0.0)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's uncalibrated log-odds for each row of ``frame``."""
        X = frame[list(self.features)].to_numpy(dtype="float64")
        if self.algorithm == "logistic":
            z = (X - np.asarray(self.means)) / np.asarray(self.scales)
            return self.intercept + z @ np.asarray(self.coefficients)
        columns = np.ascontiguousarray(X.T)
        raw = np.full(len(X), self.baseline)
        for tree in self.trees:
            raw = raw + tree.predict_columns(columns)
        return raw

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities for the rows of ``frame``."""
        a, b = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * self.score(frame) + b)))

    def sql(self, columns: Mapping[str, Any]) -> ColumnElement[float]:
        """The calibrated probability as one SQL expression over the feature columns (``columns[name]``)."""
        cols = [columns[name] for name in self.features]
        if self.algorithm == "logistic":
            terms = [literal(c / s, Double) * (col - literal(m, Double))
                     for col, m, s, c in zip(cols, self.means, self.scales, self.coefficients, strict=True)]
            raw = literal(self.intercept, Double) + sum(terms[1:], terms[0])
        else:
            raw = literal(self.baseline, Double)
            for tree in self.trees:
                raw = raw + tree.sql(cols)
        a, b = self.calibration
        return 1.0 / (1.0 + func.exp(-(literal(a, Double) * raw + literal(b, Double))))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"algorithm": self.algorithm, "features": list(self.features),
                                "calibration": list(self.calibration)}
        if self.algorithm == "logistic":
            data |= {"means": list(self.means), "scales": list(self.scales),
                     "coefficients": list(self.coefficients), "intercept": self.intercept}
        else:
            data |= {"baseline": self.baseline, "trees": [
                {k: list(getattr(t, k)) for k in ("feature", "threshold", "left", "right", "leaf", "value")}
                for t in self.trees]}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Classifier:
        algorithm = data.get("algorithm")
        if algorithm not in ALGORITHMS:
            raise InputError(f"Unknown algorithm {algorithm!r} in a stored model.")
        features = tuple(str(f) for f in data["features"])
        calibration = tuple(float(v) for v in data["calibration"])
        if len(calibration) != 2:
            raise InputError("A stored model's calibration has two numbers.")
        if algorithm == "logistic":
            means, scales, coefficients = (tuple(float(v) for v in data[k]) for k in ("means", "scales",
                                                                                     "coefficients"))
            if not len(means) == len(scales) == len(coefficients) == len(features) or 0.0 in scales:
                raise InputError("A stored logistic model needs a mean, scale and coefficient per feature.")
            return cls(algorithm, features, means, scales, coefficients, float(data["intercept"]),
                       calibration=calibration)  # type: ignore[arg-type]
        trees = tuple(_tree(t, len(features)) for t in data["trees"])
        return cls(algorithm, features, trees=trees, baseline=float(data["baseline"]),
                   calibration=calibration)  # type: ignore[arg-type]


def _tree(data: Mapping[str, Any], n_features: int) -> Tree:
    tree = Tree(tuple(int(v) for v in data["feature"]), tuple(float(v) for v in data["threshold"]),
                tuple(int(v) for v in data["left"]), tuple(int(v) for v in data["right"]),
                tuple(bool(v) for v in data["leaf"]), tuple(float(v) for v in data["value"]))
    n = len(tree.leaf)
    if not all(len(getattr(tree, k)) == n for k in ("feature", "threshold", "left", "right", "value")) or any(
            not tree.leaf[i] and not (0 <= tree.feature[i] < n_features and i < tree.left[i] < n
                                      and i < tree.right[i] < n) for i in range(n)):
        raise InputError("A stored tree is not well formed.")
    return tree


def _digests(member_ids: pd.Series, salt: str) -> np.ndarray:
    """A stable 32-bit hash of each member id (the first 8 hex digits of ``md5(salt:id)``)."""
    prefix, md5 = f"{salt}:".encode(), hashlib.md5
    first_bytes = b"".join([md5(prefix + str(i).encode()).digest()[:4] for i in member_ids.tolist()])
    return np.frombuffer(first_bytes, dtype=">u4").astype(np.int64)


def calibration_rows(member_ids: pd.Series) -> np.ndarray:
    """Which members calibrate rather than fit: a stable hash of the id (about :data:`CALIBRATION_SHARE`)."""
    return (_digests(member_ids, "calibrate") % 1000) < CALIBRATION_SHARE * 1000


def sample_rows(member_ids: pd.Series, size: int, salt: str = "sample") -> np.ndarray:
    """A deterministic sample of about ``size`` members (all of them when there are no more): those whose hash of
    the id falls below ``size / members`` of the range, so the same member is in or out whatever else changes."""
    if len(member_ids) <= size:
        return np.ones(len(member_ids), dtype=bool)
    return _digests(member_ids, salt) < round(size / len(member_ids) * 2**32)


def fit_classifier(frame: pd.DataFrame, target: np.ndarray, features: Sequence[str], algorithm: str) -> Classifier:
    """Fit and calibrate one candidate on the training members (``target``: 1 for the positive class)."""
    with heavy_imports():
        from sklearn.linear_model import LogisticRegression  # imported when used, not with the app's first page
    if algorithm not in ALGORITHMS:
        raise InputError(f"Unknown algorithm {algorithm!r}; choose {' or '.join(ALGORITHMS)}.")
    aside = calibration_rows(frame["member_id"])
    X = frame[list(features)].to_numpy(dtype="float64")
    y = np.asarray(target, dtype=np.int64)
    fit_X, fit_y = X[~aside], y[~aside]
    if len(np.unique(fit_y)) < 2 or len(np.unique(y[aside])) < 2:
        raise InputError("Too few members of one class to train a model (every member bought, or none did).")
    with threadpool_limits(FIT_THREADS):
        classifier = _fit(fit_X, fit_y, features, algorithm)
        held = frame.loc[aside]
        platt = LogisticRegression(C=1e6, max_iter=1000).fit(classifier.score(held).reshape(-1, 1), y[aside])
    return Classifier(**{**classifier.__dict__, "calibration": (float(platt.coef_[0][0]), float(platt.intercept_[0]))})


def _fit(fit_X: np.ndarray, fit_y: np.ndarray, features: Sequence[str], algorithm: str) -> Classifier:
    """The uncalibrated candidate."""
    with heavy_imports():
        from sklearn.ensemble import HistGradientBoostingClassifier  # imported when used, not with the app's first page
        from sklearn.linear_model import LogisticRegression  # imported when used, not with the app's first page
    if algorithm == "logistic":
        means = fit_X.mean(axis=0)
        scales = fit_X.std(axis=0)
        scales[scales == 0] = 1.0
        model = LogisticRegression(C=1.0, max_iter=2000).fit((fit_X - means) / scales, fit_y)
        classifier = Classifier("logistic", tuple(features), tuple(means.tolist()), tuple(scales.tolist()),
                                tuple(model.coef_[0].tolist()), float(model.intercept_[0]))
    else:
        model = HistGradientBoostingClassifier(random_state=SEED, **GBDT_SETTINGS).fit(fit_X, fit_y)
        trees = tuple(_plain_tree(p[0].nodes) for p in model._predictors)  # scikit-learn 1.9's fitted trees
        baseline = float(model._baseline_prediction.ravel()[0])
        classifier = Classifier("gbdt", tuple(features), trees=trees, baseline=baseline)
    return classifier


def _plain_tree(nodes: np.ndarray) -> Tree:
    return Tree(tuple(int(v) for v in nodes["feature_idx"]), tuple(float(v) for v in nodes["num_threshold"]),
                tuple(int(v) for v in nodes["left"]), tuple(int(v) for v in nodes["right"]),
                tuple(bool(v) for v in nodes["is_leaf"]), tuple(float(v) for v in nodes["value"]))
