"""What every fetcher shares: the batch shape, the error a client may read, the source's
required fields, and where its records are inside a JSON document."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from panels.platform.crypto import SecretBox, is_sealed

Batch = list[tuple[int, dict[str, Any]]]
"""Records with their position: a 1-based line (CSV, NDJSON) or a 0-based index (JSON)."""
Batches = AsyncGenerator[Batch, None]
BATCH_SIZE = 5000

# What a sync needs that a source may have been saved without (API.md, "Data sources").
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "api": ("url",),
    "database": ("url", "query"),
    "file": ("content",),
}


class FetchError(Exception):
    """A sync could not read its source; the message is fit for the source's editors (no
    secrets, no driver internals)."""


def missing_field(source_type: str, config: dict[str, Any]) -> str | None:
    """The first field a sync of this source needs and its config lacks, as `config.<name>`."""
    for name in REQUIRED_FIELDS.get(source_type, ()):
        if config.get(name) in (None, ""):
            return f"config.{name}"
    return None


def unsealed(config: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The config with every sealed secret opened: for the fetcher, never for a response."""
    opened: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            opened[key] = unsealed(value, box)
        elif is_sealed(value):
            opened[key] = box.open(value)
        else:
            opened[key] = value
    return opened


def at_path(document: Any, path: str | None, what: str) -> Any:
    """The value at a dotted path (`data.items`, array indexes included); the whole document
    for an empty path."""
    value = document
    for part in (path or "").split(".") if path else ():
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise FetchError(f"{what} {path!r} is not in the response")
    return value


def records_of(items: Any, start: int, what: str) -> Batch:
    """`items` as positioned records: a JSON array of objects, else a FetchError."""
    if not isinstance(items, list):
        raise FetchError(f"{what} is not an array of records")
    batch: Batch = []
    for offset, item in enumerate(items):
        if not isinstance(item, dict):
            raise FetchError(f"record {start + offset} is not a JSON object")
        batch.append((start + offset, item))
    return batch
