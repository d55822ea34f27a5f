"""What a statement over a panel's rows is made of, what decides its count, and the
statements built from it.

Shared by the rows service (pages, counts, the export) and the totals job (`rows.totals`),
which must name a count exactly as a page does to find it again.

Statements are built once per process and shape (`built`): building a view page's statement
and compiling it cost about 20 ms of Python (measured on the 1,000,000-row benchmark's panel,
9 columns), where the database's share of a page miss is 3 to 20 ms. A statement object used
again is compiled again by no one (SQLAlchemy caches its compiled form under its memoised
cache key), so a page miss after a push or a sync, which changes no statement, costs the
database's time only, and so does a miss of another page of the same query. The clock and
the page are the inputs that change between runs of a statement: run every statement with
`run_parameters` of the page.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from panels.column.entities import PanelColumn
from panels.datasource.entities import DataSource
from panels.panel.entities import Panel
from panels.platform.tenancy import statement_in_tenant
from panels.rows.compiler import (
    Column,
    CompiledRows,
    Condition,
    ExportRows,
    RowQuery,
    RowSource,
    Sort,
    clock_values,
    cohort_conditions,
    compile_export,
    compile_rows,
    page_values,
    panel_rows,
)
from panels.rows.query import compiler_columns

BUILT_STATEMENTS = 256
"""Statements kept per process (a view page's weighs about 100 KB)."""
_built: OrderedDict[str, Any] = OrderedDict()
T = TypeVar("T")


def built(key: tuple[object, ...], build: Callable[[], T]) -> T:
    """`build()`, or what it returned before for the same `key`, which names everything the
    statement is made of (the least recently used of BUILT_STATEMENTS are dropped)."""
    text = repr(key)
    digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    found: T | None = _built.get(digest)
    if found is None:
        found = build()
        _built[digest] = found
        if len(_built) > BUILT_STATEMENTS:
            _built.popitem(last=False)
    else:
        _built.move_to_end(digest)
    return found


def run_parameters(limit: int | None = None, offset: int = 0) -> dict[str, Any]:
    """The parameters to run a rows statement with: the clock's, now, and the page's."""
    return {**clock_values(datetime.now(UTC)), **page_values(limit, offset)}


@dataclass(frozen=True, slots=True)
class RowsShape:
    """Everything a statement over a panel's rows needs."""

    panel: Panel
    columns: list[PanelColumn]
    live_sources: list[int]
    specs: list[Column]  # the columns as the compiler reads them (their formulas parsed)

    def shown(self, column_ids: list[int]) -> list[PanelColumn]:
        """The columns of `column_ids`, in that order."""
        by_id = {column.id: column for column in self.columns}
        return [by_id[column_id] for column_id in column_ids]

    def compile(
        self,
        shown: list[int],
        sorts: list[Sort],
        filters: list[Condition],
        *,
        limit: int | None,
        offset: int = 0,
        cursor: str | None = None,
    ) -> CompiledRows:
        """The page and count statements (`built`), the same for every page (`limit` says
        only whether there is one); ValueError for a cursor these sorts cannot read. Run them
        with `run_parameters(limit, offset)`."""

        def build() -> CompiledRows:
            return compile_rows(*self._query(shown, sorts, filters, limit, offset, cursor))

        key = self.statement_key(filters, "rows", shown, sorts, limit is None, cursor)
        return built(key, build)

    def export(self, shown: list[int], sorts: list[Sort], filters: list[Condition]) -> ExportRows:
        """The export's statement of every matching row (`built`, `compile_export`). Run it
        with `run_parameters()`."""

        def build() -> ExportRows:
            return compile_export(*self._query(shown, sorts, filters, None, 0, None))

        return built(self.statement_key(filters, "export", shown, sorts), build)

    def _query(
        self,
        shown: list[int],
        sorts: list[Sort],
        filters: list[Condition],
        limit: int | None,
        offset: int,
        cursor: str | None,
    ) -> tuple[RowSource, RowQuery]:
        cohort, logic = cohort_conditions(self.specs, self.panel.cohort_rule or {})
        query = RowQuery(
            columns=self.specs,
            shown=shown,
            now=datetime.now(UTC),
            cohort=cohort,
            cohort_logic=logic,
            filters=filters,
            sorts=sorts,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )
        source = panel_rows(self.panel.tenant_id, self.panel.id, self.live_sources)
        return source, query

    def statement_key(self, filters: list[Condition], *parts: object) -> tuple[object, ...]:
        """A `built` key of a statement over these rows with `filters`, and `parts` naming the
        rest of what the statement is made of (everything beyond the count's inputs)."""
        return (self.panel.tenant_id, self.panel.id, self.count_key(filters), *parts)

    def count_key(self, filters: list[Condition]) -> str:
        """What decides a count: the live sources, the cohort rule, the filters and the
        columns (their definitions, which the cohort and filters read). Paging and sorts do
        not, so every page of a view, in any order, shares one count; so do a view and the
        same ad-hoc filters on its panel. (The tenant and the panel are named around it.)"""
        decided_by = (
            self.live_sources,
            json.dumps(self.panel.cohort_rule, sort_keys=True, default=str),
            filters,
            sorted(self.specs, key=lambda column: column.id),
        )
        text = repr(decided_by)
        return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


async def load_shape(session: AsyncSession, panel: Panel) -> RowsShape:
    """The shape of `panel`'s rows as they are now (its tenant's columns and live sources)."""
    columns = (
        statement_in_tenant(PanelColumn, panel.tenant_id)
        .where(PanelColumn.panel_id == panel.id)
        .order_by(PanelColumn.id)
    )
    sources = (
        select(DataSource.id)
        .where(DataSource.tenant_id == panel.tenant_id, DataSource.panel_id == panel.id)
        .order_by(DataSource.id)
    )
    panel_columns = list((await session.scalars(columns)).all())
    live_sources = list((await session.scalars(sources)).all())
    return RowsShape(panel, panel_columns, live_sources, compiler_columns(panel_columns))
