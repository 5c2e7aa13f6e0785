"""Two failure kinds, two policies, for one batch of a flow.

* **An outage** (Redis or the broker unreachable, a timeout, a pool with no free
  connection): nothing is wrong with the records, so the whole batch is run again
  with backoff (0.1 s doubling to 5 s) until it goes through. Only an outage longer
  than ``outage_seconds`` stops the worker, with the batch unacknowledged, so the
  next worker starts from it.
* **An error** (any other exception): a retry may still fix it (a race), so the
  batch is run again up to ``poison_attempts`` times; then it is split in halves,
  each half run on its own (once), and so on, until the records that fail on their
  own are isolated. Those go to ``isolate`` (the deadletter) with the exception and
  the rest of the batch is applied: a record that trips a bug every time can never
  crash-loop the worker.

Running a batch again is safe because every effect of a flow is idempotent: state
writes are compare-and-set and carry the offsets and event ids they applied,
outputs have deterministic ids and are re-published from the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Generic, TypeVar

from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0
#: Redis answers that mean "not now" rather than "never" (loading, failing over, full).
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "OOM")


class Abandoned(Exception):
    """The batch stopped being this worker's (a rebalance, or the worker is stopping)
    while it waited out an outage: it is neither acknowledged nor a crash."""


class KeptChanging(Exception):
    """Another writer kept changing the same customers: a zombie worker, passes."""


def is_outage(exc: BaseException) -> bool:
    """True for failures of the infrastructure, which waiting can fix."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | TimeoutError | OSError):
        return True
    if isinstance(exc, ResponseError):
        return str(exc).startswith(_TRANSIENT_REPLIES)
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or type(exc).__name__ in {
            "KafkaTimeoutError",
            "KafkaConnectionError",
        }
    return isinstance(exc, KeptChanging)


def describe(exc: BaseException) -> str:
    """One line for a deadletter record: the exception's type and message, cut short."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


@dataclass(frozen=True)
class Resilience(Generic[T]):
    """Runs ``handler`` over a batch under the two policies above."""

    handler: Callable[[Sequence[T]], Awaitable[None]]
    isolate: Callable[[T, BaseException], Awaitable[None]]
    metrics: Metrics
    flow: str
    outage_seconds: float
    poison_attempts: int
    #: False once the batch is no longer this worker's to finish (rebalance, stopping).
    still_ours: Callable[[], bool] = lambda: True

    async def run(self, batch: Sequence[T]) -> None:
        await self._run(batch, attempts=self.poison_attempts)

    async def _run(self, batch: Sequence[T], *, attempts: int) -> None:
        failures = 0
        while True:
            try:
                await self._through_outages(lambda: self.handler(batch))
                return
            except Abandoned:
                raise
            except Exception as exc:
                if is_outage(exc):  # past outage_seconds: stop, unacknowledged
                    raise
                failures += 1
                self.metrics.batch_retries.labels(self.flow, "error").inc()
                if failures < attempts:
                    log.warning("batch of %d failed (%s); running it again", len(batch), exc)
                    continue
                if len(batch) == 1:
                    await self._isolate(batch[0], exc)
                    return
                log.warning(
                    "batch of %d failed %d times (%s); splitting it to isolate what fails",
                    len(batch),
                    failures,
                    describe(exc),
                )
                middle = len(batch) // 2
                await self._run(batch[:middle], attempts=1)
                await self._run(batch[middle:], attempts=1)
                return

    async def _isolate(self, record: T, failure: BaseException) -> None:
        log.error("isolated a record the worker fails on: %s", describe(failure))
        await self._through_outages(lambda: self.isolate(record, failure))

    async def _through_outages(self, call: Callable[[], Awaitable[None]]) -> None:
        """``call()``, again and again with backoff while it fails with an outage."""
        started: float | None = None
        backoff = FIRST_BACKOFF
        try:
            while True:
                if not self.still_ours():
                    raise Abandoned()
                try:
                    await call()
                    return
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    now = monotonic()
                    started = now if started is None else started
                    waited = now - started
                    self.metrics.outage.labels(self.flow).set(waited)
                    if waited >= self.outage_seconds:
                        log.error(
                            "outage longer than %.0f s (%s): stopping with the batch "
                            "unacknowledged",
                            self.outage_seconds,
                            describe(exc),
                        )
                        raise
                    self.metrics.batch_retries.labels(self.flow, "outage").inc()
                    log.warning(
                        "%s; running the batch again in %.1f s (outage for %.0f s)",
                        describe(exc),
                        backoff,
                        waited,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self.metrics.outage.labels(self.flow).set(0)
