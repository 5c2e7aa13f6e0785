"""Basket associations: streaming counts equal a brute-force count over the live baskets."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.associations import (
    Association,
    AssociationCounts,
    Delta,
    apply_basket,
    associations_for,
    basket_delta,
    combine_deltas,
    prune,
    prune_partners,
)

# --- deltas ------------------------------------------------------------------------------


def test_basket_delta_counts_each_product_once_and_sorts_pairs() -> None:
    delta = basket_delta(["b", "a", "b", "c"], +1)
    assert delta == Delta(
        baskets=1,
        items={"a": 1, "b": 1, "c": 1},
        pairs={("a", "b"): 1, ("a", "c"): 1, ("b", "c"): 1},
    )
    assert basket_delta(["b", "a"], -1) == Delta(-1, {"a": -1, "b": -1}, {("a", "b"): -1})


def test_an_order_without_items_is_not_a_basket() -> None:
    assert basket_delta([], +1).is_empty()


@pytest.mark.parametrize("sign", [0, 2, -2])
def test_basket_delta_rejects_other_signs(sign: int) -> None:
    with pytest.raises(ValueError):
        basket_delta(["a"], sign)


def test_combine_deltas_sums_and_drops_what_cancels_out() -> None:
    combined = combine_deltas(
        [basket_delta(["a", "b"], 1), basket_delta(["a", "c"], 1), basket_delta(["a", "b"], -1)]
    )
    assert combined == Delta(1, {"a": 1, "c": 1}, {("a", "c"): 1})
    assert combine_deltas([]).is_empty()


# --- the reference: brute force over the live baskets ------------------------------------


def brute_force(baskets: Sequence[frozenset[str]], product: str) -> list[Association]:
    """Contract section 3 straight from a list of live baskets."""
    n = len(baskets)
    this = sum(1 for b in baskets if product in b)
    out = []
    for other in sorted(set().union(*baskets) - {product}) if baskets else []:
        both = sum(1 for b in baskets if product in b and other in b)
        if both == 0 or this == 0:
            continue
        count_other = sum(1 for b in baskets if other in b)
        confidence = both / this
        out.append(Association(other, both / n, confidence, confidence / (count_other / n), both))
    return out


def best_first(found: list[Association], *, min_count: int, top_k: int) -> list[Association]:
    kept = [a for a in found if a.baskets >= min_count]
    kept.sort(key=lambda a: (-a.lift, -a.confidence, -a.baskets, a.product_id))
    return kept[:top_k]


PRODUCTS = [f"p{i:02d}" for i in range(12)]

# An order: its items (with repeats, as quantities would give), whether it is later
# cancelled/refunded, and whether its placement arrives twice (the caller's dedup
# must keep the second one out; it is modelled here by applying it only once).
orders_strategy = st.lists(
    st.tuples(
        st.lists(st.sampled_from(PRODUCTS), min_size=0, max_size=6),
        st.booleans(),
    ),
    min_size=0,
    max_size=40,
)


def stream_counts(orders: list[tuple[list[str], bool]], rng: random.Random) -> AssociationCounts:
    """Placements in order, each cancellation at a random later point."""
    events: list[tuple[int, list[str], int]] = []
    for position, (items, cancelled) in enumerate(orders):
        events.append((position * 2, items, +1))
        if cancelled:
            events.append((rng.randint(position * 2 + 1, 2 * len(orders)), items, -1))
    events.sort(key=lambda e: e[0])
    counts = AssociationCounts()
    for _, items, sign in events:
        counts = apply_basket(counts, basket_delta(items, sign))
    return counts


@settings(max_examples=200, deadline=None)
@given(orders_strategy, st.integers(0, 2**32), st.integers(1, 3), st.integers(1, 8))
def test_streaming_counts_equal_brute_force(
    orders: list[tuple[list[str], bool]], seed: int, min_count: int, top_k: int
) -> None:
    counts = stream_counts(orders, random.Random(seed))
    live = [frozenset(items) for items, cancelled in orders if not cancelled and items]
    assert counts.baskets == len(live)
    for product in PRODUCTS:
        got = associations_for(
            product,
            item_counts=counts.items,
            pair_counts=counts.partners.get(product, {}),
            baskets=counts.baskets,
            min_count=min_count,
            top_k=top_k,
        )
        expected = best_first(brute_force(live, product), min_count=min_count, top_k=top_k)
        assert got == expected  # exact float equality: same counts, same formula


def test_large_random_stream_equals_brute_force() -> None:
    rng = random.Random(20261122)
    catalogue = [f"sku{i:03d}" for i in range(60)]
    weights = [1 / (i + 1) for i in range(len(catalogue))]  # Zipf-like popularity
    orders = [
        (rng.choices(catalogue, weights, k=rng.randint(1, 8)), rng.random() < 0.1)
        for _ in range(3000)
    ]
    counts = stream_counts(orders, rng)
    live = [frozenset(items) for items, cancelled in orders if not cancelled]
    for product in catalogue[::7]:
        got = associations_for(
            product,
            item_counts=counts.items,
            pair_counts=counts.partners.get(product, {}),
            baskets=counts.baskets,
            min_count=5,
            top_k=10,
        )
        assert got == best_first(brute_force(live, product), min_count=5, top_k=10)
        assert got, "the stream should give every sampled product some partners"


@given(orders_strategy, st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(
    orders: list[tuple[list[str], bool]], shuffler: random.Random
) -> None:
    deltas = [basket_delta(items, +1) for items, _ in orders]
    deltas += [basket_delta(items, -1) for items, cancelled in orders if cancelled]
    shuffled = list(deltas)
    shuffler.shuffle(shuffled)
    assert combine_deltas(deltas) == combine_deltas(shuffled)


def test_contract_measures_on_a_hand_example() -> None:
    # 4 baskets: {a,b}, {a,b,c}, {a}, {c}; for a: b in 2 of a's 3 baskets, b in 2 of 4.
    counts = AssociationCounts()
    for basket in (["a", "b"], ["a", "b", "c", "b"], ["a"], ["c"]):
        counts = apply_basket(counts, basket_delta(basket, +1))
    got = associations_for(
        "a",
        item_counts=counts.items,
        pair_counts=counts.partners["a"],
        baskets=counts.baskets,
        min_count=1,
        top_k=5,
    )
    assert got == [
        Association("b", support=2 / 4, confidence=2 / 3, lift=(2 / 3) / (2 / 4), baskets=2),
        Association("c", support=1 / 4, confidence=1 / 3, lift=(1 / 3) / (2 / 4), baskets=1),
    ]


def test_unknown_or_emptied_products_have_no_associations() -> None:
    counts = apply_basket(AssociationCounts(), basket_delta(["a", "b"], +1))
    counts = apply_basket(counts, basket_delta(["a", "b"], -1))
    kwargs = {"item_counts": counts.items, "baskets": counts.baskets, "min_count": 1, "top_k": 5}
    assert associations_for("a", pair_counts=counts.partners["a"], **kwargs) == []
    assert associations_for("zzz", pair_counts={}, **kwargs) == []


# --- pruning ---------------------------------------------------------------------------------


def test_prune_partners_keeps_the_largest_counts_ties_to_the_smaller_id() -> None:
    counts = {"d": 5, "a": 2, "c": 2, "b": 2, "e": 0, "f": -1, "g": 9}
    assert prune_partners(counts, keep=3) == {"g": 9, "d": 5, "a": 2}
    assert prune_partners(counts, keep=0) == {}
    assert prune_partners(counts, keep=100) == {"g": 9, "d": 5, "a": 2, "b": 2, "c": 2}
    with pytest.raises(ValueError):
        prune_partners(counts, keep=-1)


def test_pruning_effect_is_as_documented() -> None:
    """Never-dropped partners are exact; re-admitted ones are at most the truth."""
    rng = random.Random(7)
    catalogue = [f"sku{i:02d}" for i in range(40)]
    weights = [1 / (i + 1) ** 0.8 for i in range(len(catalogue))]
    orders = [
        (rng.choices(catalogue, weights, k=rng.randint(2, 6)), rng.random() < 0.1)
        for _ in range(4000)
    ]
    keep = 8
    exact = AssociationCounts()
    pruned = AssociationCounts()
    ever_dropped: set[tuple[str, str]] = set()
    cancels: list[list[str]] = []
    for i, (items, cancelled) in enumerate(orders):
        deltas = [basket_delta(items, +1)]
        if cancelled:
            cancels.append(items)
        if cancels and rng.random() < 0.3:
            deltas.append(basket_delta(cancels.pop(0), -1))
        for delta in deltas:
            exact = apply_basket(exact, delta)
            pruned = apply_basket(pruned, delta)
        if i % 200 == 199:  # a periodic prune
            before = pruned
            pruned = prune(pruned, keep=keep)
            for product, partners in before.partners.items():
                kept = pruned.partners.get(product, {})
                ever_dropped |= {(product, o) for o in partners if o not in kept}
    assert pruned.items == exact.items and pruned.baskets == exact.baskets
    for product, partners in pruned.partners.items():
        for other, count in partners.items():
            true = exact.partners[product][other]
            if (product, other) in ever_dropped:
                assert count <= true
            else:
                assert count == true
    assert ever_dropped, "the scenario should exercise dropping"
    assert all(len(p) <= keep for p in prune(pruned, keep=keep).partners.values())
