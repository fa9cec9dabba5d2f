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


class RequestMetrics:
    """The HTTP request metrics of one app, their labelled children looked up once each.

    `labels()` checks and joins the label values on every call, a few
    microseconds, twice per request; the combinations are few (route
    templates, not paths), so each is looked up once and kept.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(method, route, str(status)),
                HTTP_REQUEST_SECONDS.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


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
    "Cacheable requests by resource and result: memory (answered from the process's "
    "in-memory copy, before routing), hit (answered from Redis), miss (rebuilt from the "
    "services) or bypass (Redis unavailable or the cache off).",
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
CACHE_MEMORY_ENTRIES = Gauge(
    "agora_gateway_cache_memory_entries",
    "Answers held in the process's in-memory cache (the L1 in front of Redis).",
)
CACHE_MEMORY_BYTES = Gauge(
    "agora_gateway_cache_memory_bytes",
    "Bytes of bodies and headers held in the process's in-memory cache.",
)
CACHE_MEMORY_LIVE = Gauge(
    "agora_gateway_cache_memory_live",
    "1 while the in-memory cache is subscribed to invalidations and serving, 0 while it is "
    "off (the subscription is being made or was lost).",
)
