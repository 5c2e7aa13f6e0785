"""The two failure policies of a batch (stream.resilience), with plain handlers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from stream.metrics import Metrics
from stream.resilience import Abandoned, Resilience, is_outage


class Flow:
    """Applies records; ``poison`` fail every time, the first ``outages`` calls fail as
    if Redis were down."""

    def __init__(self, poison: frozenset[int] = frozenset(), outages: int = 0) -> None:
        self.poison, self.outages = poison, outages
        self.applied: list[int] = []
        self.isolated: list[tuple[int, str]] = []
        self.calls = 0

    async def handle(self, batch: Sequence[int]) -> None:
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise RedisConnectionError("Connection refused")
        bad = [r for r in batch if r in self.poison]
        if bad:
            raise ValueError(f"cannot handle {bad[0]}")
        self.applied += batch

    async def isolate(self, record: int, exc: BaseException) -> None:
        self.isolated.append((record, str(exc)))


def resilience(flow: Flow, **overrides: object) -> Resilience[int]:
    options: dict[str, object] = {
        "handler": flow.handle,
        "isolate": flow.isolate,
        "metrics": Metrics(CollectorRegistry()),
        "flow": "customers",
        "outage_seconds": 30.0,
        "poison_attempts": 3,
        **overrides,
    }
    return Resilience(**options)  # type: ignore[arg-type]


async def test_a_good_batch_runs_once() -> None:
    flow = Flow()
    await resilience(flow).run(list(range(10)))
    assert (flow.applied, flow.calls) == (list(range(10)), 1)


async def test_poison_records_are_isolated_and_the_rest_applied_in_order() -> None:
    flow = Flow(poison=frozenset({3, 77}))
    batch = list(range(100))
    await resilience(flow).run(batch)
    assert flow.applied == [r for r in batch if r not in {3, 77}]
    assert [r for r, _ in flow.isolated] == [3, 77]
    assert flow.isolated[0][1] == "cannot handle 3"


async def test_an_outage_is_waited_out_without_splitting() -> None:
    flow = Flow(outages=3)
    await resilience(flow).run([1, 2, 3])
    assert (flow.applied, flow.isolated, flow.calls) == ([1, 2, 3], [], 4)


async def test_an_outage_longer_than_allowed_raises_with_nothing_isolated() -> None:
    flow = Flow(outages=100)
    with pytest.raises(RedisConnectionError):
        await resilience(flow, outage_seconds=0.5).run([1, 2])
    assert (flow.applied, flow.isolated) == ([], [])


async def test_a_batch_no_longer_ours_is_abandoned() -> None:
    flow = Flow(outages=100)
    owned = iter([True, True, False])
    with pytest.raises(Abandoned):
        await resilience(flow, still_ours=lambda: next(owned)).run([1])
    assert flow.applied == []


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (RedisConnectionError("refused"), True),
        (TimeoutError(), True),
        (ResponseError("LOADING Redis is loading the dataset in memory"), True),
        (ResponseError("OOM command not allowed"), True),
        (ResponseError("ERR value is not a valid float"), False),
        (ValueError("bad"), False),
        (KeyError("x"), False),
    ],
)
def test_outages_are_told_from_errors(exc: BaseException, outage: bool) -> None:
    assert is_outage(exc) is outage
