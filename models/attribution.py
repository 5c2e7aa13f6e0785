"""Attribution and holdout exposure: what each campaign did, measured per customer.

A customer is **exposed** to a campaign when a decision sends it (group
``treatment``) or holds it back (group ``holdout``: the campaign's holdout, or
the global control group, which is also counted under the campaign ``_all``).
The latest exposure per campaign is kept in the customer's state.

* **converted**: a placed order within the attribution window after the
  exposure, in either group: the like-for-like measure the uplift compares.
* **attributed** (treatment only): the order redeems the offer's coupon code
  or names its ``offer_id``; or else it follows a delivered or clicked message
  of the campaign within the window (last touch wins).
* **delivered / opened / clicked**: feedback naming the offer.

Every stat is about one customer (and one order for revenue), so writing it
twice is harmless: the store keeps sets of customers and revenue per order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from models.events import Feedback, Order
from models.outputs import CampaignResult, CampaignStat

Group = Literal["treatment", "holdout"]
ALL = "_all"  # every campaign together, against the global control group
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Exposure:
    group: Group
    ts: int
    offer_id: str | None = None
    coupon: str | None = None
    touched_at: int | None = None  # last delivered/clicked feedback


def expose(
    exposures: Mapping[str, Exposure], results: tuple[CampaignResult, ...], customer_id: str
) -> tuple[dict[str, Exposure], tuple[CampaignStat, ...]]:
    """Record sent and held-back decisions as exposures."""
    out = dict(exposures)
    stats: list[CampaignStat] = []
    for result in results:
        decision = result.decision
        group: Group | None = {"sent": "treatment", "holdout": "holdout"}.get(decision.outcome)  # type: ignore[assignment]
        if group is None:
            continue
        offer = result.offer
        exposure = Exposure(
            group=group,
            ts=decision.ts,
            offer_id=None if offer is None else offer.offer_id,
            coupon=None if offer is None or offer.coupon is None else offer.coupon.code,
        )
        names = [decision.campaign]
        if group == "treatment" or decision.reason == "control_group":
            names.append(ALL)
        for name in names:
            out[name] = exposure
            stats.append(CampaignStat(name, group, "exposed", customer_id))
    return out, tuple(stats)


def attribute_order(
    exposures: Mapping[str, Exposure], order: Order, *, window_ms: int
) -> tuple[CampaignStat, ...]:
    """Conversions (and attributions) of one newly placed order."""
    stats: list[CampaignStat] = []
    total = order.total or 0.0
    redeemed = None
    for name, exp in exposures.items():
        if (
            exp.group == "treatment"
            and name != ALL
            and (
                (order.coupon_code and order.coupon_code == exp.coupon)
                or (order.offer_id and order.offer_id == exp.offer_id)
            )
        ):
            redeemed = name
    last_touch = max(
        (
            (exp.touched_at, name)
            for name, exp in exposures.items()
            if name != ALL
            and exp.group == "treatment"
            and exp.touched_at is not None
            and exp.touched_at <= order.ts < exp.touched_at + window_ms
        ),
        default=None,
    )
    attributed = redeemed or (last_touch[1] if last_touch else None)
    for name, exp in exposures.items():
        if not exp.ts <= order.ts < exp.ts + window_ms:
            continue
        stats.append(
            CampaignStat(name, exp.group, "converted", order.customer_id, order.order_id, total)
        )
    if attributed is not None:
        stats.append(
            CampaignStat(
                attributed, "treatment", "attributed", order.customer_id, order.order_id, total
            )
        )
    return tuple(stats)


def touch(
    exposures: Mapping[str, Exposure], feedback: Feedback
) -> tuple[dict[str, Exposure], tuple[CampaignStat, ...]]:
    """Feedback about an offer: delivered/opened/clicked stats and the last-touch time."""
    kind = feedback.action
    if feedback.offer_id is None or kind not in ("delivered", "opened", "clicked"):
        return dict(exposures), ()
    out = dict(exposures)
    stats = []
    for name, exp in exposures.items():
        if name == ALL or exp.offer_id != feedback.offer_id:
            continue
        stats.append(CampaignStat(name, exp.group, kind, feedback.customer_id))  # type: ignore[arg-type]
        if kind in ("delivered", "clicked"):
            out[name] = replace(exp, touched_at=max(feedback.ts, exp.touched_at or 0))
    return out, tuple(stats)
