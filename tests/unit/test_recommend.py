"""Recommendation sources, their reasons, and the merge (priority, de-duplication, limit)."""

from __future__ import annotations

from models.associations import Association
from models.recommend import (
    BOUGHT_TOGETHER,
    NEW_ARRIVAL,
    POPULAR,
    VIEWED_NOT_BOUGHT,
    Rec,
    RecommendInputs,
    bought_together,
    merge_recs,
    new_arrivals_for,
    popular_in_category,
    recommend,
    viewed_not_bought,
)

NAMES = {"sneaker": "Urban Sneaker", "socks": "Running Socks", "laces": "Spare Laces"}


def assoc(product: str, confidence: float, lift: float, both: int = 10) -> Association:
    return Association(product, support=0.01, confidence=confidence, lift=lift, baskets=both)


def test_bought_together_keeps_the_best_anchor_and_skips_chance_and_basket() -> None:
    associations = {
        "sneaker": [assoc("socks", 0.34, 3.2), assoc("laces", 0.10, 2.0), assoc("bag", 0.5, 0.9)],
        "jacket": [assoc("socks", 0.20, 5.0), assoc("sneaker", 0.3, 2.0)],
    }
    recs = bought_together(["sneaker", "jacket"], associations, product_names=NAMES)
    assert recs == [
        Rec(
            "socks",
            "Often bought with Urban Sneaker: in 34% of its orders, 3.2 times the usual rate",
            0.34,
            BOUGHT_TOGETHER,
        ),
        Rec(
            "laces",
            "Often bought with Urban Sneaker: in 10% of its orders, 2.0 times the usual rate",
            0.10,
            BOUGHT_TOGETHER,
        ),
    ]  # "bag" has lift < 1; "sneaker" is already in the basket
    assert bought_together([], associations) == []


def test_viewed_not_bought() -> None:
    viewed = [("sneaker", 4), ("socks", 1), ("laces", 2), ("hat", 3)]
    recs = viewed_not_bought(viewed, {"hat"}, NAMES)
    assert [(r.product_id, r.score) for r in recs] == [
        ("sneaker", 1.0),
        ("laces", 0.5),
        ("socks", 0.25),
    ]
    assert recs[0].reason == "Viewed Urban Sneaker 4 times without buying it"
    assert recs[1].reason == "Viewed Spare Laces twice without buying it"
    assert recs[2].reason == "Viewed Running Socks once without buying it"
    assert all(r.source == VIEWED_NOT_BOUGHT for r in recs)
    assert viewed_not_bought([("hat", 3)], {"hat"}) == []


def test_new_arrivals_follow_affinity_then_arrival_order() -> None:
    affinity = {"shoes": 4.0, "bags": 2.0, "kids": 0.0}
    arrivals = [("n1", "bags"), ("n2", "shoes"), ("n3", "kids"), ("n4", "shoes"), ("n5", "home")]
    recs = new_arrivals_for(affinity, arrivals)
    assert [(r.product_id, r.score) for r in recs] == [("n2", 1.0), ("n4", 1.0), ("n1", 0.5)]
    assert recs[0].reason == "New in shoes, their favourite category: n2"
    assert recs[2].reason == "New in bags, a category they like: n1"
    assert new_arrivals_for({}, arrivals) == []


def test_popular_in_category() -> None:
    recs = popular_in_category("shoes", [("a", 10), ("b", 40), ("c", 40), ("d", 0)])
    assert [(r.product_id, r.score) for r in recs] == [("b", 1.0), ("c", 1.0), ("a", 0.25)]
    assert recs[0].reason == "Best seller number 1 in shoes: b"
    assert recs[2].source == POPULAR
    assert popular_in_category("shoes", []) == []


def rec(product: str, source: str) -> Rec:
    return Rec(product, f"{source}:{product}", 1.0, source)


def test_merge_priority_dedup_exclude_limit_and_cap() -> None:
    first = [rec("a", "s1"), rec("b", "s1"), rec("c", "s1")]
    second = [rec("b", "s2"), rec("d", "s2"), rec("e", "s2")]
    assert merge_recs([first, second], limit=4) == [first[0], first[1], first[2], second[1]]
    assert merge_recs([first, second], exclude={"a"}, limit=10) == [
        first[1],
        first[2],
        second[1],
        second[2],
    ]
    assert merge_recs([first, second], limit=10, max_per_source=1) == [first[0], second[0]]
    assert merge_recs([first, second], limit=0) == []


def test_recommend_combines_sources_without_repeats_or_bought_items() -> None:
    inputs = RecommendInputs(
        basket=("sneaker",),
        purchased=("hat",),
        top_viewed=(("socks", 3), ("hat", 5), ("scarf", 2)),
        affinity={"shoes": 3.0, "accessories": 1.0},
        associations={"sneaker": [assoc("socks", 0.3, 2.5), assoc("hat", 0.2, 2.0)]},
        arrivals=(("new-boot", "shoes"), ("sneaker", "shoes")),
        popularity={"shoes": [("sneaker", 90), ("loafer", 50)]},
        product_names=NAMES,
    )
    recs = recommend(inputs, limit=10)
    assert [(r.product_id, r.source) for r in recs] == [
        ("socks", BOUGHT_TOGETHER),  # also viewed: the first source's reason wins
        ("scarf", VIEWED_NOT_BOUGHT),
        ("new-boot", NEW_ARRIVAL),
        ("loafer", POPULAR),  # the top category's best sellers, minus the basket
    ]
    assert [r.product_id for r in recommend(inputs, limit=2)] == ["socks", "scarf"]
    assert recommend(inputs, exclude={"socks", "scarf"}, limit=1)[0].product_id == "new-boot"
    assert recommend(RecommendInputs()) == []
