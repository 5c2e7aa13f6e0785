"""Wire codecs: raw Kafka record values (bytes) to the typed events of ``models.events``.

This is the only place that looks at untrusted bytes, so everything downstream can trust the
frozen dataclasses it returns. The public parsers never raise: a record that cannot be accepted
becomes a ``Rejected`` whose ``reason`` tells a producer what to fix (it ends up in the
``deadletter`` topic) and whose ``code`` is one of the bounded ``REJECTION_CODES`` (it ends up as
a Prometheus label value, so it must never carry data from the record).

Validation inside the module short-circuits with the private ``_Invalid`` exception: the first
problem found wins, and ``_parse`` turns it into ``Rejected`` at the public boundary. Fields are
checked in a fixed order (size, encoding, JSON, ``event_id``, ``ts``, then the topic's fields) so
the same bad record always gets the same reason. Unknown extra fields are ignored because the
contract allows producers to extend events. JSON ``null`` means the same as an absent field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import TypeVar, cast
from zoneinfo import ZoneInfo

import orjson

from models.clock import format_ts
from models.events import (
    CHANNELS,
    CLICK_TYPES,
    CLICK_TYPES_NEEDING_PRODUCT,
    FEEDBACK_ACTIONS,
    ORDER_STATUSES,
    CatalogUpdate,
    Channel,
    Click,
    ClickType,
    CustomerUpdate,
    Event,
    Feedback,
    FeedbackAction,
    Order,
    OrderItem,
    OrderStatus,
    Rejected,
    Scalar,
)

__all__ = [
    "PARSERS",
    "REJECTION_CODES",
    "parse_catalog",
    "parse_click",
    "parse_customer",
    "parse_feedback",
    "parse_order",
    "parse_ts",
]

T = TypeVar("T")

#: Every ``Rejected.code`` this module produces; small and fixed so metrics stay bounded.
REJECTION_CODES: frozenset[str] = frozenset(
    {
        "too_large",
        "not_utf8",
        "malformed_json",
        "not_object",
        "missing_field",
        "bad_type",
        "bad_value",
        "bad_timestamp",
        "future_timestamp",
    }
)

# Limits. Identifiers are compared and stored as keys, so they are bounded; free text a little
# more generously. The record size limit (RAPPORT_MAX_EVENT_BYTES) bounds everything else.
MAX_EVENT_ID = 128
MAX_IDENT = 256
MAX_CATEGORY = 256
MAX_QUERY = 1024
MAX_NAME = 1024
#: Units of one line or click. Wholesale lines reach tens of thousands of units (one real
#: invoice line of the UCI Online Retail data holds 80,995), so the bound is far above that.
MAX_QUANTITY = 1_000_000
#: Lines of one order. Each line costs state (the order's products and categories) and the
#: shop-wide bought-together counts cost n * (n - 1) / 2 pairs per order, so the bound keeps
#: one order's effect bounded (500 lines: at most 124,750 pairs).
MAX_ITEMS = 500
#: Largest price or total, in the order's currency. 10^12 holds any real order even in the
#: currencies with the smallest units (a million-dollar order is about 2.5 * 10^10 VND), and
#: keeps every sum finite: a customer's revenue would need 10^296 such orders to overflow.
MAX_AMOUNT = 1e12
MAX_EMAIL = 320
MAX_PUSH_TOKEN = 4096
MAX_TIMEZONE = 64
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY = 256

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Event times are accepted from 1970-01-01 (histories go back decades) to the end of 2100;
# anything later is garbage or a unit mistake (microseconds, nanoseconds). Records ahead of
# wall time are refused separately, by the caller's ``latest_ms``.
_TS_END_MS = (datetime(2101, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS  # exclusive
# Every epoch-seconds value up to the year 2286 is below 10^10, and as milliseconds such an
# integer means a moment in the first 116 days of 1970: no shop has history there, so an
# integer below it is read as a unit mistake (RFC 3339 strings reach 1970-01-01 exactly).
_SECONDS_LIKE_BELOW = 10**10

# RFC 3339 date-time: date, "T" (or space/"t"), time, optional fraction, offset. The offset is
# optional in the pattern only so that a missing one gets its own, clearer message.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
_PHONE = re.compile(r"[0-9 +\-()]{3,32}", re.ASCII)
_BIRTHDAY_FULL = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_BIRTHDAY_DAY = re.compile(r"(\d{2})-(\d{2})", re.ASCII)


class _Invalid(Exception):
    """One validation failure; private, converted to ``Rejected`` by ``_parse``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --------------------------------------------------------------------------- helpers: messages


def _kind(value: object) -> str:
    """Name a decoded value by its JSON type, the vocabulary producers know."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: object, limit: int = 40) -> str:
    """Echo a short value (enum members, numbers) in a reason; long ones are cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bad_type(label: str, expected: str, value: object) -> _Invalid:
    return _Invalid("bad_type", f"Field '{label}' must be {expected}, got {_kind(value)}.")


def _bad_value(label: str, problem: str) -> _Invalid:
    return _Invalid("bad_value", f"Field '{label}' {problem}.")


# --------------------------------------------------------------------------- helpers: access


def _need(obj: Mapping[str, object], key: str, where: str = "") -> object:
    """Return a required field; absent and ``null`` are both "missing"."""
    value = obj.get(key)
    if value is None:
        raise _Invalid("missing_field", f"Required field '{where}{key}' is missing or null.")
    return value


def _maybe(
    obj: Mapping[str, object], key: str, check: Callable[[str, object], T], where: str = ""
) -> T | None:
    """Validate an optional field with ``check``; absent or ``null`` gives ``None``."""
    value = obj.get(key)
    return None if value is None else check(f"{where}{key}", value)


# --------------------------------------------------------------------------- helpers: field kinds
# Each takes the field's label (for messages) and its present, non-null value.


def _string(label: str, value: object, *, max_len: int, min_len: int = 1) -> str:
    """A JSON string of bounded length (in characters)."""
    if not isinstance(value, str):
        raise _bad_type(label, "a string", value)
    if len(value) < min_len:
        raise _bad_value(label, "must not be empty")
    if len(value) > max_len:
        raise _bad_value(label, f"must be at most {max_len} characters, got {len(value)}")
    return value


def _ident(label: str, value: object) -> str:
    """An identifier (customer, product, order, session, offer...): non-blank, bounded."""
    text = _string(label, value, max_len=MAX_IDENT)
    if not text.strip():
        raise _bad_value(label, "must not be blank")
    return text


def _event_id(label: str, value: object) -> str:
    return _string(label, value, max_len=MAX_EVENT_ID)


def _category(label: str, value: object) -> str:
    return _string(label, value, max_len=MAX_CATEGORY)


def _query(label: str, value: object) -> str:
    # An empty search is still a search; do not drop the click for it.
    return _string(label, value, max_len=MAX_QUERY, min_len=0)


def _name(label: str, value: object) -> str:
    return _string(label, value, max_len=MAX_NAME)


def _member(label: str, value: object, allowed: Collection[str]) -> str:
    """One of a closed set of strings (click type, status, action, channel)."""
    if not isinstance(value, str):
        raise _bad_type(label, "a string", value)
    if value not in allowed:
        choices = ", ".join(sorted(allowed))
        raise _bad_value(label, f"must be one of {choices}; got {_show(value)}")
    return value


def _flag(label: str, value: object) -> bool:
    """A JSON boolean; strings like "true" or 0/1 are refused rather than guessed."""
    if not isinstance(value, bool):
        raise _bad_type(label, "true or false", value)
    return value


def _integer(label: str, value: object) -> int:
    """A whole number; ``2.0`` is accepted as 2 because many JSON writers emit it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_type(label, "a whole number", value)
    return value


def _quantity(label: str, value: object) -> int:
    number = _integer(label, value)
    if not 1 <= number <= MAX_QUANTITY:
        raise _bad_value(label, f"must be between 1 and {MAX_QUANTITY}, got {_show(value)}")
    return number


def _amount(label: str, value: object) -> float:
    """A finite number in 0..``MAX_AMOUNT`` (prices, totals). Booleans are not numbers here.

    JSON has no NaN or Infinity (such records fail as malformed JSON), but a finite 1e308 is
    valid JSON: two of them would make a customer's revenue infinite, hence the upper bound.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_type(label, "a number", value)
    # orjson yields ints within 64 bits (larger ones arrive as floats), so float() cannot
    # overflow; a non-finite float can only come from a caller bypassing JSON, guard anyway.
    number = float(value)
    if not math.isfinite(number):
        raise _bad_value(label, "must be a finite number")
    if number < 0:
        raise _bad_value(label, f"must be zero or more, got {_show(value)}")
    if number > MAX_AMOUNT:
        raise _bad_value(label, f"must be at most {MAX_AMOUNT:.0e}, got {_show(value)}")
    return number


def _currency(label: str, value: object) -> str:
    if not isinstance(value, str):
        raise _bad_type(label, "a string", value)
    if not _CURRENCY.fullmatch(value):
        raise _bad_value(
            label, f"must be an ISO 4217 code of 3 capital letters, got {_show(value)}"
        )
    return value


def _timestamp(label: str, value: object, latest_ms: int | None = None) -> int:
    """Epoch milliseconds from an integer or an RFC 3339 string with an explicit offset.

    From 1970-01-01 to the end of 2100, and no later than ``latest_ms`` when given (wall time
    plus the tolerance: a record from the future would move the engine clock for good).
    """
    if isinstance(value, str):
        millis = _rfc3339_millis(label, value)
    elif isinstance(value, float) and value.is_integer():
        millis = _unit_checked(label, value, int(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        millis = _unit_checked(label, value, value)
    else:
        raise _Invalid(
            "bad_timestamp",
            f"Field '{label}' must be integer epoch milliseconds or an RFC 3339 string with an "
            f"offset such as 2026-11-22T10:00:00Z, got {_kind(value)}.",
        )
    if not 0 <= millis < _TS_END_MS:
        raise _Invalid(
            "bad_timestamp",
            f"Field '{label}' is outside 1970-01-01 .. 2100-12-31 (got {_show(value)}).",
        )
    if latest_ms is not None and millis > latest_ms:
        raise _Invalid(
            "future_timestamp",
            f"Field '{label}' is {format_ts(millis)}, later than the latest accepted event time "
            f"{format_ts(latest_ms)} (wall time plus RAPPORT_FUTURE_TOLERANCE_SECONDS); a record "
            "from the future would move the engine clock.",
        )
    return millis


def _unit_checked(label: str, value: object, millis: int) -> int:
    """Refuse integers that are clearly not epoch milliseconds, naming the likely unit."""
    if millis < 0:
        raise _Invalid(
            "bad_timestamp", f"Field '{label}' is before 1970-01-01 (got {_show(value)})."
        )
    if millis < _SECONDS_LIKE_BELOW:
        raise _Invalid(
            "bad_timestamp",
            f"Field '{label}' looks like epoch seconds (got {_show(value)}); send milliseconds.",
        )
    for unit, per_ms in (("microseconds", 1_000), ("nanoseconds", 1_000_000)):
        if millis >= _TS_END_MS and _SECONDS_LIKE_BELOW <= millis // per_ms < _TS_END_MS:
            raise _Invalid(
                "bad_timestamp",
                f"Field '{label}' looks like epoch {unit} (got {_show(value)}); send milliseconds.",
            )
    return millis


def _rfc3339_millis(label: str, text: str) -> int:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise _Invalid(
            "bad_timestamp",
            f"Field '{label}' is not an RFC 3339 date-time like 2026-11-22T10:00:00Z "
            f"(got {_show(text)}).",
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None:
        # Without an offset the instant is ambiguous; guessing a zone would shift event time.
        raise _Invalid(
            "bad_timestamp",
            f"Field '{label}' has no UTC offset (got {_show(text)}); add 'Z' or e.g. '+02:00'.",
        )
    if offset in ("Z", "z"):
        zone = UTC
    else:
        off_hours, off_minutes = int(offset[1:3]), int(offset[4:6])
        if off_hours > 23 or off_minutes > 59:
            raise _Invalid("bad_timestamp", f"Field '{label}' has an impossible UTC offset.")
        shift = timedelta(hours=off_hours, minutes=off_minutes)
        zone = timezone(-shift if offset[0] == "-" else shift)
    micros = int((fraction or "").ljust(6, "0")[:6])  # finer than microseconds is dropped
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, zone
        )
    except ValueError:  # e.g. month 13, Feb 30, hour 24, leap second :60
        raise _Invalid(
            "bad_timestamp", f"Field '{label}' is not a real date and time (got {_show(text)})."
        ) from None
    return (moment - _EPOCH) // _ONE_MS


def _email(label: str, value: object) -> str:
    text = _string(label, value, max_len=MAX_EMAIL)
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in text):
        raise _bad_value(label, "must be an address like name@example.com")
    return text


def _phone(label: str, value: object) -> str:
    if not isinstance(value, str):
        raise _bad_type(label, "a string", value)
    if not _PHONE.fullmatch(value) or not any(c.isdigit() for c in value):
        raise _bad_value(
            label,
            "must be 3 to 32 characters of digits, spaces, '+', '-', '(' and ')', with a digit",
        )
    return value


def _push_token(label: str, value: object) -> str:
    return _string(label, value, max_len=MAX_PUSH_TOKEN)


@lru_cache(maxsize=1024)
def _is_zone(name: str) -> bool:
    """Whether ``name`` loads as a time zone; cached because loading reads the tz database."""
    if name == "localtime":  # a host alias, not an IANA name: its meaning varies by machine
        return False
    try:
        ZoneInfo(name)
    except Exception:  # ValueError, ZoneInfoNotFoundError, OSError (too long, a directory...)
        return False
    return True


def _timezone(label: str, value: object) -> str:
    text = _string(label, value, max_len=MAX_TIMEZONE)
    if not _is_zone(text):
        raise _bad_value(label, f"must be an IANA time zone like Europe/Berlin, got {_show(text)}")
    return text


def _birthday(label: str, value: object) -> str:
    if not isinstance(value, str):
        raise _bad_type(label, "a string", value)
    problem = f"must be a real date as MM-DD or YYYY-MM-DD, got {_show(value)}"
    if full := _BIRTHDAY_FULL.fullmatch(value):
        year, month, day = full.groups()
    elif short := _BIRTHDAY_DAY.fullmatch(value):
        year, (month, day) = "2000", short.groups()  # a leap year, so 02-29 is a birthday
    else:
        raise _bad_value(label, problem)
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        raise _bad_value(label, problem) from None
    return value


def _attributes(label: str, value: object) -> tuple[tuple[str, Scalar], ...]:
    """A flat object of scalars, as sorted pairs so equal attribute sets compare equal."""
    if not isinstance(value, dict):
        raise _bad_type(label, "an object", value)
    if len(value) > MAX_ATTRIBUTES:
        raise _bad_value(label, f"must have at most {MAX_ATTRIBUTES} keys, got {len(value)}")
    pairs: list[tuple[str, Scalar]] = []
    for key, item in value.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY:
            raise _bad_value(label, f"keys must be 1 to {MAX_ATTRIBUTE_KEY} characters")
        if isinstance(item, float) and not math.isfinite(item):
            raise _bad_value(f"{label}.{key}", "must be a finite number")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise _bad_type(f"{label}.{key}", "a string, number, boolean or null", item)
        pairs.append((key, item))
    return tuple(sorted(pairs, key=lambda pair: pair[0]))


def _consent(label: str, value: object) -> tuple[tuple[Channel, bool], ...]:
    """Per-channel consent; a channel that is absent (or null) stays unchanged downstream."""
    if not isinstance(value, dict):
        raise _bad_type(label, "an object", value)
    pairs: list[tuple[Channel, bool]] = []
    for key, item in value.items():
        if key not in CHANNELS:
            raise _bad_value(label, f"has unknown channel {_show(key)}; use email, sms or push")
        if item is not None:
            pairs.append((cast(Channel, key), _flag(f"{label}.{key}", item)))
    return tuple(sorted(pairs))


def _item(label: str, value: object) -> OrderItem:
    if not isinstance(value, dict):
        raise _bad_type(label, "an object", value)
    where = f"{label}."
    return OrderItem(
        product_id=_ident(f"{where}product_id", _need(value, "product_id", where)),
        category=_maybe(value, "category", _category, where),
        quantity=_maybe(value, "quantity", _quantity, where) or 1,
        unit_price=_maybe(value, "unit_price", _amount, where),
    )


def _items(label: str, value: object) -> tuple[OrderItem, ...]:
    if not isinstance(value, list):
        raise _bad_type(label, "an array", value)
    if len(value) > MAX_ITEMS:
        raise _bad_value(label, f"must have at most {MAX_ITEMS} entries, got {len(value)}")
    return tuple(_item(f"{label}[{index}]", entry) for index, entry in enumerate(value))


# --------------------------------------------------------------------------- decoding


def _decode(raw: bytes | None, max_bytes: int) -> Mapping[str, object]:
    """Bytes to a JSON object, refusing oversize records before reading them."""
    if raw is None:
        raise _Invalid("malformed_json", "Record has no value (a Kafka tombstone?).")
    if len(raw) > max_bytes:
        raise _Invalid(
            "too_large",
            f"Record is {len(raw)} bytes, over the limit of {max_bytes} bytes; it was not read.",
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson reports bad UTF-8 as a JSON error; tell the two apart only on this slow path.
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as bad:
            raise _Invalid(
                "not_utf8", f"Record is not valid UTF-8 (bad byte at offset {bad.start})."
            ) from None
        raise _Invalid("malformed_json", f"Record is not valid JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise _Invalid("not_object", f"Record must be a JSON object, got {_kind(value)}.")
    return cast(Mapping[str, object], value)


def _common(obj: Mapping[str, object], latest_ms: int | None) -> tuple[str, int]:
    """The ``event_id`` and ``ts`` every input event carries."""
    return (
        _event_id("event_id", _need(obj, "event_id")),
        _timestamp("ts", _need(obj, "ts"), latest_ms),
    )


def _parse(
    raw: bytes | None, max_bytes: int, build: Callable[[Mapping[str, object]], T]
) -> T | Rejected:
    """The public boundary: decode, build, and turn the first problem into ``Rejected``."""
    try:
        return build(_decode(raw, max_bytes))
    except _Invalid as problem:
        return Rejected(reason=problem.reason, code=problem.code)


# --------------------------------------------------------------------------- per topic


def _click(obj: Mapping[str, object], latest_ms: int | None) -> Click:
    event_id, ts = _common(obj, latest_ms)
    customer_id = _ident("customer_id", _need(obj, "customer_id"))
    click_type = _member("type", _need(obj, "type"), CLICK_TYPES)
    product_id = _maybe(obj, "product_id", _ident)
    anonymous_id = _maybe(obj, "anonymous_id", _ident)
    if product_id is None and click_type in CLICK_TYPES_NEEDING_PRODUCT:
        raise _Invalid(
            "missing_field", f"Field 'product_id' is required when type is '{click_type}'."
        )
    if anonymous_id is None and click_type == "identify":
        raise _Invalid("missing_field", "Field 'anonymous_id' is required when type is 'identify'.")
    return Click(
        event_id=event_id,
        ts=ts,
        customer_id=customer_id,
        type=cast(ClickType, click_type),
        product_id=product_id,
        category=_maybe(obj, "category", _category),
        price=_maybe(obj, "price", _amount),
        quantity=_maybe(obj, "quantity", _quantity) or 1,
        query=_maybe(obj, "query", _query),
        session_id=_maybe(obj, "session_id", _ident),
        anonymous_id=anonymous_id,
    )


def _order(obj: Mapping[str, object], default_currency: str, latest_ms: int | None) -> Order:
    event_id, ts = _common(obj, latest_ms)
    customer_id = _ident("customer_id", _need(obj, "customer_id"))
    order_id = _ident("order_id", _need(obj, "order_id"))
    status = _maybe(obj, "status", lambda label, v: _member(label, v, ORDER_STATUSES)) or "placed"
    # A placed order without a total cannot count towards revenue; cancellations and refunds
    # only need to name the order.
    if status == "placed":
        total: float | None = _amount("total", _need(obj, "total"))
    else:
        total = _maybe(obj, "total", _amount)
    return Order(
        event_id=event_id,
        ts=ts,
        customer_id=customer_id,
        order_id=order_id,
        status=cast(OrderStatus, status),
        total=total,
        currency=_maybe(obj, "currency", _currency) or default_currency,
        items=_maybe(obj, "items", _items) or (),
        coupon_code=_maybe(obj, "coupon_code", _ident),
        offer_id=_maybe(obj, "offer_id", _ident),
    )


def _customer(obj: Mapping[str, object], latest_ms: int | None) -> CustomerUpdate:
    event_id, ts = _common(obj, latest_ms)
    return CustomerUpdate(
        event_id=event_id,
        ts=ts,
        customer_id=_ident("customer_id", _need(obj, "customer_id")),
        email=_maybe(obj, "email", _email),
        phone=_maybe(obj, "phone", _phone),
        push_token=_maybe(obj, "push_token", _push_token),
        timezone=_maybe(obj, "timezone", _timezone),
        birthday=_maybe(obj, "birthday", _birthday),
        attributes=_maybe(obj, "attributes", _attributes) or (),
        consent=_maybe(obj, "consent", _consent) or (),
        erase=_maybe(obj, "erase", _flag) or False,
    )


def _catalog(obj: Mapping[str, object], latest_ms: int | None) -> CatalogUpdate:
    event_id, ts = _common(obj, latest_ms)
    return CatalogUpdate(
        event_id=event_id,
        ts=ts,
        product_id=_ident("product_id", _need(obj, "product_id")),
        category=_maybe(obj, "category", _category),
        price=_maybe(obj, "price", _amount),
        in_stock=_maybe(obj, "in_stock", _flag),
        name=_maybe(obj, "name", _name),
        new_arrival=_maybe(obj, "new_arrival", _flag),
    )


def _feedback(obj: Mapping[str, object], latest_ms: int | None) -> Feedback:
    event_id, ts = _common(obj, latest_ms)
    customer_id = _ident("customer_id", _need(obj, "customer_id"))
    action = _member("action", _need(obj, "action"), FEEDBACK_ACTIONS)
    channel = _maybe(obj, "channel", lambda label, v: _member(label, v, CHANNELS))
    return Feedback(
        event_id=event_id,
        ts=ts,
        customer_id=customer_id,
        action=cast(FeedbackAction, action),
        offer_id=_maybe(obj, "offer_id", _ident),
        channel=cast(Channel | None, channel),
    )


# --------------------------------------------------------------------------- public API


def parse_ts(value: object, *, latest_ms: int | None = None) -> int | None:
    """Epoch milliseconds from a contract ``ts`` value, or ``None`` when it is not one.

    Accepts integer epoch milliseconds (an integral float too) and RFC 3339 strings with an
    offset, from 1970-01-01 to the end of 2100 (integers below 10^10 read as epoch seconds
    and are refused), and no later than ``latest_ms`` when given. For other callers (the
    importer, ``?as_of=``) that need the same rules without a ``Rejected``.
    """
    try:
        return _timestamp("ts", value, latest_ms)
    except _Invalid:
        return None


# Every parser takes the same keywords so callers can dispatch through ``PARSERS``.
# ``latest_ms`` is the latest event time the caller accepts (wall time plus the tolerance of
# RAPPORT_FUTURE_TOLERANCE_SECONDS); ``None`` checks only the fixed 1970..2100 range. The
# caller reads the clock, so parsing stays a pure function of its arguments.


def parse_click(
    raw: bytes | None,
    *,
    max_bytes: int,
    default_currency: str = "EUR",
    latest_ms: int | None = None,
) -> Click | Rejected:
    """Decode a ``clicks`` record; never raises."""
    return _parse(raw, max_bytes, lambda obj: _click(obj, latest_ms))


def parse_order(
    raw: bytes | None,
    *,
    max_bytes: int,
    default_currency: str = "EUR",
    latest_ms: int | None = None,
) -> Order | Rejected:
    """Decode an ``orders`` record; ``default_currency`` fills a missing ``currency``."""
    return _parse(raw, max_bytes, lambda obj: _order(obj, default_currency, latest_ms))


def parse_customer(
    raw: bytes | None,
    *,
    max_bytes: int,
    default_currency: str = "EUR",
    latest_ms: int | None = None,
) -> CustomerUpdate | Rejected:
    """Decode a ``customers`` record; never raises."""
    return _parse(raw, max_bytes, lambda obj: _customer(obj, latest_ms))


def parse_catalog(
    raw: bytes | None,
    *,
    max_bytes: int,
    default_currency: str = "EUR",
    latest_ms: int | None = None,
) -> CatalogUpdate | Rejected:
    """Decode a ``catalog`` record; never raises."""
    return _parse(raw, max_bytes, lambda obj: _catalog(obj, latest_ms))


def parse_feedback(
    raw: bytes | None,
    *,
    max_bytes: int,
    default_currency: str = "EUR",
    latest_ms: int | None = None,
) -> Feedback | Rejected:
    """Decode a ``feedback`` record; never raises."""
    return _parse(raw, max_bytes, lambda obj: _feedback(obj, latest_ms))


#: Parser per input topic suffix; all share the keyword signature so callers can dispatch.
PARSERS: dict[str, Callable[..., Event | Rejected]] = {
    "clicks": parse_click,
    "orders": parse_order,
    "customers": parse_customer,
    "catalog": parse_catalog,
    "feedback": parse_feedback,
}
