"""Prometheus metrics shared by every process (names in base units, `_total` counters).

Every RPC, served or made, is counted by method, status code and outcome
(`ok`, `client_error`, `server_error`: see `outcome_of`), timed, and tracked
while in flight, so rate, errors and duration per RPC come from one place.
Business counters are made by `business_counter`, which keeps their names to
the one pattern `agora_<thing>_total`. The names are listed in
docs/architecture.md ("Metrics and alerts").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Codes that mean the server (or something behind it) failed, not the request:
# they page somebody. Everything else that is not OK is the caller's problem
# (bad input, missing thing, no permission, over a quota, gave up waiting).
SERVER_FAULT_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
_SERVER_FAULT_NAMES = frozenset(code.name for code in SERVER_FAULT_CODES)

GRPC_SERVER_HANDLED = Counter(
    "agora_grpc_server_handled_total",
    "RPCs completed by this server, by method, status code and outcome "
    "(ok, client_error, server_error).",
    ["grpc_service", "grpc_method", "grpc_code", "outcome"],
)
GRPC_SERVER_SECONDS = Histogram(
    "agora_grpc_server_handling_seconds",
    "Time to handle an RPC on the server.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_SERVER_IN_FLIGHT = Gauge(
    "agora_grpc_server_in_flight",
    "RPCs this server is handling right now, by method.",
    ["grpc_service", "grpc_method"],
)
GRPC_CLIENT_HANDLED = Counter(
    "agora_grpc_client_handled_total",
    "RPCs this process made, by upstream method, status code and outcome "
    "(ok, client_error, server_error).",
    ["grpc_service", "grpc_method", "grpc_code", "outcome"],
)
GRPC_CLIENT_SECONDS = Histogram(
    "agora_grpc_client_handling_seconds",
    "Time an outgoing RPC took, as the caller saw it.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_CLIENT_IN_FLIGHT = Gauge(
    "agora_grpc_client_in_flight",
    "RPCs this process is waiting on right now, by upstream service.",
    ["grpc_service"],
)

_BUSINESS_NAME = re.compile(r"[a-z][a-z0-9_]*[a-z0-9]")


def outcome_of(code_name: str) -> str:
    """'OK' -> 'ok'; a server fault (SERVER_FAULT_CODES) -> 'server_error'; else 'client_error'."""
    if code_name == "OK":
        return "ok"
    return "server_error" if code_name in _SERVER_FAULT_NAMES else "client_error"


def business_counter(
    thing: str,
    description: str,
    labels: tuple[str, ...] = (),
    known: Iterable[tuple[str, ...]] = (),
) -> Counter:
    """The counter `agora_<thing>_total` of a domain change, e.g. `business_counter("posts", ...)`.

    Increment it only after the change committed, in the service that owns it,
    so the count is of things that exist, not of attempts. The `known` label
    values are exported as 0 from the start, so `rate()` sees the first change.
    """
    if not _BUSINESS_NAME.fullmatch(thing) or thing.endswith("_total"):
        raise ValueError(f"business metric names are agora_<thing>_total; got thing {thing!r}")
    counter = Counter(f"agora_{thing}_total", description, list(labels))
    for values in known:
        counter.labels(*values)
    return counter


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on its own port (services; the gateway serves it on its HTTP port)."""
    if port:
        start_http_server(port, addr=host)


def split_method(full_method: str) -> tuple[str, str]:
    """'/agora.auth.v1.AuthService/Login' -> ('agora.auth.v1.AuthService', 'Login')."""
    _, service, method = full_method.split("/", 2)
    return service, method
