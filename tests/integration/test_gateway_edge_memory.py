"""The response cache's in-process L1 over real HTTP, real Redis and the real services.

Like test_gateway_edge_cache.py, every test but the tracing one runs gateways
of its own (edge_support) with their own Redis key prefix, and makes its
writes through them. Two gateways given the same prefix share a cache, as
replicas do, and hear each other's invalidations through Redis pub/sub. The
feed's outages are made with a private redis-server: its pub/sub clients
killed, the server paused (a connection that silently stops answering) or
stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.cache.memory import MEMORY_HIT_STATUS, MemoryCache
from gateway.settings import GatewaySettings
from tests.integration.edge_support import (
    Edge,
    PrivateRedis,
    edge_gateway,
    edge_settings,
    private_redis,
    sample,
)
from tests.integration.gateway_support import Api, Member, register_many
from tests.integration.grpc_support import eventually
from tests.integration.test_gateway_edge_cache import calls_of, no_calls
from tests.otlp_receiver import OtlpReceiver, new_trace_id, settled_spans, traceparent
from tools.stack import Stack

__all__ = ["private_redis"]

HIT = "agora-gateway; hit"
MEMORY = MEMORY_HIT_STATUS
# Long enough that within a test only an invalidation or a clear can empty an entry.
LONG_AGE = 30.0
SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


def unthrottled(stack: Stack, **overrides: Any) -> GatewaySettings:
    overrides.setdefault("cache_memory_max_age_seconds", LONG_AGE)
    return edge_settings(stack, rate_limits_enabled=False, **overrides)


@pytest.fixture(scope="module")
async def members(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 3, "mc")


@pytest.fixture
async def edge(stack: Stack) -> AsyncIterator[Edge]:
    async with edge_gateway(unthrottled(stack)) as running:
        yield running


def memory_of(edge: Edge) -> MemoryCache:
    memory = edge.resources.cache.memory
    assert memory is not None
    return memory


async def _empty(memory: MemoryCache) -> bool:
    return len(memory) == 0


async def read(client: httpx.AsyncClient, path: str, **headers: str) -> httpx.Response:
    answer = await client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


async def in_memory(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """Read until the answer comes from memory: a miss stores it, a Redis hit offers it."""

    async def from_memory() -> httpx.Response | None:
        answer = await read(client, path)
        return answer if answer.headers["cache-status"] == MEMORY else None

    return await eventually(from_memory, within=5)


async def a_post(client: httpx.AsyncClient, author: Member) -> tuple[str, str, str]:
    """A new community with one post: (community, post path, the community's listing)."""
    api = Api(client)
    community = (await api.community(author, "mc"))["name"]
    post = await api.post(author, community, "remembered", body="text")
    listing = f"/api/v1/communities/{community}/posts?sort=new"
    return community, f"/api/v1/posts/{post['id']}", listing


async def test_a_redis_hit_is_answered_from_memory_next_with_the_same_answer(
    stack: Stack, members: list[Member], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agora.gateway.access")
    settings = unthrottled(stack, gzip_minimum_bytes=100)
    async with edge_gateway(settings) as edge, edge.client() as client:
        _, post_path, listing = await a_post(client, members[0])
        for path, resource, route in (
            (post_path, "post", "/api/v1/posts/{post_id}"),
            (listing, "posts", "/api/v1/communities/{name}/posts"),
        ):
            first = await read(client, path)
            assert first.headers["cache-status"] == "agora-gateway; fwd=miss; stored", path
            from_redis = await read(client, path)
            assert from_redis.headers["cache-status"] == HIT

            memory_before = sample(
                "agora_gateway_cache_requests_total", {"resource": resource, "result": "memory"}
            )
            redis_before = sample(
                "agora_gateway_cache_requests_total", {"resource": resource, "result": "hit"}
            )
            http_labels = {"method": "GET", "route": route, "status": "200"}
            http_before = sample("agora_http_requests_total", http_labels)
            request_id = f"memory-{uuid.uuid4().hex}"
            caplog.clear()
            answer, calls = await calls_of(
                lambda p=path, r=request_id: read(client, p, **{"x-request-id": r})  # type: ignore[misc]
            )

            assert answer.headers["cache-status"] == MEMORY
            assert no_calls(calls), calls
            assert answer.content == from_redis.content
            for name in ("content-type", "content-length", "vary", *SECURITY_HEADERS):
                assert answer.headers.get(name) == from_redis.headers.get(name), name
            assert answer.headers["x-request-id"] == request_id
            assert sample(
                "agora_gateway_cache_requests_total", {"resource": resource, "result": "memory"}
            ) == (memory_before + 1)
            assert sample(
                "agora_gateway_cache_requests_total", {"resource": resource, "result": "hit"}
            ) == (redis_before)
            assert sample("agora_http_requests_total", http_labels) == http_before + 1
            (line,) = [r for r in caplog.records if r.name == "agora.gateway.access"]
            assert (line.method, line.route, line.status) == ("GET", route, 200)  # type: ignore[attr-defined]
            assert line.getMessage() == f"GET {route} 200"

        # Layers outside the L1 still apply: gzip for a client that takes it.
        zipped = await client.get(listing, headers={"accept-encoding": "gzip"})
        assert zipped.headers["cache-status"] == MEMORY
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.content == from_redis.content  # httpx decodes it
        plain = await client.get(listing, headers={"accept-encoding": "identity"})
        assert plain.headers["cache-status"] == MEMORY
        assert "content-encoding" not in plain.headers
        assert plain.content == from_redis.content


async def test_a_write_through_the_same_gateway_shows_on_the_next_read(
    edge: Edge, members: list[Member]
) -> None:
    author, voter, _ = members
    async with edge.client() as client:
        _, post_path, listing = await a_post(client, author)
        post_id = post_path.rsplit("/", 1)[1]
        await in_memory(client, post_path)
        await in_memory(client, listing)

        await Api(client).vote(voter, "posts", post_id, 1)
        # No waiting: the write's invalidation dropped the memory copies before it answered.
        one = await read(client, post_path)
        assert one.headers["cache-status"] != MEMORY
        assert one.json()["score"] == 1
        (item,) = (await read(client, listing)).json()["items"]
        assert item["score"] == 1

        await in_memory(client, post_path)
        edited = await client.patch(post_path, json={"title": "edited"}, headers=author.auth)
        assert edited.status_code == 200, edited.text
        assert (await read(client, post_path)).json()["title"] == "edited"
        (item,) = (await read(client, listing)).json()["items"]
        assert item["title"] == "edited"


async def test_invalidations_reach_every_gateway_on_the_same_redis(
    stack: Stack, members: list[Member]
) -> None:
    author, voter, _ = members
    writer_settings = unthrottled(stack)
    reader_settings = unthrottled(stack, redis_key_prefix=writer_settings.redis_key_prefix)
    async with (
        edge_gateway(writer_settings) as writer,
        edge_gateway(reader_settings) as reader,
        writer.client() as writes,
        reader.client() as reads,
    ):
        _, post_path, listing = await a_post(writes, author)
        await in_memory(reads, post_path)
        await in_memory(reads, listing)
        assert len(memory_of(reader)) == 2

        edited = await writes.patch(post_path, json={"title": "elsewhere"}, headers=author.auth)
        assert edited.status_code == 200, edited.text

        # The other gateway drops its copies as the message arrives: moments, not the max age.
        async def dropped() -> bool:
            return len(memory_of(reader)) == 0

        await eventually(dropped, within=2)
        assert (await read(reads, post_path)).json()["title"] == "elsewhere"
        await in_memory(reads, listing)
        await Api(writes).vote(voter, "posts", post_path.rsplit("/", 1)[1], 1)
        await eventually(dropped, within=2)
        (item,) = (await read(reads, listing)).json()["items"]
        assert item["score"] == 1


@pytest.mark.slow
async def test_the_memory_is_cleared_and_off_while_its_feed_is_down(
    stack: Stack, members: list[Member], private_redis: PrivateRedis
) -> None:
    settings = unthrottled(
        stack, redis_url=private_redis.url, redis_timeout_seconds=0.2, redis_breaker_open_seconds=1
    )
    async with edge_gateway(settings) as edge, edge.client() as client:
        memory = memory_of(edge)
        _, post_path, _ = await a_post(client, members[0])

        async def feed_is(live: bool) -> bool:
            return memory.live is live

        # The subscription is made again (here by its connection being killed): whatever
        # was published meanwhile was missed, so the memory starts again from empty.
        await in_memory(client, post_path)
        admin = redis.Redis(port=private_redis.port)
        assert admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        await eventually(lambda: _empty(memory), within=5)
        assert (await read(client, post_path)).headers["cache-status"] == HIT
        await in_memory(client, post_path)

        # A connection that stops answering (Redis paused): no pong, so the feed counts
        # as lost and the memory is off until a subscription is made again.
        private_redis.pause(4)
        await eventually(lambda: feed_is(False), within=4)
        assert len(memory) == 0
        for _ in range(3):
            answer = await read(client, post_path)
            assert answer.headers["cache-status"] != MEMORY
        await eventually(lambda: feed_is(True), within=10)
        await in_memory(client, post_path)

        # Redis gone: off, and every read is a rebuild; back when Redis is.
        private_redis.stop()
        await eventually(lambda: feed_is(False), within=4)
        for _ in range(3):
            answer = await read(client, post_path)
            assert answer.headers["cache-status"] == "agora-gateway; fwd=bypass"
            assert not memory.live
            assert len(memory) == 0
        private_redis.start()
        await eventually(lambda: feed_is(True), within=15)
        await in_memory(client, post_path)


async def test_signed_in_requests_are_never_answered_from_memory(
    edge: Edge, members: list[Member]
) -> None:
    author, voter, _ = members
    async with edge.client() as client:
        _, post_path, listing = await a_post(client, author)
        await Api(client).vote(voter, "posts", post_path.rsplit("/", 1)[1], -1)
        for path in (post_path, listing):
            anonymous = await in_memory(client, path)
            assert b"my_vote" not in anonymous.content
            mine = await client.get(path, headers=voter.auth)
            assert mine.status_code == 200
            assert mine.headers["cache-status"] == HIT
            assert b'"my_vote":-1' in mine.content
            # A bad token still gets its 401, never the anonymous answer.
            for header in ("Bearer not.a.token", "Basic dXNlcjpwYXNz", ""):
                refused = await client.get(path, headers={"Authorization": header})
                assert refused.status_code == 401, (path, header)
            assert (await read(client, path)).headers["cache-status"] == MEMORY


async def test_the_memory_is_bounded_by_entries_and_by_age(
    stack: Stack, members: list[Member]
) -> None:
    author = members[0]
    async with (
        edge_gateway(unthrottled(stack, cache_memory_max_entries=2)) as small,
        small.client() as client,
    ):
        memory = memory_of(small)
        _, first, listing = await a_post(client, author)
        _, second, _ = await a_post(client, author)
        await in_memory(client, first)
        await in_memory(client, second)
        await in_memory(client, first)  # now the most recently used
        await in_memory(client, listing)
        assert len(memory) == 2
        assert (await read(client, first)).headers["cache-status"] == MEMORY
        # The least recently used one went.
        assert (await read(client, second)).headers["cache-status"] == HIT

    async with (
        edge_gateway(unthrottled(stack, cache_memory_max_age_seconds=0.5)) as short,
        short.client() as client,
    ):
        _, post_path, _ = await a_post(client, author)
        await in_memory(client, post_path)
        await asyncio.sleep(0.6)
        assert (await read(client, post_path)).headers["cache-status"] == HIT
        assert (await read(client, post_path)).headers["cache-status"] == MEMORY


async def test_rate_limits_apply_to_memory_hits(stack: Stack, members: list[Member]) -> None:
    settings = edge_settings(stack, rate_limit_anonymous="6/minute")
    async with edge_gateway(settings) as edge, edge.client() as client:
        _, post_path, _ = await a_post(client, members[0])
        statuses = [(await client.get(post_path)).headers.get("cache-status") for _ in range(4)]
        assert statuses[-1] == MEMORY, statuses
        counted = await client.get(post_path)
        assert counted.headers["cache-status"] == MEMORY
        assert counted.headers["ratelimit"].startswith('"anonymous";r=1;')
        await client.get(post_path)
        refused = await client.get(post_path)
        assert refused.status_code == 429
        assert "cache-status" not in refused.headers


async def test_no_memory_without_the_response_cache_or_with_no_max_age(stack: Stack) -> None:
    for overrides in ({"cache_enabled": False}, {"cache_memory_max_age_seconds": 0}):
        async with edge_gateway(unthrottled(stack, **overrides)) as edge, edge.client() as client:
            assert edge.resources.cache.memory is None
            statuses = {
                (await read(client, "/api/v1/posts?sort=new&limit=3")).headers["cache-status"]
                for _ in range(4)
            }
            assert MEMORY not in statuses, (overrides, statuses)


async def test_a_memory_hit_is_traced_and_logged(
    http: httpx.AsyncClient, stack: Stack, otlp_receiver: OtlpReceiver, stack_log: Path
) -> None:
    """On the session stack, whose gateway traces into the test's receiver."""
    path = "/api/v1/communities?sort=new&limit=7"
    await in_memory(http, path)

    async def traced_memory_hit() -> tuple[str, httpx.Response] | None:
        trace_id = new_trace_id()
        otlp_receiver.watch(trace_id)
        answer = await http.get(path, headers={"traceparent": traceparent(trace_id)})
        return (trace_id, answer) if answer.headers["cache-status"] == MEMORY else None

    trace_id, answer = await eventually(traced_memory_hit, within=5)
    spans = await settled_spans(
        otlp_receiver, [trace_id], lambda found: any(s.kind == "SERVER" for s in found)
    )
    gateway = [s for s in spans if s.service == "agora-gateway"]
    (request,) = [s for s in gateway if s.kind == "SERVER"]
    # Below it only the rate limiter's one Redis call: no cache lookup, no upstream call.
    assert [(s.kind, s.name) for s in gateway if s is not request] == [("CLIENT", "EVALSHA")]
    assert request.attributes["http.route"] == "/api/v1/communities"
    assert request.attributes["agora.request_id"] == answer.headers["x-request-id"]
    assert request.attributes["agora.cache_status"] == MEMORY

    request_id = answer.headers["x-request-id"]

    async def logged() -> list[dict[str, Any]]:
        return _gateway_lines(stack_log, request_id)

    (line,) = await eventually(logged)
    assert line["logger"] == "agora.gateway.access"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/v1/communities", 200)
    assert line["trace_id"] == trace_id


def _gateway_lines(stack_log: Path, request_id: str) -> list[dict[str, Any]]:
    """The gateway's JSON log lines of one request, from the session stack's log."""
    found = []
    for raw in stack_log.read_text(encoding="utf-8", errors="replace").splitlines():
        process, _, line = raw.partition("| ")
        if process.strip() == "gateway" and request_id in line:
            found.append(json.loads(line))
    return found
