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
RATE_LIMITED = Counter(
    "agora_gateway_rate_limited_total",
    "Requests refused with 429, by the limit that was used up.",
    ["limit"],
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "agora_gateway_rate_limit_fail_open_total",
    "Requests whose rate limits could not be checked in Redis: let through, "
    "except that auth limits were checked per process.",
)
CACHE_LOOKUPS = Counter(
    "agora_gateway_cache_requests_total",
    "Cacheable requests by resource and result: hit (answered from Redis), miss "
    "(rebuilt from the services) or bypass (Redis unavailable or the cache off).",
    ["resource", "result"],
)
CACHE_FILLS = Counter(
    "agora_gateway_cache_fills_total",
    "Rebuilt entries by outcome: stored, stale (a write invalidated it while it was "
    "being built, so it was not stored), skipped (not cacheable) or error.",
    ["resource", "outcome"],
)
CACHE_REBUILD_WAITS = Counter(
    "agora_gateway_cache_rebuild_waits_total",
    "Misses that found another request rebuilding the entry, by outcome: served "
    "(its value arrived in time) or timeout (built it themselves).",
    ["resource", "outcome"],
)
CACHE_INVALIDATIONS = Counter(
    "agora_gateway_cache_invalidations_total",
    "Invalidations after writes, by outcome (done, retried, failed).",
    ["outcome"],
)
