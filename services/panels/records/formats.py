"""Record bodies in JSON, NDJSON and CSV, parsed into batches as the body arrives.

Only a batch of decoded records is held at a time:

- NDJSON and CSV are parsed as the chunks arrive; the bytes of one unfinished line (or CSV
  record) are all that is kept between chunks.
- A JSON array cannot be parsed in pieces by msgspec, and the request guards hold a JSON body
  whole anyway (to check its depth and UTF-8 before decoding; at most the route's 16 MiB). It
  is decoded into `msgspec.Raw` slices of that one buffer (a small object per element, no
  copy), and each batch of slices is decoded into records only when the writer asks for it.

CSV follows RFC 4180 with a header line: every value is a string, and an empty field is `null`
(a spreadsheet's empty cell means "no value"; Python's csv module cannot tell `""` from an
empty field). A row with more or fewer fields than the header is a 400.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from panels.platform.errors import BadRequest
from panels.platform.guards import MAX_BODY_DEPTH, nested_deeper_than
from panels.records.writer import PositionLabel, RecordBatch, array_index, line

BATCH_SIZE = 5000
JSON = "application/json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
MEDIA_TYPES = (JSON, NDJSON, CSV)

Body = AsyncIterator[bytes]
_BOM = b"\xef\xbb\xbf"
_record_decoder = msgspec.json.Decoder()
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def parse_records(media_type: str, body: Body) -> tuple[AsyncIterator[RecordBatch], PositionLabel]:
    """The body's records in batches, and how an error names a record's position."""
    parsers: dict[str, tuple[Callable[[Body], AsyncIterator[RecordBatch]], PositionLabel]] = {
        JSON: (_json_array, array_index),
        NDJSON: (_ndjson, line),
        CSV: (_csv, line),
    }
    parser, position = parsers[media_type]
    return parser(body), position


async def _json_array(body: Body) -> AsyncIterator[RecordBatch]:
    data = b"".join([chunk async for chunk in body])
    try:
        elements: list[Any] = _array_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise _array_error(data) from None
    for start in range(0, len(elements), BATCH_SIZE):
        batch = []
        for index in range(start, min(start + BATCH_SIZE, len(elements))):
            try:
                record = _record_decoder.decode(elements[index])
            except msgspec.DecodeError:
                # Well-formed, but not decodable: a number beyond a double's range, say.
                raise BadRequest(array_index(index), "is not valid JSON") from None
            batch.append((index, record))
            elements[index] = None  # its slice is decoded: drop the reference as we go
        yield batch


def _array_error(data: bytes) -> BadRequest:
    """The error of a body that is not a valid JSON array, naming the first bad element."""
    text = data.strip()
    if not text.startswith(b"["):
        return BadRequest("body", "must be a JSON array of objects")
    index = 0
    for index, element in enumerate(_top_level_elements(text)):
        try:
            _record_decoder.decode(element)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return BadRequest(array_index(index), "is not valid JSON")
    return BadRequest("body", f"is not a valid JSON array (after element {index})")


def _top_level_elements(array: bytes) -> list[bytes]:
    """The raw elements of a JSON array whose syntax may be broken (only on the error path)."""
    elements: list[bytes] = []
    depth = 0
    start = 1
    in_string = escaped = False
    for offset, byte in enumerate(array):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
        elif byte in b"]}":
            depth -= 1
            if depth == 0:
                break
        elif byte == 0x2C and depth == 1:
            elements.append(array[start:offset])
            start = offset + 1
    elements.append(array[start:offset])
    return elements


async def _lines(body: Body) -> AsyncIterator[tuple[int, bytes]]:
    """(1-based number, line without its line break), as the chunks arrive."""
    number = 0
    pending = b""
    first = True
    async for chunk in body:
        if first and chunk:
            chunk = chunk.removeprefix(_BOM)
            first = False
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for text in lines:
            number += 1
            yield number, text.removesuffix(b"\r")
    if pending:
        yield number + 1, pending.removesuffix(b"\r")


async def _ndjson(body: Body) -> AsyncIterator[RecordBatch]:
    batch: RecordBatch = []
    async for number, text in _lines(body):
        if not text or text.isspace():
            continue  # blank lines (a trailing newline, say) hold no record
        if (text.count(b"[") + text.count(b"{") > MAX_BODY_DEPTH) and nested_deeper_than(
            text, MAX_BODY_DEPTH
        ):
            raise BadRequest(line(number), f"is nested deeper than {MAX_BODY_DEPTH} levels")
        try:
            batch.append((number, _record_decoder.decode(text)))
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise BadRequest(line(number), "is not valid JSON") from None
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


async def _csv(body: Body) -> AsyncIterator[RecordBatch]:
    header: list[str] | None = None
    batch: RecordBatch = []
    async for number, row in _csv_rows(body):
        if header is None:
            header = _header(row)
            continue
        if len(row) != len(header):
            raise BadRequest(
                line(number), f"has {len(row)} fields where the header has {len(header)}"
            )
        batch.append(
            (number, {name: value or None for name, value in zip(header, row, strict=True)})
        )
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def _header(row: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in row:
        if name in seen:
            raise BadRequest(line(1), f"names the column `{name}` twice")
        seen.add(name)
    return row


async def _csv_rows(body: Body) -> AsyncIterator[tuple[int, list[str]]]:
    """(number of the row's first line, fields) of each non-blank row.

    A row may span lines (a quoted field holding a line break). Its lines are gathered until
    the double quotes seen are even, which in RFC 4180 CSV means no quoted field is open
    (a quote inside a quoted field is doubled), and the csv module then reads just those lines.
    """
    gathered: list[str] = []
    first_line = 0
    quotes = 0
    async for number, raw in _lines(body):
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise BadRequest(line(number), f"is not valid UTF-8 (byte {exc.start})") from None
        if not gathered:
            first_line = number
        gathered.append(text + "\n")
        quotes += text.count('"')
        if quotes % 2 == 0:
            for row in _read_csv(gathered, first_line):
                yield row
            gathered, quotes = [], 0
    if gathered:
        for row in _read_csv(gathered, first_line):
            yield row


def _read_csv(lines: list[str], first_line: int) -> list[tuple[int, list[str]]]:
    reader = csv.reader(lines, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = first_line
    try:
        for row in reader:
            if row:
                rows.append((start, row))
            start = first_line + reader.line_num
    except csv.Error as exc:
        raise BadRequest(line(start), f"is not valid CSV ({exc})") from None
    return rows
