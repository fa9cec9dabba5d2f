"""`python -m tools.healthcheck [target]`: is this container's Agora process healthy?

The one image runs every process, so its HEALTHCHECK cannot name a port: this
tool finds out what to ask. The target is, in order of precedence, the
argument, `AGORA_HEALTHCHECK_TARGET`, or the Agora server it finds among the
container's processes (`python -m services.<name>` or `python -m gateway`).
A service is healthy when its gRPC health service says SERVING for the whole
server (it turns NOT_SERVING while draining after SIGTERM); the gateway when
`/healthz` answers 2xx. Liveness only, on purpose: a dependency outage must
not make the orchestrator restart processes that are fine and will recover.

Exit codes follow Docker's HEALTHCHECK contract: 0 healthy, 1 unhealthy.
One line on stdout says why, which `docker inspect` shows in the health log.
The dev launcher (tools.stack) waits for start-up with the same two probes.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.settings import ServiceSettings, load_settings
from common.topology import SERVICES, service

GATEWAY = "gateway"
TARGET_VARIABLE = "AGORA_HEALTHCHECK_TARGET"
DEFAULT_TIMEOUT_SECONDS = 3.0
HEALTHY, UNHEALTHY = 0, 1
# Addresses a server binds to mean "every interface": probe it over loopback.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - matched, not bound


@dataclass(frozen=True, slots=True)
class Probe:
    """What to ask: a gRPC health service, or an HTTP liveness URL."""

    kind: Literal["grpc", "http"]
    address: str  # host:port for gRPC, a URL for HTTP


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


def http_healthy(url: str, timeout: float) -> tuple[bool, str]:
    """Whether GET url answers 2xx within timeout.

    Always direct: an HTTP(S)_PROXY in the environment must not route a probe
    of loopback through a proxy.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            status: int = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return False, f"{url}: {reason}"
    return 200 <= status < 300, f"{url}: HTTP {status}"


def run_probe(probe: Probe, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> tuple[bool, str]:
    if probe.kind == "http":
        return http_healthy(probe.address, timeout)
    return grpc_serving(probe.address, timeout)


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in _WILDCARD_HOSTS else host


def probe_for(target: str) -> Probe:
    """The probe of a process by topology name (`auth`, ..., `gateway`), from its settings.

    Ports come from the same `AGORA_*` variables and defaults the process
    itself reads, so the check follows any port the deployment sets.
    """
    if target == GATEWAY:
        from gateway.settings import GatewaySettings

        gateway = load_settings(GatewaySettings)
        host = _loopback(gateway.gateway_host)
        return Probe("http", f"http://{_bracketed(host)}:{gateway.gateway_port}/healthz")
    spec = service(target)  # KeyError names the known services
    settings = load_settings(ServiceSettings)
    # ServiceSettings leaves the port 0; each service's own class defaults it from topology.
    port = settings.grpc_port or spec.grpc_port
    return Probe("grpc", f"{_bracketed(_loopback(settings.grpc_host))}:{port}")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


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
    except ValueError as error:  # settings the process itself would refuse too
        print(f"{target}: invalid settings: {error}")
        return UNHEALTHY
    healthy, detail = run_probe(probe, args.timeout)
    print(f"{target} {'healthy' if healthy else 'unhealthy'}: {detail}")
    return HEALTHY if healthy else UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
