"""The transactional outbox: events committed with the change, published after.

A producing service adds its events to its own `outbox` table in the same
transaction as the change (`stage`), so an event exists if and only if the
change committed. `OutboxRelay` publishes them to JetStream in id order (ids
are time-ordered) with `Nats-Msg-Id` = event id, and marks them published in
the same transaction that claimed them. It never polls by "id > last seen",
which skips rows that commit out of order; it claims unpublished rows with
`FOR UPDATE SKIP LOCKED` under a per-service advisory lock, so replicas never
publish the same batch twice and events leave in order. While NATS is down,
writes keep succeeding and events wait in the table.

Cost per event. A round is one transaction (the lock, then one statement that
claims and marks) however many events it carries; its events are published
in order, each once the previous one is acknowledged (acks awaited together
could let a retry after a reconnect store a lost event behind later ones, and
a consumer that keeps the last value it was sent would keep the older one).
A round woken by a commit waits `linger` (10 ms) first, so the commits of
concurrent requests share it instead of each paying for a round of its own.

Each row keeps, in `headers`, the trace context of the transaction that staged
it, and the relay publishes it in a span of that trace (common.tracing), so a
trace runs from the request that changed something to every consumer of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
import zlib
from datetime import timedelta

import sqlalchemy as sa
from agora.events.v1 import events_pb2
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from common.bus import BusUnavailable, EventBus
from common.db import Database
from common.events import subject_of
from common.tracing import carrier, publishing, untraced

log = logging.getLogger("agora.outbox")

PUBLISHED = Counter("agora_outbox_published_total", "Events the relay published.", ["schema"])
BACKLOG = Gauge("agora_outbox_backlog", "Events committed but not yet published.", ["schema"])
RELAY_FAILURES = Counter(
    "agora_outbox_relay_failures_total", "Relay rounds that failed (NATS or DB down).", ["schema"]
)

KEEP_PUBLISHED = timedelta(days=1)


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    """The outbox table in a service's own schema (its migration creates the same)."""
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
    )


class Outbox:
    """Stages events in a service's outbox and wakes its relay after commit."""

    def __init__(self, table: sa.Table, subject_prefix: str) -> None:
        self.table = table
        self.subject_prefix = subject_prefix
        self.committed = asyncio.Event()

    async def stage(self, session: AsyncSession, *events: events_pb2.Event) -> None:
        """Add events to the session's transaction; nothing is sent until it commits."""
        if not events:
            return
        # The trace of the staging request, continued by the relay and consumers.
        headers = carrier()
        await session.execute(
            sa.insert(self.table),
            [
                {
                    "id": uuid.UUID(event.id),
                    "subject": subject_of(event, self.subject_prefix),
                    "payload": event.SerializeToString(),
                    "headers": headers,
                }
                for event in events
            ],
        )

    def notify_committed(self) -> None:
        """Tell the relay in this process that new events are there (no wait for its poll)."""
        self.committed.set()


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        bus: EventBus,
        *,
        batch_size: int = 200,
        idle_interval: float = 0.5,
        linger: float = 0.01,
        max_backoff: float = 5.0,
        backlog_interval: float = 10.0,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.table = outbox.table
        self.bus = bus
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.linger = linger
        self.max_backoff = max_backoff
        self.backlog_interval = backlog_interval
        self._backlog_measured_at = -math.inf
        schema = self.table.schema or "public"
        self.schema = schema
        # One relay per schema at a time publishes, which keeps events in order.
        self.lock_key = zlib.crc32(f"agora-outbox:{schema}".encode())

    async def run(self) -> None:
        """Publish forever; the process's shutdown cancels this.

        The polling is untraced (its SQL would start a trace every round); each
        event's publication is traced in the trace it was staged in.
        """
        with untraced():
            await self._publish_forever()

    async def _publish_forever(self) -> None:
        backoff = 0.1
        rounds = 0
        while True:
            # Cleared before the round, so a commit during the round is not missed.
            self.outbox.committed.clear()
            await self._measure_backlog()
            try:
                published = await self.publish_batch()
                backoff = 0.1
            except (
                BusUnavailable,
                OSError,
                sa.exc.OperationalError,
                sa.exc.InterfaceError,
            ) as error:
                RELAY_FAILURES.labels(self.schema).inc()
                log.warning(
                    "outbox relay cannot publish yet; retrying",
                    extra={"schema": self.schema, "error": repr(error), "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            rounds += 1
            if rounds % 100 == 0:
                await self._housekeeping()
            if published >= self.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.committed.wait(), self.idle_interval)
                # Woken by a commit: let the commits of concurrent requests join
                # the round, so a busy service pays a round per batch, not per event.
                await asyncio.sleep(self.linger)

    async def publish_batch(self) -> int:
        table = self.table
        async with self.db.transaction() as session:
            locked = await session.scalar(
                sa.select(sa.func.pg_try_advisory_xact_lock(self.lock_key))
            )
            if not locked:
                return 0
            # Claimed and marked in one statement; the mark becomes visible only
            # when the transaction commits, after JetStream acknowledged every
            # event, and a failed publish rolls it back.
            claimed = (
                sa.select(table.c.id)
                .where(table.c.published_at.is_(None))
                .order_by(table.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = sorted(
                (
                    await session.execute(
                        sa.update(table)
                        .where(table.c.id.in_(claimed))
                        .values(published_at=sa.func.now())
                        .returning(table.c.id, table.c.subject, table.c.payload, table.c.headers)
                    )
                ).all(),
                key=lambda row: row.id,  # UPDATE returns rows in no set order
            )
            for row in rows:
                with publishing(row.subject, str(row.id), row.headers) as headers:
                    await self.bus.publish(
                        row.subject, row.payload, headers={**headers, "Nats-Msg-Id": str(row.id)}
                    )
        if rows:
            PUBLISHED.labels(self.schema).inc(len(rows))
        return len(rows)

    async def backlog(self) -> int:
        async with self.db.read() as session:
            count = await session.scalar(
                sa.select(sa.func.count())
                .select_from(self.table)
                .where(self.table.c.published_at.is_(None))
            )
        return int(count or 0)

    async def _measure_backlog(self) -> None:
        """Refresh the backlog gauge every backlog_interval, publishing or not.

        Measured from every replica (only one publishes) and while NATS is down,
        which is when the backlog grows; a database that is down too leaves the
        last value, and the relay's failure counter tells why.
        """
        now = time.monotonic()
        if now - self._backlog_measured_at < self.backlog_interval:
            return
        self._backlog_measured_at = now
        try:
            BACKLOG.labels(self.schema).set(await self.backlog())
        except (OSError, sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError):
            log.debug("outbox backlog not measured: database unavailable", exc_info=True)

    async def _housekeeping(self) -> None:
        """Drop rows published long ago."""
        async with self.db.transaction() as session:
            await session.execute(
                sa.delete(self.table).where(
                    self.table.c.published_at < sa.func.now() - KEEP_PUBLISHED
                )
            )
