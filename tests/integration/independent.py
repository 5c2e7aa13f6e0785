"""A plain, independent reference computation of customer profiles from contract events.

Written from the text of ``../shared/CONTRACT.md`` (sections 1, 3 and 4) only: it imports
nothing from ``models``, ``stream`` or ``agents``, so an engine bug cannot be copied into the
expectation. Everything is deliberately straightforward (lists, dicts, loops; quadratic where
that is simplest) and works on whole histories in memory.

Input: records as ``(topic_suffix, value)`` pairs, in delivery order, where ``value`` is the
contract JSON object (a ``dict``) of an input event. Records may repeat (redelivery).

Semantics, each with the contract sentence it comes from:

* dedup: "A re-delivered event (same ``event_id`` for the same customer ...) must change
  nothing": the first delivery of an ``(customer_id, event_id)`` pair counts, later ones are
  ignored.
* identity: "``identify`` requires ``anonymous_id``: everything known under ``anonymous_id`` is
  merged into ``customer_id``": every event of an identified anonymous id, before or after the
  ``identify``, is attributed to the known customer; the anonymous id then has no profile of
  its own (``GET`` answers 404). Can be switched off (``merge_identities=False``) to describe
  an engine that does not merge yet.
* event time: "All state and every time window use event time": a customer's events are
  applied in ``ts`` order (ties: delivery order), whatever order they were delivered in.
* ``first_seen``/``last_seen``: min/max ``ts`` of the customer's accepted events, any topic.
* orders: a ``placed`` order counts unless its ``order_id`` has a ``cancelled``/``refunded``
  event (in any arrival order); ``revenue`` is the sum of their totals rounded to 2 decimals,
  ``avg_order_value`` = revenue / orders rounded to 2 (``None`` without orders),
  ``last_order_at`` the latest ``ts`` of a counted order.
* cart: ``add_to_cart`` adds ``quantity`` (default 1), ``remove_from_cart`` subtracts it (the
  line goes at <= 0), a placed order removes the lines of the products it contains.
* views: ``product_view`` counts per product.
* consent: per channel the latest event time wins, a tie keeps the revocation, a channel never
  seen is ``False``; feedback ``unsubscribed`` revokes its channel, or all channels without one.
* lifecycle (section 4, defaults): ``prospect`` 0 orders, ``new`` 1, ``active`` 2..3, ``loyal``
  >= 4; but ``at_risk`` when the last order is >= 90 days old at ``as_of`` and ``lapsed`` when
  >= 180 days (inclusive boundaries).
* RFM (section 4): population = customers with >= 1 order; recency = whole days from the last
  order to ``as_of`` (fewer is better), frequency = orders, monetary = revenue; score =
  1 + floor(5 * strictly_worse / population), at most 5.
* tier: bronze >= 0, silver >= 250, gold >= 1000, platinum >= 5000 of revenue; ``None`` with 0
  orders.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

DAY_MS = 86_400_000
CHANNELS = ("email", "sms", "push")
CUSTOMER_TOPICS = ("clicks", "orders", "customers", "feedback")

ACTIVE_FROM_ORDERS = 2
LOYAL_FROM_ORDERS = 4
AT_RISK_AFTER_DAYS = 90
LAPSED_AFTER_DAYS = 180

TIERS = (("platinum", 5000.0), ("gold", 1000.0), ("silver", 250.0), ("bronze", 0.0))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(ts: Any) -> int:
    """Contract ``ts``: integer epoch milliseconds, or RFC 3339 with an offset."""
    if isinstance(ts, bool):
        raise ValueError(f"not a timestamp: {ts!r}")
    if isinstance(ts, int):
        return ts
    if isinstance(ts, float) and ts == int(ts):
        return int(ts)
    if isinstance(ts, str):
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp without offset: {ts!r}")
        # Integer arithmetic: float seconds * 1000 can land a millisecond short.
        return (parsed - EPOCH) // timedelta(milliseconds=1)
    raise ValueError(f"not a timestamp: {ts!r}")


def rfc3339(ms: int | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC, as the API shows instants."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


@dataclass
class Customer:
    """What the reference knows of one customer (after identity resolution)."""

    customer_id: str
    first_seen: int | None = None
    last_seen: int | None = None
    placed: dict[str, tuple[float, int]] = field(default_factory=dict)  # order -> (total, ts)
    reversed_orders: set[str] = field(default_factory=set)
    cart: dict[str, int] = field(default_factory=dict)
    views: dict[str, int] = field(default_factory=dict)
    consent: dict[str, tuple[bool, int]] = field(default_factory=dict)  # channel -> (on, ts)
    consent_log: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)  # every fact
    placed_at: dict[str, int] = field(default_factory=dict)  # order -> delivery position
    reversals: dict[str, tuple[int, int]] = field(default_factory=dict)  # order -> (ts, position)
    events: int = 0  # distinct events applied (after dedup and identity resolution)
    borrowed: int = 0  # of those, events sent under an anonymous id merged into this one
    stamps: list[int] = field(default_factory=list)  # their event times, in event-time order

    # -- derived fields, as section 3 names them ----------------------------------------------

    def counted_orders(self) -> dict[str, tuple[float, int]]:
        return {oid: fact for oid, fact in self.placed.items() if oid not in self.reversed_orders}

    @property
    def orders(self) -> int:
        return len(self.counted_orders())

    @property
    def revenue(self) -> float:
        total = 0.0
        for amount, _ in self.counted_orders().values():
            total += amount
        return round(total, 2)

    @property
    def avg_order_value(self) -> float | None:
        if self.orders == 0:
            return None
        return round(self.revenue / self.orders, 2)

    @property
    def last_order_at(self) -> int | None:
        latest = None
        for _, ts in self.counted_orders().values():
            if latest is None or ts > latest:
                latest = ts
        return latest

    def consent_now(self) -> dict[str, bool]:
        return {ch: self.consent[ch][0] if ch in self.consent else False for ch in CHANNELS}

    def consent_at(self, channel: str, at: int) -> bool:
        """Consent for ``channel`` in event time ``at``: the latest fact at or before it wins,
        a revocation wins a tie, a channel never seen is ``False``."""
        facts = [(ts, granted) for ts, granted in self.consent_log.get(channel, []) if ts <= at]
        if not facts:
            return False
        latest = max(ts for ts, _ in facts)
        return all(granted for ts, granted in facts if ts == latest)

    def redated(self, since: int, due: int) -> bool:
        """Whether a lifecycle boundary at ``due`` (counted from the order at ``since``) is
        re-dated by a reversal: an order placed in between was counted until its
        cancellation or refund arrived (after it on the wire) dated at or after ``due``, so
        the stage changes when that reversal is applied, not by a timer at ``due``."""
        for order_id, (_, placed) in self.placed.items():
            reversal = self.reversals.get(order_id)
            if reversal is None or not since < placed < due <= reversal[0]:
                continue
            if self.placed_at.get(order_id, -1) < reversal[1]:
                return True
        return False

    def lifecycle(self, as_of: int) -> str:
        orders = self.orders
        if orders == 0:
            return "prospect"
        idle = as_of - (self.last_order_at or 0)
        if idle >= LAPSED_AFTER_DAYS * DAY_MS:
            return "lapsed"
        if idle >= AT_RISK_AFTER_DAYS * DAY_MS:
            return "at_risk"
        if orders >= LOYAL_FROM_ORDERS:
            return "loyal"
        if orders >= ACTIVE_FROM_ORDERS:
            return "active"
        return "new"

    def tier(self) -> str | None:
        if self.orders == 0:
            return None
        for name, floor in TIERS:
            if self.revenue >= floor:
                return name
        return "bronze"

    def recency_days(self, as_of: int) -> int | None:
        if self.last_order_at is None:
            return None
        return (as_of - self.last_order_at) // DAY_MS


@dataclass
class Reference:
    """The expected state of every customer, plus the identities that were merged away."""

    customers: dict[str, Customer]
    merged: dict[str, str]  # anonymous id -> the known customer it was merged into
    accepted: int  # distinct events applied
    duplicates: int  # deliveries ignored as redeliveries
    clock: int | None = None  # the engine clock: the largest event time accepted


def resolve(merged: dict[str, str], customer_id: str) -> str:
    """Follow anonymous id -> known id links to the end (chains are allowed)."""
    seen = set()
    while customer_id in merged and customer_id not in seen:
        seen.add(customer_id)
        customer_id = merged[customer_id]
    return customer_id


def compute(
    records: Iterable[tuple[str, dict[str, Any]]], *, merge_identities: bool = True
) -> Reference:
    """Expected per-customer state after all ``records`` (see the module docstring)."""
    # 1. dedup: the first delivery of (customer_id, event_id) counts.
    distinct: list[tuple[int, str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for position, (topic, value) in enumerate(records):
        if topic not in CUSTOMER_TOPICS:
            continue
        key = (value["customer_id"], value["event_id"])
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        distinct.append((position, topic, value))

    # 2. identities: anonymous id -> known customer, from identify clicks.
    merged: dict[str, str] = {}
    if merge_identities:
        for _, topic, value in distinct:
            if topic == "clicks" and value["type"] == "identify":
                anonymous = value["anonymous_id"]
                if anonymous != value["customer_id"]:
                    merged[anonymous] = value["customer_id"]

    # 3. each customer's events in event-time order (ties: delivery order).
    by_customer: dict[str, list[tuple[int, int, str, dict[str, Any]]]] = {}
    for position, topic, value in distinct:
        owner = resolve(merged, value["customer_id"])
        by_customer.setdefault(owner, []).append((to_ms(value["ts"]), position, topic, value))

    customers: dict[str, Customer] = {}
    clock: int | None = None
    for owner, events in by_customer.items():
        customer = Customer(customer_id=owner)
        for ts, position, topic, value in sorted(events, key=lambda e: (e[0], e[1])):
            apply(customer, topic, value, ts, position)
            customer.borrowed += value["customer_id"] != owner
            clock = ts if clock is None else max(clock, ts)
        customers[owner] = customer
    return Reference(
        customers=customers,
        merged=merged,
        accepted=len(distinct),
        duplicates=duplicates,
        clock=clock,
    )


def apply(
    customer: Customer, topic: str, value: dict[str, Any], ts: int, position: int = -1
) -> None:
    customer.events += 1
    customer.stamps.append(ts)
    if customer.first_seen is None or ts < customer.first_seen:
        customer.first_seen = ts
    if customer.last_seen is None or ts > customer.last_seen:
        customer.last_seen = ts
    if topic == "clicks":
        apply_click(customer, value)
    elif topic == "orders":
        apply_order(customer, value, ts, position)
    elif topic == "customers":
        for channel, granted in (value.get("consent") or {}).items():
            set_consent(customer, channel, bool(granted), ts)
    elif topic == "feedback" and value.get("action") == "unsubscribed":
        channel = value.get("channel")
        for each in [channel] if channel else list(CHANNELS):
            set_consent(customer, each, False, ts)


def apply_click(customer: Customer, value: dict[str, Any]) -> None:
    kind = value["type"]
    product = value.get("product_id")
    quantity = value.get("quantity") or 1
    if kind == "product_view":
        customer.views[product] = customer.views.get(product, 0) + 1
    elif kind == "add_to_cart":
        customer.cart[product] = customer.cart.get(product, 0) + quantity
    elif kind == "remove_from_cart":
        left = customer.cart.get(product, 0) - quantity
        if left > 0:
            customer.cart[product] = left
        elif product in customer.cart:
            del customer.cart[product]


def apply_order(customer: Customer, value: dict[str, Any], ts: int, position: int = -1) -> None:
    status = value.get("status") or "placed"
    order_id = value["order_id"]
    if status in ("cancelled", "refunded"):
        customer.reversed_orders.add(order_id)
        if order_id not in customer.reversals or ts < customer.reversals[order_id][0]:
            customer.reversals[order_id] = (ts, position)
        return
    customer.placed[order_id] = (float(value["total"]), ts)
    customer.placed_at[order_id] = position
    for item in value.get("items") or []:
        if item["product_id"] in customer.cart:
            del customer.cart[item["product_id"]]


def set_consent(customer: Customer, channel: str, granted: bool, ts: int) -> None:
    customer.consent_log.setdefault(channel, []).append((ts, granted))
    known = customer.consent.get(channel)
    if known is None or ts > known[1] or (ts == known[1] and not granted):
        customer.consent[channel] = (granted, ts)


def rfm_scores(customers: dict[str, Customer], as_of: int) -> dict[str, tuple[int, int, int]]:
    """(r, f, m) per customer with >= 1 order, by the section 4 formula (mid-rank of ties),
    counted naively."""
    population = [c for c in customers.values() if c.orders >= 1]
    size = len(population)
    scores: dict[str, tuple[int, int, int]] = {}
    for me in population:
        worse = [0, 0, 0]
        equal = [0, 0, 0]
        my_recency = me.recency_days(as_of)
        for other in population:
            other_recency = other.recency_days(as_of)
            pairs = (
                (-(other_recency or 0), -(my_recency or 0)),  # fewer days is better
                (other.orders, me.orders),
                (other.revenue, me.revenue),
            )
            for i, (theirs, mine) in enumerate(pairs):
                worse[i] += theirs < mine
                equal[i] += theirs == mine
        r, f, m = (score(w, e, size) for w, e in zip(worse, equal, strict=True))
        scores[me.customer_id] = (r, f, m)
    return scores


def score(worse: int, equal: int, population: int) -> int:
    """min(5, 1 + floor(5 * (worse + equal / 2) / population)), in exact fractions."""
    return min(5, 1 + math.floor(Fraction(5) * (worse + Fraction(equal, 2)) / population))


def expected_view(customer: Customer, as_of: int) -> dict[str, Any]:
    """The contract fields of ``GET /customers/{id}?as_of=`` this reference pins down exactly."""
    return {
        "customer_id": customer.customer_id,
        "first_seen": rfc3339(customer.first_seen),
        "last_seen": rfc3339(customer.last_seen),
        "orders": customer.orders,
        "revenue": customer.revenue,
        "avg_order_value": customer.avg_order_value,
        "last_order_at": rfc3339(customer.last_order_at),
        "lifecycle": customer.lifecycle(as_of),
        "tier": customer.tier(),
        "cart": dict(customer.cart),
        "views": dict(customer.views),
        "consent": customer.consent_now(),
    }


# -- records as they come off the wire (the soak: malformed and far-future ones included) ------

CLICK_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "wishlist_add",
    "identify",
)
CLICKS_NEEDING_PRODUCT = ("product_view", "add_to_cart", "remove_from_cart", "wishlist_add")
ORDER_STATUSES = ("placed", "cancelled", "refunded")
FEEDBACK_ACTIONS = (
    "delivered",
    "opened",
    "clicked",
    "dismissed",
    "bounced",
    "unsubscribed",
    "complained",
)
#: How far ahead of wall time an event may be (contract section 1: "an event far ahead of
#: wall time must not move the engine clock"). The soak's far-future records are decades out.
FUTURE_TOLERANCE_MS = DAY_MS


@dataclass(frozen=True, slots=True)
class Refused:
    """A record the contract refuses: it belongs in ``deadletter``, and changes nothing."""

    position: int
    topic: str
    payload: bytes
    reason: str


def read_record(topic: str, payload: bytes, *, now_ms: int) -> dict[str, Any] | str:
    """The contract value of a raw record, or the reason the contract refuses it."""
    import json  # the standard library's parser: an implementation independent of the engine's

    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not JSON"
    if not isinstance(value, dict):
        return "not a JSON object"
    problem = common_problem(value, now_ms=now_ms) or TOPIC_RULES[topic](value)
    return problem if problem is not None else value


def common_problem(value: dict[str, Any], *, now_ms: int) -> str | None:
    cid, eid = value.get("customer_id"), value.get("event_id")
    if not isinstance(cid, str) or not cid:
        return "customer_id missing"
    if not isinstance(eid, str) or not 1 <= len(eid) <= 128:
        return "event_id not 1..128 characters"
    try:
        ts = to_ms(value.get("ts"))
    except ValueError:
        return "ts not epoch milliseconds or RFC 3339 with an offset"
    if ts < 0:
        return "ts before 1970"
    if ts > now_ms + FUTURE_TOLERANCE_MS:
        return "ts far ahead of wall time"
    return None


def click_problem(value: dict[str, Any]) -> str | None:
    kind = value.get("type")
    if kind not in CLICK_TYPES:
        return "unknown click type"
    if kind in CLICKS_NEEDING_PRODUCT and not isinstance(value.get("product_id"), str):
        return "product_id missing"
    if kind == "identify" and not isinstance(value.get("anonymous_id"), str):
        return "anonymous_id missing"
    quantity = value.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        return "quantity not an integer >= 1"
    return None


def order_problem(value: dict[str, Any]) -> str | None:
    if not isinstance(value.get("order_id"), str) or not value["order_id"]:
        return "order_id missing"
    status = value.get("status", "placed")
    if status not in ORDER_STATUSES:
        return "unknown status"
    total = value.get("total")
    if status == "placed" and (
        isinstance(total, bool)
        or not isinstance(total, int | float)
        or not 0 <= total < float("inf")
    ):
        return "total not a number >= 0"
    return None


def customer_problem(value: dict[str, Any]) -> str | None:
    consent = value.get("consent")
    if consent is not None and (
        not isinstance(consent, dict) or not all(isinstance(v, bool) for v in consent.values())
    ):
        return "consent not an object of booleans"
    return None


def feedback_problem(value: dict[str, Any]) -> str | None:
    return None if value.get("action") in FEEDBACK_ACTIONS else "unknown action"


TOPIC_RULES = {
    "clicks": click_problem,
    "orders": order_problem,
    "customers": customer_problem,
    "feedback": feedback_problem,
}


def compute_raw(
    records: Iterable[tuple[str, bytes]], *, now_ms: int, merge_identities: bool = True
) -> tuple[Reference, list[Refused]]:
    """``compute`` over raw records as sent; the refused ones are set aside with a reason."""
    accepted: list[tuple[str, dict[str, Any]]] = []
    refused: list[Refused] = []
    for position, (topic, payload) in enumerate(records):
        read = read_record(topic, payload, now_ms=now_ms)
        if isinstance(read, str):
            refused.append(Refused(position, topic, payload, read))
        else:
            accepted.append((topic, read))
    return compute(accepted, merge_identities=merge_identities), refused


# -- lifecycle timers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Boundary:
    """A lifecycle stage entered with no event of the customer's: at last order + N days.

    Section 4: "A customer enters at_risk/lapsed at exactly last order + N days of engine
    time, whether or not another event arrives." ``timer`` is False when a reversal
    re-dates the change (``Customer.redated``): then it is not a timer's doing.
    """

    customer_id: str
    segment: str  # lifecycle:at_risk or lifecycle:lapsed
    ts: int
    timer: bool = True


def boundaries(customer: Customer, *, until: int) -> list[Boundary]:
    """Every at_risk/lapsed entry the customer's counted orders imply up to engine time
    ``until``: at order + 90 (180) days, unless the next counted order came first."""
    placed = sorted(ts for _, ts in customer.counted_orders().values())
    out = []
    for index, since in enumerate(placed):
        after = placed[index + 1] if index + 1 < len(placed) else None
        for days, stage in ((AT_RISK_AFTER_DAYS, "at_risk"), (LAPSED_AFTER_DAYS, "lapsed")):
            due = since + days * DAY_MS
            if due > until or (after is not None and after <= due):
                continue
            timer = not customer.redated(since, due)
            out.append(Boundary(customer.customer_id, f"lifecycle:{stage}", due, timer))
    return out
