"""Hostile input over HTTP: every parser of client text answers a 4xx with the error body.

The named cases reproduce the 500s and wrong statuses of issue 9; the properties drive the app
with generated raw headers, query strings, path segments and bodies.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Caller

Client = AsyncTestClient[Litestar]
ERROR_KEYS = {"statusCode", "error", "message", "requestId"}
JSON = {"content-type": "application/json"}
hostile = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_client_error(response: Any, *statuses: int) -> dict[str, Any]:
    """No 5xx; an error has the standard body; with `statuses`, one of them exactly."""
    assert response.status_code < 500, response.text
    if statuses:
        assert response.status_code in statuses, response.text
    if response.status_code < 400:
        return {}
    body = response.json()
    assert body.keys() >= ERROR_KEYS, body
    assert body["statusCode"] == response.status_code
    assert "Traceback" not in response.text
    return dict(body)


@pytest.fixture
async def panel_id(builder: Caller, create_panel: Any) -> int:
    return int((await create_panel(builder))["id"])


async def test_a_body_nested_thousands_deep_is_a_400_naming_the_body(
    client: Client, builder: Caller, panel_id: int
) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    for path, body in [
        ("/api/panels", b'{"name":"x","cohortRule":' + deep + b"}"),
        ("/api/panels", deep),
        (f"/api/panels/{panel_id}/columns/base", b'{"name":"x","metadata":' + deep + b"}"),
        ("/api/views", b'{"a":' * 3000 + b"1" + b"}" * 3000),
    ]:
        response = await client.post(path, content=body, headers={**builder.headers, **JSON})
        error = assert_client_error(response, 400)
        assert error["details"] == [{"field": "body", "message": "is nested deeper than 32 levels"}]


async def test_nesting_up_to_32_levels_is_accepted(client: Client, builder: Caller) -> None:
    metadata = json.dumps({"k": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]})  # 16 levels in a 32-deep body
    body = b'{"name":"deep","metadata":' + metadata.encode() + b"}"
    response = await client.post("/api/panels", content=body, headers={**builder.headers, **JSON})
    assert response.status_code == 201, response.text


async def test_brackets_inside_strings_do_not_count(client: Client, builder: Caller) -> None:
    body = json.dumps({"name": "[" * 100 + '\\"{' * 50}).encode()
    response = await client.post("/api/panels", content=body, headers={**builder.headers, **JSON})
    assert response.status_code == 201, response.text


async def test_invalid_utf8_in_a_json_body_is_a_400(client: Client, builder: Caller) -> None:
    response = await client.post(
        "/api/panels", content=b'{"name":"\xff\xfe"}', headers={**builder.headers, **JSON}
    )
    error = assert_client_error(response, 400)
    assert error["details"][0]["field"] == "body"


@pytest.mark.parametrize("ids", ["%C2%B2", "%D9%A3", "1_0", "%EF%BC%91", "1,%C2%B2"])
async def test_ids_in_digits_of_other_scripts_are_a_400(
    client: Client, builder: Caller, panel_id: int, ids: str
) -> None:
    response = await client.get(
        f"/api/panels/{panel_id}/columns?ids={ids}", headers=builder.headers
    )
    error = assert_client_error(response, 400)
    assert error["details"][0]["field"] == "query.ids"


async def test_any_foreign_tenant_id_is_a_403(
    client: Client, builder: Caller, panel_id: int
) -> None:
    own = builder.tenant
    for query in (f"tenantId={own}&tenantId=other", f"tenantId=other&tenantId={own}"):
        response = await client.get(f"/api/panels/{panel_id}?{query}", headers=builder.headers)
        assert_client_error(response, 403)
    same = await client.get(f"/api/panels?tenantId={own}&tenantId={own}", headers=builder.headers)
    assert same.status_code == 200


@pytest.mark.parametrize("name", ["limit", "offset", "sort", "name"])
async def test_a_scalar_query_parameter_sent_twice_is_a_400(
    client: Client, builder: Caller, name: str
) -> None:
    response = await client.get(f"/api/panels?{name}=1&{name}=2", headers=builder.headers)
    error = assert_client_error(response, 400)
    assert error["details"][0]["field"] == f"query.{name}"


async def test_repeatable_query_parameters_stay_repeatable(
    client: Client, builder: Caller, panel_id: int
) -> None:
    response = await client.get(
        f"/api/panels/{panel_id}/columns?ids=1&ids=2&tags=a&tags=b", headers=builder.headers
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path",
    ["/api/panels/abc", "/api/panels/%C2%B2/columns", "/api/views/-1", "/api/nowhere", "/api/"],
)
@pytest.mark.parametrize("authorization", [None, "Bearer not.a.token", "Basic eA=="])
async def test_authentication_comes_before_a_malformed_path(
    client: Client, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, path, headers=headers)
        assert_client_error(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


@pytest.mark.parametrize(
    "spell",
    [
        lambda n: quote(n.translate(ARABIC_INDIC)),
        lambda n: quote(n.translate(FULLWIDTH)),
        lambda n: f"+{n}",
        lambda n: f"%20{n}",
        lambda n: f"0_{n}",
    ],
    ids=["arabic-indic", "fullwidth", "plus", "space", "underscore"],
)
async def test_a_path_id_is_ascii_digits_or_a_404(
    client: Client, builder: Caller, panel_id: int, spell: Any
) -> None:
    """`int` reads `٣` (Arabic-Indic three) as 3 and `0_3` as 3; the service does not."""
    path = f"/api/panels/{spell(str(panel_id))}"
    assert_client_error(await client.get(path, headers=builder.headers), 404)
    assert_client_error(await client.get(f"{path}/columns", headers=builder.headers), 404)
    assert_client_error(await client.get("/api/panels/abc", headers=builder.headers), 404)


@pytest.mark.parametrize(
    "header", ["X-Request-ID", "If-None-Match", "If-Match", "Idempotency-Key", "X-Anything"]
)
async def test_nul_in_any_header_is_a_400(
    client: Client, builder: Caller, panel_id: int, header: str
) -> None:
    for method in ("GET", "PUT"):
        response = await client.request(
            method,
            f"/api/panels/{panel_id}",
            headers={**builder.headers, header: "a\x00b"},
            json={"name": "n"},
        )
        error = assert_client_error(response, 400)
        assert error["details"][0]["field"] == f"header.{header.lower()}"


header_names = st.sampled_from(
    [
        *("If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID", "Authorization"),
        *("Content-Type", "Accept", "Content-Length"),
    ]
)
header_values = st.binary(max_size=60).filter(lambda v: b"\r" not in v and b"\n" not in v)
query_names = st.sampled_from(
    [
        *("ids", "tags", "limit", "offset", "sort", "direction", "name", "since", "panelId"),
        *("changeType", "isRead", "notificationType", "published", "resourceType", "tenantId"),
    ]
) | st.text(max_size=8)
query_values = st.binary(max_size=40).map(quote_from_bytes) | st.text(max_size=40).map(quote)
queries = st.lists(st.tuples(query_names, query_values), max_size=4).map(
    lambda pairs: "&".join(f"{quote(name)}={value}" for name, value in pairs)
)
GET_PATHS = [
    "/api/panels",
    "/api/panels/{panel}",
    "/api/panels/{panel}/columns",
    "/api/panels/{panel}/datasources",
    "/api/panels/{panel}/changes",
    "/api/changes/panels",
    "/api/notifications/views",
    "/api/views",
    "/api/acls/panel/{panel}",
    "/api/acls/user/someone@example.com",
]


@given(
    path=st.sampled_from(GET_PATHS),
    query=queries,
    headers=st.lists(st.tuples(header_names, header_values), max_size=3),
)
@hostile
async def test_generated_queries_and_headers_never_make_a_5xx(
    client: Client,
    builder: Caller,
    panel_id: int,
    path: str,
    query: str,
    headers: list[tuple[str, bytes]],
) -> None:
    raw_headers = [(name.encode(), value) for name, value in headers]
    raw_headers.append((b"authorization", builder.headers["Authorization"].encode()))
    url = path.format(panel=panel_id) + (f"?{query}" if query else "")
    response = await client.get(url, headers=raw_headers)
    assert_client_error(response)


segments = st.text(max_size=24).map(lambda t: quote(t, safe="")) | st.sampled_from(
    ["0", "-1", "1_0", "%C2%B2", "99999999999999999999", "1.5", "%00"]
)


@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST"]),
    segment=segments,
    template=st.sampled_from(
        [
            "/api/panels/{x}",
            "/api/panels/{x}/columns/{x}",
            "/api/panels/{x}/datasources/{x}",
            "/api/views/{x}/sorts",
            "/api/views/{x}/publish",
            "/api/acls/{x}/{x}",
            "/api/acls/panel/1/{x}",
            "/api/acls/user/{x}",
        ]
    ),
)
@hostile
async def test_generated_path_segments_never_make_a_5xx(
    client: Client, builder: Caller, method: str, segment: str, template: str
) -> None:
    path = template.format(x=segment or "x")
    response = await client.request(method, path, headers=builder.headers, json={})
    assert_client_error(response)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=20,
)
BODY_FIELDS = [
    "name", "description", "metadata", "cohortRule", "type", "config", "formula",
    "sourceField", "properties", "tags", "panelId", "visibleColumns", "sorts", "filters",
    "permission", "userEmail", "notificationIds", "tenantId", "dataSourceId", "defaultValue",
]  # fmt: skip
bodies = (
    st.dictionaries(st.sampled_from(BODY_FIELDS), json_values, max_size=5).map(
        lambda body: json.dumps(body).encode()
    )
    | st.binary(max_size=200)
    | st.text(max_size=100).map(
        lambda t: json.dumps({"name": "f", "type": "number", "formula": t}).encode()
    )
    | st.sampled_from([b'{"name":"\\ud800"}', b'{"name":"a\\u0000b"}', b'{"name":1e999}'])
)
WRITES = [
    ("POST", "/api/panels"),
    ("PUT", "/api/panels/{panel}"),
    ("POST", "/api/panels/{panel}/columns/base"),
    ("POST", "/api/panels/{panel}/columns/calculated"),
    ("POST", "/api/panels/{panel}/datasources"),
    ("POST", "/api/views"),
    ("POST", "/api/acls/panel/{panel}"),
    ("POST", "/api/acls/panel/{panel}/share-public"),
    ("PUT", "/api/notifications/views/mark-read"),
]


@given(
    write=st.sampled_from(WRITES),
    body=bodies,
    headers=st.lists(st.tuples(header_names, header_values), max_size=2),
)
@hostile
async def test_generated_bodies_and_headers_never_make_a_5xx(
    client: Client,
    builder: Caller,
    panel_id: int,
    write: tuple[str, str],
    body: bytes,
    headers: list[tuple[str, bytes]],
) -> None:
    """Writes read `If-Match` and `Idempotency-Key` too, so they get the generated headers."""
    method, path = write
    raw_headers = [(name.encode(), value) for name, value in headers]
    raw_headers += [(b"authorization", builder.headers["Authorization"].encode())]
    raw_headers += [(b"content-type", b"application/json")]
    response = await client.request(
        method, path.format(panel=panel_id), content=body, headers=raw_headers
    )
    assert_client_error(response)


async def test_query_lists_are_documented_as_lists_not_null(client: Client) -> None:
    """A query string has no null (`?tags=null` is the tag "null"): a nullable list schema made
    schemathesis' negative phase expect `?tags=false` to be refused."""
    document = (await client.get("/schema/openapi.json")).json()
    operation = document["paths"]["/api/panels/{panel_id}/columns"]["get"]
    schemas = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert schemas["ids"]["type"] == schemas["tags"]["type"] == "array"
