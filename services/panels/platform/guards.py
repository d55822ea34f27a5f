"""Checks on the raw request that come before any parsing: content type and NUL bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException

from panels.platform.errors import BadRequest

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def request_shape_middleware(app: ASGIApp) -> ASGIApp:
    """415 for a body that is not JSON; 400 for NUL anywhere in the query string.

    PostgreSQL text cannot hold NUL, so refusing it here keeps driver errors out of every
    route at once. A route that takes other media types lists them in `opt["media_types"]`.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            if b"%00" in scope.get("query_string", b"").lower():
                raise BadRequest("query", "must not contain NUL characters")
            if scope["method"] in _BODY_METHODS and _has_body(scope):
                accepted = scope["route_handler"].opt.get("media_types", ("application/json",))
                if _media_type(scope) not in accepted and not _media_type(scope).endswith("+json"):
                    raise HTTPException(
                        status_code=415,
                        detail=f"Content-Type must be one of: {', '.join(accepted)}",
                    )
        await app(scope, receive, send)

    return middleware


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


def _media_type(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""
