"""Databases of their own for tests that migrate, own or restart something."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from advanced_alchemy.alembic.commands import AlembicCommands
from sqlalchemy import make_url

from panels.platform.db import migration_config
from tests.conftest import Services


def as_user(url: str, user: str | None = None, database: str | None = None) -> str:
    """The same server, as another user (trust authentication) or in another database."""
    parsed = make_url(url)
    changes = {"username": user, "database": database}
    parsed = parsed.set(**{k: v for k, v in changes.items() if v is not None})
    return parsed.render_as_string(hide_password=False)


async def migrate(url: str, revision: str = "head") -> None:
    commands = AlembicCommands(sqlalchemy_config=migration_config(url))
    await asyncio.to_thread(commands.upgrade, revision)


@asynccontextmanager
async def fresh_database(services: Services, owner: str | None = None) -> AsyncIterator[str]:
    """An empty database (owned by `owner` when given) on the test server; dropped after."""
    if services.embedded.postgres is None:
        raise RuntimeError("needs the embedded PostgreSQL (DATABASE_URL is set)")
    name = f"panels_fresh_{uuid.uuid4().hex[:10]}"
    postgres = services.embedded.postgres
    owned = f" OWNER {owner}" if owner else ""
    await asyncio.to_thread(postgres.psql, f"CREATE DATABASE {name}{owned};")
    try:
        yield as_user(services.database_url, owner, name)
    finally:
        await asyncio.to_thread(services.embedded.drop_database, name)
