"""The NATS JetStream connection of one process: publish, and the events stream.

The connection is (re)made lazily by `connected()`, so a process starts, and
keeps serving, while NATS is down: the outbox relay and the consumers simply
retry until it is back. The stream is declared at start-up with settings that
suit an event log: file storage, a week of history and a de-duplication window
long enough for the outbox to republish after a crash without doubles.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from common.settings import CommonSettings

log = logging.getLogger("agora.bus")

STREAM_MAX_AGE = timedelta(days=7)
DUPLICATE_WINDOW = timedelta(minutes=10)
# Seconds to wait for JetStream's ack of a publish.
PUBLISH_TIMEOUT = 5.0


class BusUnavailable(Exception):
    """NATS cannot be reached right now; the caller retries later."""


class EventBus:
    def __init__(self, settings: CommonSettings, *, client_name: str) -> None:
        self._url = settings.nats_url.get_secret_value()
        self.stream = settings.nats_stream
        self.subject_prefix = settings.nats_subject_prefix
        self._client_name = client_name
        self._client: Client | None = None
        # One context per connection, made when it connects, not on every call.
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    async def connected(self) -> JetStreamContext:
        """The JetStream context, connecting (and declaring the stream) if needed."""
        async with self._lock:
            if self._client is None or self._client.is_closed:
                try:
                    client = await nats.connect(
                        self._url,
                        name=self._client_name,
                        connect_timeout=2,
                        # A short reconnect budget: when it runs out the client
                        # closes and the next call here starts over.
                        max_reconnect_attempts=3,
                        reconnect_time_wait=1,
                        # Shutdown must not wait long on a subscription left open.
                        drain_timeout=2,
                        error_cb=self._on_error,
                    )
                except (OSError, TimeoutError, NatsError) as error:
                    raise BusUnavailable(f"cannot connect to NATS: {error!r}") from error
                self._client = client
                self._js = client.jetstream()
                try:
                    await self._ensure_stream(self._js)
                except (TimeoutError, NatsError) as error:
                    await client.close()
                    self._client = self._js = None
                    raise BusUnavailable(f"cannot declare stream: {error!r}") from error
            if not self._client.is_connected or self._js is None:
                raise BusUnavailable("NATS connection is reconnecting")
            return self._js

    async def _on_error(self, error: Exception) -> None:
        log.warning("nats connection error: %r", error)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject_prefix}>"],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            max_age=STREAM_MAX_AGE.total_seconds(),
            duplicate_window=DUPLICATE_WINDOW.total_seconds(),
        )
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, Any]) -> bool:
        """Publish and wait for JetStream's ack; True when it was a new message."""
        js = await self.connected()
        try:
            ack = await js.publish(subject, payload, headers=headers, timeout=PUBLISH_TIMEOUT)
        except (TimeoutError, NatsError) as error:
            raise BusUnavailable(f"publish failed: {error!r}") from error
        return not ack.duplicate

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            try:
                await self._client.drain()
            except (TimeoutError, NatsError):
                await self._client.close()
        self._client = self._js = None
