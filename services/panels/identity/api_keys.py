"""API keys: created by a user for machines, with a role no higher than the creator's, shown
once, stored as a hash, revoked at once (see `verification`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from advanced_alchemy.filters import OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy.ext.asyncio import AsyncSession

from panels.identity import audit
from panels.identity.entities import ApiKey
from panels.identity.keys import API_KEY_PREFIX, SHOWN_PREFIX_CHARS, digest, new_secret
from panels.identity.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from panels.identity.verification import Credentials
from panels.platform.auth import ROLE_RANKS, Principal
from panels.platform.errors import BadRequest, Forbidden, NotFound
from panels.platform.http import JsonBody, check_if_match, encode_json, encoded
from panels.platform.paging import get_page
from panels.platform.params import parse_since
from panels.platform.tenancy import RequestContext, tenant_statement


def key_owner(principal: Principal) -> str:
    """Who owns the keys `principal` creates: the user id with the way they authenticate
    (`builtin:7`, `jwt:7`). A built-in user's id and an external subject can be the same
    string; only the built-in user's own sign-in may list or revoke the keys they made (a key
    outlives a session, so it is not shared the way panel grants are, see the README)."""
    return f"{principal.auth_method}:{principal.user_id}"


def builtin_key_owner(user_id: int) -> str:
    return f"builtin:{user_id}"


class ApiKeyRepository(SQLAlchemyAsyncRepository[ApiKey]):
    model_type = ApiKey


class ApiKeyService(SQLAlchemyAsyncRepositoryService[ApiKey, ApiKeyRepository]):
    repository_type = ApiKeyRepository

    def __init__(
        self, session: AsyncSession, ctx: RequestContext, credentials: Credentials
    ) -> None:
        super().__init__(
            session=session, statement=tenant_statement(ApiKey, ctx), auto_refresh=False
        )
        self.session = session
        self.ctx = ctx
        self.credentials = credentials

    async def create_key(self, data: ApiKeyCreate) -> tuple[ApiKey, str]:
        """The key and its secret, which is never available again."""
        principal = self.ctx.principal
        if principal.auth_method == "apiKey":
            raise Forbidden("An API key cannot create API keys")
        if ROLE_RANKS[data.role] > principal.rank:
            raise Forbidden(f"An API key's role cannot be above yours ({principal.role})")
        expires_at = parse_since(data.expires_at, "body.expiresAt")
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise BadRequest("body.expiresAt", "must be in the future")
        secret = new_secret(API_KEY_PREFIX)
        key = await self.create(
            ApiKey(
                tenant_id=self.ctx.tenant_id,
                name=data.name,
                role=data.role,
                prefix=secret[:SHOWN_PREFIX_CHARS],
                key_hash=digest(secret),
                created_by=key_owner(principal),
                expires_at=expires_at,
            )
        )
        audit.record(
            self.session,
            self.ctx,
            "api_key_created",
            "api_key",
            key.id,
            {"name": key.name, "role": key.role, "prefix": key.prefix},
        )
        return key, secret

    async def page(self, limit: int, offset: int) -> JsonBody:
        keys, total = await get_page(
            self,
            order=[OrderBy(field_name="id", sort_order="asc")],
            limit=limit,
            offset=offset,
            conditions=self._visible(),
        )
        return JsonBody(encode_json([ApiKeyRead.from_entity(k) for k in keys]), total=total)

    async def revoke_key(self, key_id: int, if_match: str | None) -> None:
        key = await self.get_one_or_none(
            ApiKey.id == key_id, *self._visible(expired_too=True), with_for_update=True
        )
        if key is None:
            raise NotFound("API key not found")
        check_if_match(if_match, self.encode(key).etag)
        key.revoked_at = datetime.now(UTC)
        await self.update(key)
        audit.record(
            self.session, self.ctx, "api_key_revoked", "api_key", key.id, {"name": key.name}
        )
        self.credentials.revoke_after_commit(self.session)

    def _visible(self, *, expired_too: bool = False) -> list[Any]:
        """Live keys (unrevoked, unexpired): the caller's own, or the tenant's for an admin."""
        live: list[Any] = [ApiKey.revoked_at.is_(None)]
        if not expired_too:
            now = datetime.now(UTC)
            live.append(ApiKey.expires_at.is_(None) | (ApiKey.expires_at > now))
        if self.ctx.principal.is_admin:
            return live
        return [*live, ApiKey.created_by == key_owner(self.ctx.principal)]

    @staticmethod
    def encode(key: ApiKey) -> JsonBody:
        """A key's representation and ETag (its creation response adds the key itself, but
        carries this ETag, the one `If-Match` compares)."""
        return encoded(ApiKeyRead.from_entity(key))

    @staticmethod
    def created(key: ApiKey, secret: str) -> ApiKeyCreated:
        return ApiKeyCreated(**msgspec.structs.asdict(ApiKeyRead.from_entity(key)), key=secret)
