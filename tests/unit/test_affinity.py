"""Category affinity: decay, order independence, the category bound and the shown view."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.affinity import (
    DAY_MS,
    Affinity,
    AffinityConfig,
    add_affinity,
    affinity_at,
    affinity_scores,
    merge_affinity,
)

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
HL = 30 * DAY_MS
CFG = AffinityConfig()


def fold(adds: list[tuple[str, float, int]], config: AffinityConfig = CFG) -> Affinity:
    aff: Affinity = {}
    for category, weight, ts in adds:
        aff = add_affinity(aff, category, weight, ts, config=config)
    return aff


@pytest.mark.parametrize(
    ("adds", "expected"),
    [
        ([("shoes", 1.0, T0)], {"shoes": (1.0, T0)}),
        ([("shoes", 1.0, T0), ("shoes", 3.0, T0)], {"shoes": (4.0, T0)}),
        # a later add decays the score to its own time first
        ([("shoes", 4.0, T0), ("shoes", 1.0, T0 + HL)], {"shoes": (3.0, T0 + HL)}),
        # a late add is decayed to the reference time instead
        ([("shoes", 1.0, T0 + HL), ("shoes", 4.0, T0)], {"shoes": (3.0, T0 + HL)}),
        ([("shoes", 8.0, T0 + 2 * HL), ("shoes", 4.0, T0)], {"shoes": (9.0, T0 + 2 * HL)}),
        ([("shoes", 1.0, T0), ("bags", 5.0, T0 - 1)], {"shoes": (1.0, T0), "bags": (5.0, T0 - 1)}),
    ],
)
def test_add_affinity(
    adds: list[tuple[str, float, int]], expected: dict[str, tuple[float, int]]
) -> None:
    assert fold(adds) == expected


def test_add_does_not_mutate_its_input() -> None:
    aff = {"shoes": (1.0, T0)}
    add_affinity(aff, "shoes", 2.0, T0 + 1, config=CFG)
    add_affinity(aff, "bags", 2.0, T0, config=CFG)
    assert aff == {"shoes": (1.0, T0)}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0, {"bags": 5.0, "shoes": 1.0}),
        (T0 + HL, {"bags": 2.5, "shoes": 0.5}),
        (T0 + 3 * HL, {"bags": 0.625, "shoes": 0.125}),
        (T0 + 10 * DAY_MS, {"bags": round(5 * 2 ** (-1 / 3), 4), "shoes": 0.7937}),
        (T0 - DAY_MS, {"bags": 5.0, "shoes": 1.0}),  # before ref: never grown
        (T0 + 13 * HL, {"bags": 0.0006, "shoes": 0.0001}),  # 1 * 2**-13 = 0.000122
        (T0 + 14 * HL, {"bags": 0.0003}),  # shoes 0.000061 < 0.0001: not shown
        (T0 + 100 * HL, {}),
    ],
)
def test_affinity_at_decays_rounds_and_filters(now: int, expected: dict[str, float]) -> None:
    aff = fold([("shoes", 1.0, T0), ("bags", 5.0, T0)])
    assert affinity_at(aff, now=now, config=CFG) == expected


def test_affinity_at_ranks_by_score_then_name() -> None:
    aff = fold([("b", 1.0, T0), ("a", 1.0, T0), ("c", 2.0, T0), ("d", 0.5, T0)])
    assert list(affinity_at(aff, now=T0 + DAY_MS, config=CFG)) == ["c", "a", "b", "d"]


def test_half_life_is_configuration() -> None:
    config = AffinityConfig(half_life_days=1.0)
    aff = fold([("shoes", 8.0, T0)], config)
    assert affinity_at(aff, now=T0 + 3 * DAY_MS, config=config) == {"shoes": 1.0}


@pytest.mark.parametrize(
    ("adds", "kept"),
    [
        # the smallest score, aligned to the latest ref, is dropped
        ([("a", 5.0, T0), ("b", 1.0, T0), ("c", 3.0, T0)], {"a", "c"}),
        # the newcomer itself is dropped when it ranks last
        ([("a", 5.0, T0), ("b", 3.0, T0), ("c", 1.0, T0)], {"a", "b"}),
        # b is larger as stored but older: at c's time it has decayed to 2 < 3
        ([("a", 9.0, T0 + HL), ("b", 4.0, T0), ("c", 3.0, T0 + HL)], {"a", "c"}),
        # ties drop the name that ranks last (alphabetically last)
        ([("b", 1.0, T0), ("a", 1.0, T0), ("c", 1.0, T0)], {"a", "b"}),
        ([("c", 2.0, T0), ("b", 1.0, T0), ("a", 1.0, T0)], {"a", "c"}),
    ],
)
def test_the_last_ranked_category_is_dropped_beyond_the_limit(
    adds: list[tuple[str, float, int]], kept: set[str]
) -> None:
    assert set(fold(adds, AffinityConfig(max_categories=2))) == kept


def test_default_bound_keeps_twenty_categories() -> None:
    adds = [(f"cat{i:02d}", float(i + 1), T0) for i in range(30)]
    aff = fold(adds)
    assert len(aff) == 20
    assert set(aff) == {f"cat{i:02d}" for i in range(10, 30)}


def test_merge_aligns_refs_and_sums() -> None:
    a = fold([("shoes", 4.0, T0), ("bags", 1.0, T0)])
    b = fold([("shoes", 1.0, T0 + HL), ("hats", 2.0, T0 - 1)])
    merged = merge_affinity(a, b, config=CFG)
    assert merged == {"shoes": (3.0, T0 + HL), "bags": (1.0, T0), "hats": (2.0, T0 - 1)}
    assert merge_affinity(b, a, config=CFG) == merged
    assert merge_affinity(a, {}, config=CFG) == a
    small = AffinityConfig(max_categories=2)
    assert set(merge_affinity(a, b, config=small)) == {"shoes", "hats"}


@pytest.mark.parametrize(
    "kwargs",
    [{"half_life_days": 0.0}, {"half_life_days": -1.0}, {"max_categories": 0}],
)
def test_config_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AffinityConfig(**kwargs)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------

adds_strategy = st.lists(
    st.tuples(
        st.sampled_from(("shoes", "bags", "hats", "toys", "books")),
        st.sampled_from((1.0, 3.0, 5.0, 0.5, 2.75)),
        st.integers(min_value=T0 - 200 * DAY_MS, max_value=T0 + 200 * DAY_MS),
    ),
    max_size=30,
)


def close(x: dict[str, float], y: dict[str, float], *, rel: float, abs_: float = 0.0) -> bool:
    return x.keys() == y.keys() and all(
        math.isclose(x[k], y[k], rel_tol=rel, abs_tol=abs_) for k in x
    )


@settings(max_examples=200, deadline=None)
@given(adds=adds_strategy, data=st.data(), now_offset=st.integers(-50, 400))
def test_arrival_order_does_not_matter(
    adds: list[tuple[str, float, int]], data: st.DataObject, now_offset: int
) -> None:
    shuffled = data.draw(st.permutations(adds))
    now = T0 + now_offset * DAY_MS
    a, b = fold(adds), fold(shuffled)
    assert {cat: ref for cat, (_, ref) in a.items()} == {cat: ref for cat, (_, ref) in b.items()}
    assert close(
        affinity_scores(a, now=now, config=CFG),
        affinity_scores(b, now=now, config=CFG),
        rel=1e-9,
    )
    # the shown view is rounded to 4 decimals: equal up to that rounding
    shown_a = affinity_at(a, now=now, config=CFG)
    shown_b = affinity_at(b, now=now, config=CFG)
    common = shown_a.keys() & shown_b.keys()
    assert all(math.isclose(shown_a[k], shown_b[k], rel_tol=1e-9, abs_tol=1e-4) for k in common)


@settings(max_examples=200, deadline=None)
@given(adds=adds_strategy)
def test_state_equals_the_decayed_sum_of_all_adds(adds: list[tuple[str, float, int]]) -> None:
    now = T0 + 250 * DAY_MS  # after every add
    expected: dict[str, float] = {}
    for category, weight, ts in adds:
        expected[category] = expected.get(category, 0.0) + weight * 2 ** (-(now - ts) / HL)
    assert close(affinity_scores(fold(adds), now=now, config=CFG), expected, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(a=adds_strategy, b=adds_strategy)
def test_merge_equals_folding_both_histories(
    a: list[tuple[str, float, int]], b: list[tuple[str, float, int]]
) -> None:
    now = T0 + 250 * DAY_MS
    merged = merge_affinity(fold(a), fold(b), config=CFG)
    assert close(
        affinity_scores(merged, now=now, config=CFG),
        affinity_scores(fold(a + b), now=now, config=CFG),
        rel=1e-9,
    )
