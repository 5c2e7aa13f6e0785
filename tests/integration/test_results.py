"""Campaign results: attribution and holdout uplift measured through the real stack."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.devstack import free_port
from stream.producer import EventProducer
from stream.settings import Settings
from tests.integration.conftest import (
    delete_keys,
    eventually,
    http_get,
    read_topic,
    running_worker,
)

T0 = 1_795_341_600_000
DAY = 86_400_000
CAMPAIGNS = """
settings:
  control_group_percent: 0
  caps: {day: 10, week: 20}
  channel_caps: {sms: {day: 10, week: 20}}
  quiet_hours: {start: "00:00", end: "00:00"}
campaigns:
  - name: promo_effect
    trigger: {consent: email}
    holdout_percent: 50
    offer: {kind: coupon, title: "10 off", coupon: {value: 10}}
    channels: [{channel: email, template: promo}]
  - name: promo_null
    trigger: {consent: sms}
    holdout_percent: 50
    offer: {kind: coupon, title: "10 off", coupon: {value: 10}}
    channels: [{channel: sms, template: promo}]
"""


@pytest.fixture(scope="module")
def results_worker(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    work = tmp_path_factory.mktemp("results")
    path = Path(work) / "campaigns.yaml"
    path.write_text(CAMPAIGNS)
    run = uuid.uuid4().hex[:8]
    own = settings.model_copy(
        update={
            "topic_prefix": f"r{run}.",
            "redis_prefix": f"test:{run}:",
            "app_id": f"rapport-results-{run}",
            "web_port": free_port(),
            "clock": "event",
            "campaigns": str(path),
        }
    )
    try:
        with running_worker(own, work) as base:
            yield own, base
    finally:
        delete_keys(own)


async def run_campaign(
    settings: Settings,
    base: str,
    *,
    campaign: str,
    channel: str,
    n: int,
    treated_rate: float,
    holdout_rate: float,
    seed: int,
) -> dict:
    """Opt n shoppers in, read who was treated or held out, let each group buy at its rate."""
    rng = random.Random(seed)
    # Deterministic ids (the worker's topics and keys are this run's own), so holdout
    # assignment, a stable hash of the id, and the purchases drawn from ``seed`` are the
    # same every run: a statistical assertion cannot come out differently by chance.
    ids = [f"{campaign}-{i:04d}" for i in range(n)]
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for cid in ids:
            contact = (
                {"email": f"{cid}@example.com"}
                if channel == "email"
                else {"phone": "+49 30 1234567"}
            )
            await producer.send(
                "customers",
                {
                    "event_id": f"opt-{cid}",
                    "ts": T0,
                    "customer_id": cid,
                    **contact,
                    "consent": {channel: True},
                },
            )
    ours = set(ids)
    decisions = await read_topic(
        settings, "decisions", lambda v: v["customer_id"] in ours, want=n, timeout=60
    )
    outcome = {d["customer_id"]: d["outcome"] for d in decisions}
    assert set(outcome.values()) == {"sent", "holdout"}
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        for cid in ids:
            rate = treated_rate if outcome[cid] == "sent" else holdout_rate
            if rng.random() < rate:
                await producer.send(
                    "orders",
                    {
                        "event_id": f"buy-{cid}",
                        "ts": T0 + DAY,
                        "customer_id": cid,
                        "order_id": f"o-{cid}",
                        "total": 50.0,
                    },
                )

    def report() -> dict | None:
        status, body = http_get(f"{base}/campaigns/{campaign}")
        exposed = body["treatment"]["exposed_customers"] + body["holdout"]["exposed_customers"]
        return body if status == 200 and exposed == n else None

    await eventually(report, timeout=30)
    await asyncio.sleep(2.0)  # let the last orders land
    return http_get(f"{base}/campaigns/{campaign}")[1]


async def test_uplift_interval_excludes_zero_when_the_campaign_works(
    results_worker: tuple[Settings, str],
) -> None:
    settings, base = results_worker
    report = await run_campaign(
        settings,
        base,
        campaign="promo_effect",
        channel="email",
        n=400,
        treated_rate=0.5,
        holdout_rate=0.15,
        seed=11,
    )

    uplift = report["uplift"]["conversion_rate"]
    treated, held = report["treatment"], report["holdout"]
    assert treated["exposed_customers"] + held["exposed_customers"] == 400
    assert 0.3 < treated["exposed_customers"] / 400 < 0.7  # a 50% holdout
    assert uplift["low"] > 0 and report["uplift"]["significant"] is True
    assert uplift["estimate"] == pytest.approx(
        treated["conversion_rate"] - held["conversion_rate"], abs=1e-3
    )
    assert treated["converted_revenue"] == 50.0 * treated["converted_customers"]


async def test_uplift_interval_covers_zero_without_an_effect(
    results_worker: tuple[Settings, str],
) -> None:
    settings, base = results_worker
    report = await run_campaign(
        settings,
        base,
        campaign="promo_null",
        channel="sms",
        n=400,
        treated_rate=0.3,
        holdout_rate=0.3,
        seed=12,
    )

    uplift = report["uplift"]["conversion_rate"]
    assert uplift["low"] < 0 < uplift["high"]
    assert report["uplift"]["significant"] is False


async def test_a_redeemed_coupon_is_attributed_to_its_campaign(
    results_worker: tuple[Settings, str],
) -> None:
    settings, base = results_worker
    offers = await read_topic(
        settings, "offers", lambda v: v["campaign"] == "promo_effect", want=1, timeout=30
    )
    offer = offers[0]
    cid = offer["customer_id"]
    before = http_get(f"{base}/campaigns/promo_effect")[1]["treatment"]
    async with EventProducer(settings, settings.kafka_url or "") as producer:
        await producer.send(
            "orders",
            {
                "event_id": f"redeem-{cid}",
                "ts": T0 + 2 * DAY,
                "customer_id": cid,
                "order_id": f"r-{cid}",
                "total": 80.0,
                "coupon_code": offer["coupon"]["code"],
            },
        )

    def attributed() -> dict | None:
        now = http_get(f"{base}/campaigns/promo_effect")[1]["treatment"]
        return now if now["attributed_revenue"] > before["attributed_revenue"] else None

    after = await eventually(attributed)
    assert after["attributed_revenue"] == pytest.approx(before["attributed_revenue"] + 80.0)
