"""The soak's generated history has the shapes it promises, and the reference reads it right.

``bench/soak.py`` and ``tests/integration/test_soak.py`` trust the generator to hold every
troublesome shape of issue 11 and the independent reference to refuse exactly the records
meant to be refused; this checks both on a small history, without a broker.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import orjson

from bench.soak.history import DAY_MS, FAR_FUTURE_MS, History, Shape, generate
from tests.integration import independent

NOW_MS = 1_796_000_000_000  # 2026-12-1x: after the history's end, long before 2100


@cache
def history() -> History:
    return generate(Shape(customers=400, seed=5, records_per_customer=30, far_future=4))


def test_the_same_seed_gives_the_same_records() -> None:
    again = generate(Shape(customers=400, seed=5, records_per_customer=30, far_future=4))
    assert again.records == history().records


def test_shares_of_redelivered_malformed_and_far_future_records() -> None:
    kinds = Counter(r.kind for r in history().records)
    total = len(history().records)
    assert 0.045 < kinds["redelivery"] / total < 0.055
    assert 0.0005 < kinds["malformed"] / total < 0.0015
    assert kinds["far_future"] == 4
    assert 25 < total / 400 < 35


def test_redeliveries_repeat_earlier_bytes_under_the_same_key() -> None:
    seen: set[tuple[str, bytes]] = set()
    for record in history().records:
        if record.kind == "redelivery":
            assert (record.key, record.payload) in seen
        seen.add((record.key, record.payload))


def test_orders_reach_150_lines_and_some_reversals_come_before_their_order() -> None:
    orders = [orjson.loads(r.payload) for r in history().records if r.topic == "orders"]
    assert max(len(o.get("items") or []) for o in orders if is_order(o)) == 150
    assert any(r.moved for r in history().records)


def is_order(order: dict[str, object]) -> bool:
    return isinstance(order, dict) and "total" in order


def test_quiet_days_hold_no_event_and_the_history_ends_before_its_end() -> None:
    stamps = sorted(
        independent.to_ms(orjson.loads(r.payload)["ts"])
        for r in history().records
        if r.kind == "event"
    )
    for start in history().quiet_days:
        assert not [ts for ts in stamps if start <= ts < start + DAY_MS]
    assert stamps[-1] < history().shape.end_ms


def test_the_reference_refuses_exactly_the_malformed_and_far_future_records() -> None:
    records = history().records
    reference, refused = independent.compute_raw(
        ((r.topic, r.payload) for r in records), now_ms=NOW_MS
    )
    assert {records[x.position].kind for x in refused} == {"malformed", "far_future"}
    assert len(refused) == sum(r.kind in ("malformed", "far_future") for r in records)
    assert reference.clock is not None and reference.clock < FAR_FUTURE_MS
    assert reference.merged, "no anonymous id was identified"
    assert reference.duplicates == sum(r.kind == "redelivery" for r in records)


def test_consent_at_takes_the_latest_fact_and_a_tie_revokes() -> None:
    customer = independent.Customer("c")
    independent.set_consent(customer, "email", True, 10)
    independent.set_consent(customer, "email", False, 20)
    independent.set_consent(customer, "email", True, 20)
    assert not customer.consent_at("email", 5)
    assert customer.consent_at("email", 10)
    assert not customer.consent_at("email", 20)
    assert not customer.consent_at("sms", 30)


def test_boundaries_stop_at_the_next_order_and_at_the_engine_clock() -> None:
    customer = independent.Customer("c")
    independent.apply_order(customer, {"order_id": "a", "total": 5}, 0, 0)
    independent.apply_order(customer, {"order_id": "b", "total": 5}, 100 * DAY_MS, 1)
    found = independent.boundaries(customer, until=280 * DAY_MS)
    assert [(b.segment, b.ts) for b in found] == [
        ("lifecycle:at_risk", 90 * DAY_MS),
        ("lifecycle:at_risk", 190 * DAY_MS),
        ("lifecycle:lapsed", 280 * DAY_MS),
    ]
