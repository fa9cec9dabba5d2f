"""Run the whole Agora stack as local processes: `python -m tools.stack up`.

`make up` and the integration tests both run the stack through `Stack`, so
what developers run is what the tests exercise. `up` checks Postgres, Redis
and NATS, creates the database, roles and schemas, migrates every service,
starts every service from common.topology and waits for its gRPC health, then
starts the gateway, seeds demo data and streams every process's output with a
readable prefix. Ctrl-C or SIGTERM stops them all; a process that dies stops
the rest. Children die with the launcher (PR_SET_PDEATHSIG), and leftovers of
a launcher that was killed are cleaned up by the next `up`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from common.topology import GATEWAY_PORT, SERVICES
from tools.child import LAUNCHER_PID
from tools.healthcheck import Probe, run_probe

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
_COLORS = ("36", "33", "35", "32", "34", "31", "96", "93")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


class FileSink:
    """A log sink writing every process's output, prefixed, to one file of the run.

    Each process's output is pumped by a thread of its own: a lock keeps lines whole.
    """

    def __init__(self, path: Path, *, truncate: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("w" if truncate else "a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, name: str, line: str) -> None:
        with self._lock:
            self._file.write(f"{name:<11}| {line}\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def _child_argv(module: str) -> list[str]:
    """Run module through tools.child, which makes it die with this launcher."""
    return [sys.executable, "-m", "tools.child", module]


@dataclass
class Process:
    """One managed child: a gRPC service or the gateway."""

    name: str
    argv: list[str]
    port: int
    kind: str  # "grpc" or "http"
    popen: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Stack:
    """The set of Agora processes for one environment (dev, or one test run)."""

    env: dict[str, str]
    service_ports: dict[str, int]
    metrics_ports: dict[str, int]
    gateway_port: int
    log_sink: Callable[[str, str], None]
    processes: dict[str, Process] = field(default_factory=dict)
    # Set from a signal handler: whatever is starting gives up at once.
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def on_free_ports(cls, env: dict[str, str], log_sink: Callable[[str, str], None]) -> Stack:
        """A private stack beside any other (a test run, a benchmark): every port is free."""
        return cls(
            env=env,
            service_ports={spec.name: free_port() for spec in SERVICES},
            metrics_ports={spec.name: free_port() for spec in SERVICES},
            gateway_port=free_port(),
            log_sink=log_sink,
        )

    @classmethod
    def development(cls, log_sink: Callable[[str, str], None]) -> Stack:
        """The fixed ports of common.topology, for `make up`."""
        env = dict(os.environ)
        if sys.stdout.isatty():
            env.setdefault("AGORA_LOG_FORMAT", "console")  # people read it, not a log shipper
        # The demo seed writes through the gateway from 127.0.0.1 faster than the rate
        # limits allow (ten sign-ups and sign-ins where /auth takes five a minute): this
        # run's gateway gets a bypass secret of its own, which the seed presents.
        env.setdefault("AGORA_RATE_LIMIT_BYPASS_SECRET", secrets.token_urlsafe(32))
        return cls(
            env=env,
            service_ports={spec.name: spec.grpc_port for spec in SERVICES},
            metrics_ports={spec.name: spec.metrics_port for spec in SERVICES},
            gateway_port=int(os.environ.get("AGORA_GATEWAY_PORT", GATEWAY_PORT)),
            log_sink=log_sink,
        )

    def __post_init__(self) -> None:
        addresses = {name: f"127.0.0.1:{port}" for name, port in self.service_ports.items()}
        self.env["AGORA_SERVICE_ADDRESSES"] = _json(addresses)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        for spec in SERVICES:
            self.processes[spec.name] = Process(
                spec.name, _child_argv(spec.module), self.service_ports[spec.name], "grpc"
            )
        self.processes["gateway"] = Process(
            "gateway", _child_argv("gateway"), self.gateway_port, "http"
        )

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def redis_key_prefix(self) -> str:
        return self.env.get("AGORA_REDIS_KEY_PREFIX", "agora:")

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.service_ports[name]}"

    def _env_for(self, name: str) -> dict[str, str]:
        env = dict(self.env)
        env[LAUNCHER_PID] = str(os.getpid())
        if name == "gateway":
            env["AGORA_GATEWAY_PORT"] = str(self.gateway_port)
        else:
            env["AGORA_GRPC_PORT"] = str(self.service_ports[name])
            env["AGORA_METRICS_PORT"] = str(self.metrics_ports[name])
        return env

    def start_service(self, name: str, *, timeout: float = 30.0) -> None:
        """Start one process and wait until it reports healthy."""
        process = self.processes[name]
        if process.running:
            return
        if port_in_use(process.port):
            raise RuntimeError(f"{name}: port {process.port} is already in use")
        process.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            process.argv,
            cwd=ROOT,
            env=self._env_for(name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        process.pump = threading.Thread(
            target=self._pump, args=(name, process.popen.stdout), daemon=True
        )
        process.pump.start()
        self.wait_ready(name, timeout=timeout)

    def _pump(self, name: str, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            self.log_sink(name, raw.decode(errors="replace").rstrip("\n"))

    def wait_ready(self, name: str, *, timeout: float) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise RuntimeError(f"stopped while {name} was starting")
            if not process.running:
                code = process.popen.returncode if process.popen else None
                raise RuntimeError(f"{name} exited with code {code} while starting")
            if self._healthy(process):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not become healthy within {timeout:.0f}s")

    @staticmethod
    def _healthy(process: Process) -> bool:
        """The probes the image's HEALTHCHECK makes (tools.healthcheck), on this stack's ports."""
        kind: Literal["grpc", "http"] = "http" if process.kind == "http" else "grpc"
        healthy, _ = run_probe(Probe(kind, "127.0.0.1", process.port), timeout=1)
        return healthy

    def start_all(self) -> None:
        for spec in SERVICES:
            self.start_service(spec.name)
        self.start_service("gateway")

    def stop_service(self, name: str, *, grace: float = 10.0, kill: bool = False) -> None:
        """Stop one process: SIGTERM and wait (SIGKILL after grace), or SIGKILL at once."""
        process = self.processes[name]
        if process.popen is None:
            return
        if process.running:
            process.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.popen.wait(grace)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        if process.pump is not None:
            process.pump.join(timeout=2)
        process.popen = None

    def stop_all(self, *, grace: float = 10.0) -> None:
        # The gateway first, so nothing new reaches services that are draining.
        for name in ["gateway", *reversed([spec.name for spec in SERVICES])]:
            self.stop_service(name, grace=grace)

    def first_exited(self) -> str | None:
        for name, process in self.processes.items():
            if process.popen is not None and process.popen.poll() is not None:
                return name
        return None

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.processes.values() if p.popen is not None]


def _json(value: Mapping[str, str]) -> str:
    import json

    return json.dumps(dict(value))


# ---------------------------------------------------------------------- `up`

_PIDFILE = RUN_DIR / "stack.pids"


def _terminal_sink() -> Callable[[str, str], None]:
    width = max(len(name) for name in [*(s.name for s in SERVICES), "gateway", "stack"])
    colors = {name: _COLORS[i % len(_COLORS)] for i, name in enumerate([s.name for s in SERVICES])}
    colors["gateway"], colors["stack"] = "1;37", "1"
    tty = sys.stdout.isatty()
    lock = threading.Lock()

    def sink(name: str, line: str) -> None:
        prefix = f"{name:<{width}} |"
        if tty:
            prefix = f"\033[{colors.get(name, '0')}m{prefix}\033[0m"
        with lock:
            print(f"{prefix} {line}", flush=True)

    return sink


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _stop_leftovers(say: Callable[[str], None]) -> bool:
    """Stop what a launcher killed before it could clean up left running.

    Returns False (and stops nothing) when that launcher is in fact still
    running: a second `make up` must not pull the first one's stack away.
    """
    if not _PIDFILE.exists():
        return True
    pids = [int(token) for token in _PIDFILE.read_text().split() if token.isdigit()]
    if pids and "tools.stack" in _cmdline(pids[0]) and pids[0] != os.getpid():
        say(f"Agora is already running (launcher pid {pids[0]}); stop it first (Ctrl-C there)")
        return False
    for pid in pids[1:]:
        cmdline = _cmdline(pid)
        if "-m tools.child" in cmdline:
            say(f"stopping leftover process {pid} ({cmdline})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    time.sleep(1)
    _PIDFILE.unlink(missing_ok=True)
    return True


def up() -> int:
    from common.settings import CommonSettings, DatabaseSettings, load_settings
    from tools import bootstrap, seed
    from tools.infra import check_infrastructure

    sink = _terminal_sink()

    def say(message: str) -> None:
        sink("stack", message)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    common, db = load_settings(CommonSettings), load_settings(DatabaseSettings)
    problems = check_infrastructure(common, db)
    if problems:
        for problem in problems:
            say(str(problem))
        return 1
    RUN_DIR.mkdir(exist_ok=True)
    if not _stop_leftovers(say):
        return 1
    stack = Stack.development(sink)
    stack.stopping = stopping
    busy = [p for p in stack.processes.values() if port_in_use(p.port)]
    if busy:
        for process in busy:
            say(f"port {process.port} (for {process.name}) is in use by another program")
        return 1

    say(f"database {db.name}: creating roles and schemas, running migrations")
    bootstrap.ensure_database(db)
    bootstrap.migrate(db)

    code = 0
    try:
        for name in stack.processes:
            if stopping.is_set():
                break
            say(f"starting {name}")
            stack.start_service(name)
            _PIDFILE.write_text(" ".join(map(str, [os.getpid(), *stack.pids()])))
        if not stopping.is_set() and not common.is_production:
            seed.seed(
                stack.gateway_url, say, bypass_secret=stack.env["AGORA_RATE_LIMIT_BYPASS_SECRET"]
            )
            say(f"Agora is up: {stack.gateway_url} (API docs at {stack.gateway_url}/docs)")
            say("press Ctrl-C to stop")
        while not stopping.is_set():
            if (dead := stack.first_exited()) is not None:
                say(f"{dead} exited unexpectedly; stopping the stack")
                code = 1
                break
            stopping.wait(0.5)
    except RuntimeError as error:
        say(f"failed: {error}")
        code = 1
    finally:
        say("stopping")
        stack.stop_all()
        _PIDFILE.unlink(missing_ok=True)
        say("stopped")
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["up"]:
        print("usage: python -m tools.stack up", file=sys.stderr)
        return 2
    return up()


if __name__ == "__main__":
    sys.exit(main())
