"""The in-process L1: anonymous answers the response cache served lately, kept in memory.

A Redis hit still costs the gateway the whole of FastAPI (routing, dependency
resolution) and a round trip. The hottest anonymous reads (the front page)
are asked for thousands of times a second with the same bytes for an answer,
so `gateway.cache.front` answers them from here before routing, and only
from here: this module holds the entries and decides what may go in.

What goes in, and how it goes stale:

- Only what `ResponseCache.serve` answered from a Redis hit to an anonymous
  caller, byte for byte with its headers, under the exact request (path and
  query string) it answered, with the entry's tags.
- Every entry is dropped by its tags, as in Redis: at once for writes through
  this process (`ResponseCache.invalidate`), and through Redis pub/sub for
  writes through every other gateway (`gateway.cache.fanout`).
- An entry lives `max_age` at most, and never past its Redis entry's own
  expiry, so whatever goes wrong (a lost message, a dead subscription not yet
  noticed) an answer is at most `max_age` older than Redis's.
- A fill must prove it is not older than an invalidation it could have missed:
  the request notes the `generation` before it asks Redis, and the fill is
  refused if any invalidation (or clear) happened since. Without that, a read
  that fetched the old bytes just before a write could store them just after
  the write's invalidation had passed.
- While the invalidation feed is down (not yet subscribed, or lost) the L1 is
  empty and takes nothing: `live` is False.

Bounded by entry count and total body bytes, least recently used out first.
Single event loop only: nothing here awaits, so no lock is needed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from gateway.metrics import CACHE_LOOKUPS, CACHE_MEMORY_BYTES, CACHE_MEMORY_ENTRIES

# What a memory hit says in Cache-Status (RFC 9211), where a Redis hit says `hit`.
MEMORY_HIT_STATUS = "agora-gateway; hit; detail=memory"
_CACHE_STATUS = b"cache-status"

# Requests are named by what the client sent: the path and the raw query string.
Key = tuple[str, bytes]
Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    """One answer as it is sent again: body, the route's headers, what tags it."""

    body: bytes
    headers: Headers
    tags: frozenset[str]
    # The matched route, put back in the scope so logs and metrics name it.
    route: Any
    expires_at: float
    # The `memory` child of agora_gateway_cache_requests_total for its resource.
    counter: Any = field(compare=False)
    size: int = 0


@dataclass(slots=True)
class MemoryOffer:
    """A request's slot: `ResponseCache.serve` fills it when its answer may be kept.

    Made by `gateway.cache.front` before the request reaches the routes, with
    the generation of that moment; `answer` stays None unless the answer was
    an anonymous Redis hit.
    """

    generation: int
    answer: OfferedAnswer | None = None


@dataclass(frozen=True, slots=True)
class OfferedAnswer:
    body: bytes
    headers: Headers
    tags: tuple[str, ...]
    resource: str
    # How much longer the Redis entry lives (ms).
    redis_ttl_ms: int


memory_offer_var: ContextVar[MemoryOffer | None] = ContextVar("memory_offer", default=None)


def memory_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The answer's headers, Cache-Status saying it came from memory."""
    kept = [(k, v) for k, v in raw_headers if k.lower() != _CACHE_STATUS]
    return (*kept, (_CACHE_STATUS, MEMORY_HIT_STATUS.encode()))


class MemoryCache:
    """LRU of `MemoryEntry` by request, indexed by tag; see the module doc."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._entries: OrderedDict[Key, MemoryEntry] = OrderedDict()
        self._by_tag: dict[str, set[Key]] = {}
        self._bytes = 0
        self.generation = 0
        self.live = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: Key) -> MemoryEntry | None:
        """The fresh entry for this request, or None (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            self._export()
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Key, offer: MemoryOffer, route: Any) -> bool:
        """Keep an offered answer; False when it may not be kept (see the module doc)."""
        answer = offer.answer
        if answer is None or not self.live or offer.generation != self.generation:
            return False
        age = min(self.max_age_seconds, answer.redis_ttl_ms / 1000)
        if age <= 0:
            return False
        size = len(answer.body) + sum(len(k) + len(v) for k, v in answer.headers)
        entry = MemoryEntry(
            body=answer.body,
            headers=answer.headers,
            tags=frozenset(answer.tags),
            route=route,
            expires_at=self._clock() + age,
            counter=CACHE_LOOKUPS.labels(answer.resource, "memory"),
            size=size,
        )
        if size > self.max_bytes:
            return False
        if key in self._entries:
            self._remove(key)
        while self._entries and (
            len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes
        ):
            self._remove(next(iter(self._entries)))
        self._entries[key] = entry
        self._bytes += size
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        self._export()
        return True

    def invalidate(self, tags: Iterable[str]) -> int:
        """Drop every entry carrying one of these tags; the number dropped.

        Also refuses every fill whose request started before now, whatever its
        tags: it may hold what this invalidation was about.
        """
        self.generation += 1
        dropped = 0
        for tag in tags:
            for key in tuple(self._by_tag.get(tag, ())):
                self._remove(key)
                dropped += 1
        if dropped:
            self._export()
        return dropped

    def set_live(self, live: bool) -> None:
        """The invalidation feed came up (or went down): start again from empty either way."""
        self.live = live
        self.clear()

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_tag.clear()
        self._bytes = 0
        self._export()

    def _remove(self, key: Key) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    def _export(self) -> None:
        CACHE_MEMORY_ENTRIES.set(len(self._entries))
        CACHE_MEMORY_BYTES.set(self._bytes)
