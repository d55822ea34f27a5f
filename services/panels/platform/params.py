"""Query parameters whose parsing the framework would do too loosely."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from litestar.params import QueryParameter

from panels.platform.errors import BadRequest

_ISO_DATE_START = re.compile(r"^\d{4}-\d{2}-\d{2}")

Since = Annotated[
    str | None,
    QueryParameter(
        max_length=64,
        description="ISO-8601 date or date-time (UTC unless it has an offset).",
    ),
]


def parse_since(value: str | None, where: str = "query.since") -> datetime | None:
    """An ISO-8601 date or date-time; numbers and anything else are a 400, not a guess."""
    if value is None:
        return None
    try:
        if not _ISO_DATE_START.match(value):
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(where, "must be an ISO-8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
