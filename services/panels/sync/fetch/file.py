"""`file` sources: inline `content` (≤ 1 MiB, checked when saved) as CSV, JSON or NDJSON."""

from __future__ import annotations

import csv
import io
from typing import Any

import msgspec

from panels.sync.fetch.common import BATCH_SIZE, Batch, Batches, FetchError, records_of


async def fetch_file(config: dict[str, Any]) -> Batches:
    # A byte order mark is not content (as in a pushed body): it would rename the first column.
    content: str = config["content"].removeprefix("\ufeff")
    form = config.get("format", "json")
    if form == "json":
        try:
            document = msgspec.json.decode(content)
        except msgspec.DecodeError:
            raise FetchError("config.content is not valid JSON") from None
        records = records_of(document, 0, "config.content")
        for start in range(0, len(records), BATCH_SIZE):
            yield records[start : start + BATCH_SIZE]
        return
    rows = _csv_rows(content) if form == "csv" else _ndjson_rows(content)
    batch: Batch = []
    for position, record in rows:
        batch.append((position, record))
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def expected_records(config: dict[str, Any]) -> int | None:
    """About how many records the content holds (lines, for CSV and NDJSON): for progress."""
    content: str = (config.get("content") or "").removeprefix("\ufeff")
    if config.get("format", "json") == "json":
        try:
            document = msgspec.json.decode(content)
        except msgspec.DecodeError:
            return None
        return len(document) if isinstance(document, list) else None
    lines = sum(1 for line in content.splitlines() if line.strip())
    return max(lines - 1, 0) if config.get("format") == "csv" else lines


def _ndjson_rows(content: str) -> Any:
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raise FetchError(f"config.content line {number} is not valid JSON") from None
        if not isinstance(record, dict):
            raise FetchError(f"config.content line {number} is not a JSON object")
        yield number, record


def _csv_rows(content: str) -> Any:
    """Rows with the line each starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        repeated = {name for name in header if header.count(name) > 1}
        if repeated:
            raise FetchError(f"config.content line 1 names the column `{min(repeated)}` twice")
        ended = reader.line_num
        for row in reader:
            start, ended = ended + 1, reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise FetchError(
                    f"config.content line {start} has {len(row)} fields, the header {len(header)}"
                )
            # As in a pushed CSV body: an empty field is no value (null), not "".
            yield start, {name: value or None for name, value in zip(header, row, strict=True)}
    except csv.Error as exc:
        raise FetchError(f"config.content line {reader.line_num}: {exc}") from None
