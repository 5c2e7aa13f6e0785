"""Time the CLV fit (BG/NBD + Gamma-Gamma) and scoring on simulated populations.

Usage: .venv/bin/python bench/clv_fit.py [--customers 10000 100000] [--repeats 3]

Customers are drawn from the CDNOW estimates (Fader, Hardie & Lee 2005; Fader &
Hardie 2013; alpha in days = 4.41 * 7), aged 27..39 weeks, and reduced to whole days
as ``models.clv.summarize`` does (recency and age floored to days). The time is
``fit_clv`` on a ready ``SummaryBatch`` (what a refresh does after reading the
orders), then ``ClvFit.score_many`` for everybody; building the batch from
``Summary`` objects is timed separately.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from models.clv import ClvFit, Summary, SummaryBatch, fit_clv

R, ALPHA, A, B = 0.24, 4.41 * 7, 0.79, 2.43
P, Q, V = 6.25, 3.74, 15.44


def simulate(rng: np.random.Generator, n: int) -> SummaryBatch:
    """Vectorised BG/NBD + Gamma-Gamma draws, one round of purchases at a time.

    Times are then made whole days as ``summarize`` does: differences of day indices,
    with the first purchase at a uniformly random time of its day.
    """
    T = rng.uniform(27 * 7, 39 * 7, n)
    rate = rng.gamma(R, 1 / ALPHA, n)
    dropout = rng.beta(A, B, n)
    t, x, t_x = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        t[idx] += rng.exponential(1 / rate[idx])
        bought = idx[t[idx] <= T[idx]]
        active[idx[t[idx] > T[idx]]] = False
        x[bought] += 1
        t_x[bought] = t[bought]
        active[bought[rng.random(bought.size) < dropout[bought]]] = False
    nu = rng.gamma(Q, 1 / V, n)
    repeat = x > 0
    monetary = np.zeros(n)
    monetary[repeat] = rng.gamma(P * x[repeat], 1 / (x[repeat] * nu[repeat]))  # mean of x
    time_of_day = rng.random(n)
    return SummaryBatch(x, np.floor(time_of_day + t_x), np.floor(time_of_day + T), monetary)


def run(n: int, repeats: int) -> None:
    batch = simulate(np.random.default_rng(n), n)
    summaries = [
        Summary(int(a), b, c, d)
        for a, b, c, d in zip(
            *map(list, (batch.x, batch.t_x, batch.T, batch.monetary)), strict=True
        )
    ]
    started = time.perf_counter()
    SummaryBatch.of(summaries)
    to_batch = time.perf_counter() - started
    fits, scores = [], []
    fit: ClvFit | None = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fit_clv(batch)
        fits.append(time.perf_counter() - started)
        assert isinstance(result, ClvFit), result
        fit = result
        started = time.perf_counter()
        fit.score_many(batch)
        scores.append(time.perf_counter() - started)
    assert fit is not None
    bg, gg = fit.bgnbd, fit.gamma_gamma
    print(
        f"customers={n:,} repeaters={fit.n_repeaters:,} "
        f"fit_seconds median={statistics.median(fits):.2f} max={max(fits):.2f} "
        f"score_all_seconds={statistics.median(scores):.2f} "
        f"summaries_to_batch_seconds={to_batch:.2f}"
    )
    print(
        f"  bgnbd r={bg.r:.3f} alpha={bg.alpha:.2f} a={bg.a:.3f} b={bg.b:.3f} "
        f"(truth {R} {ALPHA:.2f} {A} {B}); gamma_gamma p={gg.p:.2f} q={gg.q:.2f} "
        f"v={gg.v:.2f} (truth {P} {Q} {V})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for n in args.customers:
        run(n, args.repeats)


if __name__ == "__main__":
    main()
