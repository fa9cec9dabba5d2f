"""Cache-aside for the public reads: serve from Redis, else rebuild once, store, and serve.

Routes hand `ResponseCache.serve` an entry name, a TTL and a `build` function
that makes the anonymous answer from the services. The flow:

1. One Lua call looks the entry up. A hit is answered from its bytes, with the
   caller's per-user members spliced in from their own Redis values, so a hit
   makes no gRPC call at all (signed-in or not, once the user's values are known).
2. A miss either holds the rebuild lock or finds another request rebuilding:
   then it polls briefly (10 ms doubling to 100 ms, up to the rebuild wait)
   for that value, and past the wait rebuilds itself rather than fail.
3. The rebuild runs without the caller's identity, so nothing per-user can
   reach the shared entry even from a service that varies its answer by
   caller; it is stored only if no tag of it was invalidated meanwhile.
4. With Redis down (or the cache off) every request is a rebuild: slower,
   never wrong.
5. An anonymous Redis hit is also offered to the process's in-memory L1
   (gateway.cache.memory), which answers the same request again before
   routing, for a few seconds at most.

Writes call `invalidate` with the tags they changed (and the user's own stale
values), and `invalidate_later` for counters that services update from events
a moment after the write (comment and post counts), so the second pass drops
what a read in between stored. A failed invalidation is retried a few times.
Each one also drops the tags from this process's L1 once Redis is done (every
other gateway's hears of it through pub/sub, gateway.cache.fanout), so a
write's own answer is never followed by an older read from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import Response

from common.context import caller_id_var
from gateway.cache.document import Document
from gateway.cache.memory import MemoryCache, OfferedAnswer, memory_headers, memory_offer_var
from gateway.cache.personal import PersonalPart
from gateway.cache.store import CacheStore, Hit, Miss, PersonalChange
from gateway.clients import Clients
from gateway.metrics import CACHE_FILLS, CACHE_INVALIDATIONS, CACHE_LOOKUPS, CACHE_REBUILD_WAITS
from gateway.redis_guard import RedisGuard, RedisUnavailable
from gateway.responses import JSONBytesResponse

log = logging.getLogger("agora.gateway.cache")

# RFC 9211 Cache-Status, so clients and tests can see what happened.
CACHE_STATUS = "Cache-Status"
_NAME = "agora-gateway"
_FIRST_POLL_SECONDS = 0.01
_MAX_POLL_SECONDS = 0.1
_INVALIDATION_ATTEMPTS = 5
_HIT = f"{_NAME}; hit"


@dataclass(frozen=True, slots=True)
class Built:
    """A rebuilt answer: its document, the tags of what it shows, and whether to store it.

    Not cacheable when part of it could not be made exactly (e.g. the exact
    tallies were unavailable): it is served, but not kept for others.
    """

    document: Document
    tags: tuple[str, ...]
    cacheable: bool = True


Builder = Callable[[], Awaitable[Built]]


@dataclass(frozen=True, slots=True)
class CacheTTLs:
    """Seconds each kind of cached answer lives (the design's TTLs, from the settings)."""

    post: int
    profile: int
    community: int
    listing: int


@dataclass(frozen=True, slots=True)
class CacheTimes:
    lock_seconds: float
    wait_seconds: float
    settle_seconds: float
    personal_ttl_seconds: int


class ResponseCache:
    """See the module doc; `store` is None when the cache is turned off."""

    def __init__(
        self,
        store: CacheStore | None,
        guard: RedisGuard,
        clients: Clients,
        times: CacheTimes,
        ttls: CacheTTLs,
        *,
        memory: MemoryCache | None = None,
    ) -> None:
        """`memory` is the in-process L1, None when it is off (always when `store` is None)."""
        self.ttls = ttls
        self.memory = memory if store is not None else None
        self._store = store
        self._guard = guard
        self._clients = clients
        self._times = times
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._store is not None

    @property
    def channel(self) -> str | None:
        """Where every gateway's invalidations are published (None with the cache off)."""
        return self._store.channel if self._store is not None else None

    # Reading -----------------------------------------------------------------------------

    async def serve(
        self,
        name: str,
        *,
        resource: str,
        ttl_seconds: int,
        build: Builder,
        viewer: str | None,
        personal: PersonalPart | None = None,
    ) -> Response:
        """The answer for entry `name`, personalised for `viewer` (a user id, or None)."""
        store = self._store
        if store is None:
            return await self._bypass(resource, build, viewer, personal)
        mode = personal.mode if personal is not None and viewer is not None else None
        token = secrets.token_hex(8)
        lock_ms = int(self._times.lock_seconds * 1000)

        async def look() -> Hit | Miss:
            return await self._guard.run(
                lambda: store.lookup(
                    name, lock_token=token, lock_ms=lock_ms, viewer=viewer, mode=mode
                )
            )

        try:
            found = await look()
            found, waited = await self._await_rebuild(found, look)
        except RedisUnavailable:
            return await self._bypass(resource, build, viewer, personal)
        if isinstance(found, Hit):
            if waited:
                CACHE_REBUILD_WAITS.labels(resource, "served").inc()
            CACHE_LOOKUPS.labels(resource, "hit").inc()
            body = await self._personalise(found.document, viewer, personal, found)
            response = _answer(body, _HIT)
            if viewer is None:
                _offer_to_memory(found, resource, response)
            return response
        if waited:
            CACHE_REBUILD_WAITS.labels(resource, "timeout").inc()
        CACHE_LOOKUPS.labels(resource, "miss").inc()
        stored = False
        try:
            built = await _anonymously(build)
            if built.cacheable:
                stored = await self._fill(
                    store,
                    name,
                    built,
                    resource=resource,
                    ttl_seconds=ttl_seconds,
                    miss=found,
                    token=token,
                )
            else:
                CACHE_FILLS.labels(resource, "skipped").inc()
        finally:
            if not stored and found.locked:
                await self._release(store, name, token)
        body = await self._personalise(built.document, viewer, personal, found)
        return _answer(body, f"{_NAME}; fwd=miss" + ("; stored" if stored else ""))

    async def _await_rebuild(
        self, found: Hit | Miss, look: Callable[[], Awaitable[Hit | Miss]]
    ) -> tuple[Hit | Miss, bool]:
        """While another request rebuilds the entry, poll for its value (or its lock)."""
        if not isinstance(found, Miss) or found.locked:
            return found, False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._times.wait_seconds
        delay = _FIRST_POLL_SECONDS
        while isinstance(found, Miss) and not found.locked and loop.time() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, _MAX_POLL_SECONDS)
            found = await look()
        return found, True

    async def _fill(
        self,
        store: CacheStore,
        name: str,
        built: Built,
        *,
        resource: str,
        ttl_seconds: int,
        miss: Miss,
        token: str,
    ) -> bool:
        try:
            stored = await self._guard.run(
                lambda: store.fill(
                    name,
                    built.document,
                    tags=built.tags,
                    ttl_seconds=ttl_seconds,
                    started_ms=miss.started_ms,
                    lock_token=token,
                )
            )
        except RedisUnavailable:
            CACHE_FILLS.labels(resource, "error").inc()
            return False
        CACHE_FILLS.labels(resource, "stored" if stored else "stale").inc()
        return stored

    async def _release(self, store: CacheStore, name: str, token: str) -> None:
        with contextlib.suppress(RedisUnavailable):  # else the lock lapses on its own
            await self._guard.run(lambda: store.release(name, lock_token=token))

    async def _bypass(
        self, resource: str, build: Builder, viewer: str | None, personal: PersonalPart | None
    ) -> Response:
        CACHE_LOOKUPS.labels(resource, "bypass").inc()
        built = await _anonymously(build)
        body = await self._personalise(built.document, viewer, personal, None)
        return _answer(body, f"{_NAME}; fwd=bypass")

    async def _personalise(
        self,
        document: Document,
        viewer: str | None,
        personal: PersonalPart | None,
        found: Hit | Miss | None,
    ) -> bytes:
        """The body with the viewer's members; stored values first, the service for the rest."""
        if viewer is None or personal is None or not document.ids:
            return document.body
        stored = found.personal if isinstance(found, Hit) else None
        if stored is not None:
            values = personal.from_stored(document.ids, stored)
            if values is not None:
                return document.personalise(personal.member, values)
        resolved = await personal.fetch(self._clients, viewer, document.ids, stored)
        epoch = found.epoch if found is not None else None
        if resolved.to_store and epoch is not None and self._store is not None:
            store = self._store
            with contextlib.suppress(RedisUnavailable):  # else the service is asked next time
                await self._guard.run(
                    lambda: store.fill_personal(
                        viewer,
                        personal.mode,
                        resolved.to_store,
                        epoch=epoch,
                        ttl_seconds=self._times.personal_ttl_seconds,
                    )
                )
        return document.personalise(personal.member, resolved.values)

    # Writing -----------------------------------------------------------------------------

    async def invalidate(self, *tags: str, personal: PersonalChange | None = None) -> None:
        """Drop the entries of these tags (and the user's stale values) after a write.

        Never fails the write that succeeded before it: a Redis failure is
        retried in the background a few times, then logged.
        """
        await self._invalidate(tags, personal, attempts_left=_INVALIDATION_ATTEMPTS)

    def invalidate_later(self, *tags: str) -> None:
        """Invalidate again once services applied the events of a write (settle time)."""
        if self._store is not None and self._times.settle_seconds > 0:
            self._schedule(tags, None, self._times.settle_seconds, _INVALIDATION_ATTEMPTS)

    async def _invalidate(
        self, tags: Sequence[str], personal: PersonalChange | None, *, attempts_left: int
    ) -> None:
        store = self._store
        if store is None or (not tags and personal is None):
            return
        try:
            await self._guard.run(
                lambda: store.invalidate(
                    tags,
                    personal=personal,
                    personal_ttl_seconds=self._times.personal_ttl_seconds,
                )
            )
        except RedisUnavailable as error:
            self._forget_in_memory(tags)
            if attempts_left > 1:
                CACHE_INVALIDATIONS.labels("retried").inc()
                delay = max(self._times.settle_seconds, 1.0)
                self._schedule(tags, personal, delay, attempts_left - 1)
            else:
                CACHE_INVALIDATIONS.labels("failed").inc()
                log.error(
                    "cache invalidation failed; entries may be stale until they expire",
                    extra={"tags": list(tags), "error": str(error)[:200]},
                )
            return
        self._forget_in_memory(tags)
        CACHE_INVALIDATIONS.labels("done").inc()

    def _forget_in_memory(self, tags: Sequence[str]) -> None:
        """Drop the tags from this process's L1, after Redis dropped them (or failed to).

        Not before: a read between the two would take the old entry from
        Redis and could put it in memory with a generation the drop has not
        yet moved on.
        """
        if self.memory is not None and tags:
            self.memory.invalidate(tags)

    def _schedule(
        self,
        tags: Sequence[str],
        personal: PersonalChange | None,
        delay: float,
        attempts_left: int,
    ) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            await self._invalidate(tags, personal, attempts_left=attempts_left)

        task = asyncio.get_running_loop().create_task(later())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        """Cancel pending invalidations (on shutdown; their entries expire on their own)."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)


async def _anonymously(build: Builder) -> Built:
    """Run a rebuild without the caller's identity in gRPC metadata."""
    token = caller_id_var.set(None)
    try:
        return await build()
    finally:
        caller_id_var.reset(token)


def _offer_to_memory(found: Hit, resource: str, response: Response) -> None:
    """Hand an anonymous Redis hit to the L1, when this request carries its offer."""
    offer = memory_offer_var.get()
    if offer is not None and found.tags is not None:
        # The headers as they are now: layers outside (gzip) may rewrite the list in place.
        headers = memory_headers(response.raw_headers)
        offer.answer = OfferedAnswer(
            found.document.body, headers, found.tags, resource, found.ttl_ms
        )


def _answer(body: bytes, status: str) -> Response:
    return JSONBytesResponse(body, headers={CACHE_STATUS: status})
