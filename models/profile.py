"""A customer's rolling state and how each contract event changes it.

Every ``apply_*`` is ``(profile, event, config) -> profile``: no I/O, no clock.
Order accounting is keyed by ``order_id`` so that facts may arrive in any
order: a ``cancelled``/``refunded`` fact wins over ``placed`` whenever it
arrives, and a ``placed`` that arrives after its cancellation still records
nothing countable. Windows and affinity follow the same rule: an order counts
in them exactly while its fact counts.

``clock`` is the customer's own event-time high-water mark (largest event or
timer time applied). Time-dependent fields that are stored (lifecycle,
segments) are evaluated at it, so an old event arriving late never moves a
customer backwards in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from models.affinity import AffinityConfig, add_affinity, merge_affinity
from models.attribution import Exposure
from models.events import Channel, Click, CustomerEvent, CustomerUpdate, Feedback, Order
from models.ledger import Sent
from models.outputs import Offer, Pending
from models.rfm import Rfm
from models.windows import Windows, add_count, merge_windows

#: Recently viewed products kept per customer (most recent views win a place).
MAX_VIEWED = 50
#: Distinct products a cart may hold; beyond it the stalest line is dropped.
MAX_CART_LINES = 100
#: Changes kept per cart line; older ones are folded into one (exact unless a
#: change older than the folded ones arrives later still).
MAX_LINE_CHANGES = 32
#: Products whose "bought at" time is remembered, to ignore cart changes older
#: than the order that emptied the line.
MAX_CLEARED = 200

CartLine = tuple[tuple[int, int], ...]  # (event time, +added / -removed quantity)


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    affinity: AffinityConfig = field(default_factory=AffinityConfig)


@dataclass(frozen=True, slots=True)
class OrderFact:
    """What is known of one order: its latest status and, once placed, its contents."""

    status: str
    total: float | None = None
    ts: int | None = None
    products: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def counts(self) -> bool:
        return self.status == "placed" and self.ts is not None


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
    clock: int | None = None
    order_facts: Mapping[str, OrderFact] = field(default_factory=dict)
    views: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # product -> (views, ts)
    wishlist: Mapping[str, int] = field(default_factory=dict)  # product -> when wishlisted
    cart_lines: Mapping[str, CartLine] = field(default_factory=dict)
    cart_cleared: Mapping[str, int] = field(default_factory=dict)  # product -> bought at
    consent: Mapping[str, ConsentFact] = field(default_factory=dict)
    contact: Mapping[str, str] = field(default_factory=dict)  # email, phone, push_token, ...
    attributes: Mapping[str, object] = field(default_factory=dict)
    fired: Mapping[str, int] = field(default_factory=dict)  # campaign -> trigger ts
    windows: Windows = field(default_factory=dict)
    affinity: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    segments: frozenset[str] = frozenset()
    rfm: Rfm | None = None
    aliases: tuple[str, ...] = ()  # anonymous ids merged into this customer
    merged_into: str | None = None  # set on an anonymous profile handed over
    #: Input records applied to this person (an anonymous visitor's join at the merge;
    #: records forwarded from an alias count once, here): one applied twice shows.
    events: int = 0
    pending: tuple[Pending, ...] = ()  # delayed triggers and held messages
    sent_log: tuple[Sent, ...] = ()  # messages that left, for caps (last 8 days)
    offers: tuple[Offer, ...] = ()  # live offers for the storefront
    exposures: Mapping[str, Exposure] = field(default_factory=dict)  # campaign -> latest

    @property
    def cart(self) -> dict[str, int]:
        """Product -> quantity, replayed in event time (removals never go below zero),
        in the order the lines were first added in event time (not arrival order)."""
        lines = sorted(self.cart_lines.items(), key=lambda line: (_first_change(line[1]), line[0]))
        return {pid: qty for pid, changes in lines if (qty := line_quantity(changes)) > 0}


@dataclass(frozen=True, slots=True)
class OrderTotals:
    orders: int
    revenue: float
    last_order_at: int | None


def apply_event(profile: Profile, event: CustomerEvent, *, config: ProfileConfig) -> Profile:
    """Fold one accepted, not-yet-applied event into the profile."""
    seen = touch(profile, event.ts)
    if isinstance(event, Click):
        return apply_click(seen, event, config=config)
    if isinstance(event, Order):
        return apply_order(seen, event, config=config)
    if isinstance(event, CustomerUpdate):
        return apply_customer(seen, event)
    return apply_feedback(seen, event)


def touch(profile: Profile, ts: int) -> Profile:
    """First/last seen are the min/max event time, so arrival order does not matter."""
    first = ts if profile.first_seen is None else min(profile.first_seen, ts)
    last = ts if profile.last_seen is None else max(profile.last_seen, ts)
    return replace(profile, first_seen=first, last_seen=last, clock=advance(profile, ts))


def advance(profile: Profile, ts: int) -> int:
    return ts if profile.clock is None else max(profile.clock, ts)


def apply_click(profile: Profile, click: Click, *, config: ProfileConfig) -> Profile:
    horizon = profile.clock or click.ts
    if click.type == "product_view" and click.product_id:
        profile = replace(
            profile,
            views=_count_view(profile.views, click.product_id, click.ts),
            windows=add_count(profile.windows, "views", click.ts, horizon_ms=horizon),
        )
        return _like(profile, click.category, config.affinity.view_weight, click.ts, config)
    if click.type == "add_to_cart" and click.product_id:
        profile = replace(
            profile,
            cart_lines=_change_line(profile, click.product_id, click.ts, click.quantity),
            windows=add_count(profile.windows, "carts", click.ts, horizon_ms=horizon),
        )
        return _like(profile, click.category, config.affinity.cart_weight, click.ts, config)
    if click.type == "remove_from_cart" and click.product_id:
        lines = _change_line(profile, click.product_id, click.ts, -click.quantity)
        return replace(profile, cart_lines=lines)
    if click.type == "wishlist_add" and click.product_id:
        when = max(click.ts, profile.wishlist.get(click.product_id, click.ts))
        wishlist = {**profile.wishlist, click.product_id: when}
        if len(wishlist) > MAX_VIEWED:
            del wishlist[min(wishlist, key=lambda pid: (wishlist[pid], pid))]
        return replace(profile, wishlist=wishlist)
    if (
        click.type == "identify"
        and click.anonymous_id
        and click.anonymous_id != profile.customer_id
        and click.anonymous_id not in profile.aliases
    ):
        return replace(profile, aliases=(*profile.aliases, click.anonymous_id))
    return profile


def apply_order(profile: Profile, order: Order, *, config: ProfileConfig) -> Profile:
    """Placed orders empty the bought lines from the cart; status facts never regress."""
    known = profile.order_facts.get(order.order_id)
    if order.status == "placed":
        status = known.status if known is not None else "placed"
        fact = OrderFact(
            status=status,
            total=order.total,
            ts=order.ts,
            products=tuple(dict.fromkeys(item.product_id for item in order.items)),
            categories=tuple(item.category for item in order.items if item.category),
        )
        if known is not None and known.ts is not None and order.ts < known.ts:
            fact = known  # the later placed fact of one order wins
        profile = _clear_lines(profile, {item.product_id for item in order.items}, order.ts)
    else:
        base = known or OrderFact(status=order.status)
        fact = replace(base, status=order.status)
    return _replace_fact(profile, order.order_id, known, fact, config)


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


def merge_profiles(known: Profile, anonymous: Profile, *, config: ProfileConfig) -> Profile:
    """Everything learnt under an anonymous id joins the identified customer.

    Views, carts and windows add up; first/last seen widen; order facts join
    with the same status precedence as live facts; contact data, consent and
    attributes stay the known customer's own (an anonymous visitor gives none).
    """
    views = dict(known.views)
    for pid, (count, ts) in anonymous.views.items():
        mine = views.get(pid, (0, ts))
        views[pid] = (mine[0] + count, max(mine[1], ts))
    cleared = dict(known.cart_cleared)
    for pid, ts in anonymous.cart_cleared.items():
        cleared[pid] = max(ts, cleared.get(pid, ts))
    lines: dict[str, CartLine] = {}
    for pid in {**known.cart_lines, **anonymous.cart_lines}:
        joined = (*known.cart_lines.get(pid, ()), *anonymous.cart_lines.get(pid, ()))
        kept = tuple(c for c in joined if pid not in cleared or c[0] > cleared[pid])
        if kept:
            lines[pid] = _compact(kept)
    facts = dict(known.order_facts)
    for oid, fact in anonymous.order_facts.items():
        facts[oid] = _join_facts(facts.get(oid), fact)
    seen = [t for t in (known.first_seen, anonymous.first_seen) if t is not None]
    last = [t for t in (known.last_seen, anonymous.last_seen) if t is not None]
    clocks = [t for t in (known.clock, anonymous.clock) if t is not None]
    horizon = max(clocks) if clocks else 0
    return replace(
        known,
        first_seen=min(seen) if seen else None,
        last_seen=max(last) if last else None,
        clock=max(clocks) if clocks else None,
        views=_trim_views(views),
        cart_lines=_bounded_lines(lines),
        cart_cleared=_bounded_cleared(cleared),
        order_facts=facts,
        windows=merge_windows(known.windows, anonymous.windows, horizon_ms=horizon),
        affinity=merge_affinity(known.affinity, anonymous.affinity, config=config.affinity),
        fired={**anonymous.fired, **known.fired},
        events=known.events + anonymous.events,
    )


def order_totals(profile: Profile) -> OrderTotals:
    """Counts and revenue of placed orders that were not cancelled or refunded."""
    live = [fact for fact in profile.order_facts.values() if fact.counts]
    revenue = round(sum(fact.total or 0.0 for fact in live), 2)
    last = max((fact.ts for fact in live if fact.ts is not None), default=None)
    return OrderTotals(orders=len(live), revenue=revenue, last_order_at=last)


def has_consent(profile: Profile, channel: str, *, at: int | None = None) -> bool:
    """Only an explicit, still-standing opt-in counts: never seen means no.

    ``at``: consent at that event time. Only the latest fact per channel is kept, so an
    opt-in stamped after ``at`` does not say what held at ``at`` and counts as no: a
    decision for an earlier moment that is made late (a delayed trigger, a record that
    arrived after the opt-in) never contacts someone who had not yet opted in.
    """
    fact = profile.consent.get(channel)
    return fact is not None and fact.granted and (at is None or fact.ts <= at)


def _replace_fact(
    profile: Profile, order_id: str, old: OrderFact | None, new: OrderFact, config: ProfileConfig
) -> Profile:
    """Swap one order fact; move its window count and purchase affinity with it."""
    facts = {**profile.order_facts, order_id: new}
    profile = replace(profile, order_facts=facts)
    for fact, sign in ((old, -1), (new, +1)):
        if fact is None or not fact.counts or fact.ts is None:
            continue
        horizon = profile.clock or fact.ts
        windows = add_count(profile.windows, "orders", fact.ts, sign, horizon_ms=horizon)
        profile = replace(profile, windows=windows)
        for category in fact.categories:
            weight = sign * config.affinity.purchase_weight
            profile = _like(profile, category, weight, fact.ts, config)
    return profile


def _join_facts(mine: OrderFact | None, theirs: OrderFact) -> OrderFact:
    if mine is None:
        return theirs
    placed = max(
        (f for f in (mine, theirs) if f.ts is not None), key=lambda f: f.ts or 0, default=mine
    )
    status = (
        "placed"
        if mine.status == theirs.status == "placed"
        else (mine.status if mine.status != "placed" else theirs.status)
    )
    return replace(placed, status=status)


def _like(
    profile: Profile, category: str | None, weight: float, ts: int, config: ProfileConfig
) -> Profile:
    if not category or weight == 0:
        return profile
    affinity = add_affinity(profile.affinity, category, weight, ts, config=config.affinity)
    return replace(profile, affinity=affinity)


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
    return _trim_views(updated)


def _trim_views(views: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    while len(views) > MAX_VIEWED:
        stalest = min(views, key=lambda pid: (views[pid][1], pid))
        del views[stalest]
    return views


def _first_change(changes: CartLine) -> int:
    return min((ts for ts, _ in changes), default=0)


def line_quantity(changes: CartLine) -> int:
    """Replay a line's changes in event time; a removal never takes it below zero."""
    quantity = 0
    for _ts, delta in sorted(changes, key=lambda c: c[0]):
        quantity = max(0, quantity + delta)
    return quantity


def _change_line(profile: Profile, product_id: str, ts: int, delta: int) -> dict[str, CartLine]:
    """Record a cart change unless an order bought the product at or after its time."""
    lines = dict(profile.cart_lines)
    if ts <= profile.cart_cleared.get(product_id, ts - 1):
        return lines
    lines[product_id] = _compact((*lines.pop(product_id, ()), (ts, delta)))
    return _bounded_lines(lines)


def _clear_lines(profile: Profile, bought: set[str], ts: int) -> Profile:
    """An order empties its products' lines as of its event time: later changes stay."""
    lines = dict(profile.cart_lines)
    cleared = dict(profile.cart_cleared)
    for pid in bought:
        cleared[pid] = max(ts, cleared.get(pid, ts))
        kept = tuple(c for c in lines.pop(pid, ()) if c[0] > cleared[pid])
        if kept:
            lines[pid] = kept
    return replace(profile, cart_lines=lines, cart_cleared=_bounded_cleared(cleared))


def _compact(changes: CartLine) -> CartLine:
    ordered = tuple(sorted(changes, key=lambda c: c[0]))
    if len(ordered) <= MAX_LINE_CHANGES:
        return ordered
    head, tail = ordered[: -MAX_LINE_CHANGES + 1], ordered[-MAX_LINE_CHANGES + 1 :]
    return ((head[-1][0], line_quantity(head)), *tail)


def _bounded_lines(lines: dict[str, CartLine]) -> dict[str, CartLine]:
    while len(lines) > MAX_CART_LINES:
        stalest = min(lines, key=lambda pid: (max(c[0] for c in lines[pid]), pid))
        del lines[stalest]
    return lines


def _bounded_cleared(cleared: dict[str, int]) -> dict[str, int]:
    if len(cleared) <= MAX_CLEARED:
        return cleared
    newest = sorted(cleared.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CLEARED]
    return dict(newest)
