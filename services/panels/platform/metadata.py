"""The `metadata` objects panels and views carry: merged by PUT, one key at a time."""

from __future__ import annotations

from typing import Any

from panels.platform.errors import BadRequest
from panels.platform.schemas import JsonValueError, check_json_value


def merge_metadata(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`stored` with the keys of `patch` set (a key sent as null is removed), checked against
    the limits of free-form JSON as a whole, since a merge can grow past what either side is."""
    merged = {**stored, **patch}
    for key, value in patch.items():
        if value is None:
            merged.pop(key)
    try:
        check_json_value(merged, "metadata")
    except JsonValueError as exc:
        raise BadRequest("body.metadata", str(exc)) from None
    return merged
