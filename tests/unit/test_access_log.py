"""The access log's lines are the ones structlog's JSON renderer made, written in batches."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from typing import Any

from panels.platform.access_log import FLUSH_SECONDS, AccessLog
from panels.platform.auth import Principal

_SCOPE: dict[str, Any] = {
    "method": "GET",
    "path": "/api/panels/7",
    "path_template": "/api/panels/{panel_id:int}",
    "user": Principal(user_id="u-1", email=None, tenant_id="t-1", role="user"),
}


def test_a_line_has_the_structlog_keys_in_their_order() -> None:
    log = AccessLog()
    log.stream = io.StringIO()
    log.record(_SCOPE, "req-1", 200, time.perf_counter())  # no running loop: written at once
    line = json.loads(log.stream.getvalue())
    assert list(line) == [
        "request_id",
        "method",
        "path",
        "route",
        "status",
        "latency_ms",
        "tenant",
        "user",
        "event",
        "level",
        "logger",
        "timestamp",
    ]
    assert line["request_id"] == "req-1"
    assert (line["route"], line["status"], line["tenant"], line["user"]) == (
        "/api/panels/{panel_id:int}",
        200,
        "t-1",
        "u-1",
    )
    assert (line["event"], line["level"], line["logger"]) == ("request", "info", "panels.access")
    assert 0 <= line["latency_ms"] < 1000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["timestamp"])


def test_an_unauthenticated_request_logs_no_tenant_or_user() -> None:
    log = AccessLog()
    log.stream = io.StringIO()
    log.record({"method": "GET", "path": "/nowhere"}, "req-2", 404, None)
    line = json.loads(log.stream.getvalue())
    assert (line["route"], line["latency_ms"], line["tenant"], line["user"]) == (
        None,
        None,
        None,
        None,
    )


async def test_lines_of_one_moment_are_written_together_soon_after() -> None:
    log = AccessLog()
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    log.stream = Stream()
    for n in range(3):
        log.record(_SCOPE, f"req-{n}", 200, None)
    assert writes == []
    await asyncio.sleep(FLUSH_SECONDS * 4)
    assert len(writes) == 1
    assert [json.loads(line)["request_id"] for line in writes[0].splitlines()] == [
        "req-0",
        "req-1",
        "req-2",
    ]
    log.record(_SCOPE, "req-3", 200, None)
    log.flush()  # as at shutdown: nothing waits for the timer
    assert json.loads(writes[1])["request_id"] == "req-3"
