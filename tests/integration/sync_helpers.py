"""Shared by the sync tests: an app whose settings allow local sources and retry quickly, a
worker on it, a local HTTP source server, and a way to count a source's stored records."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from panels.platform.db import owner_engine
from tests.conftest import Caller, Services

Client = AsyncTestClient[Litestar]
Route = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class SourceServer:
    """A local HTTP server answering each path with what its route returns; `hold` makes every
    request wait until released (a source that hangs mid-sync)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.hold.wait(30)
                route = server.routes.get(self.path.partition("?")[0])
                status, headers, body = route(self) if route else (404, {}, b"{}")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


async def stored_keys(services: Services, source_id: int) -> list[str]:
    """The keys of a source's readable records (as the owner, in maintenance mode)."""
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT key FROM source_record WHERE source_id = :s ORDER BY key"),
                {"s": source_id},
            )
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


async def create_source(
    client: Client, owner: Caller, panel_id: int, source_type: str, config: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        f"/api/panels/{panel_id}/datasources",
        json={"type": source_type, "config": config},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_for_job(
    client: Client, caller: Caller, job_id: str, within: float = 20.0
) -> dict[str, Any]:
    """The job once it has finished."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await client.get(f"/api/sync-jobs/{job_id}", headers=caller.headers)
        assert response.status_code == 200, response.text
        job = dict(response.json())
        if job["status"] in ("success", "error"):
            return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.1)
