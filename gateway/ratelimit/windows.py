"""Sliding-window counters: in Redis for every gateway at once, in memory as a fallback.

A sliding window log: each admitted request is a member of a sorted set
scored by its time; a limit of N per W seconds admits a request when fewer
than N members are younger than W. Exact at the boundaries (no fixed-window
burst of 2N around a minute's turn), and the time until a slot frees is known
exactly, which makes an honest Retry-After.

The Redis side is one Lua script for all the limits of a request, so the
check-and-record is atomic across every gateway replica: either every limit
has room and the request is recorded in each, or it is recorded in none
(refused requests do not count, so a client that keeps hammering is let in
again as soon as its window allows). The script reads the time from Redis, so
replicas with skewed clocks still agree.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from gateway.ratelimit.policy import Check, Limit

_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local counts = {}
local allowed = 1
for i = 1, n do
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  counts[i] = redis.call('ZCARD', KEYS[i])
  if counts[i] >= tonumber(ARGV[2 * i]) then allowed = 0 end
end
local out = {allowed}
for i = 1, n do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local count = counts[i]
  if allowed == 1 then
    redis.call('ZADD', KEYS[i], now, ARGV[1])
    redis.call('PEXPIRE', KEYS[i], window)
    count = count + 1
  end
  -- The member whose leaving frees a slot: the oldest, or more when over the limit.
  local index = 0
  if count > limit then index = count - limit end
  local reset = window
  local entry = redis.call('ZRANGE', KEYS[i], index, index, 'WITHSCORES')
  if entry[2] then reset = tonumber(entry[2]) + window - now end
  out[#out + 1] = count
  out[#out + 1] = reset
end
return out
"""


@dataclass(frozen=True, slots=True)
class Usage:
    """Where one limit stands after a request: used slots and seconds until one frees."""

    limit: Limit
    used: int
    reset_seconds: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit.rate.limit - self.used)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may pass, and every limit it was counted against."""

    allowed: bool
    usages: tuple[Usage, ...]

    @property
    def tightest(self) -> Usage:
        """The limit closest to refusing (the one a client should pace itself by)."""
        return min(self.usages, key=lambda u: (u.remaining, -u.reset_seconds))

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds until every full limit has a slot again (0 when allowed)."""
        if self.allowed:
            return 0
        full = [u.reset_seconds for u in self.usages if u.remaining == 0]
        return max(1, math.ceil(max(full, default=1.0)))


class RedisWindows:
    """The shared counters: one script call per request, whatever its number of limits."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._prefix = f"{key_prefix}ratelimit:"
        self._script = redis.register_script(_SLIDING_WINDOW)

    async def hit(self, checks: Sequence[Check]) -> Verdict:
        keys = [self._prefix + check.key for check in checks]
        args: list[str | int] = [secrets.token_hex(8)]
        for check in checks:
            args += [check.limit.rate.limit, check.limit.rate.window_seconds * 1000]
        answer = await self._script(keys=keys, args=args)
        allowed, rest = int(answer[0]), answer[1:]
        usages = tuple(
            Usage(check.limit, int(rest[2 * i]), int(rest[2 * i + 1]) / 1000)
            for i, check in enumerate(checks)
        )
        return Verdict(bool(allowed), usages)


class LocalWindows:
    """The same algorithm in this process's memory, for the limits that must hold without Redis.

    Each replica counts on its own, so N replicas admit up to N times a limit;
    for the auth endpoints that is still a wall against password guessing,
    where failing open would be none. The number of tracked keys is bounded
    (least recently used go first), so a flood of addresses cannot exhaust memory.
    """

    def __init__(self, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._max_keys = max_keys
        self._clock = clock
        self._log: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, checks: Sequence[Check]) -> Verdict:
        now = self._clock()
        logs = [self._window(check, now) for check in checks]
        allowed = all(len(log) < c.limit.rate.limit for log, c in zip(logs, checks, strict=True))
        usages: list[Usage] = []
        for log, check in zip(logs, checks, strict=True):
            if allowed:
                log.append(now)
            rate = check.limit.rate
            index = max(0, len(log) - rate.limit)
            reset = log[index] + rate.window_seconds - now if log else float(rate.window_seconds)
            usages.append(Usage(check.limit, len(log), reset))
        return Verdict(allowed, tuple(usages))

    def _window(self, check: Check, now: float) -> deque[float]:
        log = self._log.get(check.key)
        if log is None:
            log = self._log[check.key] = deque()
            while len(self._log) > self._max_keys:
                self._log.popitem(last=False)
        else:
            self._log.move_to_end(check.key)
        horizon = now - check.limit.rate.window_seconds
        while log and log[0] <= horizon:
            log.popleft()
        return log
