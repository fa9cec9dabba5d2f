"""The rate limiter a request meets: Redis first, the per-process fallback, or fail open.

With Redis reachable, every limit is checked there (shared by all replicas).
When Redis cannot answer (down, hung, or skipped while its breaker is open),
the limits marked `local_fallback` (the auth endpoints) are checked in this
process's memory instead, and all other limits are not checked at all: the
request is let through, counted in agora_gateway_rate_limit_fail_open_total
and logged (at most every ten seconds). An outage of the limiter's store must
not become an outage of the API; for password guessing it must not become an
open door either.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.metrics import RATE_LIMIT_FAIL_OPEN, RATE_LIMITED
from gateway.ratelimit.policy import Check, LimitPolicy
from gateway.ratelimit.windows import LocalWindows, RedisWindows, Verdict
from gateway.redis_guard import RedisGuard, RedisUnavailable, ThrottledLog


class RateLimiter:
    def __init__(
        self,
        policy: LimitPolicy,
        shared: RedisWindows,
        guard: RedisGuard,
        *,
        local: LocalWindows | None = None,
    ) -> None:
        self.policy = policy
        self._shared = shared
        self._guard = guard
        self._local = local or LocalWindows()
        self._fail_open_log = ThrottledLog(
            "rate limits unreadable in Redis; letting requests through "
            "(auth limits counted per process)"
        )

    async def check(self, checks: Sequence[Check]) -> Verdict | None:
        """The verdict over these checks; None when nothing could be checked (fail open)."""
        if not checks:
            return None
        try:
            verdict = await self._guard.run(lambda: self._shared.hit(checks))
        except RedisUnavailable as error:
            RATE_LIMIT_FAIL_OPEN.inc()
            self._fail_open_log.report(error)
            fallback = [check for check in checks if check.limit.local_fallback]
            if not fallback:
                return None
            verdict = self._local.hit(fallback)
        if not verdict.allowed:
            for usage in verdict.usages:
                if usage.remaining == 0:
                    RATE_LIMITED.labels(usage.limit.name).inc()
        return verdict
