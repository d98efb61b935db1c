"""Basket analysis: frequent itemsets and association rules for cross-sell ("who buys A also buys B").

Baskets are the distinct items of each completed order in the date range (and channel, tier or
segment scope), at product, subcategory or category level, read from the warehouse as one pair of
(order, item) codes per line and held as a sparse CSR structure (:class:`Baskets`): never a dense
baskets x items matrix. Baskets imported with the ``baskets`` importer are orders like any other.

**Engine.** Itemsets and rules are mined by pyfim, Christian Borgelt's C implementation of
FP-growth (default) and Apriori, on the baskets as lists of integer item codes. It is the fastest
widely used implementation; pure-Python FP-growth (mlxtend) is about 35 times slower on the Online
Retail invoices, and a NumPy miner cannot beat compiled tree code at low support. mlxtend serves as
the independent reference in the tests. Rules have one item in the consequent, as in the reference
literature (arules); a rule's support is that of antecedent and consequent together.

**Metrics**, each defined once in :data:`METRICS` (shown as help in the app), from the supports
P(A), P(B) and P(A and B) over N baskets:

* support = P(A and B); confidence = P(A and B) / P(A); lift = confidence / P(B)
* leverage = P(A and B) - P(A) P(B)
* conviction = (1 - P(B)) / (1 - confidence)  (infinite when confidence is 1)
* Zhang's metric = leverage / max(P(A and B) (1 - P(A)), P(A) (P(B) - P(A and B)))  (-1 .. 1)

**Guard rails.** Before mining, :func:`estimate_work` counts the items above the support and, with
one sparse product, the frequent pairs; settings whose pairs exceed :data:`MAX_FREQUENT_PAIRS` are
refused with the lowest support that would fit. A time limit runs the miner in a separate process
that is killed when the limit passes, so a cancelled run leaves nothing behind.
"""

from __future__ import annotations

import gc
import math
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sqlalchemy import func, select

from analytics.errors import InputError
from analytics.filters import Filters, completed_order_conditions
from analytics.i18n import N_, _
from analytics.rule_mining import pyfim_rules
from analytics.storage.contract import order_items, orders, products
from analytics.storage.db import Bind, connection, read_frame

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LEVELS: tuple[str, ...] = ("product", "subcategory", "category")
ALGORITHMS: tuple[str, ...] = ("fpgrowth", "apriori")
#: Baskets read at most (the most recent ones): enough for stable rules, bounded memory.
MAX_BASKETS = 500_000
#: Above this many frequent item pairs the itemsets explode combinatorially: refuse and say why.
MAX_FREQUENT_PAIRS = 200_000
ITEM_SEPARATOR = " | "
RULE_COLUMNS = ["antecedents", "consequents", "support", "confidence", "lift", "leverage", "conviction",
                "zhangs_metric", "baskets", "antecedent_support", "consequent_support"]

#: What each rule metric means, in English (translated where shown: ``_(METRICS[name])``).
METRICS: dict[str, str] = {
    "support": N_("Share of all baskets that hold both the antecedents (A) and the consequent (B): P(A and B)."),
    "confidence": N_("Of the baskets holding A, the share that also hold B: P(A and B) / P(A)."),
    "lift": N_("How much more often B is in baskets with A than in baskets overall: confidence / P(B). "
               "1 = independent, above 1 = bought together more than chance."),
    "leverage": N_("P(A and B) − P(A)·P(B): the share of baskets holding both beyond what independence gives."),
    "conviction": N_("(1 − P(B)) / (1 − confidence): how much more often A would come without B if they were "
                     "independent. 1 = independent; infinite when every basket with A holds B."),
    "zhangs_metric": N_("Zhang's metric, from −1 (A and B avoid each other) through 0 (independent) to 1 "
                        "(B always comes with A): leverage / max(P(A and B)(1 − P(A)), P(A)(P(B) − P(A and B)))."),
}
#: How a reader names each level items are mined at: one item, and the items (translated where shown).
LEVEL_LABELS: dict[str, str] = {"product": N_("Product"), "subcategory": N_("Subcategory"),
                                "category": N_("Category")}
LEVEL_PLURALS: dict[str, str] = {"product": N_("Products"), "subcategory": N_("Subcategories"),
                                 "category": N_("Categories")}


class RulesRefused(InputError):
    """Settings that would not finish (or found no baskets): ``problem`` and a ``fix``."""


@dataclass(frozen=True)
class RuleSpec:
    """What to mine. Thresholds are shares (0.01 = 1% of baskets)."""

    level: str = "product"
    min_support: float = 0.01
    min_confidence: float = 0.3
    min_lift: float = 0.0
    max_len: int = 4
    algorithm: str = "fpgrowth"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise InputError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        if self.algorithm not in ALGORITHMS:
            raise InputError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}")
        if not 0 < self.min_support <= 1:
            raise InputError(f"minimum support must be above 0 and at most 1, not {self.min_support}")
        if not 0 <= self.min_confidence <= 1:
            raise InputError(f"minimum confidence must lie between 0 and 1, not {self.min_confidence}")
        if self.min_lift < 0:
            raise InputError(f"minimum lift cannot be negative, not {self.min_lift}")
        if not 2 <= self.max_len <= 10:
            raise InputError(f"the longest itemset must have 2 to 10 items, not {self.max_len}")


@dataclass(frozen=True)
class Baskets:
    """Baskets in CSR form: the item codes of basket i are ``items[indptr[i]:indptr[i + 1]]``."""

    indptr: np.ndarray
    items: np.ndarray
    labels: tuple[str, ...]  # item code -> item name
    truncated: bool = False  # more baskets matched than MAX_BASKETS; the most recent were kept

    @property
    def count(self) -> int:
        return len(self.indptr) - 1

    def as_lists(self) -> list[list[int]]:
        """Each basket as a list of item codes (what the miner reads)."""
        flat = self.items.tolist()
        bounds = self.indptr.tolist()
        return [flat[a:b] for a, b in pairwise(bounds)]

    def most_common(self, n: int) -> list[str]:
        """The ``n`` items in the most baskets, most first (ties by name)."""
        counts = self.item_counts()
        order = np.lexsort((np.arange(len(counts)), -counts))  # labels are sorted, so code order is name order
        return [self.labels[i] for i in order[:n]]

    def item_counts(self) -> np.ndarray:
        """Baskets holding each item, by item code."""
        return np.bincount(self.items, minlength=len(self.labels))

    def matrix(self) -> sp.csr_matrix:
        """The sparse baskets x items incidence matrix (booleans as int32)."""
        data = np.ones(len(self.items), dtype=np.int32)
        return sp.csr_matrix((data, self.items, self.indptr), shape=(self.count, len(self.labels)))

    @classmethod
    def from_pairs(cls, basket_ids: Sequence, items: Sequence, truncated: bool = False) -> Baskets:
        """Baskets from parallel sequences of (basket id, item name); repeats within a basket count once."""
        frame = pd.DataFrame({"basket": basket_ids, "item": items}).drop_duplicates()
        basket_codes, _ = pd.factorize(frame["basket"], sort=False)
        item_codes, labels = pd.factorize(frame["item"], sort=True)
        order = np.argsort(basket_codes, kind="stable")
        counts = np.bincount(basket_codes, minlength=basket_codes.max() + 1 if len(basket_codes) else 0)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, item_codes[order].astype(np.int32), tuple(str(v) for v in labels), truncated)

    @classmethod
    def from_lists(cls, baskets: Sequence[Sequence[str]]) -> Baskets:
        ids = [i for i, basket in enumerate(baskets) for _ in basket]
        return cls.from_pairs(ids, [item for basket in baskets for item in basket])


def lines_at_level(level: str):
    """Orders joined to their lines (and products, above product level) and the item column at ``level``."""
    source = orders.join(order_items, order_items.c.order_id == orders.c.order_id)
    if level == "product":
        return source, order_items.c.product_id
    return source.join(products, products.c.product_id == order_items.c.product_id), products.c[level]


def load_baskets(bind: Bind, filters: Filters, level: str, max_baskets: int = MAX_BASKETS) -> Baskets:
    """The baskets of completed orders that pass ``filters``, at ``level`` (product, subcategory, category).

    Items without a value at that level (a product with no category) are left out. Over
    ``max_baskets`` orders, the most recent ones are kept and ``truncated`` says so.
    """
    if level not in LEVELS:
        raise InputError(f"level must be one of {', '.join(LEVELS)}")
    source, item = lines_at_level(level)
    conditions = completed_order_conditions(filters, filters.start_ts, filters.end_ts)
    with connection(bind) as conn:
        matching = conn.execute(select(func.count()).select_from(orders).where(*conditions)).scalar_one()
        cutoff = None
        if matching > max_baskets:  # the most recent baskets: find the time of the max_baskets-th newest
            cutoff = conn.execute(select(orders.c.ordered_at).where(*conditions)
                                  .order_by(orders.c.ordered_at.desc()).offset(max_baskets - 1).limit(1)).scalar()
        where = [*conditions, item.is_not(None)]
        if cutoff is not None:
            where.append(orders.c.ordered_at >= cutoff)
        query = (select(orders.c.order_id.label("basket"), item.label("item")).select_from(source)
                 .where(*where).distinct())
        frame = read_frame(conn, query)
    return Baskets.from_pairs(frame["basket"].to_numpy(), frame["item"].to_numpy(), truncated=cutoff is not None)


# --- guard rails ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkEstimate:
    """How big a mining run will be, known before it starts."""

    baskets: int
    items: int
    frequent_items: int
    frequent_pairs: int | None  # counted only when the frequent items could form too many pairs
    min_count: int  # baskets an itemset must be in
    suggested_support: float | None  # the lowest support that stays within MAX_FREQUENT_PAIRS, if too big

    @property
    def too_big(self) -> bool:
        return self.suggested_support is not None


def min_count(baskets: Baskets, min_support: float) -> int:
    """Baskets an itemset must be in to reach ``min_support`` (as pyfim and mlxtend count it)."""
    return max(1, math.ceil(min_support * baskets.count - 1e-9))


def estimate_work(baskets: Baskets, spec: RuleSpec) -> WorkEstimate:
    """Frequent items at the spec's support and, when they could form too many pairs, the frequent pairs
    (one sparse co-occurrence product) with the lowest support that keeps them within the limit."""
    needed = min_count(baskets, spec.min_support)
    counts = baskets.item_counts()
    is_frequent = counts >= needed
    frequent = np.flatnonzero(is_frequent)
    pairs = None
    suggested = None
    # Two cheap upper bounds on the frequent pairs first: all pairs of frequent items, and the pair
    # occurrences in the baskets divided by the count each frequent pair needs.
    per_basket = np.add.reduceat(is_frequent[baskets.items].astype(np.int64), baskets.indptr[:-1]) \
        if len(baskets.items) else np.zeros(0, dtype=np.int64)
    per_basket[np.diff(baskets.indptr) == 0] = 0  # reduceat repeats the next value for empty baskets
    occurrences = int((per_basket * (per_basket - 1) // 2).sum())
    if min(len(frequent) * (len(frequent) - 1) // 2, occurrences // needed) > MAX_FREQUENT_PAIRS:
        x = baskets.matrix()[:, frequent]
        co = sp.triu(x.T @ x, k=1).tocoo()
        pair_counts = co.data
        pairs = int((pair_counts >= needed).sum())
        if pairs > MAX_FREQUENT_PAIRS:
            cut = len(pair_counts) - MAX_FREQUENT_PAIRS
            kth = np.partition(pair_counts, cut)[cut]
            suggested = float(math.ceil((kth + 1) / baskets.count * 10_000) / 10_000)
    return WorkEstimate(baskets.count, len(baskets.labels), len(frequent), pairs, needed, suggested)


def check_work(estimate: WorkEstimate, spec: RuleSpec) -> None:
    """Refuse settings that would explode (or have nothing to mine), with a specific way out."""
    if estimate.baskets == 0:
        if spec.level == "product":
            raise RulesRefused(_("No completed orders with items match the date range and filters."),
                               _("Widen the date range or clear the filters."))
        raise RulesRefused(_("No completed orders with items with a {level} match the date range and filters.")
                           .format(level=_(LEVEL_LABELS[spec.level]).lower()),
                           _("Widen the date range or clear the filters, or mine products: an imported shop's "
                             "products often have no category."))
    if estimate.too_big:
        raise RulesRefused(
            _("At a minimum support of {support} ({count} of {baskets} baskets) {items} items and {pairs} item pairs "
              "are frequent: the itemsets would explode and mining would not finish.").format(
                support=f"{spec.min_support:.3%}", count=f"{estimate.min_count:,}", baskets=f"{estimate.baskets:,}",
                items=f"{estimate.frequent_items:,}", pairs=f"{estimate.frequent_pairs:,}"),
            _("Raise the minimum support to at least {support}, or mine a coarser level (subcategory or category).")
            .format(support=f"{estimate.suggested_support:.2%}"))


# --- mining ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleResult:
    """Rules (one row each, RULE_COLUMNS) and what they were mined from."""

    rules: pd.DataFrame
    spec: RuleSpec
    estimate: WorkEstimate
    itemsets: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


class RulesTimeout(InputError):
    """Mining took longer than its time limit and was stopped."""


def _pyfim_rules(tracts: list[list[int]], spec: RuleSpec) -> list[tuple]:
    return pyfim_rules(tracts, spec.algorithm, spec.min_support, spec.min_confidence, spec.max_len)


def _mine_with_time_limit(tracts: list[list[int]], spec: RuleSpec, seconds: float) -> list[tuple]:
    """Mine in a child process that is killed after ``seconds``: C code cannot be interrupted in-process,
    and a child (``python -m analytics.rule_mining``, which imports nothing of the analytics stack) is safe to
    start from a threaded server."""
    child = subprocess.Popen([sys.executable, "-m", "analytics.rule_mining"], cwd=PROJECT_ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        arguments = (tracts, spec.algorithm, spec.min_support, spec.min_confidence, spec.max_len)
        out, err = child.communicate(pickle.dumps(arguments), timeout=seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise RulesTimeout(_("Mining took longer than {seconds} s and was stopped.").format(seconds=f"{seconds:g}"),
                           _("Raise the minimum support, or the time limit.")) from None
    if child.returncode != 0:
        raise RuntimeError(f"the mining process failed: {err.decode(errors='replace').strip()[-500:]}")
    return pickle.loads(out)  # our own child's output


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def rule_metrics(both: np.ndarray, body: np.ndarray, head: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRICS` from basket counts of A and B together, A, and B, of ``n``."""
    p_ab, p_a, p_b = both / n, body / n, head / n
    confidence = p_ab / p_a
    leverage = p_ab - p_a * p_b
    with np.errstate(divide="ignore", invalid="ignore"):
        conviction = np.where(confidence >= 1, np.inf, (1 - p_b) / (1 - confidence))
        denominator = np.maximum(p_ab * (1 - p_a), p_a * (p_b - p_ab))
        zhang = np.where(denominator > 0, leverage / denominator, 0.0)
    return {"support": p_ab, "confidence": confidence, "lift": confidence / p_b, "leverage": leverage,
            "conviction": conviction, "zhangs_metric": zhang}


def mine_rules(
    baskets: Baskets,
    spec: RuleSpec,
    *,
    time_limit: float | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> RuleResult:
    """Association rules of ``baskets`` under ``spec``, sorted by lift then confidence.

    Raises :class:`RulesRefused` for settings that would explode (see :func:`estimate_work`) and
    :class:`RulesTimeout` when ``time_limit`` seconds pass first.
    """
    report = progress or (lambda fraction, message: None)
    report(0.05, f"Estimating the work for {baskets.count:,} baskets")
    estimate = estimate_work(baskets, spec)
    check_work(estimate, spec)
    report(0.2, f"Mining {estimate.frequent_items:,} frequent items with {spec.algorithm}")
    with _gc_paused():  # millions of small lists and tuples: collection passes would only slow this down
        tracts = baskets.as_lists()
        raw = _mine_with_time_limit(tracts, spec, time_limit) if time_limit else _pyfim_rules(tracts, spec)
        report(0.8, f"Measuring {len(raw):,} rules")
        rules = rules_frame(raw, baskets, spec)
    report(1.0, "Done")
    notes = (_("Only the most recent baskets were used.") if baskets.truncated else "",)
    return RuleResult(rules, spec, estimate, len(raw), tuple(n for n in notes if n))


def rules_frame(raw: list[tuple], baskets: Baskets, spec: RuleSpec) -> pd.DataFrame:
    """pyfim's rules (head, body, counts) as a table of named items and metrics, by lift then confidence."""
    if not raw:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("antecedents", "consequents") else float)
                             for c in RULE_COLUMNS})
    labels = list(baskets.labels)
    heads, bodies, both, body, head, _confidence = zip(*raw, strict=True)
    both_n, body_n, head_n = (np.fromiter(v, dtype=np.float64, count=len(raw)) for v in (both, body, head))
    metrics = rule_metrics(both_n, body_n, head_n, baskets.count)
    frame = pd.DataFrame({
        "antecedents": [ITEM_SEPARATOR.join(sorted([labels[i] for i in b])) for b in bodies],
        "consequents": [labels[h] for h in heads],
        **metrics,
        "baskets": both_n.astype(np.int64),
        "antecedent_support": body_n / baskets.count,
        "consequent_support": head_n / baskets.count,
    })
    if spec.min_lift > 0:
        frame = frame[frame["lift"] >= spec.min_lift]
    # pyfim's order is deterministic for the same baskets, so a stable sort gives repeatable ties.
    return frame.sort_values(["lift", "confidence"], ascending=False, kind="stable", ignore_index=True)


def with_readings(rules: pd.DataFrame) -> pd.DataFrame:
    """The rules with a ``reading`` column: each rule in plain language (for the rows a page shows)."""
    return rules.assign(reading=[reading(*r) for r in zip(
        rules["antecedents"], rules["consequents"], rules["support"], rules["confidence"], rules["lift"],
        strict=True)])


def reading(antecedents: str, consequents: str, support: float, confidence: float, lift: float) -> str:
    """A rule in plain language, e.g. "In 3.2% of baskets; 34% of baskets with A also hold B, 3.1× more than usual"."""
    comparison = (_("{times}× more than usual").format(times=f"{lift:.1f}") if lift >= 1 else
                  _("{times}× less than usual").format(times=f"{1 / lift:.1f}"))
    return _("In {support} of baskets; {confidence} of baskets with {a} also hold {b}, {comparison}").format(
        support=f"{support:.1%}", confidence=f"{confidence:.0%}", a=antecedents, b=consequents, comparison=comparison)


def frequent_itemsets(baskets: Baskets, spec: RuleSpec) -> pd.DataFrame:
    """Every frequent itemset (items sorted, joined by ' | ') with its support, up to ``max_len`` items."""
    import fim

    check_work(estimate_work(baskets, spec), spec)
    miner = fim.fpgrowth if spec.algorithm == "fpgrowth" else fim.apriori
    found = miner(baskets.as_lists(), target="s", supp=spec.min_support * 100, zmin=1, zmax=spec.max_len, report="a")
    labels = np.asarray(baskets.labels, dtype=object)
    return pd.DataFrame({
        "itemset": [ITEM_SEPARATOR.join(sorted(labels[list(items)])) for items, _ in found],
        "size": [len(items) for items, _ in found],
        "support": [count / baskets.count for _, count in found],
    }).sort_values(["size", "support", "itemset"], ascending=[True, False, True], ignore_index=True)
