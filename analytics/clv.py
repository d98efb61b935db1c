"""Customer lifetime value: buy-till-you-die models fitted by maximum likelihood with numpy/scipy.

Models (parameters as in the papers; time in the fit's ``unit``, a week or a day):

* **BG/NBD** (Fader, Hardie & Lee 2005, "'Counting Your Customers' the Easy Way", Marketing Science 24(2)):
  while active a member buys at Poisson rate λ ~ Gamma(r, α); after each repeat purchase they drop out with
  probability p ~ Beta(a, b). Likelihood (FHL eq. 6) in the form of Fader & Hardie's note 027 ("Overcoming the
  BG/NBD model's #NUM! error problem", 2013), evaluated in logs. The conditional expectation (FHL eq. 10) needs
  2F1(r+x, b+x; a+b+x-1; z); it is summed here as a series after Euler's transformation (see _bgnbd_series),
  because scipy's hyp2f1 returns inf/nan or wrong digits near z = 1 for these arguments (tests/test_clv.py).
* **Pareto/NBD** (Schmittlein, Morrison & Colombo 1987): the same purchase process, lifetimes exponential with
  rate μ ~ Gamma(s, β). Likelihood as in Fader & Hardie's note 009 ("A Note on Deriving the Pareto/NBD Model and
  Related Expressions", 2005, eqs. 18–22), with the case split α ≥ β / α < β that keeps the Gaussian
  hypergeometric argument in [0, 1), and each 2F1(a, b; a + 1; z) evaluated after Euler's transformation as
  (1 - z)^(1 - b) · 2F1(1, a + 1 - b; a + 1; z), whose terms are bounded by z^n: no overflow for members with
  hundreds of purchases (the failure mode of the untransformed form, e.g. in lifetimes). That 2F1(1, ·; ·; z) comes
  from scipy where scipy is reliable and from Gauss's continued fraction elsewhere (see _log_hyp2f1_one).
* **Gamma-Gamma** spend (Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary Value", note 025): a member's
  transaction values are Gamma(p, ν), ν ~ Gamma(q, γ) across members (``v`` = γ); fitted on members with at least
  one repeat purchase, from the mean value of their repeat purchases.

Data are the sufficient statistics per member: frequency x (repeat purchase days), recency t_x (first to last
purchase), age T (first purchase to the end of calibration) and the mean repeat spend. Fits run on the distinct
(x, t_x, T) triples with their counts (a weighted log-likelihood), so a million members reduce to the few hundred
thousand triples their calendar allows. Times are rescaled internally so that the largest age is 10 (the
likelihood changes by a constant, the parameters map back exactly), parameters are optimised as logarithms by
L-BFGS-B from fixed starting values (Nelder-Mead then L-BFGS-B again if it stalls), with analytic gradients for
BG/NBD and Gamma-Gamma and finite differences for Pareto/NBD. An optional L2 penalty
``penalty · Σ θ²`` is added to the mean negative log-likelihood (default 0: plain maximum likelihood), as in
lifetimes: θ with time rescaled as above (largest age 10) and spend divided by its mean, so one penalty means the
same shrinkage whatever the unit or currency.

Warehouse queries and reports live in :mod:`analytics.clv_sql`; this module is pure numerics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import special

from analytics.errors import InputError
from analytics.preload import heavy_imports

Unit = Literal["week", "day"]
DAYS_PER_UNIT: dict[str, float] = {"week": 7.0, "day": 1.0}
#: A month for CLV horizons: 365.25 / 12 days, in every unit.
DAYS_PER_MONTH = 365.25 / 12
MAX_HORIZON_MONTHS = 120

ArrayLike = Any


class ClvError(InputError):
    """A CLV model cannot be fitted or evaluated from these inputs; the message says why."""


def check_unit(unit: str) -> str:
    """``unit`` if it is 'week' or 'day', else a :class:`ClvError`."""
    if unit not in DAYS_PER_UNIT:
        raise ClvError(f"Unknown time unit {unit!r}; choose 'week' or 'day'.")
    return unit


# --------------------------------------------------------------------------------------------------------------
# Fitted parameters: plain frozen data, JSON-serialisable


@dataclass(frozen=True)
class _Params:
    model: ClassVar[str] = ""
    names: ClassVar[tuple[str, ...]] = ()

    def values(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, n)) for n in self.names)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping, with the model name, for a model registry."""
        return {"model": self.model, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Params:
        """Inverse of :meth:`to_dict` (for any of the three models when called on the base class)."""
        model = data.get("model")
        target = {c.model: c for c in (BgNbdParams, ParetoNbdParams, GammaGammaParams)}.get(str(model))
        if target is None or (cls is not _Params and target is not cls):
            raise ClvError(f"Not stored {cls.model or 'CLV'} parameters (model {model!r}).")
        known = {f.name for f in fields(target)}
        missing = [n for n in target.names if n not in data]
        if missing:
            raise ClvError(f"Stored {target.model} parameters lack {', '.join(missing)}.")
        return target(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class BgNbdParams(_Params):
    """Fitted BG/NBD: purchase rate λ ~ Gamma(r, alpha) per ``unit``, drop-out p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    unit: str = "week"
    log_likelihood: float | None = None
    customers: int = 0
    model: ClassVar[str] = "bgnbd"
    names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")


@dataclass(frozen=True)
class ParetoNbdParams(_Params):
    """Fitted Pareto/NBD: purchase rate λ ~ Gamma(r, alpha), drop-out rate μ ~ Gamma(s, beta), per ``unit``."""

    r: float
    alpha: float
    s: float
    beta: float
    unit: str = "week"
    log_likelihood: float | None = None
    customers: int = 0
    model: ClassVar[str] = "paretonbd"
    names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")


@dataclass(frozen=True)
class GammaGammaParams(_Params):
    """Fitted Gamma-Gamma spend model: values Gamma(p, ν), ν ~ Gamma(q, v). ``customers`` = repeat buyers used."""

    p: float
    q: float
    v: float
    log_likelihood: float | None = None
    customers: int = 0
    model: ClassVar[str] = "gammagamma"
    names: ClassVar[tuple[str, ...]] = ("p", "q", "v")


TransactionParams = BgNbdParams | ParetoNbdParams


# --------------------------------------------------------------------------------------------------------------
# Inputs


def _arrays(*columns: ArrayLike) -> list[np.ndarray]:
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ClvError("The summary columns have different lengths.")
    return arrays


def _factorize(*columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes of the distinct rows of aligned 1-d columns (in order of first appearance) and those rows' columns.
    Hashes each column, then the running pair of codes (pandas' MultiIndex.factorize builds Python tuples and is
    ten times slower on a million rows)."""
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        column_codes, uniques = pd.factorize(column)
        codes = pd.factorize(codes * len(uniques) + column_codes)[0]
    count = int(codes.max()) + 1 if codes.size else 0
    first = np.empty(count, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return codes, [np.asarray(column, dtype=np.float64)[first] for column in columns]


def _check_summary(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if x.size == 0:
        raise ClvError("No members to fit: the summary is empty.")
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all()):
        raise ClvError("The summary has missing or infinite values.")
    if (x < 0).any() or (x != np.round(x)).any():
        raise ClvError("Frequency must be a whole number of repeat purchases, 0 or more.")
    if (t_x < 0).any() or (t_x > T).any():
        raise ClvError("Recency must lie between 0 and the member's age T.")
    if ((x == 0) & (t_x != 0)).any():
        raise ClvError("A member without repeat purchases must have recency 0.")


def compress(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
             ) -> pd.DataFrame:
    """The distinct (frequency, recency, T) triples with their member counts (``weights``, summed when given),
    in a fixed order. Fitting on them equals fitting on the members: the log-likelihood is a weighted sum."""
    x, t_x, age = _arrays(frequency, recency, T)
    w = np.ones_like(x) if weights is None else _arrays(weights, x)[0]
    frame = pd.DataFrame({"frequency": x, "recency": t_x, "T": age, "weights": w})
    grouped = frame.groupby(["frequency", "recency", "T"], sort=True, as_index=False)["weights"].sum()
    return grouped.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# Log-likelihoods (per row, and weighted sums with gradients for the optimiser)


def _bgnbd_log_sum(r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
                   ) -> np.ndarray:
    """log(A3 + δ A4) of note 027: A3 = (α+T)^-(r+x), A4 = a/(b+x-1) (α+t_x)^-(r+x) for x > 0 (δ = 0 at x = 0)."""
    bx1 = b + np.maximum(x, 1.0) - 1.0  # b + x - 1, kept positive where x = 0 (A4 is not used there)
    u = -(r + x) * np.log(alpha + T)
    v = np.where(x > 0, math.log(a) - np.log(bx1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return np.logaddexp(u, v)


def bgnbd_log_likelihood(params: BgNbdParams | tuple[float, float, float, float], frequency: ArrayLike,
                         recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Total BG/NBD log-likelihood (FHL 2005 eq. 6; note 027's stable form) of members with these statistics."""
    r, alpha, a, b = params.values() if isinstance(params, BgNbdParams) else params
    x, t_x, age = _arrays(frequency, recency, T)
    w = np.ones_like(x) if weights is None else _arrays(weights, x)[0]
    log_sum = _bgnbd_log_sum(r, alpha, a, b, x, t_x, age)
    per_x = (special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) + special.gammaln(a + b)
             + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x))
    return float(np.sum(w * (per_x + log_sum)))


class _BgNbdObjective:
    """Mean negative BG/NBD log-likelihood over weighted rows and its gradient in log-parameters.

    Built for speed on a few hundred thousand rows: everything that depends on x, T or t_x alone is evaluated on
    their distinct values (a few hundred each) and gathered or summed by ``np.bincount``; members without repeat
    purchases contribute -r ln(α + T) only and are summed by T. Per repeat row there remain two transcendental
    passes (log(1 + e^d) and the logistic function)."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray, penalty: float):
        self.penalty, self.n = penalty, float(w.sum())
        self.ux, ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(ix, weights=w)  # member count per distinct frequency
        self.uT, iT = np.unique(T, return_inverse=True)
        self.utx, itx = np.unique(t_x, return_inverse=True)
        repeat = x > 0
        self.zero_by_T = np.bincount(iT[~repeat], weights=w[~repeat], minlength=len(self.uT))
        self.x, self.w, self.ix, self.iT, self.itx = x[repeat], w[repeat], ix[repeat], iT[repeat], itx[repeat]

    def __call__(self, log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = theta = np.exp(log_theta)
        ux, wx, n = self.ux, self.wx, self.n
        ln_aT, ln_atx = np.log(alpha + self.uT), np.log(alpha + self.utx)
        b_x_1 = b - 1.0 + np.maximum(ux, 1.0)
        rx = r + self.x
        u = -rx * ln_aT[self.iT]                                      # log A3 (note 027)
        d = math.log(a) - np.log(b_x_1)[self.ix] - rx * ln_atx[self.itx] - u  # log A4 - log A3
        share4 = special.expit(d)
        wp4 = self.w * share4
        wp3 = self.w - wp4
        gl, dg = special.gammaln, special.digamma
        ll = (np.dot(wx, gl(r + ux) + gl(b + ux) - gl(a + b + ux)) + n * (-gl(r) + r * math.log(alpha)
              + gl(a + b) - gl(b)) - r * np.dot(self.zero_by_T, ln_aT) + np.dot(self.w, u + np.logaddexp(0.0, d)))
        n_T = len(self.uT)
        by_T = np.bincount(self.iT, weights=wp3, minlength=n_T) + self.zero_by_T
        rx_by_T = np.bincount(self.iT, weights=wp3 * rx, minlength=n_T) + r * self.zero_by_T
        by_tx = np.bincount(self.itx, weights=wp4, minlength=len(self.utx))
        rx_by_tx = np.bincount(self.itx, weights=wp4 * rx, minlength=len(self.utx))
        by_x = np.bincount(self.ix, weights=wp4, minlength=len(ux))
        d_r = np.dot(wx, dg(r + ux)) + n * (math.log(alpha) - dg(r)) - np.dot(by_T, ln_aT) - np.dot(by_tx, ln_atx)
        d_alpha = n * r / alpha - np.dot(rx_by_T, 1.0 / (alpha + self.uT)) - np.dot(rx_by_tx, 1.0 / (alpha + self.utx))
        d_a = np.dot(wx, dg(a + b) - dg(a + b + ux)) + wp4.sum() / a
        d_b = np.dot(wx, dg(a + b) + dg(b + ux) - dg(b) - dg(a + b + ux)) - np.dot(by_x, 1.0 / b_x_1)
        grad = np.array([d_r, d_alpha, d_a, d_b]) * theta
        value = -ll / n + self.penalty * float(np.sum(theta**2))
        return value, -grad / n + 2.0 * self.penalty * theta**2


#: Iteration caps of the series and continued fractions below: reached only for arguments within ~1e-6 of 1.
MAX_ITERATIONS = 200_000


def _log_hyp2f1_one(B: np.ndarray, C: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log 2F1(1, B; C; z) for 0 < B < C and 0 <= z < 1: scipy's hyp2f1 where it is reliable, else Gauss's
    continued fraction (the a = 0 case of 2F1(a+1, b; c+1; z) / 2F1(a, b; c; z)) evaluated with the modified
    Lentz algorithm to full precision.

    Why not scipy alone: scipy 1.17 returns inf or nan for z >= 0.95 once C is large (hundreds of purchases),
    which is where Pareto/NBD's A0 term lands for heavy buyers. The fraction converges in the whole cut plane; it
    needs ~20 steps at z = 0.5, ~500 at z = 0.999 (both paths checked against mpmath to 1e-11 in the tests).
    """
    B, C, z = (np.array(v, dtype=np.float64) for v in np.broadcast_arrays(B, C, z))
    f, lentz_c, lentz_d = np.ones_like(z), np.ones_like(z), np.zeros_like(z)
    # scipy is fast and, checked against mpmath, accurate to 1e-12 or non-finite for these arguments up to z = 0.9
    # (tests/test_clv.py); the fraction takes the rest.
    with np.errstate(all="ignore"):
        quick = special.hyp2f1(1.0, B, C, z)
    easy = np.isfinite(quick) & (z <= 0.9)
    f[easy] = 1.0 / quick[easy]
    active = np.flatnonzero((z != 0.0) & ~easy)
    step = 0
    while active.size and step < MAX_ITERATIONS:
        step += 1
        n = step // 2
        b, c = B.flat[active], C.flat[active]
        if step % 2:
            k = -(c - 1.0 + n) * (b + n) / ((c - 1.0 + 2 * n) * (c + 2 * n))
        else:
            k = n * (b - c + 1.0 - n) / ((c + 2 * n - 2.0) * (c + 2 * n - 1.0))
        term = k * z.flat[active]
        d = 1.0 + term * lentz_d.flat[active]
        d = 1.0 / np.where(d == 0.0, 1e-300, d)
        cc = 1.0 + term / lentz_c.flat[active]
        cc = np.where(cc == 0.0, 1e-300, cc)
        delta = cc * d
        f.flat[active] *= delta
        lentz_c.flat[active], lentz_d.flat[active] = cc, d
        active = active[np.abs(delta - 1.0) > 1e-16]
    if active.size:
        f.flat[active] = np.nan
    return -np.log(f)


def _log_hyp2f1_c_is_a_plus_1(a: np.ndarray, b: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log 2F1(a, b; a + 1; z) for 0 <= z < 1 via Euler's transformation (1 - z)^(1 - b) 2F1(1, a + 1 - b; a + 1; z)
    (Abramowitz & Stegun 15.3.3), whose terms are bounded by z^n: it neither overflows nor loses the tail."""
    return (1.0 - b) * np.log1p(-z) + _log_hyp2f1_one(a + 1.0 - b, a + 1.0, z)


@dataclass(frozen=True)
class _Pairs:
    """The distinct (x, t_x) and (x, T) pairs of a set of rows: A0's two 2F1 terms depend on one pair each, and a
    member base has far fewer pairs than (x, t_x, T) triples."""

    x_tx: np.ndarray
    tx: np.ndarray
    tx_index: np.ndarray
    x_T: np.ndarray
    T: np.ndarray
    T_index: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> _Pairs:
        x, t_x, T = (np.ravel(v) for v in (x, t_x, T))
        tx_index, (x_tx, tx) = _factorize(x, t_x)
        T_index, (x_T, age) = _factorize(x, T)
        return cls(x_tx, tx, tx_index, x_T, age, T_index)


def _paretonbd_rows(r: float, alpha: float, s: float, beta: float, pairs: _Pairs) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log-likelihood (note 009 eq. 18) and log P(alive) (eq. 36).

    L = Γ(r+x) α^r β^s / Γ(r) · [(α+T)^-(r+x) (β+T)^-s + s/(r+s+x) · A0], where (eqs. 19–20) A0 = F(t_x) - F(T)
    with F(τ) = 2F1(r+s+x, s+1; r+s+x+1; (α-β)/(α+τ)) / (α+τ)^(r+s+x) when α >= β, else
    2F1(r+s+x, r+x; r+s+x+1; (β-α)/(β+τ)) / (β+τ)^(r+s+x) (so the argument is in [0, 1)); A0 = 0 when t_x = T.
    Everything but F(t_x) depends on (x, T) alone and is evaluated on those pairs."""
    gap = abs(alpha - beta)

    def log_f(x: np.ndarray, tau: np.ndarray) -> np.ndarray:
        rsx = r + s + x
        top, second = (alpha, np.full_like(x, s + 1.0)) if alpha >= beta else (beta, r + x)
        return _log_hyp2f1_c_is_a_plus_1(rsx, second, gap / (top + tau)) - rsx * np.log(top + tau)

    x, T = pairs.x_T, pairs.T
    alive_pair = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    l2_pair = log_f(x, T)
    dead_pair = math.log(s) - np.log(r + s + x)
    common_pair = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    l1 = log_f(pairs.x_tx, pairs.tx)[pairs.tx_index]
    l2 = l2_pair[pairs.T_index]
    diff = np.minimum(l2 - l1, 0.0)
    with np.errstate(divide="ignore"):
        log_a0 = np.where(diff < 0.0, l1 + np.log(-np.expm1(diff)), -np.inf)
    alive = alive_pair[pairs.T_index]
    both = np.logaddexp(alive, dead_pair[pairs.T_index] + log_a0)
    return common_pair[pairs.T_index] + both, alive - both


def paretonbd_log_likelihood(params: ParetoNbdParams | tuple[float, float, float, float], frequency: ArrayLike,
                             recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Total Pareto/NBD log-likelihood (Fader & Hardie note 009, eq. 18) of members with these statistics."""
    r, alpha, s, beta = params.values() if isinstance(params, ParetoNbdParams) else params
    x, t_x, age = _arrays(frequency, recency, T)
    w = np.ones_like(x) if weights is None else _arrays(weights, x)[0]
    return float(np.sum(w * _paretonbd_rows(r, alpha, s, beta, _Pairs.of(x, t_x, age))[0]))


def gammagamma_log_likelihood(params: GammaGammaParams | tuple[float, float, float], frequency: ArrayLike,
                              monetary_value: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Total Gamma-Gamma log-likelihood of the mean repeat spend m_x of x repeat purchases (note 025, eq. 5)."""
    p, q, v = params.values() if isinstance(params, GammaGammaParams) else params
    x, m = _arrays(frequency, monetary_value)
    w = np.ones_like(x) if weights is None else _arrays(weights, x)[0]
    px = p * x
    rows = (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * math.log(v)
            + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(v + m * x))
    return float(np.sum(w * rows))


class _GammaGammaObjective:
    """Mean negative Gamma-Gamma log-likelihood and its gradient in log-parameters; the gamma functions are
    evaluated per distinct x and the ln m_x sums once, so each row costs one logarithm and one division."""

    def __init__(self, x: np.ndarray, m: np.ndarray, w: np.ndarray, penalty: float):
        self.penalty, self.n = penalty, float(w.sum())
        self.ux, ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(ix, weights=w)
        self.x, self.w, self.mx = x, w, m * x
        ln_m = np.log(m)
        self.sum_x_ln_m, self.sum_ln_m = float(np.dot(w * x, ln_m)), float(np.dot(w, ln_m))
        self.sum_x_ln_x = float(np.dot(self.wx * self.ux, np.log(self.ux)))

    def __call__(self, log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = theta = np.exp(log_theta)
        ux, wx, w, n = self.ux, self.wx, self.w, self.n
        pux = p * ux
        ln_vmx = np.log(v + self.mx)
        pxq = p * self.x + q
        gl, dg = special.gammaln, special.digamma
        ll = (np.dot(wx, gl(pux + q) - gl(pux)) - n * gl(q) + n * q * math.log(v) + p * self.sum_x_ln_m
              - self.sum_ln_m + p * self.sum_x_ln_x - np.dot(w * pxq, ln_vmx))
        d_p = (np.dot(wx * ux, dg(pux + q) - dg(pux)) + self.sum_x_ln_m + self.sum_x_ln_x
               - np.dot(w * self.x, ln_vmx))
        d_q = np.dot(wx, dg(pux + q)) - n * dg(q) + n * math.log(v) - np.dot(w, ln_vmx)
        d_v = n * q / v - np.dot(w * pxq, 1.0 / (v + self.mx))
        grad = np.array([d_p, d_q, d_v]) * theta
        value = -ll / n + self.penalty * float(np.sum(theta**2))
        return value, -grad / n + 2.0 * self.penalty * theta**2


# --------------------------------------------------------------------------------------------------------------
# Fitting


def _minimise(fun: Callable[[np.ndarray], Any], start: np.ndarray, jac: bool, what: str) -> np.ndarray:
    """L-BFGS-B in log-parameters from ``start``; when it stops without a flat gradient (its line search can
    fail far from the optimum), a Nelder-Mead search from where it stopped and a second L-BFGS-B follow.
    Refuses a fit that does not converge or runs to a bound (a parameter at 0 or infinity)."""
    with heavy_imports():
        from scipy import optimize  # imported when a model is fitted, not with the app's first page
    options = {"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10, "maxls": 50}
    bounds = [(-25.0, 25.0)] * len(start)
    result = optimize.minimize(fun, start, jac=jac, method="L-BFGS-B", bounds=bounds, options=options)
    if not (result.success and np.all(np.isfinite(result.x)) and np.max(np.abs(result.jac)) < 1e-5):
        value = (lambda t: fun(t)[0]) if jac else fun
        rough = optimize.minimize(value, result.x if np.all(np.isfinite(result.x)) else start, method="Nelder-Mead",
                                  options={"maxiter": 20000, "maxfev": 40000, "xatol": 1e-6, "fatol": 1e-12})
        result = optimize.minimize(fun, np.clip(rough.x, -24.0, 24.0), jac=jac, method="L-BFGS-B", bounds=bounds,
                                   options=options)
    if not (np.all(np.isfinite(result.x)) and np.isfinite(result.fun) and np.max(np.abs(result.jac)) < 1e-4):
        raise ClvError(f"The {what} fit did not converge ({result.message}); the data may be too sparse.")
    if np.any(np.abs(result.x) >= 24.9):
        raise ClvError(f"The {what} fit ran to a boundary (a parameter near 0 or infinity): the data do not "
                       "identify the model. More history or more repeat buyers are needed.")
    return np.exp(result.x)


def _check_penalty(penalty: float) -> float:
    if not (isinstance(penalty, int | float) and math.isfinite(penalty) and 0.0 <= penalty <= 1e3):
        raise ClvError(f"The penalty must be a number from 0 to 1,000, got {penalty!r}.")
    return float(penalty)


def _prepared(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    x, t_x, age = _arrays(frequency, recency, T)
    _check_summary(x, t_x, age)
    if weights is not None and (_arrays(weights, x)[0] < 0).any():
        raise ClvError("Weights must be counts, 0 or more.")
    rows = compress(x, t_x, age, weights)
    rows = rows[rows["weights"] > 0]
    if float(age.max()) <= 0.0:
        raise ClvError("Every member's age T is 0: no time has been observed.")
    scale = 10.0 / float(age.max())
    return (rows["frequency"].to_numpy(), rows["recency"].to_numpy() * scale, rows["T"].to_numpy() * scale,
            rows["weights"].to_numpy(), scale)


def _start_rate(x: np.ndarray, T: np.ndarray, w: np.ndarray) -> float:
    """Starting scale α (or β): 1 / the mean repeat rate, clipped to a sane range (deterministic)."""
    rate = float(np.dot(w, x) / max(np.dot(w, T), 1e-12))
    return float(np.clip(1.0 / max(rate, 1e-6), 0.1, 1e4))


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None,
              unit: str = "week", penalty: float = 0.0) -> BgNbdParams:
    """Maximum-likelihood BG/NBD on members' (x, t_x, T) in ``unit`` (optionally with member counts as weights)."""
    check_unit(unit)
    x, t_x, age, w, scale = _prepared(frequency, recency, T, weights)
    objective = _BgNbdObjective(x, t_x, age, w, _check_penalty(penalty))
    start = np.log([1.0, _start_rate(x, age, w), 1.0, 1.0])
    r, alpha, a, b = _minimise(objective, start, True, "BG/NBD")
    params = (float(r), float(alpha / scale), float(a), float(b))
    ll = bgnbd_log_likelihood(params, x, t_x / scale, age / scale, w)
    return BgNbdParams(*params, unit=unit, log_likelihood=ll, customers=round(float(w.sum())))


def fit_paretonbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None,
                  unit: str = "week", penalty: float = 0.0) -> ParetoNbdParams:
    """Maximum-likelihood Pareto/NBD on members' (x, t_x, T) in ``unit``; the gradient is by finite differences
    (the 2F1 term has no convenient parameter derivatives)."""
    check_unit(unit)
    penalty = _check_penalty(penalty)
    x, t_x, age, w, scale = _prepared(frequency, recency, T, weights)
    n = float(w.sum())
    pairs = _Pairs.of(x, t_x, age)

    def objective(log_theta: np.ndarray) -> float:
        r, alpha, s, beta = theta = np.exp(log_theta)
        with np.errstate(all="ignore"):
            ll = float(np.dot(w, _paretonbd_rows(r, alpha, s, beta, pairs)[0]))
        if not math.isfinite(ll):
            return 1e30
        return -ll / n + penalty * float(np.sum(theta**2))

    rate = _start_rate(x, age, w)
    theta = _minimise(objective, np.log([1.0, rate, 1.0, rate]), False, "Pareto/NBD")
    r, alpha, s, beta = (float(v) for v in theta)
    params = (r, alpha / scale, s, beta / scale)
    ll = paretonbd_log_likelihood(params, x, t_x / scale, age / scale, w)
    return ParetoNbdParams(*params, unit=unit, log_likelihood=ll, customers=round(float(w.sum())))


def fit_gammagamma(frequency: ArrayLike, monetary_value: ArrayLike, *, weights: ArrayLike | None = None,
                   penalty: float = 0.0) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma on the repeat buyers: members with frequency 0 or a mean repeat value
    that is not positive are left out (the model is for positive spend)."""
    x, m = _arrays(frequency, monetary_value)
    w = np.ones_like(x) if weights is None else _arrays(weights, x)[0]
    keep = (x > 0) & np.isfinite(m) & (m > 0) & (w > 0)
    if keep.sum() < 2:
        raise ClvError("The spend model needs members with repeat purchases of positive value; there are "
                       f"{int(keep.sum())}.")
    rows = (pd.DataFrame({"x": x[keep], "m": m[keep], "w": w[keep]})
            .groupby(["x", "m"], sort=True, as_index=False)["w"].sum())
    xs, ws = rows["x"].to_numpy(), rows["w"].to_numpy()
    scale = float(np.dot(ws, rows["m"].to_numpy()) / ws.sum())
    ms = rows["m"].to_numpy() / scale
    p, q, v = _minimise(_GammaGammaObjective(xs, ms, ws, _check_penalty(penalty)), np.log([1.0, 2.0, 1.0]), True,
                        "Gamma-Gamma")
    params = (float(p), float(q), float(v * scale))
    ll = gammagamma_log_likelihood(params, xs, ms * scale, ws)
    return GammaGammaParams(*params, log_likelihood=ll, customers=round(float(ws.sum())))


# --------------------------------------------------------------------------------------------------------------
# Quantities


def bgnbd_series_ratio(params: BgNbdParams, n: int) -> tuple[float, float]:
    """Constants (c_n, d_n) of the ratio z · c_n / (d_n + x) from term n to term n + 1 of the BG/NBD series
    (see :func:`_bgnbd_series`): c_n = (a + b - 1 - r + n)(a + n - 1)/(n + 1), d_n = a + b - 1 + n."""
    r, _alpha, a, b = params.values()
    return (a + b - 1.0 - r + n) * (a + n - 1.0) / (n + 1.0), a + b - 1.0 + n


def _bgnbd_series(params: BgNbdParams, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Σ_{n>=1} (A)_n (a)_{n-1} z^n / ((C+1)_{n-1} n!) with A = a + b - 1 - r, C = a + b - 1 + x: the part of
    (a+b+x-1)/(a-1) · 2F1(A, a-1; C; z) beyond its first term, divided by (a - 1) (so it is regular at a = 1).

    Summed term by term (term 1 = A z, ratio z c_n/(d_n + x)) until the rest is provably below 1e-17 of the sum:
    once n > -A every later ratio is at most ρ = z · max(1, (a + n - 1)/(n + 1)) < 1, so the rest is at most
    |term| ρ/(1 - ρ). The terms shrink like n^(a-r-x-2) z^n: a few dozen for typical members, a few hundred for
    z ~ 0.9 and x = 0."""
    r, _alpha, a, b = params.values()
    big_a = a + b - 1.0 - r
    term = big_a * z
    total = term.copy()
    active = np.flatnonzero(term != 0.0)
    n = 1
    while active.size:
        if n >= MAX_ITERATIONS:
            raise ClvError("The BG/NBD expectation does not converge: the horizon is far longer than the fitted "
                           "time scale alpha (a purchase rate this high needs a shorter horizon).")
        c_n, d_n = bgnbd_series_ratio(params, n)
        zz = z[active]
        term[active] *= zz * c_n / (d_n + x[active])
        total[active] += term[active]
        n += 1
        rho = zz * max(1.0, (a + n - 1.0) / (n + 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            rest = np.abs(term[active]) * rho / (1.0 - rho)
        done = (n > -big_a) & (rho < 1.0) & (rest <= 1e-17 * np.abs(total[active]))
        active = active[~done]
    return total


def _bgnbd_tail_rows(params: BgNbdParams, x: np.ndarray, T: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)], z = t/(α+T+t), for aligned 1-d
    rows: FHL 2005 eq. 10 without its alive factor (eq. 7 when x = T = 0).

    Euler's transformation (A & S 15.3.3) turns ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z) into
    w^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), w = 1 - z, whose terms do not blow up with x; splitting off its first
    term gives C·(1 - w^(a-1))/(a-1) - w^(a-1)·S (S from :func:`_bgnbd_series`, C = a+b+x-1), where
    (1 - w^(a-1))/(a-1) = -ln w · (e^u - 1)/u with u = (a-1) ln w has no 0/0 at a = 1."""
    _r, alpha, a, b = params.values()
    ln_w = np.log(alpha + T) - np.log(alpha + T + t)
    u = (a - 1.0) * ln_w
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(u == 0.0, 1.0, np.expm1(u) / u)
    series = _bgnbd_series(params, x, t / (alpha + T + t))
    return (a + b - 1.0 + x) * (-ln_w) * phi - np.exp(u) * series


def _paretonbd_growth(params: ParetoNbdParams, T: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[1 - ((β+T)/(β+T+t))^(s-1)]/(s-1), or ln((β+T+t)/(β+T)) at s = 1 (note 009 eq. 41's last factor)."""
    _r, _alpha, s, beta = params.values()
    log_ratio = np.log(beta + T) - np.log(beta + T + t)
    if abs(s - 1.0) <= 1e-12:
        return -log_ratio
    return -np.expm1((s - 1.0) * log_ratio) / (s - 1.0)


def _expected_rows(params: TransactionParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, t: np.ndarray
                   ) -> np.ndarray:
    """Conditional expected purchases for aligned 1-d rows; BG/NBD's series runs on the distinct (x, T, t)."""
    alive = probability_alive(params, x, t_x, T)
    if isinstance(params, BgNbdParams):
        codes, (ux, uT, ut) = _factorize(x, T, t)
        return alive * _bgnbd_tail_rows(params, ux, uT, ut)[codes]
    r, alpha, _s, beta = params.values()
    return alive * (r + x) * (beta + T) / (alpha + T) * _paretonbd_growth(params, T, t)


def probability_alive(params: TransactionParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
                      ) -> np.ndarray:
    """P(still active at T | x, t_x, T). BG/NBD: FHL 2005 eq. 13 (1 for members without repeat purchases);
    Pareto/NBD: note 009 eq. 36."""
    x, t_x, age = _arrays(frequency, recency, T)
    if isinstance(params, BgNbdParams):
        r, alpha, a, b = params.values()
        log_odds = (math.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0)
                    + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x)))
        return np.where(x > 0, special.expit(-log_odds), 1.0)
    r, alpha, s, beta = params.values()
    x, t_x, age = np.broadcast_arrays(x, t_x, age)
    log_alive = _paretonbd_rows(r, alpha, s, beta, _Pairs.of(x, t_x, age))[1]
    return np.exp(log_alive).reshape(x.shape)


def conditional_expected_purchases(params: TransactionParams, t: ArrayLike, frequency: ArrayLike,
                                   recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Expected repeat purchases in (T, T + t] given (x, t_x, T). BG/NBD: FHL 2005 eq. 10; Pareto/NBD: note 009
    eq. 41 (Schmittlein et al. 1987 eq. 22). Arguments broadcast together."""
    x, t_x, age, horizon = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (frequency, recency, T, t)))
    return _expected_rows(params, *(v.ravel() for v in (x, t_x, age, horizon))).reshape(x.shape)


def expected_purchases(params: TransactionParams, t: ArrayLike) -> np.ndarray:
    """Unconditional expected repeat purchases E[X(t)] of a member in the first t after their first purchase
    (FHL 2005 eq. 7; note 009 eq. 27), for tracking charts."""
    horizon = np.asarray(t, dtype=np.float64)
    zero = np.zeros_like(horizon)
    if isinstance(params, BgNbdParams):
        return _bgnbd_tail_rows(params, zero, zero, horizon)
    r, alpha, _s, beta = params.values()
    return r * beta / alpha * _paretonbd_growth(params, zero, horizon)


def expected_spend(params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
    """E[mean transaction value | x, m_x] (note 025, eq. 9): a weighted average of the population mean v·p/(q-1)
    and the member's own mean m_x, with weight p·x/(p·x + q - 1) on m_x. Members without repeat purchases get the
    population mean (their m_x is not used). Requires q > 1 (a finite population mean)."""
    p, q, v = params.values()
    if q <= 1.0:
        raise ClvError(f"The spend model's q = {q:.3g} is at most 1: the population's mean spend is infinite.")
    x, m = _arrays(frequency, monetary_value)
    m = np.where(x > 0, np.nan_to_num(m), 0.0)
    return (v + m * x) * p / (p * x + q - 1.0)


def monthly_expected_purchases(params: TransactionParams, months: int, frequency: ArrayLike, recency: ArrayLike,
                               T: ArrayLike) -> np.ndarray:
    """Expected repeat purchases in each of the next ``months`` months (columns), a month being 365.25/12 days:
    differences of the conditional expectation at the month ends. Evaluated on the distinct (x, t_x, T) only."""
    if not (isinstance(months, int) and 1 <= months <= MAX_HORIZON_MONTHS):
        raise ClvError(f"The horizon must be 1 to {MAX_HORIZON_MONTHS} months, got {months!r}.")
    x, t_x, age = _arrays(frequency, recency, T)
    codes, (ux, utx, uT) = _factorize(x.ravel(), t_x.ravel(), age.ravel())
    ends = DAYS_PER_MONTH / DAYS_PER_UNIT[params.unit] * np.arange(1, months + 1)
    alive = probability_alive(params, ux, utx, uT)[:, None]
    if isinstance(params, BgNbdParams):  # the series depends on (x, T) and the horizon only
        pair_codes, (px, pT) = _factorize(ux, uT)
        tail = _bgnbd_tail_rows(params, np.repeat(px, months), np.repeat(pT, months), np.tile(ends, len(px)))
        cumulative = alive * tail.reshape(len(px), months)[pair_codes]
    else:
        r, alpha, _s, beta = params.values()
        growth = _paretonbd_growth(params, uT[:, None], ends[None, :])
        cumulative = alive * ((r + ux) * (beta + uT) / (alpha + uT))[:, None] * growth
    return np.diff(cumulative, axis=1, prepend=0.0)[codes]


def discounted_value(per_month: np.ndarray, spend: ArrayLike, *, margin: float = 1.0,
                     monthly_discount: float = 0.01) -> np.ndarray:
    """Σ_m per_month[:, m-1] · spend · margin / (1 + monthly_discount)^m: expected purchases per month (one column
    per month, as from :func:`monthly_expected_purchases`) valued at each month's end."""
    if not (math.isfinite(margin) and 0.0 <= margin <= 1.0):
        raise ClvError(f"The margin must be between 0 and 1, got {margin!r}.")
    if not (math.isfinite(monthly_discount) and 0.0 <= monthly_discount < 1.0):
        raise ClvError(f"The monthly discount rate must be at least 0 and below 1, got {monthly_discount!r}.")
    per_month = np.atleast_2d(np.asarray(per_month, dtype=np.float64))
    discount = (1.0 + monthly_discount) ** -np.arange(1, per_month.shape[1] + 1)
    return per_month @ discount * np.asarray(spend, dtype=np.float64) * margin


def customer_lifetime_value(transactions: TransactionParams, spend: GammaGammaParams, frequency: ArrayLike,
                            recency: ArrayLike, T: ArrayLike, monetary_value: ArrayLike, *, months: int = 12,
                            margin: float = 1.0, monthly_discount: float = 0.01) -> np.ndarray:
    """CLV over the next ``months`` months:

        CLV = Σ_{m=1..months} [E(t_m) - E(t_{m-1})] · S · margin / (1 + d)^m

    with E(t) the conditional expected repeat purchases in the next t (t_m = m months of 365.25/12 days, t_0 = 0),
    S the Gamma-Gamma expected spend per purchase, ``margin`` the share of revenue kept (1.0 = revenue CLV) and d
    the monthly discount rate: purchases in month m are valued at the month's end. The lifetimes package uses the
    same sum (with 30-day months)."""
    per_month = monthly_expected_purchases(transactions, months, frequency, recency, T)
    return discounted_value(per_month, expected_spend(spend, frequency, monetary_value), margin=margin,
                            monthly_discount=monthly_discount)


def median_days_to_next_purchase(params: BgNbdParams, frequency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Median waiting time (in days) to the next purchase of a member who is still active at T, under BG/NBD.

    An active member's next purchase comes after an exponential time with their rate λ (BG/NBD members drop out
    only right after a purchase), and given the history λ ~ Gamma(r + x, α + T), so the wait is Lomax:
    P(wait > s) = ((α+T)/(α+T+s))^(r+x) and its median is (α + T)(2^(1/(r+x)) - 1). The median is used because
    the mean is infinite when r + x <= 1. Pair it with p_alive: a member who has left buys never."""
    r, alpha, _a, _b = params.values()
    x, age = _arrays(frequency, T)
    return (alpha + age) * np.expm1(math.log(2.0) / (r + x)) * DAYS_PER_UNIT[params.unit]
