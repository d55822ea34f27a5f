"""The members list: built-in users and verified callers, or Stytch's member search."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio.to_thread
import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.app import create_app
from panels.platform.auth import Principal
from tests.conftest import TEST_SECRET, Caller, CallerFactory, Services, build_settings
from tests.integration.identity_helpers import add_user, bearer, login

Client = AsyncTestClient[Litestar]


async def flush_on_app(client: Client) -> None:
    credentials = client.app.state.runtime.credentials
    await anyio.to_thread.run_sync(client.blocking_portal.call, credentials.flush)


async def test_members_are_built_in_users_and_verified_callers(
    client: Client, admin: Caller, make_caller: CallerFactory
) -> None:
    zed = await add_user(client, admin, email="zed@example.com")
    gone = await add_user(client, admin, email="gone@example.com")
    caller = make_caller("ext-1", "user", email="bea@example.com")
    named = jwt.encode(
        {**jwt.decode(caller.token, options={"verify_signature": False}), "name": "Bea Smith"},
        TEST_SECRET,
    )
    callers = [named, (await login(client, zed.email))["accessToken"]]
    callers.append((await login(client, gone.email))["accessToken"])
    for token in callers:
        assert (await client.get("/api/panels", headers=bearer(token))).status_code == 200
    key = await client.post(
        "/api/api-keys", json={"name": "k", "role": "user"}, headers=admin.headers
    )
    assert (await client.get("/api/panels", headers=bearer(key.json()["key"]))).status_code == 200
    # Deleted before what its call noted is written: it must not come back as a member.
    await client.delete(f"/api/users/{gone.id}", headers=admin.headers)
    await flush_on_app(client)

    listed = await client.get("/api/organization/members", headers=caller.headers)
    assert listed.status_code == 200, listed.text
    members = listed.json()
    assert [(m["member_id"], m["email_address"]) for m in members["members"]] == [
        (admin.user, admin.email),
        ("ext-1", "bea@example.com"),
        (str(zed.id), "zed@example.com"),
    ]
    assert members["total"] == 3
    paged = await client.get(
        "/api/organization/members", params={"limit": 1, "offset": 1}, headers=caller.headers
    )
    assert paged.json() == {"members": [members["members"][1]], "total": 3}
    past_the_end = await client.get(
        "/api/organization/members", params={"limit": 2, "offset": 5}, headers=caller.headers
    )
    assert past_the_end.json() == {"members": [], "total": 3}
    bea = members["members"][1]
    assert bea["name"] == "Bea Smith"
    assert bea["last_seen_at"] is not None
    found = await client.get(
        "/api/organization/members", params={"q": "SMITH"}, headers=caller.headers
    )
    assert [m["member_id"] for m in found.json()["members"]] == ["ext-1"]
    for q in ("%", "_"):
        none = await client.get(
            "/api/organization/members", params={"q": q}, headers=caller.headers
        )
        assert none.json() == {"members": [], "total": 0}


class _StytchStandIn(BaseHTTPRequestHandler):
    searches: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).searches.append(
            {"path": self.path, "auth": self.headers["Authorization"], **body}
        )
        members = [
            {
                "member_id": "member-live-2",
                "email_address": "zoe@example.com",
                "name": "Zoe",
                "roles": [{"role_id": "Panels Admin"}],
            },
            {
                "member_id": "member-live-1",
                "email_address": "amy@example.com",
                "name": "",
                "roles": [],
            },
        ]
        # As Stytch: the first `limit` members in its own order (not by email).
        found = {"members": members[: body["limit"]], "results_metadata": {"total": 2}}
        payload = json.dumps(found).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def stytch() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StytchStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def stytch_client(services: Services, stytch: str) -> AsyncIterator[Client]:
    settings = build_settings(
        services,
        STYTCH_PROJECT_ID="project-test-1",
        STYTCH_SECRET="secret-1",
        STYTCH_API_URL=stytch,
    )
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        yield client


async def test_members_come_from_stytch_when_configured(
    stytch_client: Client, member: Caller
) -> None:
    _StytchStandIn.searches.clear()
    listed = await stytch_client.get(
        "/api/organization/members", params={"q": "example"}, headers=member.headers
    )
    assert listed.status_code == 200, listed.text
    assert listed.json() == {
        "members": [
            {
                "member_id": "member-live-1",
                "email_address": "amy@example.com",
                "name": None,
                "role": "user",
                "last_seen_at": None,
            },
            {
                "member_id": "member-live-2",
                "email_address": "zoe@example.com",
                "name": "Zoe",
                "role": "admin",
                "last_seen_at": None,
            },
        ],
        "total": 2,
    }
    [search] = _StytchStandIn.searches
    assert search["path"] == "/v1/b2b/organizations/members/search"
    assert search["organization_ids"] == [member.tenant]
    assert search["auth"].startswith("Basic ")
    again = await stytch_client.get(
        "/api/organization/members", params={"q": "example"}, headers=member.headers
    )
    assert again.json() == listed.json()
    assert len(_StytchStandIn.searches) == 1  # cached briefly


async def test_stytch_members_page_through_one_order(stytch_client: Client, member: Caller) -> None:
    """Every page is a slice of one search ordered by email: each member once, none skipped
    (asking Stytch for the first offset + limit and ordering only those repeated one)."""
    emails = []
    for offset in range(3):
        page = await stytch_client.get(
            "/api/organization/members",
            params={"q": "paging", "limit": 1, "offset": offset},
            headers=member.headers,
        )
        assert page.status_code == 200, page.text
        assert page.json()["total"] == 2
        emails += [m["email_address"] for m in page.json()["members"]]
    assert emails == ["amy@example.com", "zoe@example.com"]


async def test_an_unreachable_stytch_is_503(services: Services, member: Caller) -> None:
    settings = build_settings(
        services, STYTCH_PROJECT_ID="p", STYTCH_SECRET="s", STYTCH_API_URL="http://127.0.0.1:1"
    )
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        response = await client.get("/api/organization/members", headers=member.headers)
    assert response.status_code == 503, response.text
    assert response.json()["statusCode"] == 503
    assert "127.0.0.1" not in response.text


class _MalformedStytch(BaseHTTPRequestHandler):
    payload = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.mark.parametrize(
    "reply",
    [
        {"members": [{"email_address": "no-id@example.com"}]},
        {"members": [{"member_id": 7}]},
        {"members": [{"member_id": "m-1", "email_address": {"a": 1}}]},
        {"members": [{"member_id": "m-1", "roles": "Panels Admin"}]},
        {"members": [{"member_id": "m-1", "roles": [{"role_id": None}]}]},
        {"members": {"member_id": "m-1"}},
        {"members": [], "results_metadata": {"total": "many"}},
        {"members": [], "results_metadata": []},
        [],
        "not an object",
    ],
)
async def test_a_malformed_stytch_reply_is_503(
    services: Services, member: Caller, reply: Any
) -> None:
    handler = type("Reply", (_MalformedStytch,), {"payload": json.dumps(reply).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = build_settings(
        services,
        STYTCH_PROJECT_ID="p",
        STYTCH_SECRET="s",
        STYTCH_API_URL=f"http://127.0.0.1:{server.server_address[1]}",
    )
    try:
        async with AsyncTestClient(
            app=create_app(settings), raise_server_exceptions=False
        ) as client:
            response = await client.get("/api/organization/members", headers=member.headers)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 503, response.text


async def test_two_workers_writing_the_same_members_at_once_do_not_deadlock(
    client: Client, tenant: str
) -> None:
    # Each worker notes the callers it saw, in its own order, and writes them on its own
    # clock: two writes of the same members must take their row locks in one order.
    credentials = client.app.state.runtime.credentials
    seen = [
        (Principal(f"m-{i:03}", f"m{i}@example.com", tenant, "user"), datetime.now(UTC))
        for i in range(150)
    ]

    async def both_workers() -> None:
        for _ in range(3):
            await asyncio.gather(
                credentials._write(tenant, [], seen),
                credentials._write(tenant, [], list(reversed(seen))),
            )

    await anyio.to_thread.run_sync(client.blocking_portal.call, both_workers)
