"""Hypothesis strategies shared by the property tests: random customer histories.

Values come from small pools (customers, products, order ids, a coarse time grid) so that
collisions the domain must handle actually happen: the same product added and removed, one
order placed and cancelled, consent granted and revoked at the same instant.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from hypothesis import strategies as st

from models.campaigns import EngineConfig
from models.customer import AnyEvent, CustomerState, Envelope, StepConfig, fold, new_state
from models.events import (
    CHANNELS,
    CLICK_TYPES,
    CLICK_TYPES_NEEDING_PRODUCT,
    Click,
    CustomerUpdate,
    EraseRequest,
    Feedback,
    LifecycleTick,
    Order,
    OrderItem,
    RfmUpdate,
)
from models.rfm import make_rfm
from stream.campaign_file import builtin_text, parse_book

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
HOUR_MS = 3_600_000
SOURCE = "t/0"
CUSTOMERS = ("c1", "c2", "c3")
PRODUCTS = ("p1", "p2", "p3", "p4")
CATEGORIES = ("shoes", "bags")
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
#: The built-in campaign library without its control group, so that campaigns decide things
#: (the default ``StepConfig()`` has an empty campaign book).
LIBRARY = parse_book(
    builtin_text().replace("control_group_percent: 5", "control_group_percent: 0"),
    source="builtin",
    currency="EUR",
)
CONFIG = StepConfig(engine=EngineConfig(book=LIBRARY))

# A coarse grid of event times: ties (same ms) happen often, arrival order != time order.
timestamps = st.integers(min_value=0, max_value=24).map(lambda h: T0 + h * HOUR_MS)
cents = st.integers(min_value=0, max_value=50_000).map(lambda c: c / 100)
categories = st.one_of(st.none(), st.sampled_from(CATEGORIES))

# Strategies are built once here, not inside the composites: building (and validating) them
# on every draw was most of the cost of a property test.
_click_types = st.sampled_from(sorted(CLICK_TYPES))
_products = st.sampled_from(PRODUCTS)
_quantities = st.integers(min_value=1, max_value=3)
_statuses = st.sampled_from(("placed", "placed", "cancelled", "refunded"))
_bought = st.lists(_products, max_size=2, unique=True)
_order_ids = st.sampled_from(ORDER_IDS)
# Biased towards opt-ins so that campaigns are sent, not only suppressed.
_consents = st.dictionaries(
    st.sampled_from(CHANNELS), st.sampled_from((True, True, False)), max_size=3
)
_attributes = st.dictionaries(
    st.sampled_from(("city", "age", "vip")),
    st.one_of(st.none(), st.integers(0, 99), st.sampled_from(("Oslo", "Lyon")), st.booleans()),
    max_size=2,
)
_emails = st.one_of(st.none(), st.sampled_from(EMAILS))
_phones = st.one_of(st.none(), st.just("+4712345678"))
_actions = st.sampled_from(FEEDBACK_ACTIONS)
_channels = st.one_of(st.none(), st.sampled_from(CHANNELS))
_scores = st.integers(min_value=1, max_value=5)

# Each kind of event is drawn for customer "" and given its customer by ``events``.


@st.composite
def clicks(draw: st.DrawFn) -> Click:
    kind = draw(_click_types)
    needs_product = kind in CLICK_TYPES_NEEDING_PRODUCT
    product = draw(_products) if needs_product else None
    return Click(
        event_id="",
        ts=draw(timestamps),
        customer_id="",
        type=kind,  # type: ignore[arg-type]
        product_id=product,
        category=draw(categories) if needs_product else None,
        quantity=draw(_quantities),
        query="shoes" if kind == "search" else None,
        anonymous_id="anon-1" if kind == "identify" else None,
    )


@st.composite
def orders(draw: st.DrawFn) -> Order:
    status = draw(_statuses)
    items: tuple[OrderItem, ...] = ()
    total = None
    if status == "placed":
        total = draw(cents)
        items = tuple(
            OrderItem(product_id=pid, category=draw(categories), quantity=1, unit_price=1.0)
            for pid in draw(_bought)
        )
    return Order(
        event_id="",
        ts=draw(timestamps),
        customer_id="",
        order_id=draw(_order_ids),
        status=status,  # type: ignore[arg-type]
        total=total,
        items=items,
    )


@st.composite
def customer_updates(draw: st.DrawFn) -> CustomerUpdate:
    consent = draw(_consents)
    attributes = draw(_attributes)
    return CustomerUpdate(
        event_id="",
        ts=draw(timestamps),
        customer_id="",
        email=draw(_emails),
        phone=draw(_phones),
        attributes=tuple(sorted(attributes.items())),
        consent=tuple(sorted(consent.items())),
    )


@st.composite
def feedbacks(draw: st.DrawFn) -> Feedback:
    return Feedback(
        event_id="",
        ts=draw(timestamps),
        customer_id="",
        action=draw(_actions),  # type: ignore[arg-type]
        channel=draw(_channels),
    )


@st.composite
def ticks(draw: st.DrawFn) -> LifecycleTick:
    """A lifecycle timer firing at some time (whether or not anything is due then)."""
    return LifecycleTick(event_id="", ts=draw(timestamps), customer_id="")


@st.composite
def rfm_updates(draw: st.DrawFn) -> RfmUpdate:
    rfm = make_rfm(draw(_scores), draw(_scores), draw(_scores))
    return RfmUpdate(
        event_id="",
        ts=draw(timestamps),
        customer_id="",
        r=rfm.r,
        f=rfm.f,
        m=rfm.m,
        segment=rfm.segment,
    )


@st.composite
def erasures(draw: st.DrawFn) -> CustomerUpdate | EraseRequest:
    ts = draw(timestamps)
    if draw(st.booleans()):
        return CustomerUpdate(event_id="", ts=ts, customer_id="", erase=True)
    return EraseRequest(event_id="", ts=ts, customer_id="")


_kinds = st.one_of(
    clicks(),
    clicks(),
    orders(),
    orders(),
    customer_updates(),
    customer_updates(),
    feedbacks(),
    ticks(),
    rfm_updates(),
)
_erasures = erasures()
_rarely = st.integers(min_value=0, max_value=9)
_customer_counts = st.integers(min_value=1, max_value=len(CUSTOMERS))


@functools.cache
def _one_of(customers: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(customers)


@functools.cache
def _event_lists(
    customers: tuple[str, ...], erase: bool, min_size: int
) -> st.SearchStrategy[list[AnyEvent]]:
    return st.lists(events(customers, erase), min_size=min_size, max_size=MAX_EVENTS)


@st.composite
def events(draw: st.DrawFn, customers: tuple[str, ...], erase: bool = False) -> AnyEvent:
    customer_id = draw(_one_of(customers))
    # Erasures are rare: each wipes most of what the history built.
    event = draw(_erasures) if erase and draw(_rarely) == 0 else draw(_kinds)
    return replace(event, customer_id=customer_id)


@st.composite
def histories(draw: st.DrawFn, min_size: int = 0, erase: bool = False) -> list[Envelope]:
    """Events for 1-3 customers, unique event ids, delivered on ``t/0`` at offsets 0, 1, ...

    Besides the contract's input events they hold lifecycle ticks and RFM updates, and,
    with ``erase``, the occasional erasure (which drops pending campaign results).
    """
    customers = CUSTOMERS[: draw(_customer_counts)]
    drawn = draw(_event_lists(customers, erase, min_size))
    return [
        Envelope(event=replace(event, event_id=f"e{i}"), source=SOURCE, offset=i)
        for i, event in enumerate(drawn)
    ]


#: 11:00 to 20:00 in Berlin, the library's default zone: outside quiet hours.
daytime = st.integers(min_value=0, max_value=9).map(lambda h: T0 + h * HOUR_MS)


@st.composite
def histories_with_outbox(draw: st.DrawFn) -> list[Envelope]:
    """A history in which c1 opts in to email with an address in the daytime: the welcome
    message leaves at once, so the outbox cannot be empty."""
    envelopes = draw(histories())
    opt_in = CustomerUpdate(
        event_id="opt-in",
        ts=draw(daytime),
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
