"""`api` sources: JSON over HTTP(S), paged by `Link: rel="next"` or by a cursor.

Every URL the sync requests (the source's, each page's, each redirect's) has its host checked
and resolved by `platform.egress`, and the connection goes to that address (`PinnedBackend`):
no second lookup that a DNS change could turn inward. TLS still verifies the host name.
Proxy variables are ignored (`trust_env=False`): a proxy would make the check moot. At most
`MAX_REDIRECTS` redirects per request, `MAX_PAGES` pages and `MAX_BYTES` per response.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpcore
import httpx
import msgspec

from panels.platform.egress import EgressRefused, addresses_to_connect
from panels.sync.fetch.common import Batches, FetchError, at_path, records_of

MAX_REDIRECTS = 3
MAX_PAGES = 1000
MAX_BYTES = 64 * 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_REDIRECTS = {301, 302, 303, 307, 308}


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a host name only to the address it was checked at."""

    def __init__(self) -> None:
        self.pins: dict[str, str] = {}
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        address = self.pins.get(host.lower().strip("[]"))
        if address is None:
            raise httpcore.ConnectError(f"{host} was not checked")
        return await self._backend.connect_tcp(
            address, port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not sources")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _client(backend: PinnedBackend) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx has no option for a network backend; its pool is httpcore's, which takes one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl.create_default_context(), network_backend=backend
    )
    return httpx.AsyncClient(
        transport=transport, trust_env=False, follow_redirects=False, timeout=TIMEOUT
    )


async def fetch_api(config: dict[str, Any], *, allow_private: bool) -> Batches:
    backend = PinnedBackend()
    method = config.get("method", "GET")
    headers = config.get("headers") or {}
    cursor_path = config.get("nextCursorPath")
    cursor_param = config.get("cursorParam") or "cursor"
    url: str | None = config["url"]
    position = 0
    pages = 0
    async with _client(backend) as client:
        while url is not None:
            if pages == MAX_PAGES:
                raise FetchError(f"the source has more than {MAX_PAGES} pages")
            response, body = await _request(client, backend, method, url, headers, allow_private)
            pages += 1
            try:
                document = msgspec.json.decode(body)
            except msgspec.DecodeError:
                raise FetchError(f"page {pages} is not valid JSON") from None
            items = at_path(document, config.get("itemsPath"), "config.itemsPath")
            batch = records_of(items, position, f"page {pages}")
            position += len(batch)
            if batch:
                yield batch
            url = _next_page(response, document, cursor_path, cursor_param)


async def _request(
    client: httpx.AsyncClient,
    backend: PinnedBackend,
    method: str,
    url: str,
    headers: dict[str, str],
    allow_private: bool,
) -> tuple[httpx.Response, bytes]:
    for _ in range(MAX_REDIRECTS + 1):
        await _pin(backend, url, allow_private)
        try:
            async with client.stream(method, url, headers=headers) as response:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    if response.status_code == 303:
                        method = "GET"
                    continue
                if response.status_code >= 400:
                    raise FetchError(f"the source answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise FetchError(f"a response is larger than {MAX_BYTES} bytes")
                return response, bytes(body)
        except httpx.TimeoutException:
            raise FetchError("the source timed out") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"could not reach the source ({type(exc).__name__})") from None
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


async def _pin(backend: PinnedBackend, url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("a redirect left http(s)")
    host = parts.hostname.lower()
    if host in backend.pins:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await addresses_to_connect(host, port, allow_private=allow_private)
    except (EgressRefused, ValueError) as exc:
        raise FetchError(f"{host}: {exc}") from None
    backend.pins[host] = str(addresses[0])


def _next_page(
    response: httpx.Response, document: Any, cursor_path: str | None, cursor_param: str
) -> str | None:
    if cursor_path:
        try:
            cursor = at_path(document, cursor_path, "config.nextCursorPath")
        except FetchError:
            return None
        if cursor in (None, ""):
            return None
        parts = urlsplit(str(response.url))
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        query = [(k, v) for k, v in query if k != cursor_param] + [(cursor_param, str(cursor))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    following = response.links.get("next", {}).get("url")
    return urljoin(str(response.url), following) if following else None
