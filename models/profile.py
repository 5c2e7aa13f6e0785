"""A customer's rolling state and how each contract event changes it.

Every ``apply_*`` is ``(profile, event) -> profile``: no I/O, no clock. Order
accounting is keyed by ``order_id`` so that facts may arrive in any order: a
``cancelled``/``refunded`` fact wins over ``placed`` whenever it arrives, and a
``placed`` that arrives after its cancellation still records nothing countable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from models.events import Channel, Click, CustomerEvent, CustomerUpdate, Feedback, Order

#: Recently viewed products kept per customer (most recent views win a place).
MAX_VIEWED = 50
#: Distinct products a cart may hold; beyond it the oldest line is dropped.
MAX_CART_LINES = 100


@dataclass(frozen=True, slots=True)
class OrderFact:
    """What is known of one order: its latest status and, once placed, its value."""

    status: str
    total: float | None = None
    ts: int | None = None


@dataclass(frozen=True, slots=True)
class ConsentFact:
    granted: bool
    ts: int


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything Rapport keeps about one customer (one Redis value, one writer)."""

    customer_id: str
    first_seen: int | None = None
    last_seen: int | None = None
    order_facts: Mapping[str, OrderFact] = field(default_factory=dict)
    views: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # product -> (views, ts)
    cart: Mapping[str, int] = field(default_factory=dict)  # product -> quantity
    consent: Mapping[str, ConsentFact] = field(default_factory=dict)
    contact: Mapping[str, str] = field(default_factory=dict)  # email, phone, push_token, ...
    attributes: Mapping[str, object] = field(default_factory=dict)
    fired: Mapping[str, int] = field(default_factory=dict)  # campaign -> trigger ts


@dataclass(frozen=True, slots=True)
class OrderTotals:
    orders: int
    revenue: float
    last_order_at: int | None


def apply_event(profile: Profile, event: CustomerEvent) -> Profile:
    """Fold one accepted, not-yet-applied event into the profile."""
    seen = touch(profile, event.ts)
    if isinstance(event, Click):
        return apply_click(seen, event)
    if isinstance(event, Order):
        return apply_order(seen, event)
    if isinstance(event, CustomerUpdate):
        return apply_customer(seen, event)
    return apply_feedback(seen, event)


def touch(profile: Profile, ts: int) -> Profile:
    """First/last seen are the min/max event time, so arrival order does not matter."""
    first = ts if profile.first_seen is None else min(profile.first_seen, ts)
    last = ts if profile.last_seen is None else max(profile.last_seen, ts)
    return replace(profile, first_seen=first, last_seen=last)


def apply_click(profile: Profile, click: Click) -> Profile:
    if click.type == "product_view" and click.product_id:
        return replace(profile, views=_count_view(profile.views, click.product_id, click.ts))
    if click.type == "add_to_cart" and click.product_id:
        cart = dict(profile.cart)
        cart[click.product_id] = cart.pop(click.product_id, 0) + click.quantity
        return replace(profile, cart=_bounded(cart, MAX_CART_LINES))
    if click.type == "remove_from_cart" and click.product_id:
        cart = dict(profile.cart)
        left = cart.get(click.product_id, 0) - click.quantity
        if left > 0:
            cart[click.product_id] = left
        else:
            cart.pop(click.product_id, None)
        return replace(profile, cart=cart)
    return profile


def apply_order(profile: Profile, order: Order) -> Profile:
    """Placed orders empty the bought lines from the cart; status facts never regress."""
    facts = dict(profile.order_facts)
    known = facts.get(order.order_id)
    if order.status == "placed":
        status = known.status if known is not None else "placed"
        if known is None or known.ts is None or order.ts >= known.ts:
            facts[order.order_id] = OrderFact(status=status, total=order.total, ts=order.ts)
        bought = {item.product_id for item in order.items}
        cart = {pid: qty for pid, qty in profile.cart.items() if pid not in bought}
        return replace(profile, order_facts=facts, cart=cart)
    total = known.total if known is not None else None
    ts = known.ts if known is not None else None
    facts[order.order_id] = OrderFact(status=order.status, total=total, ts=ts)
    return replace(profile, order_facts=facts)


def apply_customer(profile: Profile, update: CustomerUpdate) -> Profile:
    contact = dict(profile.contact)
    for name in ("email", "phone", "push_token", "timezone", "birthday"):
        value = getattr(update, name)
        if value is not None:
            contact[name] = value
    attributes = {**profile.attributes, **dict(update.attributes)}
    consent = dict(profile.consent)
    for channel, granted in update.consent:
        consent = _set_consent(consent, channel, granted, update.ts)
    return replace(profile, contact=contact, attributes=attributes, consent=consent)


def apply_feedback(profile: Profile, feedback: Feedback) -> Profile:
    """An ``unsubscribed`` revokes its channel, or every channel when none is named."""
    if feedback.action != "unsubscribed":
        return profile
    channels: tuple[Channel, ...] = (
        (feedback.channel,) if feedback.channel else ("email", "sms", "push")
    )
    consent = dict(profile.consent)
    for channel in channels:
        consent = _set_consent(consent, channel, False, feedback.ts)
    return replace(profile, consent=consent)


def order_totals(profile: Profile) -> OrderTotals:
    """Counts and revenue of placed orders that were not cancelled or refunded."""
    live = [
        fact
        for fact in profile.order_facts.values()
        if fact.status == "placed" and fact.ts is not None
    ]
    revenue = round(sum(fact.total or 0.0 for fact in live), 2)
    last = max((fact.ts for fact in live if fact.ts is not None), default=None)
    return OrderTotals(orders=len(live), revenue=revenue, last_order_at=last)


def has_consent(profile: Profile, channel: str) -> bool:
    """Only an explicit, still-standing opt-in counts: never seen means no."""
    fact = profile.consent.get(channel)
    return fact is not None and fact.granted


def _set_consent(
    consent: dict[str, ConsentFact], channel: str, granted: bool, ts: int
) -> dict[str, ConsentFact]:
    """Latest event time wins; a tie keeps a revocation (the safer answer)."""
    known = consent.get(channel)
    if known is None or ts > known.ts or (ts == known.ts and not granted):
        consent[channel] = ConsentFact(granted=granted, ts=ts)
    return consent


def _count_view(
    views: Mapping[str, tuple[int, int]], product_id: str, ts: int
) -> dict[str, tuple[int, int]]:
    updated = dict(views)
    count, last = updated.get(product_id, (0, ts))
    updated[product_id] = (count + 1, max(last, ts))
    if len(updated) > MAX_VIEWED:
        stalest = min(updated, key=lambda pid: (updated[pid][1], pid))
        del updated[stalest]
    return updated


def _bounded(cart: dict[str, int], limit: int) -> dict[str, int]:
    """Dicts keep insertion order, and a re-added line moves to the end: drop the oldest."""
    while len(cart) > limit:
        del cart[next(iter(cart))]
    return cart
