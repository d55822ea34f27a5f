from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from panels.acl.entities import Grant
from panels.platform.schemas import CamelStruct, Timestamp, iso_timestamp
from panels.platform.tenancy import RequestBody

Permission = Literal["viewer", "editor", "owner"]
ResourceType = Literal["panel", "view"]
UserName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=320,
        pattern=r"^[^\s\x00/]+$",
        description="An email, a user id, or `_all` for everyone in the tenant.",
        examples=["alice@example.com"],
    ),
]


def normalise_user(name: str) -> str:
    """Emails compare case-insensitively (tokens carry them lower-cased); user ids exactly."""
    return name.lower() if "@" in name else name


class GrantCreate(RequestBody):
    user_email: UserName
    permission: Permission


class GrantUpdate(RequestBody):
    permission: Permission


class PublicShare(RequestBody):
    permission: Permission = "viewer"


class GrantRead(CamelStruct):
    id: int
    tenant_id: str
    resource_type: ResourceType
    resource_id: int
    user_email: str
    permission: Permission
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_entity(cls, grant: Grant) -> GrantRead:
        return cls(
            id=grant.id,
            tenant_id=grant.tenant_id,
            resource_type=grant.resource_type,  # type: ignore[arg-type]
            resource_id=grant.resource_id,
            user_email=grant.user_email,
            permission=grant.permission,  # type: ignore[arg-type]
            created_at=iso_timestamp(grant.created_at),
            updated_at=iso_timestamp(grant.updated_at),
        )


class GrantList(CamelStruct):
    acls: list[GrantRead]


class GrantOne(CamelStruct):
    acl: GrantRead
