"""Out-of-time evaluation of recommenders, side by side with the popularity baselines.

The split: ``as_of`` is the last day T of the data used (default: the last order day); models are fitted on
purchases up to day T - H (``horizon_days`` = H) and their top-k lists are compared with what members bought in
(T - H, T] (completed orders). Every member registered by T is given a list, including those without history,
who are served by the popular lists (cold start). Measures are those of :mod:`analytics.recommend_metrics`.

The comparison sentence names the algorithm with the best recall@k and compares it with the better of the two
popularity baselines (overall, by segment), so "beats the baseline" is never claimed against a weak one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from analytics.errors import InputError
from analytics.i18n import DEFAULT_LANGUAGE, _, language
from analytics.recommend_data import RecommendData, load_data
from analytics.recommend_lists import PATHS, ListSettings, Recommendations, recommend
from analytics.recommend_metrics import METRICS, RankedLists, metric_values
from analytics.recommenders import ALGORITHMS, fit
from analytics.storage.db import Bind

BASELINES: tuple[str, ...] = ("popular", "popular_segment")
MAX_HORIZON_DAYS = 365
MAX_K = 100
MAX_PAIRS = 10_000


class EvaluationError(InputError):
    """Evaluation settings out of range or data without a test window."""


@dataclass(frozen=True)
class Evaluation:
    """``table``: one row per algorithm (label, every measure of METRICS at k, fit and list seconds);
    ``by_path``: recall@k per algorithm and path (personal, popular fill, cold start), with member counts;
    ``sentence``: how the best algorithm compares with the popularity baseline."""

    table: pd.DataFrame
    by_path: pd.DataFrame
    sentence: str
    k: int
    history_end: date
    test_end: date
    members: int
    members_with_purchases: int


def evaluate(bind: Bind, as_of: date | None = None, horizon_days: int = 30, k: int = 10,
             algorithms: Sequence[str] = tuple(ALGORITHMS), settings: ListSettings | None = None) -> Evaluation:
    """Fit each algorithm on the history up to ``as_of - horizon_days`` and measure its top-``k`` lists against
    the purchases of the following ``horizon_days`` days."""
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise EvaluationError(f"The test window must be 1 to {MAX_HORIZON_DAYS} days, not {horizon_days!r}.")
    history_end = as_of - timedelta(days=horizon_days) if as_of is not None else None
    return evaluate_data(load_data(bind, history_end, test_days=horizon_days), k, algorithms, settings)


def evaluate_data(data: RecommendData, k: int = 10, algorithms: Sequence[str] = tuple(ALGORITHMS),
                  settings: ListSettings | None = None) -> Evaluation:
    """As :func:`evaluate`, on data already read with a test window."""
    if data.test is None or data.test_end is None:
        raise EvaluationError("The data has no test window; read it with test_days > 0.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise EvaluationError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}.")
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown or not algorithms:
        raise EvaluationError(f"Choose algorithms from {', '.join(ALGORITHMS)}"
                              + (f"; unknown: {', '.join(unknown)}" if unknown else "") + ".")
    settings = replace(settings or ListSettings(n=k), n=k)
    truth = data.test.matrix("binary")
    history = data.history.matrix("binary")
    rows, paths = [], []
    for algorithm in dict.fromkeys(algorithms):
        began = time.perf_counter()
        model = fit(data, algorithm)
        fitted = time.perf_counter()
        recs = recommend(model, data, settings)
        listed = time.perf_counter()
        lists = RankedLists(recs.items, data.products.size, truth=truth, history=history,
                            item_category=data.products.category)
        values = metric_values(lists, k)
        rows.append({"algorithm": algorithm, "label": ALGORITHMS[algorithm][0], **values,
                     "fit_seconds": fitted - began, "list_seconds": listed - fitted})
        paths.append(_by_path(algorithm, recs, lists, k))
    table = pd.DataFrame(rows)
    buyers = int((np.diff(truth.indptr) > 0).sum())
    return Evaluation(table, pd.concat(paths, ignore_index=True), comparison_sentence(table, k), k,
                      data.history_end, data.test_end, data.members.size, buyers)


def _by_path(algorithm: str, recs: Recommendations, lists: RankedLists, k: int) -> pd.DataFrame:
    recall = METRICS["recall"].function(lists, k)
    frame = pd.DataFrame({"path": np.asarray(PATHS)[recs.path], "recall": recall})
    out = frame.groupby("path", sort=False).agg(members=("recall", "size"),
                                                members_with_purchases=("recall", "count"),
                                                recall=("recall", "mean")).reset_index()
    out.insert(0, "algorithm", algorithm)
    return out


def comparison_sentence(table: pd.DataFrame, k: int, metric: str = "recall", chosen: str | None = None) -> str:
    """'Hybrid ... beats the popularity baseline (...) by 21 % on recall@10: 0.150 against 0.124.' or says that
    none does. Needs at least one baseline and one other algorithm in ``table``. ``chosen``: compare that
    algorithm (e.g. the one in use) instead of the best."""
    label = f"{metric}@{k}"  # English: the measure's key, as the command line names it
    if language() != DEFAULT_LANGUAGE and metric in METRICS:
        label = _(METRICS[metric].label).replace("@k", f"@{k}")
    baselines = table[table["algorithm"].isin(BASELINES)]
    others = table[~table["algorithm"].isin(BASELINES)]
    if chosen is not None and chosen in set(others["algorithm"]):
        others = others[others["algorithm"] == chosen]
    if baselines.empty or others.empty:
        return _("Evaluate a popularity baseline and another algorithm to compare them on {measure}.").format(
            measure=label)
    base = baselines.sort_values([metric, "algorithm"], ascending=[False, True]).iloc[0]
    best = others.sort_values([metric, "algorithm"], ascending=[False, True]).iloc[0]
    if not np.isfinite(best[metric]) or not np.isfinite(base[metric]):
        return _("No member bought anything in the test window, so {measure} cannot be compared.").format(
            measure=label)
    words = {"algorithm": _(best["label"]), "baseline": _(base["label"]).lower(), "measure": label,
             "value": f"{best[metric]:.3f}", "baseline_value": f"{base[metric]:.3f}"}
    if base[metric] <= 0:
        return _("{algorithm} reaches {value} on {measure}; the popularity baseline ({baseline}) finds "
                 "nothing.").format(**words)
    change = best[metric] / base[metric] - 1.0
    if change > 0:
        return _("{algorithm} beats the popularity baseline ({baseline}) by {change} on {measure}: {value} against "
                 "{baseline_value}.").format(change=f"{change:.0%}", **words)
    if chosen is not None:
        return _("{algorithm} does not beat the popularity baseline ({baseline}) on {measure}: {value} against "
                 "{baseline_value}.").format(**words)
    return _("No algorithm beats the popularity baseline ({baseline}) on {measure}: the best, {algorithm}, reaches "
             "{value} against {baseline_value}.").format(**words)


@dataclass(frozen=True)
class BaselineComparison:
    """An algorithm against the better popularity baseline on one measure: both values, the relative change
    (NaN when the baseline is 0) and the sentence."""

    algorithm: str
    label: str
    value: float
    baseline: str
    baseline_label: str
    baseline_value: float
    change: float
    sentence: str

    @property
    def beats(self) -> bool:
        return bool(self.value > self.baseline_value)


def compare_with_baseline(table: pd.DataFrame, k: int, chosen: str,
                          metric: str = "recall") -> BaselineComparison | None:
    """``chosen`` against the better of the popularity baselines in ``table`` on ``metric``; None when either is
    missing or ``chosen`` is itself a baseline."""
    baselines = table[table["algorithm"].isin(BASELINES)]
    mine = table[table["algorithm"] == chosen]
    if chosen in BASELINES or baselines.empty or mine.empty:
        return None
    base = baselines.sort_values([metric, "algorithm"], ascending=[False, True]).iloc[0]
    row = mine.iloc[0]
    change = row[metric] / base[metric] - 1.0 if base[metric] > 0 else float("nan")
    return BaselineComparison(chosen, str(row["label"]), float(row[metric]), str(base["algorithm"]),
                              str(base["label"]), float(base[metric]), float(change),
                              comparison_sentence(table, k, metric, chosen))


def pair_hit_rates(recs: Recommendations, data: RecommendData, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """How often product B is recommended to members who bought A (before the lists' history end) and not B,
    for each pair (A, B) of product ids, against how often B is recommended to all members who did not buy B:
    ``first, second, buyers, recommended, rate, base_rate, lift``. Checks planted or mined complements."""
    if len(pairs) > MAX_PAIRS:
        raise EvaluationError(f"Check at most {MAX_PAIRS:,} pairs at once, not {len(pairs):,}.")
    ids = pd.Index(data.products.ids)
    history = data.history.matrix("binary")[recs.members]
    records = []
    for first, second in pairs:
        a, b = ids.get_indexer([first, second])
        if a < 0 or b < 0:
            raise EvaluationError(f"Unknown product id in pair ({first}, {second}).")
        has_b = (recs.items == b).any(axis=1)
        bought_a = np.asarray(history[:, a].todense()).ravel() > 0
        not_b = np.asarray(history[:, b].todense()).ravel() == 0
        buyers = bought_a & not_b
        hits = int((has_b & buyers).sum())
        rate = hits / buyers.sum() if buyers.any() else np.nan
        base = has_b[not_b].mean() if not_b.any() else np.nan
        records.append((first, second, int(buyers.sum()), hits, rate, base, rate / base if base else np.nan))
    return pd.DataFrame.from_records(records, columns=["first", "second", "buyers", "recommended", "rate", "base_rate",
                                                       "lift"])
