"""JSON responses with strong ETags, conditional requests and the `x-cache` header."""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_304_NOT_MODIFIED

from panels.platform.errors import PreconditionFailed

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description="The resource's strong ETag as last read: a changed resource is a 412.",
    ),
]
"""The header every `PUT`/`DELETE` of a resource takes; pass it to `check_if_match`."""


@dataclass(frozen=True, slots=True)
class JsonBody:
    """An encoded representation, and whether it came from the cache."""

    content: bytes
    cache_hit: bool | None = None
    total: int | None = None

    @property
    def etag(self) -> str:
        return etag_of(self.content)


# Dict keys sorted: a representation written by a POST/PUT is byte for byte what a later GET
# returns (PostgreSQL's jsonb reorders object keys), so their ETags agree.
_ENCODER = msgspec.json.Encoder(order="deterministic")


def encode_json(value: Any) -> bytes:
    return _ENCODER.encode(value)


def encoded(value: Any) -> JsonBody:
    return JsonBody(encode_json(value))


def etag_of(content: bytes) -> str:
    return f'"{blake2b(content, digest_size=16).hexdigest()}"'


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def json_response(
    request: Request[Any, Any, Any],
    body: JsonBody,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """Send `body` with its ETag; a GET whose `If-None-Match` still matches gets a 304."""
    out = dict(headers or {})
    if body.cache_hit is not None:
        out["x-cache"] = "HIT" if body.cache_hit else "MISS"
    if body.total is not None:
        out["x-total-count"] = str(body.total)
    etag = out["etag"] = body.etag
    if_none_match = request.headers.get("if-none-match") if request.method == "GET" else None
    if if_none_match and (if_none_match.strip() == "*" or etag in _tags(if_none_match)):
        return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=out)
    return Response(
        content=body.content, status_code=status_code, media_type=MediaType.JSON, headers=out
    )


def check_if_match(if_match: str | None, current_etag: str) -> None:
    """`If-Match` compares strong ETags exactly; absent means unconditional."""
    if if_match is None or not if_match.strip():
        return
    tags = [t.strip() for t in if_match.split(",") if t.strip()]
    if "*" in tags or current_etag in tags:
        return
    raise PreconditionFailed("The resource has changed since it was read (If-Match failed)")
