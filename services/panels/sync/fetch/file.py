"""`file` sources: inline `content` (≤ 1 MiB, checked when saved) as CSV, JSON or NDJSON."""

from __future__ import annotations

import csv
import io
from typing import Any

import msgspec

from panels.sync.fetch.common import BATCH_SIZE, Batch, Batches, FetchError, records_of


async def fetch_file(config: dict[str, Any]) -> Batches:
    content: str = config["content"]
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
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise FetchError(
                    f"config.content line {reader.line_num} has {len(row)} fields, "
                    f"the header {len(header)}"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise FetchError(f"config.content line {reader.line_num}: {exc}") from None
