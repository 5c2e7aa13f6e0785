"""One customer's step function: ``(state, event) -> (state, results)``.

The state is everything stored for the customer under one Redis key and one
writer: the profile, what has been applied (for dedup) and the outbox of
records decided but not yet confirmed published. A record enters the outbox in
the same atomic write as the state change that decided it, so a crash between
"decided" and "published" republishes it (same ids) instead of losing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from models.campaigns import CampaignConfig, decide_campaigns
from models.dedup import Applied, is_duplicate, remember, remember_offset
from models.events import CustomerEvent
from models.outputs import CampaignResult
from models.profile import Profile, apply_event


@dataclass(frozen=True, slots=True)
class CustomerState:
    profile: Profile
    applied: Applied = field(default_factory=Applied)
    outbox: tuple[CampaignResult, ...] = ()


@dataclass(frozen=True, slots=True)
class StepConfig:
    campaigns: CampaignConfig = field(default_factory=CampaignConfig)
    dedup_ids: int = 64


@dataclass(frozen=True, slots=True)
class Step:
    state: CustomerState
    duplicate: bool
    results: tuple[CampaignResult, ...] = ()


def new_state(customer_id: str) -> CustomerState:
    return CustomerState(profile=Profile(customer_id=customer_id))


def step(
    state: CustomerState,
    event: CustomerEvent,
    *,
    source: str | None,
    offset: int | None,
    config: StepConfig,
) -> Step:
    """Apply one event unless it was applied before; decide what the change triggers.

    ``source``/``offset`` identify the Kafka record (``"topic/partition"``,
    offset) so that redelivery is recognised exactly; they are ``None`` for
    events that do not come from a partition (tests, forwarded facts).
    """
    if is_duplicate(state.applied, event.event_id, source, offset):
        # Remember the offset even so: once the id has left the window, a
        # redelivery of this very record must still be recognised by offset.
        applied = remember_offset(state.applied, source, offset)
        return Step(state=replace(state, applied=applied), duplicate=True)
    before = state.profile
    after, results = decide_campaigns(
        before, apply_event(before, event), event, config=config.campaigns
    )
    applied = remember(state.applied, event.event_id, source, offset, keep=config.dedup_ids)
    updated = replace(state, profile=after, applied=applied, outbox=state.outbox + results)
    return Step(state=updated, duplicate=False, results=results)


def clear_outbox(state: CustomerState, published: tuple[CampaignResult, ...]) -> CustomerState:
    """Drop exactly the records confirmed published; anything decided since stays."""
    done = {result.decision.decision_id for result in published}
    kept = tuple(r for r in state.outbox if r.decision.decision_id not in done)
    return replace(state, outbox=kept)


@dataclass(frozen=True, slots=True)
class Envelope:
    """An accepted event with the Kafka coordinates that identify its delivery."""

    event: CustomerEvent
    source: str | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class Folded:
    state: CustomerState
    accepted: int
    duplicates: int
    changed: bool


def fold(state: CustomerState, envelopes: list[Envelope], *, config: StepConfig) -> Folded:
    """Apply a customer's events of one batch in arrival (partition) order."""
    accepted = duplicates = 0
    original = state
    for envelope in envelopes:
        result = step(
            state, envelope.event, source=envelope.source, offset=envelope.offset, config=config
        )
        state = result.state
        duplicates += result.duplicate
        accepted += not result.duplicate
    changed = state != original
    return Folded(state=state, accepted=accepted, duplicates=duplicates, changed=changed)
