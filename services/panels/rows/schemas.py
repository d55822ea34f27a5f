"""The wire shape of rows pages: `{rows: [{id, values}], total, columns, nextCursor}`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from panels.platform.schemas import CamelStruct

ROW_EXAMPLE = {"id": "p-1001", "values": {"12": "Ann Lee", "13": 71, "14": "2026-03-02"}}


class RowColumn(CamelStruct):
    id: int
    name: str
    type: str


class RowRead(CamelStruct):
    id: Annotated[str, Meta(description="The row's key (its sources' `keyField` value).")]
    values: Annotated[
        dict[str, Any],
        Meta(
            description=(
                "One key per column shown (its id as a string), null included. Numbers are JSON "
                "numbers (exact, never rounded), dates `YYYY-MM-DD`, datetimes ISO-8601 UTC "
                "with milliseconds (microseconds when the value has them) and `Z`, "
                "multi-select and custom values as stored JSON."
            )
        ),
    ]


class RowsPage(CamelStruct):
    rows: Annotated[list[RowRead], Meta(examples=[[ROW_EXAMPLE]])]
    total: Annotated[
        int,
        Meta(
            description=(
                "Rows that match, before paging: exact for the rows as they are now (a saved "
                "view's, and the panel's without `filter`, counted ahead after each change)."
            )
        ),
    ]
    columns: Annotated[
        list[RowColumn],
        Meta(examples=[[{"id": 12, "name": "Name", "type": "text"}]]),
    ]
    next_cursor: Annotated[
        str | None,
        Meta(
            description=(
                "Opaque; send it back as `cursor` for the rows after this page (keyset paging, "
                "no deep OFFSET). Null on the last page."
            )
        ),
    ]


# Decimal as a JSON number (exact), not a string; dict keys in the columns' order.
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def encode_page(page: RowsPage) -> bytes:
    return _ENCODER.encode(page)


def wire_datetime(moment: datetime) -> str:
    """A UTC datetime (naive, as the rows statements return them) on the wire: milliseconds,
    or microseconds when it has them, and `Z`."""
    text = moment.isoformat(timespec="microseconds")
    return f"{text[:-3] if text.endswith('000') else text}Z"
