"""Reading and writing the run's event stream from tests: one helper for every test module.

Readers are ephemeral pull consumers without acks (an ephemeral reader that
acked nothing would stall at max_ack_pending), so reading never disturbs the
services' durable consumers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import nats
from agora.events.v1 import events_pb2
from nats.js import JetStreamContext, api

from common.events import SUBJECTS
from common.settings import CommonSettings
from tests.integration.grpc_support import eventually
from tools.stack import Stack


class EventStream:
    def __init__(self, stack: Stack, js: JetStreamContext) -> None:
        self.stream = stack.env["AGORA_NATS_STREAM"]
        self.prefix = stack.env["AGORA_NATS_SUBJECT_PREFIX"]
        self.js = js

    @classmethod
    @asynccontextmanager
    async def connect(cls, stack: Stack) -> AsyncIterator[EventStream]:
        client = await nats.connect(CommonSettings().nats_url.get_secret_value())
        try:
            yield cls(stack, client.jetstream())
        finally:
            await client.close()

    def subject(self, kind: str) -> str:
        return self.prefix + SUBJECTS[kind]

    async def publish(self, event: events_pb2.Event, *, msg_id: str | None = None) -> None:
        """Publish as a producer's relay would, Nats-Msg-Id included."""
        kind = event.WhichOneof("payload")
        assert kind is not None
        await self.js.publish(
            self.subject(kind),
            event.SerializeToString(),
            stream=self.stream,
            headers={"Nats-Msg-Id": msg_id or event.id},
        )

    async def envelopes(
        self, kind: str, match: Callable[[events_pb2.Event], bool]
    ) -> list[events_pb2.Event]:
        """Whole events of one kind in the stream that match, in order."""
        subscription = await self.js.pull_subscribe(
            self.subject(kind),
            stream=self.stream,
            config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE),
        )
        found: list[events_pb2.Event] = []
        try:
            while True:
                try:
                    messages = await subscription.fetch(500, timeout=0.5)
                except TimeoutError:  # nats' own TimeoutError is a subclass
                    return found
                for message in messages:
                    event = events_pb2.Event.FromString(message.data)
                    if match(event):
                        found.append(event)
        finally:
            await subscription.unsubscribe()

    async def matching(self, kind: str, match: Callable[[events_pb2.Event], bool]) -> list[Any]:
        """Events of one kind in the stream that match, as their payloads, in order."""
        return [getattr(event, kind) for event in await self.envelopes(kind, match)]

    async def published(
        self,
        kind: str,
        match: Callable[[events_pb2.Event], bool],
        count: int,
        within: float = 15.0,
    ) -> list[Any]:
        """Exactly `count` matching events, waiting for the relay; more than that fails at once."""

        async def enough() -> list[Any] | None:
            found = await self.matching(kind, match)
            assert len(found) <= count, found
            return found if len(found) == count else None

        return await eventually(enough, within=within)
