"""The contract's input events as typed, validated values.

Codecs in ``stream.codecs`` build these from raw bytes; everything downstream
trusts them. Times are epoch milliseconds (event time) everywhere in the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ClickType = Literal[
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "wishlist_add",
    "identify",
]
CLICK_TYPES: frozenset[str] = frozenset(ClickType.__args__)  # type: ignore[attr-defined]
CLICK_TYPES_NEEDING_PRODUCT: frozenset[str] = frozenset(
    {"product_view", "add_to_cart", "remove_from_cart", "wishlist_add"}
)

OrderStatus = Literal["placed", "cancelled", "refunded"]
ORDER_STATUSES: frozenset[str] = frozenset(OrderStatus.__args__)  # type: ignore[attr-defined]

Channel = Literal["email", "sms", "push"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push")

FeedbackAction = Literal[
    "delivered", "opened", "clicked", "dismissed", "bounced", "unsubscribed", "complained"
]
FEEDBACK_ACTIONS: frozenset[str] = frozenset(FeedbackAction.__args__)  # type: ignore[attr-defined]

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Click:
    """Browsing behaviour. ``quantity`` defaults to 1 per the contract."""

    event_id: str
    ts: int
    customer_id: str
    type: ClickType
    product_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int = 1
    query: str | None = None
    session_id: str | None = None
    anonymous_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderItem:
    product_id: str
    category: str | None = None
    quantity: int = 1
    unit_price: float | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """An order fact. ``cancelled``/``refunded`` remove the order's contribution."""

    event_id: str
    ts: int
    customer_id: str
    order_id: str
    status: OrderStatus = "placed"
    total: float | None = None
    currency: str = "EUR"
    items: tuple[OrderItem, ...] = ()
    coupon_code: str | None = None
    offer_id: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerUpdate:
    """Contact data, attributes and consent. ``None`` means "not in this event"."""

    event_id: str
    ts: int
    customer_id: str
    email: str | None = None
    phone: str | None = None
    push_token: str | None = None
    timezone: str | None = None
    birthday: str | None = None
    attributes: tuple[tuple[str, Scalar], ...] = ()
    consent: tuple[tuple[Channel, bool], ...] = ()
    erase: bool = False


@dataclass(frozen=True, slots=True)
class CatalogUpdate:
    event_id: str
    ts: int
    product_id: str
    category: str | None = None
    price: float | None = None
    in_stock: bool | None = None
    name: str | None = None
    new_arrival: bool | None = None


@dataclass(frozen=True, slots=True)
class Feedback:
    event_id: str
    ts: int
    customer_id: str
    action: FeedbackAction
    offer_id: str | None = None
    channel: Channel | None = None


CustomerEvent = Click | Order | CustomerUpdate | Feedback
Event = CustomerEvent | CatalogUpdate


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot be accepted; ``reason`` is a sentence for a human."""

    reason: str
    code: str = field(default="invalid")


# --- Internal events: what the engine tells the owner of another customer -------------
#
# They travel on the ``internal`` topic keyed by the customer they concern, so the
# one worker that owns that customer applies them (one writer per customer), and
# they carry deterministic event ids so redelivery changes nothing.


@dataclass(frozen=True, slots=True)
class LifecycleTick:
    """A scheduled moment (last order + N days) reached on the engine clock."""

    event_id: str
    ts: int
    customer_id: str


@dataclass(frozen=True, slots=True)
class MergeOut:
    """The anonymous visitor ``customer_id`` was identified as ``into``: hand over."""

    event_id: str
    ts: int
    customer_id: str
    into: str


@dataclass(frozen=True, slots=True)
class RfmUpdate:
    """The population refresh computed new RFM scores for this customer."""

    event_id: str
    ts: int
    customer_id: str
    r: int
    f: int
    m: int
    segment: str


@dataclass(frozen=True, slots=True)
class EraseRequest:
    """Right to erasure asked through the API (or for an alias of an erased customer)."""

    event_id: str
    ts: int
    customer_id: str
