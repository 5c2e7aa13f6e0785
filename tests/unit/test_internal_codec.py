"""The ``internal`` topic's decoder: what Rapport writes reads back, anything else is rejected,
nothing raises, and whatever is accepted can be folded and stored without raising (issue 11,
defect 10: one malformed record crash-looped the worker)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import CONFIG, T0
from test_state_codec import rich

from models.clock import format_ts
from models.customer import CampaignTrigger, CustomerState, Envelope, MergeIn, fold
from models.events import (
    Click,
    EraseRequest,
    LifecycleTick,
    MergeOut,
    Rejected,
    RfmUpdate,
)
from models.outputs import Internal
from models.view import ViewConfig, profile_view
from stream.internal_codec import MAX_INTERNAL_BYTES, parse_internal
from stream.records import internal_record, output_records
from stream.state_codec import encode_state

HOUR_MS = 3_600_000
LATEST = T0 + 1000 * 24 * HOUR_MS
EVENT_TYPES = (LifecycleTick, MergeOut, MergeIn, RfmUpdate, EraseRequest, CampaignTrigger)


def with_cart(cid: str, anonymous_id: str | None = None) -> CustomerState:
    """``rich`` plus an item left in the cart: a pending (delayed) campaign trigger."""
    state = rich(cid, anonymous_id)
    at = (state.profile.clock or T0) + HOUR_MS  # after rich's last tick, so windows hold it
    click = Click(f"{cid}-cart", at, cid, "add_to_cart", "p9", "shoes")
    return fold(state, [Envelope(click, source=f"{cid}/0", offset=99)], config=CONFIG).state


ANON = with_cart("anon-1")
KNOWN = with_cart("c1", anonymous_id="anon-1")
HANDED_AT = (ANON.profile.clock or T0) + HOUR_MS

# One record per kind, as the engine writes them.
RECORDS: dict[str, Internal] = {
    "tick": Internal("tick", "c1", f"tick:c1:{T0}:1", T0),
    "erase": Internal("erase", "c1", f"erase:c1:{T0}", T0),
    "merge_out": Internal("merge_out", "anon-1", "merge-out:anon-1:c1", T0, (("into", "c1"),)),
    "merge_in": Internal(
        "merge_in",
        "c1",
        "merge-in:anon-1:c1",
        HANDED_AT,
        (("from", "anon-1"), ("profile", ANON.profile)),
    ),
    "rfm": Internal(
        "rfm",
        "c1",
        f"rfm:c1:{T0}:425",
        T0,
        (("r", 4), ("f", 2), ("m", 5), ("segment", "loyal_customers")),
    ),
    "campaign": Internal(
        "campaign",
        "c1",
        "campaign:price_drop:e9:c1",
        T0,
        (
            (
                "context",
                (
                    ("event", "price_drop"),
                    ("product_id", "p1"),
                    ("category", "shoes"),
                    ("price", 9.5),
                    ("previous_price", 12.0),
                    ("name", None),
                ),
            ),
            ("campaign", "price_drop"),
        ),
    ),
}


def raw_of(kind: str) -> bytes:
    value = internal_record(RECORDS[kind]).value
    assert value is not None
    return value


def doc_of(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(raw_of(kind))
    return loaded


def assert_safe_to_apply(event: object) -> None:
    """An accepted record folds, encodes, publishes and renders without raising."""
    assert not isinstance(event, Rejected)
    base = KNOWN if event.customer_id == "c1" else ANON  # type: ignore[attr-defined]
    envelope = Envelope(event, source="internal/0", offset=10_000, topic="internal")  # type: ignore[arg-type]
    state = fold(base, [envelope], config=CONFIG).state
    encode_state(state)
    for output in state.outbox:
        output_records(output)
    profile = state.profile
    profile_view(profile, now=profile.clock or 0, rfm=profile.rfm, config=ViewConfig())
    format_ts(profile.clock)


# --------------------------------------------------------------------------- what the engine writes


def test_every_kind_the_engine_writes_reads_back() -> None:
    expected = {
        "tick": LifecycleTick(f"tick:c1:{T0}:1", T0, "c1"),
        "erase": EraseRequest(f"erase:c1:{T0}", T0, "c1"),
        "merge_out": MergeOut("merge-out:anon-1:c1", T0, "anon-1", "c1"),
        "merge_in": MergeIn("merge-in:anon-1:c1", HANDED_AT, "c1", "anon-1", ANON.profile),
        "rfm": RfmUpdate(f"rfm:c1:{T0}:425", T0, "c1", 4, 2, 5, "loyal_customers"),
        "campaign": CampaignTrigger(
            "campaign:price_drop:e9:c1",
            T0,
            "c1",
            "price_drop",
            (
                ("event", "price_drop"),
                ("product_id", "p1"),
                ("category", "shoes"),
                ("price", 9.5),
                ("previous_price", 12.0),
                ("name", None),
            ),
        ),
    }
    assert set(expected) == set(RECORDS)
    for kind, event in expected.items():
        assert parse_internal(raw_of(kind), latest_ms=LATEST) == event, kind
        assert_safe_to_apply(event)


def test_the_handed_over_profile_has_every_part_worth_checking() -> None:
    profile = ANON.profile
    assert profile.pending and profile.order_facts and profile.windows and profile.rfm
    assert profile.offers and profile.exposures and profile.cart_lines and profile.consent


# --------------------------------------------------------------------------- defect 10


def test_a_merge_in_whose_orders_are_a_list_is_rejected_not_raised() -> None:
    """The record of issue 11: ``AttributeError: 'list' object has no attribute 'items'``."""
    doc = doc_of("merge_in")
    doc["profile"]["o"] = [["o1", ["placed", 10.0, T0, [], []]]]
    result = parse_internal(orjson.dumps(doc))
    assert isinstance(result, Rejected)
    assert result.code == "bad_value"
    assert "profile" in result.reason


@pytest.mark.parametrize(
    ("kind", "change", "words"),
    [
        ("tick", {"kind": "tock"}, "unknown kind"),
        ("tick", {"kind": ["tick"]}, "unknown kind"),
        ("tick", {"ts": "2026-11-22T10:00:00Z"}, "'ts'"),
        ("tick", {"ts": 2**64 - 1}, "'ts'"),
        ("tick", {"ts": -1}, "'ts'"),
        ("tick", {"ts": True}, "'ts'"),
        ("tick", {"customer_id": ""}, "'customer_id'"),
        ("tick", {"customer_id": 7}, "'customer_id'"),
        ("tick", {"event_id": None}, "'event_id'"),
        ("merge_out", {"into": ["c1"]}, "'into'"),
        ("rfm", {"r": 9}, "'r'"),
        ("rfm", {"m": 2.5}, "'m'"),
        ("rfm", {"segment": {}}, "'segment'"),
        ("campaign", {"context": {"a": 1}}, "'context'"),
        ("campaign", {"context": [["products", 5]]}, "products"),
        ("campaign", {"context": [["products", [["p1"]]]]}, "products"),
        ("campaign", {"context": [["price", {"x": 1}]]}, "context"),
        ("campaign", {"context": [[1, 2]]}, "'context'"),
        ("merge_in", {"profile": None}, "profile"),
        ("merge_in", {"profile": []}, "profile"),
        ("merge_in", {"from": None}, "'from'"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(
    kind: str, change: dict[str, Any], words: str
) -> None:
    result = parse_internal(orjson.dumps({**doc_of(kind), **change}), latest_ms=LATEST)
    assert isinstance(result, Rejected), result
    assert words in result.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ck", "late"),  # the clock a string: every later max() would raise
        ("ck", 10**18),  # beyond any time that formats
        ("sg", "a-string"),
        ("sg", [["nested"]]),
        ("at", {"deep": [[1]]}),  # attributes are flat scalars
        ("rf", [9, 9, 9]),
        ("rf", [1, 2]),
        ("w", {"views": {"fortnight": [[0, 1]]}}),
        ("v", {"p1": [1]}),
        ("v", {"p1": [1.5, T0]}),
        ("c", {"p1": [[T0, "two"]]}),
        ("k", {"email": [1, T0]}),
        ("pe", [{"c": "x"}]),
        ("of", [{"offer_id": 1}]),
        ("ex", {"welcome": ["treatment"]}),
        ("o", {"o1": ["placed", 1e300, T0, [], []]}),  # two would sum to infinity
        ("o", {"o1": ["placed", "10", T0, [], []]}),
    ],
)
def test_a_handed_over_profile_of_the_wrong_shape_is_rejected(field: str, value: object) -> None:
    doc = doc_of("merge_in")
    doc["profile"][field] = value
    result = parse_internal(orjson.dumps(doc))
    assert isinstance(result, Rejected), result


def test_a_profile_from_the_future_is_rejected() -> None:
    doc = doc_of("merge_in")
    doc["profile"]["ck"] = LATEST + 1
    assert isinstance(parse_internal(orjson.dumps(doc), latest_ms=LATEST), Rejected)
    assert isinstance(parse_internal(orjson.dumps(doc), latest_ms=LATEST + 1), MergeIn)


def test_a_record_from_the_future_is_rejected() -> None:
    result = parse_internal(raw_of("tick"), latest_ms=T0 - 1)
    assert isinstance(result, Rejected)
    assert "later than the latest accepted" in result.reason


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"[]",
        b"null",
        b'"tick"',
        b"\xff\xfe",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"kind": "tick", "ts": NaN}',
        b"{" * 5000,
        b"x" * (MAX_INTERNAL_BYTES + 1),
    ],
    ids=["none", "empty", "array", "null", "string", "not-utf8", "deep", "nan", "open", "huge"],
)
def test_garbage_is_rejected(raw: bytes | None) -> None:
    assert isinstance(parse_internal(raw), Rejected)


# --------------------------------------------------------------------------- never raises

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: object, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every place in a JSON document: its object keys and array positions, depth first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(doc: dict[str, Any], path: tuple[str | int, ...], value: object) -> object:
    if not path:
        return value
    out = copy.deepcopy(doc)
    parent: Any = out
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return out


PLACES = [(kind, path) for kind in RECORDS for path in paths(doc_of(kind))]


def test_the_mutation_places_reach_deep_into_the_profile() -> None:
    assert len(PLACES) > 200
    assert max(len(path) for _, path in PLACES) >= 6


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert isinstance(parse_internal(raw), (Rejected, *EVENT_TYPES))


@settings(max_examples=300)
@given(json_values)
def test_never_raises_on_arbitrary_json(value: object) -> None:
    result = parse_internal(orjson.dumps(value))
    assert isinstance(result, Rejected)  # a bare value is never a whole internal record


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PLACES), json_values)
def test_a_record_with_any_one_place_changed_is_rejected_or_safe_to_apply(
    place: tuple[str, tuple[str | int, ...]], value: object
) -> None:
    kind, path = place
    raw = orjson.dumps(replaced(doc_of(kind), path, value))
    result = parse_internal(raw, latest_ms=LATEST)
    if not isinstance(result, Rejected):
        assert_safe_to_apply(result)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PLACES), st.sampled_from([[], {}, "", 0, -1, 2**63, 1.5e308, None, True]))
def test_edge_values_anywhere_are_rejected_or_safe_to_apply(
    place: tuple[str, tuple[str | int, ...]], value: object
) -> None:
    kind, path = place
    result = parse_internal(orjson.dumps(replaced(doc_of(kind), path, value)), latest_ms=LATEST)
    if not isinstance(result, Rejected):
        assert_safe_to_apply(result)
