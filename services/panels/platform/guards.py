"""Checks on the raw request that come before any parsing.

They run as route middleware, after authentication (a request without a valid token is a 401
whatever else is wrong with it) and before the framework decodes the query or the body:

- NUL in the query string or in any header value: 400 (PostgreSQL text cannot hold NUL);
- a path id that is not ASCII digits: 404, as for any other path that names no resource (the
  router reads ids with `int`, which takes `٣` for 3 and `1_0` for 10);
- a scalar query parameter sent twice: 400 (`tenantId` is checked by authentication, where any
  value other than the token's tenant is a 403);
- a body that is not JSON: 415; a JSON body that is not UTF-8 or is nested deeper than
  `MAX_BODY_DEPTH`: 400, decided on the raw bytes, because the decoder itself fails on both
  with errors that are not client errors (an invalid byte raises UnicodeDecodeError, deep
  nesting a RecursionError).
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import accumulate
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException

from panels.platform.errors import BadRequest, NotFound

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
    from litestar.types import ASGIApp, Receive, Scope, Send

MAX_BODY_DEPTH = 32
"""Arrays and objects nested in one another, counting the body itself as level 1."""

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_SENT_ONCE_EXCEPTIONS = frozenset({"tenantId"})
# A JSON string, escapes included; an unterminated one runs to the end of the body, so the
# scan never backtracks over the rest of the text (the decoder refuses such a body anyway).
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [0] * 256
_DEPTH_STEP[ord("[")] = _DEPTH_STEP[ord("{")] = 1
_DEPTH_STEP[ord("]")] = _DEPTH_STEP[ord("}")] = -1
_REPEATABLE: dict[BaseRouteHandler, frozenset[str]] = {}


def request_shape_middleware(app: ASGIApp) -> ASGIApp:
    """The checks of this module, in the order a client would fix them.

    A route that takes other media types than JSON lists them in `opt["media_types"]`.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            check_headers(scope.get("headers", ()))
            check_path_ids(scope["path_template"], scope["path"], scope["path_params"])
            check_query(scope.get("query_string", b""), repeatable_query(scope["route_handler"]))
            if scope["method"] in _BODY_METHODS and _has_body(scope):
                media_type = _media_type(scope)
                accepted = scope["route_handler"].opt.get("media_types", ("application/json",))
                if media_type not in accepted and not media_type.endswith("+json"):
                    raise HTTPException(
                        status_code=415,
                        detail=f"Content-Type must be one of: {', '.join(accepted)}",
                    )
                if media_type == "application/json" or media_type.endswith("+json"):
                    handler: HTTPRouteHandler = scope["route_handler"]  # type: ignore[assignment]
                    body = await read_body(receive, handler.resolve_request_max_body_size())
                    check_json_body(body)
                    receive = replaying(body, receive)
        await app(scope, receive, send)

    return middleware


def check_headers(headers: Any) -> None:
    for name, value in headers:
        if b"\x00" in value:
            field = name.decode("latin-1")
            raise BadRequest(f"header.{field}", "must not contain NUL characters")


def check_path_ids(template: str, path: str, params: dict[str, Any]) -> None:
    for pattern, segment in zip(template.split("/"), path.split("/"), strict=False):
        is_id = pattern.startswith("{") and type(params.get(pattern[1:-1])) is int
        if is_id and not (segment.isascii() and segment.isdigit()):
            raise NotFound("Not Found")


def check_query(query_string: bytes, repeatable: frozenset[str]) -> None:
    """NUL anywhere, or a scalar parameter sent more than once, is a 400."""
    if b"%00" in query_string.lower() or b"\x00" in query_string:
        raise BadRequest("query", "must not contain NUL characters")
    names = Counter(
        name for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    )
    for name, count in names.items():
        if count > 1 and name not in repeatable and name not in _SENT_ONCE_EXCEPTIONS:
            raise BadRequest(f"query.{name}", "must be sent once")


def repeatable_query(handler: BaseRouteHandler) -> frozenset[str]:
    """The query parameters the handler takes as lists (`?ids=1&ids=2`)."""
    names = _REPEATABLE.get(handler)
    if names is None:
        names = _REPEATABLE[handler] = frozenset(
            getattr(field.kwarg_definition, "query", None) or name
            for name, field in handler.parsed_fn_signature.parameters.items()
            if any(f.is_non_string_sequence for f in (field, *field.inner_types))
        )
    return names


def check_json_body(body: bytes) -> None:
    """UTF-8, and no deeper than `MAX_BODY_DEPTH`, judged without decoding the JSON."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("body", f"is not valid UTF-8 (byte {exc.start})") from None
    if nested_deeper_than(body, MAX_BODY_DEPTH):
        raise BadRequest("body", f"is nested deeper than {MAX_BODY_DEPTH} levels")


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep, brackets in strings aside.

    Linear in the body's length. For a body that is not JSON the answer means little, and the
    decoder refuses that body afterwards.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    return max(accumulate(_DEPTH_STEP[b] for b in brackets)) > limit


async def read_body(receive: Receive, limit: int | None) -> bytes:
    """The whole request body, or a 413 as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise HTTPException(status_code=413, detail="Request body is too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the application the body already read, then carries on."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


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
