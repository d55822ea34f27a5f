from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter

from panels.identity.api_keys import ApiKeyService
from panels.identity.audit import AuditService
from panels.identity.members import StytchMembers, known_members
from panels.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    AuditAction,
    AuditPage,
    LoginRequest,
    Me,
    MemberPage,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserRead,
    UserUpdate,
)
from panels.identity.sessions import SessionService
from panels.identity.users import UserService
from panels.identity.verification import Credentials
from panels.platform.auth import Principal
from panels.platform.http import IfMatch, JsonBody, encoded, json_response
from panels.platform.openapi import POST_CODES, documented_headers, error_responses
from panels.platform.params import Since, parse_since
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import Offset, PathId
from panels.platform.tenancy import RequestContext

_LIST_HEADERS = documented_headers("X-Total-Count", "ETag")
_ETAG = documented_headers("ETag")
_NO_STORE = {"cache-control": "no-store"}
Limit = Annotated[int, QueryParameter(ge=1, le=500)]


def _credentials(request: Request[Any, Any, Any]) -> Credentials:
    credentials = request.app.state.runtime.credentials
    assert isinstance(credentials, Credentials)
    return credentials


class AuthController(Controller):
    """Login and refresh: the two routes that take no bearer token."""

    path = "/api/auth"
    tags = ["Identity"]

    @post(
        "/login",
        summary="Log in with an email and a password",
        status_code=200,
        responses=error_responses(400, 413, 415, 503),
    )
    async def login(
        self, request: Request[Any, Any, Any], data: JSONBody[LoginRequest]
    ) -> Response[TokenPair]:
        """Without `tenant`, the password is checked against each user with that email, tenants
        in name order, and the first match logs in. An unknown email, a wrong password and a
        tenant where the email has no user are the same 401. Failed attempts are limited per
        email and per client address (429, also while the counter store is unreachable)."""
        pair = await SessionService(request).login(data)
        return json_response(request, encoded(pair), headers=_NO_STORE)

    @post(
        "/refresh",
        summary="Exchange a refresh token for a new pair",
        status_code=200,
        responses=error_responses(400, 413, 415),
    )
    async def refresh(
        self, request: Request[Any, Any, Any], data: JSONBody[RefreshRequest]
    ) -> Response[TokenPair]:
        """The refresh token is spent. A spent one presented again revokes its whole session
        family (401): someone else holds a copy."""
        pair = await SessionService(request).refresh(data.refresh_token)
        return json_response(request, encoded(pair), headers=_NO_STORE)


class SessionController(Controller):
    path = "/api/auth"
    tags = ["Identity"]

    @post(
        "/logout",
        summary="Log out: revoke a session family",
        status_code=204,
        responses=error_responses(400, 409, 413, 415),
    )
    async def logout(
        self, request: Request[Principal, Any, Any], data: JSONBody[RefreshRequest]
    ) -> None:
        """Revokes the family of the caller's own refresh token, and its access tokens at once.
        An unknown or another user's refresh token also gets 204 and changes nothing."""
        await SessionService(request).logout(request.user, data.refresh_token)

    @get(
        "/me",
        summary="Who the token says the caller is",
        responses=error_responses(),
        response_headers=_ETAG,
    )
    async def me(self, request: Request[Principal, Any, Any]) -> Response[Me]:
        p = request.user
        me = Me(
            user_id=p.user_id,
            email=p.email,
            tenant_id=p.tenant_id,
            role=p.role,
            auth_method=p.auth_method,
            api_key_id=p.api_key_id,
        )
        return json_response(request, encoded(me))


async def provide_user_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> UserService:
    return UserService(provide_tenant_session(request, ctx), ctx, _credentials(request))


Users = NamedDependency[UserService]


class UserController(Controller):
    path = "/api/users"
    tags = ["Identity"]
    dependencies = {"users": Provide(provide_user_service)}

    @post(
        "/",
        summary="Create a user (admin)",
        responses=error_responses(*POST_CODES),
        response_headers=documented_headers("Location", "ETag"),
    )
    async def create_user(
        self, request: Request[Any, Any, Any], users: Users, data: JSONBody[UserCreate]
    ) -> Response[UserRead]:
        """409 when the email, whatever its case, has a user in the tenant. The password is
        stored only as an Argon2id hash and never returned. 403 for an API key, even an
        admin's: a user it made would outlive the key."""
        user = await users.create_user(data)
        location = {"location": f"/api/users/{user.id}"}
        return json_response(request, users.encode(user), status_code=201, headers=location)

    @get(
        "/",
        summary="List users (admin)",
        responses=error_responses(400, 403),
        response_headers=_LIST_HEADERS,
    )
    async def list_users(
        self,
        request: Request[Any, Any, Any],
        users: Users,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response[list[UserRead]]:
        """Ordered by email; `X-Total-Count` is the count before paging."""
        return json_response(request, await users.page(limit, offset))

    @put(
        "/{user_id:int}",
        summary="Change a user's role or password (admin)",
        responses=error_responses(400, 403, 404, 412, 413, 415),
        response_headers=_ETAG,
    )
    async def update_user(
        self,
        request: Request[Any, Any, Any],
        users: Users,
        user_id: PathId,
        data: JSONBody[UserUpdate],
        if_match: IfMatch = None,
    ) -> Response[UserRead]:
        """A new password revokes the user's sessions; a new role applies to their live
        access tokens at once. `If-Match` compares the ETag of the user's last `POST`/`PUT`. 403
        for an API key, even an admin's."""
        user = await users.update_user(user_id, data, if_match)
        return json_response(request, users.encode(user))

    @delete(
        "/{user_id:int}",
        summary="Delete a user (admin)",
        responses=error_responses(400, 403, 404, 412),
    )
    async def delete_user(self, users: Users, user_id: PathId, if_match: IfMatch = None) -> None:
        """Revokes the user's refresh tokens, access tokens and API keys at once. 403 for an
        API key, even an admin's."""
        await users.delete_user(user_id, if_match)


async def provide_key_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> ApiKeyService:
    return ApiKeyService(provide_tenant_session(request, ctx), ctx, _credentials(request))


Keys = NamedDependency[ApiKeyService]


class ApiKeyController(Controller):
    path = "/api/api-keys"
    tags = ["Identity"]
    dependencies = {"keys": Provide(provide_key_service)}

    @post(
        "/",
        summary="Create an API key",
        responses=error_responses(*POST_CODES),
        response_headers=documented_headers("Location", "ETag"),
    )
    async def create_key(
        self, request: Request[Any, Any, Any], keys: Keys, data: JSONBody[ApiKeyCreate]
    ) -> Response[ApiKeyCreated]:
        """`key` is shown this once only; send it as `Authorization: Bearer pk_…` or
        `X-API-Key: pk_…`. The key acts as a principal of its own in the tenant, user id
        `apikey:<id>` (a grant may name it) with no email, and the role given here: above the
        caller's it is a 403, and so is a key creating keys. Deleting its creator (a built-in
        user) revokes it; demoting them lowers it to their new role. The `ETag` is that of
        the key as listed (without `key`)."""
        key, secret = await keys.create_key(data)
        headers = {
            **_NO_STORE,
            "location": f"/api/api-keys/{key.id}",
            "etag": keys.encode(key).etag,
        }
        return Response(
            content=keys.created(key, secret),
            status_code=201,
            media_type="application/json",
            headers=headers,
        )

    @get(
        "/",
        summary="List live API keys",
        responses=error_responses(400),
        response_headers=_LIST_HEADERS,
    )
    async def list_keys(
        self,
        request: Request[Any, Any, Any],
        keys: Keys,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response[list[ApiKeyRead]]:
        """The caller's own keys (an admin's: the tenant's), unrevoked and unexpired, never the
        key itself; `lastUsedAt` is written within a minute of a use."""
        return json_response(request, await keys.page(limit, offset))

    @delete(
        "/{key_id:int}",
        summary="Revoke an API key",
        responses=error_responses(400, 404, 412),
    )
    async def revoke_key(self, keys: Keys, key_id: PathId, if_match: IfMatch = None) -> None:
        """The key stops working at once, on every worker. Another user's key is a 404 (an
        admin may revoke any key of the tenant)."""
        await keys.revoke_key(key_id, if_match)


class AuditController(Controller):
    path = "/api/audit"
    tags = ["Identity"]

    @get(
        "/",
        summary="The audit list (admin)",
        responses=error_responses(400, 403),
        response_headers=_ETAG,
    )
    async def audit_events(
        self,
        request: Request[Any, Any, Any],
        ctx: NamedDependency[RequestContext],
        action: Annotated[AuditAction | None, QueryParameter()] = None,
        since: Since = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        offset: Offset = 0,
    ) -> Response[AuditPage]:
        """Newest first: users, API keys, grants, and emails locked out of logging in."""
        service = AuditService(provide_tenant_session(request, ctx), ctx)
        return json_response(request, await service.page(action, parse_since(since), limit, offset))


class MemberController(Controller):
    path = "/api/organization/members"
    tags = ["Identity"]

    @get(
        "/",
        summary="The tenant's members",
        responses=error_responses(400, 503),
        response_headers=_ETAG,
    )
    async def members(
        self,
        request: Request[Any, Any, Any],
        ctx: NamedDependency[RequestContext],
        q: Annotated[
            str | None,
            QueryParameter(max_length=320, description="Email or name contains (any case)."),
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response[MemberPage]:
        """Ordered by email. Built-in users and everyone who called with a verified token (not
        API keys, not deleted users); with Stytch configured, its member search of the
        organization (503 when Stytch is unreachable)."""
        runtime = request.app.state.runtime
        body: JsonBody
        if runtime.settings.identity.uses_stytch:
            stytch: StytchMembers = request.app.state.stytch_members
            body = await stytch.page(ctx.tenant_id, q, limit, offset)
        else:
            body = await known_members(provide_tenant_session(request, ctx), ctx, q, limit, offset)
        return json_response(request, body)
