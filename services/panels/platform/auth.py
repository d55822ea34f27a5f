"""Bearer-token authentication: verify the JWT, map its claims to a `Principal`.

Runs as middleware, before any body or query validation, so a request without a valid token
is a 401 whatever else is wrong with it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

import jwt
import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from panels.platform.jwks import KeySet
from panels.settings import JwtSettings

if TYPE_CHECKING:
    from litestar.types import Scope

Role = Literal["admin", "builder", "user"]
ROLES: tuple[Role, ...] = ("admin", "builder", "user")
AuthMethod = Literal["jwt", "builtin", "apiKey"]
BUILTIN_KEY_ID = "panels"
"""The `kid` of access tokens this service issues itself; their key is the service's own."""
BUILTIN_ISSUER = "panels"
API_KEY_PREFIX = "pk_"
_MAX_NAME_CHARS = 255
# An email longer than this (once lower-cased) is no email the service stores: taken as none.
MAX_EMAIL_CHARS = 320
STYTCH_ROLES: dict[str, Role] = {
    "panels admin": "admin",
    "org admin": "admin",
    "panels builder": "builder",
}
log = structlog.get_logger("panels.auth")
_MAX_TOKEN_BYTES = 8192
VERIFIED_TOKENS_KEPT = 10_000
# Decoding a token runs the signature libraries over client bytes; they raise more than
# PyJWTError (TypeError, ValueError from a key of the wrong kind), and each is a 401.
_TOKEN_ERRORS = (jwt.PyJWTError, ValueError, TypeError)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: taken only from a verified token."""

    user_id: str
    email: str | None
    tenant_id: str
    role: Role
    auth_method: AuthMethod = "jwt"
    api_key_id: str | None = None
    session_id: str | None = None
    """The refresh-token family of a built-in access token: revoking it refuses the token."""
    name: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def rank(self) -> int:
        """admin 2, builder 1, user 0: a role may hand out only roles of its rank or below."""
        return ROLE_RANKS[self.role]


ROLE_RANKS: dict[str, int] = {"user": 0, "builder": 1, "admin": 2}


class IssuedCredentials(Protocol):
    """What the service issued itself (API keys, built-in sessions), checked on every request.

    Implemented by the identity feature and set on the runtime; the `known_*` forms answer
    without I/O or raise `KeyNotLoaded`.
    """

    async def api_key(self, key: str) -> Principal: ...

    def known_api_key(self, key: str) -> Principal: ...

    async def check_session(self, principal: Principal) -> Principal: ...

    def known_session(self, principal: Principal) -> Principal: ...

    def seen(self, principal: Principal) -> None:
        """A verified caller, for the members list (recorded off the request path)."""


class TokenVerifier:
    """Checks signature, `exp`, `nbf`, `iss`, `aud` and maps claims to a principal."""

    def __init__(
        self,
        settings: JwtSettings,
        key_set: KeySet | None = None,
        *,
        builtin_key: bytes | None = None,
        accept_external: bool = True,
    ) -> None:
        self._settings = settings
        # The service's own access tokens (`kid` "panels") are checked with its own key, and
        # only when built-in login is on; external ones only when AUTH_MODE accepts them.
        self._builtin_key = builtin_key
        self._accept_external = accept_external
        # Tokens already verified, until they expire: most requests repeat a token, and
        # verifying it again costs more than the rest of a cached read.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._key_set = key_set or (
            KeySet(settings.jwks_url, settings.algorithms) if settings.jwks_url else None
        )

    async def verify(self, token: str) -> Principal:
        known = self._known(token)
        if known is not None:
            return known
        if self._is_builtin(token):
            return self._decode_builtin(token)
        self._check_external_accepted()
        key = await self._key_set.key(_key_id(token)) if self._key_set else None
        return self._decode(token, key)

    def verify_without_fetching(self, token: str) -> Principal:
        """`verify` for callers that cannot wait on I/O; `KeyNotLoaded` if it would have to."""
        known = self._known(token)
        if known is not None:
            return known
        if self._is_builtin(token):
            return self._decode_builtin(token)
        self._check_external_accepted()
        key = self._key_set.known_key(_key_id(token)) if self._key_set else None
        return self._decode(token, key)

    def _is_builtin(self, token: str) -> bool:
        if self._builtin_key is None:
            return False
        try:
            return bool(jwt.get_unverified_header(token).get("kid") == BUILTIN_KEY_ID)
        except _TOKEN_ERRORS as exc:
            raise NotAuthorizedException("Invalid token") from exc

    def _check_external_accepted(self) -> None:
        if not self._accept_external:
            raise NotAuthorizedException("Invalid token: only this service's tokens are accepted")

    def _decode_builtin(self, token: str) -> Principal:
        """The service's own access token: the same claims, its own key, issuer and `sid`."""
        assert self._builtin_key is not None  # only called when `_is_builtin`
        try:
            claims = jwt.decode(
                token,
                key=self._builtin_key,
                algorithms=["HS256"],
                issuer=BUILTIN_ISSUER,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "sid", "iss"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise NotAuthorizedException("Token expired") from exc
        except _TOKEN_ERRORS as exc:
            raise NotAuthorizedException("Invalid token") from exc
        session = claims.get("sid")
        if not isinstance(session, str) or not 0 < len(session) <= 64:
            raise NotAuthorizedException("Invalid token")
        principal = replace(
            self.principal_from_claims(claims), auth_method="builtin", session_id=session
        )
        self._remember(token, principal, claims)
        return principal

    def _known(self, token: str) -> Principal | None:
        known = self._verified.get(token)
        return known[0] if known is not None and known[1] > time.time() else None

    def _decode(self, token: str, key: jwt.PyJWK | None) -> Principal:
        s = self._settings
        required = ["exp"] if s.require_exp else []
        try:
            claims = jwt.decode(
                token,
                key=key.key if key is not None else s.secret,
                # With JWKS the key decides the algorithm; the token header only has to agree.
                algorithms=[key.algorithm_name] if key is not None else list(s.algorithms),
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
        except _TOKEN_ERRORS as exc:
            raise NotAuthorizedException("Invalid token") from exc
        principal = self.principal_from_claims(claims)
        self._remember(token, principal, claims)
        return principal

    def _remember(self, token: str, principal: Principal, claims: dict[str, Any]) -> None:
        # Kept no longer than the token lives, nor than a minute when it never expires.
        exp = claims.get("exp")
        expires = float(exp) if isinstance(exp, int | float) else time.time() + 60
        self._verified[token] = (principal, min(expires, time.time() + 3600))
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)

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
        email = email.lower() if isinstance(email, str) else None
        name = claims.get("name")
        return Principal(
            user_id=str(user_id),
            email=email if email and len(email) <= MAX_EMAIL_CHARS else None,
            tenant_id=str(tenant_id),
            role=self._role(_claim(claims, s.roles_claim)),
            name=name if isinstance(name, str) and 0 < len(name) <= _MAX_NAME_CHARS else None,
        )

    def _role(self, raw: Any) -> Role:
        names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        lowered = [n.strip().lower() for n in names if isinstance(n, str)]
        if self._settings.claims_preset == "stytch":
            return stytch_role(lowered)
        return strongest_role({n for n in lowered if n in ROLES})


def stytch_role(names: Iterable[str]) -> Role:
    """The role of a Stytch member from its lower-cased role ids."""
    return strongest_role({STYTCH_ROLES[n] for n in names if n in STYTCH_ROLES})


def strongest_role(roles: Collection[str]) -> Role:
    """The strongest of `roles`; `user` when there is none."""
    for role in ROLES:
        if role in roles:
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


def _key_id(token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except _TOKEN_ERRORS as exc:
        raise NotAuthorizedException("Invalid token") from exc
    if not isinstance(kid, str) or not kid:
        raise NotAuthorizedException("Invalid token: no key id (kid)")
    return kid


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of `Authorization: Bearer <token>`; anything else is a 401."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("Missing bearer token")
    if len(token) > _MAX_TOKEN_BYTES:
        raise NotAuthorizedException("Invalid token")
    return token


def presented_credential(headers: Mapping[str, str]) -> str:
    """A bearer token, or an API key sent as `X-API-Key` when there is no `Authorization`."""
    if "authorization" in headers or "x-api-key" not in headers:
        return bearer_token(headers)
    key = headers["x-api-key"].strip()
    if not key.startswith(API_KEY_PREFIX) or len(key) > _MAX_TOKEN_BYTES:
        raise NotAuthorizedException("Invalid API key")
    return key


def credential_headers(scope: Scope) -> dict[str, str]:
    """The headers a credential may come in, read from the raw request: Litestar's `Headers`
    decode every header of the request, which cost more than the rest of authentication."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _CREDENTIAL_HEADERS:
            found.setdefault(name.decode(), value.decode("latin-1"))
    return found


_CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key"})


def check_claimed_tenant(connection: ASGIConnection[Any, Any, Any, Any], tenant_id: str) -> None:
    """Older clients send `tenantId` in the query; every value sent must be the token's."""
    query = connection.scope.get("query_string", b"")
    if b"tenantId" not in query and b"%" not in query:  # the name cannot be there
        return
    if any(value != tenant_id for value in connection.query_params.getall("tenantId", [])):
        raise PermissionDeniedException("Access denied to tenant")


def authenticate_without_fetching(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The middleware's check for where it cannot run: a request that matched no route.

    Raises `KeyNotLoaded` when only a key-set fetch could decide.
    """
    runtime = connection.app.state.runtime
    credentials: IssuedCredentials | None = runtime.credentials
    token = presented_credential(connection.headers)
    if token.startswith(API_KEY_PREFIX):
        principal = _issued(credentials).known_api_key(token)
    else:
        principal = runtime.verifier.verify_without_fetching(token)
        if principal.auth_method == "builtin":
            principal = _issued(credentials).known_session(principal)
    check_claimed_tenant(connection, principal.tenant_id)
    return principal


def _issued(credentials: IssuedCredentials | None) -> IssuedCredentials:
    if credentials is None:
        raise NotAuthorizedException("Invalid token")
    return credentials


class JwtAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        runtime = connection.app.state.runtime
        credentials: IssuedCredentials | None = runtime.credentials
        token = presented_credential(credential_headers(connection.scope))
        if token.startswith(API_KEY_PREFIX):
            principal = await _issued(credentials).api_key(token)
        else:
            verifier: TokenVerifier = runtime.verifier
            principal = await verifier.verify(token)
            if principal.auth_method == "builtin":
                principal = await _issued(credentials).check_session(principal)
        check_claimed_tenant(connection, principal.tenant_id)
        if credentials is not None:
            credentials.seen(principal)
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
    _set_role(claims, settings, role)
    if email:
        claims["email"] = email
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.secret, algorithm="HS256")


def mint_builtin_token(
    settings: JwtSettings,
    key: bytes,
    *,
    tenant: str,
    user: str,
    email: str,
    role: Role,
    session_id: str,
    ttl_seconds: int,
) -> str:
    """An access token of this service's own: the configured claim layout (so it maps to a
    principal exactly as an external one does), `kid` "panels", its session family in `sid`."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user,
        "iat": now,
        "exp": now + ttl_seconds,
        "iss": BUILTIN_ISSUER,
        "sid": session_id,
    }
    _set_claim(claims, settings.user_claim, user)
    _set_claim(claims, settings.email_claim, email)
    _set_claim(claims, settings.tenant_claim, tenant)
    _set_role(claims, settings, role)
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": BUILTIN_KEY_ID})


def _set_role(claims: dict[str, Any], settings: JwtSettings, role: Role) -> None:
    """The role in the configured layout (the Stytch preset names roles as Stytch does)."""
    if settings.claims_preset == "stytch":
        stytch_role = {"admin": "Panels Admin", "builder": "Panels Builder", "user": "Member"}
        _set_claim(claims, settings.roles_claim, [stytch_role[role]])
    else:
        _set_claim(claims, settings.roles_claim, [role])


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
