"""Writing a source's records: the one path every push and every sync goes through.

Per batch: the records are encoded once (canonical JSON, keys sorted) and hashed, copied into
a temporary table with `COPY`, and merged with one `INSERT … ON CONFLICT … DO UPDATE` that
skips a record whose hash did not change. Measured at about twice the speed of row-by-row
statements (NOTES-panel-data.md). The JSON is staged as the UTF-8 bytes msgspec wrote
(`bytea`, no decoding in Python) and cast in the `INSERT`: SQLAlchemy registers a text codec
for `jsonb` on its connections, which binary `COPY` cannot use. The next batch is parsed while
the database merges the current one.

Every batch also rewrites the panel's merged rows (`panel_row`, migration 20261201_0011) of
the keys it changed, in the same statement: the record becomes its source's entry of the row.
Records that did not change touch neither table.

Writers of one panel take turns (a transaction-level advisory lock on the panel): two writes of
overlapping keys in different orders (two pushes to a source, or two sources of the panel
sharing keys) would otherwise lock each other's rows, a deadlock.

Everything runs in the caller's transaction, so a failure anywhere (a record without its key
at position 90,000) writes nothing. In `replace` mode the keys seen are collected in a second
temporary table and the source's other records are deleted only once every batch is in.

A run that changed anything raises the panel's rows version and queues the recount of its
stored totals in its transaction (`rows.totals`), and bumps the panel's cache scope once it
commits (a push is no change of the panel's definition, so it records no change).

A key sent twice in one run: the last record wins (within a batch only the last is written;
across batches the later one updates the earlier one). `recordsProcessed` counts every record
received, duplicates included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from hashlib import md5
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from sqlalchemy import text

from panels.platform.cache import bump_after_commit
from panels.platform.db import driver_connection
from panels.platform.errors import BadRequest, NotFound
from panels.platform.schemas import CamelStruct
from panels.rows.totals import queue_recount, raise_rows_version

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

MAX_KEY_LENGTH = 512
"""Characters; a B-tree entry must stay under about 2,700 bytes."""
DEFAULT_KEY_FIELD = "id"

RecordBatch = list[tuple[int, dict[str, Any]]]
"""(position, record): the position is what an error about that record names."""

PositionLabel = Callable[[int], str]
StagedRecord = tuple[str, bytes, bytes]
"""(key, canonical JSON as UTF-8, its MD5)."""
WriteMode = Literal["upsert", "replace"]


class RecordCounts(CamelStruct):
    records_processed: int = 0
    records_inserted: int = 0
    records_updated: int = 0
    records_deleted: int = 0


def key_field_of(config: dict[str, Any]) -> str:
    """The field a source's records are keyed by: its config's `keyField`, else `id`."""
    return str(config.get("keyField") or DEFAULT_KEY_FIELD)


def array_index(position: int) -> str:
    """An element of a JSON array body (0-based)."""
    return f"body[{position}]"


def line(position: int) -> str:
    """A line of an NDJSON or CSV body (1-based)."""
    return f"line {position}"


_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_LOCK_SOURCE = text(
    "SELECT 1 FROM datasource"
    " WHERE tenant_id = :tenant AND panel_id = :panel AND id = :source FOR KEY SHARE"
)
# One writer per panel at a time (the sources of a panel share its rows); the lock ends with
# the transaction.
_TAKE_TURNS = text("SELECT pg_advisory_xact_lock(hashtext('panel_row'), hashtext(:panel))")
_CREATE_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS records_stage"
    " (key text NOT NULL, record bytea NOT NULL, content_hash bytea NOT NULL) ON COMMIT DROP"
)
_CREATE_SEEN = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS records_seen (key text NOT NULL) ON COMMIT DROP"
)
_MERGE = """
    WITH written AS (
      INSERT INTO source_record AS r (tenant_id, panel_id, source_id, key, record, content_hash)
      SELECT $1, $2, $3, s.key, convert_from(s.record, 'UTF8')::jsonb, s.content_hash
      FROM records_stage s
      ON CONFLICT (tenant_id, source_id, key) DO UPDATE
        SET record = excluded.record, content_hash = excluded.content_hash, updated_at = now()
        WHERE r.content_hash IS DISTINCT FROM excluded.content_hash
      RETURNING r.key, r.record, (xmax = 0) AS inserted
    ),
    merged AS (
      INSERT INTO panel_row AS p (tenant_id, panel_id, key, sources)
      SELECT $1, $2, w.key, jsonb_build_object($3::text, w.record) FROM written w ORDER BY w.key
      ON CONFLICT (tenant_id, panel_id, key) DO UPDATE SET sources = p.sources || excluded.sources
    )
    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
"""
# The panel's rows lose the deleted records' entries, and a row left with none goes.
_DELETE_UNSEEN = """
    WITH gone AS (
      DELETE FROM source_record r
      WHERE r.tenant_id = $1 AND r.source_id = $2
        AND NOT EXISTS (SELECT FROM records_seen s WHERE s.key = r.key)
      RETURNING r.key
    ),
    emptied AS (
      DELETE FROM panel_row p USING gone g
      WHERE p.tenant_id = $1 AND p.panel_id = $3 AND p.key = g.key
        AND p.sources - $2::text = '{}'::jsonb
    ),
    trimmed AS (
      UPDATE panel_row p SET sources = p.sources - $2::text FROM gone g
      WHERE p.tenant_id = $1 AND p.panel_id = $3 AND p.key = g.key
        AND p.sources - $2::text <> '{}'::jsonb
    )
    SELECT count(*) FROM gone
"""


async def write_records(
    session: AsyncSession,
    *,
    tenant_id: str,
    panel_id: int,
    source_id: int,
    key_field: str,
    batches: AsyncIterator[RecordBatch],
    mode: WriteMode,
    position: PositionLabel = array_index,
) -> RecordCounts:
    """Upsert the records of `batches` into the source; `replace` also deletes the rest.

    Raises NotFound when the source is not (or no longer) the panel's, and BadRequest naming
    the position of the first record that cannot be stored; the caller's transaction must then
    be rolled back. `key_field` names a top-level field; its value, as text, is the key.
    """
    found = await session.execute(
        _LOCK_SOURCE, {"tenant": tenant_id, "panel": panel_id, "source": source_id}
    )
    if found.first() is None:
        raise NotFound("Data source not found")
    await session.execute(_TAKE_TURNS, {"panel": str(panel_id)})
    connection = await driver_connection(session)
    await connection.execute(_CREATE_STAGE)
    await connection.execute(_CREATE_SEEN)
    await connection.execute("TRUNCATE records_seen")
    counts = RecordCounts()
    staged_batches = _staged(batches, key_field, position)
    ahead: asyncio.Future[tuple[int, list[StagedRecord]] | None] | None = None
    try:
        item = await anext(staged_batches, None)
        while item is not None:
            received, staged = item
            counts.records_processed += received
            await _copy(connection, staged)
            # Read ahead: the next batch is parsed and staged on the event loop while the
            # database merges this one, so the service's CPU and the database's overlap.
            ahead = asyncio.ensure_future(anext(staged_batches, None))
            await _merge(connection, staged, tenant_id, panel_id, source_id, mode, counts)
            item = await ahead
            ahead = None
    finally:
        if ahead is not None:  # the merge failed: stop reading before closing the reader
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead
        await staged_batches.aclose()
    if mode == "replace":
        # A temporary table is never analysed on its own; without statistics the planner
        # may pick a nested loop over a million seen keys.
        await connection.execute("ANALYZE records_seen")
        counts.records_deleted = await connection.fetchval(
            _DELETE_UNSEEN, tenant_id, source_id, panel_id
        )
    if counts.records_inserted or counts.records_updated or counts.records_deleted:
        # The panel's rows are read through its cache scope, and its totals are stored at a
        # version of its rows (`rows.totals`); a run that changed nothing leaves both warm.
        await raise_rows_version(session, tenant_id, panel_id)
        await queue_recount(session, tenant_id, panel_id)
        bump_after_commit(session, tenant_id, [str(panel_id)])
    return counts


async def _staged(
    batches: AsyncIterator[RecordBatch], key_field: str, position: PositionLabel
) -> AsyncGenerator[tuple[int, list[StagedRecord]]]:
    """(records received, rows to copy) of each batch."""
    async for batch in batches:
        yield len(batch), _stage(batch, key_field, position)


async def _copy(connection: Any, staged: list[StagedRecord]) -> None:
    if not staged:
        return
    await connection.execute("TRUNCATE records_stage")
    await connection.copy_records_to_table(
        "records_stage", records=staged, columns=("key", "record", "content_hash")
    )


async def _merge(
    connection: Any,
    staged: list[StagedRecord],
    tenant_id: str,
    panel_id: int,
    source_id: int,
    mode: WriteMode,
    counts: RecordCounts,
) -> None:
    if not staged:
        return
    inserted, updated = await connection.fetchrow(_MERGE, tenant_id, panel_id, source_id)
    counts.records_inserted += inserted
    counts.records_updated += updated
    if mode == "replace":
        await connection.execute("INSERT INTO records_seen SELECT key FROM records_stage")


def _stage(batch: RecordBatch, key_field: str, position: PositionLabel) -> list[StagedRecord]:
    """The batch as rows to copy: (key, canonical JSON, its MD5), the last record of a key.

    The hot loop of every ingest: error messages are only built on the error path.
    """
    rows: dict[str, StagedRecord] = {}
    for at, record in batch:
        if type(record) is not dict:
            raise BadRequest(position(at), "must be an object")
        key = record.get(key_field)
        if type(key) is not str:
            key = _key_text(key, key_field, at, position)
        if not key or len(key) > MAX_KEY_LENGTH:
            raise BadRequest(
                position(at), f"`{key_field}` must be 1 to {MAX_KEY_LENGTH} characters long"
            )
        try:
            encoded = _encode_sorted(record)
        except (TypeError, UnicodeEncodeError, msgspec.EncodeError):
            raise BadRequest(position(at), "holds a value that cannot be stored as JSON") from None
        # PostgreSQL's jsonb cannot hold U+0000. The byte search also matches an escaped
        # backslash followed by "u0000", so a hit is confirmed on the values themselves.
        if b"\\u0000" in encoded and _holds_nul(record):
            raise BadRequest(position(at), "must not contain NUL characters")
        rows[key] = (key, encoded, md5(encoded, usedforsecurity=False).digest())
    return list(rows.values())


def _key_text(value: Any, key_field: str, at: int, position: PositionLabel) -> str:
    """A key that is not a string, as text: a number as JSON writes it; anything else a 400."""
    if value is None:
        raise BadRequest(position(at), f"has no key field `{key_field}`")
    if isinstance(value, bool | dict | list):
        raise BadRequest(position(at), f"`{key_field}` must be a string or a number")
    if isinstance(value, float):
        return msgspec.json.encode(value).decode()
    return str(value)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
