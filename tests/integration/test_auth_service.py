"""Auth use cases in-process against the run's real database: what gRPC cannot reach.

A Redis outage, the purge of expired tokens and cost upgrades need control over
the service's wiring (its Redis, its clock, its bcrypt cost), so these tests
build AuthService themselves on the schema the stack migrated.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis
from sqlalchemy import text

from common.db import Database
from common.errors import Unauthenticated, Unavailable
from common.revocation import RevocationList
from common.settings import CommonSettings, DatabaseSettings
from services.auth import domain
from services.auth.keys import KeySet
from services.auth.service import AuthService, TokenPolicy, utcnow
from tools.stack import Stack, free_port

PASSWORD = "correct horse battery"
ServiceFactory = Callable[..., AuthService]


@pytest.fixture
async def database(stack: Stack, db_settings: DatabaseSettings) -> AsyncIterator[Database]:
    db = Database(db_settings, role="agora_auth", application_name="agora-auth-tests")
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def make_service(database: Database, redis_key_prefix: str) -> AsyncIterator[ServiceFactory]:
    """Build AuthService variants; Redis is the real one unless redis_url says otherwise."""
    keys = KeySet(Ed25519PrivateKey.generate())
    async with AsyncExitStack() as stack:

        def make(
            *,
            redis_url: str | None = None,
            refresh_ttl_seconds: int = 3600,
            rounds: int = 4,
            clock: Callable[[], datetime] = utcnow,
        ) -> AuthService:
            redis = Redis.from_url(
                redis_url or CommonSettings().redis_url.get_secret_value(),
                socket_connect_timeout=0.5,
                socket_timeout=0.5,
            )
            stack.push_async_callback(redis.aclose)
            return AuthService(
                db=database,
                revocations=RevocationList(redis, redis_key_prefix),
                keys=keys,
                policy=TokenPolicy(
                    issuer="agora-auth",
                    audience="agora",
                    access_ttl_seconds=900,
                    refresh_ttl_seconds=refresh_ttl_seconds,
                    bcrypt_rounds=rounds,
                ),
                dummy_password_hash=domain.dummy_password_hash(rounds),
                clock=clock,
            )

        yield make


def new_username() -> str:
    return f"s{uuid.uuid4().hex[:12]}"


async def register(service: AuthService) -> str:
    name = new_username()
    await service.register(name, f"{name}@example.com", PASSWORD)
    return name


async def family_state(database: Database, refresh_token: str) -> tuple[object, ...] | None:
    """(revoked_at, revoke_reason) of the family holding refresh_token, or None if purged."""
    async with database.read() as session:
        row = (
            await session.execute(
                text(
                    "SELECT f.revoked_at, f.revoke_reason FROM auth.token_families f"
                    " JOIN auth.refresh_tokens t ON t.family_id = f.id"
                    " WHERE t.token_hash = :digest"
                ),
                {"digest": domain.refresh_token_digest(refresh_token)},
            )
        ).one_or_none()
    return tuple(row) if row is not None else None


async def test_revocations_commit_even_when_redis_is_down(
    make_service: ServiceFactory, database: Database
) -> None:
    # Nothing listens on a fresh free port: every Redis call fails fast.
    service = make_service(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    name = await register(service)

    reused, _ = await service.login(name, PASSWORD)
    await service.refresh(reused.refresh_token)
    with pytest.raises(Unauthenticated):
        await service.refresh(reused.refresh_token)
    state = await family_state(database, reused.refresh_token)
    assert state is not None
    assert state[1] == "reuse"

    logged_out, user = await service.login(name, PASSWORD)
    # The family is revoked for good, but the access token cannot be denied:
    # logout says so (UNAVAILABLE, a 503 the client retries) rather than 204.
    with pytest.raises(Unavailable):
        await service.logout(
            str(user.id),
            refresh_token=logged_out.refresh_token,
            token_id=str(uuid.uuid4()),
            token_expires_at=utcnow() + timedelta(minutes=15),
        )
    state = await family_state(database, logged_out.refresh_token)
    assert state is not None
    assert state[1] == "logout"
    with pytest.raises(Unauthenticated):
        await service.refresh(logged_out.refresh_token)


async def test_purge_removes_expired_tokens_and_the_sessions_they_leave_empty(
    make_service: ServiceFactory, database: Database
) -> None:
    short = make_service(refresh_ttl_seconds=60)
    name = await register(short)
    first, _ = await short.login(name, PASSWORD)
    second = await short.refresh(first.refresh_token)
    lasting, _ = await make_service().login(name, PASSWORD)

    # Two minutes on, the short session's tokens have expired; the lasting one has not.
    later = make_service(clock=lambda: datetime.now(UTC) + timedelta(minutes=2))
    assert await later.purge_expired_tokens() >= 2
    assert await family_state(database, first.refresh_token) is None
    assert await family_state(database, second.refresh_token) is None
    assert await family_state(database, lasting.refresh_token) == (None, None)
    assert (await make_service().refresh(lasting.refresh_token)).access_token


async def test_login_upgrades_a_hash_weaker_than_the_configured_cost(
    make_service: ServiceFactory, database: Database
) -> None:
    name = await register(make_service(rounds=4))
    await make_service(rounds=5).login(name, PASSWORD)
    async with database.read() as session:
        stored = await session.scalar(
            text("SELECT password_hash FROM auth.users WHERE username = :name"), {"name": name}
        )
    assert isinstance(stored, str)
    assert stored.startswith("$2b$05$")
    # The upgraded hash still verifies, at either configured cost.
    assert (await make_service(rounds=4).login(name, PASSWORD))[1].username == name
