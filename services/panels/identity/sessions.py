"""Login, refresh-token rotation with reuse detection, and logout.

A login opens a session family: each refresh spends its token and issues the next one of the
same family. A spent token presented again means someone kept a copy, so the whole family is
revoked (and the access tokens of that family with it, see `verification`). Access tokens are
JWTs of this service's own (`platform.auth.mint_builtin_token`), naming their family in `sid`.

Before the tenant is known, the email, the refresh token's tenant and an API key are looked up
through the migration's narrow SECURITY DEFINER functions (20261201_0010); everything after
that runs in a session bound to the found tenant, under its row-level security.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.rate_limit import get_remote_address
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from panels.identity import audit
from panels.identity.entities import RefreshToken, User
from panels.identity.keys import (
    REFRESH_TOKEN_PREFIX,
    access_token_key,
    digest,
    new_secret,
    well_formed,
)
from panels.identity.lockout import LoginGuard
from panels.identity.passwords import password_matches, spend_as_long_as_a_check
from panels.identity.schemas import LoginRequest, TokenPair
from panels.identity.verification import Credentials
from panels.platform.auth import Principal, mint_builtin_token
from panels.platform.db import bind_tenant
from panels.platform.observability import request_id
from panels.platform.runtime import Runtime, background_session, with_effects

LOGIN_REFUSED = "Invalid email or password"
_CANDIDATES = text("SELECT tenant_id, user_id, password_hash, role FROM login_candidates(:email)")
_TOKEN_TENANT = text("SELECT tenant_id FROM refresh_token_tenant(:hash)")


@dataclass(frozen=True, slots=True)
class _Candidate:
    tenant_id: str
    user_id: int
    password_hash: str
    role: str


class SessionService:
    def __init__(self, request: Request[Any, Any, Any]) -> None:
        self.request = request
        self.runtime: Runtime = request.app.state.runtime
        self.settings = self.runtime.settings.identity
        credentials = self.runtime.credentials
        assert isinstance(credentials, Credentials)
        self.credentials = credentials

    def _check_enabled(self) -> None:
        if not self.settings.accepts_builtin:
            raise NotAuthorizedException("Built-in login is turned off (AUTH_MODE=external)")

    async def login(self, data: LoginRequest) -> TokenPair:
        """The first user with this email and password (in `tenant`, else in tenant name
        order); every refusal has the same status and body, and about the same duration."""
        self._check_enabled()
        email = data.email.strip().lower()
        address = get_remote_address(self.request)
        guard = LoginGuard(self.runtime.redis, self.runtime.breaker, self.settings)
        attempt = await guard.attempt(email, address)
        candidates = await self._candidates(email)
        tried = [c for c in candidates if data.tenant is None or c.tenant_id == data.tenant]
        if not tried:
            await spend_as_long_as_a_check(data.password)
        for candidate in tried:
            if await password_matches(candidate.password_hash, data.password):
                await attempt.succeeded()
                return await self._open(candidate)
        if attempt.failed():
            await self._audit_lockout(email, candidates)
        raise NotAuthorizedException(LOGIN_REFUSED)

    async def refresh(self, token: str) -> TokenPair:
        """Spend `token` and issue the next of its family; a spent one revokes the family."""
        self._check_enabled()
        refused = NotAuthorizedException("Invalid or expired refresh token")
        if not well_formed(token, REFRESH_TOKEN_PREFIX):
            raise refused
        hashed = digest(token)
        tenant = await self._token_tenant(hashed)
        if tenant is None:
            raise refused
        session = self._session(tenant)
        stored = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hashed))
        now = datetime.now(UTC)
        if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
            raise refused
        # Spending is one conditional update: of two concurrent uses, the second finds the
        # token spent (after the first commits) and counts as a reuse.
        spent = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == stored.id)
            .where(RefreshToken.spent_at.is_(None), RefreshToken.revoked_at.is_(None))
            .values(spent_at=now)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            await self._revoke_family_now(tenant, stored.family_id)
            raise NotAuthorizedException("Refresh token already used; the session is revoked")
        user = await session.get(User, stored.user_id)
        if user is None:
            raise refused
        return await self._issue(session, user, stored.family_id)

    async def logout(self, principal: Principal, token: str) -> None:
        """Revoke the family of the caller's own refresh token; any other token changes
        nothing (and says nothing)."""
        if principal.auth_method != "builtin" or not well_formed(token, REFRESH_TOKEN_PREFIX):
            return
        session = self._session(principal.tenant_id)
        stored = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == digest(token))
        )
        if stored is None or str(stored.user_id) != principal.user_id:
            return
        await revoke_families(session, RefreshToken.family_id == stored.family_id)
        self.credentials.revoke_after_commit(session)

    def _session(self, tenant: str) -> AsyncSession:
        """The request's own session (committed by the transaction middleware), bound to the
        tenant found."""
        session = self.runtime.db.provide_session(self.request.app.state, self.request.scope)
        return with_effects(bind_tenant(session, tenant), self.runtime)

    async def _open(self, candidate: _Candidate) -> TokenPair:
        session = self._session(candidate.tenant_id)
        user = await session.get(User, candidate.user_id)
        if user is None:  # deleted between the lookup and now
            raise NotAuthorizedException(LOGIN_REFUSED)
        return await self._issue(session, user, uuid.uuid4())

    async def _issue(self, session: AsyncSession, user: User, family: uuid.UUID) -> TokenPair:
        refresh_token = new_secret(REFRESH_TOKEN_PREFIX)
        now = datetime.now(UTC)
        session.add(
            RefreshToken(
                tenant_id=user.tenant_id,
                user_id=user.id,
                family_id=family,
                token_hash=digest(refresh_token),
                expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
                created_at=now,
            )
        )
        await session.flush()
        ttl = self.settings.access_token_ttl_seconds
        access = mint_builtin_token(
            self.runtime.settings.jwt,
            access_token_key(self.runtime.settings),
            tenant=user.tenant_id,
            user=str(user.id),
            email=user.email,
            role=user.role,  # type: ignore[arg-type]
            session_id=str(family),
            ttl_seconds=ttl,
        )
        return TokenPair(access_token=access, refresh_token=refresh_token, expires_in=ttl)

    async def _candidates(self, email: str) -> list[_Candidate]:
        async with self.runtime.db.get_session() as lookup:
            rows = (await lookup.execute(_CANDIDATES, {"email": email})).all()
        return [_Candidate(r.tenant_id, r.user_id, r.password_hash, r.role) for r in rows]

    async def _token_tenant(self, hashed: bytes) -> str | None:
        async with self.runtime.db.get_session() as lookup:
            tenant: str | None = (
                await lookup.execute(_TOKEN_TENANT, {"hash": hashed})
            ).scalar_one_or_none()
        return tenant

    async def _revoke_family_now(self, tenant: str, family: uuid.UUID) -> None:
        """Committed on its own: the request answers 401, which rolls its transaction back."""
        async with background_session(self.runtime, tenant) as session:
            await revoke_families(session, RefreshToken.family_id == family)
            await session.commit()
        await self.credentials.publish_revocation()

    async def _audit_lockout(self, email: str, candidates: list[_Candidate]) -> None:
        """The lockout is recorded in each tenant where the email has a user (committed on its
        own, as the request answers 401)."""
        for tenant in sorted({c.tenant_id for c in candidates}):
            async with background_session(self.runtime, tenant) as session:
                audit.record_event(
                    session,
                    tenant,
                    None,
                    request_id(self.request.scope),
                    "login_failed_locked",
                    "user",
                    None,
                    {"email": email},
                )
                await session.commit()


async def revoke_families(session: AsyncSession, *conditions: Any) -> None:
    await session.execute(
        update(RefreshToken)
        .where(*conditions, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
