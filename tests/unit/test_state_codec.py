"""Stored state format: what is written to Redis reads back as the very same state."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from strategies import fold_all, histories, histories_with_outbox

from models.customer import CustomerState, Envelope, new_state
from stream.state_codec import FORMAT, decode_state, encode_state


def roundtrip(state: CustomerState) -> None:
    raw = encode_state(state)
    decoded = decode_state(raw)
    assert decoded == state
    assert encode_state(decoded) == raw


@settings(max_examples=100, deadline=None)
@given(histories())
def test_round_trip_of_folded_random_histories(envelopes: list[Envelope]) -> None:
    for state in fold_all(envelopes).values():
        roundtrip(state)


@settings(max_examples=100, deadline=None)
@given(histories_with_outbox())
def test_round_trip_with_a_non_empty_outbox(envelopes: list[Envelope]) -> None:
    state = fold_all(envelopes)["c1"]
    assert state.outbox, "the strategy guarantees c1's welcome"
    assert any(r.message is not None for r in state.outbox)
    assert all(r.offer is not None and r.offer.coupon is not None for r in state.outbox)
    roundtrip(state)


def test_round_trip_of_a_new_state() -> None:
    roundtrip(new_state("c1"))


def test_the_stored_document_carries_its_format_version_and_customer() -> None:
    doc = orjson.loads(encode_state(new_state("c1")))
    assert (doc["f"], doc["id"]) == (FORMAT, "c1")
