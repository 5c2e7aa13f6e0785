"""Population facts a batch needs before it decides: bought-together and best sellers.

Looked up once per batch for the products the batch's orders and due timers
name (pipelined, in bounded chunks: ``ModelsStore.associations_of``), plus best
sellers per category, recomputed at most every ``BEST_SELLERS_SECONDS`` (they
move slowly).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from models.campaigns import CatalogFacts
from stream import keys
from stream.models_store import ModelsStore

BEST_SELLERS_SECONDS = 60.0
BOUGHT_TOGETHER_TOP = 6


class FactsSource:
    def __init__(self, models: ModelsStore, *, prefix: str, min_count: int = 1) -> None:
        self.models = models
        self.prefix = prefix
        self.min_count = min_count
        self._best: dict[str, tuple[str, ...]] = {}
        self._best_at = float("-inf")

    async def for_products(self, products: Iterable[str]) -> CatalogFacts:
        found = await self.models.associations_of(
            sorted(set(products)), min_count=self.min_count, top_k=BOUGHT_TOGETHER_TOP
        )
        together = {
            product: tuple(a.product_id for a in partners)
            for product, partners in found.items()
            if partners
        }
        return CatalogFacts(bought_together=together, best_sellers=await self.best_sellers())

    async def best_sellers(self) -> dict[str, tuple[str, ...]]:
        if time.monotonic() - self._best_at >= BEST_SELLERS_SECONDS:
            self._best = await self.models.best_sellers(
                product_key=lambda pid: keys.product(self.prefix, pid)
            )
            self._best_at = time.monotonic()
        return self._best
