"""What the runner reads from /proc: CPU time per process tree, worker memory, open sockets."""

from __future__ import annotations

import contextlib
import os
import resource
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_table() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) for every process visible in /proc."""
    table: dict[int, tuple[int, bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def established_connections(port: int, pids: list[int]) -> dict[int, int]:
    """pid -> TCP connections in state ESTABLISHED on local `port` that the process holds."""
    inodes: set[str] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    counts: dict[int, int] = {}
    for pid in pids:
        count = 0
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                count += 1
        counts[pid] = count
    return counts


def nofile_limit(pid: int) -> tuple[int | None, int | None]:
    """The process's RLIMIT_NOFILE (soft, hard), as /proc/<pid>/limits says; None = unlimited."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return (
                    None if soft == "unlimited" else int(soft),
                    None if hard == "unlimited" else int(hard),
                )
    except (OSError, ValueError):
        pass
    return None, None


def raise_nofile_limit() -> None:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (for many sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _busy_ticks() -> int:
    """Machine-wide non-idle CPU ticks (user, nice, system, irq, softirq, steal)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return user + nice + system + irq + softirq + steal


def _process_ticks() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user + system ticks) for every process visible in /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


def _descendants(table: dict[int, tuple[int, int]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {root} if root in table else set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


@dataclass
class CpuSnapshot:
    busy: int
    processes: dict[int, tuple[int, int]]
    children_s: float


class CpuMeter:
    """CPU seconds used during a wrk run, per process group, and by everything else.

    Groups are process trees (a server and its workers, the postmaster and its backends,
    redis-server); `wrk` comes from this process's reaped-children usage; `others` is the
    machine's busy time minus all of those: other work on the box, which makes the run noisy.
    """

    def __init__(self) -> None:
        self.roots: dict[str, int] = {}

    def snapshot(self) -> CpuSnapshot:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return CpuSnapshot(_busy_ticks(), _process_ticks(), usage.ru_utime + usage.ru_stime)

    def since(self, start: CpuSnapshot) -> dict[str, float]:
        end = self.snapshot()
        result: dict[str, float] = {}
        accounted = 0
        for group, root in self.roots.items():
            ticks = 0
            for pid in _descendants(end.processes, root):
                before = start.processes.get(pid)
                now = end.processes[pid][1]
                # A pid seen before with more ticks than now was reused: count it from zero.
                ticks += now - before[1] if before and before[1] <= now else now
            accounted += ticks
            result[group] = round(ticks / CLK_TCK, 2)
        runner = os.getpid()
        own = end.processes.get(runner, (0, 0))[1] - start.processes.get(runner, (0, 0))[1]
        result["runner"] = round(own / CLK_TCK, 2)
        result["wrk"] = round(end.children_s - start.children_s, 2)
        busy = (end.busy - start.busy) / CLK_TCK
        others = busy - (accounted + own) / CLK_TCK - result["wrk"]
        result["others"] = round(max(0.0, others), 2)
        result["machine_busy"] = round(busy, 2)
        return result
