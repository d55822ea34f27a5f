"""PostgreSQL clusters of a test's own, run with the binaries the pgserver wheel ships.

The shared embedded server is never restarted or paused; tests that need to do that (restart
the server, stream to a replica) start a cluster here, in a directory of its own that is removed
afterwards. Each cluster listens only on a unix socket in its own data directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pgserver._commands import POSTGRES_BIN_PATH

from tests.conftest import ROOT

PORT = 5432
# pgserver runs PostgreSQL as this system user when the tests run as root (it refuses root).
SYSTEM_USER = "pgserver" if os.geteuid() == 0 else None


def _run(*command: str) -> None:
    # Output goes to a file: a server started by pg_ctl keeps inherited pipes open.
    with tempfile.TemporaryFile("w+") as output:
        completed = subprocess.run(
            [str(POSTGRES_BIN_PATH / command[0]), *command[1:]],
            stdout=output,
            stderr=subprocess.STDOUT,
            user=SYSTEM_USER,
            timeout=120,
            check=False,
        )
        if completed.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"{command[0]} failed: {output.read()[-2000:]}")


class Cluster:
    """One data directory and the server running on it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # holds the socket and the log
        self.data_dir = folder / "data"

    @classmethod
    def scratch(cls) -> Cluster:
        parent = ROOT / ".panels" / "test"
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
        if SYSTEM_USER is not None:
            shutil.chown(folder, SYSTEM_USER, SYSTEM_USER)
        return cls(folder)

    @classmethod
    def primary(cls) -> Cluster:
        cluster = cls.scratch()
        _run(
            "initdb",
            "-D",
            str(cluster.data_dir),
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
        )
        cluster.start()
        return cluster

    def replica(self) -> Cluster:
        """A streaming replica of this cluster (`pg_basebackup -R`), started."""
        standby = Cluster.scratch()
        _run(
            "pg_basebackup",
            "-h",
            str(self.folder),
            "-p",
            str(PORT),
            "-U",
            "postgres",
            "-D",
            str(standby.data_dir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )
        standby.start()
        return standby

    def _pg_ctl(self, *action: str) -> None:
        _run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-w",
            "-l",
            str(self.folder / "log"),
            "-o",
            f"-h '' -k {self.folder} -p {PORT}",
            *action,
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    def remove(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:@/{database}?host={self.folder}&port={PORT}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        completed = subprocess.run(
            [
                *(str(POSTGRES_BIN_PATH / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1"),
                *("-h", str(self.folder), "-p", str(PORT), "-U", "postgres", "-d", database),
            ],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return completed.stdout.strip()

    def wait_until(self, sql: str, expected: str, timeout: float = 60, **kwargs: Any) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.CalledProcessError):  # not there yet
                if self.psql(sql, **kwargs) == expected:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{sql!r} never returned {expected!r}")
