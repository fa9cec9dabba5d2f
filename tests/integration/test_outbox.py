"""The outbox relay and the event consumer against real Postgres and a real NATS.

A private nats-server on a free port (never the machine's shared one) lets the
test keep NATS down while writes happen, then bring it up and watch every
event arrive, in order, exactly once in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from agora.events.v1 import events_pb2
from nats.js import api
from sqlalchemy.ext.asyncio import AsyncSession

from common.bus import BusUnavailable, EventBus
from common.consumer import EventConsumer, processed_events_table
from common.db import Database, schema_metadata
from common.events import new_event, subject_of
from common.outbox import Outbox, OutboxRelay, outbox_table
from common.settings import CommonSettings, DatabaseSettings
from tests.infrastructure import scratch_database
from tests.integration.grpc_support import eventually
from tools.stack import free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class PrivateNats:
    """A nats-server with JetStream that the test starts and stops at will."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "jetstream")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def scratch_db(infrastructure: dict[str, str]) -> Iterator[DatabaseSettings]:
    with scratch_database("outbox") as settings:
        yield settings


@pytest.fixture
async def tables(
    scratch_db: DatabaseSettings,
) -> AsyncIterator[tuple[Database, sa.Table, sa.Table]]:
    schema = f"s_{uuid.uuid4().hex[:8]}"
    metadata = schema_metadata(schema)
    outbox, processed = outbox_table(metadata), processed_events_table(metadata)
    db = Database(scratch_db, role="postgres", application_name="outbox-test")
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    try:
        yield db, outbox, processed
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await db.dispose()


def _settings(url: str) -> CommonSettings:
    suffix = uuid.uuid4().hex[:8]
    return CommonSettings(
        nats_url=url,  # type: ignore[arg-type]
        nats_stream=f"AGORA_TEST_{suffix}",
        nats_subject_prefix=f"t{suffix}.",
    )


def _post_event(n: int) -> events_pb2.Event:
    return new_event(
        "posts",
        "user-1",
        post_created=events_pb2.PostCreated(post_id=f"post-{n}", community_id="c", title=str(n)),
    )


async def _write(db: Database, outbox: Outbox, events: list[events_pb2.Event]) -> None:
    for event in events:
        async with db.transaction() as session:
            await outbox.stage(session, event)
        outbox.notify_committed()


async def test_events_wait_while_nats_is_down_and_arrive_in_order_after(
    private_nats: PrivateNats, tables: tuple[Database, sa.Table, sa.Table]
) -> None:
    db, table, processed = tables
    settings = _settings(private_nats.url)
    outbox = Outbox(table, settings.nats_subject_prefix)
    bus = EventBus(settings, client_name="relay-test")
    relay = OutboxRelay(db, outbox, bus, idle_interval=0.1, max_backoff=0.5)
    relay_task = asyncio.create_task(relay.run())

    seen: list[str] = []

    async def remember(_session: object, event: events_pb2.Event) -> None:
        seen.append(event.post_created.title)

    consumer_bus = EventBus(settings, client_name="consumer-test")
    consumer = EventConsumer(
        consumer_bus,
        db,
        processed,
        durable="test-consumer",
        subjects=["posts.>"],
        handler=remember,  # type: ignore[arg-type]
    )
    consumer_task = asyncio.create_task(consumer.run())
    try:
        # NATS is down: every write still commits, and the events wait.
        events = [_post_event(n) for n in range(30)]
        await _write(db, outbox, events[:20])
        await asyncio.sleep(0.5)
        assert await relay.backlog() == 20

        private_nats.start()
        await _write(db, outbox, events[20:])
        await eventually(lambda: _done(relay))
        await eventually(lambda: _count(seen, 30))
        assert seen == [str(n) for n in range(30)]

        # A replay of an already-applied event changes nothing.
        js = await bus.connected()
        await js.publish(
            f"{settings.nats_subject_prefix}posts.post.created.v1",
            events[3].SerializeToString(),
            headers={"Nats-Msg-Id": f"replay-{uuid.uuid4()}"},
        )
        await asyncio.sleep(1.0)
        assert seen.count("3") == 1
    finally:
        for task in (relay_task, consumer_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await bus.close()
        await consumer_bus.close()


async def _done(relay: OutboxRelay) -> bool:
    return await relay.backlog() == 0


async def _count(seen: list[str], n: int) -> bool:
    return len(seen) >= n


async def test_concurrent_writers_lose_no_event(
    private_nats: PrivateNats, tables: tuple[Database, sa.Table, sa.Table]
) -> None:
    """Rows committed out of id order are still all published (no "id > last seen")."""
    db, table, _ = tables
    private_nats.start()
    settings = _settings(private_nats.url)
    outbox = Outbox(table, settings.nats_subject_prefix)
    bus = EventBus(settings, client_name="relay-test")
    relays = [OutboxRelay(db, outbox, bus, idle_interval=0.05) for _ in range(2)]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:

        async def writer(offset: int) -> None:
            for n in range(25):
                async with db.transaction() as session:
                    await outbox.stage(session, _post_event(offset + n))
                    await asyncio.sleep(0.001 * (n % 3))  # commit order differs from id order
                outbox.notify_committed()

        await asyncio.gather(*(writer(k * 100) for k in range(8)))
        await eventually(lambda: _done(relays[0]))
        js = await bus.connected()
        info = await js.stream_info(settings.nats_stream)
        assert info.state.messages == 200
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await bus.close()


async def test_a_round_stops_at_the_first_failed_publish_so_nothing_overtakes_it(
    private_nats: PrivateNats, tables: tuple[Database, sa.Table, sa.Table]
) -> None:
    """Nothing after a failed event reaches the stream before it: the retry keeps the order."""
    db, table, _ = tables
    private_nats.start()
    settings = _settings(private_nats.url)
    outbox = Outbox(table, settings.nats_subject_prefix)
    bus = EventBus(settings, client_name="order-test")
    relay = OutboxRelay(db, outbox, bus)
    first, lost, later = (_post_event(n) for n in range(3))
    async with db.transaction() as session:
        await outbox.stage(session, first, lost, later)
        # Outside the stream's subjects: JetStream refuses it at once.
        await session.execute(
            sa.update(table)
            .where(table.c.id == uuid.UUID(lost.id))
            .values(subject="outside-the-stream")
        )
    try:
        with pytest.raises(BusUnavailable):
            await relay.publish_batch()
        js = await bus.connected()
        info = await js.stream_info(settings.nats_stream)
        assert info.state.messages == 1
        async with db.read() as session:
            waiting = await session.scalar(
                sa.select(sa.func.count()).select_from(table).where(table.c.published_at.is_(None))
            )
        assert waiting == 3  # the round rolled back: all three are published again, in order
    finally:
        await bus.close()


async def test_a_consumer_acts_only_on_its_own_subjects(
    private_nats: PrivateNats, tables: tuple[Database, sa.Table, sa.Table]
) -> None:
    """Servers before NATS 2.10 ignore a list of filter subjects; the consumer
    must still never apply (or record) an event it did not subscribe to."""
    db, table, processed = tables
    private_nats.start()
    settings = _settings(private_nats.url)
    outbox = Outbox(table, settings.nats_subject_prefix)
    bus = EventBus(settings, client_name="relay-test")
    relay = OutboxRelay(db, outbox, bus, idle_interval=0.05)
    seen: list[str] = []

    async def remember(_session: object, event: events_pb2.Event) -> None:
        seen.append(event.WhichOneof("payload") or "")

    consumer_bus = EventBus(settings, client_name="consumer-test")
    consumer = EventConsumer(
        consumer_bus,
        db,
        processed,
        durable="two-subjects",
        subjects=["posts.post.deleted.v1", "posts.post.updated.v1"],
        handler=remember,  # type: ignore[arg-type]
    )
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(consumer.run())]
    try:
        created = _post_event(1)
        deleted = new_event(
            "posts", "u", post_deleted=events_pb2.PostDeleted(post_id="p", community_id="c")
        )
        await _write(db, outbox, [created, deleted])

        async def got_deleted() -> bool:
            return seen == ["post_deleted"]

        await eventually(got_deleted)
        await asyncio.sleep(0.5)
        assert seen == ["post_deleted"]
        async with db.read() as session:
            recorded = await session.scalar(sa.select(sa.func.count()).select_from(processed))
        assert recorded == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()
        await consumer_bus.close()


@dataclass
class Backlog:
    """Events already in a private stream, and a table a test handler writes to."""

    settings: CommonSettings
    bus: EventBus
    events: list[events_pb2.Event]
    effects: str

    def recorder(self, *, failing: str | None = None) -> Callable[..., Awaitable[None]]:
        """A handler writing each event's title and transaction id; it raises for `failing`."""

        async def record(session: AsyncSession, event: events_pb2.Event) -> None:
            await session.execute(
                sa.text(f"INSERT INTO {self.effects} VALUES (:title, txid_current())"),
                {"title": event.post_created.title},
            )
            if event.post_created.title == failing:
                raise RuntimeError("poison")

        return record

    async def committed(self, db: Database) -> list[tuple[str, int]]:
        async with db.read() as session:
            rows = await session.execute(sa.text(f"SELECT title, txid FROM {self.effects}"))
        return [(str(title), int(txid)) for title, txid in rows]


async def _backlog(private_nats: PrivateNats, db: Database, schema: str, count: int) -> Backlog:
    """`count` events put in the stream before any consumer runs, so one fetch brings them."""
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE TABLE "{schema}".effects (title text, txid bigint)'))
    private_nats.start()
    settings = _settings(private_nats.url)
    bus = EventBus(settings, client_name="backlog-test")
    events = [_post_event(n) for n in range(count)]
    prefix = bus.subject_prefix
    for event in events:
        await bus.publish(
            subject_of(event, prefix), event.SerializeToString(), {"Nats-Msg-Id": event.id}
        )
    return Backlog(settings, bus, events, f'"{schema}".effects')


async def test_a_fetched_batch_is_applied_in_one_transaction_in_order(
    private_nats: PrivateNats, tables: tuple[Database, sa.Table, sa.Table]
) -> None:
    db, table, processed = tables
    backlog = await _backlog(private_nats, db, str(table.schema), 20)
    consumer = EventConsumer(
        backlog.bus,
        db,
        processed,
        durable="batches",
        subjects=["posts.>"],
        handler=backlog.recorder(),
    )
    task = asyncio.create_task(consumer.run())
    try:

        async def all_committed() -> list[tuple[str, int]] | None:
            found = await backlog.committed(db)
            return found if len(found) >= 20 else None

        committed = await eventually(all_committed)
        assert [title for title, _ in committed] == [str(n) for n in range(20)]
        # The whole fetch in one transaction, with one processed-events row per event.
        assert len({txid for _, txid in committed}) == 1
        async with db.read() as session:
            recorded = await session.scalar(sa.select(sa.func.count()).select_from(processed))
        assert recorded == 20
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backlog.bus.close()


async def test_a_poison_event_in_a_batch_is_parked_and_the_rest_applied_once(
    private_nats: PrivateNats, tables: tuple[Database, sa.Table, sa.Table]
) -> None:
    db, table, processed = tables
    backlog = await _backlog(private_nats, db, str(table.schema), 12)
    consumer = EventConsumer(
        backlog.bus,
        db,
        processed,
        durable="poisoned",
        subjects=["posts.>"],
        handler=backlog.recorder(failing="5"),
        max_deliver=2,
    )
    task = asyncio.create_task(consumer.run())
    js = await backlog.bus.connected()
    parked = await js.pull_subscribe(
        consumer.dead_letter_subject, stream=backlog.settings.nats_stream
    )
    try:
        (dead,) = await parked.fetch(1, timeout=15)
        assert events_pb2.Event.FromString(dead.data).id == backlog.events[5].id
        committed = sorted(int(title) for title, _ in await backlog.committed(db))
        assert committed == [n for n in range(12) if n != 5]
        async with db.read() as session:
            ids = set(await session.scalars(sa.select(processed.c.event_id)))
        assert ids == {uuid.UUID(e.id) for n, e in enumerate(backlog.events) if n != 5}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backlog.bus.close()


async def test_an_existing_durable_takes_its_one_filter_and_keeps_its_place(
    private_nats: PrivateNats, tables: tuple[Database, sa.Table, sa.Table]
) -> None:
    """A durable made by the older consumer (a list of filter subjects, which servers
    before 2.10 ignore) gets one covering filter, made again where it stood: what it
    acknowledged stays acknowledged, what it had not is delivered."""
    db, table, processed = tables
    backlog = await _backlog(private_nats, db, str(table.schema), 4)
    settings, bus = backlog.settings, backlog.bus
    prefix = settings.nats_subject_prefix
    wanted = ["posts.post.created.v1", "posts.post.deleted.v1"]
    js = await bus.connected()
    await js.add_consumer(
        settings.nats_stream,
        api.ConsumerConfig(
            durable_name="upgraded",
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            filter_subjects=[prefix + subject for subject in wanted],
        ),
    )
    old = await js.pull_subscribe_bind(durable="upgraded", stream=settings.nats_stream)
    for message in await old.fetch(2, timeout=5):
        # Confirmed by the server, so its ack floor has moved before the upgrade reads it.
        await message.ack_sync()
    await old.unsubscribe()

    seen: list[str] = []

    async def remember(_session: AsyncSession, event: events_pb2.Event) -> None:
        seen.append(event.post_created.title)

    consumer = EventConsumer(
        bus, db, processed, durable="upgraded", subjects=wanted, handler=remember
    )
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: _count(seen, 2))
        await asyncio.sleep(0.5)
        assert seen == ["2", "3"]
        info = await js.consumer_info(settings.nats_stream, "upgraded")
        assert info.config.filter_subject == prefix + "posts.post.*.v1"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.close()
