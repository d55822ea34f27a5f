"""Paths, constants and targets shared by the runner's modules."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
HOST = "127.0.0.1"
DEAD_REDIS_URL = "redis://127.0.0.1:1"
CEILING_TABLE = "bench_ceiling_insert"
WRK_THREADS = 2
NPROC = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
WRK_TIMEOUT = "10s"
API_PANELS_PER_TENANT = 4
PUT_IDS = 2500
# Each seeded panel is readable by this many of its tenant's users (an owner grant and viewer
# grants), so that every user can fill a list of 50 (see seed.py).
GRANTS_PER_PANEL = 8
SCENARIO_KEYS = (
    "get_uncached",
    "list_uncached",
    "get_cached",
    "list_cached",
    "post_create",
    "put_update",
)

RATIO_TARGETS = {
    "get_cached": 0.40,
    "get_uncached": 0.50,
    "list_uncached": 0.25,
    "post_create": 0.40,
}
TARGETS: dict[str, Any] = {
    "ratio": RATIO_TARGETS,
    "p99_over_p50": 10.0,
    "worker_rss_mb": 150.0,
}
CEILING_OF = {
    "get_cached": "ceiling_json",
    "get_uncached": "ceiling_select",
    "list_uncached": "ceiling_select",
    "post_create": "ceiling_insert",
}

POST_BODY = json.dumps(
    {
        "name": "Bench created panel",
        "description": "Created by the benchmark",
        "metadata": {"team": "ward-3"},
        "cohortRule": {
            "logic": "AND",
            "conditions": [{"field": "age", "operator": "gte", "value": 65}],
        },
    },
    separators=(",", ":"),
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
