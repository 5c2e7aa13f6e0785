"""History files for ``rapport import FILE --topic SUFFIX``: JSON lines or CSV with a header.

The importer sends every record through the same input topic as live traffic, so a backfill
builds the same state as the events would have live. Reading therefore never judges a record
against the contract (the engine does that and dead-letters what it rejects); it only turns
lines into JSON objects. A line that cannot become an object yields a ``RecordError`` in its
place instead of raising, so one bad line in a million does not stop an import.

Formats, by file suffix (a trailing ``.gz`` means gzip-compressed):

- ``.jsonl``, ``.ndjson``, ``.json``: one JSON object per line; blank lines are skipped.
- ``.csv``: a header row naming the fields, then one record per row. Cells are typed the way a
  spreadsheet export needs: see ``convert_cell``.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import orjson

JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
CSV_SUFFIXES = frozenset({".csv"})

# Identifiers and free text stay strings even when they look like numbers: a customer_id
# "00123" is not the number 123, a product called "1984" is not a year. The contract's
# text-valued fields are listed alongside the identifiers for the same reason.
IDENTIFIER_COLUMNS = frozenset(
    {
        "event_id",
        "customer_id",
        "product_id",
        "order_id",
        "anonymous_id",
        "session_id",
        "offer_id",
        "coupon_code",
        "phone",
        "birthday",
    }
)
TEXT_COLUMNS = frozenset(
    {
        "type",
        "status",
        "currency",
        "category",
        "query",
        "name",
        "email",
        "push_token",
        "timezone",
        "action",
        "channel",
    }
)
STRING_COLUMNS = IDENTIFIER_COLUMNS | TEXT_COLUMNS
BOOL_COLUMNS = frozenset({"in_stock", "new_arrival", "erase"})

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_CHUNK_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class RecordError:
    """A line that is not a record: ``line`` is 1-based in the file, ``reason`` is for humans."""

    line: int
    reason: str


class _CsvReader(Protocol):
    """What this module uses of ``csv.reader`` objects."""

    line_num: int

    def __next__(self) -> list[str]: ...


class CellError(ValueError):
    """A CSV cell that cannot be converted (raised inside this module only)."""


def read_records(path: Path) -> Iterator[dict[str, object] | RecordError]:
    """Every record of a history file in file order, bad lines as ``RecordError``.

    Raises ``ValueError`` for a suffix it does not know and ``OSError`` if the file cannot be
    opened: those are mistakes of the operator, not of the data.
    """
    kind = _kind(path)
    if kind == "jsonl":
        return _read_json_lines(path)
    return _read_csv(path)


def count_lines(path: Path) -> int:
    """How many records the file holds, for a progress bar total, without parsing it.

    Counts newline bytes (plus an unterminated last line), minus the header row of a CSV. Blank
    lines and quoted line breaks in CSV cells are counted too, so it is an upper bound.
    """
    kind = _kind(path)
    lines = 0
    last = b"\n"
    with _open_binary(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    if kind == "csv":
        lines -= 1
    return max(0, lines)


def write_jsonl(records: Iterable[dict[str, object]], path: Path) -> int:
    """Write records as JSON lines (gzip when the name ends in ``.gz``); returns how many.

    The output reads back with ``read_records`` unchanged, so simulated or exported histories
    can be replayed with ``rapport import``.
    """
    count = 0
    with _open_binary(path, "wb") as stream:
        for record in records:
            stream.write(orjson.dumps(record))
            stream.write(b"\n")
            count += 1
    return count


def convert_cell(column: str, cell: str) -> object | None:
    """The value of one CSV cell, ``None`` when it is empty (the field is absent).

    - Cells starting with ``{`` or ``[`` are JSON (``items``, ``consent``, ``attributes``).
    - Identifier and text columns (``STRING_COLUMNS``) stay strings, exactly as written.
    - ``true``/``false`` (any case) are booleans in ``in_stock``, ``new_arrival``, ``erase``.
    - Any other cell that is wholly an integer or a decimal number becomes a number, so
      ``ts`` in epoch milliseconds, ``price`` and ``quantity`` arrive as numbers.

    Raises ``CellError`` for a JSON-looking cell that is not valid JSON.
    """
    stripped = cell.strip()
    if not stripped:
        return None
    if stripped[0] in "{[":
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError as error:
            raise CellError(f"column {column!r} is not valid JSON: {error}") from None
    if column in STRING_COLUMNS:
        return cell
    if column in BOOL_COLUMNS and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    return cell


def _kind(path: Path) -> str:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix in JSON_LINES_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    known = ", ".join(sorted(JSON_LINES_SUFFIXES | CSV_SUFFIXES))
    raise ValueError(f"{path.name}: unknown history format {suffix!r}; use one of {known}")


def _open_binary(path: Path, mode: str) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, mode)  # type: ignore[return-value]
    return path.open(mode)  # type: ignore[return-value]


def _read_json_lines(path: Path) -> Iterator[dict[str, object] | RecordError]:
    with _open_binary(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            text = line.removeprefix(_BOM) if number == 1 else line  # some editors write a BOM
            if text.strip():
                yield _parse_json_line(number, text)


def _parse_json_line(number: int, line: bytes) -> dict[str, object] | RecordError:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return RecordError(number, f"not valid JSON: {error}")
    if not isinstance(value, dict):
        return RecordError(number, f"expected a JSON object, got {type(value).__name__}")
    return value


def _read_csv(path: Path) -> Iterator[dict[str, object] | RecordError]:
    """Rows as records; the line of a row is where it ends (quoted cells may span lines).

    Undecodable bytes are carried as surrogates and reported per row, so one bad row does not
    end the file. A header with a duplicated column ends the file with one error: every row
    would be ambiguous.
    """
    with _open_binary(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text, strict=True)
        header = _read_header(reader)
        if isinstance(header, RecordError):
            yield header
            return
        yield from _read_rows(reader, header)


def _read_header(reader: _CsvReader) -> list[str] | RecordError:
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as error:
        return RecordError(1, f"unreadable CSV header: {error}")
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        return RecordError(1, f"duplicate columns in the CSV header: {', '.join(duplicates)}")
    return header


def _read_rows(reader: _CsvReader, header: list[str]) -> Iterator[dict[str, object] | RecordError]:
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield RecordError(reader.line_num, f"malformed CSV: {error}")
            continue
        if any(cell.strip() for cell in row):
            yield _parse_row(reader.line_num, header, row)


def _parse_row(line: int, header: list[str], row: list[str]) -> dict[str, object] | RecordError:
    """One CSV row. Fewer cells than columns is fine (exports drop trailing empty cells), more
    is not; cells under a blank column name are ignored."""
    if len(row) > len(header):
        return RecordError(line, f"row has {len(row)} cells but the header has {len(header)}")
    record: dict[str, object] = {}
    for column, cell in zip(header, row, strict=False):
        if not column:
            continue
        if not _is_utf8(cell):
            return RecordError(line, f"column {column!r} is not valid UTF-8")
        try:
            value = convert_cell(column, cell)
        except CellError as error:
            return RecordError(line, str(error))
        if value is not None:
            record[column] = value
    return record


def _is_utf8(cell: str) -> bool:
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
