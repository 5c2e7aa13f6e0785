"""What the engine decides: offers, per-channel messages and the audit record.

Ids are derived, never random: the same campaign, customer and trigger always
give the same ``offer_id``, so anything re-emitted after a crash is recognisably
the same record downstream.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["sent", "suppressed", "deferred", "holdout"]


def derive_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Coupon:
    code: str
    value: float
    currency: str
    min_spend: float


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    customer_id: str
    campaign: str
    kind: Literal["coupon", "recommendation", "notice"]
    title: str
    reason: str
    created_at: int
    expires_at: int
    trigger_event_id: str
    items: tuple[str, ...] = ()
    coupon: Coupon | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    message_id: str
    offer_id: str
    customer_id: str
    channel: str
    to: str
    campaign: str
    template: str
    vars: tuple[tuple[str, str], ...]
    send_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    customer_id: str
    campaign: str
    trigger_event_id: str
    outcome: Outcome
    reason: str
    ts: int
    channel: str | None = None
    offer_id: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """One campaign's answer to one trigger: always a decision, maybe an offer and message."""

    decision: Decision
    offer: Offer | None = None
    message: Message | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A trigger waiting for its delay, or a decided message waiting for its send time."""

    campaign: str
    due: int
    kind: Literal["trigger", "send"]
    trigger_event_id: str
    key: str = ""
    context: tuple[tuple[str, Any], ...] = ()
    result: CampaignResult | None = None


@dataclass(frozen=True, slots=True)
class SegmentChange:
    """A customer entered or left a segment (``lifecycle:at_risk``, ``tier:gold``, ``rfm:...``)."""

    customer_id: str
    segment: str
    change: Literal["enter", "exit"]
    ts: int


@dataclass(frozen=True, slots=True)
class Internal:
    """An internal event for the owner of ``customer_id`` (see ``models.events``)."""

    kind: Literal["merge_out", "merge_in", "erase", "tick", "rfm", "campaign"]
    customer_id: str
    event_id: str
    ts: int
    body: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class Forward:
    """An input record sent on to the customer it now belongs to (identity merge)."""

    topic: str
    customer_id: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A null-valued record keyed by the erased customer: compacted consumers drop the key."""

    topic: str
    customer_id: str


@dataclass(frozen=True, slots=True)
class BasketChange:
    """An order starts (+1) or stops (-1) counting as a basket for the associations.

    ``token`` is unique per change (customer, order, sign, event), so applying a
    republished change again is recognised and skipped.
    """

    token: str
    products: tuple[str, ...]
    sign: int


@dataclass(frozen=True, slots=True)
class CampaignStat:
    """One fact about one customer for one campaign (``order_id``/``value`` for revenue).

    ``group`` is ``treatment`` or ``holdout``; ``kind`` one of exposed, delivered,
    opened, clicked, converted, attributed (``models.attribution``).
    """

    campaign: str
    group: Literal["treatment", "holdout"]
    kind: Literal["exposed", "delivered", "opened", "clicked", "converted", "attributed"]
    customer_id: str
    order_id: str | None = None
    value: float = 0.0


Output = (
    CampaignResult | SegmentChange | Internal | Forward | Tombstone | BasketChange | CampaignStat
)
