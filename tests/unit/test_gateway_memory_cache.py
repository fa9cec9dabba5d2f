"""The in-process L1's bookkeeping (gateway.cache.memory): bounds, LRU, tags and the guards.

Its behaviour through the gateway, with real Redis and services, is in
tests/integration/test_gateway_edge_memory.py; these pin down what is hard
to reach over HTTP: the byte bound, expiry to the millisecond and the fill
that raced an invalidation.
"""

from __future__ import annotations

from gateway.cache.memory import (
    MEMORY_HIT_STATUS,
    MemoryCache,
    MemoryOffer,
    OfferedAnswer,
    memory_headers,
)

HEADERS = memory_headers(
    [(b"content-length", b"4"), (b"content-type", b"application/json"), (b"cache-status", b"x")]
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def memory(clock: Clock | None = None, **bounds: float) -> MemoryCache:
    cache = MemoryCache(
        max_entries=int(bounds.get("max_entries", 100)),
        max_bytes=int(bounds.get("max_bytes", 1 << 20)),
        max_age_seconds=bounds.get("max_age_seconds", 2.0),
        clock=clock or Clock(),
    )
    cache.set_live(True)
    return cache


def offer(cache: MemoryCache, *tags: str, body: bytes = b"{}", ttl_ms: int = 30_000) -> MemoryOffer:
    """An offer made when the request started, answered from a Redis hit."""
    made = MemoryOffer(cache.generation)
    made.answer = OfferedAnswer(body, HEADERS, tags, "post", ttl_ms)
    return made


def key(name: str) -> tuple[str, bytes]:
    return (f"/api/v1/{name}", b"")


def test_headers_say_memory_and_keep_the_rest() -> None:
    assert (
        (b"content-length", b"4"),
        (b"content-type", b"application/json"),
        (b"cache-status", MEMORY_HIT_STATUS.encode()),
    ) == HEADERS


def test_entries_are_dropped_by_their_tags_only() -> None:
    cache = memory()
    assert cache.put(key("a"), offer(cache, "post:1", "posts:all"), None)
    assert cache.put(key("b"), offer(cache, "post:2"), None)
    assert cache.invalidate(["post:1"]) == 1
    assert cache.get(key("a")) is None
    assert cache.get(key("b")) is not None
    assert cache.invalidate(["posts:all", "post:9"]) == 0
    assert cache.invalidate(["post:2"]) == 1
    assert len(cache) == 0
    assert cache.bytes == 0


def test_a_fill_that_started_before_an_invalidation_is_refused() -> None:
    cache = memory()
    early = offer(cache, "post:1")
    cache.invalidate(["community:other"])  # any invalidation: the fill cannot know what it held
    assert not cache.put(key("a"), early, None)
    assert cache.put(key("a"), offer(cache, "post:1"), None)


def test_nothing_is_kept_while_the_feed_is_down_and_it_starts_empty() -> None:
    cache = memory()
    assert cache.put(key("a"), offer(cache), None)
    cache.set_live(False)
    assert len(cache) == 0
    assert not cache.put(key("a"), offer(cache), None)
    cache.set_live(True)
    assert len(cache) == 0
    assert cache.put(key("a"), offer(cache), None)
    unanswered = MemoryOffer(cache.generation)  # a miss, or a signed-in caller's hit
    assert not cache.put(key("b"), unanswered, None)


def test_entries_expire_at_the_max_age_or_with_their_redis_entry() -> None:
    clock = Clock()
    cache = memory(clock, max_age_seconds=2.0)
    cache.put(key("long"), offer(cache, ttl_ms=30_000), None)
    cache.put(key("short"), offer(cache, ttl_ms=500), None)
    assert not cache.put(key("gone"), offer(cache, ttl_ms=-2), None)  # no expiry known
    clock.now += 0.499
    assert cache.get(key("short")) is not None
    clock.now += 0.001
    assert cache.get(key("short")) is None
    clock.now += 1.499
    assert cache.get(key("long")) is not None
    clock.now += 0.001
    assert cache.get(key("long")) is None
    assert len(cache) == 0


def test_bounded_by_entries_and_bytes_least_recently_used_out() -> None:
    cache = memory(max_entries=3)
    for name in "abc":
        cache.put(key(name), offer(cache), None)
    assert cache.get(key("a")) is not None  # a is now the most recently used
    cache.put(key("d"), offer(cache), None)
    assert [cache.get(key(n)) is not None for n in "abcd"] == [True, False, True, True]

    size = len(b"x" * 1000) + sum(len(k) + len(v) for k, v in HEADERS)
    cache = memory(max_bytes=2 * size + 10)
    for name in "abc":
        cache.put(key(name), offer(cache, body=b"x" * 1000), None)
    assert len(cache) == 2
    assert cache.bytes == 2 * size
    assert cache.get(key("a")) is None
    assert not cache.put(key("huge"), offer(cache, body=b"x" * 10_000), None)
    assert len(cache) == 2


def test_a_refill_replaces_the_entry_and_its_tags() -> None:
    cache = memory()
    cache.put(key("a"), offer(cache, "post:1"), None)
    cache.put(key("a"), offer(cache, "post:2", body=b"[1]"), None)
    assert len(cache) == 1
    assert cache.invalidate(["post:1"]) == 0
    entry = cache.get(key("a"))
    assert entry is not None
    assert entry.body == b"[1]"
    assert cache.invalidate(["post:2"]) == 1
