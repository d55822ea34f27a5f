"""Engines, sessions, the request transaction and migrations.

Requests run as `panels_app`, a role that owns nothing and is not a superuser, so the
row-level security policies of every tenant-owned table apply to it. Each transaction of a
request-engine session first runs `set_config('role', 'panels_app', true)` and, when the
session is bound to a tenant, `set_config('app.tenant_id', …, true)`, in one statement: both
are transaction-local, so neither depends on what a pooled (or PgBouncer-shared) connection did
before. Migrations and maintenance run as the URL's own user with `app.maintenance` on, which
the owner-only `owner_maintenance` policies honour (migration 20261130_0007).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
import structlog
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
)
from advanced_alchemy.extensions.litestar._utils import delete_aa_scope_state, get_aa_scope_state
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from sqlalchemy import event, pool, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from panels.platform.errors import ErrorBody

if TYPE_CHECKING:
    from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send
    from sqlalchemy.engine import Connection

APP_ROLE = "panels_app"
MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "database" / "migrations"
TENANT_KEY = "tenant_id"
# Set at connection start by the owner engine only; honoured only for the migrating role.
MAINTENANCE_SETTING = "app.maintenance"
_REQUEST_ROLE_OPTION = "panels_request_role"
_ENTER_ROLE = text(f"SELECT set_config('role', '{APP_ROLE}', true)")
_ENTER_ROLE_AND_TENANT = text(
    f"SELECT set_config('role', '{APP_ROLE}', true), set_config('app.tenant_id', :tenant, true)"
)
_TRANSACTION_KEY = "transaction_state"
_AFTER_COMMIT_KEY = "after_commit"
_AFTER_COMMIT_LAST_KEY = "after_commit_last"
_TERMINUS = {"http.response.body", "http.disconnect"}
log = structlog.get_logger("panels.db")

AfterCommit = Callable[[], Awaitable[None]]
Middleware = Callable[["ASGIApp"], "ASGIApp"]


# A statement's bound values stay out of its errors (and so out of the logs): they include
# password hashes, token digests and emails.
HIDE_PARAMETERS = True


def async_url(url: str) -> str:
    """`postgresql://…` as SQLAlchemy's asyncpg dialect wants it."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    return url


def request_engine(url: str, pool_size: int) -> AsyncEngine:
    """The engine requests use: each session transaction on it runs as the request role."""
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        # Overflow connections are opened and closed per burst; keep them few, so a busy
        # worker reuses its pool rather than reconnecting constantly.
        max_overflow=max(pool_size // 4, 1),
        pool_recycle=1800,
        execution_options={_REQUEST_ROLE_OPTION: True},
        connect_args={
            "server_settings": {"application_name": "panels"},
            "connection_class": RequestConnection,
        },
        json_deserializer=decode_jsonb,
        hide_parameters=HIDE_PARAMETERS,
    )
    event.listen(engine.sync_engine, "checkout", _discard_if_closed)
    event.listen(engine.sync_engine, "checkin", _forget_deferred_setup)
    return engine


class RequestConnection(asyncpg.Connection):  # type: ignore[misc]
    """The request engine's asyncpg connection: the statement that enters the request role
    (and tenant) is sent in the same round trip as the transaction's `BEGIN`, where it took a
    round trip of its own (of four for a read: BEGIN, role, the read, COMMIT).

    `_enter_request_role` defers it here (`set_up_at_begin`) when the transaction has not begun
    on the server yet; SQLAlchemy's driver begins lazily, just before the first statement, and
    the statement rides on that `BEGIN`. Whatever is left unsent when the connection returns to
    the pool is dropped (`_forget_deferred_setup`), so it can never reach another transaction.
    """

    __slots__ = ("_setup_at_begin",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_at_begin: str | None = None

    def set_up_at_begin(self, statement: str | None) -> None:
        self._setup_at_begin = statement

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109  (asyncpg's signature)
        setup = self._setup_at_begin
        if setup is not None and not args and query.startswith("BEGIN"):
            self._setup_at_begin = None
            query = f"{query};{setup}"
        result: str = await super().execute(query, *args, timeout=timeout)
        return result


def _forget_deferred_setup(dbapi_connection: Any, _record: Any) -> None:
    driver = getattr(dbapi_connection, "driver_connection", None)
    if isinstance(driver, RequestConnection):
        driver.set_up_at_begin(None)


def entering(tenant: str | None, *, read_only: bool = False) -> str:
    """The statement that enters the request role (and tenant) for the rest of a transaction,
    for the simple query protocol (no parameters)."""
    entering = f"SELECT set_config('role', '{APP_ROLE}', true)"
    if read_only:
        entering += ", set_config('transaction_read_only', 'on', true)"
    if tenant is not None:
        entering += f", set_config('app.tenant_id', {sql_literal(tenant)}, true)"
    return entering


def sql_literal(value: str) -> str:
    """`value` as a PostgreSQL string literal, for the one statement sent without parameters
    (the simple query protocol of `BEGIN`): an escape string, read the same whatever
    `standard_conforming_strings` says. NUL cannot be in PostgreSQL text at all."""
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot hold NUL")
    return "E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def decode_jsonb(text: str) -> Any:
    """A JSONB value as Python: msgspec decodes several times faster than the json module
    (a list decodes two per row), into the same values; a number beyond a float's range,
    which PostgreSQL's numeric can hold, is left to the json module (infinity)."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


def _discard_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Never hand out a pooled connection the server has already closed.

    A PostgreSQL restart (or an idle timeout, or a terminated backend) closes every pooled
    connection; asyncpg sees the close as soon as the event loop reads it, so checking its flag
    costs nothing, where `pool_pre_ping` pays a round trip on every checkout. The pool replaces
    a connection refused here with a new one.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def owner_engine(url: str) -> AsyncEngine:
    """An engine as the URL's own user, for migrations and maintenance.

    Its connections set `app.maintenance`, which lets the role that ran the migrations (the
    tables' owner) past row-level security; nobody else gains anything from it.
    """
    return create_async_engine(
        async_url(url),
        poolclass=pool.NullPool,
        connect_args={"server_settings": {MAINTENANCE_SETTING: "on"}},
        hide_parameters=HIDE_PARAMETERS,
    )


@event.listens_for(Session, "after_begin")
def _enter_request_role(session: Session, _transaction: Any, connection: Connection) -> None:
    if not connection.get_execution_options().get(_REQUEST_ROLE_OPTION):
        return
    tenant = session.info.get(TENANT_KEY)
    driver = connection.connection.driver_connection
    adapter = connection.connection.dbapi_connection
    not_begun = (
        getattr(adapter, "_transaction", True) is None
        and getattr(adapter, "isolation_level", "autocommit") != "autocommit"
    )
    if isinstance(driver, RequestConnection) and not_begun:
        driver.set_up_at_begin(entering(tenant))
        return
    if tenant is None:
        connection.execute(_ENTER_ROLE)
    else:
        connection.execute(_ENTER_ROLE_AND_TENANT, {"tenant": tenant})


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's open transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


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


def after_commit(session: AsyncSession, effect: AfterCommit, *, last: bool = False) -> None:
    """Run `effect` once the request's transaction has committed (never if it rolls back);
    `last` ones run after all the others (which may prepare what they send)."""
    key = _AFTER_COMMIT_LAST_KEY if last else _AFTER_COMMIT_KEY
    transaction_state(session).setdefault(key, []).append(effect)


@event.listens_for(Session, "after_rollback")
def _forget_transaction_state(session: Session) -> None:
    session.info.pop(_TRANSACTION_KEY, None)


async def run_after_commit(session: AsyncSession) -> None:
    state = session.info.pop(_TRANSACTION_KEY, {})
    effects: list[AfterCommit] = [
        *state.get(_AFTER_COMMIT_KEY, []),
        *state.get(_AFTER_COMMIT_LAST_KEY, []),
    ]
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
    config.before_send_handler = _release_session(config.session_scope_key)
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


def transaction_middleware(*configs: SQLAlchemyAsyncConfig | None) -> Middleware:
    """Commit on 2xx/3xx, roll back otherwise, then run after-commit effects.

    It ends the transaction when the response starts, inside the metrics middleware and
    before the access log, so a commit that fails turns the response into a 500 that the
    client, the log and the metrics all see; a client is never told that an uncommitted write
    succeeded. Goes innermost among the app's middleware.
    """
    scope_keys = tuple(config.session_scope_key for config in configs if config is not None)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            replacement: bytes | None = None
            replaced = False

            async def send_once_ended(message: Message) -> None:
                nonlocal replacement, replaced
                if message["type"] == "http.response.start":
                    for key in scope_keys:
                        session: AsyncSession | None = get_aa_scope_state(scope, key)
                        if session is not None and not await _end(session, message["status"]):
                            replacement = _server_error(message, scope)
                elif message["type"] == "http.response.body" and replacement is not None:
                    if replaced:
                        return  # the rest of a body that was replaced
                    message["body"], message["more_body"] = replacement, False
                    replaced = True
                await send(message)

            await app(scope, receive, send_once_ended)

        return handle

    return middleware


async def _end(session: AsyncSession, status: int) -> bool:
    """End the request's transaction; False when its commit failed (and was rolled back)."""
    if not session.in_transaction():
        return True  # nothing was read or written (a cache hit): nothing to end
    if not 200 <= status < 400:
        await session.rollback()
        return True
    try:
        await session.commit()
    except Exception:
        log.exception("commit failed")
        await session.rollback()
        return False
    await run_after_commit(session)
    return True


def _release_session(scope_key: str) -> Callable[[Message, Scope], Awaitable[None]]:
    """Forget the request's session once the response is sent (its transaction has ended)."""

    async def handler(message: Message, scope: Scope) -> None:
        if message["type"] not in _TERMINUS:
            return
        session: AsyncSession | None = get_aa_scope_state(scope, scope_key)
        if session is None:
            return
        # Committed or rolled back already, the connection is back in the pool; closing then
        # costs a greenlet round trip for nothing.
        if session.in_transaction():
            await session.close()
        delete_aa_scope_state(scope, scope_key)

    return handler


def _server_error(message: HTTPResponseStartEvent, scope: Scope) -> bytes:
    body = msgspec.json.encode(
        ErrorBody(
            status_code=500,
            error="Internal Server Error",
            message="Internal Server Error",
            request_id=str(scope.get("state", {}).get("request_id", "")),
        )
    )
    message["status"] = 500
    headers = MutableScopeHeaders.from_message(message)
    for name in ("etag", "location", "content-encoding"):
        if name in headers:
            del headers[name]
    headers["content-type"] = "application/json"
    headers["content-length"] = str(len(body))
    return body
