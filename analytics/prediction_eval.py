"""Predictions, part three: how good a score is, measured on members it never saw (a later cutoff), next to the
simple rules nobody should be fooled into paying a model to beat.

Every measure is defined once (:data:`MEASURES`; the model card shows the definitions as help). Scores are
probabilities of the positive class (churn, or a purchase); a member is predicted positive when their score is at
least the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.i18n import N_
from analytics.preload import heavy_imports

#: Bins of the calibration curve and of the expected calibration error.
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Measure:
    label: str
    help: str
    higher_is_better: bool = True


MEASURES: dict[str, Measure] = {
    "roc_auc": Measure(N_("ROC AUC"), N_("The chance that a random positive member scores higher than a random "
                                         "negative one (0.5 = guessing, 1 = perfect ranking).")),
    "pr_auc": Measure(N_("PR AUC"), N_("Average precision: the precision over all recall levels when members are "
                                       "taken from the highest score down; the base rate is what guessing gets.")),
    "brier": Measure(N_("Brier score"), N_("Mean squared difference between the score and what happened (0 or 1): "
                                           "lower is better; it rewards both ranking and calibration."),
                     higher_is_better=False),
    "ece": Measure(N_("Calibration error (ECE)"), N_("Expected calibration error: members grouped in 10 bins of "
                                                     "score; the size-weighted mean gap between the bin's average "
                                                     "score and its actual rate. 0.05 means scores are off by 5 "
                                                     "points on average."), higher_is_better=False),
    "precision": Measure(N_("Precision"), N_("Of the members predicted positive at the threshold, the share who "
                                             "were.")),
    "recall": Measure(N_("Recall"), N_("Of the members who were positive, the share predicted positive at the "
                                       "threshold.")),
    "f1": Measure(N_("F1"), N_("The harmonic mean of precision and recall at the threshold.")),
    "accuracy": Measure(N_("Accuracy"), N_("The share of members predicted right at the threshold.")),
}


def threshold_measures(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1, accuracy and the confusion counts (tp, fp, fn, tn) at ``threshold``."""
    y = np.asarray(y, dtype=bool)
    predicted = np.asarray(score) >= threshold
    tp, fp = int((predicted & y).sum()), int((predicted & ~y).sum())
    fn, tn = int((~predicted & y).sum()), int((~predicted & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": (tp + tn) / len(y),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def calibration_curve(y: np.ndarray, score: np.ndarray, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """``bin, members, mean_score, actual_rate`` per equal-width bin of score (empty bins left out)."""
    y, score = np.asarray(y, dtype=float), np.clip(np.asarray(score, dtype=float), 0, 1)
    which = np.minimum((score * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": which, "score": score, "y": y}).groupby("bin").agg(
        members=("y", "size"), mean_score=("score", "mean"), actual_rate=("y", "mean")).reset_index()
    return frame


def expected_calibration_error(y: np.ndarray, score: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    curve = calibration_curve(y, score, bins)
    return float((curve["members"] * (curve["mean_score"] - curve["actual_rate"]).abs()).sum() / len(y))


def gains(y: np.ndarray, score: np.ndarray, groups: int = 10) -> pd.DataFrame:
    """Members ranked by score, cut into ``groups`` equal groups (deciles): ``decile, members, positives,
    share_of_positives, cumulative_share, lift`` (the group's rate / the overall rate)."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    decile = np.empty(len(y), dtype=int)
    decile[order] = np.arange(len(y)) * groups // len(y) + 1
    frame = pd.DataFrame({"decile": decile, "y": y}).groupby("decile").agg(members=("y", "size"),
                                                                           positives=("y", "sum")).reset_index()
    total = frame["positives"].sum()
    frame["share_of_positives"] = frame["positives"] / total if total else 0.0
    frame["cumulative_share"] = frame["share_of_positives"].cumsum()
    base = total / len(y) if len(y) else 0.0
    frame["lift"] = (frame["positives"] / frame["members"]) / base if base else np.nan
    return frame


def evaluate(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Every measure of :data:`MEASURES` for one score on one set of members."""
    with heavy_imports():
        from sklearn.metrics import (  # imported when used, not with the app's first page
            average_precision_score,
            roc_auc_score,
        )
    y = np.asarray(y, dtype=int)
    both = len(np.unique(y)) == 2
    return {"roc_auc": float(roc_auc_score(y, score)) if both else float("nan"),
            "pr_auc": float(average_precision_score(y, score)) if both else float("nan"),
            "brier": float(np.mean((np.asarray(score, dtype=float) - y) ** 2)),
            "ece": expected_calibration_error(y, score),
            **threshold_measures(y, score, threshold)}


def gains_sentence(table: pd.DataFrame, noun: str) -> str:
    """"The top 10% by score hold 38% of the churners (lift 3.8)." (for the command line; the page words it in
    the reader's locale from the same table)."""
    top = table.iloc[0]
    return f"The top 10% by score hold {top['cumulative_share']:.0%} of the {noun} (lift {top['lift']:.1f})."


def permutation_importance(predict: Callable[[pd.DataFrame], np.ndarray], frame: pd.DataFrame, y: np.ndarray,
                           features: list[str], repeats: int = 3, seed: int = 42) -> pd.DataFrame:
    """``feature, importance``: how much the PR AUC drops when one feature's values are shuffled among the
    members (mean over ``repeats`` shuffles; a drop of 0 means the model does not use it)."""
    with heavy_imports():
        from sklearn.metrics import average_precision_score  # imported when used, not with the app's first page
    rng = np.random.default_rng(seed)
    base = average_precision_score(y, predict(frame))
    rows = []
    for name in features:
        drops = []
        for _ in range(repeats):
            shuffled = frame.copy(deep=False)
            shuffled[name] = rng.permutation(frame[name].to_numpy())
            drops.append(base - average_precision_score(y, predict(shuffled)))
        rows.append({"feature": name, "importance": float(np.mean(drops))})
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)
