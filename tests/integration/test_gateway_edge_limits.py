"""Rate limits at their real numbers, against gateways of the test's own and the real Redis.

Each test runs its own gateway (tests/integration/edge_support.py) with its
own Redis key prefix, in front of the stack's services, so its counters start
at zero and the suite's shared, unthrottled gateway is untouched. Every
request comes from 127.0.0.1, as the shared stack's do; the proxy tests make
clients of other addresses through X-Forwarded-For from a trusted proxy.
"""

from __future__ import annotations

import asyncio
import math
import re
import time

import httpx
import pytest

from tests.integration.edge_support import (
    PrivateRedis,
    dead_redis_url,
    edge_gateway,
    edge_settings,
    private_redis,
    sample,
)
from tests.integration.gateway_support import Api, Member, assert_problem, register_many, unique
from tools.stack import Stack

__all__ = ["private_redis"]

NOWHERE = "/api/v1/no-such-route"  # limited like any /api/ path, and costs no upstream call
POLICY = re.compile(r'"(\w+)";q=(\d+);w=(\d+)')
STATE = re.compile(r'"(\w+)";r=(\d+);t=(\d+)')


def policies(response: httpx.Response) -> dict[str, tuple[int, int]]:
    """RateLimit-Policy as {name: (quota, window seconds)}."""
    header = response.headers["ratelimit-policy"]
    return {name: (int(q), int(w)) for name, q, w in POLICY.findall(header)}


def state(response: httpx.Response) -> tuple[str, int, int]:
    """RateLimit as (policy name, remaining, seconds until a slot frees)."""
    match = STATE.fullmatch(response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return match.group(1), int(match.group(2)), int(match.group(3))


def assert_limited(response: httpx.Response, limit: str) -> int:
    """A 429 problem naming the used-up limit; the Retry-After it gives."""
    body = assert_problem(response, 429)
    assert body["type"] == "urn:agora:problem:rate-limited"
    assert limit in body["detail"], body
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert limit in policies(response)
    return retry_after


async def burst(client: httpx.AsyncClient, count: int, path: str = NOWHERE) -> list[int]:
    statuses = []
    for _ in range(count):
        statuses.append((await client.get(path)).status_code)
    return statuses


@pytest.fixture(scope="module")
async def voters(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 4, "rl")


async def test_anonymous_clients_get_20_a_minute_per_ip(stack: Stack) -> None:
    async with edge_gateway(edge_settings(stack)) as edge, edge.client() as client:
        first = await client.get(NOWHERE)
        assert first.status_code == 404  # limits apply before routing, to every /api/ path
        assert policies(first) == {"anonymous": (20, 60)}
        assert state(first)[:2] == ("anonymous", 19)
        assert await burst(client, 19) == [404] * 19
        refused = await client.get(NOWHERE)
        retry_after = assert_limited(refused, "anonymous")
        assert 55 <= retry_after <= 60
        assert state(refused)[:2] == ("anonymous", 0)
        # Refused requests do not count, and probes, metrics and docs are never limited.
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, path
        assert_limited(await client.get("/api/v1/posts"), "anonymous")


async def test_signed_in_users_get_100_a_minute_each(stack: Stack, voters: list[Member]) -> None:
    alice, bob = voters[0], voters[1]
    async with edge_gateway(edge_settings(stack)) as edge, edge.client() as client:
        answers = [await client.get(NOWHERE, headers=alice.auth) for _ in range(100)]
        assert {a.status_code for a in answers} == {404}
        assert policies(answers[0]) == {"user": (100, 60)}
        assert [state(a)[1] for a in answers[:3]] == [99, 98, 97]
        assert_limited(await client.get(NOWHERE, headers=alice.auth), "user")
        # Another user from the same address has a budget of their own ...
        assert (await client.get(NOWHERE, headers=bob.auth)).status_code == 404
        # ... and so does the address for anonymous requests.
        assert (await client.get(NOWHERE)).status_code == 404
        # A forged token is no user: it counts against the address.
        forged = {"Authorization": "Bearer not.a.token"}
        assert policies(await client.get(NOWHERE, headers=forged)) == {"anonymous": (20, 60)}


async def test_auth_endpoints_get_5_a_minute_per_ip(stack: Stack) -> None:
    async with edge_gateway(edge_settings(stack)) as edge, edge.client() as client:
        statuses = []
        for _ in range(5):
            answer = await client.post("/api/v1/auth/login", json={"username": "x"})
            statuses.append(answer.status_code)
            assert policies(answer) == {"anonymous": (20, 60), "auth": (5, 60)}
        assert statuses == [422] * 5  # counted even when the body is refused
        refused = await client.post(
            "/api/v1/auth/register",
            json={"username": unique("rl"), "email": "rl@example.com", "password": "x" * 12},
        )
        assert_limited(refused, "auth")
        assert state(refused)[:2] == ("auth", 0)
        # Other endpoints still answer this address.
        assert (await client.get("/api/v1/posts")).status_code == 200


async def test_new_posts_get_10_an_hour_per_user(stack: Stack, voters: list[Member]) -> None:
    author = voters[2]
    async with edge_gateway(edge_settings(stack)) as edge, edge.client() as client:
        api = Api(client)
        community = (await api.community(author, "rl"))["name"]
        for i in range(10):
            created = await client.post(
                f"/api/v1/communities/{community}/posts",
                json={"title": f"post {i}"},
                headers=author.auth,
            )
            assert created.status_code == 201, created.text
        assert policies(created) == {"user": (100, 60), "posts": (10, 3600)}
        assert state(created)[:2] == ("posts", 0)
        refused = await client.post(
            f"/api/v1/communities/{community}/posts",
            json={"title": "one too many"},
            headers=author.auth,
        )
        retry_after = assert_limited(refused, "posts")
        assert 3500 < retry_after <= 3600
        # Reading and commenting are other limits.
        assert (await client.get(f"/api/v1/posts/{created.json()['id']}")).status_code == 200


async def test_votes_get_30_a_minute_per_user_and_60_per_ip(
    stack: Stack, voters: list[Member]
) -> None:
    author, *others = voters
    async with edge_gateway(edge_settings(stack)) as edge, edge.client() as client:
        api = Api(client)
        community = (await api.community(author, "rl"))["name"]
        post = await api.post(author, community, "vote on me")

        async def votes(member: Member, count: int) -> list[int]:
            statuses = []
            for i in range(count):
                answer = await client.put(
                    f"/api/v1/posts/{post['id']}/vote",
                    json={"direction": 1 if i % 2 else -1},
                    headers=member.auth,
                )
                statuses.append(answer.status_code)
            return statuses

        first, second, third = others
        assert await votes(first, 30) == [200] * 30
        refused = await client.put(
            f"/api/v1/posts/{post['id']}/vote", json={"direction": 1}, headers=first.auth
        )
        assert_limited(refused, "votes")
        assert policies(refused) == {"user": (100, 60), "votes": (30, 60), "votes_ip": (60, 60)}
        # Many accounts from one address: 60 votes in all, whoever casts them.
        assert await votes(second, 30) == [200] * 30
        assert_limited(
            await client.put(
                f"/api/v1/posts/{post['id']}/vote", json={"direction": 1}, headers=third.auth
            ),
            "votes_ip",
        )


async def test_the_window_slides(stack: Stack) -> None:
    settings = edge_settings(stack, rate_limit_anonymous="3/2s")
    async with edge_gateway(settings) as edge, edge.client() as client:
        assert await burst(client, 3) == [404] * 3
        retry_after = assert_limited(await client.get(NOWHERE), "anonymous")
        assert retry_after <= 2
        await asyncio.sleep(retry_after + 0.1)
        assert (await client.get(NOWHERE)).status_code == 404


async def test_forwarded_for_counts_only_behind_trusted_proxies(stack: Stack) -> None:
    def client_of(address: str, *chain: str) -> dict[str, str]:
        return {"X-Forwarded-For": ", ".join([*chain, address])}

    # Not trusted: the header is ignored, so spoofing it buys nothing.
    settings = edge_settings(stack, rate_limit_anonymous="2/minute")
    async with edge_gateway(settings) as edge, edge.client() as client:
        for i in range(2):
            answer = await client.get(NOWHERE, headers=client_of(f"203.0.113.{i}"))
            assert answer.status_code == 404
        assert_limited(await client.get(NOWHERE, headers=client_of("203.0.113.9")), "anonymous")

    # Trusted (loopback is the proxy here, 10/8 an inner hop): each forwarded client has a
    # budget of its own, and only the rightmost untrusted hop counts, whatever a client
    # wrote to its left.
    settings = edge_settings(
        stack, rate_limit_anonymous="2/minute", trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"]
    )
    async with edge_gateway(settings) as edge, edge.client() as client:
        alice = client_of("198.51.100.1")
        for _ in range(2):
            assert (await client.get(NOWHERE, headers=alice)).status_code == 404
        assert_limited(await client.get(NOWHERE, headers=alice), "anonymous")
        spoofing = client_of("198.51.100.1", "192.0.2.77")  # a forged hop left of alice
        assert_limited(await client.get(NOWHERE, headers=spoofing), "anonymous")
        via_inner_proxy = client_of("10.1.2.3", "198.51.100.1")  # alice behind our 10/8 hop
        assert_limited(await client.get(NOWHERE, headers=via_inner_proxy), "anonymous")
        bob = client_of("198.51.100.2")
        assert (await client.get(NOWHERE, headers=bob)).status_code == 404
        # An IPv6 client's whole /64 is one client.
        for host in ("2001:db8:1:2::1", "2001:db8:1:2::ffff"):
            assert (await client.get(NOWHERE, headers=client_of(host))).status_code == 404
        assert_limited(
            await client.get(NOWHERE, headers=client_of("2001:db8:1:2:abcd::1")), "anonymous"
        )
        assert (await client.get(NOWHERE, headers=client_of("2001:db8:1:3::1"))).status_code == 404


async def test_the_bypass_secret_skips_limits(stack: Stack) -> None:
    secret = "s" * 40
    settings = edge_settings(
        stack, rate_limit_anonymous="1/minute", rate_limit_bypass_secret=secret
    )
    async with edge_gateway(settings) as edge, edge.client() as client:
        assert (await client.get(NOWHERE)).status_code == 404
        assert_limited(await client.get(NOWHERE), "anonymous")
        assert_limited(
            await client.get(NOWHERE, headers={"X-RateLimit-Bypass": "s" * 39}), "anonymous"
        )
        for _ in range(3):
            passed = await client.get(NOWHERE, headers={"X-RateLimit-Bypass": secret})
            assert passed.status_code == 404
            assert "ratelimit" not in passed.headers


def _local_fallbacks() -> float:
    return sample("agora_gateway_rate_limit_fail_open_total")


@pytest.mark.parametrize("outage", ["refused", "hung"])
async def test_redis_down_fails_open_except_auth_which_falls_back_per_process(
    stack: Stack, private_redis: PrivateRedis, outage: str
) -> None:
    """With Redis down, limits are not checked (logged, counted) but auth still is, in memory.

    `refused` is a Redis where nothing listens (connections fail at once),
    `hung` a Redis that accepts commands and never answers (CLIENT PAUSE):
    the first few requests wait out the Redis timeout, then its breaker
    opens and the rest do not wait at all.
    """
    redis_url = dead_redis_url() if outage == "refused" else private_redis.url
    settings = edge_settings(
        stack,
        redis_url=redis_url,
        rate_limit_anonymous="3/minute",
        redis_timeout_seconds=0.2,
    )
    async with edge_gateway(settings) as edge, edge.client() as client:
        if outage == "hung":
            assert await burst(client, 3) == [404] * 3
            assert_limited(await client.get(NOWHERE), "anonymous")  # Redis still answers
            private_redis.pause(30)
        before = _local_fallbacks()
        started = time.monotonic()
        statuses = await burst(client, 20)
        elapsed = time.monotonic() - started
        assert statuses == [404] * 20  # far beyond 3 a minute: failing open
        assert _local_fallbacks() >= before + 20
        # At most the breaker's minimum of calls waited the 0.2 s timeout.
        assert elapsed < 0.2 * settings.upstream_breaker_minimum_calls + 1.5, elapsed
        # The answers say nothing about limits they could not check.
        assert "ratelimit" not in (await client.get(NOWHERE)).headers
        # Auth is still limited, per process: 5 a minute.
        logins = [(await client.post("/api/v1/auth/login", json={})).status_code for _ in range(5)]
        assert logins == [422] * 5
        refused = await client.post("/api/v1/auth/login", json={})
        assert_limited(refused, "auth")
        assert math.isclose(int(refused.headers["retry-after"]), 60, abs_tol=2)
