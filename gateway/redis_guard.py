"""Every Redis command the gateway makes, bounded in time and behind a circuit breaker.

Redis backs rate limits, the response cache and the revocation list, and each
of those fails open (or falls back) when Redis cannot answer: an outage must
slow requests down, not fail them. A command that hangs is cut off after the
Redis timeout; after repeated failures the breaker opens and Redis is not
asked at all for a while, so a hung Redis costs requests nothing instead of a
timeout each (and per request there may be three commands: limit, revocation,
cache). Callers see one exception, RedisUnavailable, for all of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from redis.exceptions import RedisError, ResponseError

from common.breaker import CircuitBreaker, CircuitOpen

T = TypeVar("T")
log = logging.getLogger("agora.gateway")


class RedisUnavailable(Exception):
    """Redis did not answer in time, refused the connection, or is being skipped."""


def _is_outage(error: BaseException) -> bool:
    # A ResponseError is Redis answering (a script or command bug): healthy.
    return not isinstance(error, ResponseError)


class RedisGuard:
    """Runs Redis operations with a timeout and a breaker; see the module doc."""

    def __init__(self, breaker: CircuitBreaker, *, timeout_seconds: float) -> None:
        self.breaker = breaker
        self.timeout_seconds = timeout_seconds

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        """operation()'s result; RedisUnavailable when Redis failed or is being skipped.

        A ResponseError (Redis answered, but the command was wrong) is a bug and
        propagates as it is.
        """

        async def bounded() -> T:
            async with asyncio.timeout(self.timeout_seconds):
                return await operation()

        try:
            return await self.breaker.call(bounded, is_failure=_is_outage)
        except CircuitOpen as error:
            raise RedisUnavailable(str(error)) from error
        except ResponseError:
            raise
        except (RedisError, OSError, TimeoutError) as error:
            raise RedisUnavailable(f"{type(error).__name__}: {error}") from error


@dataclass(slots=True)
class ThrottledLog:
    """Logs a recurring warning at most once per interval, with how many were held back.

    When Redis is down every request fails open; a warning per request would
    drown the logs exactly when they matter. The Prometheus counters still
    count every single one.
    """

    message: str
    interval_seconds: float = 10.0
    _last: float = field(default=float("-inf"))
    _suppressed: int = 0

    def report(self, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last < self.interval_seconds:
            self._suppressed += 1
            return
        log.warning(
            self.message,
            extra={"error": str(error)[:200], "suppressed_since_last": self._suppressed},
        )
        self._last, self._suppressed = now, 0
