"""Wire codecs: valid records decode to whole events, bad ones to the right ``Rejected`` code,
and no input whatsoever makes a parser raise."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.events import (
    CatalogUpdate,
    Click,
    CustomerUpdate,
    Feedback,
    Order,
    OrderItem,
    Rejected,
)
from stream.codecs import (
    MAX_AMOUNT,
    MAX_ITEMS,
    MAX_QUANTITY,
    PARSERS,
    REJECTION_CODES,
    parse_catalog,
    parse_click,
    parse_customer,
    parse_feedback,
    parse_order,
    parse_ts,
)

MAX = 65_536
TS = 1795341600000  # 2026-11-22T10:00:00Z, checked with datetime.fromisoformat(...).timestamp()
TS_Z = "2026-11-22T10:00:00Z"

EVENT_TYPES: dict[Callable[..., Any], type] = {
    parse_click: Click,
    parse_order: Order,
    parse_customer: CustomerUpdate,
    parse_catalog: CatalogUpdate,
    parse_feedback: Feedback,
}


def enc(obj: object) -> bytes:
    return orjson.dumps(obj)


def rec(**fields: object) -> bytes:
    """A record with the common fields filled in; ``None`` values are kept as JSON null."""
    return enc({"event_id": "e1", "ts": TS, **fields})


ABSENT = object()  # marks a field to leave out of a record built by the helpers below


def _minimal(base: dict[str, object], changes: dict[str, object]) -> bytes:
    merged = {"event_id": "e1", "ts": TS, **base, **changes}
    return enc({key: value for key, value in merged.items() if value is not ABSENT})


def click(**changes: object) -> bytes:
    """A minimal valid ``clicks`` record with ``changes`` applied."""
    return _minimal({"customer_id": "c1", "type": "page_view"}, changes)


def order(**changes: object) -> bytes:
    return _minimal({"customer_id": "c1", "order_id": "o1", "total": 10}, changes)


def customer(**changes: object) -> bytes:
    return _minimal({"customer_id": "c1"}, changes)


def catalog(**changes: object) -> bytes:
    return _minimal({"product_id": "p1"}, changes)


def feedback(**changes: object) -> bytes:
    return _minimal({"customer_id": "c1", "action": "opened"}, changes)


P = pytest.param


# --------------------------------------------------------------------------- valid records


@pytest.mark.parametrize(
    ("parser", "raw", "expected"),
    [
        pytest.param(
            parse_click,
            rec(customer_id="c1", type="page_view"),
            Click(event_id="e1", ts=TS, customer_id="c1", type="page_view"),
            id="click-minimal",
        ),
        pytest.param(
            parse_click,
            rec(
                customer_id="c1",
                type="add_to_cart",
                product_id="p1",
                category="shoes",
                price=49.9,
                quantity=2,
                session_id="s1",
                extra_field={"ignored": True},
            ),
            Click(
                event_id="e1",
                ts=TS,
                customer_id="c1",
                type="add_to_cart",
                product_id="p1",
                category="shoes",
                price=49.9,
                quantity=2,
                session_id="s1",
            ),
            id="click-full",
        ),
        pytest.param(
            parse_click,
            rec(customer_id="c1", type="search", query="", quantity=None, price=0),
            Click(event_id="e1", ts=TS, customer_id="c1", type="search", query="", price=0.0),
            id="click-null-is-absent",
        ),
        pytest.param(
            parse_click,
            rec(customer_id="c1", type="identify", anonymous_id="anon-7"),
            Click(event_id="e1", ts=TS, customer_id="c1", type="identify", anonymous_id="anon-7"),
            id="click-identify",
        ),
        pytest.param(
            parse_click,
            rec(customer_id="c1", type="product_view", product_id="p1", quantity=3.0),
            Click(
                event_id="e1",
                ts=TS,
                customer_id="c1",
                type="product_view",
                product_id="p1",
                quantity=3,
            ),
            id="click-integral-float-quantity",
        ),
        pytest.param(
            parse_order,
            rec(customer_id="c1", order_id="o1", total=10),
            Order(event_id="e1", ts=TS, customer_id="c1", order_id="o1", total=10.0),
            id="order-minimal-defaults",
        ),
        pytest.param(
            parse_order,
            rec(
                customer_id="c1",
                order_id="o1",
                status="placed",
                total=59.5,
                currency="USD",
                items=[
                    {"product_id": "p1", "category": "shoes", "quantity": 2, "unit_price": 20},
                    {"product_id": "p2", "unit_price": None},
                ],
                coupon_code="WELCOME10",
                offer_id="of1",
            ),
            Order(
                event_id="e1",
                ts=TS,
                customer_id="c1",
                order_id="o1",
                status="placed",
                total=59.5,
                currency="USD",
                items=(
                    OrderItem(product_id="p1", category="shoes", quantity=2, unit_price=20.0),
                    OrderItem(product_id="p2"),
                ),
                coupon_code="WELCOME10",
                offer_id="of1",
            ),
            id="order-full",
        ),
        pytest.param(
            parse_order,
            rec(customer_id="c1", order_id="o1", status="refunded"),
            Order(event_id="e1", ts=TS, customer_id="c1", order_id="o1", status="refunded"),
            id="order-refund-without-total",
        ),
        pytest.param(
            parse_customer,
            rec(customer_id="c1"),
            CustomerUpdate(event_id="e1", ts=TS, customer_id="c1"),
            id="customer-minimal",
        ),
        pytest.param(
            parse_customer,
            rec(
                customer_id="c1",
                email="ann@example.com",
                phone="+49 (30) 123-456",
                push_token="tok",
                timezone="Europe/Berlin",
                birthday="02-29",
                attributes={"gender": "f", "age": 34, "vip": True, "score": 1.5, "city": None},
                consent={"sms": False, "email": True, "push": None},
                erase=False,
            ),
            CustomerUpdate(
                event_id="e1",
                ts=TS,
                customer_id="c1",
                email="ann@example.com",
                phone="+49 (30) 123-456",
                push_token="tok",
                timezone="Europe/Berlin",
                birthday="02-29",
                attributes=(
                    ("age", 34),
                    ("city", None),
                    ("gender", "f"),
                    ("score", 1.5),
                    ("vip", True),
                ),
                consent=(("email", True), ("sms", False)),
            ),
            id="customer-full",
        ),
        pytest.param(
            parse_customer,
            rec(customer_id="c1", birthday="1990-12-31", erase=True, timezone="UTC"),
            CustomerUpdate(
                event_id="e1",
                ts=TS,
                customer_id="c1",
                birthday="1990-12-31",
                timezone="UTC",
                erase=True,
            ),
            id="customer-erase",
        ),
        pytest.param(
            parse_catalog,
            rec(
                product_id="p1",
                category="shoes",
                price=79,
                in_stock=False,
                name="Trail Runner",
                new_arrival=True,
                customer_id="ignored",
            ),
            CatalogUpdate(
                event_id="e1",
                ts=TS,
                product_id="p1",
                category="shoes",
                price=79.0,
                in_stock=False,
                name="Trail Runner",
                new_arrival=True,
            ),
            id="catalog-full",
        ),
        pytest.param(
            parse_catalog,
            rec(product_id="p1"),
            CatalogUpdate(event_id="e1", ts=TS, product_id="p1"),
            id="catalog-minimal",
        ),
        pytest.param(
            parse_feedback,
            rec(customer_id="c1", action="unsubscribed", offer_id="of1", channel="sms"),
            Feedback(
                event_id="e1",
                ts=TS,
                customer_id="c1",
                action="unsubscribed",
                offer_id="of1",
                channel="sms",
            ),
            id="feedback-full",
        ),
        pytest.param(
            parse_feedback,
            rec(customer_id="c1", action="unsubscribed"),
            Feedback(event_id="e1", ts=TS, customer_id="c1", action="unsubscribed"),
            id="feedback-all-channels",
        ),
    ],
)
def test_valid_records_decode_to_events(
    parser: Callable[..., Any], raw: bytes, expected: object
) -> None:
    assert parser(raw, max_bytes=MAX) == expected


def test_default_currency_comes_from_the_caller() -> None:
    result = parse_order(order(), max_bytes=MAX, default_currency="SEK")
    assert isinstance(result, Order)
    assert result.currency == "SEK"


def test_parsers_table_covers_every_input_topic() -> None:
    assert {
        "clicks": parse_click,
        "orders": parse_order,
        "customers": parse_customer,
        "catalog": parse_catalog,
        "feedback": parse_feedback,
    } == PARSERS


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TS, TS),
        (float(TS), TS),
        (TS_Z, TS),
        ("2026-11-22T10:00:00z", TS),
        ("2026-11-22 10:00:00Z", TS),
        ("2026-11-22T12:00:00+02:00", TS),
        ("2026-11-22T05:30:00-04:30", TS),
        ("2026-11-22T10:00:00-00:00", TS),
        ("2026-11-22T10:00:00.123+00:00", TS + 123),
        ("2026-11-22T12:00:00.123+02:00", TS + 123),
        ("2026-11-22T10:00:00.5Z", TS + 500),
        ("2026-11-22T10:00:00.999999999Z", TS + 999),
        ("2000-01-01T00:00:00Z", 946684800000),
        ("2100-12-31T23:59:59.999Z", 4133980799999),
        # history from 1970 on (CDNOW, the standard CLV data set, starts in 1997)
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1997-01-01T00:00:00Z", 852076800000),
        (852076800000, 852076800000),
        (946684799999, 946684799999),
        (10**10, 10**10),  # 1970-04-26T17:46:40Z: the smallest integer read as milliseconds
    ],
)
def test_parse_ts_accepts_both_forms(value: object, expected: int) -> None:
    assert parse_ts(value) == expected


def test_offset_and_utc_forms_give_the_same_event_time() -> None:
    plus_two = parse_click(
        rec(customer_id="c1", type="page_view", ts="2026-11-22T12:00:00+02:00"), max_bytes=MAX
    )
    utc = parse_click(rec(customer_id="c1", type="page_view", ts=TS_Z), max_bytes=MAX)
    assert isinstance(plus_two, Click)
    assert plus_two == utc
    assert plus_two.ts == 1795341600000


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        "2026-11-22T10:00:00",  # no offset
        "2026-11-22T10:00:00.123",
        "2026-11-22",
        "2026-11-22T10:00Z",
        "20261122T100000Z",
        "2026-02-30T10:00:00Z",
        "2026-11-22T24:00:00Z",
        "2026-11-22T10:00:60Z",
        "2026-11-22T10:00:00+24:00",
        "2026-11-22T10:00:00+02:60",
        "２０２６-11-22T10:00:00Z",  # non-ASCII digits
        str(TS),
        1795341600,  # seconds, not milliseconds
        1795341600.5,
        852076800,  # 1997 in seconds
        10**10 - 1,  # seconds up to the year 2286 are all below 10^10
        0,  # as an integer: ambiguous with seconds (RFC 3339 reaches 1970-01-01 exactly)
        TS * 1000,  # microseconds
        TS * 1_000_000,  # nanoseconds
        TS + 0.5,
        4133980800000,  # 2101
        "2101-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999Z",
        "1970-01-01T00:30:00+01:00",  # 1969 in UTC
        -1,
        -(10**13),
        float("nan"),
        float("inf"),
        [TS],
        {"ts": TS},
    ],
)
def test_parse_ts_rejects_everything_else(value: object) -> None:
    assert parse_ts(value) is None


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (1795341600, "epoch seconds"),
        (852076800.0, "epoch seconds"),
        (TS * 1000, "epoch microseconds"),
        (TS * 1_000_000, "epoch nanoseconds"),
    ],
)
def test_a_timestamp_in_another_unit_gets_a_hint(value: object, unit: str) -> None:
    result = parse_click(rec(customer_id="c1", type="page_view", ts=value), max_bytes=MAX)
    assert isinstance(result, Rejected)
    assert result.code == "bad_timestamp"
    assert f"looks like {unit}" in result.reason


def test_a_negative_timestamp_says_before_1970() -> None:
    result = parse_click(rec(customer_id="c1", type="page_view", ts=-5), max_bytes=MAX)
    assert isinstance(result, Rejected)
    assert "before 1970-01-01" in result.reason


# --------------------------------------------------------------------------- the future


@pytest.mark.parametrize("parser", list(EVENT_TYPES))
def test_an_event_later_than_latest_ms_is_rejected_as_from_the_future(
    parser: Callable[..., Any],
) -> None:
    record = enc(FULL[parser])
    assert isinstance(parser(record, max_bytes=MAX, latest_ms=TS), EVENT_TYPES[parser])
    result = parser(record, max_bytes=MAX, latest_ms=TS - 1)
    assert isinstance(result, Rejected)
    assert result.code == "future_timestamp"
    assert "2026-11-22T10:00:00.000Z" in result.reason  # the record's time, readable
    assert "2026-11-22T09:59:59.999Z" in result.reason  # and the latest accepted


def test_the_year_2100_is_refused_against_any_wall_clock_of_this_century() -> None:
    far = rec(customer_id="c1", type="page_view", ts="2100-12-31T00:00:00Z")
    assert isinstance(parse_click(far, max_bytes=MAX), Click)  # in range without a wall time
    result = parse_click(far, max_bytes=MAX, latest_ms=TS + 3_600_000)
    assert isinstance(result, Rejected) and result.code == "future_timestamp"


def test_parse_ts_honours_latest_ms() -> None:
    assert parse_ts(TS, latest_ms=TS) == TS
    assert parse_ts(TS + 1, latest_ms=TS) is None


# --------------------------------------------------------------------------- value ranges


@pytest.mark.parametrize(
    "raw",
    [
        order(total=MAX_AMOUNT),
        order(items=[{"product_id": "p", "quantity": MAX_QUANTITY, "unit_price": MAX_AMOUNT}]),
        order(items=[{"product_id": f"p{i}"} for i in range(MAX_ITEMS)]),
        order(items=[{"product_id": "p", "quantity": 80_995}]),  # a real wholesale line
    ],
    ids=["total-max", "line-max", "lines-max", "wholesale-quantity"],
)
def test_values_at_the_documented_limits_are_accepted(raw: bytes) -> None:
    assert isinstance(parse_order(raw, max_bytes=MAX), Order)


def test_a_customers_revenue_cannot_overflow_within_the_bounds() -> None:
    # The largest total accepted, summed over more orders than any customer can have.
    assert MAX_AMOUNT * 10**12 < 1e300


# --------------------------------------------------------------------------- rejections


REJECTIONS = [
    # size, encoding, JSON shape
    P(parse_click, b"x" * (MAX + 1), "too_large", id="too-large"),
    P(parse_click, b'{"event_id": "\xff"}', "not_utf8", id="not-utf8-in-string"),
    P(parse_order, b"\xc3\x28", "not_utf8", id="not-utf8-bare"),
    P(parse_click, b"", "malformed_json", id="empty"),
    P(parse_click, b'{"event_id": ', "malformed_json", id="truncated"),
    P(parse_click, b'{"ts": NaN}', "malformed_json", id="nan"),
    P(parse_click, b'{"ts": 1e999}', "malformed_json", id="infinity"),
    P(parse_click, b"\xef\xbb\xbf{}", "malformed_json", id="bom"),
    P(parse_click, None, "malformed_json", id="tombstone"),
    P(parse_click, b"[]", "not_object", id="array"),
    P(parse_feedback, b'"text"', "not_object", id="string"),
    P(parse_catalog, b"null", "not_object", id="null"),
    # common fields
    P(parse_click, click(event_id=ABSENT), "missing_field", id="no-event-id"),
    P(parse_click, click(ts=ABSENT), "missing_field", id="no-ts"),
    P(parse_click, click(ts=None), "missing_field", id="null-ts"),
    P(parse_click, click(event_id=1), "bad_type", id="event-id-number"),
    P(parse_click, click(event_id=""), "bad_value", id="event-id-empty"),
    P(parse_click, click(event_id="e" * 129), "bad_value", id="event-id-long"),
    P(parse_click, click(ts="2026-11-22T10:00:00"), "bad_timestamp", id="ts-no-offset"),
    P(parse_click, click(ts=True), "bad_timestamp", id="ts-bool"),
    P(parse_click, click(ts=TS + 0.5), "bad_timestamp", id="ts-fraction"),
    P(parse_click, click(ts=1), "bad_timestamp", id="ts-seconds-like"),
    P(parse_click, click(ts=-1), "bad_timestamp", id="ts-negative"),
    P(parse_click, click(ts="2101-01-01T00:00:00Z"), "bad_timestamp", id="ts-2101"),
    P(partial(parse_click, latest_ms=TS - 1), click(), "future_timestamp", id="ts-future"),
    # clicks
    P(parse_click, click(customer_id=ABSENT), "missing_field", id="click-no-customer"),
    P(parse_click, click(type=ABSENT), "missing_field", id="click-no-type"),
    P(parse_click, click(customer_id=7), "bad_type", id="id-number"),
    P(parse_click, click(customer_id=""), "bad_value", id="id-empty"),
    P(parse_click, click(customer_id="  "), "bad_value", id="id-blank"),
    P(parse_click, click(customer_id="c" * 257), "bad_value", id="id-long"),
    P(parse_click, click(type="tap"), "bad_value", id="click-type"),
    P(parse_click, click(type=["page_view"]), "bad_type", id="click-type-list"),
    P(parse_click, click(type="add_to_cart"), "missing_field", id="cart-needs-product"),
    P(parse_click, click(type="identify"), "missing_field", id="identify-needs-anonymous-id"),
    P(parse_click, click(session_id=""), "bad_value", id="session-empty"),
    P(parse_click, click(quantity=0), "bad_value", id="quantity-zero"),
    P(parse_click, click(quantity=1_000_001), "bad_value", id="quantity-huge"),
    P(parse_click, click(quantity=1.5), "bad_type", id="quantity-fraction"),
    P(parse_click, click(quantity=True), "bad_type", id="quantity-bool"),
    P(parse_click, click(price=-1), "bad_value", id="price-negative"),
    P(parse_click, click(price=True), "bad_type", id="price-bool"),
    P(parse_click, click(price="9.99"), "bad_type", id="price-string"),
    P(parse_click, click(price=1e13), "bad_value", id="price-huge"),
    P(parse_click, b'{"price": Infinity}', "malformed_json", id="infinity-literal"),
    P(parse_click, b'{"price": -Infinity}', "malformed_json", id="minus-infinity-literal"),
    P(parse_click, click(category="x" * 257), "bad_value", id="category-long"),
    P(parse_click, click(query="q" * 1025), "bad_value", id="query-long"),
    # orders
    P(parse_order, order(order_id=ABSENT), "missing_field", id="order-no-id"),
    P(parse_order, order(total=ABSENT), "missing_field", id="placed-needs-total"),
    P(parse_order, order(status="placed", total=None), "missing_field", id="placed-null-total"),
    P(parse_order, order(status="shipped"), "bad_value", id="order-status"),
    P(parse_order, order(total=-5), "bad_value", id="total-negative"),
    P(parse_order, order(total="10"), "bad_type", id="total-string"),
    P(
        parse_order,
        order(total=1.7e308),  # finite: JSON's largest numbers are valid, not sane
        "bad_value",
        id="total-1.7e308",
    ),
    P(parse_order, order(total=MAX_AMOUNT * 1.5), "bad_value", id="total-over-max"),
    P(parse_order, order(total=2**64 - 1), "bad_value", id="total-huge-int"),
    P(parse_order, order(currency="eur"), "bad_value", id="currency-lowercase"),
    P(parse_order, order(currency="EURO"), "bad_value", id="currency-long"),
    P(parse_order, order(currency=978), "bad_type", id="currency-number"),
    P(parse_order, order(items={}), "bad_type", id="items-object"),
    P(parse_order, order(items=["p1"]), "bad_type", id="item-string"),
    P(parse_order, order(items=[{}]), "missing_field", id="item-no-product"),
    P(
        parse_order,
        order(items=[{"product_id": "p", "quantity": 0}]),
        "bad_value",
        id="item-quantity",
    ),
    P(
        parse_order,
        order(items=[{"product_id": "p", "unit_price": -1}]),
        "bad_value",
        id="item-price",
    ),
    P(parse_order, order(items=[{"product_id": "p"}] * 501), "bad_value", id="items-too-many"),
    P(
        parse_order,
        order(items=[{"product_id": "p", "unit_price": 1e300}]),
        "bad_value",
        id="item-price-huge",
    ),
    P(
        parse_order,
        order(items=[{"product_id": "p", "quantity": 10**7}]),
        "bad_value",
        id="item-quantity-huge",
    ),
    P(parse_order, order(coupon_code=5), "bad_type", id="coupon-number"),
    # customers
    P(parse_customer, customer(customer_id=ABSENT), "missing_field", id="customer-no-id"),
    P(parse_customer, customer(email="ann.example.com"), "bad_value", id="email-no-at"),
    P(parse_customer, customer(email="a@b@c"), "bad_value", id="email-two-at"),
    P(parse_customer, customer(email="@example.com"), "bad_value", id="email-empty-local"),
    P(parse_customer, customer(email="ann@"), "bad_value", id="email-empty-domain"),
    P(parse_customer, customer(email="a" * 312 + "@example.com"), "bad_value", id="email-long"),
    P(parse_customer, customer(phone="call me"), "bad_value", id="phone-letters"),
    P(parse_customer, customer(phone="12"), "bad_value", id="phone-short"),
    P(parse_customer, customer(phone="1" * 33), "bad_value", id="phone-long"),
    P(parse_customer, customer(phone="+-()"), "bad_value", id="phone-no-digits"),
    P(parse_customer, customer(phone=4930123), "bad_type", id="phone-number"),
    P(parse_customer, customer(push_token="t" * 4097), "bad_value", id="push-token-long"),
    P(parse_customer, customer(timezone="Mars/Olympus"), "bad_value", id="timezone-unknown"),
    P(parse_customer, customer(timezone="../../etc/passwd"), "bad_value", id="timezone-path"),
    P(parse_customer, customer(timezone="Europe"), "bad_value", id="timezone-directory"),
    P(parse_customer, customer(timezone="a\u0000b"), "bad_value", id="timezone-nul"),
    P(parse_customer, customer(timezone="localtime"), "bad_value", id="timezone-localtime"),
    P(parse_customer, customer(timezone=""), "bad_value", id="timezone-empty"),
    P(parse_customer, customer(birthday="02-30"), "bad_value", id="birthday-feb-30"),
    P(parse_customer, customer(birthday="2023-02-29"), "bad_value", id="birthday-not-leap"),
    P(parse_customer, customer(birthday="13-01"), "bad_value", id="birthday-month-13"),
    P(parse_customer, customer(birthday="1990/12/31"), "bad_value", id="birthday-slashes"),
    P(parse_customer, customer(birthday=1231), "bad_type", id="birthday-number"),
    P(parse_customer, customer(attributes=[1]), "bad_type", id="attributes-array"),
    P(parse_customer, customer(attributes={"a": {"b": 1}}), "bad_type", id="attributes-nested"),
    P(parse_customer, customer(attributes={"a": [1]}), "bad_type", id="attributes-list-value"),
    P(parse_customer, customer(attributes={"": 1}), "bad_value", id="attributes-empty-key"),
    P(
        parse_customer,
        customer(attributes={str(i): i for i in range(101)}),
        "bad_value",
        id="attributes-too-many",
    ),
    P(parse_customer, customer(consent={"fax": True}), "bad_value", id="consent-unknown-channel"),
    P(parse_customer, customer(consent={"sms": "yes"}), "bad_type", id="consent-not-bool"),
    P(parse_customer, customer(consent=True), "bad_type", id="consent-not-object"),
    P(parse_customer, customer(erase="true"), "bad_type", id="erase-string"),
    # catalog
    P(parse_catalog, catalog(product_id=ABSENT), "missing_field", id="catalog-no-product"),
    P(parse_catalog, catalog(price=-0.01), "bad_value", id="catalog-price"),
    P(parse_catalog, catalog(price=1e300), "bad_value", id="catalog-price-huge"),
    P(parse_catalog, catalog(in_stock=1), "bad_type", id="catalog-in-stock"),
    P(parse_catalog, catalog(new_arrival="yes"), "bad_type", id="catalog-new-arrival"),
    P(parse_catalog, catalog(name="n" * 1025), "bad_value", id="catalog-name"),
    # feedback
    P(parse_feedback, feedback(action=ABSENT), "missing_field", id="feedback-no-action"),
    P(parse_feedback, feedback(customer_id=None), "missing_field", id="feedback-null-customer"),
    P(parse_feedback, feedback(action="liked"), "bad_value", id="feedback-action"),
    P(parse_feedback, feedback(channel="fax"), "bad_value", id="feedback-channel"),
    P(parse_feedback, feedback(channel=1), "bad_type", id="feedback-channel-number"),
    P(parse_feedback, feedback(offer_id=""), "bad_value", id="feedback-offer-empty"),
]


@pytest.mark.parametrize(("parser", "raw", "code"), REJECTIONS)
def test_bad_records_are_rejected_with_the_right_code(
    parser: Callable[..., Any], raw: bytes | None, code: str
) -> None:
    result = parser(raw, max_bytes=MAX)
    assert isinstance(result, Rejected), result
    assert result.code == code, result.reason
    assert result.reason.endswith("."), "the reason should read as a sentence"


def test_every_rejection_code_is_exercised() -> None:
    assert {case.values[2] for case in REJECTIONS} == REJECTION_CODES


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (click(quantity=0), "quantity"),
        (click(type="add_to_cart"), "product_id"),
        (click(customer_id=None), "customer_id"),
    ],
)
def test_reasons_name_the_field(raw: bytes, field: str) -> None:
    result = parse_click(raw, max_bytes=MAX)
    assert isinstance(result, Rejected)
    assert f"'{field}'" in result.reason


def test_item_reasons_name_the_position() -> None:
    result = parse_order(order(items=[{"product_id": "p"}, {}]), max_bytes=MAX)
    assert isinstance(result, Rejected)
    assert "'items[1].product_id'" in result.reason


def test_oversize_is_rejected_before_decoding() -> None:
    huge_garbage = b"\xff{not json" * 10_000
    for parser in PARSERS.values():
        result = parser(huge_garbage, max_bytes=MAX)
        assert isinstance(result, Rejected)
        assert result.code == "too_large"


def test_size_limit_is_inclusive() -> None:
    exact = catalog()
    assert isinstance(parse_catalog(exact, max_bytes=len(exact)), CatalogUpdate)
    assert parse_catalog(exact, max_bytes=len(exact) - 1) == Rejected(
        reason=f"Record is {len(exact)} bytes, over the limit of {len(exact) - 1} bytes; "
        "it was not read.",
        code="too_large",
    )


# --------------------------------------------------------------------------- never raises


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def assert_parses_or_rejects(raw: bytes) -> None:
    for parser, event_type in EVENT_TYPES.items():
        result = parser(raw, max_bytes=MAX)
        assert isinstance(result, event_type | Rejected)
        if isinstance(result, Rejected):
            assert result.code in REJECTION_CODES
            assert result.reason


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert_parses_or_rejects(raw)


@settings(max_examples=300)
@given(json_values)
def test_never_raises_on_arbitrary_json(value: object) -> None:
    assert_parses_or_rejects(orjson.dumps(value))


# One complete, valid record per topic; the property below swaps a single field for an arbitrary
# JSON value, which drives every field validator with garbage (the record passes all others).
FULL: dict[Callable[..., Any], dict[str, object]] = {
    parse_click: {
        "event_id": "e1",
        "ts": TS_Z,
        "customer_id": "c1",
        "type": "add_to_cart",
        "product_id": "p1",
        "category": "shoes",
        "price": 9.5,
        "quantity": 2,
        "query": "red",
        "session_id": "s1",
        "anonymous_id": "a1",
    },
    parse_order: {
        "event_id": "e1",
        "ts": TS,
        "customer_id": "c1",
        "order_id": "o1",
        "status": "placed",
        "total": 19.0,
        "currency": "EUR",
        "coupon_code": "X",
        "offer_id": "of1",
        "items": [{"product_id": "p1", "category": "shoes", "quantity": 2, "unit_price": 9.5}],
    },
    parse_customer: {
        "event_id": "e1",
        "ts": TS,
        "customer_id": "c1",
        "email": "a@b.c",
        "phone": "+1 555",
        "push_token": "t",
        "timezone": "Europe/Berlin",
        "birthday": "1990-02-28",
        "attributes": {"age": 30},
        "consent": {"email": True},
        "erase": False,
    },
    parse_catalog: {
        "event_id": "e1",
        "ts": TS,
        "product_id": "p1",
        "category": "shoes",
        "price": 9.5,
        "in_stock": True,
        "name": "Shoe",
        "new_arrival": False,
    },
    parse_feedback: {
        "event_id": "e1",
        "ts": TS,
        "customer_id": "c1",
        "action": "opened",
        "offer_id": "of1",
        "channel": "email",
    },
}


ALL_FIELDS = sorted({field for record in FULL.values() for field in record})


@pytest.mark.parametrize("parser", list(FULL))
def test_full_records_are_valid(parser: Callable[..., Any]) -> None:
    assert isinstance(parser(enc(FULL[parser]), max_bytes=MAX), EVENT_TYPES[parser])


@settings(max_examples=400)
@given(st.sampled_from(list(FULL)), st.sampled_from(ALL_FIELDS), json_values)
def test_never_raises_when_one_field_is_arbitrary(
    parser: Callable[..., Any], field: str, value: object
) -> None:
    result = parser(enc({**FULL[parser], field: value}), max_bytes=MAX)
    assert isinstance(result, EVENT_TYPES[parser] | Rejected)
    if isinstance(result, Rejected):
        assert result.code in REJECTION_CODES


@given(st.one_of(json_values, st.floats(), st.text()))
def test_parse_ts_never_raises(value: object) -> None:
    result = parse_ts(value)
    assert result is None or isinstance(result, int)


async def test_the_producer_stamps_records_with_their_event_time_or_the_one_before() -> None:
    """Kafka timestamps carry event time for the workers' alignment; a record without a
    readable time (or from the far future) takes the time of the record sent before it."""
    from stream.producer import EventProducer, event_time
    from stream.settings import Settings

    assert event_time({"ts": "2026-01-02T03:04:05Z"}) == 1767323045000
    assert event_time(b'{"ts": 1700000000000}') == 1700000000000
    assert event_time(b"not json") is None
    producer = EventProducer(Settings(), "kafka://127.0.0.1:9")
    assert producer._stamp("clicks", b"not json") is None
    assert producer._stamp("clicks", {"ts": 1700000000000}) == 1700000000000
    assert producer._stamp("clicks", b"{broken") == 1700000000000
    assert producer._stamp("clicks", {"ts": "2100-01-01T00:00:00Z"}) == 1700000000000
    assert producer._stamp("orders", b"{broken") is None
