"""Alembic environment: runs the revisions on the engine the `panels db` command hands over.

One run at a time per database: every run first takes a PostgreSQL advisory lock, so replicas
that start together (each `panels serve` upgrades first) queue instead of racing, and the later
ones read the version only once the first has committed, finding nothing left to do.
"""

import asyncio
from typing import TYPE_CHECKING, cast

from advanced_alchemy.base import metadata_registry
from alembic import context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from advanced_alchemy.alembic.commands import AlembicCommandConfig
    from sqlalchemy.engine import Connection

config = cast("AlembicCommandConfig", context.config)
# Any constant shared by every version of Panels: "panels" in ASCII.
MIGRATION_LOCK = 0x70616E656C73


def do_run_migrations(connection: "Connection") -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata_registry.get(config.bind_key),
        version_table=config.version_table_name,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = cast("AsyncEngine", config.engine)
    async with engine.connect() as connection:
        # A session-level lock: it outlives the transaction that takes it and is released
        # below, or by the server if this process dies.
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        await connection.commit()
        try:
            await connection.run_sync(do_run_migrations)
        finally:
            await connection.rollback()  # whatever a failed revision left open
            await connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK}
            )
            await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.db_url,
        target_metadata=metadata_registry.get(config.bind_key),
        literal_binds=True,
        version_table=config.version_table_name,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_migrations_online())
