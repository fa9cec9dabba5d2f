"""The gateway's auth and user endpoints, over HTTP, in front of the real auth service.

Everything here talks to the `stack` of the test run: a real gateway process,
a real auth process, Postgres and Redis. The one exception is the Redis
outage test, which runs a second, in-process gateway pointed at a dead Redis
(the shared Redis cannot be stopped) and at the stack's real auth service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from gateway.app import create_app
from gateway.clients import UPSTREAMS
from gateway.settings import GatewaySettings
from tools.stack import Stack

PASSWORD = "correct horse battery"
PROBLEM_JSON = "application/problem+json"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _name(prefix: str = "u") -> str:
    """A fresh username (3-20 of [A-Za-z0-9_]) that no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status, in body and header alike."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str), member
        assert body[member], member
    assert _SANE_ID.fullmatch(response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"
    return body


def assert_unauthorized(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Account:
    username: str
    email: str
    password: str
    id: str


async def register(http: httpx.AsyncClient, username: str | None = None) -> Account:
    name = username or _name()
    email = f"{name.lower()}@example.com"
    response = await http.post(
        "/api/v1/auth/register", json={"username": name, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    user = response.json()
    return Account(name, email, PASSWORD, user["id"])


async def login(http: httpx.AsyncClient, account: Account, *, by_email: bool = False) -> Any:
    login_name = account.email if by_email else account.username
    response = await http.post(
        "/api/v1/auth/login", json={"username": login_name, "password": account.password}
    )
    assert response.status_code == 200, response.text
    return response.json()


# The journey ----------------------------------------------------------------------------------


async def test_register_login_refresh_reuse_logout(http: httpx.AsyncClient, stack: Stack) -> None:
    name = _name("Journey")
    email = f"{name}@Example.COM"
    created = await http.post(
        "/api/v1/auth/register", json={"username": name, "email": email, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    user = created.json()
    assert set(user) == {"id", "username", "created_at", "karma", "email"}
    assert user["username"] == name
    assert user["karma"] == 0
    assert user["email"].lower() == email.lower()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", user["created_at"])
    assert created.headers["location"] == f"/api/v1/users/{name}"

    # Two sessions: one by username, one by email (any case).
    by_name = await http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert by_name.status_code == 200, by_name.text
    assert by_name.headers["cache-control"] == "no-store"
    first = by_name.json()
    assert set(first) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert first["token_type"] == "Bearer"
    assert 0 < first["expires_in"] <= 3600
    second = (
        await http.post(
            "/api/v1/auth/login", json={"username": email.upper(), "password": PASSWORD}
        )
    ).json()

    me = await http.get("/api/v1/users/me", headers=bearer(first["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json() == user

    # Refresh rotates: a new pair, and the old refresh token is spent.
    refreshed = await http.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    rotated = refreshed.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["access_token"] != first["access_token"]
    me = await http.get("/api/v1/users/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 200

    # Reusing the spent token is 401 and kills the family: the new one dies too.
    reuse = await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_unauthorized(reuse)
    after = await http.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert_unauthorized(after)
    # ... and so do the family's access tokens, at once.
    assert_unauthorized(await http.get("/api/v1/users/me", headers=bearer(rotated["access_token"])))

    # The other session is untouched until it logs out.
    token = second["access_token"]
    assert (await http.get("/api/v1/users/me", headers=bearer(token))).status_code == 200
    out = await http.post(
        "/api/v1/auth/logout",
        json={"refresh_token": second["refresh_token"]},
        headers=bearer(token),
    )
    assert out.status_code == 204, out.text
    assert out.content == b""
    assert_unauthorized(await http.get("/api/v1/users/me", headers=bearer(token)))
    assert_unauthorized(
        await http.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    )
    assert_unauthorized(await http.post("/api/v1/auth/logout", headers=bearer(token)))

    # Nothing secret reached any process's log.
    await asyncio.sleep(0.3)
    log_path: Path | None = getattr(stack.log_sink, "path", None)
    if log_path is not None:
        logged = await asyncio.to_thread(log_path.read_text, encoding="utf-8")
        for secret in (
            PASSWORD,
            first["access_token"],
            first["refresh_token"],
            second["refresh_token"],
        ):
            assert secret not in logged


async def test_logout_without_a_body_ends_only_that_session(http: httpx.AsyncClient) -> None:
    account = await register(http)
    first, second = await login(http, account), await login(http, account)
    out = await http.post("/api/v1/auth/logout", headers=bearer(first["access_token"]))
    assert out.status_code == 204, out.text
    assert_unauthorized(await http.get("/api/v1/users/me", headers=bearer(first["access_token"])))
    assert_unauthorized(
        await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    )
    me = await http.get("/api/v1/users/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200


async def test_public_profile_has_no_email(http: httpx.AsyncClient) -> None:
    account = await register(http)
    response = await http.get(f"/api/v1/users/{account.username}")
    assert response.status_code == 200, response.text
    profile = response.json()
    assert set(profile) == {"id", "username", "created_at", "karma"}
    assert profile["id"] == account.id
    # Names are looked up case-insensitively and after NFKC, like at registration.
    for spelling in (account.username.upper(), _fullwidth(account.username)):
        other = await http.get(f"/api/v1/users/{spelling}")
        assert other.status_code == 200, spelling
        assert other.json() == profile
    # A caller's token does not reveal someone else's email either.
    viewer = await login(http, await register(http))
    seen = await http.get(
        f"/api/v1/users/{account.username}", headers=bearer(viewer["access_token"])
    )
    assert "email" not in seen.json()


@pytest.mark.parametrize(
    "username",
    ["nobody_" + "x" * 8, "ab", "a" * 21, "bad-name", "it's", "😀😀😀", "' OR 1=1 --"],
)
async def test_unknown_or_impossible_usernames_are_404(
    http: httpx.AsyncClient, username: str
) -> None:
    assert_problem(await http.get(f"/api/v1/users/{username}"), 404)


async def test_register_conflicts_are_409_case_insensitively(http: httpx.AsyncClient) -> None:
    account = await register(http)
    taken_name = await http.post(
        "/api/v1/auth/register",
        json={
            "username": account.username.upper(),
            "email": f"other_{uuid.uuid4().hex[:8]}@example.com",
            "password": PASSWORD,
        },
    )
    body = assert_problem(taken_name, 409)
    assert [e["field"] for e in body["errors"]] == ["username"]
    taken_email = await http.post(
        "/api/v1/auth/register",
        json={"username": _name(), "email": account.email.upper(), "password": PASSWORD},
    )
    body = assert_problem(taken_email, 409)
    assert [e["field"] for e in body["errors"]] == ["email"]


async def test_bad_credentials_are_401_without_saying_which(http: httpx.AsyncClient) -> None:
    account = await register(http)
    wrong_password = await http.post(
        "/api/v1/auth/login", json={"username": account.username, "password": "wrong password"}
    )
    unknown_user = await http.post(
        "/api/v1/auth/login", json={"username": _name(), "password": PASSWORD}
    )
    first, second = assert_unauthorized(wrong_password), assert_unauthorized(unknown_user)
    assert first["detail"] == second["detail"]


# Forged and broken tokens ---------------------------------------------------------------------


@dataclass
class RealToken:
    token: str
    header: dict[str, Any]
    claims: dict[str, Any]


@pytest.fixture
async def real_token(http: httpx.AsyncClient) -> RealToken:
    tokens = await login(http, await register(http))
    token = tokens["access_token"]
    return RealToken(
        token,
        jwt.get_unverified_header(token),
        jwt.decode(token, options={"verify_signature": False}),
    )


def _signing_key(stack: Stack) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(
        stack.env["AGORA_AUTH_SIGNING_KEY"].encode(), password=None
    )
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _alg_none(real: RealToken, _stack: Stack, _jwks: dict[str, Any]) -> str:
    return f"{_b64url_json({'alg': 'none', 'typ': 'JWT'})}.{_b64url_json(real.claims)}."


def _alg_none_with_kid(real: RealToken, _stack: Stack, _jwks: dict[str, Any]) -> str:
    header = {"alg": "none", "kid": real.header["kid"]}
    return f"{_b64url_json(header)}.{_b64url_json(real.claims)}."


def _hs256_with_public_key(real: RealToken, _stack: Stack, jwks: dict[str, Any]) -> str:
    """The algorithm-confusion attack: HMAC keyed with the published public key."""
    jwk = next(k for k in jwks["keys"] if k["kid"] == real.header["kid"])
    header = {"alg": "HS256", "typ": "JWT", "kid": real.header["kid"]}
    return _hs256(header, real.claims, json.dumps(jwk).encode())


def _hs256_with_raw_public_key(real: RealToken, _stack: Stack, jwks: dict[str, Any]) -> str:
    jwk = next(k for k in jwks["keys"] if k["kid"] == real.header["kid"])
    raw = base64.urlsafe_b64decode(jwk["x"] + "==")
    header = {"alg": "HS256", "typ": "JWT", "kid": real.header["kid"]}
    return _hs256(header, real.claims, raw)


def _other_key_same_kid(real: RealToken, _stack: Stack, _jwks: dict[str, Any]) -> str:
    return jwt.encode(
        real.claims,
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": real.header["kid"]},
    )


def _expired(real: RealToken, stack: Stack, _jwks: dict[str, Any]) -> str:
    now = int(time.time())
    claims = {**real.claims, "iat": now - 3600, "nbf": now - 3600, "exp": now - 600}
    return jwt.encode(
        claims, _signing_key(stack), algorithm="EdDSA", headers={"kid": real.header["kid"]}
    )


def _not_yet_valid(real: RealToken, stack: Stack, _jwks: dict[str, Any]) -> str:
    now = int(time.time())
    claims = {**real.claims, "iat": now, "nbf": now + 600, "exp": now + 1200}
    return jwt.encode(
        claims, _signing_key(stack), algorithm="EdDSA", headers={"kid": real.header["kid"]}
    )


def _wrong_audience(real: RealToken, stack: Stack, _jwks: dict[str, Any]) -> str:
    claims = {**real.claims, "aud": "someone-else"}
    return jwt.encode(
        claims, _signing_key(stack), algorithm="EdDSA", headers={"kid": real.header["kid"]}
    )


def _wrong_issuer(real: RealToken, stack: Stack, _jwks: dict[str, Any]) -> str:
    claims = {**real.claims, "iss": "https://evil.example"}
    return jwt.encode(
        claims, _signing_key(stack), algorithm="EdDSA", headers={"kid": real.header["kid"]}
    )


def _missing_session(real: RealToken, stack: Stack, _jwks: dict[str, Any]) -> str:
    claims = {k: v for k, v in real.claims.items() if k != "sid"}
    return jwt.encode(
        claims, _signing_key(stack), algorithm="EdDSA", headers={"kid": real.header["kid"]}
    )


def _tampered_payload(real: RealToken, _stack: Stack, _jwks: dict[str, Any]) -> str:
    header, _payload, signature = real.token.split(".")
    claims = {**real.claims, "sub": str(uuid.uuid4())}
    return f"{header}.{_b64url_json(claims)}.{signature}"


def _tampered_signature(real: RealToken, _stack: Stack, _jwks: dict[str, Any]) -> str:
    header, payload, signature = real.token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{header}.{payload}.{flipped}"


def _unknown_kid(real: RealToken, stack: Stack, _jwks: dict[str, Any]) -> str:
    return jwt.encode(
        real.claims, _signing_key(stack), algorithm="EdDSA", headers={"kid": "no-such-key"}
    )


def _no_kid(real: RealToken, stack: Stack, _jwks: dict[str, Any]) -> str:
    return jwt.encode(real.claims, _signing_key(stack), algorithm="EdDSA")


def _garbage(_real: RealToken, _stack: Stack, _jwks: dict[str, Any]) -> str:
    return "this.is.not-a-jwt"


def _huge(_real: RealToken, _stack: Stack, _jwks: dict[str, Any]) -> str:
    return "a" * 10_000


Forger = Callable[[RealToken, Stack, dict[str, Any]], str]
FORGERIES: dict[str, Forger] = {
    "alg-none": _alg_none,
    "alg-none-with-kid": _alg_none_with_kid,
    "hs256-with-public-jwk": _hs256_with_public_key,
    "hs256-with-raw-public-key": _hs256_with_raw_public_key,
    "other-ed25519-key-same-kid": _other_key_same_kid,
    "expired": _expired,
    "not-yet-valid": _not_yet_valid,
    "wrong-audience": _wrong_audience,
    "wrong-issuer": _wrong_issuer,
    "missing-sid": _missing_session,
    "tampered-payload": _tampered_payload,
    "tampered-signature": _tampered_signature,
    "unknown-kid": _unknown_kid,
    "no-kid": _no_kid,
    "garbage": _garbage,
    "huge": _huge,
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_forged_tokens_are_401(
    http: httpx.AsyncClient, stack: Stack, real_token: RealToken, forgery: str
) -> None:
    jwks = (await http.get("/.well-known/jwks.json")).json()
    token = FORGERIES[forgery](real_token, stack, jwks)
    for method, path in (("GET", "/api/v1/users/me"), ("POST", "/api/v1/auth/logout")):
        response = await http.request(method, path, headers=bearer(token))
        body = assert_unauthorized(response)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert token not in body["detail"]
    # The genuine token still works, so the 401s were about the forgery.
    assert (await http.get("/api/v1/users/me", headers=bearer(real_token.token))).is_success


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
    ids=["absent", "empty", "scheme-only", "basic", "other-scheme", "lower"],
)
async def test_missing_or_malformed_authorization_is_401(
    http: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await http.get("/api/v1/users/me", headers=headers)
    assert_unauthorized(response)


async def test_token_without_bearer_prefix_is_401(
    http: httpx.AsyncClient, real_token: RealToken
) -> None:
    response = await http.get("/api/v1/users/me", headers={"Authorization": real_token.token})
    assert_unauthorized(response)
    # The scheme is case-insensitive (RFC 9110), the token is not.
    lower = await http.get(
        "/api/v1/users/me", headers={"Authorization": f"bearer {real_token.token}"}
    )
    assert lower.status_code == 200


# Bad input ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadInput:
    path: str
    status: int
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    fields: tuple[str, ...] = ()


def _register_body(**overrides: Any) -> dict[str, Any]:
    name = _name("b")
    body: dict[str, Any] = {
        "username": name,
        "email": f"{name}@example.com",
        "password": PASSWORD,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


REGISTER, LOGIN, REFRESH = "/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh"
JSON_HEADERS = {"Content-Type": "application/json"}

BAD_INPUTS: dict[str, BadInput] = {
    # Not JSON at all.
    "truncated-json": BadInput(REGISTER, 400, content=b'{"username": "abc",', headers=JSON_HEADERS),
    "not-json": BadInput(LOGIN, 400, content=b"username=abc&password=x", headers=JSON_HEADERS),
    "invalid-utf8": BadInput(LOGIN, 400, content=b'{"username": "\xff\xfe"}', headers=JSON_HEADERS),
    "deep-nesting": BadInput(LOGIN, 400, content=b"[" * 50_000, headers=JSON_HEADERS),
    # JSON, but not an object of the right shape.
    "empty-body": BadInput(REGISTER, 422, content=b"", headers=JSON_HEADERS, fields=("body",)),
    "null": BadInput(REGISTER, 422, content=b"null", headers=JSON_HEADERS, fields=("body",)),
    "array": BadInput(REGISTER, 422, json=[], fields=("body",)),
    "string": BadInput(LOGIN, 422, json="username", fields=("body",)),
    "missing-fields": BadInput(REGISTER, 422, json={}, fields=("username", "email", "password")),
    "missing-password": BadInput(LOGIN, 422, json={"username": "abc"}, fields=("password",)),
    "empty-fields": BadInput(
        REGISTER,
        422,
        json={"username": "", "email": "", "password": ""},
        fields=("username", "email", "password"),
    ),
    # Wrong types are errors, never coerced.
    "number-as-username": BadInput(
        REGISTER, 422, json=_register_body(username=12345), fields=("username",)
    ),
    "number-as-password": BadInput(
        REGISTER, 422, json=_register_body(password=12345678), fields=("password",)
    ),
    "bool-as-email": BadInput(REGISTER, 422, json=_register_body(email=True), fields=("email",)),
    "list-as-username": BadInput(
        LOGIN, 422, json={"username": ["a"], "password": "x"}, fields=("username",)
    ),
    "operator-object": BadInput(
        LOGIN, 422, json={"username": {"$ne": None}, "password": "x"}, fields=("username",)
    ),
    "null-password": BadInput(
        LOGIN, 422, json={"username": "abc", "password": None}, fields=("password",)
    ),
    "nan": BadInput(
        LOGIN,
        422,
        content=b'{"username": NaN, "password": "x"}',
        headers=JSON_HEADERS,
        fields=("username",),
    ),
    "number-refresh-token": BadInput(
        REFRESH, 422, json={"refresh_token": 1}, fields=("refresh_token",)
    ),
    # Sizes.
    "username-too-short": BadInput(
        REGISTER, 422, json=_register_body(username="ab"), fields=("username",)
    ),
    "username-too-long": BadInput(
        REGISTER, 422, json=_register_body(username="a" * 21), fields=("username",)
    ),
    "password-too-short": BadInput(
        REGISTER, 422, json=_register_body(password="1234567"), fields=("password",)
    ),
    "password-too-long": BadInput(
        REGISTER, 422, json=_register_body(password="p" * 129), fields=("password",)
    ),
    "email-too-long": BadInput(
        REGISTER, 422, json=_register_body(email="e" * 250 + "@x.io"), fields=("email",)
    ),
    "login-too-long": BadInput(
        LOGIN, 422, json={"username": "u" * 300, "password": "x"}, fields=("username",)
    ),
    "refresh-token-too-long": BadInput(
        REFRESH, 422, json={"refresh_token": "r" * 5000}, fields=("refresh_token",)
    ),
    "empty-refresh-token": BadInput(
        REFRESH, 422, json={"refresh_token": ""}, fields=("refresh_token",)
    ),
    # Odd unicode in names: only ASCII letters, digits and _ survive NFKC.
    "zero-width-space": BadInput(
        REGISTER, 422, json=_register_body(username="ab\u200bcd"), fields=("username",)
    ),
    "zero-width-joiner": BadInput(
        REGISTER, 422, json=_register_body(username="abc\u200d"), fields=("username",)
    ),
    "rtl-override": BadInput(
        REGISTER, 422, json=_register_body(username="\u202eabcdef"), fields=("username",)
    ),
    "cyrillic-lookalike": BadInput(
        REGISTER, 422, json=_register_body(username="\u0430dmin_x"), fields=("username",)
    ),
    "combining-accent": BadInput(
        REGISTER, 422, json=_register_body(username="e\u0301abc"), fields=("username",)
    ),
    "emoji": BadInput(REGISTER, 422, json=_register_body(username="😀😀😀"), fields=("username",)),
    "nul-in-username": BadInput(
        REGISTER, 422, json=_register_body(username="abc\u0000def"), fields=("username",)
    ),
    "nul-in-password": BadInput(
        REGISTER, 422, json=_register_body(password="correct\u0000horse"), fields=("password",)
    ),
    "nul-in-login-name": BadInput(
        LOGIN, 422, json={"username": "ab\u0000cd", "password": "whatever1"}, fields=("username",)
    ),
    "lone-surrogate-in-login-name": BadInput(
        LOGIN,
        422,
        content=b'{"username": "ab\\ud800cd", "password": "whatever1"}',
        headers=JSON_HEADERS,
        fields=("username",),
    ),
    "rtl-in-email": BadInput(
        REGISTER, 422, json=_register_body(email="ab\u202ec@example.com"), fields=("email",)
    ),
    "whitespace-password": BadInput(
        REGISTER, 422, json=_register_body(password=" " * 12), fields=("password",)
    ),
    # SQL-looking strings are just strings.
    "sql-username": BadInput(
        REGISTER, 422, json=_register_body(username="x'; DROP TABLE users;--"), fields=("username",)
    ),
    "sql-email": BadInput(
        REGISTER, 422, json=_register_body(email="a@b.co' OR '1'='1"), fields=("email",)
    ),
    "sql-login": BadInput(LOGIN, 401, json={"username": "' OR 1=1 --", "password": "' OR ''='"}),
    "sql-email-login": BadInput(
        LOGIN, 401, json={"username": "admin@example.com' --", "password": "x"}
    ),
    "sql-refresh-token": BadInput(REFRESH, 401, json={"refresh_token": "' OR 1=1 --"}),
    # Unknown fields are refused, not ignored.
    "extra-field": BadInput(
        REGISTER, 422, json=_register_body(is_admin=True), fields=("is_admin",)
    ),
    "extra-login-field": BadInput(
        LOGIN,
        422,
        json={"username": "abc", "password": "x", "remember": True},
        fields=("remember",),
    ),
    # Only JSON is accepted.
    "text-plain": BadInput(
        LOGIN,
        415,
        content=b'{"username":"a","password":"b"}',
        headers={"Content-Type": "text/plain"},
    ),
    "form-urlencoded": BadInput(
        LOGIN,
        415,
        content=b"username=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "no-content-type": BadInput(LOGIN, 415, content=b'{"username":"a","password":"b"}'),
    "xml": BadInput(REGISTER, 415, content=b"<user/>", headers={"Content-Type": "application/xml"}),
    # Size limit: 1 MiB by default.
    "oversize-body": BadInput(
        REGISTER,
        413,
        content=b'{"username": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        headers=JSON_HEADERS,
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_is_a_4xx_problem(http: httpx.AsyncClient, case: str) -> None:
    bad = BAD_INPUTS[case]
    if bad.json is not None:
        response = await http.post(bad.path, json=bad.json, headers=bad.headers)
    else:
        response = await http.post(bad.path, content=bad.content or b"", headers=bad.headers)
    body = assert_problem(response, bad.status)
    if bad.fields:
        assert sorted(e["field"] for e in body["errors"]) == sorted(bad.fields), body
        assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])
    # Whatever was sent is never echoed back (it may be a password).
    if bad.json is not None and isinstance(bad.json, dict):
        for value in bad.json.values():
            if isinstance(value, str) and len(value) >= 8:
                assert value not in response.text


async def test_streamed_oversize_body_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"username": "'
        for _ in range(40):
            yield b"a" * 65_536
        yield b'"}'

    response = await http.post(REGISTER, content=chunks(), headers=JSON_HEADERS)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_json_with_charset_and_odd_but_valid_input_is_accepted(
    http: httpx.AsyncClient,
) -> None:
    name = _name("fw")
    # Fullwidth letters register as their ASCII form; long multibyte and
    # control-character passwords are fine (bcrypt's 72-byte limit is auth's job).
    for password in ("é" * 128, "p\u0007ss\u202eword😀"):
        candidate = f"{name[:16]}{uuid.uuid4().hex[:4]}"
        response = await http.post(
            REGISTER,
            content=json.dumps(
                {
                    "username": _fullwidth(candidate),
                    "email": f"{candidate}@example.com",
                    "password": password,
                }
            ).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["username"] == candidate
        token = await http.post(LOGIN, json={"username": candidate, "password": password})
        assert token.status_code == 200, token.text
        # Logging in with the fullwidth spelling finds the same account.
        again = await http.post(
            LOGIN, json={"username": _fullwidth(candidate), "password": password}
        )
        assert again.status_code == 200, again.text


async def test_logout_body_must_be_json(http: httpx.AsyncClient, real_token: RealToken) -> None:
    response = await http.post(
        "/api/v1/auth/logout",
        content=b"refresh_token=x",
        headers={**bearer(real_token.token), "Content-Type": "text/plain"},
    )
    assert_problem(response, 415)
    extra = await http.post(
        "/api/v1/auth/logout", json={"everything": True}, headers=bearer(real_token.token)
    )
    assert [e["field"] for e in assert_problem(extra, 422)["errors"]] == ["everything"]


async def test_wrong_method_and_unknown_path(http: httpx.AsyncClient) -> None:
    wrong = await http.get(LOGIN)
    assert_problem(wrong, 405)
    assert "POST" in wrong.headers["allow"]
    assert_problem(await http.get("/api/v1/nothing-here"), 404)


# Request ids ----------------------------------------------------------------------------------


async def test_request_id_is_echoed_when_sane_and_generated_otherwise(
    http: httpx.AsyncClient,
) -> None:
    sent = "client-req_42.x"
    assert (await http.get("/healthz", headers={"X-Request-ID": sent})).headers[
        "x-request-id"
    ] == sent
    generated = (await http.get("/healthz")).headers["x-request-id"]
    assert _SANE_ID.fullmatch(generated)
    assert generated != (await http.get("/healthz")).headers["x-request-id"]
    for insane in ("a" * 129, "has space", "semi;colon", "ünïcode", "new\\nline"):
        answer = await http.get("/healthz", headers={b"X-Request-ID": insane.encode("utf-8")})
        echoed = answer.headers["x-request-id"]
        assert echoed != insane
        assert _SANE_ID.fullmatch(echoed)
    # Errors carry it too.
    problem = await http.post(LOGIN, json={}, headers={"X-Request-ID": sent})
    assert problem.headers["x-request-id"] == sent


# Operations -----------------------------------------------------------------------------------


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    health = await http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    expected = {"redis": "ok", **{upstream.name: "ok" for upstream in UPSTREAMS}}
    assert ready.json() == {"status": "ok", "checks": expected}


async def test_jwks_publishes_public_keys_with_caching(
    http: httpx.AsyncClient, real_token: RealToken
) -> None:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "max-age=300" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert keys
    assert real_token.header["kid"] in {key["kid"] for key in keys}
    for key in keys:
        assert key["kty"] == "OKP"
        assert "d" not in key  # never the private part


async def test_openapi_documents_every_endpoint_and_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Agora API"
    paths = document["paths"]
    expected = {
        ("post", "/api/v1/auth/register"): "201",
        ("post", "/api/v1/auth/login"): "200",
        ("post", "/api/v1/auth/refresh"): "200",
        ("post", "/api/v1/auth/logout"): "204",
        ("get", "/api/v1/users/me"): "200",
        ("get", "/api/v1/users/{username}"): "200",
        ("get", "/.well-known/jwks.json"): "200",
        ("get", "/healthz"): "200",
        ("get", "/readyz"): "200",
    }
    for (method, path), success in expected.items():
        operation = paths[path][method]
        assert success in operation["responses"], (method, path)
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                assert set(answer["content"]) == {PROBLEM_JSON}, (method, path, status)
    schemas = document["components"]["schemas"]
    assert {"Problem", "FieldProblem", "User", "TokenPair", "RegisterRequest"} <= set(schemas)
    assert "HTTPValidationError" not in schemas
    assert schemas["RegisterRequest"]["additionalProperties"] is False
    assert "email" not in schemas["User"]["required"]
    assert schemas["User"]["properties"]["email"] == {
        "type": "string",
        "title": "Email",
        "description": "Only in answers about the caller themself.",
    }
    login_responses = paths["/api/v1/auth/login"]["post"]["responses"]
    assert {"400", "401", "413", "415", "422", "500", "503"} <= set(login_responses)
    assert paths["/api/v1/users/me"]["get"]["security"]
    assert (await http.get("/docs")).status_code == 200


async def test_metrics_use_route_templates(http: httpx.AsyncClient) -> None:
    account = await register(http)
    await http.get(f"/api/v1/users/{account.username}")
    text = (await http.get("/metrics")).text
    assert (
        'agora_http_requests_total{method="GET",route="/api/v1/users/{username}",status="200"}'
        in (text)
    )
    assert account.username not in text
    assert "agora_http_request_duration_seconds_bucket" in text
    assert 'agora_grpc_client_handled_total{grpc_code="OK",grpc_method="GetUser"' in text


# Outages --------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_auth_down_answers_503_fast_then_recovers(
    http: httpx.AsyncClient, stack: Stack, real_token: RealToken
) -> None:
    await asyncio.to_thread(stack.stop_service, "auth")
    try:
        attempts = [
            ("POST", REGISTER, _register_body()),
            ("POST", LOGIN, {"username": _name(), "password": PASSWORD}),
            ("POST", REFRESH, {"refresh_token": "x" * 43}),
        ]
        for method, path, body in attempts:
            started = time.monotonic()
            response = await http.request(method, path, json=body)
            elapsed = time.monotonic() - started
            assert_problem(response, 503)
            assert response.headers["retry-after"] == "1"
            assert elapsed < 2.0, f"{path} took {elapsed:.2f}s"
        # Tokens still verify locally; the profile itself needs auth: 503, not 401.
        me = await http.get("/api/v1/users/me", headers=bearer(real_token.token))
        assert_problem(me, 503)
        ready = await http.get("/readyz")
        body = assert_problem(ready, 503)
        assert body["checks"]["redis"] == "ok"
        assert body["checks"]["auth"] != "ok"
        assert (await http.get("/healthz")).status_code == 200
        # The JWKS is served from the gateway's cache meanwhile.
        assert (await http.get("/.well-known/jwks.json")).status_code == 200
    finally:
        await asyncio.to_thread(stack.start_service, "auth")

    # The channel reconnects on its own within its backoff (at most 2 s).
    deadline = time.monotonic() + 15
    while True:
        response = await http.post(REGISTER, json=_register_body())
        if response.status_code == 201 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    assert response.status_code == 201, response.text
    assert (await http.get("/readyz")).status_code == 200


async def test_redis_down_fails_open_and_is_counted(
    http: httpx.AsyncClient, stack: Stack, real_token: RealToken
) -> None:
    """A gateway whose Redis is unreachable still serves signed-in users (and says so)."""
    settings = GatewaySettings(
        environment="test",
        redis_url="redis://127.0.0.1:1/0",
        redis_key_prefix=stack.redis_key_prefix,
        service_addresses={"auth": stack.address("auth")},
        redis_timeout_seconds=0.2,
        readiness_timeout_seconds=0.5,
    )
    app = create_app(settings)
    sample = "agora_gateway_revocation_fail_open_total"
    before = REGISTRY.get_sample_value(sample) or 0.0
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        ) as local,
    ):
        started = time.monotonic()
        me = await local.get("/api/v1/users/me", headers=bearer(real_token.token))
        assert me.status_code == 200, me.text
        assert time.monotonic() - started < 2.0
        assert "email" in me.json()
        ready = await local.get("/readyz")
        checks = assert_problem(ready, 503)["checks"]
        assert checks["redis"] != "ok"
        assert checks["auth"] == "ok"
        # A bad token is still refused: failing open only skips the denylist.
        forged = _other_key_same_kid(real_token, stack, {})
        assert_unauthorized(await local.get("/api/v1/users/me", headers=bearer(forged)))
    after = REGISTRY.get_sample_value(sample) or 0.0
    assert after >= before + 1
