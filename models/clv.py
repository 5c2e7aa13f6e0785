"""Customer lifetime value: BG/NBD for how many orders, Gamma-Gamma for how much each.

Data conventions (what a customer's history is reduced to, ``summarize``):

* A transaction is a purchase *day*: live placed orders on the same UTC calendar day
  (``ts // 86_400_000``) are one transaction whose value is the day's total. Orders are
  given by the caller (placed and not cancelled/refunded), with their order time.
* Only orders at or before ``now`` count (``now`` is the engine clock, i.e. the largest
  event time seen, so the order that moved the clock is included).
* The first purchase day is the trial and is not counted: ``x`` is the number of *repeat*
  purchase days. ``t_x`` (recency) is the number of days from the first purchase day to
  the last one (0 when ``x == 0``); ``T`` (age) the days from the first purchase day to
  the day of ``now``. ``time_unit`` is therefore ``"days"``.
* ``monetary`` is the mean value of the repeat transactions (the trial is left out, as
  in Fader & Hardie's CDNOW analysis); 0 when ``x == 0``.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"). While
alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``
(``alpha`` a rate, in days here); after each repeat purchase they drop out for good
with probability ``p ~ Beta(a, b)``. The likelihood of one customer (paper eq. 6) is::

    L = A1 * (A2 + [x > 0] * A3)
    A1 = Gamma(r + x) alpha^r / Gamma(r)
    A2 = B(a, b + x) / B(a, b) / (alpha + T)^(r + x)
    A3 = B(a + 1, b + x - 1) / B(a, b) / (alpha + t_x)^(r + x)

computed in log space with ``gammaln``/``betaln`` and ``log(A2 + A3)`` as a
log-sum-exp (``numpy.logaddexp``). ``P(alive)`` is eq. 13 (exactly 1 when ``x == 0``:
nobody drops out before a repeat purchase). The expected number of purchases in
the next ``t`` days is eq. 10::

    E[Y(t)] = P(alive) * (a + b + x - 1) / (a - 1)
              * (1 - ((alpha + T) / (alpha + T + t))^(r + x)
                   * 2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t)))

The Gauss hypergeometric factor is evaluated after Euler's transformation,
``(1 - z)^(r + x) 2F1(r + x, b + x; c; z) = (1 - z)^(a - 1) 2F1(a + b - 1 - r, a - 1; c; z)``
with ``c = a + b + x - 1``: the untransformed series grows without bound for large ``x``
(``c - A - B = a - 1 - r - x < 0``) while the transformed one stays near 1; where
scipy still returns a non-finite value the untransformed form is tried, and a
value neither form can give is NaN (never a silent 0). At ``a == 1`` eq. 10 is 0/0;
``a`` is then moved by 1e-6, which changes the result by about that much relatively.

Gamma-Gamma (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"). A
customer's transaction values are ``Gamma(p, nu)`` with ``nu ~ Gamma(q, v)``. Fitted on
customers with ``x > 0`` and ``monetary > 0`` only (a free order has no log). The
conditional expected average transaction value is
``(v + x * monetary) * p / (p * x + q - 1)``: a weighted mean of the population mean
``p v / (q - 1)`` and the customer's own mean. It needs ``q > 1`` (a population mean at
all), so a fit with ``q <= 1`` is reported as unavailable. The model assumes spend per
transaction is independent of purchase frequency; nothing here checks that.

Expected value over a horizon = expected purchases * expected spend per purchase, with
no discounting and no margin: it is revenue over the horizon, not profit, not a
present value.

Fitting is maximum likelihood on the log of the parameters (so they stay positive)
with L-BFGS-B from a few data-scaled starts, keeping the best; the per-customer terms
that depend only on ``x`` are computed once per distinct ``x``, so 100,000 customers
fit in about a second (``bench/clv_fit.py``). Everything here is pure: no clock, no I/O;
``now`` is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

from models.clock import format_ts

DAY_MS = 86_400_000
TIME_UNIT = "days"
#: Bounds of every log-parameter in the search: e^-12 .. e^12 (about 6e-6 .. 1.6e5).
LOG_PARAM_BOUND = 12.0
#: ``a`` this close to 1 is moved away from it in eq. 10 (0/0 at exactly 1).
A_NEAR_ONE = 1e-6

Floats = NDArray[np.float64]


class FitError(ValueError):
    """The data cannot identify the model (the message says why)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """One customer's history as the models see it (see the module docstring)."""

    x: int
    t_x: float
    T: float
    monetary: float


@dataclass(frozen=True, slots=True)
class BgNbd:
    """BG/NBD parameters; ``alpha`` is in days (a weekly alpha times 7)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True, slots=True)
class GammaGamma:
    """Gamma-Gamma parameters, in the currency unit of the order totals."""

    p: float
    q: float
    v: float


@dataclass(frozen=True, eq=False)
class SummaryBatch:
    """Many summaries as columns, for vectorised likelihoods and scoring."""

    x: Floats
    t_x: Floats
    T: Floats
    monetary: Floats

    @classmethod
    def of(cls, summaries: Iterable[Summary]) -> SummaryBatch:
        rows = [(s.x, s.t_x, s.T, s.monetary) for s in summaries]
        table = np.array(rows, dtype=np.float64).reshape(len(rows), 4)
        return cls(table[:, 0], table[:, 1], table[:, 2], table[:, 3])

    def __len__(self) -> int:
        return int(self.x.shape[0])


Summaries = Sequence[Summary] | SummaryBatch


def as_batch(summaries: Summaries) -> SummaryBatch:
    return summaries if isinstance(summaries, SummaryBatch) else SummaryBatch.of(summaries)


# --- summarising a history ---------------------------------------------------------


def summarize(transactions: Iterable[tuple[int, float]], *, now: int) -> Summary | None:
    """Reduce ``(ts_ms, value)`` orders to ``(x, t_x, T, monetary)``; None if none by ``now``.

    Orders after ``now`` are ignored; orders on one UTC day are one transaction with
    their values summed; the first day is the trial (see the module docstring).
    """
    totals: dict[int, float] = {}
    for ts, value in transactions:
        if ts <= now:
            day = ts // DAY_MS
            totals[day] = totals.get(day, 0.0) + value
    if not totals:
        return None
    days = sorted(totals)
    repeat = days[1:]
    x = len(repeat)
    monetary = sum(totals[d] for d in repeat) / x if x else 0.0
    return Summary(
        x=x, t_x=float(days[-1] - days[0]), T=float(now // DAY_MS - days[0]), monetary=monetary
    )


# --- BG/NBD ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _ByX:
    """Customers grouped by distinct ``x``: ``values[index]`` gives back each one's ``x``."""

    values: Floats
    index: NDArray[np.intp]

    @classmethod
    def of(cls, x: Floats) -> _ByX:
        values, index = np.unique(x, return_inverse=True)
        return cls(values.astype(np.float64), index.reshape(-1))


def _bgnbd_ll(params: BgNbd, batch: SummaryBatch, by_x: _ByX) -> Floats:
    """Per-customer BG/NBD log-likelihood (eq. 6 in log space)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    ux = by_x.values
    ln_beta_ab = betaln(a, b)
    ln_a1 = (gammaln(r + ux) - gammaln(r) + r * math.log(alpha))[by_x.index]
    ln_b2 = (betaln(a, b + ux) - ln_beta_ab)[by_x.index]
    ln_b3 = (betaln(a + 1.0, b + np.maximum(ux, 1.0) - 1.0) - ln_beta_ab)[by_x.index]
    x = batch.x
    ln_a2 = ln_b2 - (r + x) * np.log(alpha + batch.T)
    ln_a3 = ln_b3 - (r + x) * np.log(alpha + batch.t_x)
    return ln_a1 + np.where(x > 0, np.logaddexp(ln_a2, ln_a3), ln_a2)


def bgnbd_log_likelihood_batch(params: BgNbd, summaries: Summaries) -> Floats:
    """Each customer's BG/NBD log-likelihood (paper eq. 6), as an array."""
    batch = as_batch(summaries)
    return _bgnbd_ll(params, batch, _ByX.of(batch.x))


def bgnbd_log_likelihood(params: BgNbd, s: Summary) -> float:
    """One customer's BG/NBD log-likelihood (paper eq. 6)."""
    return float(bgnbd_log_likelihood_batch(params, [s])[0])


def _bgnbd_starts(batch: SummaryBatch) -> list[BgNbd]:
    """Starting points scaled to the data: ``r / alpha`` near the observed repeat rate."""
    rate = float(batch.x.sum()) / max(float(batch.T.sum()), 1.0)
    return [
        BgNbd(r, r / rate, a, b) for r, a, b in ((1.0, 1.0, 1.0), (0.5, 0.5, 2.0), (2.0, 2.0, 5.0))
    ]


def fit_bgnbd(summaries: Summaries) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters; ``FitError`` when nobody ever came back."""
    batch = as_batch(summaries)
    if len(batch) == 0 or not (batch.x > 0).any():
        raise FitError("no repeat purchases: the purchase rate cannot be estimated")
    by_x = _ByX.of(batch.x)

    def objective(theta: Floats) -> float:
        value = -float(_bgnbd_ll(BgNbd(*np.exp(theta)), batch, by_x).mean())
        return value if math.isfinite(value) else math.inf

    starts = [np.log([s.r, s.alpha, s.a, s.b]) for s in _bgnbd_starts(batch)]
    return BgNbd(*(float(v) for v in np.exp(_best_minimum(objective, starts, "BG/NBD"))))


def _best_minimum(objective: Any, starts: Sequence[Floats], model: str) -> Floats:
    """L-BFGS-B from each start (Nelder-Mead where it fails); the lowest finite minimum."""
    bounds = [(-LOG_PARAM_BOUND, LOG_PARAM_BOUND)] * len(starts[0])
    best: tuple[float, Floats] | None = None
    for start in starts:
        start = np.clip(start, -LOG_PARAM_BOUND, LOG_PARAM_BOUND)
        result = minimize(objective, start, method="L-BFGS-B", bounds=bounds)
        if not (result.success and math.isfinite(result.fun)):
            result = minimize(
                objective,
                start,
                method="Nelder-Mead",
                bounds=bounds,
                options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-12},
            )
        if math.isfinite(result.fun) and (best is None or result.fun < best[0]):
            best = (float(result.fun), np.asarray(result.x, dtype=np.float64))
    if best is None:
        raise FitError(f"the {model} likelihood has no finite maximum on this data")
    return best[1]


def p_alive_batch(params: BgNbd, summaries: Summaries) -> Floats:
    """P(still a customer | x, t_x, T) (paper eq. 13); exactly 1 where ``x == 0``."""
    batch = as_batch(summaries)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = batch.x
    repeat = x > 0
    # log of a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x); only used where x > 0
    log_odds_dead = (
        math.log(a)
        - np.log(b + np.where(repeat, x, 1.0) - 1.0)
        + (r + x) * (np.log(alpha + batch.T) - np.log(alpha + batch.t_x))
    )
    return np.where(repeat, expit(-log_odds_dead), 1.0)


def p_alive(params: BgNbd, s: Summary) -> float:
    """P(still a customer | x, t_x, T) (paper eq. 13); exactly 1 when ``x == 0``."""
    return float(p_alive_batch(params, [s])[0])


def _discounted_hyp(params: BgNbd, batch: SummaryBatch, t: float, a: float) -> Floats:
    """``((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))``, guarded."""
    r, alpha, b = params.r, params.alpha, params.b
    x = batch.x
    c = a + b + x - 1.0
    z = t / (alpha + batch.T + t)
    one_minus_z = (alpha + batch.T) / (alpha + batch.T + t)
    with np.errstate(all="ignore"):
        euler = one_minus_z ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        bad = ~np.isfinite(euler)
        if bad.any():
            direct = one_minus_z ** (r + x) * hyp2f1(r + x, b + x, c, z)
            euler = np.where(bad & np.isfinite(direct), direct, euler)
    return np.where(np.isfinite(euler), euler, np.nan)


def expected_purchases_batch(params: BgNbd, summaries: Summaries, t_days: float) -> Floats:
    """E[purchases in the next ``t_days`` | x, t_x, T] (paper eq. 10), NaN where unstable."""
    if t_days < 0:
        raise ValueError(f"t_days must be >= 0, got {t_days}")
    batch = as_batch(summaries)
    if t_days == 0:
        return np.zeros(len(batch))
    a = params.a
    if abs(a - 1.0) < A_NEAR_ONE:
        a = 1.0 + A_NEAR_ONE
    scale = (a + params.b + batch.x - 1.0) / (a - 1.0)
    unconditional = scale * (1.0 - _discounted_hyp(params, batch, t_days, a))
    return p_alive_batch(params, batch) * unconditional


def expected_purchases(params: BgNbd, s: Summary, t_days: float) -> float:
    """E[purchases in the next ``t_days`` | x, t_x, T] (paper eq. 10)."""
    return float(expected_purchases_batch(params, [s], t_days)[0])


# --- Gamma-Gamma ---------------------------------------------------------------------


def _spenders(batch: SummaryBatch) -> NDArray[np.bool_]:
    return (batch.x > 0) & (batch.monetary > 0)


def _gamma_gamma_ll(params: GammaGamma, x: Floats, m: Floats, by_x: _ByX) -> Floats:
    """Per-customer Gamma-Gamma log-likelihood of the mean repeat value ``m`` over ``x``."""
    p, q, v = params.p, params.q, params.v
    px_u = p * by_x.values
    ln_norm = (gammaln(px_u + q) - gammaln(px_u))[by_x.index] - gammaln(q) + q * math.log(v)
    px = p * x
    return ln_norm + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(v + m * x)


def gamma_gamma_log_likelihood_batch(params: GammaGamma, summaries: Summaries) -> Floats:
    """Each customer's Gamma-Gamma log-likelihood; NaN where ``x == 0`` or ``monetary <= 0``."""
    batch = as_batch(summaries)
    ok = _spenders(batch)
    x, m = batch.x[ok], batch.monetary[ok]
    out = np.full(len(batch), np.nan)
    out[ok] = _gamma_gamma_ll(params, x, m, _ByX.of(x))
    return out


def gamma_gamma_log_likelihood(params: GammaGamma, s: Summary) -> float:
    """One customer's Gamma-Gamma log-likelihood (Fader & Hardie 2013, eq. 4)."""
    return float(gamma_gamma_log_likelihood_batch(params, [s])[0])


def fit_gamma_gamma(summaries: Summaries) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from customers with x > 0 and spend > 0."""
    batch = as_batch(summaries)
    ok = _spenders(batch)
    if not ok.any():
        raise FitError("no repeat purchases with a value: spend cannot be estimated")
    x, m = batch.x[ok], batch.monetary[ok]
    by_x = _ByX.of(x)

    def objective(theta: Floats) -> float:
        value = -float(_gamma_gamma_ll(GammaGamma(*np.exp(theta)), x, m, by_x).mean())
        return value if math.isfinite(value) else math.inf

    mean = float(m.mean())
    starts = [
        np.log([p, q, mean * (q - 1.0) / p]) for p, q in ((1.0, 2.0), (5.0, 4.0), (2.0, 10.0))
    ]
    return GammaGamma(*(float(v) for v in np.exp(_best_minimum(objective, starts, "Gamma-Gamma"))))


def expected_spend_batch(params: GammaGamma, summaries: Summaries) -> Floats:
    """E[average transaction value | x, monetary]; ``x == 0`` gives the population mean."""
    batch = as_batch(summaries)
    p, q, v = params.p, params.q, params.v
    denominator = p * batch.x + q - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        spend = (v + batch.monetary * batch.x) * p / denominator
    return np.where(denominator > 0, spend, np.nan)


def expected_spend(params: GammaGamma, s: Summary) -> float:
    """E[average transaction value | x, monetary] (Fader & Hardie 2013, eq. 5)."""
    return float(expected_spend_batch(params, [s])[0])


def expected_value_batch(
    bgnbd: BgNbd, gg: GammaGamma, summaries: Summaries, t_days: float
) -> Floats:
    """Expected revenue in the next ``t_days``: purchases times spend, not discounted."""
    batch = as_batch(summaries)
    return expected_purchases_batch(bgnbd, batch, t_days) * expected_spend_batch(gg, batch)


def expected_value(bgnbd: BgNbd, gg: GammaGamma, s: Summary, t_days: float) -> float:
    """Expected revenue in the next ``t_days``: purchases times spend, not discounted."""
    return float(expected_value_batch(bgnbd, gg, [s], t_days)[0])


# --- the whole fit, with its fallback ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClvUnavailable:
    """No model: ``reason`` says why, in words a marketer can read."""

    reason: str


@dataclass(frozen=True, slots=True)
class ClvFit:
    """A fitted BG/NBD + Gamma-Gamma pair and the population it was fitted on."""

    bgnbd: BgNbd
    gamma_gamma: GammaGamma
    n_customers: int
    n_repeaters: int

    def score(self, summary: Summary, horizon_days: int = 90) -> dict[str, float]:
        """The profile's ``clv`` object: p_alive (4 dp), orders (3 dp), value (2 dp).

        Keys are ``p_alive``, ``expected_orders_{h}d`` and ``expected_value_{h}d`` for
        the horizon ``h`` in days: the contract's names for the default 90.
        """
        return self.score_many([summary], horizon_days)[0]

    def score_many(self, summaries: Summaries, horizon_days: int = 90) -> list[dict[str, float]]:
        """``score`` for many customers at once (vectorised)."""
        batch = as_batch(summaries)
        alive = p_alive_batch(self.bgnbd, batch)
        orders = expected_purchases_batch(self.bgnbd, batch, horizon_days)
        value = orders * expected_spend_batch(self.gamma_gamma, batch)
        return [
            {
                "p_alive": round(float(pa), 4),
                f"expected_orders_{horizon_days}d": round(float(o), 3),
                f"expected_value_{horizon_days}d": round(float(v), 2),
            }
            for pa, o, v in zip(alive, orders, value, strict=True)
        ]


def fit_clv(
    summaries: Summaries, *, min_customers: int = 50, min_repeaters: int = 20
) -> ClvFit | ClvUnavailable:
    """Fit both models, or say why not.

    Unavailable when fewer than ``min_customers`` customers have a purchase, fewer
    than ``min_repeaters`` have a repeat purchase with a value, a likelihood has no
    finite maximum, or the spend model has no population mean (``q <= 1``).
    """
    batch = as_batch(summaries)
    n = len(batch)
    if n < min_customers:
        return ClvUnavailable(
            f"too few customers: {n} with a purchase, at least {min_customers} needed"
        )
    repeaters = int(_spenders(batch).sum())
    if repeaters < min_repeaters:
        return ClvUnavailable(
            f"too few repeat customers: {repeaters} bought again, at least {min_repeaters} needed"
        )
    try:
        bgnbd = fit_bgnbd(batch)
        gg = fit_gamma_gamma(batch)
    except FitError as err:
        return ClvUnavailable(f"the model could not be fitted: {err}")
    if gg.q <= 1.0:
        return ClvUnavailable(
            f"spend is too dispersed for a finite average (Gamma-Gamma q = {gg.q:.3f} <= 1)"
        )
    return ClvFit(bgnbd, gg, n_customers=n, n_repeaters=repeaters)


def clv_document(fit: ClvFit, *, calibration_end: int, fitted_at: int) -> dict[str, Any]:
    """The ``GET /models/clv`` body (contract section 3), plus ``n_repeaters``."""
    return {
        "bgnbd": {
            "r": fit.bgnbd.r,
            "alpha": fit.bgnbd.alpha,
            "a": fit.bgnbd.a,
            "b": fit.bgnbd.b,
            "time_unit": TIME_UNIT,
        },
        "gamma_gamma": {"p": fit.gamma_gamma.p, "q": fit.gamma_gamma.q, "v": fit.gamma_gamma.v},
        "n_customers": fit.n_customers,
        "n_repeaters": fit.n_repeaters,
        "calibration_end": format_ts(calibration_end),
        "fitted_at": format_ts(fitted_at),
    }


def clv_fit_from_document(document: Mapping[str, Any]) -> ClvFit:
    """Read back a ``clv_document``; ``ValueError`` if it is not one (or not in days)."""
    try:
        bg, gg = document["bgnbd"], document["gamma_gamma"]
        if bg.get("time_unit", TIME_UNIT) != TIME_UNIT:
            raise ValueError(f"time_unit {bg['time_unit']!r} is not {TIME_UNIT!r}")
        return ClvFit(
            BgNbd(float(bg["r"]), float(bg["alpha"]), float(bg["a"]), float(bg["b"])),
            GammaGamma(float(gg["p"]), float(gg["q"]), float(gg["v"])),
            n_customers=int(document["n_customers"]),
            n_repeaters=int(document.get("n_repeaters", 0)),
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"not a CLV model document: {err!r}") from err
