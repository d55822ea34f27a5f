"""A small keep-alive HTTP client for seeding, checks and the realtime scenario's writes."""

from __future__ import annotations

import http.client

from benchmarks.runner.common import HOST


class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def request(
        self, method: str, path: str, token: str | None = None, body: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                content = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, content
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def cache_headers(client: Http, rows: list[str], sample: int = 20) -> dict[str, int]:
    """How many of `sample` GETs over `rows` answered x-cache HIT / MISS."""
    counts = {"HIT": 0, "MISS": 0, "other": 0}
    for row in rows[:sample]:
        path, token = row.split("\t")
        status, headers, _ = client.request("GET", path, token)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        value = headers.get("x-cache", "")
        counts[value if value in counts else "other"] += 1
    return counts
