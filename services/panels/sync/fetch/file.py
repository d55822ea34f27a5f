"""`file` sources: inline `content` (≤ 1 MiB, checked when saved) as CSV, JSON or NDJSON.

The content is read by the parsers of a pushed body (`records.formats`), so a file holds
records by exactly the rules a push does (empty CSV fields are null, a repeated column is
refused, NDJSON and JSON nest at most `MAX_BODY_DEPTH` levels). Their errors name the body;
here they name `config.content`, as the source's editors wrote it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from panels.platform.errors import BadRequest
from panels.platform.guards import MAX_BODY_DEPTH, nested_deeper_than
from panels.records.formats import CSV, JSON, NDJSON, parse_records
from panels.sync.fetch.common import Batches, FetchError

MEDIA_TYPES = {"csv": CSV, "json": JSON, "ndjson": NDJSON}


async def fetch_file(config: dict[str, Any]) -> Batches:
    # A byte order mark is not content (as in a pushed body): it would rename the first column.
    content = config["content"].removeprefix("\ufeff").encode()
    form = config["format"]
    # A pushed JSON body's depth is checked by the request guards before it is parsed; the
    # file's content never passed them. (NDJSON lines are checked by their parser.)
    if form == "json" and nested_deeper_than(content, MAX_BODY_DEPTH):
        raise FetchError(f"config.content is nested deeper than {MAX_BODY_DEPTH} levels")
    batches, _ = parse_records(MEDIA_TYPES[form], _whole(content))
    try:
        async for batch in batches:
            yield batch
    except BadRequest as exc:
        raise FetchError(_content_error(exc)) from None


def expected_records(config: dict[str, Any]) -> int | None:
    """About how many records the content holds (lines, for CSV and NDJSON): for progress."""
    content: str = (config.get("content") or "").removeprefix("\ufeff")
    if config.get("format") == "json":
        try:
            document = msgspec.json.decode(content)
        except msgspec.DecodeError:
            return None
        return len(document) if isinstance(document, list) else None
    lines = sum(1 for line in content.splitlines() if line.strip())
    return max(lines - 1, 0) if config.get("format") == "csv" else lines


async def _whole(content: bytes) -> AsyncIterator[bytes]:
    yield content


def _content_error(exc: BadRequest) -> str:
    """A parser's "body[3]: is not valid JSON" as "config.content[3] is not valid JSON", and
    its "line 7: …" as "config.content line 7 …"."""
    field, message = str(exc.detail).split(": ", 1)
    if field.startswith("body"):
        return f"config.content{field.removeprefix('body')} {message}"
    return f"config.content {field} {message}"
