"""Query parameters of the HTTP API: any text is either read or refused, never a crash.

``?as_of=²`` used to answer 500: ``"²".isdigit()`` is true and ``int("²")`` raises.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.api import MAX_COUNT, BadQuery, parse_count, parse_time

TS = 1_795_341_600_000  # 2026-11-22T10:00:00Z

WEIRD = [
    "",
    " ",
    "²",
    "١٢٣",  # Arabic-Indic digits: int() would read them
    "１７９５３４１６０００００",  # fullwidth digits
    "-1",
    "+5",
    "1e3",
    "1_000",
    " 12",
    "12 ",
    "NaN",
    "nan",
    "Infinity",
    "-inf",
    "0x10",
    "9" * 17,
    "9" * 5000,  # past int()'s 4,300-digit limit
    "\x00",
    "2026-11-22T10:00:00",  # no offset
    "2026-13-01T00:00:00Z",
    "२०२६-11-22T10:00:00Z",  # Devanagari year
    "null",
    "[]",
]


@pytest.mark.parametrize("raw", WEIRD)
def test_a_weird_as_of_is_not_a_time(raw: str) -> None:
    assert parse_time(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(str(TS), TS), ("2026-11-22T10:00:00Z", TS), ("2026-11-22T11:00:00+01:00", TS)],
)
def test_epoch_ms_and_rfc3339_are_times(raw: str, expected: int) -> None:
    assert parse_time(raw) == expected


@given(st.text(max_size=64))
def test_any_as_of_is_read_or_refused(raw: str) -> None:
    found = parse_time(raw)
    assert found is None or isinstance(found, int)


@pytest.mark.parametrize("raw", [*WEIRD, "0", str(MAX_COUNT + 1), "-3", "2.0"])
def test_a_weird_count_is_refused_with_a_message(raw: str) -> None:
    with pytest.raises(BadQuery, match="top_k must be a whole number from 1 to"):
        parse_count(raw, name="top_k")


@pytest.mark.parametrize("value", [1, 10, MAX_COUNT])
def test_counts_in_range_are_read(value: int) -> None:
    assert parse_count(str(value), name="top_k") == value


@given(st.text(max_size=64))
def test_any_count_is_read_or_refused(raw: str) -> None:
    try:
        value = parse_count(raw, name="min_count")
    except BadQuery as exc:
        assert "min_count" in str(exc) and len(str(exc)) < 500  # 40 characters quoted
    else:
        assert 1 <= value <= MAX_COUNT and raw.isascii() and int(raw) == value
