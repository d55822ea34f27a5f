"""The wire vocabulary shared by every feature: camelCase Structs, timestamps, JSON limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar.params import PathParameter, QueryParameter

MAX_ID = 2**63 - 1
MAX_JSON_DEPTH = 16
MAX_JSON_NODES = 10_000

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
"""A positive 64-bit id in a body."""

PathId = Annotated[int, PathParameter(ge=1, le=MAX_ID, description="A positive 64-bit id.")]
"""A positive 64-bit id in a path; anything else is a 400."""

Offset = Annotated[int, QueryParameter(ge=0, le=2**31 - 1, description="Rows to skip.")]

Timestamp = Annotated[
    str,
    msgspec.Meta(
        description="ISO-8601 UTC timestamp with milliseconds",
        extra_json_schema={"format": "date-time", "examples": ["2026-11-21T07:50:37.451Z"]},
    ),
]

# PostgreSQL text cannot hold NUL; refusing it here keeps driver errors out of responses.
Text = Annotated[str, msgspec.Meta(pattern=r"^[^\x00]*$")]


class CamelStruct(msgspec.Struct, rename="camel", kw_only=True):
    """Base of every request and response body: camelCase keys, unknown keys ignored."""


class JsonValueError(ValueError):
    """A free-form JSON value breaks one of the limits; the message names where."""


def iso_timestamp(value: datetime) -> str:
    """`2026-11-21T07:50:37.451Z`: UTC, milliseconds, `Z`."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    # isoformat is several times cheaper than strftime, and lists format two per row.
    return utc.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def check_json_value(value: Any, where: str) -> None:
    """Refuse free-form JSON that PostgreSQL cannot store or that is built to exhaust us.

    Limits: nesting depth, total node count, no NUL and no unpaired surrogates in any string
    (jsonb rejects both, and the driver error must never reach a client).
    """
    budget = [MAX_JSON_NODES]
    _check(value, where, 0, budget)


def _check(value: Any, where: str, depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise JsonValueError(f"{where}: more than {MAX_JSON_NODES} values")
    if depth > MAX_JSON_DEPTH:
        raise JsonValueError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where)
            _check(item, f"{where}.{key}", depth + 1, budget)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]", depth + 1, budget)
    elif isinstance(value, float) and value != value:  # NaN cannot be stored in jsonb
        raise JsonValueError(f"{where}: NaN is not a JSON number")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise JsonValueError(f"{where}: text must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonValueError(f"{where}: text is not valid Unicode") from None
