"""An `api` sync never reaches the service's own network when private sources are not
allowed: each redirect's target is checked again, the connection goes to the address that was
checked, and proxy variables are ignored.

The source's own host is given by a stub resolver (`source.test` → the local test server), so
the first request is made as if to a public host; the redirects it answers with are real."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from panels.platform import egress
from panels.sync.fetch import api
from panels.sync.fetch.common import FetchError
from tests.integration.sync_helpers import SourceServer

STUB_HOST = "source.test"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SourceServer]:
    running = SourceServer()
    real = egress.addresses_to_connect

    async def stub(host: str, port: int | None, *, allow_private: bool) -> list[Any]:
        if host == STUB_HOST:
            return [ipaddress.ip_address("127.0.0.1")]
        return await real(host, port, allow_private=allow_private)

    monkeypatch.setattr(api, "addresses_to_connect", stub)
    yield running
    running.close()


def _redirect(location: str) -> Any:
    return lambda _: (302, {"Location": location}, b"")


async def _records(url: str, *, allow_private: bool = False) -> list[Any]:
    found = []
    async for batch in api.fetch_api({"url": url}, allow_private=allow_private):
        found.extend(record for _, record in batch)
    return found


def _stub_url(server: SourceServer, path: str) -> str:
    return f"http://{STUB_HOST}:{server.port}{path}"


async def test_the_checked_host_is_fetched(server: SourceServer) -> None:
    server.routes["/data"] = lambda _: (200, {}, msgspec.json.encode([{"id": 1}]))
    assert await _records(_stub_url(server, "/data")) == [{"id": 1}]


@pytest.mark.parametrize("target", ["127.0.0.1", "169.254.169.254", "[::1]", "localhost"])
async def test_a_redirect_inward_is_refused(server: SourceServer, target: str) -> None:
    server.routes["/start"] = _redirect(f"http://{target}:{server.port}/data")
    server.routes["/data"] = lambda _: (200, {}, b'[{"id": "inside"}]')
    with pytest.raises(FetchError, match="not allowed"):
        await _records(_stub_url(server, "/start"))
    assert server.requests == ["/start"]


async def test_a_redirect_inward_is_followed_when_private_sources_are_allowed(
    server: SourceServer,
) -> None:
    server.routes["/start"] = _redirect(f"http://127.0.0.1:{server.port}/data")
    server.routes["/data"] = lambda _: (200, {}, b'[{"id": "inside"}]')
    assert await _records(_stub_url(server, "/start"), allow_private=True) == [{"id": "inside"}]


async def test_at_most_three_redirects(server: SourceServer) -> None:
    for hop in range(4):
        server.routes[f"/hop{hop}"] = _redirect(f"/hop{hop + 1}")
    server.routes["/hop4"] = lambda _: (200, {}, b"[]")
    with pytest.raises(FetchError, match="more than 3 redirects"):
        await _records(_stub_url(server, "/hop0"))
    server.requests.clear()
    assert await _records(_stub_url(server, "/hop1")) == []
    assert server.requests == ["/hop1", "/hop2", "/hop3", "/hop4"]


async def test_proxy_variables_are_ignored(
    server: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    server.routes["/data"] = lambda _: (200, {}, b'[{"id": 2}]')
    assert await _records(_stub_url(server, "/data")) == [{"id": 2}]


async def test_a_response_past_the_byte_cap_is_refused(
    server: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "MAX_BYTES", 1000)
    server.routes["/big"] = lambda _: (200, {}, msgspec.json.encode([{"id": "x" * 2000}]))
    with pytest.raises(FetchError, match="larger than 1000 bytes"):
        await _records(_stub_url(server, "/big"))


async def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stub resolver whose answer changes after the first lookup (to an address nothing
    listens on): both pages of the sync come from the first answer, looked up once."""
    running = SourceServer()
    running.routes["/data"] = lambda _: (200, {"Link": '</more>; rel="next"'}, b'[{"id": 1}]')
    running.routes["/more"] = lambda _: (200, {}, b'[{"id": 2}]')
    lookups: list[object] = []
    real = socket.getaddrinfo

    def resolver(host: object, port: object, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # httpx would pass bytes
        if name != "rebinding.test":
            return real(host, port, *args, **kwargs)
        lookups.append(name)
        address = "127.0.0.1" if len(lookups) == 1 else "10.255.255.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    try:
        url = f"http://rebinding.test:{running.port}/data"
        assert await _records(url, allow_private=True) == [{"id": 1}, {"id": 2}]
    finally:
        running.close()
    assert lookups == ["rebinding.test"]  # once per sync, never again on connect
