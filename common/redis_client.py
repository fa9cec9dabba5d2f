"""The one way a process opens its Redis client.

Timeouts are always set: a Redis that hangs must cost a request a bounded
wait (then the caller fails open or answers 503), never a stuck worker.
"""

from __future__ import annotations

from redis.asyncio import Redis

from common.settings import CommonSettings
from common.telemetry import instrument_redis


def open_redis(settings: CommonSettings, *, timeout_seconds: float) -> Redis:
    client = Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        health_check_interval=30,
    )
    instrument_redis(client)
    return client
