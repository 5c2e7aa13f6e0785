"""Lifecycle timers: a customer becomes at_risk/lapsed at last order + N days of engine time.

Every worker polls the due-timer index; a claimed timer is leased (not
removed) and sent as a ``tick`` on the internal topic to the owner of the
customer, who applies it and removes the lease in the same settle step. A
tick lost to a crash is claimed again when its lease expires; a tick sent
twice has the same event id and changes nothing the second time.
"""

from __future__ import annotations

import time

from agents.context import Context
from models.clock import engine_now
from models.outputs import Internal
from stream.records import internal_record

CLAIM_LIMIT = 2000


async def fire_due_timers(ctx: Context) -> int:
    wall = int(time.time() * 1000)
    now = engine_now(await ctx.store.read_clock(), wall, mode=ctx.settings.clock)
    due = await ctx.store.claim_timers(
        engine_now=now,
        wall_now=wall,
        lease_ms=int(ctx.settings.timer_lease_seconds * 1000),
        limit=CLAIM_LIMIT,
    )
    # Ids are unique per claim, not per due time: a later item can fall due at a time
    # already ticked (e.g. two deferrals to the same 08:00), and must still be released.
    # Applying a tick twice is harmless: it only releases what is due.
    ticks = [Internal("tick", cid, f"tick:{cid}:{ts}:{wall}", ts) for cid, ts in due]
    await ctx.publisher.publish([internal_record(t) for t in ticks])
    ctx.metrics.timers_fired.inc(len(ticks))
    return len(ticks)
