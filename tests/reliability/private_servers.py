"""PostgreSQL and NATS servers of a test's own, on free ports, to stop and start at will.

Fault injection must never touch the machine's shared servers (other test
runs and developers use them), so the fault tests run a whole private set:
a PostgreSQL cluster made with initdb in a temporary directory, a NATS
server with JetStream storing into another, and a redis-server (the
edge tests' PrivateRedis). Each one keeps its port across a restart, so the
services pointed at it can reconnect by themselves.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tools.stack import free_port


def _postgres_bin() -> Path:
    """AGORA_TEST_POSTGRES_BIN, else the newest Debian-style /usr/lib/postgresql/<n>/bin."""
    if configured := os.environ.get("AGORA_TEST_POSTGRES_BIN"):
        return Path(configured)
    found = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
        reverse=True,
    )
    return found[0] if found else Path("/usr/lib/postgresql/15/bin")


POSTGRES_BIN = _postgres_bin()


def _wait_for_port(port: int, *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _server_user() -> str | None:
    """Who runs the server: PostgreSQL refuses root, so root hands it to `postgres`."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root without a `postgres` user to run PostgreSQL as")
    return "postgres"


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (trust auth for `postgres`, loopback only)."""

    def __init__(self) -> None:
        if not (POSTGRES_BIN / "initdb").exists():
            pytest.skip(f"no PostgreSQL binaries in {POSTGRES_BIN} (set AGORA_TEST_POSTGRES_BIN)")
        self.port = free_port()
        self._user = _server_user()
        self._dir = Path(tempfile.mkdtemp(prefix="agora-pg-"))
        if self._user is not None:
            shutil.chown(self._dir, self._user, self._user)
        self._data = self._dir / "data"
        self._log = self._dir / "postgres.log"
        self._run(
            [
                POSTGRES_BIN / "initdb",
                "-D",
                self._data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )

    def _run(self, argv: list[str | Path]) -> None:
        subprocess.run(argv, check=True, capture_output=True, user=self._user)

    def _ctl(self, *args: str) -> None:
        self._run(
            [POSTGRES_BIN / "pg_ctl", "-D", self._data, "-l", self._log, "-w", "-t", "30", *args]
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._dir} "
            "-c fsync=off -c max_connections=200"
        )
        self._ctl("-o", options, "start")
        _wait_for_port(self.port)

    def stop(self, *, mode: str = "fast") -> None:
        """`fast` ends every session and shuts down cleanly; `immediate` is a crash."""
        self._ctl("-m", mode, "stop")

    def close(self) -> None:
        if (self._data / "postmaster.pid").exists():
            self.stop(mode="immediate")
        shutil.rmtree(self._dir, ignore_errors=True)


class PrivateNats:
    """A nats-server with JetStream whose store survives its restarts."""

    def __init__(self) -> None:
        self._server = shutil.which("nats-server")
        if self._server is None:
            pytest.skip("nats-server is not installed")
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="agora-nats-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self._server is not None
        self._process = subprocess.Popen(
            [self._server, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self._dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)
