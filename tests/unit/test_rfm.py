"""RFM: the contract's score, whole-day recency, the segment grid and population scoring."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import models.rfm
from models.rfm import (
    DAY_MS,
    SEGMENT_GRID,
    SEGMENTS,
    Rfm,
    Standing,
    fm_score,
    recency_days,
    rfm_score,
    rfm_segment,
    score_one,
    score_population,
)

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("worse", "equal", "population", "score"),
    [
        (0, 1, 1, 3),  # a population of one sits in the middle
        (0, 1, 10, 1),
        (1, 1, 10, 1),
        (2, 1, 10, 2),
        (3, 1, 10, 2),
        (4, 1, 10, 3),
        (6, 1, 10, 4),
        (7, 1, 10, 4),
        (8, 1, 10, 5),  # the top fifth scores 5
        (9, 1, 10, 5),
        (0, 10, 10, 3),  # everybody ties: the middle, not the bottom
        (0, 2, 2, 3),
        (0, 3, 3, 3),
        (1, 1, 2, 4),  # 1 + floor(5 * 1.5 / 2)
        (0, 1, 2, 2),  # 1 + floor(5 * 0.5 / 2)
        (4, 2, 10, 3),  # a tie of two at ranks 4 and 5: mid-rank 5
        (99, 1, 100, 5),
        (79, 1, 100, 4),  # 79.5 fifths of 100: 3.975
        (80, 1, 100, 5),
        (0, 100, 100, 3),
    ],
)
def test_rfm_score(worse: int, equal: int, population: int, score: int) -> None:
    assert rfm_score(worse, equal, population) == score


@pytest.mark.parametrize(
    ("worse", "equal", "population"),
    [(0, 1, 0), (-1, 1, 5), (5, 1, 5), (4, 2, 5), (0, 0, 5), (0, 1, -1)],
)
def test_rfm_score_rejects_impossible_counts(worse: int, equal: int, population: int) -> None:
    with pytest.raises(ValueError):
        rfm_score(worse, equal, population)


@pytest.mark.parametrize(
    ("last", "now", "days"),
    [
        (T0, T0, 0),
        (T0, T0 + DAY_MS - 1, 0),
        (T0, T0 + DAY_MS, 1),  # whole days: exactly 24 h is 1
        (T0, T0 + 10 * DAY_MS + 23 * HOUR_MS, 10),
        (T0, T0 - 1, 0),  # a last order after now is as recent as it gets
        (T0, T0 - 5 * DAY_MS, 0),
    ],
)
def test_recency_days(last: int, now: int, days: int) -> None:
    assert recency_days(last, now) == days


@pytest.mark.parametrize(
    ("f", "m", "fm"),
    [(1, 1, 1), (1, 2, 2), (2, 3, 3), (4, 5, 5), (5, 4, 5), (1, 5, 3), (3, 4, 4), (5, 5, 5)],
)
def test_fm_is_the_mean_rounded_half_up(f: int, m: int, fm: int) -> None:
    assert fm_score(f, m) == fm


@pytest.mark.parametrize(
    ("r", "f", "m", "segment"),
    [
        (5, 5, 5, "champions"),
        (5, 4, 4, "champions"),
        (4, 5, 5, "champions"),
        (4, 4, 5, "champions"),  # FM 4.5 rounds up to 5
        (4, 4, 4, "loyal_customers"),
        (3, 5, 5, "loyal_customers"),
        (5, 3, 3, "potential_loyalists"),
        (4, 2, 2, "potential_loyalists"),
        (5, 1, 1, "new_customers"),
        (4, 1, 1, "promising"),
        (3, 3, 3, "need_attention"),
        (3, 1, 2, "about_to_sleep"),
        (2, 4, 4, "at_risk"),
        (1, 3, 3, "at_risk"),
        (1, 5, 5, "cant_lose_them"),
        (2, 5, 4, "cant_lose_them"),
        (2, 1, 1, "hibernating"),
        (1, 1, 1, "lost"),
        (1, 2, 2, "lost"),
    ],
)
def test_rfm_segment_named_cells(r: int, f: int, m: int, segment: str) -> None:
    assert rfm_segment(r, f, m) == segment


def test_the_grid_is_a_complete_partition_into_the_eleven_segments() -> None:
    assert sorted(SEGMENT_GRID) == [1, 2, 3, 4, 5]
    cells = [(r, fm) for r in SEGMENT_GRID for fm in range(1, 6)]
    assert len(cells) == 25
    assert all(len(SEGMENT_GRID[r]) == 5 for r in SEGMENT_GRID)
    assert all(SEGMENT_GRID[r][fm - 1] in SEGMENTS for r, fm in cells)
    assert {SEGMENT_GRID[r][fm - 1] for r, fm in cells} == set(SEGMENTS)
    assert len(set(SEGMENTS)) == 11
    # every (r, f, m) maps, through its (r, fm) cell
    for r in range(1, 6):
        for f in range(1, 6):
            for m in range(1, 6):
                assert rfm_segment(r, f, m) == SEGMENT_GRID[r][fm_score(f, m) - 1]


def test_the_docstring_table_is_the_code_table() -> None:
    doc = models.rfm.__doc__ or ""
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].isdigit():
            rows[int(cells[0])] = tuple(cells[1:])
    assert rows == dict(SEGMENT_GRID)


@pytest.mark.parametrize(("r", "f", "m"), [(0, 3, 3), (6, 3, 3), (3, 0, 3), (3, 3, 6)])
def test_rfm_segment_rejects_scores_outside_1_to_5(r: int, f: int, m: int) -> None:
    with pytest.raises(ValueError):
        rfm_segment(r, f, m)


def test_score_one_builds_the_code_and_segment() -> None:
    mine = (T0, 3, 120.0)
    top, second, bottom = Standing(9, 1), Standing(8, 1), Standing(0, 1)
    assert score_one(mine, r=top, f=top, m=second, population=10) == Rfm(
        r=5, f=5, m=5, code="555", segment="champions"
    )
    assert score_one(mine, r=bottom, f=top, m=top, population=10).segment == "cant_lose_them"
    with pytest.raises(ValueError):
        score_one((T0, 0, 0.0), r=bottom, f=bottom, m=bottom, population=1)
    with pytest.raises(ValueError):
        score_one(mine, r=Standing(10, 1), f=bottom, m=bottom, population=10)


def test_ten_customers_worked_by_hand() -> None:
    """Ranks 0..9 of "strictly worse" give scores 1,1,2,2,3,3,4,4,5,5: the top fifth is 5.

    Recency: a..j last ordered 0..9 whole days ago (b at 1 day 23 h is still 1 day).
    Frequency: a..j have 1..10 orders. Monetary, with a tie between a and b:
    g 20 < c 50 < i 60 < j 70 < a = b 100 < e = f 300 < d 900 < h 1000.
    """
    now = T0
    customers = {
        "a": (now - 0 * DAY_MS - 5 * HOUR_MS, 1, 100.0),
        "b": (now - 1 * DAY_MS - 23 * HOUR_MS, 2, 100.0),
        "c": (now - 2 * DAY_MS, 3, 50.0),
        "d": (now - 3 * DAY_MS, 4, 900.0),
        "e": (now - 4 * DAY_MS, 5, 300.0),
        "f": (now - 5 * DAY_MS, 6, 300.0),
        "g": (now - 6 * DAY_MS, 7, 20.0),
        "h": (now - 7 * DAY_MS, 8, 1000.0),
        "i": (now - 8 * DAY_MS, 9, 60.0),
        "j": (now - 9 * DAY_MS - 1, 10, 70.0),
        "prospect": (now, 0, 0.0),  # no orders: not in the population
    }
    expected = {
        # R: worse = 9 - index; F: worse = index; M: worse from the ordering above
        "a": ("513", "potential_loyalists"),  # FM (1+3+1)//2 = 2
        "b": ("513", "potential_loyalists"),
        "c": ("421", "potential_loyalists"),
        "d": ("425", "loyal_customers"),  # FM 4
        "e": ("334", "loyal_customers"),  # FM 4 (3.5 rounds up)
        "f": ("334", "loyal_customers"),
        "g": ("241", "at_risk"),  # FM 3 (2.5 rounds up)
        "h": ("245", "cant_lose_them"),  # FM 5 (4.5 rounds up)
        "i": ("152", "at_risk"),  # FM 4 (3.5 rounds up)
        "j": ("152", "at_risk"),
    }
    scored = score_population(customers, now=now)
    assert {cid: (rfm.code, rfm.segment) for cid, rfm in scored.items()} == expected


def test_population_of_one_and_of_ties_scores_three() -> None:
    assert score_population({"solo": (T0, 7, 900.0)}, now=T0) == {
        "solo": Rfm(r=3, f=3, m=3, code="333", segment="need_attention")
    }
    same = {c: (T0 - 3 * DAY_MS, 2, 50.0) for c in ("x", "y", "z")}
    assert {rfm.code for rfm in score_population(same, now=T0).values()} == {"333"}
    assert score_population({}, now=T0) == {}
    assert score_population({"p": (T0, 0, 0.0)}, now=T0) == {}


# --- properties -------------------------------------------------------------------------

populations = st.dictionaries(
    keys=st.text(alphabet="abcdefgh", min_size=1, max_size=3),
    values=st.tuples(
        st.integers(min_value=T0 - 40 * DAY_MS, max_value=T0 + DAY_MS).map(
            lambda t: t - t % (6 * HOUR_MS)  # a coarse grid, so recency ties happen
        ),
        st.integers(min_value=0, max_value=6),
        st.sampled_from((0.0, 9.99, 10.0, 25.5, 100.0, 100.0, 730.25)),
    ),
    max_size=40,
)


def brute_force(customers: dict[str, tuple[int, int, float]], now: int) -> dict[str, Rfm]:
    pop = {c: v for c, v in customers.items() if v[1] >= 1}
    n = len(pop)
    out = {}
    for cid, (last, orders, revenue) in pop.items():
        days = recency_days(last, now)
        others = [(-recency_days(o[0], now), o[1], o[2]) for o in pop.values()]
        mine = (-days, orders, revenue)
        r, f, m = (
            min(
                5,
                1
                + math.floor(
                    Fraction(5)
                    * (
                        sum(o[i] < mine[i] for o in others)
                        + Fraction(sum(o[i] == mine[i] for o in others), 2)
                    )
                    / n
                ),
            )
            for i in range(3)
        )
        out[cid] = Rfm(r=r, f=f, m=m, code=f"{r}{f}{m}", segment=rfm_segment(r, f, m))
    return out


@settings(max_examples=300, deadline=None)
@given(customers=populations)
def test_score_population_matches_brute_force(customers: dict[str, tuple[int, int, float]]) -> None:
    scored = score_population(customers, now=T0)
    assert scored == brute_force(customers, T0)
    for cid, rfm in scored.items():  # ties score alike
        for other, other_rfm in scored.items():
            a, b = customers[cid], customers[other]
            if recency_days(a[0], T0) == recency_days(b[0], T0):
                assert rfm.r == other_rfm.r
            if a[1] == b[1]:
                assert rfm.f == other_rfm.f
            if a[2] == b[2]:
                assert rfm.m == other_rfm.m
        assert all(1 <= s <= 5 for s in (rfm.r, rfm.f, rfm.m))
