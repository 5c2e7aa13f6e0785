"""The campaign engine: from a customer's change to decisions, offers and messages.

For one customer at one moment (an event, or a timer tick) the engine:

1. **retracts** held messages and pending triggers whose campaign names the
   current event in ``cancel_on`` (a held message gets a ``suppressed``
   decision with reason ``retracted:<event>``);
2. **collects candidates**: campaigns whose trigger matches (the event, a
   first opt-in, a segment entry, a due timer) and whose audience condition
   holds; a trigger with a ``delay`` is parked as a pending trigger instead;
3. **arbitrates**: one message per customer per moment, the highest priority
   wins, the others are ``suppressed`` with ``lower_priority``;
4. runs the winner through the **contact-pressure ledger**: cooldown / once,
   global control group and campaign holdout (``holdout``), consent and
   address per channel in preference order, caps per day and week (global
   and per channel), quiet hours in the customer's time zone (the message is
   held and the decision is ``deferred`` until the quiet hours end).

Everything is stored in the customer's own state, written atomically with the
change that caused it, so no cap is counted twice and no decision is lost or
repeated. Ids derive from campaign, customer and trigger event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from models.affinity import AffinityConfig, affinity_at
from models.campaign_config import Campaign, CampaignBook
from models.events import Click, CustomerEvent, CustomerUpdate, Feedback, Order
from models.ledger import (
    Sent,
    cap_block,
    cooldown_block,
    in_control_group,
    in_holdout,
    next_allowed_time,
    prune_history,
)
from models.lifecycle import DAY_MS, LifecycleConfig, lifecycle_stage
from models.outputs import (
    CampaignResult,
    Coupon,
    Decision,
    Message,
    Offer,
    Pending,
    SegmentChange,
    derive_id,
)
from models.profile import Profile, has_consent, order_totals
from models.rhythm import next_purchase_due
from models.tiers import TierConfig, tier_for
from models.windows import window_counts

ADDRESS_FIELD = {"email": "email", "sms": "phone", "push": "push_token"}
MAX_LIVE_OFFERS = 20


@dataclass(frozen=True, slots=True)
class CatalogFacts:
    """Population facts the agent looks up before a batch (recommendations)."""

    bought_together: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    best_sellers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    product_names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    book: CampaignBook = field(default_factory=CampaignBook)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    tiers: TierConfig = field(default_factory=TierConfig)
    affinity: AffinityConfig = field(default_factory=AffinityConfig)


@dataclass(frozen=True, slots=True)
class Moment:
    """What happened to the customer now: the event (if any), its name and context."""

    at: int
    trigger_event_id: str
    event_name: str | None = None
    context: tuple[tuple[str, Any], ...] = ()
    consent_granted: tuple[str, ...] = ()
    entered: tuple[str, ...] = ()
    product: str | None = None


def event_name(before: Profile, after: Profile, event: CustomerEvent) -> str | None:
    """The campaign-facing name of an event (``order_placed`` only when it newly counts)."""
    if isinstance(event, Click):
        return event.type
    if isinstance(event, Order):
        was = before.order_facts.get(event.order_id)
        now = after.order_facts.get(event.order_id)
        if event.status == "placed":
            newly = now is not None and now.counts and (was is None or not was.counts)
            return "order_placed" if newly else None
        return f"order_{event.status}"
    if isinstance(event, Feedback):
        return f"feedback:{event.action}"
    return None


def moment_of(
    before: Profile, after: Profile, event: CustomerEvent, changes: tuple[SegmentChange, ...]
) -> Moment:
    context: dict[str, Any] = {}
    product = None
    if isinstance(event, Click):
        context = {
            "event": event.type,
            "product_id": event.product_id,
            "category": event.category,
            "price": event.price,
            "query": event.query,
        }
        product = event.product_id
    elif isinstance(event, Order):
        context = {
            "event": event_name(before, after, event),
            "order_id": event.order_id,
            "total": event.total,
            "categories": tuple(sorted({i.category for i in event.items if i.category})),
            "products": tuple(i.product_id for i in event.items),
        }
    granted = ()
    if isinstance(event, CustomerUpdate):
        granted = tuple(
            ch
            for ch in ("email", "sms", "push")
            if has_consent(after, ch) and not has_consent(before, ch)
        )
    return Moment(
        at=event.ts,
        trigger_event_id=event.event_id,
        event_name=event_name(before, after, event),
        context=tuple(sorted(context.items())),
        consent_granted=granted,
        entered=tuple(c.segment for c in changes if c.change == "enter"),
        product=product,
    )


def run_campaigns(
    profile: Profile,
    moment: Moment,
    *,
    config: EngineConfig,
    facts: CatalogFacts,
    due: tuple[Pending, ...] = (),
    forced: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (),
) -> tuple[Profile, tuple[CampaignResult, ...]]:
    """One moment of one customer: retract, collect, arbitrate, ledger, decide.

    ``due`` are pending items whose time has come (timer ticks); ``forced``
    are campaigns triggered from outside (catalog fan-out) with their context.
    """
    book = config.book
    results: list[CampaignResult] = []
    profile, retracted = _retract(profile, moment, book)
    results += retracted
    profile = _schedule(profile, moment, book)
    candidates: list[tuple[Campaign, Moment]] = []
    for pending in due:
        campaign = book.named(pending.campaign)
        if campaign is None or not campaign.enabled:
            continue
        if pending.kind == "send" and pending.result is not None:
            profile, outcome = _send_held(profile, pending, campaign, moment.at, config)
            results.append(outcome)
            continue
        at_moment = replace(
            moment, trigger_event_id=pending.trigger_event_id, context=pending.context
        )
        candidates.append((campaign, at_moment))
    for campaign in book.campaigns:
        if campaign.enabled and campaign.trigger.delay_ms == 0 and _matches(campaign, moment):
            candidates.append((campaign, moment))
    for name, context in forced:
        campaign = book.named(name)
        if campaign is not None and campaign.enabled:
            candidates.append((campaign, replace(moment, context=context)))
    eligible = [
        (c, m)
        for c, m in candidates
        if c.audience is None or c.audience.evaluate(audience_facts(profile, m, config))
    ]
    eligible.sort(key=lambda cm: (-cm[0].priority, cm[0].name))
    for rank, (campaign, m) in enumerate(eligible):
        if rank > 0:
            results.append(_decision_only(profile, campaign, m, "suppressed", "lower_priority"))
            continue
        profile, outcome = _decide(profile, campaign, m, config, facts)
        results.append(outcome)
    return profile, tuple(results)


def pending_due(profile: Profile, *, now: int) -> tuple[Profile, tuple[Pending, ...]]:
    """Take out the pending items due at ``now`` (in due order)."""
    due = tuple(
        sorted(
            (p for p in profile.pending if p.due <= now), key=lambda p: (p.due, p.campaign, p.key)
        )
    )
    if not due:
        return profile, ()
    left = tuple(p for p in profile.pending if p.due > now)
    return replace(profile, pending=left), due


def next_pending_due(profile: Profile) -> int | None:
    return min((p.due for p in profile.pending), default=None)


def audience_facts(profile: Profile, moment: Moment, config: EngineConfig) -> dict[str, Any]:
    """The names an audience condition may use (README: "Audience conditions")."""
    now = moment.at
    totals = order_totals(profile)
    windows = window_counts(profile.windows, now=now, metrics=("views", "carts", "orders"))
    context = dict(moment.context)
    product_id = context.get("product_id")
    product_views = 0
    if isinstance(product_id, str) and product_id in profile.views:
        count, _last = profile.views[product_id]
        product_views = count
    rfm = profile.rfm
    return {
        "orders": totals.orders,
        "revenue": totals.revenue,
        "avg_order_value": round(totals.revenue / totals.orders, 2) if totals.orders else None,
        "days_since_last_order": None
        if totals.last_order_at is None
        else (now - totals.last_order_at) // DAY_MS,
        "lifecycle": lifecycle_stage(
            totals.orders, totals.last_order_at, now=now, config=config.lifecycle
        ),
        "tier": tier_for(totals.orders, totals.revenue, config=config.tiers),
        "rfm": None
        if rfm is None
        else {"r": rfm.r, "f": rfm.f, "m": rfm.m, "code": rfm.code, "segment": rfm.segment},
        "segments": sorted(profile.segments),
        "affinity": affinity_at(profile.affinity, now=now, config=config.affinity),
        "consent": {ch: has_consent(profile, ch) for ch in ("email", "sms", "push")},
        "has": {ch: bool(profile.contact.get(f)) for ch, f in ADDRESS_FIELD.items()},
        "attributes": dict(profile.attributes),
        "cart_items": sum(profile.cart.values()),
        "views_7d": windows["views"]["7d"],
        "carts_7d": windows["carts"]["7d"],
        "orders_30d": windows["orders"]["30d"],
        "trigger": {**context, "views": product_views, "bought": product_id in _bought(profile)},
        "product": {"id": product_id, "views": product_views, **context},
    }


# --- triggers ----------------------------------------------------------------------------


def _matches(campaign: Campaign, moment: Moment) -> bool:
    trigger = campaign.trigger
    if trigger.kind == "event":
        return moment.event_name == trigger.event
    if trigger.kind == "consent":
        return trigger.channel in moment.consent_granted
    if trigger.kind == "segment" and trigger.segment is not None:
        family, _, name = trigger.segment.partition(":")
        return any(
            s == trigger.segment or (name == "*" and s.startswith(f"{family}:"))
            for s in moment.entered
        )
    return False


def _schedule(profile: Profile, moment: Moment, book: CampaignBook) -> Profile:
    """Park delayed triggers (one per campaign and key: a new trigger moves the due time)."""
    pending = list(profile.pending)
    for campaign in book.campaigns:
        if not campaign.enabled:
            continue
        trigger = campaign.trigger
        if trigger.kind == "replenishment" and moment.event_name == "order_placed":
            for category in dict(moment.context).get("categories", ()):
                due = _replenish_at(profile, category, trigger.interval_days)
                if due is None:
                    continue
                # One decision per category: the trigger id names the category too.
                trigger_id = f"{moment.trigger_event_id}:{category}"
                item = Pending(
                    campaign.name,
                    due,
                    "trigger",
                    trigger_id,
                    key=category,
                    context=(("category", category),),
                )
                pending = _park(pending, item)
        elif trigger.kind == "birthday":
            due = next_birthday(profile, after=moment.at, hour=trigger.local_hour)
            if due is not None and not any(p.campaign == campaign.name for p in pending):
                pending.append(
                    Pending(campaign.name, due, "trigger", f"birthday:{profile.customer_id}:{due}")
                )
        elif trigger.delay_ms > 0 and _matches(campaign, moment):
            due = moment.at + trigger.delay_ms
            pending = _park(
                pending,
                Pending(
                    campaign.name, due, "trigger", moment.trigger_event_id, context=moment.context
                ),
            )
    if pending == list(profile.pending):
        return profile
    return replace(profile, pending=tuple(pending))


def _park(pending: list[Pending], item: Pending) -> list[Pending]:
    kept = [
        p
        for p in pending
        if not (p.kind == "trigger" and p.campaign == item.campaign and p.key == item.key)
    ]
    return [*kept, item]


def _replenish_at(profile: Profile, category: str, prior_days: float) -> int | None:
    """When the customer is due again in a category: their rhythm, shrunk to the prior."""
    times = [
        f.ts
        for f in profile.order_facts.values()
        if f.counts and f.ts is not None and category in f.categories
    ]
    return next_purchase_due(times, (prior_days, 0))


def next_birthday(profile: Profile, *, after: int, hour: int) -> int | None:
    """The next local ``hour`` on the customer's birthday strictly after ``after``."""
    birthday = profile.contact.get("birthday")
    if not birthday:
        return None
    month, day = (int(x) for x in birthday[-5:].split("-"))
    zone = _zone(profile.contact.get("timezone"))
    start = datetime.fromtimestamp(after / 1000, tz=zone)
    for year in range(start.year, start.year + 9):
        if (month, day) == (2, 29) and not _leap(year):
            continue
        local = datetime(year, month, day, hour, tzinfo=zone)
        ms = int(local.timestamp() * 1000)
        if ms > after:
            return ms
    return None


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except Exception:  # an unknown zone name: the contract only asks for a valid one
        return ZoneInfo("UTC")


# --- retraction, ledger and decisions -----------------------------------------------------


def _retract(
    profile: Profile, moment: Moment, book: CampaignBook
) -> tuple[Profile, list[CampaignResult]]:
    if moment.event_name is None:
        return profile, []
    kept: list[Pending] = []
    results: list[CampaignResult] = []
    for p in profile.pending:
        campaign = book.named(p.campaign)
        if campaign is None or moment.event_name not in campaign.trigger.cancel_on:
            kept.append(p)
            continue
        if p.kind == "send" and p.result is not None:
            held = p.result.decision
            reason = f"retracted:{moment.event_name}"
            results.append(
                CampaignResult(
                    decision=replace(
                        held,
                        decision_id=derive_id("decision", held.decision_id, reason),
                        outcome="suppressed",
                        reason=reason,
                        ts=moment.at,
                    )
                )
            )
    if not results and len(kept) == len(profile.pending):
        return profile, results
    return replace(profile, pending=tuple(kept)), results


def _decide(
    profile: Profile,
    campaign: Campaign,
    moment: Moment,
    config: EngineConfig,
    facts: CatalogFacts,
) -> tuple[Profile, CampaignResult]:
    ledger = config.book.ledger
    at = moment.at
    cooldown = campaign.cooldown_ms if not campaign.once else 10**15
    blocked = cooldown_block(profile.fired.get(campaign.name), at=at, cooldown_ms=cooldown)
    if blocked:
        return profile, _decision_only(profile, campaign, moment, "suppressed", blocked)
    cid = profile.customer_id
    if in_control_group(cid, config=ledger):
        return _mark(profile, campaign, at), _decision_only(
            profile, campaign, moment, "holdout", "control_group"
        )
    if in_holdout(cid, campaign.name, campaign.holdout_percent):
        return _mark(profile, campaign, at), _decision_only(
            profile, campaign, moment, "holdout", "holdout"
        )
    offer = build_offer(profile, campaign, moment, config, facts)
    if not campaign.channels:
        decision = _decision(profile, campaign, moment, "sent", "storefront", None, offer)
        return _deliver(profile, campaign, at, offer, None), CampaignResult(decision, offer)
    channel, reason = _pick_channel(profile, campaign, at, ledger)
    if channel is None:
        return profile, _decision_only(profile, campaign, moment, "suppressed", reason)
    send_at = next_allowed_time(at, timezone=profile.contact.get("timezone"), config=ledger)
    message = _message(profile, campaign, channel, offer, send_at)
    if send_at > at:
        decision = _decision(profile, campaign, moment, "deferred", "quiet_hours", channel, offer)
        held = Pending(
            campaign.name,
            send_at,
            "send",
            moment.trigger_event_id,
            result=CampaignResult(decision, offer, message),
        )
        profile = replace(_mark(profile, campaign, at), pending=(*profile.pending, held))
        return profile, CampaignResult(decision)
    decision = _decision(profile, campaign, moment, "sent", "eligible", channel, offer)
    return (
        _deliver(profile, campaign, at, offer, channel),
        CampaignResult(decision, offer, message),
    )


def _send_held(
    profile: Profile, pending: Pending, campaign: Campaign, at: int, config: EngineConfig
) -> tuple[Profile, CampaignResult]:
    """A deferred message at its send time: consent and caps are checked again now."""
    assert pending.result is not None and pending.result.message is not None
    held = pending.result
    channel = held.message.channel
    reason = _channel_block(profile, channel, at, config.book.ledger)
    outcome: Literal["sent", "suppressed"] = "suppressed" if reason else "sent"
    decision = replace(
        held.decision,
        decision_id=derive_id("decision", held.decision.decision_id, outcome),
        outcome=outcome,
        reason=reason or "eligible",
        ts=at,
    )
    if reason:
        return profile, CampaignResult(decision)
    profile = _deliver(profile, campaign, at, held.offer, channel)
    return profile, CampaignResult(decision, held.offer, held.message)


def _pick_channel(
    profile: Profile, campaign: Campaign, at: int, ledger: Any
) -> tuple[str | None, str]:
    first_reason = ""
    for spec in campaign.channels:
        reason = _channel_block(profile, spec.channel, at, ledger)
        if reason is None:
            return spec.channel, ""
        first_reason = first_reason or reason
    return None, first_reason


def _channel_block(profile: Profile, channel: str, at: int, ledger: Any) -> str | None:
    if not has_consent(profile, channel, at=at):
        return f"no_consent:{channel}"
    if not profile.contact.get(ADDRESS_FIELD[channel]):
        return f"no_address:{channel}"
    return cap_block(profile.sent_log, channel=channel, at=at, config=ledger)


def _mark(profile: Profile, campaign: Campaign, at: int) -> Profile:
    """Remember the campaign fired (for cooldown/once), whatever the outcome."""
    return replace(profile, fired={**profile.fired, campaign.name: at})


def _deliver(
    profile: Profile, campaign: Campaign, at: int, offer: Offer | None, channel: str | None
) -> Profile:
    profile = _mark(profile, campaign, at)
    if channel is not None:
        history = prune_history((*profile.sent_log, Sent(at, channel, campaign.name)), now=at)
        profile = replace(profile, sent_log=history)
    if offer is not None:
        live = [o for o in profile.offers if o.expires_at > at and o.offer_id != offer.offer_id]
        profile = replace(profile, offers=tuple([*live, offer][-MAX_LIVE_OFFERS:]))
    return profile


def build_offer(
    profile: Profile,
    campaign: Campaign,
    moment: Moment,
    config: EngineConfig,
    facts: CatalogFacts,
) -> Offer:
    spec = campaign.offer
    cid = profile.customer_id
    offer_id = derive_id("offer", campaign.name, cid, moment.trigger_event_id)
    values = audience_facts(profile, moment, config)
    coupon = None
    if spec.kind == "coupon":
        value = spec.coupon_by_tier.get(str(values.get("tier")), spec.coupon_value)
        if value is None:
            value = min(spec.coupon_by_tier.values(), default=0.0)
        code = f"{campaign.name.upper()}-{offer_id[:8].upper()}"
        coupon = Coupon(code, value, config.book.currency, spec.min_spend)
        values = {
            **values,
            "coupon": {"value": f"{value:g}", "code": code, "currency": config.book.currency},
        }
    return Offer(
        offer_id=offer_id,
        customer_id=cid,
        campaign=campaign.name,
        kind=spec.kind,  # type: ignore[arg-type]
        title=render(spec.title, values),
        reason=render(spec.reason, values),
        created_at=moment.at,
        expires_at=moment.at + spec.expires_ms,
        trigger_event_id=moment.trigger_event_id,
        items=_items(profile, spec.items, moment, facts)[: spec.max_items],
        coupon=coupon,
        priority=campaign.priority,
    )


def _bought(profile: Profile) -> set[str]:
    """Products in the customer's live orders."""
    return {p for f in profile.order_facts.values() if f.counts for p in f.products}


def _items(
    profile: Profile, source: str | None, moment: Moment, facts: CatalogFacts
) -> tuple[str, ...]:
    context = dict(moment.context)
    bought = _bought(profile)
    if source == "cart":
        return tuple(profile.cart)
    if source == "trigger_product":
        product = context.get("product_id")
        return (product,) if isinstance(product, str) else ()
    if source == "viewed_not_bought":
        ranked = sorted(profile.views.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        return tuple(pid for pid, _ in ranked if pid not in bought)
    if source == "bought_together":
        seen: dict[str, None] = {}
        for product in context.get("products", []):
            for other in facts.bought_together.get(product, ()):
                if other not in bought:
                    seen.setdefault(other, None)
        if seen:
            return tuple(seen)
        source = "best_sellers"
    if source == "best_sellers":
        categories = context.get("categories") or [context.get("category")]
        found: dict[str, None] = {}
        for category in categories:
            for product in facts.best_sellers.get(str(category), ()):
                if product not in bought:
                    found.setdefault(product, None)
        return tuple(found)
    return ()


_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


def render(template: str, values: Mapping[str, Any]) -> str:
    """``{trigger.product_id}``-style placeholders from the audience facts; unknown -> ''."""

    def lookup(match: re.Match[str]) -> str:
        node: Any = values
        for part in match.group(1).split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, float):
            return f"{node:g}"
        if isinstance(node, tuple | list):
            return ", ".join(str(x) for x in node)
        return "" if node is None else str(node)

    return _PLACEHOLDER.sub(lookup, template)


def _message(
    profile: Profile, campaign: Campaign, channel: str, offer: Offer, send_at: int
) -> Message:
    template = next(c.template for c in campaign.channels if c.channel == channel)
    variables: dict[str, str] = {"title": offer.title, "reason": offer.reason}
    if offer.coupon is not None:
        variables["coupon_code"] = offer.coupon.code
        variables["coupon_value"] = f"{offer.coupon.value:g}"
    if offer.items:
        variables["items"] = ",".join(offer.items)
    return Message(
        message_id=derive_id("message", offer.offer_id, channel),
        offer_id=offer.offer_id,
        customer_id=profile.customer_id,
        channel=channel,
        to=profile.contact[ADDRESS_FIELD[channel]],
        campaign=campaign.name,
        template=template,
        vars=tuple(sorted(variables.items())),
        send_at=send_at,
        expires_at=max(offer.expires_at, send_at + int(timedelta(days=1).total_seconds() * 1000)),
    )


def _decision(
    profile: Profile,
    campaign: Campaign,
    moment: Moment,
    outcome: Any,
    reason: str,
    channel: str | None,
    offer: Offer | None,
) -> Decision:
    return Decision(
        decision_id=derive_id(
            "decision", campaign.name, profile.customer_id, moment.trigger_event_id
        ),
        customer_id=profile.customer_id,
        campaign=campaign.name,
        trigger_event_id=moment.trigger_event_id,
        outcome=outcome,
        reason=reason,
        ts=moment.at,
        channel=channel,
        offer_id=None if offer is None else offer.offer_id,
    )


def _decision_only(
    profile: Profile,
    campaign: Campaign,
    moment: Moment,
    outcome: Any,
    reason: str,
) -> CampaignResult:
    return CampaignResult(_decision(profile, campaign, moment, outcome, reason, None, None))
