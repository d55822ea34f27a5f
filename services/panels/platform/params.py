"""Query parameters whose parsing the framework would do too loosely.

Ids and dates are read from ASCII only: `str.isdigit` and `int` also take other scripts' digits
(`"²".isdigit()` is true, `int("²")` fails; `int("٣")` is 3), and `fromisoformat` takes forms
the contract does not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from litestar.params import QueryParameter

from panels.platform.errors import BadRequest
from panels.platform.schemas import MAX_ID

_ISO_DATE_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_ASCII_ID = re.compile(r"[0-9]{1,20}", re.ASCII)

Since = Annotated[
    str | None,
    QueryParameter(
        max_length=64,
        description="ISO-8601 date or date-time (UTC unless it has an offset).",
    ),
]


def parse_since(value: str | None, where: str = "query.since") -> datetime | None:
    """An ISO-8601 date or date-time, in UTC; numbers and anything else are a 400, not a guess.

    It is converted here, where a moment that has no UTC form (`0001-01-01T00:00+14:00`, past
    year 9999 once in UTC) is a 400 too, rather than an overflow wherever it is first used.
    """
    if value is None:
        return None
    try:
        if not _ISO_DATE_START.match(value) or not value.isascii():
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(where, "must be an ISO-8601 date or date-time") from None
    except OverflowError:
        raise BadRequest(where, "must be a moment between the years 1 and 9999 in UTC") from None
    return moment


def parse_id(text: str) -> int | None:
    """The positive 64-bit id `text` spells in ASCII digits, else None."""
    if not _ASCII_ID.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def split_values(values: list[str] | None) -> list[str]:
    """`?x=1&x=2` and `?x=1,2` alike."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def parse_ids(values: list[str] | None, where: str = "query.ids") -> list[int]:
    ids = []
    for text in split_values(values):
        value = parse_id(text)
        if value is None:
            raise BadRequest(where, f"{text!r} is not a positive 64-bit id")
        ids.append(value)
    return ids
