"""Hypothesis strategies shared by the property tests: random customer histories.

Values come from small pools (customers, products, order ids, a coarse time grid) so that
collisions the domain must handle actually happen: the same product added and removed, one
order placed and cancelled, consent granted and revoked at the same instant.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from models.customer import CustomerState, Envelope, StepConfig, fold, new_state
from models.events import (
    CHANNELS,
    CLICK_TYPES,
    CLICK_TYPES_NEEDING_PRODUCT,
    Click,
    CustomerEvent,
    CustomerUpdate,
    Feedback,
    Order,
    OrderItem,
)

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
HOUR_MS = 3_600_000
SOURCE = "t/0"
CUSTOMERS = ("c1", "c2", "c3")
PRODUCTS = ("p1", "p2", "p3", "p4")
ORDER_IDS = ("o1", "o2", "o3")
EMAILS = ("ann@example.com", "bob@example.com")
FEEDBACK_ACTIONS = (
    "delivered",
    "opened",
    "clicked",
    "dismissed",
    "bounced",
    "unsubscribed",
    "complained",
)
#: Histories stay shorter than the dedup window, so every producer retry is "within it".
MAX_EVENTS = 40
CONFIG = StepConfig()

# A coarse grid of event times: ties (same ms) happen often, arrival order != time order.
timestamps = st.integers(min_value=0, max_value=24).map(lambda h: T0 + h * HOUR_MS)
cents = st.integers(min_value=0, max_value=50_000).map(lambda c: c / 100)


@st.composite
def clicks(draw: st.DrawFn, customer_id: str) -> Click:
    kind = draw(st.sampled_from(sorted(CLICK_TYPES)))
    needs_product = kind in CLICK_TYPES_NEEDING_PRODUCT
    product = draw(st.sampled_from(PRODUCTS)) if needs_product else None
    return Click(
        event_id="",
        ts=draw(timestamps),
        customer_id=customer_id,
        type=kind,  # type: ignore[arg-type]
        product_id=product,
        quantity=draw(st.integers(min_value=1, max_value=3)),
        query="shoes" if kind == "search" else None,
        anonymous_id="anon-1" if kind == "identify" else None,
    )


@st.composite
def orders(draw: st.DrawFn, customer_id: str) -> Order:
    status = draw(st.sampled_from(("placed", "placed", "cancelled", "refunded")))
    items: tuple[OrderItem, ...] = ()
    total = None
    if status == "placed":
        total = draw(cents)
        bought = draw(st.lists(st.sampled_from(PRODUCTS), max_size=2, unique=True))
        items = tuple(OrderItem(product_id=pid, quantity=1, unit_price=1.0) for pid in bought)
    return Order(
        event_id="",
        ts=draw(timestamps),
        customer_id=customer_id,
        order_id=draw(st.sampled_from(ORDER_IDS)),
        status=status,  # type: ignore[arg-type]
        total=total,
        items=items,
    )


@st.composite
def customer_updates(draw: st.DrawFn, customer_id: str) -> CustomerUpdate:
    # Biased towards opt-ins so that campaigns are sent, not only suppressed.
    granted = st.sampled_from((True, True, False))
    consent = draw(st.dictionaries(st.sampled_from(CHANNELS), granted, max_size=3))
    attributes = draw(
        st.dictionaries(
            st.sampled_from(("city", "age", "vip")),
            st.one_of(
                st.none(), st.integers(0, 99), st.sampled_from(("Oslo", "Lyon")), st.booleans()
            ),
            max_size=2,
        )
    )
    return CustomerUpdate(
        event_id="",
        ts=draw(timestamps),
        customer_id=customer_id,
        email=draw(st.one_of(st.none(), st.sampled_from(EMAILS))),
        phone=draw(st.one_of(st.none(), st.just("+4712345678"))),
        attributes=tuple(sorted(attributes.items())),
        consent=tuple(sorted(consent.items())),
    )


@st.composite
def feedbacks(draw: st.DrawFn, customer_id: str) -> Feedback:
    return Feedback(
        event_id="",
        ts=draw(timestamps),
        customer_id=customer_id,
        action=draw(st.sampled_from(FEEDBACK_ACTIONS)),  # type: ignore[arg-type]
        channel=draw(st.one_of(st.none(), st.sampled_from(CHANNELS))),
    )


@st.composite
def events(draw: st.DrawFn, customers: tuple[str, ...]) -> CustomerEvent:
    customer_id = draw(st.sampled_from(customers))
    kind = draw(
        st.sampled_from(
            (clicks, clicks, orders, orders, customer_updates, customer_updates, feedbacks)
        )
    )
    return draw(kind(customer_id))


@st.composite
def histories(draw: st.DrawFn, min_size: int = 0) -> list[Envelope]:
    """Events for 1-3 customers, unique event ids, delivered on ``t/0`` at offsets 0, 1, ..."""
    customers = CUSTOMERS[: draw(st.integers(min_value=1, max_value=3))]
    drawn = draw(st.lists(events(customers), min_size=min_size, max_size=MAX_EVENTS))
    return [
        Envelope(event=replace(event, event_id=f"e{i}"), source=SOURCE, offset=i)
        for i, event in enumerate(drawn)
    ]


@st.composite
def histories_with_outbox(draw: st.DrawFn) -> list[Envelope]:
    """A history in which c1 opts in to email with an address: the outbox cannot be empty."""
    envelopes = draw(histories())
    opt_in = CustomerUpdate(
        event_id="opt-in",
        ts=draw(timestamps),
        customer_id="c1",
        email=EMAILS[0],
        consent=(("email", True),),
    )
    at = draw(st.integers(min_value=0, max_value=len(envelopes)))
    # Before any other c1 event, so no earlier revocation can outrank the opt-in.
    firsts = [i for i, env in enumerate(envelopes) if env.event.customer_id == "c1"]
    at = min([at, *firsts[:1]])
    events_ = [env.event for env in envelopes]
    events_.insert(at, opt_in)
    return [Envelope(event=e, source=SOURCE, offset=i) for i, e in enumerate(events_)]


def fold_all(envelopes: list[Envelope], config: StepConfig = CONFIG) -> dict[str, CustomerState]:
    """Route each delivery to its customer's state (as the engine keys by customer id)."""
    states: dict[str, CustomerState] = {}
    for envelope in envelopes:
        cid = envelope.event.customer_id
        state = states.get(cid) or new_state(cid)
        states[cid] = fold(state, [envelope], config=config).state
    return states
