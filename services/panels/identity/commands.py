"""What `panels users create` does: the first user of a tenant, from the command line.

It writes as the request role bound to the tenant, like the API, so the same row-level security
applies; the audit list records it with no actor (`actorUserId` null, `details.via` "cli").
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from panels.identity import audit
from panels.identity.entities import User
from panels.identity.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, hash_password
from panels.identity.schemas import normalised_email
from panels.platform.auth import MAX_EMAIL_CHARS
from panels.platform.db import bind_tenant, request_engine


class UserNotCreated(Exception):
    """The user cannot be made as asked; the message says why."""


def check_new_user(tenant: str, email: str, password: str) -> str:
    """The email as stored, once the tenant, the email and the password are found fit."""
    if not 1 <= len(tenant) <= 128 or "\x00" in tenant:
        raise UserNotCreated("the tenant must be 1 to 128 characters")
    local, at, domain = email.partition("@")
    if not (at and local and domain) or any(c.isspace() or c == "\x00" for c in email):
        raise UserNotCreated(f"{email!r} is not an email address")
    try:
        normalised = normalised_email(email)
    except ValueError:
        raise UserNotCreated(f"the email must be at most {MAX_EMAIL_CHARS} characters") from None
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS or "\x00" in password:
        raise UserNotCreated(
            f"the password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    return normalised


async def create_user(database_url: str, tenant: str, email: str, password: str, role: str) -> int:
    email = check_new_user(tenant, email, password)
    engine = request_engine(database_url, pool_size=1)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            bind_tenant(session, tenant)
            taken = await session.scalar(
                select(User.id).where(User.tenant_id == tenant, func.lower(User.email) == email)
            )
            if taken is not None:
                raise UserNotCreated(f"{email} already has a user in tenant {tenant}")
            user = User(
                tenant_id=tenant,
                email=email,
                password_hash=await hash_password(password),
                role=role,
            )
            session.add(user)
            await session.flush()
            audit.record_event(
                session,
                tenant,
                None,
                None,
                "user_created",
                "user",
                user.id,
                {"email": email, "role": role, "via": "cli"},
            )
            await session.commit()
            return user.id
    finally:
        await engine.dispose()
