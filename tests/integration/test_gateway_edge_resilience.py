"""Upstream outages: deadlines, per-service circuit breakers, 503 with Retry-After.

A gateway of the test's own (short deadline, a breaker that opens after three
failed calls and tries again after two seconds) in front of the stack's real
services; the outages are real too: the posts process is stopped, or frozen
with SIGSTOP so that it accepts calls and never answers. Either way the rest
of the API keeps answering, and so do posts the cache already holds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest

from common.breaker import BreakerState
from tests.integration.edge_support import Edge, edge_gateway, edge_settings, sample
from tests.integration.gateway_support import Api, Member, assert_problem, register_many
from tools.stack import Stack

pytestmark = pytest.mark.slow

OPEN_SECONDS = 2


@pytest.fixture(scope="module")
async def members(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 2, "rs")


@pytest.fixture
async def edge(stack: Stack) -> AsyncIterator[Edge]:
    settings = edge_settings(
        stack,
        rate_limits_enabled=False,
        upstream_deadline_seconds=0.5,
        upstream_breaker_minimum_calls=3,
        upstream_breaker_open_seconds=OPEN_SECONDS,
    )
    async with edge_gateway(settings) as running:
        yield running


@contextmanager
def frozen(stack: Stack, name: str) -> Iterator[None]:
    """The service's process stopped in its tracks (SIGSTOP): connected, never answering."""
    process = stack.processes[name].popen
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


async def timed(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = await client.get(path)
    return answer, time.monotonic() - started


def breaker_gauge(name: str) -> float:
    return sample("agora_circuit_breaker_state", {"breaker": name})


async def _until_ok(client: httpx.AsyncClient, path: str, within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        answer = await client.get(path)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


async def _world(client: httpx.AsyncClient, members: list[Member]) -> tuple[str, str, str]:
    """A community with a post that is cached and one that is not."""
    author = members[0]
    api = Api(client)
    community = (await api.community(author, "rs"))["name"]
    cached = (await api.post(author, community, "cached"))["id"]
    uncached = (await api.post(author, community, "not cached"))["id"]
    assert (await client.get(f"/api/v1/posts/{cached}")).status_code == 200
    return community, cached, uncached


async def test_a_hung_service_is_cut_off_by_its_breaker(
    stack: Stack, edge: Edge, members: list[Member]
) -> None:
    async with edge.client() as client:
        community, cached, uncached = await _world(client, members)
        breaker = edge.resources.breakers["posts"]
        with frozen(stack, "posts"):
            # Each call waits out the 0.5 s deadline: 503, with Retry-After.
            for _ in range(3):
                answer, took = await timed(client, f"/api/v1/posts/{uncached}")
                assert_problem(answer, 503)
                assert answer.headers["retry-after"] == "1"
                assert 0.4 < took < 1.5, took
            # Three failures: the breaker is open and nobody waits any more.
            assert breaker.state is BreakerState.OPEN
            assert breaker_gauge("posts") == BreakerState.OPEN
            answer, took = await timed(client, f"/api/v1/posts/{uncached}")
            assert_problem(answer, 503)
            assert took < 0.2, took
            assert 1 <= int(answer.headers["retry-after"]) <= OPEN_SECONDS
            # What does not need posts answers as usual, and so does what the cache holds.
            for path in (
                f"/api/v1/communities/{community}",
                f"/api/v1/users/{members[0].username}",
                f"/api/v1/posts/{cached}",
                "/healthz",
            ):
                answer, took = await timed(client, path)
                assert answer.status_code == 200, (path, answer.text)
                assert took < 0.5, (path, took)
            ready = await client.get("/readyz")
            assert assert_problem(ready, 503)["checks"]["posts"] != "ok"
        # Thawed: after the open period one trial call goes through and closes it.
        recovered = await _until_ok(client, f"/api/v1/posts/{uncached}", OPEN_SECONDS + 5)
        assert recovered.status_code == 200, recovered.text
        assert breaker.state is BreakerState.CLOSED
        assert breaker_gauge("posts") == BreakerState.CLOSED


async def test_a_stopped_service_gives_a_fast_503_and_the_rest_still_answers(
    stack: Stack, edge: Edge, members: list[Member]
) -> None:
    async with edge.client() as client:
        community, cached, uncached = await _world(client, members)
        voter = members[1]
        await asyncio.to_thread(stack.stop_service, "posts")
        try:
            for _ in range(5):
                answer, took = await timed(client, f"/api/v1/posts/{uncached}")
                assert_problem(answer, 503)
                assert int(answer.headers["retry-after"]) >= 1
                assert took < 1.0, took
            listing = await client.get(f"/api/v1/communities/{community}/posts?sort=new")
            assert_problem(listing, 503)
            # Everything that does not need posts still works, reads and writes.
            assert (await client.get(f"/api/v1/posts/{cached}")).status_code == 200
            assert (await client.get(f"/api/v1/communities/{community}")).status_code == 200
            assert (await client.get(f"/api/v1/users/{voter.username}")).status_code == 200
            joined = await client.put(
                f"/api/v1/communities/{community}/membership", headers=voter.auth
            )
            assert joined.status_code == 204
            assert (await client.get("/api/v1/users/me", headers=voter.auth)).status_code == 200
        finally:
            await asyncio.to_thread(stack.start_service, "posts")
        recovered = await _until_ok(client, f"/api/v1/posts/{uncached}", OPEN_SECONDS + 10)
        assert recovered.status_code == 200, recovered.text
