"""`GET /api/organization/members`: the people of the tenant, for the share picker.

Without Stytch: the tenant's built-in users and every caller seen with a verified token (API
keys excluded, deleted users removed), ordered by email. With `STYTCH_PROJECT_ID` and
`STYTCH_SECRET`: Stytch's B2B member search of the organization named by the token's tenant
(so `JWT_TENANT_CLAIM` must name the organization id there), cached for a short while.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

import msgspec
import structlog
from litestar.exceptions import ServiceUnavailableException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from panels.identity.schemas import Member, MemberPage
from panels.platform.auth import stytch_role
from panels.platform.conditions import escape_like
from panels.platform.http import JsonBody, encoded
from panels.platform.schemas import iso_timestamp
from panels.platform.tenancy import RequestContext
from panels.settings import IdentitySettings

log = structlog.get_logger("panels.identity")
STYTCH_CACHE_SECONDS = 30.0
STYTCH_TIMEOUT_SECONDS = 5.0
_STYTCH_MAX_RESULTS = 1000
_PEOPLE = """
    WITH people AS (
      SELECT u.id::text AS member_id, u.email, k.name, u.role, k.last_seen_at
      FROM app_user u
      LEFT JOIN known_member k ON k.tenant_id = u.tenant_id AND k.member_id = u.id::text
      WHERE u.tenant_id = :tenant
      UNION ALL
      SELECT k.member_id, k.email, k.name, k.role, k.last_seen_at
      FROM known_member k
      WHERE k.tenant_id = :tenant AND NOT k.built_in AND NOT EXISTS (
        SELECT FROM app_user u WHERE u.tenant_id = k.tenant_id AND u.id::text = k.member_id)
    )
"""
_MATCHES = "WHERE (CAST(:pattern AS text) IS NULL OR email ILIKE :pattern OR name ILIKE :pattern)"
# Constant text only; every value is a bound parameter. The total rides on the page's rows
# (a window count, as `platform.paging.get_page` does), so only a page past the end counts apart.
_PAGE = text(
    f"{_PEOPLE} SELECT *, count(*) OVER () AS total FROM people {_MATCHES}"  # noqa: S608
    " ORDER BY email NULLS LAST, member_id LIMIT :limit OFFSET :offset"
)
_COUNT = text(f"{_PEOPLE} SELECT count(*) FROM people {_MATCHES}")  # noqa: S608


async def known_members(
    session: AsyncSession, ctx: RequestContext, q: str | None, limit: int, offset: int
) -> JsonBody:
    pattern = None if not q else "%" + escape_like(q.lower()) + "%"
    values = {"tenant": ctx.tenant_id, "pattern": pattern, "limit": limit, "offset": offset}
    rows = (await session.execute(_PAGE, values)).all()
    if rows:
        total = rows[0].total
    else:
        total = (await session.execute(_COUNT, values)).scalar_one() if offset else 0
    members = [
        Member(
            member_id=r.member_id,
            email_address=r.email,
            name=r.name,
            role=r.role,
            last_seen_at=iso_timestamp(r.last_seen_at) if r.last_seen_at else None,
        )
        for r in rows
    ]
    return encoded(MemberPage(members=members, total=total))


class StytchMembers:
    """Stytch's B2B member search, one organization at a time, cached briefly.

    A search's members (at most `_STYTCH_MAX_RESULTS`, Stytch's own limit per call) are
    fetched and ordered by email once, and every page is a slice of that one order: paging
    by asking Stytch for the first `offset + limit` and ordering only those would let a
    later page repeat or skip members."""

    def __init__(self, settings: IdentitySettings) -> None:
        self._settings = settings
        self._cache: dict[tuple[str, str], tuple[float, list[Member], int]] = {}

    async def page(self, organization: str, q: str | None, limit: int, offset: int) -> JsonBody:
        slot = (organization, q or "")
        cached = self._cache.get(slot)
        if cached is None or cached[0] <= time.monotonic():
            members, total = await self._search(organization, q)
            if len(self._cache) > 1000:
                self._cache.clear()
            cached = self._cache[slot] = (time.monotonic() + STYTCH_CACHE_SECONDS, members, total)
        _, members, total = cached
        return encoded(MemberPage(members=members[offset : offset + limit], total=total))

    async def _search(self, organization: str, q: str | None) -> tuple[list[Member], int]:
        s = self._settings
        query: dict[str, Any] = {
            "organization_ids": [organization],
            "limit": _STYTCH_MAX_RESULTS,
        }
        if q:
            query["query"] = {
                "operator": "OR",
                "operands": [
                    {"filter_name": "member_email_fuzzy", "filter_value": q},
                    {"filter_name": "member_name_fuzzy", "filter_value": q},
                ],
            }
        # Imported here: only Stytch deployments call out, and httpx costs a worker ~2 MB.
        import httpx

        credentials = base64.b64encode(f"{s.stytch_project_id}:{s.stytch_secret}".encode())
        try:
            async with httpx.AsyncClient(timeout=STYTCH_TIMEOUT_SECONDS) as client:
                response = await client.post(
                    f"{s.stytch_api_url}/v1/b2b/organizations/members/search",
                    json=query,
                    headers={"Authorization": f"Basic {credentials.decode()}"},
                )
            response.raise_for_status()
            # Typed: a reply without the fields a member needs is a failed search (503), as
            # much as no reply at all (`ValidationError` is a `DecodeError`).
            found = msgspec.json.decode(response.content, type=_StytchReply)
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            log.warning("stytch member search failed", error=type(exc).__name__)
            raise ServiceUnavailableException(
                "The member directory (Stytch) is unreachable"
            ) from None
        members = [_stytch_member(m) for m in found.members]
        total = found.results_metadata.total
        if total is None:
            total = len(members)
        members.sort(key=lambda m: (m.email_address or "", m.member_id))
        return members, total


class _StytchRole(msgspec.Struct):
    role_id: str = ""


class _StytchMember(msgspec.Struct):
    """The fields of a Stytch B2B member used here (others are ignored)."""

    member_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    email_address: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    roles: list[_StytchRole] = msgspec.field(default_factory=list)


class _StytchResults(msgspec.Struct):
    total: Annotated[int, msgspec.Meta(ge=0)] | None = None


class _StytchReply(msgspec.Struct):
    members: list[_StytchMember] = msgspec.field(default_factory=list)
    results_metadata: _StytchResults = msgspec.field(default_factory=_StytchResults)


def _stytch_member(raw: _StytchMember) -> Member:
    role = stytch_role(r.role_id.lower() for r in raw.roles)
    return Member(
        member_id=raw.member_id,
        email_address=raw.email_address,
        name=raw.name or None,
        role=role,
        last_seen_at=None,
    )
