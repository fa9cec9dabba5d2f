"""AI summaries end to end: events in, debounced jobs, summaries out through the gateway.

Everything here runs against the session stack, whose summarizer is a real
process consuming the run's real event stream; the providers it uses are the
test stack's (see conftest). What providers do on failure is tested in
test_summarizer_providers.py; this module is about the service around them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

import grpc
import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from agora.events.v1 import events_pb2
from agora.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

from common.events import new_event
from common.settings import DatabaseSettings
from tests.fake_llm import Behaviour, FakeLLM, Provider
from tests.integration.event_support import EventStream
from tests.integration.gateway_support import Api, Member, assert_problem, register
from tests.integration.grpc_support import as_user, eventually, refused
from tools.stack import Stack

PROVIDERS = {"openai", "anthropic", "local"}
SUMMARY_FIELDS = {
    "post_id",
    "status",
    "summary",
    "provider",
    "model",
    "generated_at",
    "comment_count",
    "refreshing",
}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def ready_summary(
    http: httpx.AsyncClient,
    post_id: str,
    *,
    newer_than: str | None = None,
    comment_count: int | None = None,
    settled: bool = False,
    within: float = 20.0,
) -> dict[str, Any]:
    """The post's summary once it is ready (newer, of the count, with no other queued: as asked)."""

    async def check() -> dict[str, Any] | None:
        answer = await http.get(f"/api/v1/posts/{post_id}/summary")
        if answer.status_code == 202:
            assert answer.json() == {"post_id": post_id, "status": "pending"}
            assert int(answer.headers["retry-after"]) >= 1
            return None
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if newer_than is not None and _time(body["generated_at"]) <= _time(newer_than):
            return None
        if comment_count is not None and body["comment_count"] != comment_count:
            return None
        if settled and body["refreshing"]:
            return None
        return body

    return await eventually(check, within=within)


@pytest.fixture
async def author(http: httpx.AsyncClient) -> Member:
    return await register(http, "sum")


@pytest.fixture
async def community(http: httpx.AsyncClient, author: Member) -> str:
    created = await Api(http).community(author, "sum")
    return str(created["name"])


@pytest.fixture
async def events(stack: Stack) -> Any:
    async with EventStream.connect(stack) as stream:
        yield stream


@pytest.fixture
def llm(fake_llm: FakeLLM) -> Any:
    """The stack's fake OpenAI and Anthropic, answering well again after the test."""
    fake_llm.reset()
    yield fake_llm
    fake_llm.reset()


def _processed(settings: DatabaseSettings, consumer: str, event_ids: list[str]) -> int:
    """How many of these events the consumer recorded as handled."""
    with psycopg.connect(
        host=settings.host, port=settings.port, user=settings.admin_user, dbname=settings.name
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM summarizer.processed_events"
            " WHERE consumer = %s AND event_id = ANY(%s::uuid[])",
            (consumer, event_ids),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _about(post_id: str) -> Any:
    return lambda event: event.summary_ready.post_id == post_id


async def test_a_new_post_is_summarised_within_seconds(
    http: httpx.AsyncClient, author: Member, community: str
) -> None:
    post = await Api(http).post(
        author,
        community,
        "Should cities ban cars from their centres?",
        body="Several European cities closed their centres to cars. Shops feared the worst, "
        "but footfall rose. Should every city follow?",
    )

    first = await http.get(f"/api/v1/posts/{post['id']}/summary")
    # Made in the background: at first it is pending, with a hint when to ask again.
    if first.status_code == 202:
        assert first.json() == {"post_id": post["id"], "status": "pending"}
        assert 1 <= int(first.headers["retry-after"]) <= 10

    summary = await ready_summary(http, post["id"], within=15)
    assert set(summary) == SUMMARY_FIELDS
    assert summary["status"] == "ready"
    assert summary["post_id"] == post["id"]
    assert summary["provider"] in PROVIDERS
    assert summary["model"]
    assert summary["comment_count"] == 0
    assert summary["refreshing"] is False
    assert 20 <= len(summary["summary"]) <= 2000
    assert "\x00" not in summary["summary"]


async def test_a_burst_of_comments_makes_one_newer_summary(
    http: httpx.AsyncClient, author: Member, community: str, events: EventStream
) -> None:
    api = Api(http)
    post = await api.post(author, community, "Tabs or spaces?", body="Settle it once and for all.")
    first = await ready_summary(http, post["id"])
    await events.published("summary_ready", _about(post["id"]), 1)

    bodies = [f"Comment {n}: spaces, because every editor shows them alike." for n in range(20)]
    await asyncio.gather(*(api.comment(author, post["id"], body) for body in bodies))

    newer = await ready_summary(
        http, post["id"], newer_than=first["generated_at"], comment_count=20
    )
    assert newer["comment_count"] == 20
    # Twenty comments within the debounce window: one new summary, not twenty.
    await events.published("summary_ready", _about(post["id"]), 2)


async def test_a_couple_of_new_comments_keep_the_summary(
    http: httpx.AsyncClient, author: Member, community: str, events: EventStream
) -> None:
    api = Api(http)
    post = await api.post(author, community, "Best pizza topping?")
    first = await ready_summary(http, post["id"])
    for body in ("Pineapple.", "Mushrooms."):
        await api.comment(author, post["id"], body)

    # Fewer than AGORA_SUMMARIZER_MIN_NEW_COMMENTS (3 in tests): not worth a model call.
    await asyncio.sleep(2.5)
    again = await ready_summary(http, post["id"])
    assert again["generated_at"] == first["generated_at"]
    assert again["comment_count"] == 0
    await events.published("summary_ready", _about(post["id"]), 1)


async def test_a_late_post_created_event_queues_no_second_summary(
    http: httpx.AsyncClient,
    author: Member,
    community: str,
    events: EventStream,
    db_settings: DatabaseSettings,
) -> None:
    # A reader's GET can queue a post's first summary before its post_created
    # event arrives; the event then has nothing to add and must queue nothing.
    post = await Api(http).post(author, community, "Which came first?")
    first = await ready_summary(http, post["id"], settled=True)
    (created,) = await events.envelopes(
        "post_created", lambda e: e.post_created.post_id == post["id"]
    )
    late = new_event(created.producer, created.actor_id, post_created=created.post_created)
    await events.publish(late)

    async def handled() -> bool:
        count = await asyncio.to_thread(_processed, db_settings, "summarizer-posts", [late.id])
        return count == 1

    await eventually(handled)
    # A job queued by the event would show for a second at least (the debounce).
    answer = await http.get(f"/api/v1/posts/{post['id']}/summary")
    assert answer.status_code == 200, answer.text
    assert answer.json()["refreshing"] is False
    assert answer.json()["generated_at"] == first["generated_at"]


async def test_unknown_malformed_and_deleted_posts_have_no_summary(
    http: httpx.AsyncClient, author: Member, community: str
) -> None:
    assert_problem(await http.get(f"/api/v1/posts/{uuid.uuid4()}/summary"), 404)
    assert_problem(await http.get("/api/v1/posts/not-a-uuid/summary"), 404)

    post = await Api(http).post(author, community, "Soon gone")
    await ready_summary(http, post["id"])
    deleted = await http.delete(f"/api/v1/posts/{post['id']}", headers=author.auth)
    assert deleted.status_code == 204, deleted.text

    async def gone() -> bool:
        answer = await http.get(f"/api/v1/posts/{post['id']}/summary")
        return answer.status_code == 404

    await eventually(gone)
    assert_problem(await http.get(f"/api/v1/posts/{post['id']}/summary"), 404)
    assert_problem(await http.post(f"/api/v1/posts/{post['id']}/summary", headers=author.auth), 404)


async def test_asking_for_a_summary_needs_a_user_and_makes_a_fresh_one(
    http: httpx.AsyncClient, author: Member, community: str
) -> None:
    post = await Api(http).post(author, community, "Is a hot dog a sandwich?")
    first = await ready_summary(http, post["id"])

    assert_problem(await http.post(f"/api/v1/posts/{post['id']}/summary"), 401)

    asked = await http.post(f"/api/v1/posts/{post['id']}/summary", headers=author.auth)
    assert asked.status_code == 202, asked.text
    assert asked.json() == {"post_id": post["id"], "status": "pending"}
    assert int(asked.headers["retry-after"]) >= 1

    # Nothing changed in the thread, yet a user asked: a new summary is made.
    await ready_summary(http, post["id"], newer_than=first["generated_at"], settled=True)


async def test_fifty_requests_a_day_per_user_exactly(
    http: httpx.AsyncClient, author: Member, community: str
) -> None:
    post = await Api(http).post(author, community, "Quota")
    asker = await register(http, "ask")
    for n in range(50):
        answer = await http.post(f"/api/v1/posts/{post['id']}/summary", headers=asker.auth)
        assert answer.status_code == 202, (n, answer.text)

    refused = await http.post(f"/api/v1/posts/{post['id']}/summary", headers=asker.auth)
    body = assert_problem(refused, 429)
    assert "50" in body["detail"]
    # The oldest of the fifty frees a slot in a day.
    assert 86_000 <= int(refused.headers["retry-after"]) <= 86_400

    # Somebody else's quota is their own.
    other = await register(http, "ask")
    answer = await http.post(f"/api/v1/posts/{post['id']}/summary", headers=other.auth)
    assert answer.status_code == 202, answer.text


async def test_concurrent_requests_cannot_exceed_the_quota(
    http: httpx.AsyncClient, author: Member, community: str
) -> None:
    post = await Api(http).post(author, community, "Racing the quota")
    asker = await register(http, "race")
    answers = await asyncio.gather(
        *(http.post(f"/api/v1/posts/{post['id']}/summary", headers=asker.auth) for _ in range(60))
    )
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(202) == 50, codes
    assert codes.count(429) == 10, codes


async def test_ready_summaries_are_served_from_redis_for_a_day(
    http: httpx.AsyncClient,
    author: Member,
    community: str,
    redis_client: aioredis.Redis,
    redis_key_prefix: str,
) -> None:
    post = await Api(http).post(author, community, "Cached")
    summary = await ready_summary(http, post["id"])
    key = f"{redis_key_prefix}summarizer:summary:{post['id']}"

    async def cached() -> bool:
        return bool(await redis_client.exists(key))

    await eventually(cached)
    ttl = await redis_client.ttl(key)
    assert 23 * 3600 < ttl <= 24 * 3600

    # The copy is what GET answers: a planted copy is served as is.
    stored = await redis_client.get(key)
    assert isinstance(stored, bytes)
    planted = summarizer_pb2.GetSummaryResponse.FromString(stored)
    planted.summary.summary = "Planted in the cache."
    await redis_client.set(key, planted.SerializeToString(), ex=60)
    served = await http.get(f"/api/v1/posts/{post['id']}/summary")
    assert served.json()["summary"] == "Planted in the cache."
    assert served.json()["generated_at"] == summary["generated_at"]

    # Without it, the database answers again.
    await redis_client.delete(key)
    again = await http.get(f"/api/v1/posts/{post['id']}/summary")
    assert again.json()["summary"] == summary["summary"]


async def test_a_killed_summarizer_loses_no_event(
    http: httpx.AsyncClient,
    author: Member,
    *,
    community: str,
    stack: Stack,
    events: EventStream,
    db_settings: DatabaseSettings,
) -> None:
    api = Api(http)
    post = await api.post(author, community, "Crash test")
    await ready_summary(http, post["id"])

    total = 12
    under_way = asyncio.Event()

    async def burst() -> None:
        for n in range(total):
            await api.comment(author, post["id"], f"Comment number {n} in the middle of a crash.")
            if n == 3:
                under_way.set()
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(burst())
    await under_way.wait()
    await asyncio.to_thread(stack.stop_service, "summarizer", kill=True)
    await writer
    await asyncio.to_thread(stack.start_service, "summarizer")

    await ready_summary(http, post["id"], comment_count=total, settled=True, within=30)
    # Not only the last one: every comment event was handled, including those the
    # killed process had been handed but not acknowledged.
    comment_events = await events.envelopes(
        "comment_created", lambda event: event.comment_created.post_id == post["id"]
    )
    assert len(comment_events) == total
    handled = await asyncio.to_thread(
        _processed, db_settings, "summarizer-comments", [e.id for e in comment_events]
    )
    assert handled == total

    async def drained() -> bool:
        info = await events.js.consumer_info(events.stream, "summarizer-comments")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(drained)


async def test_summary_ready_is_published_with_provider_and_model(
    http: httpx.AsyncClient, author: Member, community: str, events: EventStream
) -> None:
    post = await Api(http).post(author, community, "Events out")
    summary = await ready_summary(http, post["id"])
    (ready,) = await events.published("summary_ready", _about(post["id"]), 1)
    assert isinstance(ready, events_pb2.SummaryReady)
    assert (ready.provider, ready.model) == (summary["provider"], summary["model"])


async def test_openai_first_then_anthropic_then_the_local_summariser(
    http: httpx.AsyncClient, author: Member, community: str, llm: FakeLLM
) -> None:
    api = Api(http)
    title = f"Fallbacks {uuid.uuid4().hex[:8]}"

    def asked_about(provider: Provider, marker: str) -> list[Any]:
        """Bodies of the requests the provider got about one post (its title is in the prompt)."""
        return [r.body for r in llm.requests(provider) if marker in json.dumps(r.body)]

    healthy = await api.post(author, community, f"{title} healthy")
    made = await ready_summary(http, healthy["id"])
    assert (made["provider"], made["model"]) == ("openai", "gpt-4o")
    (request,) = asked_about("openai", f"{title} healthy")
    assert request["temperature"] == 0.3
    assert request["model"] == "gpt-4o"

    llm.set_default("openai", Behaviour.error(503))
    openai_down = await api.post(author, community, f"{title} openai down")
    made = await ready_summary(http, openai_down["id"])
    assert made["provider"] == "anthropic"
    assert made["model"] == "claude-3-5-sonnet-20241022"
    # Three attempts at OpenAI (tenacity, the SDK's own retries off), then Anthropic once.
    assert len(asked_about("openai", f"{title} openai down")) == 3
    assert len(asked_about("anthropic", f"{title} openai down")) == 1

    llm.set_default("anthropic", Behaviour.nonsense("shape"))
    both_down = await api.post(author, community, f"{title} both down")
    made = await ready_summary(http, both_down["id"])
    assert (made["provider"], made["model"]) == ("local", "extractive-v1")
    assert made["summary"]


async def test_the_grpc_api_checks_its_callers_and_ids(stack: Stack, author: Member) -> None:
    async with grpc.aio.insecure_channel(stack.address("summarizer")) as channel:
        stub = summarizer_pb2_grpc.SummarizerServiceStub(channel)
        unknown = str(uuid.uuid4())
        # Only the gateway's verified identity metadata names a caller.
        await refused(
            grpc.StatusCode.UNAUTHENTICATED,
            stub.RequestSummary(summarizer_pb2.RequestSummaryRequest(post_id=unknown)),
        )
        await refused(
            grpc.StatusCode.NOT_FOUND,
            stub.RequestSummary(
                summarizer_pb2.RequestSummaryRequest(post_id=unknown),
                metadata=as_user(author.id),
            ),
        )
        for post_id in ("", "not-a-uuid", unknown):
            await refused(
                grpc.StatusCode.NOT_FOUND,
                stub.GetSummary(summarizer_pb2.GetSummaryRequest(post_id=post_id)),
            )
