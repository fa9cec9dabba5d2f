"""Reading and writing the run's event stream from tests: one helper for every test module.

Readers are ephemeral pull consumers without acks (an ephemeral reader that
acked nothing would stall at max_ack_pending), so reading never disturbs the
services' durable consumers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import nats
from agora.events.v1 import events_pb2
from nats.js import JetStreamContext, api

from common.events import SUBJECTS, new_event, subject_of
from common.settings import CommonSettings
from tests.integration.grpc_support import eventually
from tools.stack import Stack


def vote_cast(
    target_type: events_pb2.VoteTargetType.ValueType,
    target_id: str,
    *,
    up: int,
    down: int,
    version: int,
) -> events_pb2.Event:
    """A vote_cast as votes publishes it, carrying this absolute tally at this version."""
    return new_event(
        "votes",
        str(uuid.uuid4()),
        vote_cast=events_pb2.VoteCast(
            target_type=target_type,
            target_id=target_id,
            voter_id=str(uuid.uuid4()),
            direction=1,
            score=up - down,
            upvotes=up,
            downvotes=down,
            tally_version=version,
        ),
    )


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
        """The filter of every event of one kind (for vote_cast, a pattern)."""
        return self.prefix + SUBJECTS[kind]

    async def publish(
        self, event: events_pb2.Event, *, msg_id: str | None = None, subject: str | None = None
    ) -> None:
        """Publish as a producer's relay would, Nats-Msg-Id included.

        `subject` (without the run's prefix) overrides the event's own, as an
        older producer would have published it.
        """
        await self.js.publish(
            self.prefix + subject if subject else subject_of(event, self.prefix),
            event.SerializeToString(),
            stream=self.stream,
            headers={"Nats-Msg-Id": msg_id or event.id},
        )

    async def envelopes(
        self, kind: str, match: Callable[[events_pb2.Event], bool]
    ) -> list[events_pb2.Event]:
        """Whole events of one kind in the stream that match, in order."""
        return [event for _, event in await self.delivered(kind, match)]

    async def delivered(
        self, kind: str, match: Callable[[events_pb2.Event], bool]
    ) -> list[tuple[str, events_pb2.Event]]:
        """(subject without the run's prefix, event) of matching events of one kind, in order."""
        subscription = await self.js.pull_subscribe(
            self.subject(kind),
            stream=self.stream,
            config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE),
        )
        found: list[tuple[str, events_pb2.Event]] = []
        try:
            while True:
                try:
                    messages = await subscription.fetch(500, timeout=0.5)
                except TimeoutError:  # nats' own TimeoutError is a subclass
                    return found
                for message in messages:
                    event = events_pb2.Event.FromString(message.data)
                    if match(event):
                        found.append((message.subject.removeprefix(self.prefix), event))
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
