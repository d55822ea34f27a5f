"""One page of a list with its total, whatever the offset."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.filters import LimitOffset, OrderBy, StatementFilter
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement


async def get_page(
    service: SQLAlchemyAsyncRepositoryService[Any, Any],
    *,
    order: list[OrderBy],
    limit: int,
    offset: int,
    conditions: list[StatementFilter | ColumnElement[bool]],
) -> tuple[list[Any], int]:
    """The rows of the page and the count before paging, in one query.

    The total rides on the page's rows (a window count), so a page past the end has nowhere to
    carry it: only then does a second query count.
    """
    rows, total = await service.get_many_and_count(
        *order, LimitOffset(limit=limit, offset=offset), *conditions
    )
    if not rows and offset:
        total = await service.count(*conditions)
    return list(rows), total
