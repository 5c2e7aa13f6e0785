"""Repurchase rhythm: day-level intervals, the population prior, shrinkage, due dates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.rhythm import (
    DAY_MS,
    Rhythm,
    due_categories,
    expected_interval,
    next_purchase_due,
    population_prior,
    purchase_intervals,
    rhythms,
)

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
DAY0 = T0 // DAY_MS * DAY_MS
HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("times", "intervals"),
    [
        ([], ()),
        ([T0], ()),
        ([T0, T0 + HOUR_MS], ()),  # one day, one occasion
        ([DAY0 + 23 * HOUR_MS, DAY0 + 25 * HOUR_MS], (1,)),  # two hours apart, two days
        ([DAY0 + 10 * DAY_MS, DAY0, DAY0 + 3 * DAY_MS], (3, 7)),  # any input order
        ([DAY0, DAY0 + 3 * DAY_MS, DAY0 + 3 * DAY_MS + HOUR_MS, DAY0 + 5 * DAY_MS], (3, 2)),
    ],
)
def test_purchase_intervals(times: list[int], intervals: tuple[int, ...]) -> None:
    assert purchase_intervals(times) == intervals


def test_population_prior_pools_intervals() -> None:
    priors = population_prior(
        {"coffee": [10, 14, 30, 6], "shoes": [200], "tea": []}, min_intervals=1
    )
    assert priors == {"coffee": (15.0, 4), "shoes": (200.0, 1)}
    assert population_prior({"coffee": [10, 14], "shoes": [200]}, min_intervals=2) == {
        "coffee": (12.0, 2)
    }


@pytest.mark.parametrize(
    ("intervals", "prior", "k", "expected"),
    [
        ([], (30.0, 500), 2.0, 30.0),  # no history: the prior
        ([10], (30.0, 500), 2.0, (2 * 30 + 10) / 3),
        ([10, 10, 10, 10, 10, 10, 10, 10], (30.0, 500), 2.0, (60 + 80) / 10),
        ([10, 20], None, 2.0, 15.0),  # no prior: own mean
        ([10, 20], (30.0, 500), 0.0, 15.0),  # k = 0: own mean
        ([], None, 2.0, None),
        ([], (30.0, 5), 0.0, None),
    ],
)
def test_expected_interval_shrinks_towards_the_prior(
    intervals: list[int], prior: tuple[float, int] | None, k: float, expected: float | None
) -> None:
    got = expected_interval(intervals, prior, k=k)
    assert got == (None if expected is None else pytest.approx(expected))


def test_expected_interval_rejects_negative_weight() -> None:
    with pytest.raises(ValueError):
        expected_interval([1], (2.0, 3), k=-1.0)


@given(
    st.lists(st.integers(1, 400), max_size=30),
    st.floats(1, 400),
    st.floats(0.1, 50),
)
def test_shrunk_interval_lies_between_prior_and_own_mean(
    intervals: list[int], prior_mean: float, k: float
) -> None:
    got = expected_interval(intervals, (prior_mean, 100), k=k)
    assert got is not None
    own = sum(intervals) / len(intervals) if intervals else prior_mean
    assert min(own, prior_mean) - 1e-9 <= got <= max(own, prior_mean) + 1e-9


def test_next_purchase_due() -> None:
    times = [DAY0 + HOUR_MS, DAY0 + 10 * DAY_MS + HOUR_MS, DAY0 + 20 * DAY_MS + 5 * HOUR_MS]
    # own intervals 10, 10; prior 40 with k = 2 -> (80 + 20) / 4 = 25 days after the last
    assert next_purchase_due(times, (40.0, 99), k=2.0) == times[-1] + 25 * DAY_MS
    assert next_purchase_due(times, None) == times[-1] + 10 * DAY_MS
    assert next_purchase_due([T0], (7.5, 10)) == T0 + 7 * DAY_MS + DAY_MS // 2
    assert next_purchase_due([T0], None) is None
    assert next_purchase_due([], (7.0, 10)) is None


def test_rhythms_and_due_categories() -> None:
    history = {
        "coffee": [DAY0, DAY0 + 14 * DAY_MS, DAY0 + 28 * DAY_MS],
        "shoes": [DAY0 + DAY_MS],
        "hats": [DAY0 + 2 * DAY_MS],  # no prior, one occasion: no estimate
        "empty": [],
    }
    priors = {"coffee": (14.0, 1000), "shoes": (180.0, 50)}
    got = rhythms(history, priors, k=2.0)
    assert got == {
        "coffee": Rhythm("coffee", DAY0 + 28 * DAY_MS, 3, 14.0, DAY0 + 42 * DAY_MS),
        "shoes": Rhythm("shoes", DAY0 + DAY_MS, 1, 180.0, DAY0 + 181 * DAY_MS),
        "hats": Rhythm("hats", DAY0 + 2 * DAY_MS, 1, None, None),
    }
    assert due_categories(got, now=DAY0 + 41 * DAY_MS) == []
    assert due_categories(got, now=DAY0 + 42 * DAY_MS) == [got["coffee"]]
    assert due_categories(got, now=DAY0 + 400 * DAY_MS) == [got["coffee"], got["shoes"]]
