"""What every flow needs, built once by the composition root and passed in."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from models.campaign_config import CampaignBook, CampaignFileError
from models.campaigns import EngineConfig
from models.customer import StepConfig
from models.view import ViewConfig
from stream.campaign_file import load_book, modified_at
from stream.campaign_stats import CampaignStats
from stream.facts import FactsSource
from stream.metrics import Metrics
from stream.models_store import ModelsStore
from stream.offsets import LogPositions
from stream.publisher import Publisher
from stream.settings import Settings
from stream.store import Store

log = logging.getLogger(__name__)


class CampaignLibrary:
    """The campaign file in force; replaced whole on reload, kept if the new one is invalid."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.campaigns
        self.settings = settings
        self.mtime = modified_at(self.path)
        self.step = self._step(load_book(self.path, currency=settings.default_currency))

    def _step(self, book: CampaignBook) -> StepConfig:
        return StepConfig(engine=EngineConfig(book=book), dedup_ids=self.settings.dedup_ids)

    def reload(self) -> str:
        """Load the file again; say what happened (for logs and the reload metric)."""
        self.mtime = modified_at(self.path)
        try:
            book = load_book(self.path, currency=self.settings.default_currency)
        except CampaignFileError as exc:
            log.error("campaign file rejected, keeping the previous one: %s", exc)
            return "rejected"
        self.step = self._step(book)
        log.info("campaign file reloaded: %d campaigns", len(book.campaigns))
        return "loaded"

    def changed_on_disk(self) -> bool:
        return self.path is not None and modified_at(self.path) != self.mtime


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: Store
    publisher: Publisher
    metrics: Metrics
    library: CampaignLibrary
    models: ModelsStore
    facts: FactsSource
    campaign_stats: CampaignStats
    positions: LogPositions
    #: Serialises the customer flow's batches with the API's erasure hand-offs and
    #: the tests' direct calls: two writers of the same customer at once would only
    #: make each other retry and republish.
    customer_writes: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def step(self) -> StepConfig:
        return self.library.step

    @property
    def view(self) -> ViewConfig:
        return ViewConfig(segments=self.step.segments, affinity=self.step.profile.affinity)
