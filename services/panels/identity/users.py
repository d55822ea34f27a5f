"""Built-in users, managed by the tenant's admins. Deleting a user, or changing their
password, revokes their sessions (and, on deletion, their API keys) at once; demoting them
lowers their API keys to their new role."""

from __future__ import annotations

from datetime import UTC, datetime

from advanced_alchemy.filters import OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from panels.identity import audit
from panels.identity.api_keys import builtin_key_owner
from panels.identity.entities import ApiKey, KnownMember, RefreshToken, User
from panels.identity.passwords import hash_password
from panels.identity.schemas import UserCreate, UserRead, UserUpdate
from panels.identity.sessions import revoke_families
from panels.identity.verification import Credentials
from panels.platform.auth import ROLE_RANKS
from panels.platform.errors import Conflict, Forbidden, NotFound
from panels.platform.http import JsonBody, check_if_match, encode_json, encoded
from panels.platform.paging import get_page
from panels.platform.tenancy import RequestContext, tenant_statement


class UserRepository(SQLAlchemyAsyncRepository[User]):
    model_type = User


class UserService(SQLAlchemyAsyncRepositoryService[User, UserRepository]):
    repository_type = UserRepository

    def __init__(
        self, session: AsyncSession, ctx: RequestContext, credentials: Credentials
    ) -> None:
        super().__init__(session=session, statement=tenant_statement(User, ctx), auto_refresh=False)
        self.session = session
        self.ctx = ctx
        self.credentials = credentials

    def _require_admin(self) -> None:
        if not self.ctx.principal.is_admin:
            raise Forbidden("Only admins may manage users")

    def _require_admin_in_person(self) -> None:
        """Creating, changing or deleting users takes an admin in person: a user (or a new
        password) made with an API key would be a credential that outlives the key."""
        self._require_admin()
        if self.ctx.principal.auth_method == "apiKey":
            raise Forbidden("API keys may not create, change or delete users")

    async def create_user(self, data: UserCreate) -> User:
        self._require_admin_in_person()
        email = data.email  # normalised by `UserCreate`
        if await self.exists(func.lower(User.email) == email):
            raise Conflict(f'A user with the email "{email}" exists in this tenant')
        user = await self.create(
            User(
                tenant_id=self.ctx.tenant_id,
                email=email,
                password_hash=await hash_password(data.password),
                role=data.role,
            )
        )
        audit.record(
            self.session,
            self.ctx,
            "user_created",
            "user",
            user.id,
            {"email": email, "role": user.role},
        )
        return user

    async def page(self, limit: int, offset: int) -> JsonBody:
        self._require_admin()
        users, total = await get_page(
            self,
            order=[OrderBy(field_name="email", sort_order="asc")],
            limit=limit,
            offset=offset,
            conditions=[],
        )
        return JsonBody(encode_json([UserRead.from_entity(u) for u in users]), total=total)

    async def update_user(self, user_id: int, data: UserUpdate, if_match: str | None) -> User:
        self._require_admin_in_person()
        user = await self._existing(user_id)
        check_if_match(if_match, self.encode(user).etag)
        changed: dict[str, object] = {}
        if data.role is not None and data.role != user.role:
            changed["role"] = {"from": user.role, "to": data.role}
            user.role = data.role
            await self._cap_keys(user)
        if data.password is not None:
            changed["passwordChanged"] = True
            user.password_hash = await hash_password(data.password)
            await revoke_families(self.session, RefreshToken.user_id == user.id)
        if not changed:
            return user
        user.updated_at = datetime.now(UTC)
        user = await self.update(user)
        audit.record(self.session, self.ctx, "user_updated", "user", user.id, changed)
        # A new role applies to the user's live access tokens at once too.
        self.credentials.revoke_after_commit(self.session)
        return user

    async def delete_user(self, user_id: int, if_match: str | None) -> None:
        self._require_admin_in_person()
        user = await self._existing(user_id)
        check_if_match(if_match, self.encode(user).etag)
        member = str(user.id)
        owner = builtin_key_owner(user.id)
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == self.ctx.tenant_id, ApiKey.created_by == owner)
            .where(ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        await self.session.execute(
            delete(KnownMember).where(
                KnownMember.tenant_id == self.ctx.tenant_id, KnownMember.member_id == member
            )
        )
        await self.session.delete(user)  # its refresh tokens go with it (foreign key)
        await self.session.flush()
        audit.record(self.session, self.ctx, "user_deleted", "user", user.id, {"email": user.email})
        self.credentials.revoke_after_commit(self.session)

    async def _cap_keys(self, user: User) -> None:
        """A key's role is never above its creator's: a demotion lowers the user's keys too."""
        above = [role for role, rank in ROLE_RANKS.items() if rank > ROLE_RANKS[user.role]]
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.tenant_id == self.ctx.tenant_id,
                ApiKey.created_by == builtin_key_owner(user.id),
            )
            .where(ApiKey.revoked_at.is_(None), ApiKey.role.in_(above))
            .values(role=user.role, updated_at=datetime.now(UTC))
        )

    async def _existing(self, user_id: int) -> User:
        user = await self.get_one_or_none(User.id == user_id, with_for_update=True)
        if user is None:
            raise NotFound("User not found")
        return user

    @staticmethod
    def encode(user: User) -> JsonBody:
        return encoded(UserRead.from_entity(user))
