"""Prometheus metrics shared by every process (names in base units, `_total` counters)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRPC_SERVER_HANDLED = Counter(
    "agora_grpc_server_handled_total",
    "RPCs completed by this server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SERVER_SECONDS = Histogram(
    "agora_grpc_server_handling_seconds",
    "Time to handle an RPC on the server.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_CLIENT_HANDLED = Counter(
    "agora_grpc_client_handled_total",
    "RPCs this process made, by upstream method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_CLIENT_SECONDS = Histogram(
    "agora_grpc_client_handling_seconds",
    "Time an outgoing RPC took, as the caller saw it.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on its own port (services; the gateway serves it on its HTTP port)."""
    if port:
        start_http_server(port, addr=host)


def split_method(full_method: str) -> tuple[str, str]:
    """'/agora.auth.v1.AuthService/Login' -> ('agora.auth.v1.AuthService', 'Login')."""
    _, service, method = full_method.split("/", 2)
    return service, method
