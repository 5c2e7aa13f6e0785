"""One customer's step function: ``(state, event) -> (state, outputs)``.

The state is everything stored for the customer under one Redis key and one
writer: the profile, what has been applied (for dedup) and the outbox of
records decided but not yet confirmed published. A record enters the outbox in
the same atomic write as the state change that decided it, so a crash between
"decided" and "published" republishes it (same ids) instead of losing it.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from models.attribution import attribute_order, expose, touch
from models.campaigns import (
    CatalogFacts,
    EngineConfig,
    Moment,
    event_name,
    moment_of,
    next_pending_due,
    pending_due,
    run_campaigns,
)
from models.catalog import affinity_rank
from models.dedup import Applied, is_duplicate, remember, remember_offset
from models.events import (
    CustomerEvent,
    CustomerUpdate,
    EraseRequest,
    Feedback,
    LifecycleTick,
    MergeOut,
    Order,
    RfmUpdate,
)
from models.outputs import (
    BasketChange,
    CampaignResult,
    Forward,
    Internal,
    Output,
    SegmentChange,
    Tombstone,
)
from models.profile import (
    Profile,
    ProfileConfig,
    advance,
    apply_event,
    merge_profiles,
    order_totals,
)
from models.rfm import make_rfm
from models.segments import (
    SegmentConfig,
    memberships,
    next_due,
    passed_boundaries,
    segment_changes,
)


@dataclass(frozen=True, slots=True)
class MergeIn:
    """An anonymous profile handed over to the customer it was identified as."""

    event_id: str
    ts: int
    customer_id: str
    source_id: str
    profile: Profile


@dataclass(frozen=True, slots=True)
class CampaignTrigger:
    """A campaign triggered from outside the customer (catalog fan-out), with its context."""

    event_id: str
    ts: int
    customer_id: str
    campaign: str
    context: tuple[tuple[str, object], ...] = ()


InternalEvent = LifecycleTick | MergeOut | MergeIn | RfmUpdate | EraseRequest | CampaignTrigger
AnyEvent = CustomerEvent | InternalEvent

#: Topics whose records are erased customers' tombstones (compacted consumers drop the key).
TOMBSTONE_TOPICS = ("offers", "segments")


@dataclass(frozen=True, slots=True)
class CustomerState:
    profile: Profile
    applied: Applied = field(default_factory=Applied)
    outbox: tuple[Output, ...] = ()
    erased: bool = False


@dataclass(frozen=True, slots=True)
class StepConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    dedup_ids: int = 64


@dataclass(frozen=True, slots=True)
class Step:
    state: CustomerState
    duplicate: bool
    outputs: tuple[Output, ...] = ()


@dataclass(frozen=True, slots=True)
class Envelope:
    """An accepted event with the Kafka coordinates that identify its delivery.

    ``topic`` (contract suffix) and ``raw`` let an event addressed to a merged
    anonymous id be sent on, unchanged but for its customer, to its new owner.
    """

    event: AnyEvent
    source: str | None = None
    offset: int | None = None
    topic: str | None = None
    raw: bytes | None = None


def in_event_time(envelopes: list[Envelope]) -> list[Envelope]:
    """One customer's events of a batch in event-time order, each source's in its order.

    A fetch hands over its records topic by topic, so a customer's click of 18:08 can
    come before their unsubscribe of 17:12 from another topic. Merged by event time
    they are applied as they happened; records of one partition keep their partition
    order (their offsets must only grow, or dedup would take a later one for a repeat).
    """
    by_source: dict[str | None, list[Envelope]] = {}
    for envelope in envelopes:
        by_source.setdefault(envelope.source, []).append(envelope)
    if len(by_source) < 2:
        return envelopes
    return list(heapq.merge(*by_source.values(), key=lambda e: e.event.ts))


def new_state(
    customer_id: str, applied: Applied | None = None, *, erased: bool = False
) -> CustomerState:
    """An empty state; ``erased`` for a customer known only by an erasure fence."""
    return CustomerState(
        profile=Profile(customer_id=customer_id), applied=applied or Applied(), erased=erased
    )


def step(
    state: CustomerState,
    event: AnyEvent,
    *,
    config: StepConfig,
    source: str | None = None,
    offset: int | None = None,
    topic: str | None = None,
    raw: bytes | None = None,
    facts: CatalogFacts | None = None,
) -> Step:
    """Apply one event unless it was applied before; say what the change causes.

    ``source``/``offset`` identify the Kafka record (``"topic/partition"``,
    offset) so that redelivery is recognised exactly; they are ``None`` for
    events that do not come from a partition (tests).
    """
    if is_duplicate(state.applied, event.event_id, source, offset):
        # Remember the offset even so: once the id has left the window, a
        # redelivery of this very record must still be recognised by offset.
        applied = remember_offset(state.applied, source, offset)
        return Step(state=replace(state, applied=applied), duplicate=True)
    if isinstance(event, LifecycleTick):
        # A tick's id is new at every claim and applying one twice changes nothing, so it
        # takes no place in the id window: a backlog of re-claimed timers would push the
        # ids of real events out of it, and their redeliveries would be applied again.
        applied = remember_offset(state.applied, source, offset)
    else:
        applied = remember(state.applied, event.event_id, source, offset, keep=config.dedup_ids)
    if state.erased and isinstance(event, InternalEvent):
        # Timers, RFM updates, merges or campaign triggers still in flight for an
        # erased customer must not bring them back: only their own new events can.
        return Step(state=replace(state, applied=applied), duplicate=False)
    if state.erased:  # a later event after an erasure starts a new, empty profile
        fresh = new_state(state.profile.customer_id, state.applied)
        state = replace(fresh, outbox=state.outbox)
    if _erases(event):
        return Step(state=erase(state, event.ts, applied), duplicate=False)
    before = state.profile
    profile, outputs = _apply(before, event, topic, raw, config)
    if before.merged_into is None and not isinstance(event, InternalEvent):
        profile = replace(profile, events=profile.events + 1)
    if profile.merged_into is None and profile.clock is not None:
        now = profile.clock
        reached, passed = passed_boundaries(
            before, profile, event_ts=event.ts, config=config.segments
        )
        segments = memberships(profile, now=now, config=config.segments)
        changes = passed + segment_changes(profile.customer_id, reached, segments, ts=now)
        if segments != profile.segments:
            profile = replace(profile, segments=segments)
        profile, decided = _campaigns(
            before, profile, event, changes, config, facts or CatalogFacts()
        )
        results = tuple(o for o in decided if isinstance(o, CampaignResult))
        if results:
            exposures, exposed = expose(profile.exposures, results, profile.customer_id)
            profile = replace(profile, exposures=exposures)
        else:
            exposed = ()
        outputs += (*changes, *decided, *exposed)
    updated = CustomerState(profile=profile, applied=applied, outbox=state.outbox + outputs)
    return Step(state=updated, duplicate=False, outputs=outputs)


def erase(state: CustomerState, ts: int, applied: Applied) -> CustomerState:
    """Right to erasure: drop everything, pending outputs included; say goodbye once.

    Pending offers and messages are dropped from the outbox; what stays is what
    was already said about segments, the segment exits, the tombstones and the
    erasure of any anonymous ids merged into this customer. The store deletes
    the key once they are published.
    """
    profile = state.profile
    cid = profile.customer_id
    exits = segment_changes(cid, profile.segments, frozenset(), ts=ts)
    aliases = tuple(
        Internal("erase", alias, f"erase:{alias}:{ts}", ts) for alias in profile.aliases
    )
    tombstones = tuple(Tombstone(topic, cid) for topic in TOMBSTONE_TOPICS)
    goodbyes = tuple(o for o in state.outbox if _survives_erasure(o))
    return CustomerState(
        profile=Profile(customer_id=cid),
        applied=applied,
        outbox=(*goodbyes, *exits, *tombstones, *aliases),
        erased=True,
    )


def _survives_erasure(output: Output) -> bool:
    """What was decided before an erasure and may still leave: segment exits, tombstones,
    erasures of aliases and shop-level basket counts; never offers, messages, results
    about the customer, or hand-over claims that would bring their data back."""
    if isinstance(output, Internal):
        return output.kind == "erase"
    return isinstance(output, SegmentChange | Tombstone | BasketChange)


def _apply(
    profile: Profile, event: AnyEvent, topic: str | None, raw: bytes | None, config: StepConfig
) -> tuple[Profile, tuple[Output, ...]]:
    if isinstance(event, LifecycleTick):
        return replace(profile, clock=advance(profile, event.ts)), ()
    if isinstance(event, RfmUpdate):
        return replace(profile, rfm=make_rfm(event.r, event.f, event.m)), ()
    if isinstance(event, MergeOut):
        return _hand_over(profile, event)
    if isinstance(event, MergeIn):
        merged = merge_profiles(profile, event.profile, config=config.profile)
        aliases = profile.aliases + (
            () if event.source_id in profile.aliases else (event.source_id,)
        )
        return replace(merged, aliases=aliases), ()
    if profile.merged_into is not None:
        if topic is None or raw is None:
            return profile, ()
        return profile, (Forward(topic, profile.merged_into, raw),)
    if isinstance(event, CampaignTrigger):
        return profile, ()
    after = apply_event(profile, event, config=config.profile)
    baskets = _basket_changes(profile, after, event) if isinstance(event, Order) else ()
    return after, (*_claims(profile, after), *baskets)


def _basket_changes(before: Profile, after: Profile, event: Order) -> tuple[BasketChange, ...]:
    """An order's products join the basket counts when it starts counting, leave when it stops."""
    was = before.order_facts.get(event.order_id)
    now = after.order_facts.get(event.order_id)
    old = was.products if was is not None and was.counts else None
    new = now.products if now is not None and now.counts else None
    if old == new:
        return ()
    token = f"{after.customer_id}:{event.order_id}:{event.event_id}"
    changes = []
    if old:
        changes.append(BasketChange(f"{token}:-", old, -1))
    if new:
        changes.append(BasketChange(f"{token}:+", new, +1))
    return tuple(changes)


def _campaigns(
    before: Profile,
    after: Profile,
    event: AnyEvent,
    changes: tuple[SegmentChange, ...],
    config: StepConfig,
    facts: CatalogFacts,
) -> tuple[Profile, tuple[Output, ...]]:
    """Campaign decisions for contract events, due timers and outside triggers."""
    entered = tuple(c.segment for c in changes if c.change == "enter")
    if isinstance(event, LifecycleTick):
        after, due = pending_due(after, now=event.ts)
        moment = Moment(at=event.ts, trigger_event_id=event.event_id, entered=entered)
        return run_campaigns(after, moment, config=config.engine, facts=facts, due=due)
    if isinstance(event, CampaignTrigger):
        moment = Moment(at=event.ts, trigger_event_id=event.event_id, entered=entered)
        return run_campaigns(
            after,
            moment,
            config=config.engine,
            facts=facts,
            forced=((event.campaign, event.context),),
        )
    if isinstance(event, InternalEvent):
        if not entered:
            return after, ()
        moment = Moment(at=event.ts, trigger_event_id=event.event_id, entered=entered)
        return run_campaigns(after, moment, config=config.engine, facts=facts)
    moment = moment_of(before, after, event, changes)
    converted = _conversions(before, after, event, config)
    if isinstance(event, Feedback):
        exposures, touched = touch(after.exposures, event)
        after, converted = replace(after, exposures=exposures), touched
    after, results = run_campaigns(after, moment, config=config.engine, facts=facts)
    return after, (*converted, *results)


def _conversions(
    before: Profile, after: Profile, event: AnyEvent, config: StepConfig
) -> tuple[Output, ...]:
    """A newly counted order converts (and may be attributed to) earlier exposures."""
    if not isinstance(event, Order) or event_name(before, after, event) != "order_placed":
        return ()
    window = config.engine.book.attribution_window_ms
    return attribute_order(before.exposures, event, window_ms=window)


def _claims(before: Profile, after: Profile) -> tuple[Output, ...]:
    """Ask the owner of each newly identified anonymous id to hand its profile over."""
    cid = after.customer_id
    return tuple(
        Internal(
            "merge_out", anon, f"merge-out:{anon}:{cid}", after.clock or 0, body=(("into", cid),)
        )
        for anon in after.aliases
        if anon not in before.aliases and anon != cid
    )


def _hand_over(profile: Profile, event: MergeOut) -> tuple[Profile, tuple[Output, ...]]:
    """The anonymous profile moves to its customer; what stays is a forwarding address."""
    if profile.merged_into is not None:
        return profile, ()
    anon = profile.customer_id
    handed = Internal(
        "merge_in",
        event.into,
        f"merge-in:{anon}:{event.into}",
        event.ts,
        body=(("from", anon), ("profile", profile)),
    )
    exits = segment_changes(anon, profile.segments, frozenset(), ts=event.ts)
    return Profile(customer_id=anon, merged_into=event.into), (*exits, handed)


def _erases(event: AnyEvent) -> bool:
    return isinstance(event, EraseRequest) or (isinstance(event, CustomerUpdate) and event.erase)


@dataclass(frozen=True, slots=True)
class Folded:
    state: CustomerState
    accepted: int
    changed: bool
    #: The topic of each event recognised as a duplicate (for per-topic counts).
    duplicate_topics: tuple[str | None, ...] = ()

    @property
    def duplicates(self) -> int:
        return len(self.duplicate_topics)


def fold(
    state: CustomerState,
    envelopes: list[Envelope],
    *,
    config: StepConfig,
    facts: CatalogFacts | None = None,
) -> Folded:
    """Apply a customer's events of one batch in arrival (partition) order."""
    accepted = 0
    duplicate_topics: list[str | None] = []
    original = state
    for envelope in envelopes:
        result = step(
            state,
            envelope.event,
            config=config,
            source=envelope.source,
            offset=envelope.offset,
            topic=envelope.topic,
            raw=envelope.raw,
            facts=facts,
        )
        state = result.state
        if result.duplicate:
            duplicate_topics.append(envelope.topic)
        else:
            accepted += 1
    return Folded(
        state=state,
        accepted=accepted,
        changed=state != original,
        duplicate_topics=tuple(duplicate_topics),
    )


def clear_outbox(state: CustomerState) -> CustomerState:
    """After the broker acknowledged every record of the outbox."""
    return replace(state, outbox=())


@dataclass(frozen=True, slots=True)
class Indexes:
    """What population-level indexes must say about this customer after a write.

    ``buyer`` is ``(last_order_at, orders, revenue)`` for the RFM population
    (None: not a buyer, or erased, or handed over); ``due`` is the next timer
    (lifecycle boundary or pending campaign item); ``rfm_segment`` the last RFM
    cell emitted; ``affinity`` the categories whose rank changed
    (``models.catalog.affinity_rank``) and ``watching`` the products viewed or
    wishlisted since, with the ``dropped_*`` entries to remove.
    """

    buyer: tuple[int, int, float] | None
    rfm_segment: str | None
    due: int | None
    #: Write ``buyer`` / ``rfm_segment`` only when they moved: most writes change neither,
    #: and rewriting them costs four commands per customer per batch.
    buyer_changed: bool = True
    segment_changed: bool = True
    #: Write ``due`` only when it moved (rewriting an unchanged time would put a timer
    #: that is being fired back into the due set, and fire it again), or after a tick:
    #: claiming took the entry out, and only the tick's write puts it back.
    due_changed: bool = True
    affinity: Mapping[str, float] = field(default_factory=dict)
    watching: Mapping[str, int] = field(default_factory=dict)
    dropped_affinity: tuple[str, ...] = ()
    dropped_watching: tuple[str, ...] = ()
    #: (time, value) of live orders for the CLV fit; () removes the entry, None: unchanged.
    transactions: tuple[tuple[int, float], ...] | None = None
    #: On erasure: campaigns and orders whose results must forget the customer.
    forget_campaigns: tuple[str, ...] = ()
    forget_orders: tuple[str, ...] = ()


def indexes(
    state: CustomerState,
    *,
    config: StepConfig,
    before: CustomerState | None = None,
    ticked: bool = False,
) -> Indexes:
    """``ticked``: a tick was applied, so the timer it came from was claimed out of the due
    index, and the next due time is written even if it did not move (``timer_entry``)."""
    profile = state.profile
    old = before.profile if before is not None else Profile(customer_id=profile.customer_id)
    if state.erased or profile.merged_into is not None:
        return Indexes(
            buyer=None,
            rfm_segment=None,
            due=None,
            dropped_affinity=tuple(sorted(old.affinity)),
            dropped_watching=tuple(sorted(_watched(old))),
            transactions=(),
            forget_campaigns=tuple(sorted(old.exposures)) if state.erased else (),
            forget_orders=tuple(sorted(old.order_facts)) if state.erased else (),
        )
    buyer, segment = _buyer(profile)
    old_buyer, old_segment = _buyer(old) if before is not None else (None, None)
    due = _next_timer(profile, config)
    half_life = config.profile.affinity.half_life_ms
    ranks = {
        category: rank
        for category, (score, ref) in profile.affinity.items()
        if old.affinity.get(category) != (score, ref)
        and (rank := affinity_rank(score, ref, half_life_ms=half_life)) is not None
    }
    watched, was_watched = _watched(profile), _watched(old)
    return Indexes(
        buyer=buyer,
        rfm_segment=segment,
        buyer_changed=buyer != old_buyer,
        segment_changed=segment != old_segment,
        due=due,
        due_changed=due != _next_timer(old, config) or before is None or ticked,
        affinity=ranks,
        watching={pid: ts for pid, ts in watched.items() if was_watched.get(pid) != ts},
        dropped_affinity=tuple(sorted(set(old.affinity) - set(profile.affinity))),
        dropped_watching=tuple(sorted(set(was_watched) - set(watched))),
        transactions=None if transactions(profile) == transactions(old) else transactions(profile),
    )


def timer_entry(state: CustomerState, *, config: StepConfig) -> Indexes:
    """Only the due-timer entry, for a customer whose tick changed nothing.

    Claiming a timer takes the customer out of the due index; applying the tick puts
    the next due time back with the write. A tick that changes nothing (it was claimed
    twice: its lease expired while it waited behind a backlog) writes nothing, so the
    entry is restored from the state as it stands, or the customer's next timer would
    be lost.
    """
    due = None if state.erased else _next_timer(state.profile, config)
    return Indexes(
        buyer=None,
        rfm_segment=None,
        due=due,
        buyer_changed=False,
        segment_changed=False,
        due_changed=due is not None,
    )


def _buyer(profile: Profile) -> tuple[tuple[int, int, float] | None, str | None]:
    """The RFM population entry (last order, orders, revenue) and the last RFM cell emitted."""
    totals = order_totals(profile)
    if totals.orders == 0 or totals.last_order_at is None:
        return None, None
    segment = profile.rfm.segment if profile.rfm is not None else None
    return (totals.last_order_at, totals.orders, totals.revenue), segment


def transactions(profile: Profile) -> tuple[tuple[int, float], ...]:
    """The customer's live orders as (time, value), oldest first: the CLV model's input."""
    return tuple(
        sorted((f.ts, f.total or 0.0) for f in profile.order_facts.values() if f.counts and f.ts)
    )


def _next_timer(profile: Profile, config: StepConfig) -> int | None:
    dues = [
        d
        for d in (next_due(profile, config=config.segments), next_pending_due(profile))
        if d is not None
    ]
    return min(dues) if dues else None


def _watched(profile: Profile) -> dict[str, int]:
    """Products the customer viewed or wishlisted, with the last time they did."""
    watched = {pid: ts for pid, (_, ts) in profile.views.items()}
    for pid, ts in profile.wishlist.items():
        watched[pid] = max(ts, watched.get(pid, ts))
    return watched
