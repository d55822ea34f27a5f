"""OpenAPI: the bearer scheme, the shared error responses and the descriptions of choices
the wire contract leaves open."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import ResponseHeader
from litestar.enums import ParamType
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin
from litestar.openapi.spec import (
    Components,
    Contact,
    Parameter,
    Schema,
    SecurityScheme,
    Tag,
)
from litestar.openapi.spec.enums import OpenAPIType

from panels.platform.errors import ErrorBody
from panels.platform.schemas import MAX_ID

BEARER = "BearerToken"
_MEANINGS = {
    400: "Invalid input; `details` names each offending field.",
    401: "Missing, malformed, wrongly signed or expired bearer token.",
    403: "Not permitted (or a `tenantId` other than the token's).",
    404: "No such resource in the caller's tenant.",
    409: "Conflicts with the current state (or an Idempotency-Key reused with another body).",
    412: "`If-Match` no longer matches the resource's ETag.",
    413: "Request body larger than the configured limit.",
    415: "Unsupported content type.",
    429: "Rate limited; see the `RateLimit-*` and `Retry-After` headers.",
    503: "Not ready: the database is unreachable.",
}
_DESCRIPTION = """
Multi-tenant panels management: cohort rules, data sources, columns and saved views, with a
change history.

Every `/api` route needs `Authorization: Bearer <JWT>`; tenant, user and role come only from
the token. Errors always have the body `{statusCode, error, message, requestId, details?}`.

Choices this service makes where the contract is silent:
- `GET /api/panels` sorts `createdAt`/`updatedAt` newest first and `name` A→Z unless
  `direction` is given; ties break on id.
- A `PUT` that changes nothing returns the resource unchanged and records no change.
- A POST repeated with the same `Idempotency-Key` (1 to 255 visible ASCII characters) and body
  within 24 hours returns the first response with `Idempotent-Replayed: true`; only successful
  (2xx) responses are remembered, so a failed attempt may be retried with the same key.
- Every `GET` (lists included) sends a strong `ETag` and answers `If-None-Match` (weak
  comparison) with 304. `If-Match` on `PUT`/`DELETE` compares strong ETags exactly (`*`
  matches any current version), after the permission checks: a caller who may not change the
  resource gets 403/404, never 412. It compares the ETag of the resource's own `GET` (for
  `PUT …/sorts` and `…/filters`, of `GET …/sorts` and `…/filters`); columns, data sources and
  grants have no `GET` of their own, so theirs is the ETag their last `POST` or `PUT` returned.
- `/api` responses carry `Cache-Control: private, no-cache`: clients revalidate with the ETag.
- Authentication comes first on every `/api` path, including paths that match no route (an id
  that is not a number, a typo): without a valid token the answer is 401, never 404 or 405.
- With `JWT_JWKS_URL` the token's `kid` selects the key and the key decides the algorithm
  (its `alg`, else what its `kty`/`crv` imply); HS* tokens are refused. An unknown `kid` is a
  401; the key set is fetched again at most once a minute for unknown ids (and every five
  minutes anyway), so a freshly rotated key may be refused for up to a minute.
- JSON bodies: valid UTF-8 (else 400 on `body`); nesting counts the body itself as level 1, and
  brackets inside strings do not count. Free-form values (such as `metadata` and
  `defaultValue`) have tighter limits of their own: 16 levels and 10,000 values each.
- Query strings: only list-typed parameters (`ids`, `tags`) may repeat; any other parameter
  sent twice is a 400 naming `query.<name>`. `tenantId` may repeat, and every value must be
  the token's tenant (else 403). A parameter a route does not read, sent once, is ignored.
- Ids are ASCII digits only (`²`, `٣`, `+3` or `0_3` are not ids), 1 to 2^63-1: in a query
  value anything else is a 400 naming the parameter; in a path, a 404 (the path names no
  resource), and digits out of range a 400. `since` is ASCII ISO-8601. A NUL in any header
  value is a 400 naming `header.<name>`.
"""


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """The standard error body for each status, always including 401 and 429."""
    return {
        code: ResponseSpec(
            data_container=ErrorBody, description=_MEANINGS[code], generate_examples=False
        )
        for code in sorted({401, 429, *codes})
    }


_HEADERS = {
    "ETag": "Strong ETag of the representation; send it back in If-None-Match or If-Match.",
    "x-cache": "HIT when served from the cache, MISS when read from the database.",
    "X-Total-Count": "How many items match, before paging.",
    "Location": "Where the created resource lives.",
}
POST_CODES = (400, 403, 404, 409, 413, 415)
"""What any POST under /api may answer (409: an Idempotency-Key reused with another body)."""


def documented_headers(*names: str) -> list[ResponseHeader]:
    """Response headers the handlers set themselves, for the OpenAPI document only."""
    return [
        ResponseHeader(name=name, description=_HEADERS[name], documentation_only=True)
        for name in names
    ]


IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    description="Repeat-safe POST: the same key and body within 24 h returns the first response.",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255),
)


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Panels API",
        version=version,
        description=_DESCRIPTION.strip(),
        contact=Contact(name="Panels team"),
        path="/schema",
        render_plugins=[JsonRenderPlugin(), ScalarRenderPlugin()],
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description=(
                        "A JWT with `sub`, `tenant_id` and optional `roles`, `email` (from the "
                        "identity provider or `POST /api/auth/login`), or an API key `pk_…` "
                        "(also accepted as `X-API-Key`)."
                    ),
                )
            }
        ),
        tags=[
            Tag(name="Panels", description="Panels: cohort rule, metadata, lifecycle."),
            Tag(name="Data sources", description="Where a panel's rows come from."),
            Tag(name="Columns", description="Base and calculated columns of a panel."),
            Tag(name="Views", description="Saved views: visible columns, sorts, filters."),
            Tag(name="Rows", description="A panel's data: pages of rows and CSV export."),
            Tag(name="Changes", description="The change history of panels."),
            Tag(name="Sharing", description="Grants: viewer < editor < owner, per user or `_all`."),
            Tag(name="Notifications", description="What changes did to the caller's views."),
            Tag(
                name="Identity",
                description="Built-in users and sessions, API keys, the audit list, members.",
            ),
            Tag(name="Health", description="Liveness, readiness and metrics (no token)."),
        ],
        use_handler_docstrings=True,
    )


def finish_schema(schema: Any) -> None:
    """What the generated document cannot say by itself, said once for every route.

    Every POST under /api takes an Idempotency-Key (so every one documents 409, see
    `POST_ERRORS`); 64-bit bounds are written as integers, not as floats that round past the
    largest id; an optional list in the query is absent or a list, never `null` (`?tags=null`
    is the tag "null", whereas `?panelId=null` does read as absent).
    """
    for path, item in (schema.paths or {}).items():
        for operation in (item.get, item.put, item.post, item.delete):
            for parameter in (operation.parameters or []) if operation else []:
                if parameter.param_in == ParamType.QUERY:
                    parameter.schema = _list_without_null(parameter.schema)
                _exact_bounds(parameter.schema)
        # Idempotency keys are per user: routes without a token (login, refresh) take none.
        if path.startswith("/api/") and item.post is not None and item.post.security:
            item.post.parameters = [*(item.post.parameters or []), IDEMPOTENCY_KEY]


def _list_without_null(parameter_schema: Any) -> Any:
    options = getattr(parameter_schema, "one_of", None) or []
    kept = [o for o in options if getattr(o, "type", None) != OpenAPIType.NULL]
    if len(options) == 2 and len(kept) == 1 and kept[0].type == OpenAPIType.ARRAY:
        kept[0].description = kept[0].description or parameter_schema.description
        return kept[0]
    return parameter_schema


def _exact_bounds(parameter_schema: Any) -> None:
    for bound in ("maximum", "exclusive_maximum"):
        value = getattr(parameter_schema, bound, None)
        if isinstance(value, float) and value >= 2**63 - 1024:
            setattr(parameter_schema, bound, MAX_ID)
