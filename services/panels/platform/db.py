"""Engines, sessions, the request transaction and migrations.

Requests run as `panels_app`, a role that owns nothing and is not a superuser, so the
row-level security policies of every tenant-owned table apply to it. Each transaction a
tenant-bound session begins first sets `app.tenant_id` (transaction-local), which is what
those policies compare with. Migrations and maintenance run as the URL's own user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
)
from advanced_alchemy.extensions.litestar._utils import delete_aa_scope_state, get_aa_scope_state
from litestar.datastructures import MutableScopeHeaders
from sqlalchemy import event, pool, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from panels.platform.errors import ErrorBody

if TYPE_CHECKING:
    from litestar.types import HTTPResponseStartEvent, Message, Scope
    from sqlalchemy.engine import Connection

APP_ROLE = "panels_app"
MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "database" / "migrations"
TENANT_KEY = "tenant_id"
_TRANSACTION_KEY = "transaction_state"
_AFTER_COMMIT_KEY = "after_commit"
_COMMIT_FAILED_KEY = "panels_commit_failed"
_TERMINUS = {"http.response.body", "http.disconnect"}
log = structlog.get_logger("panels.db")

AfterCommit = Callable[[], Awaitable[None]]


def async_url(url: str) -> str:
    """`postgresql://…` as SQLAlchemy's asyncpg dialect wants it."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    return url


def request_engine(url: str, pool_size: int) -> AsyncEngine:
    """The engine requests use: every new connection switches to the request role."""
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        # Overflow connections are opened and closed per burst; keep them few, so a busy
        # worker reuses its pool rather than reconnecting (and SET ROLE-ing) constantly.
        max_overflow=max(pool_size // 4, 1),
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "panels"}},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def enter_request_role(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET ROLE {APP_ROLE}")
        cursor.close()

    return engine


def owner_engine(url: str) -> AsyncEngine:
    """An engine as the URL's own user, for migrations and maintenance."""
    return create_async_engine(async_url(url), poolclass=pool.NullPool)


@event.listens_for(Session, "after_begin")
def _bind_tenant(session: Session, _transaction: Any, connection: Connection) -> None:
    tenant = session.info.get(TENANT_KEY)
    if tenant is not None:
        connection.execute(
            text("SELECT set_config('app.tenant_id', :tenant, true)"), {"tenant": tenant}
        )


def bind_tenant(session: AsyncSession, tenant_id: str) -> AsyncSession:
    """Scope every transaction of this session to one tenant (see module docstring)."""
    if session.info.get(TENANT_KEY) not in (None, tenant_id):
        raise RuntimeError("a session cannot change tenant")
    session.info[TENANT_KEY] = tenant_id
    return session


def transaction_state(session: AsyncSession) -> dict[str, Any]:
    """Scratch space that lives as long as the current transaction: dropped on rollback."""
    state: dict[str, Any] = session.info.setdefault(_TRANSACTION_KEY, {})
    return state


def after_commit(session: AsyncSession, effect: AfterCommit) -> None:
    """Run `effect` once the request's transaction has committed (never if it rolls back)."""
    transaction_state(session).setdefault(_AFTER_COMMIT_KEY, []).append(effect)


@event.listens_for(Session, "after_rollback")
def _forget_transaction_state(session: Session) -> None:
    session.info.pop(_TRANSACTION_KEY, None)


async def run_after_commit(session: AsyncSession) -> None:
    effects: list[AfterCommit] = session.info.pop(_TRANSACTION_KEY, {}).get(_AFTER_COMMIT_KEY, [])
    for effect in effects:
        try:
            await effect()
        except Exception:
            log.exception("after-commit effect failed")


def database_config(
    settings_url: str, pool_size: int, read_only: bool = False
) -> SQLAlchemyAsyncConfig:
    config = SQLAlchemyAsyncConfig(
        engine_instance=request_engine(settings_url, pool_size),
        session_config=AsyncSessionConfig(expire_on_commit=False, autoflush=False),
        session_dependency_key="db_read_session" if read_only else "db_session",
        engine_dependency_key="db_read_engine" if read_only else "db_engine",
        create_all=False,
    )
    config.before_send_handler = _transaction_handler(config.session_scope_key)
    return config


def migration_config(url: str) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        engine_instance=owner_engine(url),
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            script_config="",
            version_table_name="alembic_version",
        ),
    )


def _transaction_handler(scope_key: str) -> Callable[[Message, Scope], Awaitable[None]]:
    """Commit on 2xx/3xx, roll back otherwise, then run after-commit effects.

    A commit that fails turns the response into a 500 before its first byte is sent, so a
    client is never told that an uncommitted write succeeded.
    """

    async def handler(message: Message, scope: Scope) -> None:
        state: dict[str, Any] = scope.setdefault("state", {})
        session: AsyncSession | None = get_aa_scope_state(scope, scope_key)
        if message["type"] == "http.response.start" and session is not None:
            if not session.in_transaction():
                pass  # nothing was read or written (a cache hit): nothing to end
            elif 200 <= message["status"] < 400:
                try:
                    await session.commit()
                except Exception:
                    log.exception("commit failed")
                    await session.rollback()
                    _replace_with_server_error(message, state)
                else:
                    await run_after_commit(session)
            else:
                await session.rollback()
        elif message["type"] == "http.response.body" and _COMMIT_FAILED_KEY in state:
            message["body"] = state.pop(_COMMIT_FAILED_KEY)
            message["more_body"] = False
        if session is not None and message["type"] in _TERMINUS:
            # Committed or rolled back above, the connection is back in the pool already;
            # closing then costs a greenlet round trip for nothing.
            if session.in_transaction():
                await session.close()
            delete_aa_scope_state(scope, scope_key)

    return handler


def _replace_with_server_error(message: HTTPResponseStartEvent, state: dict[str, Any]) -> None:
    body = msgspec.json.encode(
        ErrorBody(
            status_code=500,
            error="Internal Server Error",
            message="Internal Server Error",
            request_id=str(state.get("request_id", "")),
        )
    )
    message["status"] = 500
    headers = MutableScopeHeaders.from_message(message)
    for name in ("etag", "location", "content-encoding"):
        if name in headers:
            del headers[name]
    headers["content-type"] = "application/json"
    headers["content-length"] = str(len(body))
    state[_COMMIT_FAILED_KEY] = body
