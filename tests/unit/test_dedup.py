"""Dedup: redelivery recognised by (source, offset), producer retries by a bounded id window."""

from __future__ import annotations

import pytest

from models.dedup import Applied, event_digest, is_duplicate, remember

SRC = "orders/0"


def applied_once(event_id: str = "e1", offset: int = 10, keep: int = 4) -> Applied:
    return remember(Applied(), event_id, SRC, offset, keep=keep)


def test_nothing_is_a_duplicate_of_an_empty_history() -> None:
    assert not is_duplicate(Applied(), "e1", SRC, 0)
    assert not is_duplicate(Applied(), "e1", None, None)


@pytest.mark.parametrize(
    ("event_id", "source", "offset", "duplicate"),
    [
        ("e1", SRC, 10, True),  # the same record again
        ("e2", SRC, 10, True),  # same offset: the same record, whatever its id says
        ("e2", SRC, 9, True),  # lower offset: redelivered from an older commit
        ("e2", SRC, 0, True),
        ("e2", SRC, 11, False),  # higher offset: new
        ("e2", "orders/1", 3, False),  # another partition has its own offsets
        ("e2", None, None, False),  # no coordinates: only the id counts
        ("e1", None, None, True),
        ("e1", "orders/1", 3, True),  # same id from elsewhere: a producer retry
        ("e1", SRC, 11, True),  # same id at a new offset: a producer retry
    ],
)
def test_is_duplicate(
    event_id: str, source: str | None, offset: int | None, duplicate: bool
) -> None:
    assert is_duplicate(applied_once("e1", 10), event_id, source, offset) is duplicate


def test_remember_keeps_the_highest_offset_per_source_and_the_id_digest() -> None:
    applied = applied_once("e1", 10)
    applied = remember(applied, "e2", SRC, 7, keep=4)  # never lowers what was seen
    applied = remember(applied, "e3", "clicks/2", 5, keep=4)
    applied = remember(applied, "e4", None, None, keep=4)
    assert applied == Applied(
        offsets={SRC: 10, "clicks/2": 5},
        recent_ids=tuple(event_digest(e) for e in ("e1", "e2", "e3", "e4")),
    )


def test_remember_does_not_modify_its_input() -> None:
    before = applied_once("e1", 10)
    remember(before, "e2", SRC, 11, keep=4)
    assert before == Applied(offsets={SRC: 10}, recent_ids=(event_digest("e1"),))


def test_event_digest_is_16_hex_chars_and_deterministic() -> None:
    assert event_digest("e1") == event_digest("e1") != event_digest("e2")
    assert len(event_digest("e1")) == 16
    int(event_digest("e1"), 16)


def _after_others(others: int, keep: int) -> Applied:
    """e0 at offset 0, then ``others`` more events at offsets 1..others."""
    applied = remember(Applied(), "e0", SRC, 0, keep=keep)
    for i in range(1, others + 1):
        applied = remember(applied, f"e{i}", SRC, i, keep=keep)
    return applied


@pytest.mark.parametrize("others", [0, 1, 3])
def test_same_event_id_at_a_new_offset_is_duplicate_while_within_the_keep_window(
    others: int,
) -> None:
    applied = _after_others(others, keep=4)  # e0 plus at most 3 others: still remembered
    assert is_duplicate(applied, "e0", SRC, others + 1)


@pytest.mark.parametrize("others", [4, 10])
def test_same_event_id_at_a_new_offset_is_forgotten_beyond_the_keep_window(others: int) -> None:
    applied = _after_others(others, keep=4)  # the window holds only the last 4 ids
    assert len(applied.recent_ids) == 4
    assert not is_duplicate(applied, "e0", SRC, others + 1)
    # ... while its old offset is still recognised exactly:
    assert is_duplicate(applied, "e0", SRC, 0)
