"""Checking API keys and built-in sessions on every request, fast, and never for long after a
revocation.

Each worker keeps what it verified (an API key by its hash; a built-in session by tenant, user and
family) and uses it only while it knows of no revocation since: every revocation, once
committed, increments a Redis counter (the revocation epoch), and a worker reads that counter
at most once a second and forgets everything it verified when it has changed. So a revoked key
or session stops working on every worker within about a second, while a request in between
costs a dictionary lookup. When Redis cannot be read, nothing cached is trusted: each request
checks the database. A revocation that could not reach Redis is sent again every second until
it does, and no entry is kept longer than `MAX_ENTRY_SECONDS` in any case.

Off the request path, a background task writes what requests only noted: the keys' `lastUsedAt`
and the verified callers of the members list (a caller at most once a minute per worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import structlog
from litestar.exceptions import NotAuthorizedException
from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from panels.identity.entities import ApiKey, KnownMember
from panels.identity.keys import API_KEY_PREFIX, digest, same_digest, well_formed
from panels.platform.auth import Principal, strongest_role
from panels.platform.db import after_commit, bind_tenant
from panels.platform.jwks import KeyNotLoaded
from panels.platform.runtime import background_session

if TYPE_CHECKING:
    from panels.platform.runtime import Runtime

log = structlog.get_logger("panels.identity")
EPOCH_KEY = "panels:identity:revocations"
FRESH_SECONDS = 1.0
MAX_ENTRY_SECONDS = 30.0
SEEN_EVERY_SECONDS = 60.0
FLUSH_EVERY_SECONDS = 20.0
_MAX_ENTRIES = 10_000
_SESSION_ROLE = text(
    "SELECT u.role FROM app_user u JOIN refresh_token r"
    " ON r.tenant_id = u.tenant_id AND r.user_id = u.id"
    " WHERE u.id = :user AND r.family_id = :family AND r.revoked_at IS NULL LIMIT 1"
)
_KEY_BY_HASH = text("SELECT tenant_id, id, role, key_hash, expires_at FROM api_key_by_hash(:hash)")


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    checked_at: float
    expires_at: float | None = None  # an API key's expiry, as a Unix time
    used: tuple[str, int] | None = None  # an API key's (tenant, id), where its use is noted


class Credentials:
    """`IssuedCredentials` for the middleware (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._accepts = runtime.settings.identity.accepts_builtin
        self._keys: dict[bytes, _Verified] = {}
        # Well-formed keys the database did not know, by hash: when they were refused. A key's
        # secret is made by the server when the key is created, so a hash refused once never
        # becomes a key later; remembering it spares the database the lookup of a client that
        # keeps sending a revoked or deleted key (or a scanner repeating guesses).
        self._unknown_keys: dict[bytes, float] = {}
        self._sessions: dict[tuple[str, str, str], _Verified] = {}
        self._epoch: bytes | None = None
        self._epoch_read_at = -float("inf")
        # Bumped whenever everything is forgotten: a lookup that started before is not kept,
        # since the database may have answered it before the revocation committed.
        self._generation = 0
        self._unpublished = False
        self._used: dict[tuple[str, int], float] = {}  # (tenant, key id): Unix time of use
        self._seen_at: dict[tuple[str, str], float] = {}
        self._newly_seen: dict[tuple[str, str], tuple[Principal, datetime]] = {}
        self._task: asyncio.Task[None] | None = None

    # --- the request path -------------------------------------------------------------

    async def api_key(self, key: str) -> Principal:
        hashed = self._key_digest(key)
        await self._revalidate()
        entry = self._fresh(self._keys.get(hashed))
        if entry is None:
            refused_at = self._unknown_keys.get(hashed)
            if refused_at is not None and time.monotonic() - refused_at < MAX_ENTRY_SECONDS:
                raise NotAuthorizedException("Invalid API key")
            generation = self._generation
            try:
                entry = await self._load_key(hashed)
            except NotAuthorizedException:
                if len(self._unknown_keys) >= _MAX_ENTRIES:
                    self._unknown_keys.clear()
                self._unknown_keys[hashed] = time.monotonic()
                raise
            self._keep(self._keys, hashed, entry, generation)
        return self._use_key(entry)

    def known_api_key(self, key: str) -> Principal:
        hashed = self._key_digest(key)
        entry = self._fresh(self._keys.get(hashed)) if self._epoch_is_fresh() else None
        if entry is None:
            raise KeyNotLoaded
        return self._use_key(entry)

    async def check_session(self, principal: Principal) -> Principal:
        await self._revalidate()
        slot = _session_slot(principal)
        entry = self._fresh(self._sessions.get(slot))
        if entry is None:
            generation = self._generation
            entry = _Verified(await self._load_session(principal), time.monotonic())
            self._keep(self._sessions, slot, entry, generation)
        return entry.principal

    def known_session(self, principal: Principal) -> Principal:
        slot = _session_slot(principal)
        entry = self._fresh(self._sessions.get(slot)) if self._epoch_is_fresh() else None
        if entry is None:
            raise KeyNotLoaded
        return entry.principal

    def seen(self, principal: Principal) -> None:
        if principal.auth_method == "apiKey":
            return  # keys are not members
        slot = (principal.tenant_id, principal.user_id)
        now = time.monotonic()
        last = self._seen_at.get(slot)
        if last is not None and now - last < SEEN_EVERY_SECONDS:
            return
        if len(self._seen_at) > _MAX_ENTRIES:
            self._seen_at.clear()
        self._seen_at[slot] = now
        self._newly_seen[slot] = (principal, datetime.now(UTC))

    # --- revocation ---------------------------------------------------------------------

    def revoke_after_commit(self, session: AsyncSession) -> None:
        """Once `session` commits a revocation, every worker forgets what it verified."""
        after_commit(session, self.publish_revocation)

    async def publish_revocation(self) -> None:
        self._forget()
        try:
            await self._runtime.redis.incr(EPOCH_KEY)
            self._unpublished = False
        except Exception as exc:
            self._runtime.breaker.trip(exc)
            self._unpublished = True  # sent again by the background task

    def _forget(self) -> None:
        self._generation += 1
        self._keys.clear()
        self._sessions.clear()

    def _epoch_is_fresh(self) -> bool:
        return time.monotonic() - self._epoch_read_at < FRESH_SECONDS

    async def _revalidate(self) -> None:
        if self._epoch_is_fresh():
            return
        runtime = self._runtime
        try:
            if runtime.breaker.is_open:
                raise ConnectionError("redis breaker open")
            epoch = cast("bytes | None", await runtime.redis.get(EPOCH_KEY))
        except Exception as exc:
            if not runtime.breaker.is_open:
                runtime.breaker.trip(exc)
            self._forget()  # nothing cached is trusted until Redis answers again
            return
        if epoch != self._epoch:
            self._forget()
            self._epoch = epoch
        self._epoch_read_at = time.monotonic()

    def _fresh(self, entry: _Verified | None) -> _Verified | None:
        if entry is None or time.monotonic() - entry.checked_at > MAX_ENTRY_SECONDS:
            return None
        return entry

    def _keep(
        self, cache: dict[Any, _Verified], slot: Any, entry: _Verified, generation: int
    ) -> None:
        if generation != self._generation:
            return
        if len(cache) >= _MAX_ENTRIES:
            cache.clear()
        cache[slot] = entry

    # --- database checks ------------------------------------------------------------------

    def _key_digest(self, key: str) -> bytes:
        if not self._accepts or not well_formed(key, API_KEY_PREFIX):
            raise NotAuthorizedException("Invalid API key")
        return digest(key)

    def _use_key(self, entry: _Verified) -> Principal:
        now = time.time()
        if entry.expires_at is not None and entry.expires_at <= now:
            raise NotAuthorizedException("API key expired")
        assert entry.used is not None
        self._used[entry.used] = now
        return entry.principal

    async def _load_key(self, hashed: bytes) -> _Verified:
        async with self._runtime.db.get_session() as session:
            row = (await session.execute(_KEY_BY_HASH, {"hash": hashed})).first()
        if row is None or not same_digest(row.key_hash, hashed):
            raise NotAuthorizedException("Invalid API key")
        principal = Principal(
            user_id=f"apikey:{row.id}",
            email=None,
            tenant_id=row.tenant_id,
            role=strongest_role({row.role}),
            auth_method="apiKey",
            api_key_id=str(row.id),
        )
        expires = row.expires_at.timestamp() if row.expires_at is not None else None
        return _Verified(principal, time.monotonic(), expires, (row.tenant_id, row.id))

    async def _load_session(self, principal: Principal) -> Principal:
        """The principal with its user's current role, if the user and the family live."""
        try:
            user, family = int(principal.user_id), uuid.UUID(principal.session_id or "")
        except ValueError:
            raise NotAuthorizedException("Invalid token") from None
        async with self._runtime.db.get_session() as session:
            bind_tenant(session, principal.tenant_id)
            role = (
                await session.execute(_SESSION_ROLE, {"user": user, "family": family})
            ).scalar_one_or_none()
        if role is None:
            raise NotAuthorizedException("Session revoked")
        return replace(principal, role=strongest_role({role}))

    # --- off the request path ----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("writing key use and members at shutdown failed")

    async def _run(self) -> None:
        flushed = time.monotonic()
        while True:
            await asyncio.sleep(FRESH_SECONDS)
            if self._unpublished:
                await self.publish_revocation()
            if time.monotonic() - flushed >= FLUSH_EVERY_SECONDS:
                flushed = time.monotonic()
                try:
                    await self.flush()
                except Exception:
                    log.exception("writing key use and members failed")

    async def flush(self) -> None:
        """Write the keys' last use and the newly seen callers, one transaction per tenant; a
        tenant whose write fails is logged and skipped."""
        used, self._used = self._used, {}
        seen, self._newly_seen = self._newly_seen, {}
        by_tenant: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
        for (tenant, key_id), moment in used.items():
            by_tenant[tenant].append((key_id, datetime.fromtimestamp(moment, UTC)))
        members: dict[str, list[tuple[Principal, datetime]]] = defaultdict(list)
        for (tenant, _), entry in seen.items():
            members[tenant].append(entry)
        for tenant in sorted(by_tenant.keys() | members.keys()):
            # Each tenant on its own: one that cannot be written loses only its own entries.
            try:
                await self._write(tenant, by_tenant.get(tenant, []), members.get(tenant, []))
            except Exception:
                log.exception("writing key use and members failed", tenant=tenant)

    async def _write(
        self,
        tenant: str,
        used: list[tuple[int, datetime]],
        seen: list[tuple[Principal, datetime]],
    ) -> None:
        # In one order (by id) whatever order this worker saw them in: every worker writes the
        # same rows on its own clock, and two writes locking them in different orders deadlock.
        async with background_session(self._runtime, tenant) as session:
            for key_id, used_at in sorted(used):
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id)
                    .where(ApiKey.last_used_at.is_(None) | (ApiKey.last_used_at < used_at))
                    .values(last_used_at=used_at)
                )
            for principal, seen_at in sorted(seen, key=lambda entry: entry[0].user_id):
                await session.execute(_member_upsert(principal, seen_at))
            await session.commit()


def _member_upsert(principal: Principal, moment: datetime) -> Any:
    values = {
        "email": principal.email,
        "name": principal.name,
        "role": principal.role,
        "last_seen_at": moment,
        "built_in": principal.auth_method == "builtin",
    }
    statement = insert(KnownMember).values(
        tenant_id=principal.tenant_id, member_id=principal.user_id, **values
    )
    return statement.on_conflict_do_update(
        index_elements=[KnownMember.tenant_id, KnownMember.member_id], set_=values
    )


def _session_slot(principal: Principal) -> tuple[str, str, str]:
    return principal.tenant_id, principal.user_id, principal.session_id or ""
