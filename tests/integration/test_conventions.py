"""API.md's Conventions as they apply to panels: auth, errors, request ids, ETags, limits."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.settings import Settings
from tests.conftest import TEST_SECRET, Caller

Client = AsyncTestClient[Litestar]
ERROR_KEYS = {"statusCode", "error", "message", "requestId"}


def signed(claims: dict[str, Any], secret: str = TEST_SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


def base_claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "u1", "tenant_id": "t-auth", "exp": now + 300, "iat": now, **extra}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not.a.jwt"},
        signed(base_claims(), secret="another-secret-that-is-also-long-enough-123"),
        signed(base_claims(exp=int(time.time()) - 3600)),
        signed(base_claims(nbf=int(time.time()) + 3600)),
        signed({k: v for k, v in base_claims().items() if k != "exp"}),
        signed({k: v for k, v in base_claims().items() if k != "tenant_id"}),
        signed({k: v for k, v in base_claims().items() if k != "sub"}),
        {"Authorization": "Bearer " + "a" * 9000},
    ],
)
async def test_bad_tokens_are_401_with_the_error_body(
    client: Client, headers: dict[str, str]
) -> None:
    response = await client.get("/api/panels", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body.keys() >= ERROR_KEYS
    assert body["statusCode"] == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_alg_none_is_refused(client: Client) -> None:
    token = jwt.encode(base_claims(), key=None, algorithm="none")
    response = await client.get("/api/panels", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_authentication_comes_before_validation(client: Client) -> None:
    response = await client.post(
        "/api/panels", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401
    response = await client.get("/api/panels", params={"limit": -5})
    assert response.status_code == 401


async def test_roles_claim_may_be_a_single_string(client: Client) -> None:
    response = await client.post(
        "/api/panels", json={}, headers=signed(base_claims(roles="builder"))
    )
    assert response.status_code == 201
    response = await client.post(
        "/api/panels", json={}, headers=signed(base_claims(roles=["viewer"]))
    )
    assert response.status_code == 403


async def test_error_body_on_framework_errors(client: Client, builder: Caller) -> None:
    not_found = await client.get("/api/nothing-here", headers=builder.headers)
    assert not_found.status_code == 404
    assert not_found.json().keys() >= ERROR_KEYS
    wrong_method = await client.patch("/api/panels", headers=builder.headers)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["statusCode"] == 405
    bad_json = await client.post(
        "/api/panels",
        content=b'{"name": ',
        headers={**builder.headers, "content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert bad_json.json().keys() >= ERROR_KEYS
    for response in (not_found, wrong_method, bad_json):
        assert "Traceback" not in response.text
        assert response.headers["content-type"].startswith("application/json")


async def test_body_too_large_is_413(client: Client, builder: Caller, settings: Settings) -> None:
    big = b'{"name": "x", "metadata": {"blob": "' + b"a" * settings.max_body_bytes + b'"}}'
    response = await client.post(
        "/api/panels", content=big, headers={**builder.headers, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["statusCode"] == 413


async def test_request_id_is_kept_or_made(client: Client, builder: Caller) -> None:
    kept = await client.get(
        "/api/panels", headers={**builder.headers, "X-Request-ID": "abc.DEF-123_x"}
    )
    assert kept.headers["x-request-id"] == "abc.DEF-123_x"
    replaced = await client.get(
        "/api/panels", headers={**builder.headers, "X-Request-ID": "bad id!"}
    )
    assert replaced.headers["x-request-id"] != "bad id!"
    assert len(replaced.headers["x-request-id"]) == 32
    error = await client.get(
        "/api/panels/0", headers={**builder.headers, "X-Request-ID": "trace-1"}
    )
    assert error.headers["x-request-id"] == "trace-1"
    assert error.json()["requestId"] == "trace-1"
    unrouted = await client.get("/nowhere", headers={"X-Request-ID": "trace-2"})
    assert unrouted.headers["x-request-id"] == "trace-2"


async def test_security_headers(client: Client, builder: Caller) -> None:
    response = await client.get("/api/panels", headers=builder.headers)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_etag_and_if_none_match(client: Client, builder: Caller, create_panel: Any) -> None:
    panel = await create_panel(builder)
    url = f"/api/panels/{panel['id']}"
    first = await client.get(url, headers=builder.headers)
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    again = await client.get(url, headers={**builder.headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert (
        await client.get(url, headers={**builder.headers, "If-None-Match": f"W/{etag}"})
    ).status_code == 304
    assert (
        await client.get(url, headers={**builder.headers, "If-None-Match": '"other"'})
    ).status_code == 200
    await client.put(url, json={"name": "changed"}, headers=builder.headers)
    changed = await client.get(url, headers={**builder.headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_if_match_guards_put_and_delete(
    client: Client, builder: Caller, create_panel: Any
) -> None:
    panel = await create_panel(builder)
    url = f"/api/panels/{panel['id']}"
    etag = (await client.get(url, headers=builder.headers)).headers["etag"]
    updated = await client.put(
        url, json={"name": "v2"}, headers={**builder.headers, "If-Match": etag}
    )
    assert updated.status_code == 200
    new_etag = updated.headers["etag"]
    stale = await client.put(
        url, json={"name": "v3"}, headers={**builder.headers, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["statusCode"] == 412
    weak = await client.put(
        url, json={"name": "v3"}, headers={**builder.headers, "If-Match": f"W/{new_etag}"}
    )
    assert weak.status_code == 412
    assert (
        await client.delete(url, headers={**builder.headers, "If-Match": etag})
    ).status_code == 412
    assert (await client.get(url, headers=builder.headers)).json()["name"] == "v2"
    assert (
        await client.delete(url, headers={**builder.headers, "If-Match": new_etag})
    ).status_code == 204


async def test_large_responses_are_gzipped(
    client: Client, builder: Caller, create_panel: Any
) -> None:
    for index in range(8):
        await create_panel(builder, name=f"Panel {index}", description="d" * 200)
    response = await client.get(
        "/api/panels", headers={**builder.headers, "Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == "gzip"
    assert len(response.json()) == 8


async def test_openapi_declares_bearer_and_idempotency(client: Client) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    post = spec["paths"]["/api/panels"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert {"400", "401", "403", "429"} <= post["responses"].keys()
    for path, item in spec["paths"].items():
        for operation in item.values():
            assert operation.get("summary"), path
            assert operation.get("tags"), path
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


async def test_non_json_bodies_are_415(client: Client, builder: Caller) -> None:
    for content_type in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
        response = await client.post(
            "/api/panels",
            content=b'{"name": "x"}',
            headers={**builder.headers, "content-type": content_type},
        )
        assert response.status_code == 415, content_type
        assert response.json()["statusCode"] == 415
    ok = await client.post(
        "/api/panels",
        content=b'{"name": "x"}',
        headers={**builder.headers, "content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201
    assert (await client.get("/api/panels", headers=builder.headers)).headers[
        "x-total-count"
    ] == "1"


async def test_nul_in_the_query_string_is_400(client: Client, builder: Caller) -> None:
    response = await client.get("/api/panels?q=a%00b", headers=builder.headers)
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "query"


async def test_parameter_errors_name_the_wire_field(client: Client, builder: Caller) -> None:
    limit = await client.get("/api/panels", params={"limit": 0}, headers=builder.headers)
    assert limit.json()["details"][0]["field"] == "query.limit"
    kind = await client.get(
        "/api/changes/panels", params={"changeType": "x"}, headers=builder.headers
    )
    assert kind.json()["details"][0]["field"] == "query.changeType"
    path = await client.get("/api/panels/0", headers=builder.headers)
    assert path.json()["details"][0]["field"] == "path.panelId"
    empty = await client.post("/api/panels", headers=builder.headers)
    assert empty.status_code == 400
    assert empty.json()["details"] == [{"field": "body", "message": "a JSON body is required"}]
    array = await client.post("/api/panels", json=[], headers=builder.headers)
    assert array.json()["details"][0]["field"] == "body"


async def test_written_and_read_representations_share_an_etag(
    client: Client, builder: Caller
) -> None:
    created = await client.post(
        "/api/panels",
        json={"name": "e", "metadata": {"team": "x", "keep": 1, "a": {"z": 1, "b": 2}}},
        headers=builder.headers,
    )
    url = created.headers["location"]
    read = await client.get(url, headers=builder.headers)
    assert read.headers["etag"] == created.headers["etag"]
    assert read.content == created.content
    assert (
        await client.get(url, headers={**builder.headers, "If-None-Match": created.headers["etag"]})
    ).status_code == 304
    updated = await client.put(
        url,
        json={"metadata": {"zz": 1}},
        headers={**builder.headers, "If-Match": created.headers["etag"]},
    )
    assert updated.status_code == 200
    assert (await client.get(url, headers=builder.headers)).headers["etag"] == updated.headers[
        "etag"
    ]
    unconditional = await client.put(
        url, json={"name": "f"}, headers={**builder.headers, "If-Match": ""}
    )
    assert unconditional.status_code == 200
