"""Row order and keyset cursors.

Rows are ordered by each sort (the first the most significant) with nulls last in both
directions, then by key (code point order), so the order is total and a page boundary is a
single row. A cursor is the last row's sort values and key, with the sorts they belong to;
the rows after it are those that order after it, written out per sort so that nulls last
holds on both sides.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, false, or_

from panels.column.formula import ValueType

from .conversion import BYTE_ORDER, SQL_TYPES
from .spec import Sort


@dataclass(frozen=True, slots=True)
class SortKey:
    sort: Sort
    value: Any  # the SQL value rows are ordered by
    value_type: ValueType  # never "any": such a column orders by its text


def order_by(keys: Sequence[SortKey], key: Any) -> list[Any]:
    clauses = [(k.value.desc() if k.sort.descending else k.value.asc()).nulls_last() for k in keys]
    return [*clauses, key.collate(BYTE_ORDER).asc()]


def encode_cursor(keys: Sequence[SortKey], values: Sequence[Any], row_key: str) -> str:
    """An opaque token for the row with sort values `values` and key `row_key`."""
    document = {
        "s": _signature(keys),
        "v": [_to_json(value) for value in values],
        "k": row_key,
    }
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class AfterCursor:
    """The rows after a cursor: `condition` exactly, and `ranges`, conditions on the first
    sort's value alone that an index on it can serve, each row after the cursor in exactly
    one of them (`condition & range` for each range selects the rows after the cursor).

    The exact condition is an OR across the sorts and the key, which no index scan can start
    from: without the ranges, a page deep in the order reads every index entry before it.
    One range is not enough with nulls last: the rows after a value `v` of a descending sort
    are those `<= v` *and* the nulls, which no single index condition covers, so the page is
    read from both ranges, each in index order, merged."""

    condition: Any
    ranges: tuple[Any, ...]


def after_cursor(keys: Sequence[SortKey], key: Any, token: str) -> AfterCursor:
    """The rows that order after the cursor `token`; ValueError for a token that is
    malformed or was made for other sorts."""
    values, row_key = _decode(keys, token)
    after: list[Any] = []
    ties: list[Any] = []
    for sort_key, value in zip(keys, values, strict=True):
        column = sort_key.value
        if value is None:
            # Nothing orders after a null within this sort; only ties carry on.
            ties.append(column.is_(None))
            continue
        parameter = bindparam(None, value, type_=SQL_TYPES[sort_key.value_type])
        beyond = column < parameter if sort_key.sort.descending else column > parameter
        after.append(and_(*ties, or_(beyond, column.is_(None))))
        ties.append(column == parameter)
    after.append(and_(*ties, key.collate(BYTE_ORDER) > bindparam(None, row_key)))
    return AfterCursor(or_(false(), *after), _ranges(keys, values))


def _ranges(keys: Sequence[SortKey], values: Sequence[Any]) -> tuple[Any, ...]:
    if not keys:
        return ()
    leading, value = keys[0], values[0]
    column = leading.value
    if value is None:
        return (column.is_(None),)
    parameter = bindparam(None, value, type_=SQL_TYPES[leading.value_type])
    bounded = column <= parameter if leading.sort.descending else column >= parameter
    return (bounded, column.is_(None))


def _signature(keys: Sequence[SortKey]) -> list[list[int]]:
    return [[k.sort.column_id, int(k.sort.descending)] for k in keys]


def _to_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _decode(keys: Sequence[SortKey], token: str) -> tuple[list[Any], str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode()))
        row_key, raw_values = document["k"], document["v"]
        signature = document["s"]
        values = [_from_json(raw, k.value_type) for k, raw in zip(keys, raw_values, strict=True)]
    except (ValueError, binascii.Error, KeyError, TypeError, InvalidOperation) as error:
        raise ValueError("malformed cursor") from error
    if not isinstance(row_key, str) or not _storable(row_key):
        raise ValueError("malformed cursor")
    if signature != _signature(keys):
        raise ValueError("cursor does not belong to this query's sorts")
    return values, row_key


def _from_json(raw: Any, value_type: ValueType) -> Any:
    if raw is None:
        return None
    if value_type == "boolean":
        if not isinstance(raw, bool):
            raise ValueError("malformed cursor")
        return raw
    if not isinstance(raw, str):
        raise ValueError("malformed cursor")
    if value_type == "number":
        number = Decimal(raw)
        if not number.is_finite() or abs(number.adjusted()) > _MAX_EXPONENT:
            raise ValueError("malformed cursor")
        return number
    if value_type == "date":
        return date.fromisoformat(raw)
    if value_type == "datetime":
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is not None:
            raise ValueError("malformed cursor")
        return moment
    if not _storable(raw):
        raise ValueError("malformed cursor")
    return raw


# Past numeric's range (and so no sort value's): such a parameter would fail to bind.
_MAX_EXPONENT = 131_000


def _storable(text: str) -> bool:
    """Whether PostgreSQL text can hold `text` (no NUL, no unpaired surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sort_value(value: ColumnElement[Any], value_type: ValueType) -> ColumnElement[Any]:
    """What a column of `value_type` orders by: text by code point."""
    return value.collate(BYTE_ORDER) if value_type == "text" else value
