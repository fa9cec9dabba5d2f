"""Durable, idempotent consumers of domain events.

Each consumer is a JetStream durable pull consumer declared explicitly at
start-up (an existing durable would silently keep an old config otherwise).
A message is handled inside one database transaction that first records its
event id in the consumer's `processed_events` table: a replay finds the id
already there and changes nothing, so at-least-once delivery gives exactly-
once effects. Failures are retried with growing delays (`nak(delay)`); after
`max_deliver` attempts the message is parked on the dead-letter subject and
terminated, so one poison event cannot block the rest. Each delivery is
handled in a CONSUMER span that continues the trace the event was published in
(common.tracing), so the handler's SQL and calls belong to that trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import sqlalchemy as sa
from agora.events.v1 import events_pb2
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext, api
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.bus import STREAM_MAX_AGE, BusUnavailable, EventBus
from common.db import Database
from common.tracing import carrier, processing, record_error

log = logging.getLogger("agora.consumer")

HANDLED = Counter(
    "agora_events_handled_total",
    "Events a consumer handled, by outcome (applied, duplicate, retried, dead_lettered,"
    " not_subscribed).",
    ["consumer", "outcome"],
)

# The durable's own view from JetStream, refreshed every lag_interval by the
# consumer (every replica reports the same durable: aggregate with max).
PENDING = Gauge(
    "agora_consumer_pending",
    "Events in the stream this durable consumer has not been delivered yet (its lag).",
    ["consumer"],
)
ACK_PENDING = Gauge(
    "agora_consumer_ack_pending",
    "Events delivered to this durable consumer and not yet acknowledged.",
    ["consumer"],
)
REDELIVERED = Gauge(
    "agora_consumer_redelivered",
    "Events delivered to this durable consumer more than once and not yet acknowledged.",
    ["consumer"],
)

Handler = Callable[[AsyncSession, events_pb2.Event], Awaitable[None]]
# Runs after the handler's transaction committed (e.g. cache invalidation,
# waking a worker): only then is the change visible to other sessions.
AfterCommit = Callable[[events_pb2.Event], Awaitable[None]]

# The stream keeps events a week (common.bus.STREAM_MAX_AGE); ids older than
# that (plus a margin) can never be delivered again.
REMEMBER_PROCESSED = STREAM_MAX_AGE + timedelta(days=1)
PRUNE_EVERY = 1000


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` is one or more."""
    wanted, actual = pattern.split("."), subject.split(".")
    for index, part in enumerate(wanted):
        if part == ">":
            return len(actual) > index
        if index >= len(actual) or part not in ("*", actual[index]):
            return False
    return len(wanted) == len(actual)


def processed_events_table(metadata: sa.MetaData) -> sa.Table:
    """Ids of events a consumer already applied (its migration creates the same)."""
    return sa.Table(
        "processed_events",
        metadata,
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


class EventConsumer:
    def __init__(
        self,
        bus: EventBus,
        db: Database,
        processed: sa.Table,
        *,
        durable: str,
        subjects: list[str],
        handler: Handler,
        max_deliver: int = 8,
        ack_wait: timedelta = timedelta(seconds=30),
        batch_size: int = 64,
        after_commit: AfterCommit | None = None,
        lag_interval: float = 10.0,
    ) -> None:
        self.bus = bus
        self.db = db
        self.processed = processed
        self.durable = durable
        self.subjects = [bus.subject_prefix + subject for subject in subjects]
        self.handler = handler
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.batch_size = batch_size
        self.after_commit = after_commit
        self.lag_interval = lag_interval
        self._lag_measured_at = -math.inf
        self._applied = 0

    @property
    def dead_letter_subject(self) -> str:
        return f"{self.bus.subject_prefix}deadletter.{self.durable}"

    async def run(self) -> None:
        """Consume forever, reconnecting after NATS outages; shutdown cancels this."""
        backoff = 0.2
        while True:
            try:
                subscription = await self._subscribe()
                backoff = 0.2
                self._lag_measured_at = -math.inf
                try:
                    while True:
                        await self._report_lag(subscription)
                        try:
                            messages = await subscription.fetch(self.batch_size, timeout=1)
                        except TimeoutError:
                            # Nothing came within the second: nats' own TimeoutError, or
                            # (from a race inside nats-py's fetch) asyncio's, which is
                            # not an outage and must not make the consumer resubscribe.
                            continue
                        for message in messages:
                            await self.handle(message)
                finally:
                    # Without this the connection's drain waits out its whole
                    # timeout for the subscription, and SIGTERM takes 30 s.
                    with contextlib.suppress(NatsError, OSError, TimeoutError):
                        await subscription.unsubscribe()
            except (BusUnavailable, NatsError, OSError, TimeoutError) as error:
                log.warning(
                    "consumer %s waiting for NATS",
                    self.durable,
                    extra={"error": repr(error), "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _report_lag(self, subscription: JetStreamContext.PullSubscription) -> None:
        """Refresh the lag gauges every lag_interval (once right after subscribing)."""
        now = time.monotonic()
        if now - self._lag_measured_at < self.lag_interval:
            return
        self._lag_measured_at = now
        try:
            info = await subscription.consumer_info()
        except (NatsError, OSError, TimeoutError):
            # The fetch that follows finds out whether NATS is really gone.
            log.debug("consumer %s lag not measured", self.durable, exc_info=True)
            return
        PENDING.labels(self.durable).set(info.num_pending or 0)
        ACK_PENDING.labels(self.durable).set(info.num_ack_pending or 0)
        REDELIVERED.labels(self.durable).set(info.num_redelivered or 0)

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        js = await self.bus.connected()
        # Servers before NATS 2.10 silently ignore filter_subjects; one subject
        # goes in filter_subject, which every version honours, and handle()
        # checks subjects itself, so a consumer never acts on someone else's events.
        single = self.subjects[0] if len(self.subjects) == 1 else None
        config = api.ConsumerConfig(
            durable_name=self.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self.ack_wait.total_seconds(),
            max_deliver=self.max_deliver + 1,  # the last delivery parks it
            filter_subject=single,
            filter_subjects=None if single else self.subjects,
            max_ack_pending=1000,
        )
        await js.add_consumer(self.bus.stream, config)
        return await js.pull_subscribe_bind(durable=self.durable, stream=self.bus.stream)

    def wants(self, subject: str) -> bool:
        return any(subject_matches(pattern, subject) for pattern in self.subjects)

    async def handle(self, message: Msg) -> None:
        headers = message.headers or {}
        with processing(
            message.subject,
            headers.get("Nats-Msg-Id", ""),
            headers,
            consumer=self.durable,
            delivery=message.metadata.num_delivered or 1,
        ):
            await self._handle(message)

    async def _handle(self, message: Msg) -> None:
        if not self.wants(message.subject):
            HANDLED.labels(self.durable, "not_subscribed").inc()
            await message.ack()
            return
        try:
            event = events_pb2.Event.FromString(message.data)
            event_id = uuid.UUID(event.id)
        except (DecodeError, ValueError):
            await self._park(message, "undecodable event")
            return
        deliveries = message.metadata.num_delivered or 1
        try:
            applied = await self._apply(event_id, event)
        except Exception as error:
            record_error(error)
            if deliveries >= self.max_deliver:
                await self._park(message, repr(error))
                return
            delay = min(0.5 * 2 ** (deliveries - 1), 30.0)
            log.warning(
                "event %s failed in %s; retrying",
                event.id,
                self.durable,
                exc_info=True,
                extra={"deliveries": deliveries, "retry_in_s": delay},
            )
            HANDLED.labels(self.durable, "retried").inc()
            await message.nak(delay=delay)
            return
        HANDLED.labels(self.durable, "applied" if applied else "duplicate").inc()
        await message.ack()

    async def _apply(self, event_id: uuid.UUID, event: events_pb2.Event) -> bool:
        async with self.db.transaction() as session:
            inserted = await session.scalar(
                insert(self.processed)
                .values(consumer=self.durable, event_id=event_id)
                .on_conflict_do_nothing()
                .returning(self.processed.c.event_id)
            )
            if inserted is None:
                return False
            await self.handler(session, event)
        if self.after_commit is not None:
            try:
                await self.after_commit(event)
            except Exception:
                # The change is committed; a failed follow-up must not redeliver it.
                log.exception("after-commit hook of %s failed", self.durable)
        self._applied += 1
        if self._applied % PRUNE_EVERY == 0:
            await self._prune()
        return True

    async def _prune(self) -> None:
        """Forget ids older than the stream keeps events: they cannot come back."""
        async with self.db.transaction() as session:
            await session.execute(
                sa.delete(self.processed).where(
                    self.processed.c.consumer == self.durable,
                    self.processed.c.processed_at < sa.func.now() - REMEMBER_PROCESSED,
                )
            )

    async def _park(self, message: Msg, reason: str) -> None:
        log.error(
            "parking event on %s after %s deliveries",
            self.dead_letter_subject,
            message.metadata.num_delivered,
            extra={"reason": reason, "subject": message.subject},
        )
        try:
            await self.bus.publish(
                self.dead_letter_subject,
                message.data,
                headers={
                    **carrier(),
                    "Agora-Original-Subject": message.subject,
                    "Agora-Reason": reason[:200],
                },
            )
        finally:
            HANDLED.labels(self.durable, "dead_lettered").inc()
            await message.term()
