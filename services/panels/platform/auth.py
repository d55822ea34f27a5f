"""Bearer-token authentication: verify the JWT, map its claims to a `Principal`.

Runs as middleware, before any body or query validation, so a request without a valid token
is a 401 whatever else is wrong with it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import anyio.to_thread
import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from panels.settings import JwtSettings

Role = Literal["admin", "builder", "user"]
ROLES: tuple[Role, ...] = ("admin", "builder", "user")
_STYTCH_ROLES: dict[str, Role] = {
    "panels admin": "admin",
    "org admin": "admin",
    "panels builder": "builder",
}
_MAX_TOKEN_BYTES = 8192
VERIFIED_TOKENS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: taken only from a verified token."""

    user_id: str
    email: str | None
    tenant_id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class TokenVerifier:
    """Checks signature, `exp`, `nbf`, `iss`, `aud` and maps claims to a principal."""

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        # Tokens already verified, until they expire: most requests repeat a token, and
        # verifying it again costs more than the rest of a cached read.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._jwks = (
            jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300)
            if settings.jwks_url
            else None
        )

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        principal, expires = await self._verify(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        s = self._settings
        key: Any = s.secret
        if self._jwks is not None:
            try:
                # PyJWKClient fetches over blocking HTTP when its key cache misses.
                signing_key = await anyio.to_thread.run_sync(
                    self._jwks.get_signing_key_from_jwt, token
                )
            except jwt.PyJWTError as exc:
                raise NotAuthorizedException("Invalid token") from exc
            key = signing_key.key
        required = ["exp"] if s.require_exp else []
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(s.algorithms),
                issuer=s.issuer,
                audience=s.audience,
                leeway=s.leeway_seconds,
                options={
                    "require": required,
                    "verify_aud": s.audience is not None,
                    "verify_iss": s.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise NotAuthorizedException("Token expired") from exc
        except jwt.PyJWTError as exc:
            raise NotAuthorizedException("Invalid token") from exc
        # Kept no longer than the token lives, nor than a minute when it never expires.
        expires = float(claims.get("exp") or time.time() + 60)
        return self.principal_from_claims(claims), min(expires, time.time() + 3600)

    def principal_from_claims(self, claims: dict[str, Any]) -> Principal:
        s = self._settings
        user_id = _claim(claims, s.user_claim)
        tenant_id = _claim(claims, s.tenant_claim)
        if not isinstance(user_id, str | int) or str(user_id) == "":
            raise NotAuthorizedException(f"Token has no {s.user_claim} claim")
        if not isinstance(tenant_id, str | int) or str(tenant_id) == "":
            raise NotAuthorizedException(f"Token has no {s.tenant_claim} claim")
        if len(str(tenant_id)) > 128 or len(str(user_id)) > 255:
            raise NotAuthorizedException("Token identity claims are too long")
        email = _claim(claims, s.email_claim)
        return Principal(
            user_id=str(user_id),
            email=email.lower() if isinstance(email, str) and email else None,
            tenant_id=str(tenant_id),
            role=self._role(_claim(claims, s.roles_claim)),
        )

    def _role(self, raw: Any) -> Role:
        names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        lowered = [n.strip().lower() for n in names if isinstance(n, str)]
        if self._settings.claims_preset == "stytch":
            mapped = {_STYTCH_ROLES[n] for n in lowered if n in _STYTCH_ROLES}
        else:
            mapped = {n for n in lowered if n in ROLES}
        for role in ROLES:  # the strongest role wins
            if role in mapped:
                return role
        return "user"


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by dotted path; a key that itself contains dots (a URL) is matched first."""
    if path in claims:
        return claims[path]
    head, _, rest = path.rpartition(".")
    while head:
        if head in claims and isinstance(claims[head], dict):
            return _claim(claims[head], rest)
        head, _, tail = head.rpartition(".")
        rest = f"{tail}.{rest}"
    return None


class JwtAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorizedException("Missing bearer token")
        if len(token) > _MAX_TOKEN_BYTES:
            raise NotAuthorizedException("Invalid token")
        verifier: TokenVerifier = connection.app.state.runtime.verifier
        principal = await verifier.verify(token)
        # Older clients send the tenant in the query string; it must be the token's.
        claimed = connection.query_params.get("tenantId")
        if claimed is not None and claimed != principal.tenant_id:
            raise PermissionDeniedException("Access denied to tenant")
        return AuthenticationResult(user=principal, auth=token)


def mint_token(
    settings: JwtSettings,
    *,
    tenant: str,
    user: str,
    email: str | None = None,
    role: Role = "user",
    ttl: timedelta = timedelta(hours=1),
) -> str:
    """A signed HS256 token for development and tests (claims in the configured layout)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": now + int(ttl.total_seconds())}
    _set_claim(claims, settings.tenant_claim, tenant)
    if settings.claims_preset == "stytch":
        stytch_role = {"admin": "Panels Admin", "builder": "Panels Builder", "user": "Member"}
        _set_claim(claims, settings.roles_claim, [stytch_role[role]])
    else:
        _set_claim(claims, settings.roles_claim, [role])
    if email:
        claims["email"] = email
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.secret, algorithm="HS256")


def _set_claim(claims: dict[str, Any], path: str, value: Any) -> None:
    if path.startswith("https://"):
        # Stytch-style namespaced claims: "<url>.<key>" is a key inside the URL's object.
        url, _, key = path.rpartition(".")
        claims.setdefault(url, {})[key] = value
        return
    *parents, last = path.split(".")
    target = claims
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
