"""One error body for every failure, the framework's own included.

`{"statusCode", "error", "message", "requestId", "details"?}`: no stack trace, SQL text or
driver message ever reaches a client; unexpected errors are logged with their traceback.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import msgspec
import structlog
from advanced_alchemy.exceptions import DuplicateKeyError, NotFoundError
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)

from panels.platform.auth import authenticate_without_fetching
from panels.platform.jwks import KeyNotLoaded
from panels.platform.observability import request_id
from panels.platform.schemas import CamelStruct

log = structlog.get_logger("panels.errors")
_MISSING_FIELD = re.compile(r"^Object missing required field `([^`]+)`$")
_OWN_PATH = re.compile(r"^([A-Za-z_][\w.\[\]-]*): (.+)$", re.DOTALL)


class ErrorDetail(CamelStruct):
    field: str
    message: str


class ErrorBody(CamelStruct, omit_defaults=True):
    status_code: int
    error: str
    message: str
    request_id: str
    details: list[ErrorDetail] | None = None


class NotFound(NotFoundException):
    """The resource does not exist for the caller (missing, or another tenant's)."""


class Forbidden(PermissionDeniedException):
    """The caller can see the resource but may not do this to it."""


class Conflict(ClientException):
    status_code = HTTPStatus.CONFLICT


class PreconditionFailed(ClientException):
    status_code = HTTPStatus.PRECONDITION_FAILED


class BadRequest(ValidationException):
    """A 400 about one field: `BadRequest("body.name", "must not be blank")`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            detail=f"{field}: {message}", extra=[{"key": field, "message": message, "source": ""}]
        )


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = ErrorBody(
        status_code=status,
        error=HTTPStatus(status).phrase,
        message=message,
        request_id=request_id(request.scope),
        details=details,
    )
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _validation_details(exc: ValidationException) -> list[ErrorDetail]:
    details = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        raw_source = item.get("source") or ""
        # Litestar names parameters by their Python names and sources by enum members; the
        # wire names are camelCase (`query.changeType`), and "data" is the body itself.
        source = str(getattr(raw_source, "value", raw_source))
        key = str(item.get("key") or "")
        key = _camel(key) if source in ("query", "path", "header", "cookie") else key
        key = "" if key == "data" else key
        message = str(item.get("message", "invalid"))
        if message == "'data'":  # the body was required but absent
            source, message = "body", "a JSON body is required"
        # Our own checks (struct __post_init__) name the field they refuse: "value: …".
        own = _OWN_PATH.match(message)
        missing = _MISSING_FIELD.match(message)
        if own is not None:
            path, message = own.groups()
            key = f"{key}.{path}" if key else path
        elif missing is not None:
            key = f"{key}.{missing.group(1)}" if key else missing.group(1)
            message = "is required"
        field = f"{source}.{key}" if source and key else key or source or "request"
        details.append(ErrorDetail(field=field, message=message))
    return details


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    exc = _authentication_first(request, exc)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        details = _validation_details(exc)
        message = "; ".join(f"{d.field}: {d.message}" for d in details) if details else exc.detail
        return error_response(request, 400, message or "Invalid request", details, headers)
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", "Bearer")
    if status >= 500:
        log.error("server error", status=status, detail=exc.detail)
        return error_response(request, status, HTTPStatus(status).phrase, headers=headers)
    return error_response(request, status, exc.detail or HTTPStatus(status).phrase, None, headers)


def _authentication_first(request: Request[Any, Any, Any], exc: HTTPException) -> HTTPException:
    """A 404/405 from routing (a malformed path id, say) comes after authentication too.

    Routing fails before any route middleware runs, so the token is checked here: a request
    without a valid one is a 401 whatever its path. A token whose key set would first have to
    be fetched cannot be checked without I/O here; it keeps the 404.
    """
    unrouted = request.scope.get("route_handler") is None and exc.status_code in (404, 405)
    if not unrouted or not request.scope["path"].startswith("/api/"):
        return exc
    try:
        authenticate_without_fetching(request)
    except (NotAuthorizedException, PermissionDeniedException) as refused:
        return refused
    except KeyNotLoaded:
        pass
    return exc


def handle_not_found(request: Request[Any, Any, Any], exc: NotFoundError) -> Response[bytes]:
    return error_response(request, 404, "Not found")


def handle_duplicate(request: Request[Any, Any, Any], exc: DuplicateKeyError) -> Response[bytes]:
    return error_response(request, 409, "A resource with these values already exists")


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", path=request.url.path)
    return error_response(request, 500, "Internal Server Error")


exception_handlers: dict[Any, Any] = {
    HTTPException: handle_http_exception,
    NotFoundError: handle_not_found,
    DuplicateKeyError: handle_duplicate,
    Exception: handle_unexpected,
}
