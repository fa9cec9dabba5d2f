"""Fault injection: a private Agora stack on private servers, broken while it takes writes.

Everything here runs against servers the tests start themselves on free
ports (tests/reliability/private_servers.py; the edge tests' PrivateRedis),
never the machine's shared PostgreSQL, Redis or NATS, and a `tools.stack`
stack of every service and the gateway pointed at them. Each scenario runs
a WriteStream (posts, comments, votes) through the fault and then reads back
every write the API acknowledged:

- kill -9 of the comments service: its calls answer 503 at once, posts and
  votes carry on; after a restart every acknowledged write is there and the
  comment events reached the posts service (comment counts add up);
- NATS stopped: writes still succeed (they wait in the outboxes); once it is
  back the events arrive (comment counts catch up) and make a new summary;
- Redis stopped: reads and writes are still served;
- PostgreSQL restarted: writes meanwhile get 503 (never a 500) or wait for
  it, and the services reconnect by themselves, with no restart.

The summarizer killed mid-burst is tests/integration/test_summarizer.py's
test_a_killed_summarizer_loses_no_event. The figures go to docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from common.settings import DatabaseSettings
from services.summarizer.threads import BEST_ROOTS
from tests.conftest import _base_env
from tests.integration.edge_support import PrivateRedis
from tests.integration.gateway_support import Api, Member, register_many
from tests.integration.grpc_support import eventually
from tests.reliability.figures import record_figures
from tests.reliability.private_servers import PrivateNats, PrivatePostgres
from tests.reliability.write_stream import WriteStream
from tools import bootstrap
from tools.stack import RUN_DIR, FileSink, Stack

pytestmark = pytest.mark.slow

# Seconds a fault lasts while the writes go on; AGORA_FAULT_SECONDS lengthens it for a soak.
FAULT_SECONDS = float(os.environ.get("AGORA_FAULT_SECONDS", "3"))
# A 503 for a dead service must come at once, not after a deadline.
FAST_SECONDS = 1.0
FIGURES: dict[str, dict[str, Any]] = {}


@dataclass
class Private:
    """The private servers and the stack on them."""

    postgres: PrivatePostgres
    redis: PrivateRedis
    nats: PrivateNats
    stack: Stack


@pytest.fixture(scope="module")
def private() -> Any:
    postgres, cache, bus = PrivatePostgres(), PrivateRedis(), PrivateNats()
    run = uuid.uuid4().hex[:8]
    db = DatabaseSettings(
        host="127.0.0.1",
        port=postgres.port,
        name="agora_faults",
        admin_user="postgres",
        admin_password="",
        password="",
    )
    overrides = {
        "AGORA_DB_HOST": "127.0.0.1",
        "AGORA_DB_PORT": str(postgres.port),
        "AGORA_REDIS_URL": cache.url,
        "AGORA_NATS_URL": bus.url,
        # Outages end within a test: breakers retry soon after.
        "AGORA_UPSTREAM_BREAKER_OPEN_SECONDS": "1",
    }
    env = _base_env(db.name, f"agora-faults-{run}:", overrides)
    sink = FileSink(RUN_DIR / "reliability" / f"faults-{run}.log")
    stack = Stack.on_free_ports(env, sink)
    try:
        postgres.start()
        cache.start()
        bus.start()
        bootstrap.ensure_database(db)
        bootstrap.migrate(db)
        stack.start_all()
        yield Private(postgres, cache, bus, stack)
    finally:
        stack.stop_all(grace=3)
        sink.close()
        bus.close()
        cache.close()
        postgres.close()


@dataclass
class Scene:
    http: httpx.AsyncClient
    writer: Member
    voter: Member
    community: str
    anchor: str

    def stream(self) -> WriteStream:
        return WriteStream(self.http, self.writer, self.voter, self.community, self.anchor)


@pytest.fixture
async def scene(private: Private) -> AsyncIterator[Scene]:
    """A fresh anchor post (whose comments the stream writes) in a fresh community."""
    async with httpx.AsyncClient(base_url=private.stack.gateway_url, timeout=15) as http:
        writer, voter = await register_many(http, 2, "fi")
        api = Api(http)
        community = (await api.community(writer, "fi"))["name"]
        anchor = (await api.post(writer, community, "Anchor"))["id"]
        yield Scene(http, writer, voter, community, anchor)


async def _through(
    stream: WriteStream, fault: Callable[[], Any], repair: Callable[[], Any]
) -> tuple[float, float]:
    """Run the stream, inject the fault, wait, repair, run on; the fault's time span."""
    stream.start()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(fault)
    began = time.monotonic()
    await asyncio.sleep(FAULT_SECONDS)
    ended = time.monotonic()
    await asyncio.to_thread(repair)
    await asyncio.sleep(1.5)
    await stream.stop()
    return began, ended


async def _all_found(private: Private, stream: WriteStream) -> int:
    """Read back every acknowledged write; the private Redis is emptied first (no cached copy)."""
    redis.Redis.from_url(private.redis.url).flushall()
    found = await stream.verify()
    assert found == stream.acknowledged, (found, stream.acknowledged)
    return found


async def _comment_count(private: Private, scene: Scene, acknowledged: int, within: float) -> None:
    """The anchor's comment count, fed by comment events, reaches the comments that exist.

    Those are at least the acknowledged ones, and may be more: a write whose
    transaction committed just before its service was killed (or its
    database went away) was answered 503, yet rightly kept.
    """
    cache = redis.Redis.from_url(private.redis.url)
    comments = await Api(scene.http).all_pages(f"/api/v1/posts/{scene.anchor}/comments", limit=100)
    assert len(comments) >= acknowledged, (len(comments), acknowledged)
    seen: list[int] = []

    async def counted() -> bool:
        cache.flushall()  # the count as the posts service has it, not a cached copy
        answer = await scene.http.get(f"/api/v1/posts/{scene.anchor}")
        seen.append(answer.json()["comment_count"] if answer.status_code == 200 else -1)
        return seen[-1] == len(comments)

    try:
        await eventually(counted, within=within)
    except AssertionError:
        raise AssertionError(f"comment_count {seen[-1:]} never reached {len(comments)}") from None


def _record(name: str, stream: WriteStream, found: int, **extra: Any) -> None:
    FIGURES[name] = {
        "requests": len(stream.answers),
        "acknowledged": stream.acknowledged,
        "found_afterwards": found,
        "statuses": {str(k): v for k, v in sorted(stream.statuses().items())},
        "slowest_answer_seconds": round(max(a.seconds for a in stream.answers), 2),
        **extra,
    }
    record_figures("faults", {name: FIGURES[name]})


async def test_a_killed_service_fails_fast_and_loses_nothing(
    private: Private, scene: Scene
) -> None:
    stream = scene.stream()
    began, ended = await _through(
        stream,
        lambda: private.stack.stop_service("comments", kill=True),
        lambda: private.stack.start_service("comments"),
    )
    during = stream.between(began + 0.2, ended)
    refused = [a for a in during if a.kind == "comment"]
    assert refused, "no comment was tried while comments was down"
    assert {a.status for a in refused} == {503}, refused
    assert max(a.seconds for a in refused) < FAST_SECONDS, refused
    others = [a for a in during if a.kind != "comment"]
    assert others
    assert all(200 <= a.status < 300 for a in others), others
    assert stream.between(ended + 1.0, time.monotonic(), "comment"), "no comment after restart"
    found = await _all_found(private, stream)
    await _comment_count(private, scene, len(stream.comments), within=20)
    _record("kill_9_comments", stream, found, answered_503_during=len(refused))


async def test_writes_survive_a_nats_outage_and_their_events_arrive(
    private: Private, scene: Scene
) -> None:
    stream = scene.stream()
    _, ended = await _through(stream, private.nats.stop, private.nats.start)
    assert set(stream.statuses()) <= {200, 201}, stream.statuses()
    found = await _all_found(private, stream)
    await _comment_count(private, scene, len(stream.comments), within=30)
    # The comment events that waited out the outage make a new summary of the thread,
    # counting what it read even where the post's own count still lags those events.
    back = datetime.now(UTC) - timedelta(seconds=time.monotonic() - ended)

    async def summarised() -> dict[str, Any] | None:
        answer = await scene.http.get(f"/api/v1/posts/{scene.anchor}/summary")
        body: dict[str, Any] = answer.json()
        ready = answer.status_code == 200 and datetime.fromisoformat(body["generated_at"]) > back
        return body if ready else None

    summary = await eventually(summarised, within=30)
    assert summary["comment_count"] >= min(len(stream.comments), BEST_ROOTS), summary
    _record("nats_stopped", stream, found, summarised_comments=summary["comment_count"])


async def test_reads_and_writes_are_served_without_redis(private: Private, scene: Scene) -> None:
    stream = scene.stream()
    reads: list[int] = []

    async def read_meanwhile() -> None:
        await asyncio.sleep(1.2)
        for _ in range(10):
            for path in (f"/api/v1/posts/{scene.anchor}", f"/api/v1/communities/{scene.community}"):
                reads.append((await scene.http.get(path)).status_code)
            await asyncio.sleep(0.2)

    reader = asyncio.create_task(read_meanwhile())
    await _through(stream, private.redis.stop, private.redis.start)
    await reader
    assert set(stream.statuses()) <= {200, 201}, stream.statuses()
    assert set(reads) == {200}, reads
    found = await _all_found(private, stream)
    _record("redis_stopped", stream, found, reads_during=len(reads))


async def test_services_reconnect_after_postgres_restarts(private: Private, scene: Scene) -> None:
    stream = scene.stream()
    began, ended = await _through(
        stream, lambda: private.postgres.stop(mode="fast"), private.postgres.start
    )
    during = stream.between(began + 0.5, ended)
    # Refused with 503, or, for a write that waited for a connection until the
    # server was back, done: never a 500.
    statuses = {a.status for a in during}
    assert 503 in statuses, [(a.kind, a.status) for a in during]
    assert statuses <= {200, 201, 503}, [(a.kind, a.status) for a in during]
    # Once it is back, writes succeed again without restarting anything.
    after = stream.between(ended + 1.0, time.monotonic())
    assert after
    assert all(200 <= a.status < 300 for a in after), after
    assert private.stack.first_exited() is None
    found = await _all_found(private, stream)
    await _comment_count(private, scene, len(stream.comments), within=20)
    refused = sum(a.status == 503 for a in during)
    _record("postgres_restarted", stream, found, answered_503_during=refused)


async def test_every_fault_was_injected(private: Private) -> None:
    """Runs last: the scenarios above all ran, with their figures recorded."""
    if len(FIGURES) < 4:
        pytest.skip("run the whole module to count the faults")
    record_figures("faults", {"faults_injected": len(FIGURES)})
