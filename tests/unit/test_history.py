"""History files for ``rapport import``: JSON lines and CSV in, records or line errors out."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from models.simulation import generate_history
from stream.history import RecordError, convert_cell, count_lines, read_records, write_jsonl

RECORDS: list[dict[str, object]] = [
    {"event_id": "e1", "ts": 1767225600000, "customer_id": "00123", "type": "page_view"},
    {
        "event_id": "e2",
        "ts": "2026-01-01T10:00:00Z",
        "customer_id": "c2",
        "order_id": "o-1",
        "total": 19.98,
        "items": [{"product_id": "p1", "category": "tea", "quantity": 2, "unit_price": 9.99}],
    },
    {"event_id": "e3", "ts": 3, "customer_id": "c3", "consent": {"email": True}, "erase": False},
]


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], *rows: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("name", ["h.jsonl", "h.ndjson", "h.json", "h.JSONL", "h.jsonl.gz"])
def test_json_lines_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert write_jsonl(RECORDS, path) == len(RECORDS)
    assert list(read_records(path)) == RECORDS
    assert count_lines(path) == len(RECORDS)


def test_write_jsonl_compresses_gz_files(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl.gz"
    write_jsonl(RECORDS, path)
    assert gzip.decompress(path.read_bytes()).count(b"\n") == len(RECORDS)


def test_bad_json_line_is_reported_with_its_line_and_reading_goes_on(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "h.jsonl",
        '{"event_id": "e1"}',
        "",
        '{"event_id": "e2", oops}',
        "[1, 2]",
        '{"event_id": "e3"}',
    )
    results = list(read_records(path))
    assert results[0] == {"event_id": "e1"}
    assert isinstance(results[1], RecordError) and results[1].line == 3
    assert results[2] == RecordError(4, "expected a JSON object, got list")
    assert results[3] == {"event_id": "e3"}
    assert len(results) == 4


def test_json_lines_tolerate_crlf_a_bom_and_a_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"b": 2}')
    assert list(read_records(path)) == [{"a": 1}, {"b": 2}]
    assert count_lines(path) == 3  # the blank line counts: an upper bound for a progress bar


def test_invalid_utf8_spoils_only_its_line(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(b'{"a": "\xff"}\n{"b": 2}\n')
    results = list(read_records(path))
    assert isinstance(results[0], RecordError) and results[0].line == 1
    assert results[1] == {"b": 2}


def test_csv_round_trip_types_the_cells(tmp_path: Path) -> None:
    header = ["event_id", "ts", "customer_id", "order_id", "total", "items", "consent", "erase"]
    path = write_csv(
        tmp_path / "h.csv",
        header,
        ["e1", "1767225600000", "00123", "", "", "", "", ""],
        [
            "e2",
            "2026-01-01T10:00:00Z",
            "c2",
            "o-1",
            "19.98",
            '[{"product_id": "p1", "category": "tea", "quantity": 2, "unit_price": 9.99}]',
            "",
            "",
        ],
        ["e3", "3", "c3", "", "", "", '{"email": true}', "FALSE"],
    )
    expected = [
        {"event_id": "e1", "ts": 1767225600000, "customer_id": "00123"},
        RECORDS[1],
        RECORDS[2],
    ]
    assert list(read_records(path)) == expected
    assert count_lines(path) == 3


def test_csv_identifier_columns_stay_strings(tmp_path: Path) -> None:
    header = ["event_id", "customer_id", "product_id", "order_id", "phone", "birthday", "quantity"]
    path = write_csv(
        tmp_path / "h.csv", header, ["17", "00123", "42", "7", "+4915112345678", "0512", "2"]
    )
    [record] = read_records(path)
    assert record == {
        "event_id": "17",
        "customer_id": "00123",
        "product_id": "42",
        "order_id": "7",
        "phone": "+4915112345678",
        "birthday": "0512",
        "quantity": 2,
    }


def test_csv_catalog_flags_become_booleans(tmp_path: Path) -> None:
    header = ["product_id", "price", "in_stock", "new_arrival", "name"]
    path = write_csv(tmp_path / "c.csv", header, ["0007", "49.99", "TRUE", "false", "1984"])
    [record] = read_records(path)
    assert record == {
        "product_id": "0007",
        "price": 49.99,
        "in_stock": True,
        "new_arrival": False,
        "name": "1984",
    }


def test_bad_csv_rows_are_reported_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(
        'event_id,customer_id,consent\ne1,c1,\ne2,c2,{oops\n\ne3,c3,,extra\ne4,"c4"x,\ne5,c5\n',
        encoding="utf-8",
    )
    results = list(read_records(path))
    assert results[0] == {"event_id": "e1", "customer_id": "c1"}
    errors = [r for r in results if isinstance(r, RecordError)]
    assert [e.line for e in errors] == [3, 5, 6]
    assert "consent" in errors[0].reason and "4 cells" in errors[1].reason
    assert results[-1] == {"event_id": "e5", "customer_id": "c5"}  # short rows are fine


def test_csv_with_duplicate_columns_is_one_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", ["event_id", "ts", "ts"], ["e1", "1", "2"])
    assert list(read_records(path)) == [RecordError(1, "duplicate columns in the CSV header: ts")]


def test_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(b"\xef\xbb\xbfevent_id,ts\r\ne1,5\r\n")
    assert list(read_records(path)) == [{"event_id": "e1", "ts": 5}]


@pytest.mark.parametrize(
    ("column", "cell", "expected"),
    [
        ("ts", "1767225600000", 1767225600000),
        ("price", "-1.5e2", -150.0),
        ("price", ".5", 0.5),
        ("price", "nan", "nan"),
        ("quantity", " 3 ", 3),
        ("customer_id", "00123", "00123"),
        ("coupon_code", "2024", "2024"),
        ("query", "42", "42"),
        ("in_stock", "True", True),
        ("erase", "false", False),
        ("in_stock", "1", 1),
        ("note", "true", "true"),
        ("attributes", '{"age": 31}', {"age": 31}),
        ("items", "[]", []),
        ("email", "   ", None),
        ("email", "", None),
    ],
)
def test_convert_cell(column: str, cell: str, expected: object) -> None:
    assert convert_cell(column, cell) == expected
    assert type(convert_cell(column, cell)) is type(expected)


def test_unknown_suffix_is_an_operator_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "h.xml", "<event/>")
    with pytest.raises(ValueError, match="unknown history format"):
        list(read_records(path))


def test_count_lines_of_an_empty_file_is_zero(tmp_path: Path) -> None:
    for name in ("e.jsonl", "e.csv"):
        (tmp_path / name).write_bytes(b"")
        assert count_lines(tmp_path / name) == 0


def test_simulated_history_survives_a_file_round_trip(tmp_path: Path) -> None:
    records = generate_history(
        seed=1, start_ms=0, days=1, customers=20, products=10, events_per_day=500
    )
    values = [record.value for record in records]
    path = tmp_path / "history.jsonl"
    assert write_jsonl(values, path) == len(values) == count_lines(path)
    assert list(read_records(path)) == values
