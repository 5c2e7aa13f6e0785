"""The first triggered campaigns: the spine's decision path.

``welcome`` greets a customer the moment they first opt in to email;
``first_order`` thanks a first-time buyer with a coupon for the second order.
Each fires at most once per customer (remembered in ``Profile.fired``), so a
redelivered trigger cannot fire it again. The offer always goes to the
storefront (showing an offer on the customer's own session needs no consent);
the email leaves only with standing consent and an address, else the decision
is ``suppressed`` with the machine-readable reason.

The declarative campaign engine (file, caps, quiet hours, holdouts) replaces
this module's rules in its own issue; the ``CampaignResult`` shape stays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from models.events import CustomerEvent, CustomerUpdate, Order
from models.outputs import CampaignResult, Coupon, Decision, Message, Offer, derive_id
from models.profile import Profile, has_consent, order_totals

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    currency: str = "EUR"
    offer_ttl_days: int = 14
    welcome_value: float = 10.0
    welcome_min_spend: float = 30.0
    first_order_value: float = 15.0
    first_order_min_spend: float = 60.0


@dataclass(frozen=True, slots=True)
class Trigger:
    campaign: str
    title: str
    reason: str
    coupon_value: float
    min_spend: float
    template: str


def decide_campaigns(
    before: Profile, after: Profile, event: CustomerEvent, *, config: CampaignConfig
) -> tuple[Profile, tuple[CampaignResult, ...]]:
    """Compare the profile before and after one event; fire what the change triggers."""
    results: list[CampaignResult] = []
    for trigger in _triggers(before, after, event, config):
        if trigger.campaign in after.fired:
            continue
        after = replace(after, fired={**after.fired, trigger.campaign: event.ts})
        results.append(_decide(after, event, trigger, config))
    return after, tuple(results)


def _triggers(
    before: Profile, after: Profile, event: CustomerEvent, config: CampaignConfig
) -> list[Trigger]:
    triggers = []
    if (
        isinstance(event, CustomerUpdate)
        and has_consent(after, "email")
        and not has_consent(before, "email")
    ):
        triggers.append(
            Trigger(
                campaign="welcome",
                title=f"Welcome! {config.welcome_value:g} {config.currency} off your next order",
                reason="opted in to email for the first time",
                coupon_value=config.welcome_value,
                min_spend=config.welcome_min_spend,
                template="welcome",
            )
        )
    if (
        isinstance(event, Order)
        and event.status == "placed"
        and order_totals(before).orders == 0
        and order_totals(after).orders == 1
    ):
        triggers.append(
            Trigger(
                campaign="first_order",
                title=f"Thank you! {config.first_order_value:g} {config.currency} off order two",
                reason=f"placed a first order ({event.order_id})",
                coupon_value=config.first_order_value,
                min_spend=config.first_order_min_spend,
                template="first_order_thanks",
            )
        )
    return triggers


def _decide(
    profile: Profile, event: CustomerEvent, trigger: Trigger, config: CampaignConfig
) -> CampaignResult:
    cid = profile.customer_id
    offer_id = derive_id("offer", trigger.campaign, cid, event.event_id)
    expires = event.ts + config.offer_ttl_days * DAY_MS
    code = f"{trigger.campaign.upper()}-{offer_id[:8].upper()}"
    offer = Offer(
        offer_id=offer_id,
        customer_id=cid,
        campaign=trigger.campaign,
        kind="coupon",
        title=trigger.title,
        reason=trigger.reason,
        created_at=event.ts,
        expires_at=expires,
        trigger_event_id=event.event_id,
        coupon=Coupon(code, trigger.coupon_value, config.currency, trigger.min_spend),
    )
    blocked = _email_block(profile)
    decision = Decision(
        decision_id=derive_id("decision", offer_id, "email"),
        customer_id=cid,
        campaign=trigger.campaign,
        trigger_event_id=event.event_id,
        outcome="suppressed" if blocked else "sent",
        reason=blocked or "eligible",
        ts=event.ts,
        channel="email",
        offer_id=offer_id,
    )
    if blocked:
        return CampaignResult(decision=decision, offer=offer)
    message = Message(
        message_id=derive_id("message", offer_id, "email"),
        offer_id=offer_id,
        customer_id=cid,
        channel="email",
        to=profile.contact["email"],
        campaign=trigger.campaign,
        template=trigger.template,
        vars=(("title", trigger.title), ("coupon_code", code)),
        send_at=event.ts,
        expires_at=expires,
    )
    return CampaignResult(decision=decision, offer=offer, message=message)


def _email_block(profile: Profile) -> str | None:
    if not has_consent(profile, "email"):
        return "no_consent:email"
    if not profile.contact.get("email"):
        return "no_address:email"
    return None
