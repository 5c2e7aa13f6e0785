"""Stored state format: what is written to Redis reads back as the very same state."""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import CONFIG, fold_all, histories, histories_with_outbox

from models.customer import AnyEvent, CustomerState, Envelope, new_state, step
from models.events import (
    Click,
    CustomerUpdate,
    EraseRequest,
    LifecycleTick,
    MergeOut,
    Order,
    OrderItem,
    RfmUpdate,
)
from models.outputs import CampaignResult, Forward, Internal, Output, Tombstone
from models.profile import Profile
from models.rfm import make_rfm
from stream.state_codec import (
    FORMAT,
    StateFormatError,
    decode_state,
    encode_state,
    profile_from_plain,
    profile_from_untrusted,
    profile_to_plain,
    state_to_plain,
)


def roundtrip(state: CustomerState) -> None:
    raw = encode_state(state)
    decoded = decode_state(raw)
    assert decoded == state
    assert encode_state(decoded) == raw


@settings(max_examples=100, deadline=None)
@given(histories(erase=True))
def test_round_trip_of_folded_random_histories(envelopes: list[Envelope]) -> None:
    for state in fold_all(envelopes).values():
        roundtrip(state)


@settings(max_examples=100, deadline=None)
@given(histories_with_outbox())
def test_round_trip_with_a_non_empty_outbox(envelopes: list[Envelope]) -> None:
    state = fold_all(envelopes)["c1"]
    results = [o for o in state.outbox if isinstance(o, CampaignResult)]
    assert results, "the strategy guarantees c1's welcome"
    (welcome, *_) = (r for r in results if r.decision.campaign == "welcome")
    assert welcome.decision.outcome == "sent" and welcome.message is not None
    assert welcome.offer is not None and welcome.offer.coupon is not None
    roundtrip(state)


def test_round_trip_of_a_new_state() -> None:
    roundtrip(new_state("c1"))


def test_the_stored_document_carries_its_format_version_and_customer() -> None:
    raw = encode_state(new_state("c1"))
    assert raw[:1] == b"\x03"
    doc = state_to_plain(decode_state(raw))
    assert (doc["f"], doc["p"]["id"]) == (FORMAT, "c1")


def typical(cid: str) -> CustomerState:
    """A registered shopper who browsed a dozen products and ordered once."""
    t0 = 1_795_341_600_000
    events: list[AnyEvent] = [
        CustomerUpdate(
            "u1",
            t0,
            cid,
            email=f"{cid}@example.com",
            timezone="Europe/Berlin",
            attributes=(("city", "Berlin"),),
            consent=(("email", True), ("sms", False)),
        ),
        *(
            Click(f"v{i}", t0 + i * 60_000, cid, "product_view", f"sku-{i % 12}", "shoes")
            for i in range(20)
        ),
        Order("o1", t0 + 3_600_000, cid, "ord-1", total=59.0, items=(OrderItem("sku-3"),)),
    ]
    return run(cid, events)


def test_a_typical_state_is_stored_in_a_third_of_its_json() -> None:
    state = typical("c-typical")
    plain = orjson.dumps(state_to_plain(state))
    assert len(encode_state(state)) * 3 <= len(plain)


def test_a_format_2_value_is_still_read() -> None:
    state = typical("c-old")
    format_2 = orjson.dumps({**state_to_plain(state), "f": 2})
    assert decode_state(format_2) == state


def test_an_unknown_format_says_so() -> None:
    with pytest.raises(StateFormatError, match="unknown customer state format"):
        decode_state(b"\x07garbage")


# --- every output kind, merged and erased states ------------------------------------------

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
HOUR_MS = 3_600_000


def run(cid: str, events: list[AnyEvent], state: CustomerState | None = None) -> CustomerState:
    state = state or new_state(cid)
    for offset, event in enumerate(events):
        state = step(state, event, config=CONFIG, source=f"{cid}/0", offset=offset).state
    return state


def rich(cid: str, anonymous_id: str | None = None) -> CustomerState:
    """A customer with a bit of everything: contact, consent, orders, windows, affinity, rfm."""
    events: list[AnyEvent] = [
        CustomerUpdate(
            f"{cid}-u1",
            T0,
            cid,
            email="ann@example.com",
            timezone="Europe/Oslo",
            attributes=(("age", 31), ("vip", True), ("score", 0.5), ("city", None)),
            consent=(("email", True), ("sms", False)),
        ),
        Click(f"{cid}-k1", T0 + 1, cid, "product_view", product_id="p1", category="shoes"),
        Click(
            f"{cid}-k2", T0 + 2, cid, "add_to_cart", product_id="p2", category="bags", quantity=2
        ),
        Order(
            f"{cid}-o1",
            T0 + HOUR_MS,
            cid,
            "o1",
            total=312.5,
            items=(OrderItem("p1", "shoes", 1, 12.5), OrderItem("p3", "hats", 2, 150.0)),
        ),
        Order(f"{cid}-o2", T0 + 2 * HOUR_MS, cid, "o2", total=20.0, items=(OrderItem("p4"),)),
        Order(f"{cid}-o2x", T0 + 3 * HOUR_MS, cid, "o2", status="refunded"),
        Order(f"{cid}-o3x", T0 + 3 * HOUR_MS, cid, "o3", status="cancelled"),
        RfmUpdate(f"{cid}-r1", T0 + 4 * HOUR_MS, cid, 4, 2, 5, make_rfm(4, 2, 5).segment),
        LifecycleTick(f"{cid}-t1", T0 + 91 * 24 * HOUR_MS, cid),
    ]
    if anonymous_id is not None:
        events.append(Click(f"{cid}-id", T0 + 5, cid, "identify", anonymous_id=anonymous_id))
    return run(cid, events)


def every_output_kind() -> CustomerState:
    known = rich("c1", anonymous_id="anon-1")
    anon = rich("anon-1")
    handed = step(anon, MergeOut("mo", T0 + 6, "anon-1", "c1"), config=CONFIG)
    forwarded = step(
        handed.state,
        Click("late", T0 + 7, "anon-1", "page_view"),
        config=CONFIG,
        topic="clicks",
        raw=bytes(range(256)),
    )
    gone = step(known, EraseRequest("x1", T0 + 8, "c1"), config=CONFIG).state
    # No consent: a suppressed spend ladder (a new tier), neither offer nor message.
    suppressed = run("c1", [Order("c1-o9", T0, "c1", "o9", total=300.0)])
    outbox = (*known.outbox, *suppressed.outbox, *handed.outputs, *forwarded.outputs, *gone.outbox)
    return replace(known, outbox=outbox)


def test_round_trip_of_an_outbox_with_every_output_kind() -> None:
    state = every_output_kind()
    kinds = {type(o).__name__ for o in state.outbox}
    assert kinds == {kind.__name__ for kind in get_args(Output)}
    internal = {o.kind for o in state.outbox if isinstance(o, Internal)}
    assert internal == {"merge_out", "merge_in", "erase"}
    (merge_in,) = (o for o in state.outbox if isinstance(o, Internal) and o.kind == "merge_in")
    carried = dict(merge_in.body)["profile"]
    assert isinstance(carried, Profile)
    assert carried.windows and carried.affinity and carried.rfm and carried.order_facts
    campaign_results = [o for o in state.outbox if isinstance(o, CampaignResult)]
    assert any(r.offer is None and r.message is None for r in campaign_results)
    assert any(r.offer is not None and r.message is not None for r in campaign_results)
    assert {r.decision.outcome for r in campaign_results} >= {"sent", "suppressed"}
    roundtrip(state)


def test_round_trip_of_a_rich_profile_and_of_a_forwarding_address() -> None:
    state = rich("c1", anonymous_id="anon-1")
    assert state.profile.rfm is not None and state.profile.aliases == ("anon-1",)
    rfm = f"rfm:{make_rfm(4, 2, 5).segment}"
    assert state.profile.segments == {"lifecycle:at_risk", "tier:silver", rfm}
    roundtrip(state)
    assert profile_from_plain(profile_to_plain(state.profile)) == state.profile
    handed = step(rich("anon-1"), MergeOut("mo", T0 + 6, "anon-1", "c1"), config=CONFIG).state
    assert handed.profile.merged_into == "c1"
    roundtrip(handed)


def test_round_trip_of_an_erased_state() -> None:
    gone = step(
        rich("c1", anonymous_id="anon-1"),
        CustomerUpdate("x1", T0 + 8, "c1", erase=True),
        config=CONFIG,
    ).state
    assert gone.erased and gone.outbox
    assert any(isinstance(o, Tombstone) for o in gone.outbox)
    roundtrip(gone)
    assert decode_state(encode_state(gone)).erased


@settings(max_examples=50, deadline=None)
@given(histories(erase=True), st.binary(max_size=64), st.text(max_size=12))
def test_round_trip_of_random_states_carrying_profiles_and_bytes(
    envelopes: list[Envelope], raw: bytes, topic: str
) -> None:
    for cid, state in fold_all(envelopes).items():
        extra = (
            Internal(
                "merge_in",
                "k",
                f"merge-in:{cid}:k",
                T0,
                (("from", cid), ("profile", state.profile)),
            ),
            Forward(topic, "k", raw),
            Tombstone("segments", cid),
        )
        roundtrip(replace(state, outbox=(*state.outbox, *extra)))
        decoded = decode_state(encode_state(replace(state, outbox=extra)))
        assert decoded.outbox[1] == Forward(topic, "k", raw)


# --- profiles from records (merge_in): checked, never trusted -----------------------------


def plain(profile: Profile) -> object:
    """The profile as a record carries it: JSON, read back."""
    return orjson.loads(orjson.dumps(profile_to_plain(profile)))


@settings(max_examples=100, deadline=None)
@given(histories(erase=True))
def test_every_profile_the_engine_writes_passes_the_untrusted_check(
    envelopes: list[Envelope],
) -> None:
    for state in fold_all(envelopes).values():
        assert profile_from_untrusted(plain(state.profile)) == state.profile


def test_the_profiles_with_every_output_kind_pass_the_untrusted_check() -> None:
    state = every_output_kind()
    assert profile_from_untrusted(plain(state.profile)) == state.profile
    for output in state.outbox:
        if isinstance(output, Internal) and output.kind == "merge_in":
            carried = dict(output.body)["profile"]
            assert isinstance(carried, Profile)
            assert profile_from_untrusted(plain(carried)) == carried


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=16,
)
PROFILE_KEYS = sorted(profile_to_plain(Profile("c1")))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_untrusted_check_raises_only_state_format_error_on_any_json(doc: object) -> None:
    with pytest.raises(StateFormatError):
        profile_from_untrusted(doc)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(PROFILE_KEYS), json_values)
def test_untrusted_check_with_one_field_arbitrary_raises_only_state_format_error(
    key: str, value: object
) -> None:
    doc = plain(rich("c1").profile)
    assert isinstance(doc, dict)
    try:
        profile = profile_from_untrusted({**doc, key: value})
    except StateFormatError:
        return
    encode_state(CustomerState(profile=profile))  # what is accepted can be stored


def test_the_crash_of_issue_11_is_a_state_format_error() -> None:
    """``'list' object has no attribute 'items'`` at ``profile_from_plain``, as an error."""
    doc = plain(Profile("c1"))
    assert isinstance(doc, dict)
    with pytest.raises(StateFormatError, match="does not decode"):
        profile_from_untrusted({**doc, "o": [["o1", ["placed", 1.0, T0, [], []]]]})
