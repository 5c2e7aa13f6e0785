"""Contact-pressure ledger: may this message go to this customer now, later, or not at all?

Pure functions over plain data; the caller passes the customer's send history,
the instant ``at`` (epoch milliseconds, event time) and a ``LedgerConfig``.

* **Frequency caps** (``cap_block``) are rolling windows in event time, not
  calendar days: ``"day"`` is any 24 h span and ``"week"`` any 7 x 24 h span. A
  message at ``at`` may go only if no span of that length containing ``at``
  already holds ``n`` messages, counting messages stamped after ``at`` too (a
  late decision must not break the cap around messages already sent). Two
  messages exactly 24 h apart are in no common day span. Global caps count
  every channel; a channel cap counts only its channel; ``0`` blocks
  everything and ``None`` means no cap.
* **Cooldown** (``cooldown_block``) keeps one campaign from firing again for
  ``cooldown_ms`` after it last fired: blocked while ``at < last_fired + cooldown_ms``.
* **Quiet hours** (``in_quiet_hours``, ``next_allowed_time``) are the half-open
  local wall-clock interval ``[start, end)`` in the customer's IANA time zone;
  ``start > end`` wraps midnight, ``start == end`` means no quiet hours. A
  message that falls inside them is not dropped but postponed to the first
  instant they end. Local time follows the tz database (``zoneinfo``), so DST
  days are 23 or 25 hours long: a wall time repeated by the autumn change is
  quiet on both passes, and an ``end`` that the spring change skips resolves
  to the first valid instant after the gap.
* **Control group and holdouts** (``bucket``, ``in_control_group``,
  ``in_holdout``) place a customer on a fixed point of ``[0, 100)`` from a
  SHA-256 of a salt and the customer id. The same customer gets the same
  answer on every worker, after every restart and on every replay (no random
  state, no seed). The global control group (salt ``"rapport:control"``) and
  each campaign's holdout (salt ``"holdout:<campaign>"``) use different salts,
  so they are independent draws: a customer in the control group is in a
  campaign's holdout with that holdout's probability, and being held out of one
  campaign says nothing about another.
* **Arbitration** (``arbitrate``) picks one message when several campaigns fire
  for the same customer at once; the others are the losers to record as
  suppressed.

Time zones are loaded with ``zoneinfo`` from the tz database (the ``tzdata``
package or the system's). That is the one thing read from outside the
arguments; a loaded zone is cached, so the lookup happens once per zone name.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import TypeVar
from zoneinfo import ZoneInfo

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS

#: Salt of the global control group (customers who get no campaign messages at all).
CONTROL_SALT = "rapport:control"

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
#: ``next_allowed_time`` looks at most this many candidate instants. Real zones need at
#: most three (an offset change, an ``end`` skipped by a DST gap, the next day's ``end``);
#: the bound only keeps a corrupt tz database from looping forever.
_MAX_STEPS = 16

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Caps:
    """At most ``day`` messages per rolling 24 h and ``week`` per rolling 7 × 24 h."""

    day: int | None = 2
    week: int | None = 5

    def __post_init__(self) -> None:
        for name in ("day", "week"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"cap {name!r} must be a whole number >= 0 or None, got {value!r}")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local wall-clock ``[start, end)`` as ``"HH:MM"`` (24 h clock); may wrap midnight."""

    start: str = "21:00"
    end: str = "08:00"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            _parse_hhmm(getattr(self, name), name)

    @property
    def start_time(self) -> time:
        return _parse_hhmm(self.start, "start")

    @property
    def end_time(self) -> time:
        return _parse_hhmm(self.end, "end")


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """Contact-pressure settings shared by every campaign.

    ``channel_caps`` adds caps for one channel (``{"sms": Caps(day=1, week=2)}``) on
    top of ``caps``, which count every channel. ``default_timezone`` is used for
    customers with no or an unknown time zone. ``control_group_percent`` of all
    customers (a stable draw, see ``in_control_group``) receive no campaign message.
    """

    caps: Caps = field(default_factory=Caps)
    channel_caps: Mapping[str, Caps] = field(default_factory=dict)
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    default_timezone: str = "UTC"
    control_group_percent: float = 5.0

    def __post_init__(self) -> None:
        if _load_zone(self.default_timezone) is None:
            raise ValueError(
                f"default_timezone must be an IANA time zone like Europe/Berlin, "
                f"got {self.default_timezone!r}"
            )
        percent = self.control_group_percent
        if (
            isinstance(percent, bool)
            or not isinstance(percent, int | float)
            or not 0 <= percent <= 100
        ):
            raise ValueError(f"control_group_percent must be within 0..100, got {percent!r}")


@dataclass(frozen=True, slots=True)
class Sent:
    """One message that left: its send time (epoch ms), channel and campaign."""

    ts: int
    channel: str
    campaign: str


# --- frequency caps and cooldown -------------------------------------------------------


def cap_block(
    history: Sequence[Sent], *, channel: str, at: int, config: LedgerConfig
) -> str | None:
    """The frequency cap a message on ``channel`` at ``at`` would break, or None.

    Caps hold in every rolling window (24 h for ``day``, 7 x 24 h for ``week``),
    also around messages stamped later than ``at`` (a decision made late, in event
    time, for a customer already messaged since): a cap of ``n`` blocks when some
    window of that length containing ``at`` already holds ``n`` messages. Such a
    window can always be taken to start at a message in ``(at - window, at]`` or at
    ``at`` itself. Reasons, checked in this order: ``frequency_cap:day``,
    ``frequency_cap:week`` (all channels), ``frequency_cap:<channel>:day``,
    ``frequency_cap:<channel>:week`` (``channel`` only). The history's order does not
    matter, and counting the same history twice gives the same answer.
    """
    every = [sent.ts for sent in history]
    mine = [sent.ts for sent in history if sent.channel == channel]
    checks: list[tuple[str, int | None, list[int], int]] = [
        ("frequency_cap:day", config.caps.day, every, DAY_MS),
        ("frequency_cap:week", config.caps.week, every, WEEK_MS),
    ]
    channel_caps = config.channel_caps.get(channel)
    if channel_caps is not None:
        checks += [
            (f"frequency_cap:{channel}:day", channel_caps.day, mine, DAY_MS),
            (f"frequency_cap:{channel}:week", channel_caps.week, mine, WEEK_MS),
        ]
    for reason, cap, times, window in checks:
        if cap is not None and _peak(times, at=at, window=window) >= cap:
            return reason
    return None


def _peak(times: Sequence[int], *, at: int, window: int) -> int:
    """Most messages in one ``window``-long span [s, s + window) that also contains ``at``."""
    near = [t for t in times if at - window < t < at + window]
    starts = [t for t in near if t <= at] + [at]
    return max(sum(1 for t in near if start <= t < start + window) for start in starts)


def cooldown_block(last_fired: int | None, *, at: int, cooldown_ms: int) -> str | None:
    """``"cooldown"`` while ``at < last_fired + cooldown_ms``; None if it never fired.

    The instant ``last_fired + cooldown_ms`` itself is allowed. A ``cooldown_ms`` of 0
    blocks nothing.
    """
    if cooldown_ms < 0:
        raise ValueError(f"cooldown_ms must be >= 0, got {cooldown_ms}")
    if last_fired is None or at >= last_fired + cooldown_ms:
        return None
    return "cooldown"


def prune_history(
    history: Sequence[Sent], *, now: int, keep_ms: int = 8 * DAY_MS
) -> tuple[Sent, ...]:
    """The messages that can still count in a cap at ``now`` or later: ``ts > now - keep_ms``.

    ``keep_ms`` must be at least the longest cap window (7 days) for caps to stay
    exact; the default keeps a day of slack for messages decided slightly behind the
    customer's clock. The order of ``history`` is kept; pruning twice changes nothing.
    """
    if keep_ms < WEEK_MS:
        raise ValueError(f"keep_ms must be at least a week ({WEEK_MS} ms), got {keep_ms}")
    horizon = now - keep_ms
    return tuple(sent for sent in history if sent.ts > horizon)


# --- quiet hours ---------------------------------------------------------------------------


def in_quiet_hours(at: int, *, timezone: str | None, config: LedgerConfig) -> bool:
    """Whether ``at`` falls inside quiet hours, in the customer's local wall-clock time.

    ``timezone`` is an IANA name; None or an unknown name means ``config.default_timezone``.
    """
    local = _to_local(at, _zone(timezone, config))
    return _is_quiet(local.time(), config.quiet_hours)


def next_allowed_time(at: int, *, timezone: str | None, config: LedgerConfig) -> int:
    """The first instant at or after ``at`` outside quiet hours (epoch ms).

    ``at`` itself when it is outside quiet hours; otherwise the instant the local
    clock next reads ``end``. On a day when the clock skips ``end`` (spring DST
    change) it is the first instant after the gap; on a day when the clock passes
    ``end`` twice (autumn) it is the first pass at or after ``at``; and when the
    autumn change sets the clock back out of quiet hours before ``end`` (possible
    with quiet hours around the change, like ``01:30``-``03:00`` in New York) it is
    the instant of the change. Never earlier than ``at`` and never inside quiet
    hours, for any zone and any quiet hours.
    """
    zone = _zone(timezone, config)
    quiet = config.quiet_hours
    t = at
    for _ in range(_MAX_STEPS):
        local = _to_local(t, zone)
        if not _is_quiet(local.time(), quiet):
            return t
        t = max(t + 1, _next_quiet_edge(t, local, quiet, zone))
    raise RuntimeError(f"quiet hours in {zone.key} do not end after {at}")  # pragma: no cover


def _next_quiet_edge(t: int, local: datetime, quiet: QuietHours, zone: ZoneInfo) -> int:
    """From ``t`` (quiet, wall clock ``local``): where quiet hours may end next.

    That is the first instant after ``t`` whose wall clock reads ``end`` (or is past it,
    when the zone skips ``end``), unless the zone's offset changes before it: then the
    instant of the change, where the wall clock jumps and must be looked at afresh.
    """
    start, end = quiet.start_time, quiet.end_time
    day = local.date()
    if start > end and local.time() >= start:  # the evening part of a wrapping window
        day += timedelta(days=1)
    wall = datetime.combine(day, end)
    passes = [ms for ms in _instants_of(wall, zone) if ms > t]
    edge = min(passes) if passes else _after_gap(wall, zone)
    offset = local.utcoffset()
    if _to_local(edge, zone).utcoffset() == offset:
        return edge  # one offset throughout (offset changes are months apart)
    lo, hi = t, edge  # offset(lo) == offset, offset(hi) != offset: bisect for the change
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _to_local(mid, zone).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi


def _instants_of(wall: datetime, zone: ZoneInfo) -> list[int]:
    """Every instant at which the local clock in ``zone`` reads ``wall`` (0, 1 or 2)."""
    found = []
    for fold in (0, 1):
        ms = _to_ms(wall.replace(tzinfo=zone, fold=fold))
        if _to_local(ms, zone).replace(tzinfo=None) == wall and ms not in found:
            found.append(ms)
    return found


def _after_gap(wall: datetime, zone: ZoneInfo) -> int:
    """The first instant whose local wall clock is past ``wall``, a time the zone skips.

    The two readings of a skipped time (with the offset before and after the change)
    bracket the change; the local clock is monotonic across it, so bisect.
    """
    a = _to_ms(wall.replace(tzinfo=zone, fold=0))
    b = _to_ms(wall.replace(tzinfo=zone, fold=1))
    lo, hi = min(a, b), max(a, b)  # wall(lo) < wall, wall(hi) > wall
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _to_local(mid, zone).replace(tzinfo=None) > wall:
            hi = mid
        else:
            lo = mid
    return hi


def _is_quiet(clock: time, quiet: QuietHours) -> bool:
    start, end = quiet.start_time, quiet.end_time
    if start < end:
        return start <= clock < end
    if start > end:
        return clock >= start or clock < end
    return False


def _parse_hhmm(value: object, name: str) -> time:
    match = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"quiet hours {name} must be a 24-hour local time 'HH:MM' (00:00 to 23:59), "
            f"got {value!r}"
        )
    return time(int(match[1]), int(match[2]))


def _zone(timezone: str | None, config: LedgerConfig) -> ZoneInfo:
    zone = _load_zone(timezone) if timezone else None
    if zone is None:
        zone = _load_zone(config.default_timezone)
    if zone is None:  # pragma: no cover - LedgerConfig validates default_timezone
        raise ValueError(f"unknown default_timezone {config.default_timezone!r}")
    return zone


@lru_cache(maxsize=1024)
def _load_zone(name: object) -> ZoneInfo | None:
    """The zone named ``name``, or None when it is not an IANA zone name (cached both ways)."""
    if not isinstance(name, str) or name == "localtime":  # "localtime": the host's zone
        return None
    try:
        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError (bad key), OSError (a directory)
        return None


def _to_local(ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def _to_ms(instant: datetime) -> int:
    return (instant - _EPOCH) // _ONE_MS


# --- control group, holdouts -------------------------------------------------------------


def bucket(customer_id: str, salt: str) -> float:
    """A stable point of ``[0, 100)`` for ``customer_id`` under ``salt``.

    The first 8 bytes (big-endian) of ``sha256(salt + "\\x1f" + customer_id)`` (UTF-8)
    as an integer, ``/ 2**64 * 100``. Deterministic across processes, machines and
    Python versions (no ``hash()``, no seed). Distinct salts give independent draws.
    """
    digest = hashlib.sha256(f"{salt}\x1f{customer_id}".encode()).digest()
    value = int.from_bytes(digest[:8], "big") / 2**64 * 100
    # The top 2**10 integers round to exactly 100.0 in float; keep the interval half-open.
    return value if value < 100.0 else math.nextafter(100.0, 0.0)


def in_control_group(customer_id: str, *, config: LedgerConfig) -> bool:
    """Whether the customer is in the global control group (gets no campaign messages).

    ``bucket(customer_id, "rapport:control") < config.control_group_percent``: stable
    across restarts and workers, and independent of every campaign's holdout. Raising
    the percentage only adds customers; nobody already in the group leaves it.
    """
    return bucket(customer_id, CONTROL_SALT) < config.control_group_percent


def in_holdout(customer_id: str, campaign: str, percent: float) -> bool:
    """Whether the customer is held out of ``campaign`` (measured, but not contacted).

    ``bucket(customer_id, f"holdout:{campaign}") < percent``: its own draw per
    campaign, independent of the control group and of other campaigns' holdouts, and
    stable across restarts and workers.
    """
    return bucket(customer_id, f"holdout:{campaign}") < percent


# --- arbitration ---------------------------------------------------------------------------


def arbitrate(
    candidates: Sequence[T], *, key: Callable[[T], tuple]
) -> tuple[T | None, tuple[T, ...]]:
    """The winner among campaigns firing together for one customer, and the losers.

    Candidates are ranked by ``key`` ascending; the first is the winner, the rest
    are returned in rank order. ``key`` carries the business order, e.g.
    ``lambda c: (-c.priority, c.name)``: highest priority first, then the campaign
    name as a stable tie-break. With a key that is unique per candidate, the result
    does not depend on the order of ``candidates`` (candidates with equal keys keep
    their input order). No candidates: ``(None, ())``.
    """
    ranked = sorted(candidates, key=key)
    if not ranked:
        return None, ()
    return ranked[0], tuple(ranked[1:])
