from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

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
from panels.platform.http import encoded, json_response
from panels.platform.openapi import POST_CODES, error_responses
from panels.platform.runtime import provide_tenant_session
from panels.platform.schemas import PathId
from panels.platform.tenancy import RequestContext

Grants = NamedDependency[GrantService]
Kind = Annotated[ResourceType, PathParameter(description="`panel` or `view`.")]
User = Annotated[UserName, PathParameter(description="An email, a user id, or `_all`.")]
_WRITE_ERRORS = error_responses(400, 403, 404, 409, 413, 415)


async def provide_grant_service(
    request: Request[Any, Any, Any], ctx: NamedDependency[RequestContext]
) -> GrantService:
    return GrantService(provide_tenant_session(request, ctx), ctx, request.app.state.runtime)


class GrantController(Controller):
    path = "/api/acls"
    tags = ["Sharing"]
    dependencies = {"grants": Provide(provide_grant_service)}

    @get(
        "/user/{user_email:str}",
        summary="Grants held by a user",
        responses=error_responses(400, 403),
    )
    async def user_grants(
        self,
        grants: Grants,
        user_email: User,
        resource_type: Annotated[ResourceType | None, QueryParameter(name="resourceType")] = None,
    ) -> GrantList:
        """The caller's own, or anyone's for an admin."""
        found = await grants.grants_of_user(user_email, resource_type)
        return GrantList(acls=[GrantRead.from_entity(g) for g in found])

    @get(
        "/{resource_type:str}/{resource_id:int}",
        summary="Grants on a panel or view",
        responses=error_responses(400, 404),
    )
    async def resource_grants(
        self, grants: Grants, resource_type: Kind, resource_id: PathId
    ) -> GrantList:
        """For anyone who may read the resource."""
        found = await grants.grants_on(resource_type, resource_id)
        return GrantList(acls=[GrantRead.from_entity(g) for g in found])

    @post(
        "/{resource_type:str}/{resource_id:int}",
        summary="Grant a user access",
        responses=error_responses(*POST_CODES),
    )
    async def add_grant(
        self, grants: Grants, resource_type: Kind, resource_id: PathId, data: JSONBody[GrantCreate]
    ) -> GrantOne:
        """Owners and admins only; 409 when the user already has a grant (change it with PUT)."""
        return GrantOne(
            acl=GrantRead.from_entity(await grants.add_grant(resource_type, resource_id, data))
        )

    @post(
        "/{resource_type:str}/{resource_id:int}/share-public",
        summary="Share with everyone in the tenant",
        status_code=201,
        responses={
            **error_responses(*POST_CODES),
            200: ResponseSpec(GrantOne, description="The `_all` grant existed and was changed."),
        },
    )
    async def share_public(
        self,
        request: Request[Any, Any, Any],
        grants: Grants,
        resource_type: Kind,
        resource_id: PathId,
        data: JSONBody[PublicShare],
    ) -> Response[GrantOne]:
        """Sets the `_all` grant: 201 when created, 200 when it changed an existing one."""
        grant, created = await grants.share_with_everyone(resource_type, resource_id, data)
        body = encoded(GrantOne(acl=GrantRead.from_entity(grant)))
        return json_response(request, body, status_code=201 if created else 200)

    @put(
        "/{resource_type:str}/{resource_id:int}/{user_email:str}",
        summary="Change a grant",
        responses=_WRITE_ERRORS,
    )
    async def change_grant(
        self,
        grants: Grants,
        resource_type: Kind,
        resource_id: PathId,
        user_email: User,
        data: JSONBody[GrantUpdate],
    ) -> GrantOne:
        """409 when it would demote the last owner."""
        grant = await grants.change_grant(resource_type, resource_id, user_email, data)
        return GrantOne(acl=GrantRead.from_entity(grant))

    @delete(
        "/{resource_type:str}/{resource_id:int}/{user_email:str}",
        summary="Remove a grant",
        responses=error_responses(400, 403, 404, 409),
    )
    async def remove_grant(
        self, grants: Grants, resource_type: Kind, resource_id: PathId, user_email: User
    ) -> None:
        """409 when it would leave no owner."""
        await grants.remove_grant(resource_type, resource_id, user_email)
