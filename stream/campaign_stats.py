"""Campaign results in Redis: who was exposed, converted, attributed, per campaign and group.

Keys (``{camp:<campaign>}`` tag: one Cluster slot per campaign):

* ``<p>{camp:<c>}:<group>:<kind>``: set of customer ids (group treatment or
  holdout; kind exposed, delivered, opened, clicked, converted, attributed).
* ``<p>{camp:<c>}:<group>:<kind>:revenue``: hash ``<customer>:<order>`` -> order
  value, for converted and attributed orders.

Sets and per-order fields make every write idempotent (a republished stat
changes nothing). No expiry: they are the campaign's results; an erased
customer is removed from them (``forget``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from models.outputs import CampaignStat
from stream.keys import campaign_revenue_key, campaign_stat_key

GROUPS = ("treatment", "holdout")
KINDS = ("exposed", "delivered", "opened", "clicked", "converted", "attributed")
REVENUE_KINDS = ("converted", "attributed")


@dataclass(frozen=True, slots=True)
class GroupResults:
    counts: dict[str, int]  # kind -> customers
    revenue: dict[str, float]  # kind -> total
    revenue_by_customer: dict[str, float]  # converted revenue per customer


class CampaignStats:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def apply(self, stats: Iterable[CampaignStat]) -> None:
        todo = list(stats)
        if not todo:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in todo:
                pipe.sadd(
                    campaign_stat_key(self.prefix, s.campaign, s.group, s.kind), s.customer_id
                )
                if s.kind in REVENUE_KINDS and s.order_id is not None:
                    field = f"{s.customer_id}:{s.order_id}"
                    pipe.hset(
                        campaign_revenue_key(self.prefix, s.campaign, s.group, s.kind),
                        field,
                        repr(s.value),
                    )
            await pipe.execute()

    def queue_forget(
        self,
        pipe: Pipeline,
        customer_id: str,
        campaigns: Sequence[str],
        order_ids: Sequence[str],
    ) -> None:
        """Erasure: the customer leaves every campaign's results."""
        fields = [f"{customer_id}:{oid}" for oid in order_ids]
        for campaign in campaigns:
            for group in GROUPS:
                for kind in KINDS:
                    pipe.srem(campaign_stat_key(self.prefix, campaign, group, kind), customer_id)
                for kind in REVENUE_KINDS:
                    if fields:
                        pipe.hdel(campaign_revenue_key(self.prefix, campaign, group, kind), *fields)

    async def read(self, campaign: str) -> dict[str, GroupResults]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for group in GROUPS:
                for kind in KINDS:
                    pipe.scard(campaign_stat_key(self.prefix, campaign, group, kind))
                for kind in REVENUE_KINDS:
                    pipe.hgetall(campaign_revenue_key(self.prefix, campaign, group, kind))
            answers = iter(await pipe.execute())
        out = {}
        for group in GROUPS:
            counts = {kind: int(next(answers)) for kind in KINDS}
            revenue: dict[str, float] = {}
            by_customer: dict[str, float] = {}
            for kind in REVENUE_KINDS:
                fields = {k.decode(): float(v) for k, v in next(answers).items()}
                revenue[kind] = round(sum(fields.values()), 2)
                if kind == "converted":
                    for field, value in fields.items():
                        cid = field.rsplit(":", 1)[0]
                        by_customer[cid] = by_customer.get(cid, 0.0) + value
            out[group] = GroupResults(counts, revenue, by_customer)
        return out
