"""Token revocation: logout denies the access token until it expires, on every route.

Logout (through the auth service) writes the token's id and its session to
the Redis denylist; the gateway asks about both on every request that
carries a token. When Redis cannot answer, the gateway lets verified tokens
through (fail open, logged and counted): failing closed would turn a Redis
outage into an outage of everything signed-in, while a revoked token can
live at most its 15 minutes, and logout itself answers 503 (so the client
knows) when auth cannot write the denylist.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as aioredis
from fastapi.routing import APIRoute

from common.revocation import RevocationList
from gateway.deps import current_user, optional_user
from gateway.routers import ROUTERS
from tests.integration.edge_support import (
    PrivateRedis,
    edge_gateway,
    edge_settings,
    private_redis,
    sample,
)
from tests.integration.gateway_support import Member, assert_problem, register
from tools.stack import Stack

__all__ = ["private_redis"]

ACCESS_TOKEN_TTL = 900  # the auth service's default
SESSION_MARGIN = 60  # services/auth/service.py REVOCATION_MARGIN_SECONDS


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


@pytest.fixture
async def member(http: httpx.AsyncClient) -> Member:
    return await register(http, "rv")


async def test_logout_denies_the_token_for_exactly_its_remaining_life(
    http: httpx.AsyncClient, redis_client: aioredis.Redis, redis_key_prefix: str, member: Member
) -> None:
    claims = claims_of(member.token)
    out = await http.post("/api/v1/auth/logout", headers=member.auth)
    assert out.status_code == 204, out.text
    remaining = claims["exp"] - datetime.now(UTC).timestamp()
    token_ttl = await redis_client.ttl(f"{redis_key_prefix}revoked:jti:{claims['jti']}")
    assert remaining - 3 <= token_ttl <= remaining + 3, (token_ttl, remaining)
    session_ttl = await redis_client.ttl(f"{redis_key_prefix}revoked:sid:{claims['sid']}")
    assert ACCESS_TOKEN_TTL + SESSION_MARGIN - 5 <= session_ttl <= ACCESS_TOKEN_TTL + SESSION_MARGIN
    assert_problem(await http.get("/api/v1/users/me", headers=member.auth), 401)


def _authenticated_routes() -> list[APIRoute]:
    """Every route that reads the caller's token (CurrentUser or OptionalUser)."""

    def reads_token(route: APIRoute) -> bool:
        pending = [route.dependant]
        while pending:
            dependant = pending.pop()
            if dependant.call in (current_user, optional_user):
                return True
            pending.extend(dependant.dependencies)
        return False

    return [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and reads_token(route)
    ]


def _concrete(path: str) -> str:
    values = {"name": "rvcommunity", "username": "rvuser"}
    for part in ("post_id", "comment_id"):
        values[part] = str(uuid.uuid4())
    return path.format(**values)


async def test_a_revoked_token_is_refused_on_every_route_that_reads_tokens(
    http: httpx.AsyncClient, member: Member
) -> None:
    routes = _authenticated_routes()
    assert len(routes) >= 30  # every discussion endpoint, not a handful
    assert (await http.post("/api/v1/auth/logout", headers=member.auth)).status_code == 204
    for route in routes:
        for method in route.methods:
            answer = await http.request(
                method,
                _concrete(route.path),
                params={"q": "x"} if route.path.endswith("/search") else None,
                json={} if method in ("POST", "PUT", "PATCH") else None,
                headers=member.auth,
            )
            body = assert_problem(answer, 401)
            assert "revoked" in body["detail"], (method, route.path, body)


async def test_redis_unreachable_fails_open_until_it_answers_again(
    stack: Stack, private_redis: PrivateRedis, http: httpx.AsyncClient, member: Member
) -> None:
    settings = edge_settings(
        stack,
        redis_url=private_redis.url,
        redis_timeout_seconds=0.2,
        redis_breaker_open_seconds=1,
        upstream_breaker_minimum_calls=3,
    )
    # The denylist entry the auth service would write, in the gateway's (private) Redis.
    claims = claims_of(member.token)
    denylist = aioredis.Redis.from_url(private_redis.url)
    await RevocationList(denylist, settings.redis_key_prefix).revoke_token(
        claims["jti"], datetime.fromtimestamp(claims["exp"], UTC)
    )
    await denylist.aclose()

    async with edge_gateway(settings) as edge, edge.client() as client:
        assert_problem(await client.get("/api/v1/users/me", headers=member.auth), 401)
        private_redis.pause(4)  # Redis hangs: accepts commands, answers none
        before = sample("agora_gateway_revocation_fail_open_total")
        started = time.monotonic()
        for _ in range(6):
            me = await client.get("/api/v1/users/me", headers=member.auth)
            assert me.status_code == 200, me.text
        # Three timeouts of 0.2 s open Redis's breaker; after that nobody waits.
        assert time.monotonic() - started < 3 * 0.2 + 1.0
        assert sample("agora_gateway_revocation_fail_open_total") >= before + 6
        # A token that does not verify is refused all the same: only the denylist is skipped.
        forged = {"Authorization": f"Bearer {member.token[:-4]}AAAA"}
        assert_problem(await client.get("/api/v1/users/me", headers=forged), 401)

        # Redis answers again: once its breaker lets a trial through, the token is refused.
        deadline = time.monotonic() + 10
        while True:
            answer = await client.get("/api/v1/users/me", headers=member.auth)
            if answer.status_code == 401 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert_problem(answer, 401)
