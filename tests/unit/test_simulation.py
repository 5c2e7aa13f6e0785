"""The shopper simulator: deterministic, contract-shaped, ordered in time and believable."""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest

from models.simulation import DAY_MS, ShopSimulator, SimulatedRecord, generate_history

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

# Written from CONTRACT.md section 1, independently of the simulator.
COMMON_FIELDS = {"event_id", "ts"}
REQUIRED_FIELDS: dict[str, set[str]] = {
    "clicks": {"customer_id", "type"},
    "orders": {"customer_id", "order_id"},
    "customers": {"customer_id"},
    "catalog": {"product_id"},
    "feedback": {"customer_id", "action"},
}
CLICK_TYPES = {
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "wishlist_add",
    "identify",
}
CLICK_TYPES_NEEDING_PRODUCT = {"product_view", "add_to_cart", "remove_from_cart", "wishlist_add"}
ORDER_STATUSES = {"placed", "cancelled", "refunded"}
FEEDBACK_ACTIONS = {
    "delivered",
    "opened",
    "clicked",
    "dismissed",
    "bounced",
    "unsubscribed",
    "complained",
}
CONSENT_CHANNELS = {"email", "sms", "push"}


@cache
def history() -> tuple[SimulatedRecord, ...]:
    """About 55k records over five days, built once for the tests that only read them."""
    records = generate_history(
        seed=7,
        start_ms=START_MS,
        days=5,
        customers=400,
        products=150,
        events_per_day=11_000,
    )
    return tuple(records)


def stepped(seed: int, horizons: list[int], **options: object) -> list[SimulatedRecord]:
    simulator = ShopSimulator(seed=seed, start_ms=START_MS, **options)  # type: ignore[arg-type]
    records = simulator.catalog()
    for horizon in horizons:
        records += simulator.step(START_MS + horizon)
    return records


def contract_problems(record: SimulatedRecord) -> list[str]:
    """Everything about ``record`` that a contract-following engine would reject."""
    value = record.value
    missing = (COMMON_FIELDS | REQUIRED_FIELDS[record.topic]) - value.keys()
    problems = [f"missing {sorted(missing)}"] if missing else []
    event_id = value.get("event_id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
        problems.append("event_id is not a 1..128 char string")
    if not isinstance(value.get("ts"), int):
        problems.append("ts is not epoch ms")
    key_field = "product_id" if record.topic == "catalog" else "customer_id"
    if record.key != value.get(key_field):
        problems.append(f"key is not the {key_field}")
    problems += TOPIC_CHECKS[record.topic](value)
    return problems


def click_problems(value: dict[str, object]) -> list[str]:
    kind = value.get("type")
    problems = [] if kind in CLICK_TYPES else [f"unknown click type {kind!r}"]
    if kind in CLICK_TYPES_NEEDING_PRODUCT and "product_id" not in value:
        problems.append(f"{kind} without product_id")
    if kind == "identify" and "anonymous_id" not in value:
        problems.append("identify without anonymous_id")
    quantity = value.get("quantity", 1)
    if not isinstance(quantity, int) or quantity < 1:
        problems.append("quantity is not an int >= 1")
    return problems


def order_problems(value: dict[str, object]) -> list[str]:
    status = value.get("status", "placed")
    if status not in ORDER_STATUSES:
        return [f"unknown status {status!r}"]
    if status != "placed":
        return []
    total = value.get("total")
    if not isinstance(total, int | float) or total < 0:
        return ["placed order without a total >= 0"]
    items = value.get("items", [])
    assert isinstance(items, list)
    expected = round(sum(item["quantity"] * item["unit_price"] for item in items), 2)
    problems = [] if total == expected else [f"total {total} != items {expected}"]
    if not 1 <= len(items) <= 3 or value.get("currency") != "EUR":
        problems.append("not 1-3 items in EUR")
    return problems


def customer_problems(value: dict[str, object]) -> list[str]:
    consent = value.get("consent", {})
    assert isinstance(consent, dict)
    if not consent.keys() <= CONSENT_CHANNELS:
        return ["unknown consent channel"]
    if not all(isinstance(flag, bool) for flag in consent.values()):
        return ["consent flags are not booleans"]
    return []


def catalog_problems(value: dict[str, object]) -> list[str]:
    flags = (value.get("in_stock"), value.get("new_arrival"))
    problems = [] if all(isinstance(flag, bool) for flag in flags) else ["flags not bool"]
    price = value.get("price")
    if not isinstance(price, float) or price <= 0:
        problems.append("price is not a positive number")
    return problems


def feedback_problems(value: dict[str, object]) -> list[str]:
    return [] if value.get("action") in FEEDBACK_ACTIONS else ["unknown feedback action"]


TOPIC_CHECKS = {
    "clicks": click_problems,
    "orders": order_problems,
    "customers": customer_problems,
    "catalog": catalog_problems,
    "feedback": feedback_problems,
}


def test_same_seed_gives_identical_records() -> None:
    horizons = [1_000, 5_000, 20_000, 40_000]
    assert stepped(42, horizons) == stepped(42, horizons)


def test_different_seeds_give_different_records_and_disjoint_event_ids() -> None:
    first, second = stepped(1, [30_000]), stepped(2, [30_000])
    assert [r.value for r in first] != [r.value for r in second]
    ids = {r.value["event_id"] for r in first}
    assert ids.isdisjoint(r.value["event_id"] for r in second)


def test_step_sizes_do_not_change_the_records() -> None:
    fine = stepped(5, list(range(250, 40_001, 250)))
    coarse = stepped(5, [40_000])
    assert fine == coarse


def test_each_step_is_in_ts_order_and_inside_its_interval() -> None:
    simulator = ShopSimulator(seed=3, start_ms=START_MS)
    previous = START_MS
    for now in range(START_MS + 100, START_MS + 60_000, 700):
        records = simulator.step(now)
        stamps = [r.value["ts"] for r in records]
        assert stamps == sorted(stamps)
        assert all(previous < ts <= now for ts in stamps)  # type: ignore[operator]
        assert simulator.now_ms == now
        previous = now


def test_time_never_runs_backwards() -> None:
    simulator = ShopSimulator(seed=3, start_ms=START_MS)
    simulator.step(START_MS + 10_000)
    assert simulator.step(START_MS + 5_000) == []
    assert simulator.now_ms == START_MS + 10_000


def test_every_record_follows_the_contract() -> None:
    problems = {r.value["event_id"]: found for r in history() if (found := contract_problems(r))}
    assert problems == {}


def test_event_ids_are_unique_across_50k_records() -> None:
    records = history()
    assert len(records) >= 50_000
    assert len({r.value["event_id"] for r in records}) == len(records)


def test_order_ids_are_unique_among_placed_orders() -> None:
    placed = [r.value["order_id"] for r in history() if r.value.get("status") == "placed"]
    assert len(set(placed)) == len(placed)


def test_history_has_the_catalogue_first_then_ts_order() -> None:
    records = history()
    catalog = [r for r in records[:150]]
    assert {r.topic for r in catalog} == {"catalog"}
    assert [r.value["product_id"] for r in catalog] == [f"p{i:04d}" for i in range(1, 151)]
    stamps = [r.value["ts"] for r in records]
    assert stamps == sorted(stamps)
    assert stamps[0] >= START_MS and stamps[-1] <= START_MS + 5 * DAY_MS  # type: ignore[operator]


def test_click_to_order_ratio_over_a_day_is_believable() -> None:
    day = [r for r in history() if r.value["ts"] <= START_MS + DAY_MS]  # type: ignore[operator]
    clicks = sum(r.topic == "clicks" for r in day)
    placed = sum(r.topic == "orders" and r.value["status"] == "placed" for r in day)
    assert 10 <= clicks / placed <= 40


def test_cancellations_and_refunds_follow_an_order_of_the_same_customer() -> None:
    placed: dict[object, object] = {}
    reversed_statuses: Counter[object] = Counter()
    for record in history():
        if record.topic != "orders":
            continue
        value = record.value
        if value["status"] == "placed":
            placed[value["order_id"]] = value["customer_id"]
        else:
            assert placed.get(value["order_id"]) == value["customer_id"]
            reversed_statuses[value["status"]] += 1
    assert reversed_statuses["cancelled"] > 0 and reversed_statuses["refunded"] > 0
    share = sum(reversed_statuses.values()) / len(placed)
    assert 0.02 <= share <= 0.09  # about 3% cancelled + 2% refunded


def test_every_customer_is_registered_early_with_email_and_consent() -> None:
    registrations: dict[object, dict[str, object]] = {}
    for record in history():
        if record.topic == "customers" and "email" in record.value:
            registrations.setdefault(record.key, record.value)
    assert sorted(registrations) == [f"c{i:05d}" for i in range(1, 401)]
    assert all(v["ts"] <= START_MS + 60_000 for v in registrations.values())  # type: ignore[operator]
    assert all(v["email"] == f"{k}@example.com" for k, v in registrations.items())
    opted_in = sum(v["consent"]["email"] for v in registrations.values())  # type: ignore[index]
    assert 0.55 <= opted_in / len(registrations) <= 0.85


def test_no_click_comes_before_the_customer_record() -> None:
    registered: set[object] = set()
    for record in history():
        if record.topic == "customers":
            registered.add(record.key)
        elif record.topic == "clicks" and str(record.key).startswith("c"):
            assert record.key in registered


def test_consent_changes_happen() -> None:
    changes = [r for r in history() if r.topic == "customers" and "email" not in r.value]
    assert changes
    assert all(set(r.value) == {"event_id", "ts", "customer_id", "consent"} for r in changes)


def test_anonymous_browsing_is_followed_by_identify() -> None:
    anonymous_clicks: Counter[object] = Counter()
    identified: set[object] = set()
    for record in history():
        if record.topic != "clicks":
            continue
        value = record.value
        if value["type"] == "identify":
            assert str(value["anonymous_id"]).startswith("a")
            assert str(value["customer_id"]).startswith("c")
            identified.add(value["anonymous_id"])
        elif str(value["customer_id"]).startswith("a"):
            assert value["anonymous_id"] == value["customer_id"]
            assert value["customer_id"] not in identified
            anonymous_clicks[value["customer_id"]] += 1
    assert identified and set(anonymous_clicks) <= identified


def test_shoppers_mostly_browse_their_favourite_categories() -> None:
    views: dict[object, Counter[object]] = {}
    for record in history():
        if record.topic == "clicks" and record.value["type"] == "product_view":
            views.setdefault(record.key, Counter())[record.value["category"]] += 1
    busy = [counts for counts in views.values() if counts.total() >= 30]
    top_two_share = [sum(n for _, n in c.most_common(2)) / c.total() for c in busy]
    assert sum(top_two_share) / len(top_two_share) > 0.6  # 10 categories: uniform would be 0.2


def test_activity_is_skewed_some_heavy_most_light() -> None:
    per_customer = Counter(r.key for r in history() if r.topic == "clicks")
    counts = sorted(per_customer.values(), reverse=True)
    top_tenth = sum(counts[: len(counts) // 10])
    assert top_tenth > 0.25 * sum(counts)


def test_default_rate_is_about_100_events_per_second() -> None:
    simulator = ShopSimulator(seed=11, start_ms=START_MS)
    simulator.step(START_MS + 60_000)  # registrations and warm-up
    records = simulator.step(START_MS + 120_000)
    assert 50 <= len(records) / 60 <= 200


def test_events_per_second_scales_the_output() -> None:
    def rate(events_per_second: float) -> float:
        simulator = ShopSimulator(
            seed=11, start_ms=START_MS, customers=100, events_per_second=events_per_second
        )
        simulator.step(START_MS + 60_000)  # sessions take a while to reach steady state
        return len(simulator.step(START_MS + 360_000)) / 300

    slow, fast = rate(8.0), rate(24.0)
    assert 6.0 <= slow <= 10.0
    assert 2.2 <= fast / slow <= 3.8


@pytest.mark.parametrize(
    "options",
    [{"customers": 0}, {"products": 0}, {"categories": ()}, {"events_per_second": 0.0}],
)
def test_nonsense_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ShopSimulator(seed=1, start_ms=START_MS, **options)  # type: ignore[arg-type]


def test_custom_categories_are_used() -> None:
    simulator = ShopSimulator(seed=1, start_ms=START_MS, products=6, categories=("tea", "cups"))
    catalog = simulator.catalog()
    assert [r.value["category"] for r in catalog] == ["tea", "cups"] * 3
    assert all(r.value["ts"] == START_MS for r in catalog)
