from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, field

from panels.identity.entities import ApiKey, AuditEvent, User
from panels.identity.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS
from panels.platform.auth import MAX_EMAIL_CHARS, AuthMethod, Role
from panels.platform.schemas import CamelStruct, Timestamp, iso_timestamp
from panels.platform.tenancy import RequestBody

AuditAction = Literal[
    "user_created",
    "user_updated",
    "user_deleted",
    "api_key_created",
    "api_key_revoked",
    "login_failed_locked",
    "grant_created",
    "grant_updated",
    "grant_deleted",
]


def normalised_email(email: str) -> str:
    """How an email is stored and compared: trimmed and lower-cased. Lower-casing can lengthen
    it (`"\u0130".lower()` is two characters), so the length is checked again on the result."""
    normalised = email.strip().lower()
    if len(normalised) > MAX_EMAIL_CHARS:
        raise ValueError(f"email: must be at most {MAX_EMAIL_CHARS} characters once lower-cased")
    return normalised


LoginEmail = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_EMAIL_CHARS,
        pattern=r"^[^\x00]+$",
        examples=["ada@example.com"],
    ),
]
Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=MAX_EMAIL_CHARS,
        pattern=r"^[^\s@\x00]+@[^\s@\x00]+$",
        description="Unique in the tenant, whatever its case.",
        examples=["ada@example.com"],
    ),
]
AnyPassword = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_PASSWORD_CHARS,
        pattern=r"^[^\x00]+$",
        examples=["correct horse battery"],
    ),
]
NewPassword = Annotated[
    str,
    Meta(
        min_length=MIN_PASSWORD_CHARS,
        max_length=MAX_PASSWORD_CHARS,
        pattern=r"^[^\x00]+$",
        description=f"At least {MIN_PASSWORD_CHARS} characters.",
        examples=["correct horse battery"],
    ),
]
TenantName = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]
OpaqueToken = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00]+$",
        description="The refresh token a login or refresh returned.",
    ),
]
KeyName = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")]


class LoginRequest(CamelStruct):
    email: LoginEmail
    password: AnyPassword
    tenant: TenantName | None = None


class RefreshRequest(CamelStruct):
    refresh_token: OpaqueToken


class TokenPair(CamelStruct):
    access_token: str
    refresh_token: str
    expires_in: Annotated[int, Meta(description="Seconds the access token lives.")]
    token_type: Literal["Bearer"] = "Bearer"


class Me(CamelStruct):
    user_id: str
    email: str | None
    tenant_id: str
    role: Role
    auth_method: AuthMethod
    api_key_id: str | None


class UserCreate(RequestBody):
    email: Email
    password: NewPassword
    role: Role

    def __post_init__(self) -> None:
        self.email = normalised_email(self.email)


class UserUpdate(RequestBody):
    role: Role | None = None
    password: NewPassword | None = None


class UserRead(CamelStruct):
    id: int
    email: str
    role: str
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_entity(cls, user: User) -> UserRead:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            created_at=iso_timestamp(user.created_at),
            updated_at=iso_timestamp(user.updated_at),
        )


class ApiKeyCreate(RequestBody):
    name: KeyName
    role: Role
    expires_at: (
        Annotated[
            str,
            Meta(max_length=64, description="ISO-8601 date-time in the future; absent: never."),
        ]
        | None
    ) = None


class ApiKeyRead(CamelStruct):
    id: int
    name: str
    role: str
    prefix: Annotated[str, Meta(description="The key's first characters, to recognise it.")]
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None

    @classmethod
    def from_entity(cls, key: ApiKey) -> ApiKeyRead:
        return cls(
            id=key.id,
            name=key.name,
            role=key.role,
            prefix=key.prefix,
            created_at=iso_timestamp(key.created_at),
            expires_at=iso_timestamp(key.expires_at) if key.expires_at else None,
            last_used_at=iso_timestamp(key.last_used_at) if key.last_used_at else None,
        )


class ApiKeyCreated(ApiKeyRead):
    key: Annotated[str, Meta(description="The key itself: shown this once only.")]


class AuditEventRead(CamelStruct):
    id: int
    action: str
    actor_user_id: str | None
    target_type: str
    target_id: str | None
    details: dict[str, Any]
    request_id: str | None
    created_at: Timestamp

    @classmethod
    def from_entity(cls, event: AuditEvent) -> AuditEventRead:
        return cls(
            id=event.id,
            action=event.action,
            actor_user_id=event.actor_user_id,
            target_type=event.target_type,
            target_id=event.target_id,
            details=event.details,
            request_id=event.request_id,
            created_at=iso_timestamp(event.created_at),
        )


class AuditPage(CamelStruct):
    events: list[AuditEventRead]
    total: int
    has_more: bool


class Member(CamelStruct, rename=None):
    """Snake_case keys, as the web client's share picker reads them."""

    member_id: str
    email_address: str | None
    name: str | None
    role: str
    last_seen_at: Timestamp | None = None


class MemberPage(CamelStruct):
    members: list[Member] = field(default_factory=list)
    total: int = 0
