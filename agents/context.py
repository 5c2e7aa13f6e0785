"""What every flow needs, built once by the composition root and passed in."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from models.campaigns import CampaignConfig
from models.customer import StepConfig
from models.view import ViewConfig
from stream.metrics import Metrics
from stream.publisher import Publisher
from stream.settings import Settings
from stream.store import Store


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: Store
    publisher: Publisher
    metrics: Metrics
    step: StepConfig
    view: ViewConfig
    #: Serialises the customer flows of one worker: clicks and orders of one
    #: customer arrive on different topics, and two agents writing the same
    #: customer at once would only make each other retry and republish.
    customer_writes: asyncio.Lock = field(default_factory=asyncio.Lock)

    @staticmethod
    def step_config(settings: Settings) -> StepConfig:
        campaigns = CampaignConfig(
            currency=settings.default_currency, offer_ttl_days=settings.offer_ttl_days
        )
        return StepConfig(campaigns=campaigns, dedup_ids=settings.dedup_ids)

    @staticmethod
    def view_config(step: StepConfig) -> ViewConfig:
        return ViewConfig(segments=step.segments, affinity=step.profile.affinity)
