"""`database` sources: one read-only SELECT against a PostgreSQL URL.

The host is checked and resolved once (`platform.egress`), and asyncpg connects to that
address. The session is read-only from its first statement (`default_transaction_read_only`),
with a statement timeout, a lock timeout and an idle-in-transaction timeout; the query is
checked again by PostgreSQL's parser before it runs (it was when saved, but the rules may have
tightened since) and read through a server-side cursor, one batch at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import msgspec

from panels.datasource.query import select_problem
from panels.platform.egress import EgressRefused, addresses_to_connect
from panels.sync.fetch.common import BATCH_SIZE, Batch, Batches, FetchError

CONNECT_TIMEOUT_SECONDS = 10


async def fetch_database(
    config: dict[str, Any], *, allow_private: bool, statement_timeout_seconds: int
) -> Batches:
    problem = await asyncio.to_thread(select_problem, config["query"])
    if problem is not None:
        raise FetchError(f"config.query {problem}")
    parts = urlsplit(config["url"])
    if not parts.hostname:
        raise FetchError("config.url has no host")
    port = parts.port or 5432
    try:
        addresses = await addresses_to_connect(parts.hostname, port, allow_private=allow_private)
    except EgressRefused as exc:
        raise FetchError(f"config.url {exc}") from None
    timeout_ms = str(statement_timeout_seconds * 1000)
    try:
        connection = await asyncpg.connect(
            host=str(addresses[0]),
            port=port,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            database=unquote(parts.path.lstrip("/")) or None,
            timeout=CONNECT_TIMEOUT_SECONDS,
            statement_cache_size=0,
            server_settings={
                "application_name": "panels-sync",
                "default_transaction_read_only": "on",
                "statement_timeout": timeout_ms,
                "lock_timeout": timeout_ms,
                "idle_in_transaction_session_timeout": timeout_ms,
            },
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise FetchError(f"could not connect to the database ({type(exc).__name__})") from None
    try:
        async with connection.transaction(readonly=True):
            batch: Batch = []
            position = 0
            async for row in connection.cursor(config["query"], prefetch=BATCH_SIZE):
                batch.append((position, msgspec.to_builtins(dict(row))))
                position += 1
                if len(batch) == BATCH_SIZE:
                    yield batch
                    batch = []
            if batch:
                yield batch
    except asyncpg.PostgresError as exc:
        # The server's own message names the query's problem, not ours; no SQL text in it.
        raise FetchError(f"the query failed: {exc.sqlstate} {type(exc).__name__}") from None
    finally:
        await connection.close(timeout=CONNECT_TIMEOUT_SECONDS)
