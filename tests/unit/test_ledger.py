"""Contact-pressure ledger: cap window edges, cooldown, quiet hours across DST, buckets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.ledger import (
    DAY_MS,
    HOUR_MS,
    WEEK_MS,
    Caps,
    LedgerConfig,
    QuietHours,
    Sent,
    arbitrate,
    bucket,
    cap_block,
    cooldown_block,
    in_control_group,
    in_holdout,
    in_quiet_hours,
    next_allowed_time,
    prune_history,
)

AT = 1_795_341_600_000  # 2026-11-22T10:00:00Z
CONFIG = LedgerConfig()
SMS_CONFIG = LedgerConfig(channel_caps={"sms": Caps(day=1, week=2)})
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # 30-minute DST change
    "America/St_Johns",  # -03:30 / -02:30
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Apia",  # skipped 2011-12-30 entirely
    "America/Santiago",  # changes at local midnight
)


def ms(iso: str) -> int:
    """Epoch ms of an ISO 8601 instant with an explicit offset (``Z`` allowed)."""
    instant = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // (instant.resolution * 1000)


def sent(offset_ms: int, channel: str = "email", campaign: str = "c") -> Sent:
    """A message sent ``offset_ms`` relative to ``AT`` (negative: before)."""
    return Sent(ts=AT + offset_ms, channel=channel, campaign=campaign)


def quiet(start: str = "21:00", end: str = "08:00", default: str = "UTC") -> LedgerConfig:
    return LedgerConfig(quiet_hours=QuietHours(start, end), default_timezone=default)


def test_ms_helper() -> None:
    assert ms("2026-11-22T10:00:00Z") == AT
    assert ms("2026-11-22T11:00:00.001+01:00") == AT + 1


# --- frequency caps -------------------------------------------------------------------------

DAY_1 = LedgerConfig(caps=Caps(day=1, week=None))
WEEK_1 = LedgerConfig(caps=Caps(day=None, week=1))


@pytest.mark.parametrize(
    ("history", "config", "expected"),
    [
        # window edges, day cap: counts (at - 24 h, at]
        ([sent(-DAY_MS - 1)], DAY_1, None),  # 24 h + 1 ms ago: out
        ([sent(-DAY_MS)], DAY_1, None),  # exactly 24 h ago: out (open far edge)
        ([sent(-DAY_MS + 1)], DAY_1, "frequency_cap:day"),  # 24 h - 1 ms ago: in
        ([sent(-1)], DAY_1, "frequency_cap:day"),
        ([sent(0)], DAY_1, "frequency_cap:day"),  # same millisecond: in (closed near edge)
        # a message stamped after `at` (a decision made late in event time) counts while
        # one 24 h window holds both: [at, at + 24 h)
        ([sent(1)], DAY_1, "frequency_cap:day"),
        ([sent(DAY_MS - 1)], DAY_1, "frequency_cap:day"),
        ([sent(DAY_MS)], DAY_1, None),
        # window edges, week cap: counts (at - 7 × 24 h, at]
        ([sent(-WEEK_MS - 1)], WEEK_1, None),
        ([sent(-WEEK_MS)], WEEK_1, None),
        ([sent(-WEEK_MS + 1)], WEEK_1, "frequency_cap:week"),
        ([sent(-DAY_MS)], WEEK_1, "frequency_cap:week"),
        ([sent(0)], WEEK_1, "frequency_cap:week"),
        ([sent(1)], WEEK_1, "frequency_cap:week"),
        ([sent(WEEK_MS - 1)], WEEK_1, "frequency_cap:week"),
        ([sent(WEEK_MS)], WEEK_1, None),
        # one window must hold `at` and both messages, one before and one after it
        ([sent(-HOUR_MS), sent(DAY_MS - 2 * HOUR_MS)], CONFIG, "frequency_cap:day"),
        ([sent(-HOUR_MS), sent(DAY_MS - HOUR_MS)], CONFIG, None),  # 24 h apart
        ([sent(-DAY_MS + 1), sent(DAY_MS - 1)], CONFIG, None),
        # defaults: day 2, week 5; a cap of n blocks at n messages, not n + 1
        ([], CONFIG, None),
        ([sent(-HOUR_MS)], CONFIG, None),
        ([sent(-HOUR_MS), sent(-2 * HOUR_MS)], CONFIG, "frequency_cap:day"),
        ([sent(-HOUR_MS), sent(-DAY_MS)], CONFIG, None),
        ([sent(-d * DAY_MS - HOUR_MS) for d in range(4)], CONFIG, None),
        ([sent(-d * DAY_MS - HOUR_MS) for d in range(5)], CONFIG, "frequency_cap:week"),
        ([sent(-d * DAY_MS - HOUR_MS) for d in (0, 1, 2, 3, 7)], CONFIG, None),
        # day is checked before week
        ([sent(-HOUR_MS)] * 5, CONFIG, "frequency_cap:day"),
        # None = no cap, 0 = never
        ([sent(-HOUR_MS)] * 50, LedgerConfig(caps=Caps(day=None, week=None)), None),
        ([], LedgerConfig(caps=Caps(day=0)), "frequency_cap:day"),
        ([], LedgerConfig(caps=Caps(day=None, week=0)), "frequency_cap:week"),
    ],
)
def test_global_cap_edges(history: list[Sent], config: LedgerConfig, expected: str | None) -> None:
    assert cap_block(history, channel="email", at=AT, config=config) == expected


@pytest.mark.parametrize(
    ("history", "channel", "expected"),
    [
        # the sms day cap counts sms only
        ([sent(-HOUR_MS, "sms")], "sms", "frequency_cap:sms:day"),
        ([sent(-HOUR_MS, "sms")], "email", None),
        ([sent(-HOUR_MS, "email")], "sms", None),
        ([sent(-DAY_MS, "sms")], "sms", None),  # edge: exactly 24 h ago is out
        ([sent(-DAY_MS + 1, "sms")], "sms", "frequency_cap:sms:day"),
        # the sms week cap
        ([sent(-2 * DAY_MS, "sms"), sent(-3 * DAY_MS, "sms")], "sms", "frequency_cap:sms:week"),
        ([sent(-2 * DAY_MS, "sms"), sent(-WEEK_MS, "sms")], "sms", None),
        ([sent(-2 * DAY_MS, "sms"), sent(-3 * DAY_MS, "sms")], "email", None),
        ([sent(-2 * DAY_MS, "sms"), sent(-3 * DAY_MS, "push")], "sms", None),
        # global caps count every channel, and are reported before channel caps
        ([sent(-HOUR_MS, "sms"), sent(-HOUR_MS, "push")], "email", "frequency_cap:day"),
        ([sent(-HOUR_MS, "email"), sent(-HOUR_MS, "push")], "sms", "frequency_cap:day"),
        ([sent(-HOUR_MS, "sms"), sent(-HOUR_MS, "sms")], "sms", "frequency_cap:day"),
        (
            [sent(-d * DAY_MS - HOUR_MS, ch) for d, ch in enumerate("eeepp")],
            "sms",
            "frequency_cap:week",
        ),
        # a channel without its own caps has only the global ones
        ([sent(-HOUR_MS, "push")], "push", None),
    ],
)
def test_channel_caps(history: list[Sent], channel: str, expected: str | None) -> None:
    assert cap_block(history, channel=channel, at=AT, config=SMS_CONFIG) == expected


def test_channel_cap_with_only_a_week_limit() -> None:
    config = LedgerConfig(caps=Caps(None, None), channel_caps={"sms": Caps(day=None, week=1)})
    history = [sent(-3 * DAY_MS, "sms")]
    assert cap_block(history, channel="sms", at=AT, config=config) == "frequency_cap:sms:week"
    assert cap_block(history, channel="sms", at=AT + 4 * DAY_MS, config=config) is None


@pytest.mark.parametrize("value", [-1, True, 1.5, "2"])
def test_caps_reject_what_is_not_a_count(value: object) -> None:
    with pytest.raises(ValueError, match="whole number"):
        Caps(day=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole number"):
        Caps(week=value)  # type: ignore[arg-type]


histories = st.lists(
    st.builds(
        Sent,
        ts=st.integers(AT - 9 * DAY_MS, AT + DAY_MS),
        channel=st.sampled_from(("email", "sms", "push")),
        campaign=st.sampled_from(("a", "b")),
    ),
    max_size=12,
)
small_caps = st.builds(Caps, day=st.none() | st.integers(0, 4), week=st.none() | st.integers(0, 8))
configs = st.builds(
    LedgerConfig,
    caps=small_caps,
    channel_caps=st.dictionaries(st.sampled_from(("sms", "push")), small_caps, max_size=2),
)


def naive_cap_block(history: list[Sent], channel: str, at: int, config: LedgerConfig) -> str | None:
    """The definition, by brute force: the most messages in one window ``[s, s + window)``
    that holds ``at`` (``at - window < s <= at``), trying every start where a count changes."""

    def count(window: int, only: str | None) -> int:
        times = [s.ts for s in history if only in (None, s.channel)]
        candidates = {at - window + 1, at}
        for t in times:
            candidates |= {t, t + 1, t - window, t - window + 1}
        starts = [s for s in candidates if at - window < s <= at]
        return max(sum(1 for t in times if s <= t < s + window) for s in starts)

    limits = [("frequency_cap:day", config.caps.day, count(DAY_MS, None))]
    limits.append(("frequency_cap:week", config.caps.week, count(WEEK_MS, None)))
    if channel in config.channel_caps:
        c = config.channel_caps[channel]
        limits.append((f"frequency_cap:{channel}:day", c.day, count(DAY_MS, channel)))
        limits.append((f"frequency_cap:{channel}:week", c.week, count(WEEK_MS, channel)))
    return next((reason for reason, cap, n in limits if cap is not None and n >= cap), None)


@settings(max_examples=150, deadline=None)
@given(
    history=histories,
    config=configs,
    channel=st.sampled_from(("email", "sms", "push")),
    data=st.data(),
)
def test_cap_block_matches_the_definition_and_ignores_order(
    history: list[Sent], config: LedgerConfig, channel: str, data: st.DataObject
) -> None:
    reason = cap_block(history, channel=channel, at=AT, config=config)
    assert reason == naive_cap_block(history, channel, AT, config)
    shuffled = data.draw(st.permutations(history))
    assert cap_block(shuffled, channel=channel, at=AT, config=config) == reason


# --- cooldown -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_fired", "at", "cooldown_ms", "expected"),
    [
        (None, AT, DAY_MS, None),  # never fired
        (AT, AT, DAY_MS, "cooldown"),  # fired at this very instant
        (AT, AT + DAY_MS - 1, DAY_MS, "cooldown"),  # last blocked millisecond
        (AT, AT + DAY_MS, DAY_MS, None),  # first allowed millisecond
        (AT, AT + 30 * DAY_MS, DAY_MS, None),
        (AT, AT - 1, DAY_MS, "cooldown"),  # an earlier instant (a replay) is blocked too
        (AT, AT, 0, None),  # no cooldown
        (AT, AT - 1, 0, "cooldown"),  # ... but time before the last fire is still before it
    ],
)
def test_cooldown_edges(
    last_fired: int | None, at: int, cooldown_ms: int, expected: str | None
) -> None:
    assert cooldown_block(last_fired, at=at, cooldown_ms=cooldown_ms) == expected


def test_cooldown_rejects_a_negative_duration() -> None:
    with pytest.raises(ValueError, match="cooldown_ms"):
        cooldown_block(AT, at=AT, cooldown_ms=-1)


# --- prune_history --------------------------------------------------------------------------


def test_prune_keeps_exactly_what_can_still_count() -> None:
    keep = 8 * DAY_MS
    history = [sent(-keep - 1), sent(-keep), sent(-keep + 1), sent(0), sent(DAY_MS), sent(-HOUR_MS)]
    assert prune_history(history, now=AT) == (history[2], history[3], history[4], history[5])
    assert prune_history(history, now=AT, keep_ms=WEEK_MS) == tuple(history[3:])
    assert prune_history((), now=AT) == ()


def test_prune_refuses_to_forget_inside_the_week_window() -> None:
    with pytest.raises(ValueError, match="keep_ms"):
        prune_history([], now=AT, keep_ms=WEEK_MS - 1)


@settings(max_examples=150, deadline=None)
@given(
    history=histories,
    config=configs,
    later=st.integers(0, 3 * DAY_MS),
    channel=st.sampled_from(("email", "sms")),
)
def test_pruning_never_changes_a_cap_decision_now_or_later(
    history: list[Sent], config: LedgerConfig, later: int, channel: str
) -> None:
    pruned = prune_history(history, now=AT)
    assert prune_history(pruned, now=AT) == pruned  # idempotent
    for at in (AT, AT + later):
        before = cap_block(history, channel=channel, at=at, config=config)
        assert cap_block(pruned, channel=channel, at=at, config=config) == before


# --- quiet hours ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["24:00", "8:00", "08:60", "0800", "", " 08:00", "08:00:00", 800])
def test_quiet_hours_reject_bad_times(value: object) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        QuietHours(start=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="HH:MM"):
        QuietHours(end=value)  # type: ignore[arg-type]


def test_quiet_hours_accept_the_whole_clock() -> None:
    assert QuietHours("00:00", "23:59") == QuietHours(start="00:00", end="23:59")


# (at, zone, quiet hours, in quiet hours, next allowed time)
QUIET_CASES = [
    # Berlin winter (+01:00), default 21:00-08:00 wrapping midnight
    ("2026-01-15T19:59:59.999Z", "Europe/Berlin", ("21:00", "08:00"), False, None),
    ("2026-01-15T20:00:00Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-01-16T07:00:00Z"),
    ("2026-01-15T23:00:00Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-01-16T07:00:00Z"),
    ("2026-01-16T06:59:59.999Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-01-16T07:00Z"),
    ("2026-01-16T07:00:00Z", "Europe/Berlin", ("21:00", "08:00"), False, None),
    # Berlin 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00Z; the night is an hour shorter
    ("2026-03-28T20:00:00Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-03-29T06:00:00Z"),
    ("2026-03-29T01:00:00Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-03-29T06:00:00Z"),
    ("2026-03-29T05:59:59.999Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-03-29T06:00Z"),
    ("2026-03-29T06:00:00Z", "Europe/Berlin", ("21:00", "08:00"), False, None),
    ("2026-03-29T18:59:59.999Z", "Europe/Berlin", ("21:00", "08:00"), False, None),
    ("2026-03-29T19:00:00Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-03-30T06:00:00Z"),
    # ... and an `end` the clock skips: the first instant after the gap (03:00 CEST)
    ("2026-03-28T23:00:00Z", "Europe/Berlin", ("21:00", "02:30"), True, "2026-03-29T01:00:00Z"),
    ("2026-03-29T00:59:59.999Z", "Europe/Berlin", ("21:00", "02:30"), True, "2026-03-29T01:00Z"),
    ("2026-03-29T01:00:00Z", "Europe/Berlin", ("21:00", "02:30"), False, None),
    # ... quiet hours wholly inside the gap: none that night
    ("2026-03-29T00:59:59.999Z", "Europe/Berlin", ("02:10", "02:50"), False, None),
    ("2026-03-29T01:00:00Z", "Europe/Berlin", ("02:10", "02:50"), False, None),
    # ... a quiet start inside the gap: quiet from the end of the gap
    ("2026-03-29T00:59:59.999Z", "Europe/Berlin", ("02:30", "06:00"), False, None),
    ("2026-03-29T01:00:00Z", "Europe/Berlin", ("02:30", "06:00"), True, "2026-03-29T04:00:00Z"),
    # Berlin 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00Z; the night is an hour longer
    ("2026-10-24T19:00:00Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-10-25T07:00:00Z"),
    ("2026-10-25T06:00:00Z", "Europe/Berlin", ("21:00", "08:00"), True, "2026-10-25T07:00:00Z"),
    # New York 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z
    ("2026-11-01T00:59:59.999Z", "America/New_York", ("21:00", "08:00"), False, None),
    ("2026-11-01T01:00:00Z", "America/New_York", ("21:00", "08:00"), True, "2026-11-01T13:00Z"),
    ("2026-11-01T06:30:00Z", "America/New_York", ("21:00", "08:00"), True, "2026-11-01T13:00Z"),
    ("2026-11-01T13:00:00Z", "America/New_York", ("21:00", "08:00"), False, None),
    # ... an `end` the clock passes twice: the first pass at or after `at`
    ("2026-11-01T05:15:00Z", "America/New_York", ("21:00", "01:30"), True, "2026-11-01T05:30Z"),
    ("2026-11-01T05:45:00Z", "America/New_York", ("21:00", "01:30"), False, None),
    ("2026-11-01T06:15:00Z", "America/New_York", ("21:00", "01:30"), True, "2026-11-01T06:30Z"),
    ("2026-11-01T06:30:00Z", "America/New_York", ("21:00", "01:30"), False, None),
    # ... the change sets the clock back out of quiet hours before `end`
    ("2026-11-01T05:45:00Z", "America/New_York", ("01:30", "03:00"), True, "2026-11-01T06:00Z"),
    ("2026-11-01T06:00:00Z", "America/New_York", ("01:30", "03:00"), False, None),
    ("2026-11-01T06:30:00Z", "America/New_York", ("01:30", "03:00"), True, "2026-11-01T08:00Z"),
    # New York 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z
    ("2026-03-08T02:00:00Z", "America/New_York", ("21:00", "08:00"), True, "2026-03-08T12:00Z"),
    ("2026-03-08T06:59:59.999Z", "America/New_York", ("21:00", "08:00"), True, "2026-03-08T12:00Z"),
    # Kolkata (+05:30 all year)
    ("2026-06-01T15:29:59.999Z", "Asia/Kolkata", ("21:00", "08:00"), False, None),
    ("2026-06-01T15:30:00Z", "Asia/Kolkata", ("21:00", "08:00"), True, "2026-06-02T02:30:00Z"),
    ("2026-06-01T20:00:00Z", "Asia/Kolkata", ("21:00", "08:00"), True, "2026-06-02T02:30:00Z"),
    ("2026-06-02T02:29:59.999Z", "Asia/Kolkata", ("21:00", "08:00"), True, "2026-06-02T02:30Z"),
    ("2026-06-02T02:30:00Z", "Asia/Kolkata", ("21:00", "08:00"), False, None),
    ("2026-06-01T18:29:59.999Z", "Asia/Kolkata", ("00:00", "06:00"), False, None),  # 23:59:59.999
    ("2026-06-01T18:30:00Z", "Asia/Kolkata", ("00:00", "06:00"), True, "2026-06-02T00:30:00Z"),
    # quiet hours that do not wrap, and none at all
    ("2026-01-15T11:59:59.999Z", "UTC", ("12:00", "14:00"), False, None),
    ("2026-01-15T12:00:00Z", "UTC", ("12:00", "14:00"), True, "2026-01-15T14:00:00Z"),
    ("2026-01-15T14:00:00Z", "UTC", ("12:00", "14:00"), False, None),
    ("2026-01-15T23:00:00Z", "UTC", ("22:00", "22:00"), False, None),
    # Apia skipped 2011-12-30: from the 29th's evening straight to the 31st's morning
    ("2011-12-30T07:00:00Z", "Pacific/Apia", ("21:00", "08:00"), True, "2011-12-30T18:00Z"),
]


@pytest.mark.parametrize(("at", "zone", "hours", "is_quiet", "next_at"), QUIET_CASES)
def test_quiet_hours_across_zones_and_dst(
    at: str, zone: str, hours: tuple[str, str], is_quiet: bool, next_at: str | None
) -> None:
    config = quiet(*hours)
    assert in_quiet_hours(ms(at), timezone=zone, config=config) is is_quiet
    expected = ms(next_at) if next_at is not None else ms(at)
    assert next_allowed_time(ms(at), timezone=zone, config=config) == expected


@pytest.mark.parametrize(
    "bad", [None, "", "Mars/Olympus", "europe/berlin", "Europe", "../etc/passwd", "localtime"]
)
def test_an_unknown_timezone_falls_back_to_the_default(bad: str | None) -> None:
    config = quiet(default="Asia/Kolkata")
    at = ms("2026-06-01T15:30:00Z")  # 21:00 in Kolkata, 15:30 in UTC
    assert in_quiet_hours(at, timezone=bad, config=config)
    assert next_allowed_time(at, timezone=bad, config=config) == ms("2026-06-02T02:30:00Z")
    assert not in_quiet_hours(at, timezone="UTC", config=config)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"default_timezone": "Mars/Olympus"}, "default_timezone"),
        ({"default_timezone": ""}, "default_timezone"),
        ({"control_group_percent": -0.1}, "control_group_percent"),
        ({"control_group_percent": 100.5}, "control_group_percent"),
    ],
)
def test_config_rejects_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LedgerConfig(**kwargs)  # type: ignore[arg-type]


def test_config_defaults() -> None:
    assert CONFIG.caps == Caps(day=2, week=5)
    assert CONFIG.channel_caps == {}
    assert CONFIG.quiet_hours == QuietHours("21:00", "08:00")
    assert (CONFIG.default_timezone, CONFIG.control_group_percent) == ("UTC", 5.0)


hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
quiet_configs = st.sampled_from([("21:00", "08:00"), ("22:30", "06:15")]) | st.tuples(hhmm, hhmm)


@settings(max_examples=300, deadline=None)
@given(
    at=st.integers(ms("2000-01-01T00:00:00Z"), ms("2040-01-01T00:00:00Z")),
    zone=st.sampled_from(ZONES),
    hours=quiet_configs,
    fraction=st.floats(0, 1, exclude_max=True),
)
def test_next_allowed_time_is_the_first_instant_outside_quiet_hours(
    at: int, zone: str, hours: tuple[str, str], fraction: float
) -> None:
    config = quiet(*hours)
    allowed = next_allowed_time(at, timezone=zone, config=config)
    assert allowed >= at
    assert not in_quiet_hours(allowed, timezone=zone, config=config)
    assert next_allowed_time(allowed, timezone=zone, config=config) == allowed
    if allowed == at:
        assert not in_quiet_hours(at, timezone=zone, config=config)
    else:  # quiet from `at` up to the last millisecond before `allowed`
        assert in_quiet_hours(at, timezone=zone, config=config)
        assert in_quiet_hours(allowed - 1, timezone=zone, config=config)
        inside = at + int(fraction * (allowed - at))
        assert in_quiet_hours(inside, timezone=zone, config=config)
        assert allowed - at <= 2 * DAY_MS


# --- control group and holdouts -------------------------------------------------------------


def expected_bucket(customer_id: str, salt: str) -> float:
    digest = hashlib.sha256((salt + "\x1f" + customer_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@pytest.mark.parametrize(
    ("customer_id", "salt"),
    [("c-1", "rapport:control"), ("c-2", "holdout:welcome"), ("", ""), ("kundin-ü", "x")],
)
def test_bucket_is_the_documented_hash(customer_id: str, salt: str) -> None:
    assert bucket(customer_id, salt) == expected_bucket(customer_id, salt)


def test_bucket_values_are_pinned() -> None:
    # Computed once with expected_bucket; a change here reshuffles every control group.
    assert expected_bucket("c-1", "rapport:control") == 42.624156485434526
    assert bucket("c-1", "rapport:control") == 42.624156485434526
    assert bucket("c-2", "holdout:welcome") == 37.24389847141246


IDS = [f"customer-{i}" for i in range(10_000)]


def test_control_group_is_about_the_configured_share() -> None:
    members = [cid for cid in IDS if in_control_group(cid, config=CONFIG)]
    assert 0.04 <= len(members) / len(IDS) <= 0.06
    assert all(0 <= bucket(cid, "rapport:control") < 100 for cid in IDS)
    none = LedgerConfig(control_group_percent=0)
    everyone = LedgerConfig(control_group_percent=100)
    assert not any(in_control_group(cid, config=none) for cid in IDS[:500])
    assert all(in_control_group(cid, config=everyone) for cid in IDS[:500])


def test_holdout_is_independent_of_the_control_group_and_of_other_campaigns() -> None:
    half = LedgerConfig(control_group_percent=50)
    control = {cid for cid in IDS if in_control_group(cid, config=half)}
    welcome = {cid for cid in IDS if in_holdout(cid, "welcome", 50)}
    winback = {cid for cid in IDS if in_holdout(cid, "winback", 50)}
    for group in (control, welcome, winback):
        assert 0.48 <= len(group) / len(IDS) <= 0.52
    # independent draws: each pair overlaps on about a quarter of all customers
    for a, b in ((control, welcome), (control, winback), (welcome, winback)):
        assert 0.23 <= len(a & b) / len(IDS) <= 0.27


@given(customer_id=st.text(max_size=20), campaign=st.text(max_size=10))
def test_membership_is_stable_and_monotone_in_the_percentage(
    customer_id: str, campaign: str
) -> None:
    value = bucket(customer_id, f"holdout:{campaign}")
    assert 0 <= value < 100
    assert value == bucket(customer_id, f"holdout:{campaign}")
    assert in_holdout(customer_id, campaign, value) is False
    assert in_holdout(customer_id, campaign, value + 1e-9) is True
    assert in_holdout(customer_id, campaign, 100) is True
    assert in_holdout(customer_id, campaign, 0) is False


# --- arbitration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    campaign: str
    priority: int


def by_priority(c: Fired) -> tuple[int, str]:
    return (-c.priority, c.campaign)


@pytest.mark.parametrize(
    ("candidates", "winner", "losers"),
    [
        ([], None, []),
        ([Fired("a", 1)], "a", []),
        ([Fired("a", 1), Fired("b", 5), Fired("c", 3)], "b", ["c", "a"]),
        ([Fired("zeta", 5), Fired("alpha", 5), Fired("mid", 9)], "mid", ["alpha", "zeta"]),
        ([Fired("b", -1), Fired("a", -1)], "a", ["b"]),
    ],
)
def test_arbitrate_picks_highest_priority_then_name(
    candidates: list[Fired], winner: str | None, losers: list[str]
) -> None:
    won, lost = arbitrate(candidates, key=by_priority)
    assert (won.campaign if won else None) == winner
    assert [c.campaign for c in lost] == losers


@given(
    st.lists(
        st.builds(
            Fired, campaign=st.text("abcde", min_size=1, max_size=3), priority=st.integers(0, 3)
        ),
        unique_by=lambda c: c.campaign,
        max_size=8,
    ).flatmap(lambda cs: st.tuples(st.just(cs), st.permutations(cs)))
)
def test_arbitrate_ignores_arrival_order(pair: tuple[list[Fired], list[Fired]]) -> None:
    candidates, shuffled = pair
    won, lost = arbitrate(candidates, key=by_priority)
    assert arbitrate(shuffled, key=by_priority) == (won, lost)
    if not candidates:
        assert (won, lost) == (None, ())
    else:
        assert [won, *lost] == sorted(candidates, key=by_priority)
