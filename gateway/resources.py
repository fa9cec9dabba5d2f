"""What the gateway holds open for its whole life, built in the lifespan and nowhere else.

One gRPC channel per upstream (HTTP/2 multiplexes every request over it), each
behind its own circuit breaker; one Redis connection pool, behind a timeout
and a breaker of its own (gateway.redis_guard), shared by the rate limiter,
the response cache and the revocation list (plus, with the in-process L1 on,
one connection subscribed to the cache's invalidations, gateway.cache.fanout);
and the token verifier with its cached JWKS. Handlers reach them through
`gateway.deps`, never through module globals, so tests and multiple apps in
one process never share state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import grpc
from redis.asyncio import Redis

from common.breaker import CircuitBreaker
from common.errors import Unavailable
from common.grpc_client import open_channel
from common.redis_client import open_redis
from common.revocation import RevocationList
from common.tokens import AccessTokenVerifier
from gateway.cache.fanout import InvalidationFeed
from gateway.cache.memory import MemoryCache
from gateway.cache.service import CacheTimes, CacheTTLs, ResponseCache
from gateway.cache.store import CacheStore
from gateway.clients import UPSTREAMS, Clients
from gateway.ratelimit.limiter import RateLimiter
from gateway.ratelimit.policy import LimitPolicy
from gateway.ratelimit.windows import RedisWindows
from gateway.redis_guard import RedisGuard, ThrottledLog
from gateway.settings import GatewaySettings
from gateway.upstream_breakers import BreakerInterceptor

log = logging.getLogger("agora.gateway")


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything a request handler may need, typed."""

    settings: GatewaySettings
    channels: Mapping[str, grpc.aio.Channel]
    breakers: Mapping[str, CircuitBreaker]
    clients: Clients
    redis: Redis
    redis_guard: RedisGuard
    verifier: AccessTokenVerifier
    revocation: RevocationList
    revocation_log: ThrottledLog
    limiter: RateLimiter
    cache: ResponseCache


def _breaker(name: str, settings: GatewaySettings, open_seconds: float) -> CircuitBreaker:
    return CircuitBreaker(
        name,
        failure_ratio=settings.upstream_breaker_failure_ratio,
        window_seconds=settings.upstream_breaker_window_seconds,
        minimum_calls=settings.upstream_breaker_minimum_calls,
        open_seconds=open_seconds,
    )


def _cache(
    settings: GatewaySettings, redis: Redis, guard: RedisGuard, clients: Clients
) -> ResponseCache:
    ttls = CacheTTLs(
        post=settings.cache_post_ttl_seconds,
        profile=settings.cache_profile_ttl_seconds,
        community=settings.cache_community_ttl_seconds,
        listing=settings.cache_listing_ttl_seconds,
    )
    store = None
    memory = None
    if settings.cache_enabled:
        # A tombstone must outlive any rebuild that could have started before it:
        # a few sequential upstream calls, each within the deadline.
        tombstone_seconds = max(
            60.0, 4 * settings.upstream_deadline_seconds + settings.cache_rebuild_lock_seconds
        )
        store = CacheStore(
            redis,
            settings.redis_key_prefix,
            tag_ttl_seconds=max(ttls.post, ttls.profile, ttls.community, ttls.listing) + 60,
            tombstone_ms=int(tombstone_seconds * 1000),
        )
        if settings.cache_memory_max_age_seconds > 0:
            memory = MemoryCache(
                max_entries=settings.cache_memory_max_entries,
                max_bytes=settings.cache_memory_max_bytes,
                max_age_seconds=settings.cache_memory_max_age_seconds,
            )
    times = CacheTimes(
        lock_seconds=settings.cache_rebuild_lock_seconds,
        wait_seconds=settings.cache_rebuild_wait_seconds,
        settle_seconds=settings.cache_settle_seconds,
        personal_ttl_seconds=settings.cache_viewer_ttl_seconds,
    )
    return ResponseCache(store, guard, clients, times, ttls, memory=memory)


@asynccontextmanager
async def open_resources(settings: GatewaySettings) -> AsyncIterator[Resources]:
    """Open every connection, yield them, and close them in reverse order."""
    async with AsyncExitStack() as stack:
        channels: dict[str, grpc.aio.Channel] = {}
        breakers: dict[str, CircuitBreaker] = {}
        for upstream in UPSTREAMS:
            breaker = _breaker(upstream.name, settings, settings.upstream_breaker_open_seconds)
            channel = open_channel(
                settings.address_of(upstream.name),
                list(upstream.services),
                default_deadline=settings.upstream_deadline_seconds,
                interceptors=[BreakerInterceptor(upstream.name, breaker)],  # type: ignore[list-item]
            )
            stack.push_async_callback(channel.close, None)
            channels[upstream.name] = channel
            breakers[upstream.name] = breaker
        clients = Clients.build(channels, deadline=settings.upstream_deadline_seconds)

        redis = open_redis(settings, timeout_seconds=settings.redis_timeout_seconds)
        stack.push_async_callback(redis.aclose)
        guard = RedisGuard(
            _breaker("redis", settings, settings.redis_breaker_open_seconds),
            timeout_seconds=settings.redis_timeout_seconds,
        )
        limiter = RateLimiter(
            LimitPolicy.from_settings(settings),
            RedisWindows(redis, settings.redis_key_prefix),
            guard,
        )
        cache = _cache(settings, redis, guard, clients)
        stack.push_async_callback(cache.aclose)
        if cache.memory is not None and cache.channel is not None:
            feed = InvalidationFeed(redis, cache.channel, cache.memory)
            await stack.enter_async_context(feed.running())

        verifier = AccessTokenVerifier(
            clients.auth.get_jwks,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            refresh_interval=settings.jwks_refresh_seconds,
        )
        resources = Resources(
            settings=settings,
            channels=channels,
            breakers=breakers,
            clients=clients,
            redis=redis,
            redis_guard=guard,
            verifier=verifier,
            revocation=RevocationList(redis, settings.redis_key_prefix),
            revocation_log=ThrottledLog(
                "revocation list unreadable; letting verified tokens through"
            ),
            limiter=limiter,
            cache=cache,
        )
        await _prefetch_jwks(resources)
        yield resources


async def _prefetch_jwks(resources: Resources) -> None:
    """Load the signing keys now so the first request does not wait for them.

    Best effort: the gateway must start even when auth is not up yet (the
    verifier fetches on the first token instead), so a failure is a warning.
    """
    try:
        async with asyncio.timeout(resources.settings.readiness_timeout_seconds):
            await resources.verifier.refresh(force=True)
    except (Unavailable, TimeoutError) as error:
        log.warning(
            "could not load the JWKS at start-up; will retry on the first token",
            extra={"error": type(error).__name__},
        )
