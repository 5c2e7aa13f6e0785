"""Campaign guarantees as properties over random customer histories (the built-in library).

Histories hold customer updates (random consent per channel, addresses sometimes missing,
random time zones), clicks, orders and their cancellations, feedback (unsubscribes among
it) and lifecycle ticks at random later times that fire pending triggers and held
messages. Whatever happens, over all outputs:

(a) no message without standing consent for its channel when it leaves (the customer's
    consent facts so far replayed here: latest event time wins, a tie is a revocation),
    and never to an address the customer did not give;
(b) never more than the caps per customer, counting messages by ``send_at``;
(c) never a ``send_at`` inside quiet hours (21:00-08:00) in the customer's zone;
(d) never two messages with the same ``message_id``, within or across customers;
(e) nothing (no message, no offer) for a customer in the global control group;

and a decision that is not ``sent`` carries no offer and no message.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.campaign_config import CampaignBook
from models.campaigns import EngineConfig, next_pending_due
from models.customer import (
    AnyEvent,
    CampaignTrigger,
    CustomerState,
    StepConfig,
    new_state,
    step,
)
from models.events import (
    Click,
    CustomerUpdate,
    Feedback,
    LifecycleTick,
    Order,
    OrderItem,
)
from models.ledger import in_control_group
from models.outputs import CampaignResult, Message
from models.segments import next_due
from stream.campaign_file import builtin_text, parse_book

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
#: c10 is in the 5 % control group of the library (asserted below).
CUSTOMERS = ("c1", "c2", "c3", "c10")
ZONES = (None, "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC")
DEFAULT_ZONE = "Europe/Berlin"
PRODUCTS = ("p1", "p2", "p3")
CATEGORIES = ("shoes", "bags")
CHANNELS = ("email", "sms", "push")
ADDRESS = {"email": "email", "sms": "phone", "push": "push_token"}
QUIET_START, QUIET_END = time(21, 0), time(8, 0)

LIBRARY = parse_book(builtin_text(), source="builtin", currency="EUR")
SMALL_CAPS = parse_book(
    builtin_text()
    .replace("caps: {day: 2, week: 5}", "caps: {day: 1, week: 2}")
    .replace("sms: {day: 1, week: 2}", "sms: {day: 1, week: 1}"),
    source="small-caps",
    currency="EUR",
)
BOOKS = {"library": LIBRARY, "small caps": SMALL_CAPS}


def test_the_books_are_what_the_properties_assume() -> None:
    assert LIBRARY.ledger.control_group_percent == 5.0
    assert (LIBRARY.ledger.caps.day, LIBRARY.ledger.caps.week) == (2, 5)
    assert (SMALL_CAPS.ledger.caps.day, SMALL_CAPS.ledger.caps.week) == (1, 2)
    assert (
        SMALL_CAPS.ledger.channel_caps["sms"].day,
        SMALL_CAPS.ledger.channel_caps["sms"].week,
    ) == (1, 1)
    assert [c.name for c in SMALL_CAPS.campaigns] == [c.name for c in LIBRARY.campaigns]
    assert [in_control_group(c, config=LIBRARY.ledger) for c in CUSTOMERS] == [
        False,
        False,
        False,
        True,
    ]


# --- histories -----------------------------------------------------------------------------------
#
# Each customer's events mostly arrive in event-time order (gaps of minutes to weeks, ties
# allowed), now and then late (stamped up to two days before what already arrived);
# customers interleave freely. Each customer keeps one time zone: every update repeats it
# (consent, hence any message, only comes with an update). Besides the random ticks of the
# history, a timer fires every due item at its due time, as ``agents.timers`` does (one id
# per claim). A time zone changed while a message is held breaks (c): pinned as a strict
# xfail in test_campaign_engine.py.

# One draw each (draws are most of the cost): 10-minute steps up to 12 h, or 1 to 20 days.
_gaps = st.integers(min_value=0, max_value=92).map(
    lambda n: n * 10 * MINUTE if n <= 72 else (n - 72) * DAY
)
# A quarter of the events arrive late, stamped 1 to 48 hours before the customer's last one.
_lags = st.integers(min_value=0, max_value=191).map(lambda n: max(0, n - 143) * HOUR)
_tick_gaps = st.integers(min_value=1, max_value=60 * 24).map(lambda n: n * HOUR)
_starts = st.integers(min_value=0, max_value=24 * 6).map(lambda n: T0 + n * 10 * MINUTE)
_maybe = st.sampled_from((True, True, True, False))  # an address is there 3 times in 4
_consent = st.sampled_from((None, True, True, True, False))  # per channel; None: not given
_zones = st.sampled_from(ZONES)
_birthdays = st.one_of(st.none(), st.sampled_from(("1990-11-23", "1985-12-01", "2000-02-29")))
_products = st.sampled_from(PRODUCTS)
_categories = st.sampled_from(CATEGORIES)
_clicks = st.sampled_from(
    ("product_view", "product_view", "product_view", "add_to_cart", "remove_from_cart", "page_view")
)
_order_ids = st.sampled_from(("o1", "o2", "o3", "o4"))
_statuses = st.sampled_from(("placed", "placed", "placed", "cancelled"))
_totals = st.sampled_from((20.0, 120.0, 400.0, 1500.0))
_bought = st.sets(_products, min_size=1)
_feedback = st.sampled_from(("unsubscribed", "opened", "clicked"))
_feedback_channels = st.one_of(st.none(), st.sampled_from(CHANNELS))
_kinds = st.sampled_from(
    ("update", "update", "click", "click", "click", "order", "order", "feedback", "catalog", "tick")
)
_catalog = st.sampled_from(("price_drop", "back_in_stock", "new_arrival"))


def event_of(draw: st.DrawFn, kind: str, cid: str, eid: str, ts: int, zone: str | None) -> AnyEvent:
    if kind == "tick":
        return LifecycleTick(eid, ts, cid)
    if kind == "update":
        return CustomerUpdate(
            eid,
            ts,
            cid,
            email=f"{cid}@example.com" if draw(_maybe) else None,
            phone=f"+47{len(cid)}{ts % 1000:03d}" if draw(_maybe) else None,
            push_token=f"push-{cid}-{ts % 97}" if draw(_maybe) else None,
            timezone=zone,  # the customer's one zone (None: the library's default)
            birthday=draw(_birthdays),
            consent=tuple(
                (ch, granted) for ch in CHANNELS if (granted := draw(_consent)) is not None
            ),
        )
    if kind == "catalog":  # a catalogue fan-out reaching this customer
        context = (
            ("category", draw(_categories)),
            ("previous_price", 12.0),
            ("price", 9.0),
            ("product_id", draw(_products)),
        )
        return CampaignTrigger(eid, ts, cid, draw(_catalog), context)
    if kind == "click":
        kind = draw(_clicks)
        return Click(eid, ts, cid, kind, product_id=draw(_products), category=draw(_categories))
    if kind == "order":
        if draw(_statuses) == "cancelled":
            return Order(eid, ts, cid, draw(_order_ids), status="cancelled")
        items = tuple(OrderItem(p, draw(_categories), 1, 10.0) for p in sorted(draw(_bought)))
        return Order(eid, ts, cid, draw(_order_ids), total=draw(_totals), items=items)
    action, channel = draw(_feedback), draw(_feedback_channels)
    return Feedback(eid, ts, cid, action, channel=channel)


@st.composite
def histories(draw: st.DrawFn) -> list[AnyEvent]:
    """Events of one to three customers in arrival order, unique ids."""
    customers = draw(st.lists(st.sampled_from(CUSTOMERS), min_size=1, max_size=3, unique=True))
    zones = {cid: draw(_zones) for cid in customers}
    clocks = {cid: draw(_starts) for cid in customers}
    events: list[AnyEvent] = []
    for n in range(draw(st.integers(min_value=1, max_value=60))):
        cid = draw(st.sampled_from(customers))
        kind = draw(_kinds)
        clocks[cid] += draw(_tick_gaps if kind == "tick" else _gaps)
        # Now and then an event arrives late: stamped before what already arrived.
        ts = clocks[cid] - draw(_lags)
        events.append(event_of(draw, kind, cid, f"e{n}", ts, zones[cid]))
    return events


# --- what happened, replayed independently of the engine ------------------------------------------


@dataclass
class Known:
    """What a customer has told us so far (arrival order), kept here, not by the engine."""

    consent: dict[str, list[tuple[int, bool]]] = field(default_factory=lambda: defaultdict(list))
    addresses: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    zone: str | None = None

    def learn(self, event: AnyEvent) -> None:
        if isinstance(event, CustomerUpdate):
            for channel, granted in event.consent:
                self.consent[channel].append((event.ts, granted))
            for channel, name in ADDRESS.items():
                value = getattr(event, name)
                if value is not None:
                    self.addresses[channel].add(value)
            if event.timezone is not None:
                self.zone = event.timezone
        elif isinstance(event, Feedback) and event.action == "unsubscribed":
            for channel in (event.channel,) if event.channel else CHANNELS:
                self.consent[channel].append((event.ts, False))

    def consents(self, channel: str) -> bool:
        """Latest event time wins; at the same time a revocation wins."""
        facts = self.consent.get(channel, [])
        if not facts:
            return False
        _, granted = max(facts, key=lambda f: (f[0], not f[1]))
        return granted


def local_clock(at: int, zone: str | None) -> time:
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at)
    return instant.astimezone(ZoneInfo(zone or DEFAULT_ZONE)).time()


def quiet(clock: time) -> bool:
    return clock >= QUIET_START or clock < QUIET_END


@dataclass(frozen=True)
class Left:
    """A message that left, with what we knew of the customer then."""

    message: Message
    consented: bool
    addresses: frozenset[str]
    zone: str | None


def due(state: CustomerState, config: StepConfig) -> int | None:
    """The customer's next timer (lifecycle boundary or pending item), as the index says."""
    dues = [
        d
        for d in (next_due(state.profile, config=config.segments), next_pending_due(state.profile))
        if d is not None
    ]
    return min(dues, default=None)


#: After the history the timer keeps firing for this long.
HORIZON = 200 * DAY


def play(events: list[AnyEvent], config: StepConfig) -> tuple[list[CampaignResult], list[Left]]:
    """Apply the history, a timer firing each due item on time; what was decided and left."""
    states: dict[str, CustomerState] = {}
    known: dict[str, Known] = defaultdict(Known)
    results: list[CampaignResult] = []
    left: list[Left] = []

    def apply(event: AnyEvent) -> None:
        cid = event.customer_id
        known[cid].learn(event)
        stepped = step(states.get(cid) or new_state(cid), event, config=config)
        states[cid] = stepped.state
        for output in stepped.outputs:
            if not isinstance(output, CampaignResult):
                continue
            results.append(output)
            if output.message is not None:
                channel = output.message.channel
                left.append(
                    Left(
                        output.message,
                        known[cid].consents(channel),
                        frozenset(known[cid].addresses[channel]),
                        known[cid].zone,
                    )
                )

    firings = itertools.count()

    def fire_timers(cid: str, until: int) -> None:
        for _ in range(100):
            state = states.get(cid)
            when = None if state is None else due(state, config)
            if when is None or when > until:
                return
            apply(LifecycleTick(f"tick:{cid}:{when}:{next(firings)}", when, cid))
        raise AssertionError("the timer does not settle")  # pragma: no cover

    for event in events:
        fire_timers(event.customer_id, event.ts)
        apply(event)
    for cid, state in list(states.items()):
        fire_timers(cid, (state.profile.clock or T0) + HORIZON)
    return results, left


def over_cap(send_times: list[int], window: int, cap: int | None) -> list[int]:
    """The send times whose rolling window ``(t - window, t]`` holds more than ``cap`` messages."""
    if cap is None:
        return []
    ordered = sorted(send_times)
    return [t for t in ordered if sum(1 for s in ordered if t - window < s <= t) > cap]


def check(results: list[CampaignResult], left: list[Left], campaign_book: CampaignBook) -> None:
    ledger = campaign_book.ledger
    for result in results:
        if result.decision.outcome != "sent":
            assert (result.offer, result.message) == (None, None), result
        else:
            assert result.offer is not None and result.offer.offer_id == result.decision.offer_id
        # (e) the control group gets nothing
        if in_control_group(result.decision.customer_id, config=ledger):
            assert (result.offer, result.message) == (None, None), result
            assert result.decision.outcome != "sent"
    by_customer: dict[str, list[Message]] = defaultdict(list)
    for item in left:
        message = item.message
        by_customer[message.customer_id].append(message)
        # (a) standing consent when it leaves, and an address the customer gave
        assert item.consented, ("no consent", message)
        assert message.to and message.to in item.addresses, ("not an address given", message)
        # (c) never inside quiet hours in the customer's zone
        assert not quiet(local_clock(message.send_at, item.zone)), (
            "quiet hours",
            message,
            item.zone,
        )
    # (d) message ids are unique, within and across customers
    ids = [item.message.message_id for item in left]
    assert len(ids) == len(set(ids)), "duplicate message id"
    # (b) caps per customer, by send_at
    for cid, messages in by_customer.items():
        times = [m.send_at for m in messages]
        sms = [m.send_at for m in messages if m.channel == "sms"]
        assert not over_cap(times, DAY, ledger.caps.day), (cid, "day", messages)
        assert not over_cap(times, 7 * DAY, ledger.caps.week), (cid, "week", messages)
        sms_caps = ledger.channel_caps["sms"]
        assert not over_cap(sms, DAY, sms_caps.day), (cid, "sms day", messages)
        assert not over_cap(sms, 7 * DAY, sms_caps.week), (cid, "sms week", messages)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(sorted(BOOKS)))
def test_campaign_guarantees_hold_over_random_histories(events: list[AnyEvent], name: str) -> None:
    campaign_book = BOOKS[name]
    results, left = play(events, StepConfig(engine=EngineConfig(book=campaign_book)))
    check(results, left, campaign_book)


@pytest.mark.parametrize("name", sorted(BOOKS))
def test_the_checks_see_messages_at_all(name: str) -> None:
    """A busy, well-behaved history: messages do leave, so the checks are not vacuous."""
    cid = "c1"
    events: list[AnyEvent] = [
        CustomerUpdate(
            "u1",
            T0,
            cid,
            email="c1@example.com",
            phone="+4700",
            push_token="push-c1",
            consent=(("email", True), ("sms", True), ("push", True)),
        ),
        *(
            Click(f"v{n}", T0 + n * MINUTE, cid, "product_view", product_id="p1", category="shoes")
            for n in range(3)
        ),
        Click("a1", T0 + 5 * MINUTE, cid, "add_to_cart", product_id="p2", category="bags"),
        Order("o1", T0 + DAY, cid, "o1", total=400.0, items=(OrderItem("p1", "shoes", 1, 400.0),)),
        *(LifecycleTick(f"t{n}", T0 + n * 6 * HOUR, cid) for n in range(1, 400)),
    ]
    campaign_book = BOOKS[name]
    results, left = play(events, StepConfig(engine=EngineConfig(book=campaign_book)))
    check(results, left, campaign_book)
    assert {item.message.campaign for item in left} >= {"welcome", "spend_ladder"}
    assert len(left) >= 4
