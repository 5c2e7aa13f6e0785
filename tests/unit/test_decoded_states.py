"""The worker's cache of decoded states: reused only for the very bytes it was decoded from."""

from __future__ import annotations

from dataclasses import replace

from models.customer import new_state
from stream.state_codec import encode_state
from stream.store import DecodedStates


def test_the_same_bytes_give_the_same_state_object_without_decoding_again() -> None:
    cache = DecodedStates(10)
    raw = encode_state(new_state("c1"))
    first = cache.decode("c1", raw)
    assert cache.decode("c1", raw) is first


def test_other_bytes_for_the_customer_are_decoded_afresh() -> None:
    cache = DecodedStates(10)
    cache.decode("c1", encode_state(new_state("c1")))
    changed = new_state("c1")
    changed = replace(changed, profile=replace(changed.profile, last_seen=5))
    assert cache.decode("c1", encode_state(changed)) == changed


def test_the_oldest_entry_goes_when_full_and_zero_capacity_keeps_nothing() -> None:
    cache = DecodedStates(2)
    raws = {cid: encode_state(new_state(cid)) for cid in ("a", "b", "c")}
    kept = {cid: cache.decode(cid, raw) for cid, raw in raws.items()}
    assert cache.decode("c", raws["c"]) is kept["c"]
    assert cache.decode("a", raws["a"]) is not kept["a"]  # evicted, decoded again
    none = DecodedStates(0)
    assert none.decode("a", raws["a"]) is not none.decode("a", raws["a"])
