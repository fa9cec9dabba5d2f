"""The gateway's own Prometheus metrics (gRPC client metrics come from common.metrics).

Labels use the route template (`/api/v1/users/{username}`), never the raw
path, so a crawler cannot blow up the series count.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from common.metrics import LATENCY_BUCKETS

HTTP_REQUESTS = Counter(
    "agora_http_requests_total",
    "HTTP requests answered by the gateway, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "agora_http_request_duration_seconds",
    "Time from request start to the end of the response, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "agora_http_requests_in_flight",
    "HTTP requests the gateway is working on right now.",
)
REVOCATION_FAIL_OPEN = Counter(
    "agora_gateway_revocation_fail_open_total",
    "Authenticated requests let through unchecked because the revocation list "
    "(Redis) could not be read.",
)
