"""`python -m tools.healthcheck [target]`: is this container's Agora process healthy?

The one image runs every process, so its HEALTHCHECK cannot name a port: this
tool finds out what to ask. The target is, in order of precedence, the
argument, `AGORA_HEALTHCHECK_TARGET`, or the Agora server it finds among the
container's processes (`python -m services.<name>` or `python -m gateway`).
A service is healthy when its gRPC health service says SERVING for the whole
server (it turns NOT_SERVING while draining after SIGTERM); the gateway when
`/healthz` answers 2xx. Liveness only, on purpose: a dependency outage must
not make the orchestrator restart processes that are fine and will recover.

It runs every few seconds in every container, so it stays cheap: the address
comes from the four `AGORA_*` variables that place a server (`AGORA_GRPC_HOST`,
`AGORA_GRPC_PORT`, `AGORA_GATEWAY_HOST`, `AGORA_GATEWAY_PORT`) with the same
defaults as the processes' settings classes, read directly instead of through
pydantic-settings (a test keeps the two in agreement), and HTTP is one request
on a plain socket. That makes a check a third of the CPU it would otherwise take.

Exit codes follow Docker's HEALTHCHECK contract: 0 healthy, 1 unhealthy.
One line on stdout says why, which `docker inspect` shows in the health log.
The dev launcher (tools.stack) waits for start-up with the same two probes.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.topology import GATEWAY_PORT, SERVICES, service

GATEWAY = "gateway"
TARGET_VARIABLE = "AGORA_HEALTHCHECK_TARGET"
LIVENESS_PATH = "/healthz"
DEFAULT_TIMEOUT_SECONDS = 3.0
HEALTHY, UNHEALTHY = 0, 1
# The listen address when none is set (common.settings.ServiceSettings.grpc_host,
# gateway.settings.GatewaySettings.gateway_host).
DEFAULT_HOST = "127.0.0.1"
# Addresses a server binds to mean "every interface": probe it over loopback.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - matched, not bound
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class Probe:
    """What to ask: a gRPC health service, or an HTTP liveness path, at host:port."""

    kind: Literal["grpc", "http"]
    host: str
    port: int
    path: str = LIVENESS_PATH

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def grpc_serving(address: str, timeout: float) -> tuple[bool, str]:
    """Whether the gRPC server at address reports the whole server as SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            return False, f"gRPC health of {address}: {code.name if code else error}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return answer.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def http_healthy(probe: Probe, timeout: float) -> tuple[bool, str]:
    """Whether GET probe.path answers 2xx within timeout.

    One HTTP/1.1 request on a plain socket: no proxy variable can reroute a
    probe of loopback, and no HTTP client library has to be imported.
    """
    where = f"http://{probe.address}{probe.path}"
    request = (
        f"GET {probe.path} HTTP/1.1\r\nHost: {probe.address}\r\n"
        "User-Agent: agora-healthcheck\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    try:
        with socket.create_connection((probe.host, probe.port), timeout=timeout) as conn:
            conn.sendall(request)
            status_line = conn.makefile("rb").readline(256)
    except OSError as error:
        return False, f"{where}: {error.strerror or error}"
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False, f"{where}: not an HTTP answer ({status_line[:40]!r})"
    status = int(parts[1])
    return 200 <= status < 300, f"{where}: HTTP {status}"


def run_probe(probe: Probe, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> tuple[bool, str]:
    if probe.kind == "http":
        return http_healthy(probe, timeout)
    return grpc_serving(probe.address, timeout)


def _loopback(host: str) -> str:
    host = host.strip()
    return DEFAULT_HOST if host in _WILDCARD_HOSTS else host.strip("[]")


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    """A port setting as the process reads it: unset means the default, anything else must parse."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a port") from None
    if port == 0:
        raise ValueError(f"{name}=0 picks a free port at start; a health check needs a fixed one")
    if not 0 < port <= _MAX_PORT:
        raise ValueError(f"{name}={raw!r} is not a port")
    return port


def probe_for(target: str, env: Mapping[str, str] | None = None) -> Probe:
    """The probe of a process by topology name (`auth`, ..., `gateway`).

    The address follows the same variables and defaults the process reads, so
    the check follows any port the deployment sets. Raises KeyError for an
    unknown target, ValueError for a setting the process would refuse too.
    """
    env = os.environ if env is None else env
    if target == GATEWAY:
        host = env.get("AGORA_GATEWAY_HOST", DEFAULT_HOST)
        return Probe("http", _loopback(host), _port(env, "AGORA_GATEWAY_PORT", GATEWAY_PORT))
    spec = service(target)
    host = env.get("AGORA_GRPC_HOST", DEFAULT_HOST)
    return Probe("grpc", _loopback(host), _port(env, "AGORA_GRPC_PORT", spec.grpc_port))


def server_in(argv: Sequence[str]) -> str | None:
    """The Agora server a command line runs (`python -m services.auth` -> `auth`), if any."""
    known = {spec.module: spec.name for spec in SERVICES}
    known[GATEWAY] = GATEWAY
    for flag, module in itertools.pairwise(argv):
        if flag == "-m" and module in known:
            return known[module]
    return None


def running_server(proc: Path = Path("/proc")) -> str | None:
    """The Agora server among the processes this one can see (its container), lowest pid first."""
    own = os.getpid()
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in pids:
        if pid == own:
            continue
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue  # it ended meanwhile, or is not ours to read
        argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        if (name := server_in(argv)) is not None:
            return name
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.healthcheck", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "target",
        nargs="?",
        help=f"{', '.join(s.name for s in SERVICES)} or {GATEWAY}; "
        f"default: ${TARGET_VARIABLE}, else the Agora server running here",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS)
    args = parser.parse_args(argv)

    target = args.target or os.environ.get(TARGET_VARIABLE) or running_server()
    if not target:
        print(
            "no Agora server runs here; name one (python -m tools.healthcheck auth) "
            f"or set {TARGET_VARIABLE}"
        )
        return UNHEALTHY
    try:
        probe = probe_for(target)
    except KeyError:
        known = ", ".join([*(spec.name for spec in SERVICES), GATEWAY])
        print(f"unknown target {target!r}; known: {known}")
        return UNHEALTHY
    except ValueError as error:
        print(f"{target}: invalid settings: {error}")
        return UNHEALTHY
    healthy, detail = run_probe(probe, args.timeout)
    print(f"{target} {'healthy' if healthy else 'unhealthy'}: {detail}")
    return HEALTHY if healthy else UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
