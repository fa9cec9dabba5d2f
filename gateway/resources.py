"""What the gateway holds open for its whole life, built in the lifespan and nowhere else.

One gRPC channel per upstream (HTTP/2 multiplexes every request over it), one
Redis connection pool, the token verifier with its cached JWKS and the
revocation list. Handlers reach them through `gateway.deps`, never through
module globals, so tests and multiple apps in one process never share state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import grpc
from redis.asyncio import Redis

from common.errors import Unavailable
from common.grpc_client import open_channel
from common.redis_client import open_redis
from common.revocation import RevocationList
from common.tokens import AccessTokenVerifier
from gateway.clients import UPSTREAMS, Clients
from gateway.settings import GatewaySettings

log = logging.getLogger("agora.gateway")


@dataclass(slots=True)
class FailOpenLog:
    """Logs "revocation list unreadable" at most once per interval, with the count.

    When Redis is down every authenticated request fails open; one warning per
    request would drown the logs exactly when they matter. The Prometheus
    counter still counts every single one.
    """

    interval_seconds: float = 10.0
    _last: float = field(default=float("-inf"))
    _suppressed: int = 0

    def report(self, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last < self.interval_seconds:
            self._suppressed += 1
            return
        log.warning(
            "revocation list unreadable; letting verified tokens through",
            extra={"error": type(error).__name__, "suppressed_since_last": self._suppressed},
        )
        self._last, self._suppressed = now, 0


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything a request handler may need, typed."""

    settings: GatewaySettings
    channels: Mapping[str, grpc.aio.Channel]
    clients: Clients
    redis: Redis
    verifier: AccessTokenVerifier
    revocation: RevocationList
    fail_open_log: FailOpenLog


@asynccontextmanager
async def open_resources(settings: GatewaySettings) -> AsyncIterator[Resources]:
    """Open every connection, yield them, and close them in reverse order."""
    async with AsyncExitStack() as stack:
        channels: dict[str, grpc.aio.Channel] = {}
        for upstream in UPSTREAMS:
            channel = open_channel(
                settings.address_of(upstream.name),
                list(upstream.services),
                default_deadline=settings.upstream_deadline_seconds,
            )
            stack.push_async_callback(channel.close, None)
            channels[upstream.name] = channel
        clients = Clients.build(channels, deadline=settings.upstream_deadline_seconds)

        redis = open_redis(settings, timeout_seconds=settings.redis_timeout_seconds)
        stack.push_async_callback(redis.aclose)

        verifier = AccessTokenVerifier(
            clients.auth.get_jwks,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            refresh_interval=settings.jwks_refresh_seconds,
        )
        resources = Resources(
            settings=settings,
            channels=channels,
            clients=clients,
            redis=redis,
            verifier=verifier,
            revocation=RevocationList(redis, settings.redis_key_prefix),
            fail_open_log=FailOpenLog(),
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
