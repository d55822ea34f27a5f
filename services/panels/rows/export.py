"""A view's rows as CSV (RFC 4180), written by PostgreSQL and streamed in batches.

Each row comes from the database as one finished line (`a,b,"c"` + CRLF), so the service
only joins a batch of lines and sends it: constant memory, no per-cell Python. Cells:

- text, select, user, file: always quoted, inner quotes doubled; a value starting with `=`,
  `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so that a spreadsheet shows it
  as text rather than running it as a formula;
- multi-select and custom: their JSON text, quoted;
- numbers as exact decimals, booleans `true`/`false`, dates `YYYY-MM-DD`, datetimes as in
  JSON pages (ISO-8601 UTC, `Z`);
- null: an empty cell (an empty text is `""`).

The header holds the visible columns' names, quoted alike. `COPY … TO STDOUT (FORMAT csv)`
would end lines with LF alone and cannot neutralise formulas, hence a server-side cursor over
finished lines.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from sqlalchemy import (
    Select,
    Text,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)

from panels.column.formula import value_type_of
from panels.platform.runtime import Runtime, background_session
from panels.rows.compiler import ExportRows, sort_label, value_label
from panels.rows.compiler.ordering import SortKey, order_by
from panels.rows.planning import EXPORT_PLANS
from panels.rows.shape import run_parameters

BATCH_ROWS = 5000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_DATETIME_MS = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
_DATETIME_US = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
_MAX_ARGUMENTS = 100
# Constants of the SQL text, not parameters: no client text among them.
_COMMA: Any = literal_column("','")
_CRLF: Any = literal_column("E'\\r\\n'")


def csv_header(names: Sequence[str]) -> bytes:
    return (",".join(_quoted_text(_neutralised_text(name)) for name in names) + "\r\n").encode()


def _neutralised_text(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _quoted_text(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def csv_lines(exported: ExportRows, shown: Sequence[tuple[int, str]]) -> Select[Any]:
    """One text column, `line`: each row of `exported` (whose shown columns are `shown`,
    as (id, column type)) as a CSV record with its CRLF, in its order."""
    page = exported.rows.subquery("page")
    parts: list[Any] = []
    for index, (column_id, kind) in enumerate(shown):
        if index:
            parts.append(_COMMA)
        parts.append(_cell(page.c[value_label(column_id)], kind))
    line = _concat([*parts, _CRLF])
    keys = [
        SortKey(key.sort, page.c[sort_label(index)], key.value_type)
        for index, key in enumerate(exported.sort_keys)
    ]
    return (
        select(type_coerce(line, Text()).label("line"))
        .select_from(page)
        .order_by(*order_by(keys, page.c.key))
    )


def _concat(parts: list[Any]) -> Any:
    """`concat(…)` of the parts (a null part adds nothing), nested past PostgreSQL's limit of
    100 arguments: one call per 100 cells rather than an operator per cell."""
    if len(parts) <= _MAX_ARGUMENTS:
        return func.concat(*parts)
    chunks = [parts[i : i + _MAX_ARGUMENTS] for i in range(0, len(parts), _MAX_ARGUMENTS)]
    return _concat([func.concat(*chunk) for chunk in chunks])


def _cell(value: Any, column_type: str) -> Any:
    """The text of one cell, null for an empty one."""
    kind = value_type_of(column_type)
    if kind == "number":
        return value  # concat writes a numeric exactly, without a cast
    if kind == "boolean":
        return case((value, literal("true", Text())), (~value, literal("false", Text())))
    if kind == "date":
        return func.to_char(value, "YYYY-MM-DD")
    if kind == "datetime":
        sub_ms = func.mod(func.extract("microseconds", value), 1000) != 0
        return case(
            (sub_ms, func.to_char(value, _DATETIME_US)), else_=func.to_char(value, _DATETIME_MS)
        )
    if kind == "any":
        return _quoted(cast(value, Text()))
    neutralised = case(
        (
            func.left(value, 1).in_(FORMULA_STARTS),
            literal("'", Text()) + value,
        ),
        else_=value,
    )
    return _quoted(neutralised)


def _quoted(text: Any) -> Any:
    quote = literal('"', Text())
    return quote + func.replace(text, quote, literal('""', Text())) + quote


async def stream_csv(
    runtime: Runtime, tenant_id: str, header: bytes, statement: Select[Any]
) -> AsyncIterator[bytes]:
    """The header and the lines of `statement`, in batches of `BATCH_ROWS`, read on a
    connection of its own. The first batch is fetched before this returns; the connection
    goes back to the pool when the stream ends, fails or is abandoned."""
    batches = _batches(runtime, tenant_id, statement)
    try:
        first = await anext(batches)
    except BaseException:
        await batches.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            yield header + first
            async for batch in batches:
                yield batch
        finally:
            await batches.aclose()

    return body()


async def _batches(
    runtime: Runtime, tenant_id: str, statement: Select[Any]
) -> AsyncGenerator[bytes, None]:
    async with background_session(runtime, tenant_id) as session:
        await session.execute(EXPORT_PLANS)
        result = await session.stream_scalars(
            statement.execution_options(yield_per=BATCH_ROWS), run_parameters()
        )
        sent = False
        async for lines in result.partitions(BATCH_ROWS):
            sent = True
            yield "".join(lines).encode()
        if not sent:
            yield b""
