"""The auth service over real gRPC, against its real process, Postgres and Redis."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
import redis.asyncio as aioredis
from agora.auth.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from common.grpc_client import open_channel
from common.ids import uuid7
from common.settings import CommonSettings, DatabaseSettings
from common.tokens import AccessClaims, AccessTokenVerifier
from services.auth.domain import refresh_token_digest
from tests.integration.grpc_support import as_user, violated_fields
from tools.stack import Stack

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
PASSWORD = "correct horse battery"
BAD_CREDENTIALS = "invalid username, email or password"
# Access token life plus the margin the service adds for verifier leeway and skew.
SESSION_DENIAL_MAX_SECONDS = 900 + 60


@dataclass
class Account:
    user: auth_pb2.User
    username: str
    email: str
    password: str


@pytest.fixture(scope="module")
async def auth(stack: Stack) -> AsyncIterator[Any]:
    channel = open_channel(stack.address("auth"), [AUTH_SERVICE])
    try:
        yield auth_pb2_grpc.AuthServiceStub(channel)
    finally:
        await channel.close()


@pytest.fixture(scope="module")
def verifier(stack: Stack, auth: Any) -> AccessTokenVerifier:
    defaults = CommonSettings.model_fields

    async def fetch() -> str:
        answer = await auth.GetJwks(auth_pb2.GetJwksRequest())
        return str(answer.jwks_json)

    return AccessTokenVerifier(
        fetch,
        issuer=stack.env.get("AGORA_TOKEN_ISSUER", defaults["token_issuer"].default),
        audience=stack.env.get("AGORA_TOKEN_AUDIENCE", defaults["token_audience"].default),
    )


def new_username() -> str:
    return f"u{uuid.uuid4().hex[:12]}"


async def register(auth: Any, username: str | None = None, email: str | None = None) -> Account:
    username = username or new_username()
    email = email or f"{username}@example.com"
    answer = await auth.Register(
        auth_pb2.RegisterRequest(username=username, email=email, password=PASSWORD)
    )
    return Account(user=answer.user, username=username, email=email, password=PASSWORD)


async def login(auth: Any, account: Account, login_as: str | None = None) -> Any:
    return await auth.Login(
        auth_pb2.LoginRequest(login=login_as or account.username, password=account.password)
    )


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


async def refresh(auth: Any, token: str) -> Any:
    return await auth.Refresh(auth_pb2.RefreshRequest(refresh_token=token))


# Registration and login


async def test_register_then_log_in_by_username_and_by_email(auth: Any) -> None:
    username = new_username().upper()
    account = await register(auth, username=username, email=f"{username}@Example.COM")
    user = account.user
    assert uuid.UUID(user.id).version == 7
    assert user.username == username
    assert user.email == f"{username}@example.com"
    assert user.karma == 0
    created = user.created_at.ToDatetime(tzinfo=UTC)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)

    for login_as in (username.lower(), f"{username.lower()}@EXAMPLE.com"):
        answer = await login(auth, account, login_as=login_as)
        assert answer.user.id == user.id
        assert answer.user.email == account.user.email
        assert answer.tokens.token_type == "Bearer"
        assert answer.tokens.expires_in == 900
        assert answer.tokens.access_token.count(".") == 2
        assert len(answer.tokens.refresh_token) >= 43


async def test_access_tokens_verify_with_the_shared_verifier(
    auth: Any, verifier: AccessTokenVerifier
) -> None:
    account = await register(auth)
    answer = await login(auth, account)
    claims = await verifier.verify(answer.tokens.access_token)
    assert claims.user_id == account.user.id
    assert uuid.UUID(claims.session_id)
    remaining = claims.expires_at - datetime.now(UTC)
    assert timedelta(minutes=14) < remaining <= timedelta(minutes=15)


async def test_wrong_password_and_unknown_user_look_the_same(auth: Any) -> None:
    account = await register(auth)
    attempts = {
        "wrong password": auth_pb2.LoginRequest(login=account.username, password="wrong pass!"),
        "unknown user": auth_pb2.LoginRequest(login=new_username(), password=PASSWORD),
        "unknown email": auth_pb2.LoginRequest(login="nobody@example.com", password=PASSWORD),
        "not a name": auth_pb2.LoginRequest(login="no such name!", password=PASSWORD),
    }
    durations: dict[str, list[float]] = {name: [] for name in attempts}
    for _ in range(3):
        for name, request in attempts.items():
            started = time.perf_counter()
            error = await rpc_error(auth.Login(request))
            durations[name].append(time.perf_counter() - started)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert error.details() == BAD_CREDENTIALS, name
    # Unknown logins pay for a bcrypt too. Without it they would answer ~50x faster.
    wrong = statistics.median(durations["wrong password"])
    for name in ("unknown user", "unknown email", "not a name"):
        assert statistics.median(durations[name]) > 0.5 * wrong, (name, durations)


@pytest.mark.parametrize(
    ("taken", "attempt"),
    [
        ("{tag}_admin", "{tag}_admin"),
        ("{tag}_admin", "{tag}_ADMIN"),
        ("{tag}_admin", "{tag}_adm1n"),
        ("{tag}_admin", "{tag}_AdmIn"),
        ("{tag}_admin", "{tag}_adrnin"),
        ("{tag}_admin", "{tag}_\uff41\uff44\uff4d\uff49\uff4e"),  # fullwidth
        ("{tag}_wolf", "{tag}_vvo1f"),
    ],
)
async def test_taken_and_look_alike_usernames_conflict(auth: Any, taken: str, attempt: str) -> None:
    tag = f"t{uuid.uuid4().hex[:8]}"
    await register(auth, username=taken.format(tag=tag))
    error = await rpc_error(
        register(auth, username=attempt.format(tag=tag), email=f"{tag}.other@example.com")
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert set(violated_fields(error)) == {"username"}


async def test_emails_conflict_case_insensitively(auth: Any) -> None:
    first = await register(auth)
    error = await rpc_error(register(auth, email=first.email.upper()))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert set(violated_fields(error)) == {"email"}


async def test_concurrent_registrations_of_one_name_have_exactly_one_winner(auth: Any) -> None:
    tag = f"t{uuid.uuid4().hex[:8]}"
    names = [f"{tag}_admin", f"{tag}_ADMIN", f"{tag}_adm1n", f"{tag}_admin", f"{tag}_AdmIn"]
    results = await asyncio.gather(
        *(register(auth, username=n, email=f"{tag}.{i}@example.com") for i, n in enumerate(names)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Account)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == len(names) - 1
    for error in losers:
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert set(violated_fields(error)) == {"username"}


async def test_concurrent_registrations_of_one_email_have_exactly_one_winner(auth: Any) -> None:
    email = f"{new_username()}@example.com"
    results = await asyncio.gather(
        *(register(auth, email=e) for e in (email, email.upper(), email.title(), email)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Account) for r in results) == 1
    for error in (r for r in results if isinstance(r, grpc.aio.AioRpcError)):
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert set(violated_fields(error)) == {"email"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "ab"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "x" * 2000}, "username"),
        ({"email": ""}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "someone@localhost"}, "email"),
        ({"password": ""}, "password"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password": " " * 12}, "password"),
    ],
)
async def test_bad_registrations_name_the_field(
    auth: Any, overrides: dict[str, str], field: str
) -> None:
    username = new_username()
    request = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    request.update(overrides)
    error = await rpc_error(auth.Register(auth_pb2.RegisterRequest(**request)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violated_fields(error)) == {field}


async def test_every_bad_field_is_reported_at_once(auth: Any) -> None:
    error = await rpc_error(
        auth.Register(auth_pb2.RegisterRequest(username="a", email="b", password="c"))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violated_fields(error)) == {"username", "email", "password"}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (auth_pb2.LoginRequest(login="", password=PASSWORD), "username"),
        (auth_pb2.LoginRequest(login="someone", password=""), "password"),
        (auth_pb2.LoginRequest(login="someone", password="p" * 5000), "password"),
    ],
)
async def test_bad_logins_name_the_field(
    auth: Any, request_: auth_pb2.LoginRequest, field: str
) -> None:
    error = await rpc_error(auth.Login(request_))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violated_fields(error)) == {field}


# Refresh


async def test_refresh_rotates_within_the_session(auth: Any, verifier: AccessTokenVerifier) -> None:
    account = await register(auth)
    first = (await login(auth, account)).tokens
    second = (await refresh(auth, first.refresh_token)).tokens
    assert second.refresh_token != first.refresh_token
    assert second.token_type == "Bearer"
    assert second.expires_in == 900
    before = await verifier.verify(first.access_token)
    after = await verifier.verify(second.access_token)
    assert after.session_id == before.session_id
    assert after.token_id != before.token_id
    assert after.user_id == account.user.id
    third = (await refresh(auth, second.refresh_token)).tokens
    assert (await verifier.verify(third.access_token)).session_id == before.session_id


async def test_reusing_a_spent_refresh_token_revokes_the_whole_session(
    auth: Any,
    verifier: AccessTokenVerifier,
    redis_client: aioredis.Redis,
    redis_key_prefix: str,
) -> None:
    account = await register(auth)
    original = (await login(auth, account)).tokens
    other_session = (await login(auth, account)).tokens
    rotated = (await refresh(auth, original.refresh_token)).tokens
    session_id = (await verifier.verify(original.access_token)).session_id

    replay = await rpc_error(refresh(auth, original.refresh_token))
    assert replay.code() == grpc.StatusCode.UNAUTHENTICATED
    # The legitimate holder's newer token dies with the family...
    assert (await rpc_error(refresh(auth, rotated.refresh_token))).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # ...and every access token of the session is denied at once.
    ttl = await redis_client.ttl(f"{redis_key_prefix}revoked:sid:{session_id}")
    assert 0 < ttl <= SESSION_DENIAL_MAX_SECONDS
    # Other sessions of the same user are untouched.
    assert (await refresh(auth, other_session.refresh_token)).tokens.refresh_token


async def test_racing_refreshes_of_one_token_count_as_reuse(auth: Any) -> None:
    """Each token is spent once: the row lock makes every later racer see it spent."""
    account = await register(auth)
    sessions = [(await login(auth, account)).tokens for _ in range(4)]
    racers = 4
    results = await asyncio.gather(
        *(refresh(auth, tokens.refresh_token) for tokens in sessions for _ in range(racers)),
        return_exceptions=True,
    )
    for index in range(len(sessions)):
        outcome = results[index * racers : (index + 1) * racers]
        won = [r for r in outcome if not isinstance(r, BaseException)]
        lost = [r for r in outcome if isinstance(r, grpc.aio.AioRpcError)]
        assert len(won) == 1, outcome
        assert len(lost) == racers - 1
        assert all(error.code() == grpc.StatusCode.UNAUTHENTICATED for error in lost)
        # The winner's successor was issued before the replays revoked the family.
        error = await rpc_error(refresh(auth, won[0].tokens.refresh_token))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_expired_refresh_tokens_are_refused_without_revoking(
    auth: Any, db_settings: DatabaseSettings
) -> None:
    account = await register(auth)
    tokens = (await login(auth, account)).tokens
    digest = refresh_token_digest(tokens.refresh_token)
    async with await psycopg.AsyncConnection.connect(
        host=db_settings.host,
        port=db_settings.port,
        dbname=db_settings.name,
        user=db_settings.admin_user,
        password=db_settings.admin_password.get_secret_value() or None,
        autocommit=True,
    ) as conn:
        await conn.execute(
            "UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 second'"
            " WHERE token_hash = %s",
            (digest,),
        )
        error = await rpc_error(refresh(auth, tokens.refresh_token))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        cursor = await conn.execute(
            "SELECT f.revoked_at FROM auth.token_families f"
            " JOIN auth.refresh_tokens t ON t.family_id = f.id WHERE t.token_hash = %s",
            (digest,),
        )
        assert await cursor.fetchone() == (None,)


@pytest.mark.parametrize("token", ["garbage", "x" * 43])
async def test_unknown_refresh_tokens_are_unauthenticated(auth: Any, token: str) -> None:
    assert (await rpc_error(refresh(auth, token))).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_empty_refresh_token_is_invalid(auth: Any) -> None:
    error = await rpc_error(refresh(auth, ""))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violated_fields(error)) == {"refresh_token"}


# Logout


def logout_request(claims: AccessClaims, refresh_token: str = "") -> auth_pb2.LogoutRequest:
    expires_at = Timestamp()
    expires_at.FromDatetime(claims.expires_at)
    return auth_pb2.LogoutRequest(
        refresh_token=refresh_token,
        session_id=claims.session_id,
        token_id=claims.token_id,
        token_expires_at=expires_at,
    )


async def test_logout_ends_the_session_and_denies_the_access_token(
    auth: Any,
    verifier: AccessTokenVerifier,
    redis_client: aioredis.Redis,
    redis_key_prefix: str,
) -> None:
    account = await register(auth)
    current = (await login(auth, account)).tokens
    second = (await login(auth, account)).tokens
    untouched = (await login(auth, account)).tokens
    claims = await verifier.verify(current.access_token)
    second_session = (await verifier.verify(second.access_token)).session_id

    request = logout_request(claims, refresh_token=second.refresh_token)
    await auth.Logout(request, metadata=as_user(account.user.id))

    jti_ttl = await redis_client.ttl(f"{redis_key_prefix}revoked:jti:{claims.token_id}")
    assert 0 < jti_ttl <= SESSION_DENIAL_MAX_SECONDS
    for session_id in (claims.session_id, second_session):
        ttl = await redis_client.ttl(f"{redis_key_prefix}revoked:sid:{session_id}")
        assert 0 < ttl <= SESSION_DENIAL_MAX_SECONDS
    for token in (current.refresh_token, second.refresh_token):
        assert (await rpc_error(refresh(auth, token))).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await refresh(auth, untouched.refresh_token)).tokens.access_token
    # Logging out twice is fine.
    await auth.Logout(request, metadata=as_user(account.user.id))


async def test_logout_leaves_other_users_sessions_alone(
    auth: Any,
    verifier: AccessTokenVerifier,
    redis_client: aioredis.Redis,
    redis_key_prefix: str,
) -> None:
    victim, intruder = await register(auth), await register(auth)
    victim_tokens = (await login(auth, victim)).tokens
    victim_claims = await verifier.verify(victim_tokens.access_token)

    await auth.Logout(
        logout_request(victim_claims, refresh_token=victim_tokens.refresh_token),
        metadata=as_user(intruder.user.id),
    )
    key = f"{redis_key_prefix}revoked:sid:{victim_claims.session_id}"
    assert not await redis_client.exists(key)
    assert (await refresh(auth, victim_tokens.refresh_token)).tokens.refresh_token


async def test_logout_needs_a_verified_caller(auth: Any) -> None:
    error = await rpc_error(auth.Logout(auth_pb2.LogoutRequest(session_id=str(uuid7()))))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_logout_with_a_malformed_session_id_is_invalid(auth: Any) -> None:
    account = await register(auth)
    error = await rpc_error(
        auth.Logout(
            auth_pb2.LogoutRequest(session_id="not-a-session"), metadata=as_user(account.user.id)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violated_fields(error)) == {"session_id"}


# Users


async def test_get_user_by_id_and_name_shows_the_email_only_to_its_owner(auth: Any) -> None:
    owner, other = await register(auth), await register(auth)
    by_name = await auth.GetUser(auth_pb2.GetUserRequest(username=owner.username.upper()))
    assert by_name.user.id == owner.user.id
    assert by_name.user.username == owner.username
    assert by_name.user.email == ""

    request = auth_pb2.GetUserRequest(id=owner.user.id, include_email=True)
    mine = await auth.GetUser(request, metadata=as_user(owner.user.id))
    assert mine.user.email == owner.email
    theirs = await auth.GetUser(request, metadata=as_user(other.user.id))
    assert theirs.user.email == ""
    anonymous = await auth.GetUser(request)
    assert anonymous.user.email == ""
    assert anonymous.user.created_at == owner.user.created_at


@pytest.mark.parametrize(
    "request_",
    [
        auth_pb2.GetUserRequest(id=str(uuid.UUID(int=0))),
        auth_pb2.GetUserRequest(id="not-a-uuid"),
        auth_pb2.GetUserRequest(username="nobody_by_this_name"),
    ],
)
async def test_unknown_users_are_not_found(auth: Any, request_: auth_pb2.GetUserRequest) -> None:
    assert (await rpc_error(auth.GetUser(request_))).code() == grpc.StatusCode.NOT_FOUND


async def test_get_user_needs_an_id_or_a_name(auth: Any) -> None:
    error = await rpc_error(auth.GetUser(auth_pb2.GetUserRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_batch_get_users_resolves_ids_and_names_skipping_unknowns(auth: Any) -> None:
    first, second, third = await register(auth), await register(auth), await register(auth)
    answer = await auth.BatchGetUsers(
        auth_pb2.BatchGetUsersRequest(
            ids=[second.user.id, "not-a-uuid", str(uuid7()), first.user.id],
            usernames=[third.username.upper(), "nobody_here", first.username],
        )
    )
    assert [u.id for u in answer.users] == [second.user.id, first.user.id, third.user.id]
    assert all(u.email == "" for u in answer.users)
    assert answer.users[2].username == third.username


async def test_batch_get_users_is_capped_at_100_per_list(auth: Any) -> None:
    assert not (
        await auth.BatchGetUsers(auth_pb2.BatchGetUsersRequest(ids=[str(uuid7())] * 100))
    ).users
    error = await rpc_error(
        auth.BatchGetUsers(auth_pb2.BatchGetUsersRequest(usernames=["someone"] * 101))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violated_fields(error)) == {"usernames"}


async def test_jwks_is_a_key_set_of_public_ed25519_keys(auth: Any) -> None:
    document = json.loads((await auth.GetJwks(auth_pb2.GetJwksRequest())).jwks_json)
    assert document["keys"]
    for key in document["keys"]:
        assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
        assert key["kid"]
        assert "d" not in key
