"""Durable, idempotent consumers of domain events.

Each consumer is a JetStream durable pull consumer declared explicitly at
start-up (an existing durable would silently keep an old config otherwise).
An event is applied inside a database transaction that first records its
event id in the consumer's `processed_events` table: a replay finds the id
already there and changes nothing, so at-least-once delivery gives exactly-
once effects. Failures are retried with growing delays (`nak(delay)`); after
`max_deliver` attempts the message is parked on the dead-letter subject and
terminated, so one poison event cannot block the rest. Each event is
handled in a CONSUMER span that continues the trace the event was published in
(common.tracing), so the handler's SQL and calls belong to that trace.

Batches. Under load a fetch brings up to `batch_size` messages; they are
applied in stream order in ONE transaction (one multi-row insert into
`processed_events`, the handlers, one commit), then acknowledged, so a busy
consumer pays a transaction per batch rather than per event. When anything in
the batch fails, the transaction rolls back and every message of the batch is
handled again on its own, in its own transaction, with the retry and parking
rules above: a poison event costs its neighbours one extra attempt, never a
delivery.

Filters. The durable is given ONE filter subject, which every NATS version
honours (servers before 2.10 silently ignore a list of filter subjects and
deliver the whole stream). For several subjects it is the narrowest pattern
covering them all (`covering_subject`); the consumer then acknowledges, without
touching the database, the few covered subjects it did not ask for. A durable
whose filter changed is made again where it stood (see `_declare`).
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
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.bus import STREAM_MAX_AGE, BusUnavailable, EventBus
from common.db import Database
from common.events import LEGACY_VOTE_CAST_SUBJECT, VOTE_CAST_SUBJECTS
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


def covering_subject(subjects: list[str]) -> str:
    """One filter subject that matches every subject (or pattern) in subjects.

    Equal-length subjects keep the tokens they share and get `*` where they
    differ (`a.x.created.v1`, `a.x.deleted.v1` -> `a.x.*.v1`); otherwise the
    tokens they share, then `>`.
    """
    if not subjects:
        raise ValueError("a consumer needs at least one subject")
    if len(subjects) == 1:
        return subjects[0]
    split = [subject.split(".") for subject in subjects]
    if len({len(tokens) for tokens in split}) == 1 and not any(">" in t for t in split):
        return ".".join(
            column[0] if len(set(column)) == 1 else "*" for column in zip(*split, strict=True)
        )
    shared: list[str] = []
    for column in zip(*split, strict=False):
        if len(set(column)) != 1 or column[0] in ("*", ">"):
            break
        shared.append(column[0])
    if len(shared) == min(len(tokens) for tokens in split):
        shared.pop()  # `a.b.>` must not drop `a.b` itself: it needs one more token
    return ".".join([*shared, ">"])


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
        self.filter_subject = covering_subject(self.subjects)
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
                        await self.handle_batch(messages)
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
        await self._declare(js)
        return await js.pull_subscribe_bind(durable=self.durable, stream=self.bus.stream)

    async def _declare(self, js: JetStreamContext) -> None:
        """Create the durable, or bring an existing one to this config at its place.

        One filter subject, which every version honours (servers before 2.10
        ignore filter_subjects); wants() checks the exact subjects, so a
        consumer never acts on someone else's events. A durable whose filter
        differs (one made before its subjects changed) is not changed in
        place: NATS 2.9 accepts a new wildcard filter and then delivers
        nothing. It is deleted and made again from the first event it had
        not acknowledged; events it had acknowledged out of order come again
        and are skipped as processed. Other settings are updated in place.
        """
        config = api.ConsumerConfig(
            durable_name=self.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self.ack_wait.total_seconds(),
            max_deliver=self.max_deliver + 1,  # the last delivery parks it
            filter_subject=self.filter_subject,
            max_ack_pending=1000,
        )
        try:
            existing = await js.consumer_info(self.bus.stream, self.durable)
        except NotFoundError:
            await js.add_consumer(self.bus.stream, config)
            return
        if existing.config.filter_subject == self.filter_subject and not (
            existing.config.filter_subjects
        ):
            # Where it starts cannot change; keep what it was made with.
            config.deliver_policy = existing.config.deliver_policy
            config.opt_start_seq = existing.config.opt_start_seq
            await js.add_consumer(self.bus.stream, config)
            return
        start = (existing.ack_floor.stream_seq if existing.ack_floor else 0) + 1
        log.info(
            "consumer %s changes its filter; made again from stream sequence %d",
            self.durable,
            start,
            extra={
                "old_filter": existing.config.filter_subject or existing.config.filter_subjects,
                "new_filter": self.filter_subject,
            },
        )
        await js.delete_consumer(self.bus.stream, self.durable)
        config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = start
        await js.add_consumer(self.bus.stream, config)

    def wants(self, subject: str) -> bool:
        return any(subject_matches(pattern, subject) for pattern in self.subjects)

    async def handle_batch(self, messages: list[Msg]) -> None:
        """Apply a fetched batch in one transaction; on any failure, message by message."""
        wanted: list[tuple[Msg, events_pb2.Event, uuid.UUID]] = []
        alone: list[Msg] = []
        for message in messages:
            if await self._skipped(message):
                continue
            decoded = self._decode(message)
            if decoded is None:
                alone.append(message)  # handle() parks it
            else:
                wanted.append((message, *decoded))
        if len(wanted) == 1:
            alone.append(wanted[0][0])
        elif wanted:
            try:
                applied = await self._apply_together(wanted)
            except Exception:
                log.info(
                    "batch of %d events failed in %s; handling them one by one",
                    len(wanted),
                    self.durable,
                    exc_info=True,
                )
                alone.extend(message for message, _, _ in wanted)
            else:
                for message, _, event_id in wanted:
                    outcome = "applied" if event_id in applied else "duplicate"
                    applied.discard(event_id)  # a twin in the same batch is a duplicate
                    HANDLED.labels(self.durable, outcome).inc()
                    await message.ack()
        for message in alone:
            await self.handle(message)

    async def _apply_together(
        self, batch: list[tuple[Msg, events_pb2.Event, uuid.UUID]]
    ) -> set[uuid.UUID]:
        """One transaction for the whole batch, in stream order; the ids it applied."""
        async with self.db.transaction() as session:
            inserted = await session.scalars(
                insert(self.processed)
                .values(
                    [{"consumer": self.durable, "event_id": event_id} for *_, event_id in batch]
                )
                .on_conflict_do_nothing()
                .returning(self.processed.c.event_id)
            )
            fresh = set(inserted)
            applied: list[events_pb2.Event] = []
            for message, event, event_id in batch:
                if event_id not in fresh:
                    continue
                fresh.discard(event_id)  # a twin later in the batch is a duplicate
                with self._span(message):
                    await self.handler(session, event)
                applied.append(event)
        await self._after_applied(applied)
        return {uuid.UUID(event.id) for event in applied}

    def _span(self, message: Msg) -> contextlib.AbstractContextManager[None]:
        headers = message.headers or {}
        return processing(
            message.subject,
            headers.get("Nats-Msg-Id", ""),
            headers,
            consumer=self.durable,
            delivery=message.metadata.num_delivered or 1,
        )

    async def handle(self, message: Msg) -> None:
        with self._span(message):
            await self._handle(message)

    async def _skipped(self, message: Msg) -> bool:
        """Acknowledge a message outside this consumer's subjects, without touching the database."""
        if self.wants(message.subject):
            return False
        HANDLED.labels(self.durable, "not_subscribed").inc()
        await message.ack()
        return True

    @staticmethod
    def _decode(message: Msg) -> tuple[events_pb2.Event, uuid.UUID] | None:
        try:
            event = events_pb2.Event.FromString(message.data)
            return event, uuid.UUID(event.id)
        except (DecodeError, ValueError):
            return None

    async def _handle(self, message: Msg) -> None:
        if await self._skipped(message):
            return
        decoded = self._decode(message)
        if decoded is None:
            await self._park(message, "undecodable event")
            return
        event, event_id = decoded
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
        await self._after_applied([event])
        return True

    async def _after_applied(self, events: list[events_pb2.Event]) -> None:
        """After the commit: the hooks, and now and then forgetting old ids."""
        for event in events:
            if self.after_commit is not None:
                try:
                    await self.after_commit(event)
                except Exception:
                    # The change is committed; a failed follow-up must not redeliver it.
                    log.exception("after-commit hook of %s failed", self.durable)
        before = self._applied
        self._applied += len(events)
        if self._applied // PRUNE_EVERY > before // PRUNE_EVERY:
            await self._prune()

    async def _prune(self) -> None:
        """Forget ids older than the stream keeps events: they cannot come back.

        Housekeeping: a failure is logged and tried again PRUNE_EVERY events later,
        never taken for a failure of the events just applied.
        """
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    sa.delete(self.processed).where(
                        self.processed.c.consumer == self.durable,
                        self.processed.c.processed_at < sa.func.now() - REMEMBER_PROCESSED,
                    )
                )
        except Exception:
            log.exception("pruning processed events of %s failed", self.durable)

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


def vote_tally_consumers(
    bus: EventBus,
    db: Database,
    processed: sa.Table,
    *,
    target_type: events_pb2.VoteTargetType.ValueType,
    durable: str,
    legacy_durable: str,
    handler: Handler,
) -> list[EventConsumer]:
    """The consumers of the votes on one service's targets (posts, or comments).

    `durable` takes its target type's subject; `legacy_durable` (the service's
    durable from before vote_cast was split by target type) keeps the one old
    subject of every vote, to apply what older votes replicas left there; the
    handler skips the other type's votes. See common.events and
    docs/architecture.md ("Events") for when the legacy one can go.
    """
    return [
        EventConsumer(bus, db, processed, durable=name, subjects=[subject], handler=handler)
        for name, subject in (
            (durable, VOTE_CAST_SUBJECTS[target_type]),
            (legacy_durable, LEGACY_VOTE_CAST_SUBJECT),
        )
    ]
