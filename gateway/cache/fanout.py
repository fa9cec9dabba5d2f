"""Every gateway's invalidations, heard through Redis pub/sub and applied to this process's L1.

`CacheStore.invalidate` publishes the tags it invalidated on the cache's
channel in the same Lua call that deletes the entries, whichever gateway made
the write. Each gateway process subscribes (one connection, in the
background) and drops the matching entries of its `MemoryCache` as the
messages arrive; its own writes were dropped locally already, and hearing
them again is harmless.

A message missed is a stale answer kept, so the L1 is only on while the
subscription is known to be up:

- On every subscription made, the first or again after a reconnection (redis-py
  may reconnect and resubscribe on its own), the L1 is cleared and turned on:
  whatever was published meanwhile was missed, so nothing from before is kept.
- The feed pings the server every `ping_seconds` over the subscribed
  connection; a pong that does not come within `pong_wait_seconds`, or any
  error, counts as lost: the L1 is cleared and turned off (it takes no
  entries) until a new subscription is made, tried again with a growing delay.

So at worst (a connection that died silently) entries missed invalidations
for `pong_wait_seconds` plus a ping interval; each of them lives at most the
L1's max age anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.tracing import untraced
from gateway.cache.memory import MemoryCache
from gateway.metrics import CACHE_MEMORY_LIVE
from gateway.redis_guard import ThrottledLog

log = logging.getLogger("agora.gateway.cache")

_PING = b"agora-cache-feed"
_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 5.0


class FeedLost(Exception):
    """The subscribed connection stopped answering pings."""


class InvalidationFeed:
    """Keeps `memory` subscribed to `channel`; run it with `running()`."""

    def __init__(
        self,
        redis: Redis,
        channel: str,
        memory: MemoryCache,
        *,
        ping_seconds: float = 1.0,
        pong_wait_seconds: float = 2.0,
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._memory = memory
        self._ping_seconds = ping_seconds
        self._pong_wait_seconds = pong_wait_seconds
        self._subscribed = False
        self._lost_log = ThrottledLog(
            "cache invalidation feed lost; in-process cache off until it is back",
            interval_seconds=30.0,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Subscribe in the background for the block's duration (the app's lifespan)."""
        task = asyncio.get_running_loop().create_task(self._run(), name="cache-invalidation-feed")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = _FIRST_RETRY_SECONDS
        while True:
            self._subscribed = False
            try:
                with untraced():  # a ping a second must not start a trace a second
                    await self._session()
            except (RedisError, OSError, TimeoutError, FeedLost) as error:
                self._lost_log.report(error)
            finally:
                self._set_live(False)
            delay = _FIRST_RETRY_SECONDS if self._subscribed else min(delay * 2, _MAX_RETRY_SECONDS)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        """One subscription, applying what it hears; ends only by raising."""
        loop = asyncio.get_running_loop()
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            pong_due: float | None = None
            next_ping = loop.time() + self._ping_seconds
            while True:
                wait = (pong_due if pong_due is not None else next_ping) - loop.time()
                message = await pubsub.get_message(timeout=max(wait, 0.0))
                if message is not None:
                    kind = _text(message["type"])
                    if kind == "subscribe":  # made, or made again after a reconnection
                        self._subscribed = True
                        self._set_live(True)
                    elif kind == "message":
                        self._memory.invalidate(_text(message["data"]).split())
                    elif kind == "pong":
                        pong_due = None
                now = loop.time()
                if pong_due is not None and now >= pong_due:
                    raise FeedLost(f"no pong within {self._pong_wait_seconds} s")
                if pong_due is None and now >= next_ping:
                    await pubsub.ping(_PING)
                    pong_due = now + self._pong_wait_seconds
                    next_ping = now + self._ping_seconds
        finally:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _set_live(self, live: bool) -> None:
        """Turn the L1 on or off; it starts empty either way."""
        if live != self._memory.live:
            log.info("in-process cache %s", "on" if live else "off")
        self._memory.set_live(live)
        CACHE_MEMORY_LIVE.set(1 if live else 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
