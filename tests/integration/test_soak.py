"""The soak at CI size: a generated shop history replayed through a kill -9 and a Redis pause.

``bench/soak.py`` at 2,000 customers (about 20,000 records over ten months: sessions,
wholesale baskets of up to 150 lines, reversals delivered before their orders, anonymous
browsing then ``identify``, consent flips, 5% redelivered, 0.1% malformed, records from the
year 2100, quiet days that make delayed campaigns fall due together) in two phases on one
``rapport worker`` on the event clock, with Redis of the test's own (append-only file):

1. the worker is killed with SIGKILL when half of the phase's records are committed, and
   started again;
2. Redis is stopped with SIGSTOP for a few seconds, then continued.

After each phase every customer is compared with the independent reference
(``tests/integration/independent.py``), and every segment change, timer, message and
deadletter record is checked (``bench/soak/verify.py``). The report (run with ``-s``) names
each check, and for a failed one the customers and a few differences.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak.harness import Config, Fault, Soak
from bench.soak.history import Shape
from bench.soak.report import render
from stream.settings import Settings

pytestmark = pytest.mark.integration

CUSTOMERS = 2000
PAUSE_SECONDS = 4.0  # a real SIGSTOP, shorter than the bench's 30 s


async def test_replay_through_kill9_and_redis_pause_ends_exact(
    settings: Settings, tmp_path: Path
) -> None:
    config = Config(
        shape=Shape(
            customers=CUSTOMERS,
            seed=20261206,
            records_per_customer=10,
            quiet_days=3,
            far_future=3,
        ),
        work=tmp_path,
        workers=1,
        phases=2,
        faults=[
            Fault("kill9", phase=0, at=0.5),
            Fault("redis_pause", phase=1, at=0.4, seconds=PAUSE_SECONDS),
        ],
        kafka_url=settings.kafka_url,
        timer_lease_seconds=5.0,
        phase_timeout=90.0,
    )
    report = await Soak(config).run()
    text = render(report)
    print(text)
    assert report.records >= 20_000
    assert report.passed, text
