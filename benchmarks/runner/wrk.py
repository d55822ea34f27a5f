"""Running wrk with the Lua scripts in benchmarks/lua, and merging the figures of its runs."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.runner.common import LUA_DIR, WRK_THREADS, WRK_TIMEOUT, log
from benchmarks.runner.measure import CpuMeter


def ensure_wrk() -> str:
    """The path of wrk; installs the Debian package when running as root with apt-get."""
    found = shutil.which("wrk")
    if found:
        return found
    hint = "wrk is not installed. Install it with: apt-get install -y wrk (Debian/Ubuntu)"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing; installing it: apt-get update && apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(hint)


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def run_wrk(
    wrk: str,
    base_url: str,
    script: str,
    rows: list[str],
    workdir: Path,
    *,
    duration: int,
    connections: int,
    body: str | None = None,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """Run one wrk pass; return its figures (from the script's done() JSON line).

    With a meter, also the CPU seconds each process group used while wrk ran.
    """
    data = workdir / f"wrk-{script}-{secrets.token_hex(4)}.tsv"
    data.write_text("\n".join(rows) + "\n")
    env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_DATA": str(data),
        "BENCH_THREADS": str(WRK_THREADS),
    }
    if body is not None:
        env["BENCH_BODY"] = body
    first_path = rows[0].split("\t", 1)[0]
    command = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(LUA_DIR / f"{script}.lua"),
        base_url + first_path,
    ]
    start = meter.snapshot() if meter else None
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=duration + 120, check=False
    )
    cpu = meter.since(start) if meter and start else None
    data.unlink(missing_ok=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    figures: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    figures["command"] = shlex.join(command)
    figures["cpu_s"] = cpu
    figures["wrk_output"] = "\n".join(
        x for x in proc.stdout.splitlines() if not x.startswith("BENCH_JSON")
    )
    return figures


def merge_figures(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure set from several wrk runs of the same scenario (the slices of an ABBA pair).

    Counts and CPU add up; latency percentiles are the request-weighted mean of the slices'
    percentiles (an approximation: wrk does not export its histogram), min/max are exact.
    """
    if len(parts) == 1:
        return parts[0]
    weights: list[int] = [max(int(p["requests"]), 1) for p in parts]
    total = sum(weights)

    def weighted(key: str) -> float:
        values = [float(p["latency_us"][key]) * w for p, w in zip(parts, weights, strict=True)]
        return sum(values) / total

    mean = weighted("mean")
    second_moment = (
        sum(
            (p["latency_us"]["stdev"] ** 2 + p["latency_us"]["mean"] ** 2) * w
            for p, w in zip(parts, weights, strict=True)
        )
        / total
    )
    cpu: dict[str, float] = {}
    for p in parts:
        for group, seconds in (p.get("cpu_s") or {}).items():
            cpu[group] = round(cpu.get(group, 0.0) + seconds, 2)
    return {
        "requests": sum(p["requests"] for p in parts),
        "duration_us": sum(p["duration_us"] for p in parts),
        "bytes": sum(p["bytes"] for p in parts),
        "errors": {k: sum(p["errors"][k] for p in parts) for k in parts[0]["errors"]},
        "latency_us": {
            "min": min(p["latency_us"]["min"] for p in parts),
            "max": max(p["latency_us"]["max"] for p in parts),
            "mean": mean,
            "stdev": max(0.0, second_moment - mean**2) ** 0.5,
            **{k: weighted(k) for k in ("p50", "p75", "p90", "p99", "p999")},
        },
        "cpu_s": cpu,
        "command": "\n".join(p["command"] for p in parts),
        "wrk_output": "\n\n".join(p["wrk_output"] for p in parts),
        "slices": [
            {
                "requests": p["requests"],
                "duration_s": round(p["duration_us"] / 1e6, 2),
                "p50_ms": round(p["latency_us"]["p50"] / 1000, 2),
                "p99_ms": round(p["latency_us"]["p99"] / 1000, 2),
                "cpu_s": p.get("cpu_s"),
            }
            for p in parts
        ],
    }
