from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from panels.acl.entities import Grant
from panels.acl.schemas import (
    GrantCreate,
    GrantList,
    GrantOne,
    GrantRead,
    GrantUpdate,
    PublicShare,
    ResourceType,
    UserName,
)
from panels.acl.services import GrantService
from panels.platform.http import IfMatch, encoded, json_response
from panels.platform.openapi import POST_CODES, documented_headers, error_responses
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import PathId
from panels.platform.tenancy import RequestContext

Grants = NamedDependency[GrantService]
Kind = Annotated[ResourceType, PathParameter(description="`panel` or `view`.")]
User = Annotated[UserName, PathParameter(description="An email, a user id, or `_all`.")]
_WRITE_ERRORS = error_responses(400, 403, 404, 409, 412, 413, 415)
_ETAG = documented_headers("ETag")
_CREATED_HEADERS = documented_headers("Location", "ETag")


async def provide_grant_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> GrantService:
    return GrantService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime)


def _grant_list(request: Request[Any, Any, Any], grants: list[Grant]) -> Response[GrantList]:
    return json_response(
        request, encoded(GrantList(acls=[GrantRead.from_entity(g) for g in grants]))
    )


def _created_grant(request: Request[Any, Any, Any], grant: Grant) -> Response[GrantOne]:
    """201 with the URL that `PUT`/`DELETE` of the grant take (the user URL-encoded)."""
    user = quote(grant.user_email, safe="")
    location = f"/api/acls/{grant.resource_type}/{grant.resource_id}/{user}"
    return json_response(
        request, GrantService.encode(grant), status_code=201, headers={"location": location}
    )


class GrantController(Controller):
    path = "/api/acls"
    tags = ["Sharing"]
    dependencies = {"grants": Provide(provide_grant_service)}

    @get(
        "/user/{user_email:str}",
        summary="Grants held by a user",
        responses=error_responses(400, 403),
        response_headers=_ETAG,
    )
    async def user_grants(
        self,
        request: Request[Any, Any, Any],
        grants: Grants,
        user_email: User,
        resource_type: Annotated[ResourceType | None, QueryParameter(name="resourceType")] = None,
    ) -> Response[GrantList]:
        """The caller's own, or anyone's for an admin."""
        return _grant_list(request, await grants.grants_of_user(user_email, resource_type))

    @get(
        "/{resource_type:str}/{resource_id:int}",
        summary="Grants on a panel or view",
        responses=error_responses(400, 404),
        response_headers=_ETAG,
    )
    async def resource_grants(
        self,
        request: Request[Any, Any, Any],
        grants: Grants,
        resource_type: Kind,
        resource_id: PathId,
    ) -> Response[GrantList]:
        """For anyone who may read the resource."""
        return _grant_list(request, await grants.grants_on(resource_type, resource_id))

    @post(
        "/{resource_type:str}/{resource_id:int}",
        summary="Grant a user access",
        responses=error_responses(*POST_CODES),
        response_headers=_CREATED_HEADERS,
    )
    async def add_grant(
        self,
        request: Request[Any, Any, Any],
        grants: Grants,
        resource_type: Kind,
        resource_id: PathId,
        data: JSONBody[GrantCreate],
    ) -> Response[GrantOne]:
        """Owners and admins only; 409 when the user already has a grant (change it with PUT)."""
        return _created_grant(request, await grants.add_grant(resource_type, resource_id, data))

    @post(
        "/{resource_type:str}/{resource_id:int}/share-public",
        summary="Share with everyone in the tenant",
        status_code=201,
        responses={
            **error_responses(*POST_CODES),
            200: ResponseSpec(GrantOne, description="The `_all` grant existed and was changed."),
        },
        response_headers=_CREATED_HEADERS,
    )
    async def share_public(
        self,
        request: Request[Any, Any, Any],
        grants: Grants,
        resource_type: Kind,
        resource_id: PathId,
        data: JSONBody[PublicShare],
    ) -> Response[GrantOne]:
        """Sets the `_all` grant: 201 when created (with `Location`), 200 when it changed an
        existing one."""
        grant, created = await grants.share_with_everyone(resource_type, resource_id, data)
        if created:
            return _created_grant(request, grant)
        return json_response(request, GrantService.encode(grant))

    @put(
        "/{resource_type:str}/{resource_id:int}/{user_email:str}",
        summary="Change a grant",
        responses=_WRITE_ERRORS,
        response_headers=_ETAG,
    )
    async def change_grant(
        self,
        request: Request[Any, Any, Any],
        grants: Grants,
        resource_type: Kind,
        resource_id: PathId,
        user_email: User,
        data: JSONBody[GrantUpdate],
        if_match: IfMatch = None,
    ) -> Response[GrantOne]:
        """409 when it would demote the last owner. `If-Match` compares the ETag the grant's
        last `POST` or `PUT` returned."""
        grant = await grants.change_grant(resource_type, resource_id, user_email, data, if_match)
        return json_response(request, GrantService.encode(grant))

    @delete(
        "/{resource_type:str}/{resource_id:int}/{user_email:str}",
        summary="Remove a grant",
        responses=error_responses(400, 403, 404, 409, 412),
    )
    async def remove_grant(
        self,
        grants: Grants,
        resource_type: Kind,
        resource_id: PathId,
        user_email: User,
        if_match: IfMatch = None,
    ) -> None:
        """409 when it would leave no owner."""
        await grants.remove_grant(resource_type, resource_id, user_email, if_match)
