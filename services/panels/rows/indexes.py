"""Expression indexes on `panel_row` for the sorts and filters a panel's views keep.

A change of a view's sorts or filters (or the view's creation or deletion), and of what the
indexed values' expressions are made of (a base column's type, field or source; the panel's
sources) queues a job (`queue_index_update`, in the same transaction) that brings the panel's
indexes in line with all its views: it creates the missing ones with `CREATE INDEX
CONCURRENTLY` (writes go on meanwhile) and drops those no view uses any more, and those of
panels that no longer exist.
A query that runs before its index exists is the same query, only slower.

Every index is partial on its panel (`WHERE panel_id = <id>`) and built on exactly the
expressions the compiler emits for base columns' values (`record_value`, then `from_json`);
the planner uses an expression index only for an identical expression, so the conversions
are immutable SQL. Per view:

- its sorts: `(value₁ DESC NULLS LAST, …, key)`, with the sorts' directions and the key last.
  The planner reads a page in order from the index and stops after it, checking the view's
  filters on the rows it passes; a page by cursor starts at the cursor's value
  (`compiler.ordering.AfterCursor`). When a view's later sorts are on calculated columns, the
  index of its leading base-column sorts still serves (an incremental sort).
- its sorts after the `eq` filters every row must pass (`ViewShape.required_equalities`):
  `(eq value, …, value₁ DESC NULLS LAST, …, key)`, the view's rows in its order. A page at an
  offset reads only them, and its `total` counts them off the leading column. With a b-tree
  for the filter beside the sort index instead, the planner sorted every matching row for a
  page at offset 950 (267 ms instead of 63 at 1,000,000 rows): it has no statistics for a
  partial index's expressions, guesses that an equality holds for 0.5 % of the rows, and so
  believed the page lay past the end of the sort index's matches.
- each other filter on a base column by `eq`, a comparison, `between`, `in` or `isNull`: a
  b-tree `(value)` (none when an index above already leads with that value). The filter is
  then an index condition: a `total` is a bitmap count of the index's matches instead of a
  scan of the panel, and a page whose sort has no index sorts only the matching rows.
- each `contains`, `startsWith` or `endsWith` filter on a text column: a trigram index
  `USING gin (value gin_trgm_ops)`, for the compiler's `ILIKE`, only where the database has
  `pg_trgm` (migration 20261201_0012 installs it where the server offers it; the embedded
  PostgreSQL does not). Without it those filters are checked on every row, still correct.
- `ne`, `notIn`, `notContains` and `isNotNull` usually hold for most rows: no index.

Why filters can use indexes at all: under row-level security PostgreSQL evaluates a query's
own conditions after the policy's unless every function in them is LEAKPROOF, which the JSON
conversions are not (and only a superuser can declare), so no condition of a rows query could
be an index condition (measured: a full scan of the panel, or of an index with the condition
checked on every entry). Rows queries therefore read `panel_row_visible` (migration
20261201_0012), a plain view owned by the tables' owner that keeps the rows of the
transaction's tenant, by the policy's own expression; the owner's reads of `panel_row`
bypass its policies (no longer forced there), so no policy condition comes first.

What that rests on: the view is not a security barrier, so the planner may evaluate the
query's conditions on rows of other tenants before the view's tenant condition (that is what
an index condition is). A condition could tell something about such a row only by failing, or
by a message naming a value, or a side effect, and nothing the compiler emits can: a record's
value is converted inside CASE arms whose conditions have already proven the text
well-formed (`compiler.conversion`; `panels_utc_timestamp` checks before it casts), the
comparisons and `ILIKE` take bound parameters (wildcards escaped), and the request role runs
no other SQL. Formulas, where arithmetic could overflow (a data error, a 400 naming no
value), are computed in fenced lateral subqueries (`compiler.statement`) on the rows the scan
has already passed, the tenant's condition included; so no index can serve a filter on a
calculated column, nor on a multi-select or custom one. A compiler change that emits a cast
that can fail on a record's value breaks this argument, not only a query.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import structlog
from sqlalchemy import ColumnElement, text
from sqlalchemy import column as sql_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from panels.column.formula import value_type_of
from panels.platform.jobs import BACKGROUND_PRIORITY, JobKind, enqueue, postgres_dsn
from panels.platform.runtime import Runtime

from .compiler.conversion import BYTE_ORDER, from_json
from .compiler.pivot import PANEL_ROW, source_record_of
from .compiler.spec import BaseColumn
from .compiler.statement import record_value

INDEX_ENTRYPOINT = "panels.rows-indexes"
INDEX_TIMEOUT_SECONDS = 3600
INDEX_PREFIX = "ix_panel_row_"
INDEXABLE_TYPES = ("text", "select", "user", "file", "number", "boolean", "date", "datetime")
# Index jobs of all panels take turns: one concurrent build at a time on the shared table. A
# job polls for its turn rather than wait in a statement: `CREATE INDEX CONCURRENTLY` waits
# for every statement's snapshot older than its own, so a job waiting on the lock in a
# statement would wait for the build that waits for it.
_TRY_TURN = "SELECT pg_try_advisory_lock(hashtext('panel_row indexes'))"
TURN_POLL_SECONDS = 0.5
_END_TURN = "SELECT pg_advisory_unlock(hashtext('panel_row indexes'))"
_PLACEHOLDER = "panels_raw_value"
_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
_ANY_SHAPE = text(
    "SELECT 1 FROM view_sort WHERE tenant_id = :tenant AND panel_id = :panel"
    " UNION ALL SELECT 1 FROM view_filter WHERE tenant_id = :tenant AND panel_id = :panel LIMIT 1"
)
# The filters an index serves (module docstring).
BTREE_OPERATORS = frozenset({"eq", "gt", "gte", "lt", "lte", "between", "in", "isNull"})
TRIGRAM_OPERATORS = frozenset({"contains", "startsWith", "endsWith"})
log = structlog.get_logger("panels.rows")


class IndexJob(msgspec.Struct, rename="camel"):
    tenant_id: str
    panel_id: int


@dataclass(frozen=True, slots=True)
class ViewShape:
    """What of a view its indexes depend on: (column id, descending) per sort, most
    significant first, and (column id, operator, logical operator) per filter, in order."""

    sorts: Sequence[tuple[int, bool]]
    filters: Sequence[tuple[int, str, str]] = ()

    def required_equalities(self) -> list[int]:
        """The columns of `eq` filters every row of the view must pass (filters combine left
        to right, `predicates.combine`: a filter is required when it and every filter after
        it are joined by `and`; the first one's join is ignored)."""
        required = []
        for index, (column_id, operator, _join) in enumerate(self.filters):
            later = self.filters[max(index, 1) :]
            if operator == "eq" and all(join == "and" for _c, _o, join in later):
                required.append(column_id)
        return required


async def queue_index_update(
    session: AsyncSession, tenant_id: str, panel_id: int, *, only_if_indexed: bool = False
) -> None:
    """Queue the update of the panel's indexes in the session's (flushed) transaction;
    `only_if_indexed`: only when a view of the panel has sorts or filters (a change of a
    source or a column matters to no index otherwise).

    No dedupe key: a job already running may have read the views before this change."""
    if only_if_indexed:
        shaped = await session.execute(_ANY_SHAPE, {"tenant": tenant_id, "panel": panel_id})
        if shaped.first() is None:
            return
    payload = msgspec.json.encode(IndexJob(tenant_id, panel_id))
    await enqueue(session, INDEX_ENTRYPOINT, payload, priority=BACKGROUND_PRIORITY)


def index_name(panel_id: int, definition: str) -> str:
    digest = hashlib.sha256(definition.encode()).hexdigest()[:16]
    return f"{INDEX_PREFIX}{panel_id}_{digest}"


def wanted_indexes(
    panel_id: int,
    source_ids: Sequence[int],
    columns: Iterable[BaseColumn],
    views: Iterable[ViewShape],
    *,
    trigram: bool = False,
) -> dict[str, str]:
    """Index name to its `CREATE INDEX CONCURRENTLY` statement, for every index the views
    need (see the module docstring); `trigram`: whether the database has `pg_trgm`."""
    by_id = {column.id: column for column in columns if column.type in INDEXABLE_TYPES}
    live = sorted(source_ids)
    definitions: set[str] = set()
    sort_leads: set[str] = set()
    compared: set[int] = set()
    matched: set[int] = set()
    for view in views:
        leading = []
        sorted_ids = {column_id for column_id, _descending in view.sorts}
        for column_id, descending in view.sorts:
            if column_id not in by_id:
                break
            leading.append((by_id[column_id], descending))
        if leading:
            parts = [
                f"{_value_sql(column, live)} {'DESC' if descending else 'ASC'} NULLS LAST"
                for column, descending in leading
            ]
            definitions.add(f"({', '.join(parts)}, key)")
            sort_leads.add(_value_sql(leading[0][0], live))
            equal = sorted({c for c in view.required_equalities() if c in by_id} - sorted_ids)
            if equal:
                values = [_value_sql(by_id[column_id], live) for column_id in equal]
                definitions.add(f"({', '.join([*values, *parts])}, key)")
                sort_leads.add(values[0])
        for column_id, operator, _join in view.filters:
            column = by_id.get(column_id)
            if column is None:
                continue
            if operator in BTREE_OPERATORS:
                compared.add(column.id)
            elif trigram and operator in TRIGRAM_OPERATORS and value_type_of(column.type) == "text":
                matched.add(column.id)
    for column_id in compared:
        value = _value_sql(by_id[column_id], live)
        if value not in sort_leads:  # a sort index serves the comparisons already
            definitions.add(f"({value})")
    for column_id in matched:
        # `ILIKE` compares under the default collation, not the code point order of `=`.
        value = _value_sql(by_id[column_id], live, byte_order=False)
        definitions.add(f"USING gin ({value} gin_trgm_ops)")
    statements = {}
    for definition in definitions:
        name = index_name(panel_id, definition)
        statements[name] = (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON panel_row {definition}"
            f" WHERE panel_id = {int(panel_id)}"
        )
    return statements


def _value_sql(column: BaseColumn, live: Sequence[int], *, byte_order: bool = True) -> str:
    """The column's value as the compiler computes it, in parentheses, with its constants
    written out (a path is client text: rendered as a quoted literal by SQLAlchemy).

    The compiler converts a column of its `raw` layer, which PostgreSQL then replaces by that
    column's expression; converting a placeholder column and putting the expression in its
    place gives the same expression (converting the expression itself would bind it in a
    subquery, `conversion.bind_once`, which no index can hold)."""
    records = {source_id: source_record_of(source_id, PANEL_ROW) for source_id in live}
    raw = record_value(records, column.source_field, column.data_source_id)
    value: ColumnElement[Any] = from_json(sql_column(_PLACEHOLDER, JSONB()), column.type)
    if byte_order and value_type_of(column.type) == "text":  # text compares by code point
        value = value.collate(BYTE_ORDER)
    return "(" + _literal_sql(value).replace(_PLACEHOLDER, f"({_literal_sql(raw)})") + ")"


def _literal_sql(expression: ColumnElement[Any]) -> str:
    return str(expression.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))


_VIEWS = """
    SELECT
      (SELECT json_agg(json_build_array(s.column_id, s.direction = 'desc')
         ORDER BY s.sort_order, s.column_id)
       FROM view_sort s WHERE s.tenant_id = v.tenant_id AND s.view_id = v.id),
      (SELECT json_agg(json_build_array(f.column_id, f.operator, f.logical_operator)
         ORDER BY f.position, f.id)
       FROM view_filter f WHERE f.tenant_id = v.tenant_id AND f.view_id = v.id)
    FROM panel_view v WHERE v.tenant_id = $1 AND v.panel_id = $2
"""
_COLUMNS = """
    SELECT id, name, type, source_field, data_source_id FROM panel_column
    WHERE tenant_id = $1 AND panel_id = $2 AND column_type = 'base' AND source_field IS NOT NULL
"""
_SOURCES = "SELECT id FROM datasource WHERE tenant_id = $1 AND panel_id = $2"
_EXISTING = """
    SELECT c.relname, i.indisvalid FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = 'panel_row'::regclass AND c.relname LIKE $1
"""
_LIVE_PANELS = "SELECT id FROM panel WHERE id = ANY($1::bigint[])"
_TRIGRAM = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')"


async def update_indexes(connection: asyncpg.Connection, tenant_id: str, panel_id: int) -> None:
    """Create the panel's missing indexes and drop unused ones (the panel's, and every index
    of a panel that no longer exists). `connection` is the tables' owner's, with
    maintenance on (it crosses tenants to find deleted panels) and outside any transaction."""
    # Taken before the views are read: a job that read them earlier must not undo, after
    # this one, what this one built from a later state.
    await _take_turn(connection)
    try:
        views = [
            ViewShape(
                [(int(c), bool(d)) for c, d in msgspec.json.decode(sorts or "[]")],
                [(int(c), str(o), str(j)) for c, o, j in msgspec.json.decode(filters or "[]")],
            )
            for sorts, filters in await connection.fetch(_VIEWS, tenant_id, panel_id)
        ]
        columns = [
            BaseColumn(
                row["id"], row["name"], row["type"], row["source_field"], row["data_source_id"]
            )
            for row in await connection.fetch(_COLUMNS, tenant_id, panel_id)
        ]
        sources = [row["id"] for row in await connection.fetch(_SOURCES, tenant_id, panel_id)]
        trigram = bool(await connection.fetchval(_TRIGRAM))
        wanted = wanted_indexes(panel_id, sources, columns, views, trigram=trigram)
        existing = {
            row["relname"]: row["indisvalid"]
            for row in await connection.fetch(_EXISTING, INDEX_PREFIX.replace("_", "\\_") + "%")
            if _panel_of(row["relname"]) is not None  # only this module's indexes
        }
        of_panel = f"{INDEX_PREFIX}{panel_id}_"
        panels_named = list({_panel_of(name) for name in existing})
        live_panels = {row["id"] for row in await connection.fetch(_LIVE_PANELS, panels_named)}
        doomed = [
            name
            for name, valid in existing.items()
            if (name.startswith(of_panel) and (name not in wanted or not valid))
            or _panel_of(name) not in live_panels
        ]
        for name in doomed:
            # A build that failed half-way leaves an invalid index: dropped, then built again.
            await connection.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        created, failed = [], []
        for name, statement in wanted.items():
            if existing.get(name) is True:
                continue
            try:
                await connection.execute(statement)
                created.append(name)
            except asyncpg.PostgresError as error:
                # One index that cannot be built does not hold back the others; an invalid
                # index it left is dropped by the next update. Queries stay correct without.
                failed.append(name)
                log.warning("panel index not built", name=name, error=type(error).__name__)
    finally:
        await connection.execute(_END_TURN)
    log.info(
        "panel indexes updated", panel_id=panel_id, created=created, failed=failed, dropped=doomed
    )


async def _take_turn(connection: asyncpg.Connection) -> None:
    """Wait for the lock of _TRY_TURN, asking again every TURN_POLL_SECONDS (the lock is held
    by another database session, which no event in this process can announce)."""
    while True:
        if await connection.fetchval(_TRY_TURN):
            return
        await asyncio.sleep(TURN_POLL_SECONDS)


def _panel_of(name: str) -> int | None:
    """The panel id in the name of an index this module made, else None."""
    if not name.startswith(INDEX_PREFIX):
        return None
    panel, _, digest = name.removeprefix(INDEX_PREFIX).partition("_")
    return int(panel) if panel.isdigit() and len(digest) == 16 else None


def index_kind(runtime: Runtime) -> JobKind:
    async def run(payload: bytes, _attempt: int) -> None:
        job = msgspec.json.decode(payload, type=IndexJob)
        assert runtime.settings.database_url is not None
        connection = await asyncpg.connect(
            postgres_dsn(runtime.settings.database_url),
            server_settings={"app.maintenance": "on", "statement_timeout": "0"},
        )
        try:
            await update_indexes(connection, job.tenant_id, job.panel_id)
        finally:
            await connection.close()

    async def failed(payload: bytes, attempt: int, exc: BaseException, last: bool) -> None:
        log.warning("index update failed", attempt=attempt, error=type(exc).__name__, last=last)

    return JobKind(INDEX_ENTRYPOINT, run, failed, timeout_seconds=INDEX_TIMEOUT_SECONDS)
