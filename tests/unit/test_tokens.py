"""AccessTokenVerifier accepts only well-formed tokens from a known key.

The JWKS comes from a function, as in production (there it calls the auth
service); here it serves keys made in the test, so every forgery can be built.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from common.errors import Unauthenticated, Unavailable
from common.tokens import AccessTokenVerifier

ISSUER, AUDIENCE = "agora-auth", "agora"


def _jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 900,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


class Keys:
    def __init__(self) -> None:
        self.signing = Ed25519PrivateKey.generate()
        self.kid = "key-1"
        self.fetches = 0
        self.published = [_jwk(self.signing, self.kid)]

    async def fetch(self) -> str:
        self.fetches += 1
        return json.dumps({"keys": self.published})

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, key: Any = None) -> str:
        return jwt.encode(
            claims, key or self.signing, algorithm="EdDSA", headers={"kid": kid or self.kid}
        )


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def verifier(keys: Keys) -> AccessTokenVerifier:
    return AccessTokenVerifier(keys.fetch, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=0)


async def test_a_valid_token_gives_its_claims(keys: Keys, verifier: AccessTokenVerifier) -> None:
    claims = _claims()
    verified = await verifier.verify(keys.sign(claims))
    assert verified.user_id == claims["sub"]
    assert verified.session_id == claims["sid"]
    assert verified.token_id == claims["jti"]
    assert int(verified.expires_at.timestamp()) == claims["exp"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_alg_none_is_refused(keys: Keys, verifier: AccessTokenVerifier) -> None:
    token = f"{_b64({'alg': 'none', 'kid': keys.kid})}.{_b64(_claims())}."
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_hmac_with_the_public_key_as_secret_is_refused(
    keys: Keys, verifier: AccessTokenVerifier
) -> None:
    public_jwk = json.dumps(keys.published[0]).encode()
    header = _b64({"alg": "HS256", "kid": keys.kid, "typ": "JWT"})
    payload = _b64(_claims())
    import hashlib
    import hmac

    signature = hmac.new(public_jwk, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_another_key_with_the_same_kid_is_refused(
    keys: Keys, verifier: AccessTokenVerifier
) -> None:
    with pytest.raises(Unauthenticated):
        await verifier.verify(keys.sign(_claims(), key=Ed25519PrivateKey.generate()))


async def test_an_expired_token_is_refused(keys: Keys, verifier: AccessTokenVerifier) -> None:
    past = int(time.time()) - 3600
    with pytest.raises(Unauthenticated):
        await verifier.verify(keys.sign(_claims(iat=past, nbf=past, exp=past + 900)))


async def test_a_tampered_payload_is_refused(keys: Keys, verifier: AccessTokenVerifier) -> None:
    header, _, signature = keys.sign(_claims()).split(".")
    forged = f"{header}.{_b64(_claims(sub='someone-else'))}.{signature}"
    with pytest.raises(Unauthenticated):
        await verifier.verify(forged)


@pytest.mark.parametrize(
    "claims",
    [
        _claims(iss="someone-else"),
        _claims(aud="another-app"),
        _claims(sid=None),
        _claims(jti=None),
        _claims(sub=""),
    ],
    ids=["issuer", "audience", "no-session", "no-token-id", "empty-subject"],
)
async def test_wrong_or_missing_claims_are_refused(
    keys: Keys, verifier: AccessTokenVerifier, claims: dict[str, Any]
) -> None:
    with pytest.raises(Unauthenticated):
        await verifier.verify(keys.sign(claims))


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "....."])
async def test_garbage_is_refused(verifier: AccessTokenVerifier, token: str) -> None:
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_an_unknown_kid_refreshes_the_keys_once_then_fails(
    keys: Keys, verifier: AccessTokenVerifier
) -> None:
    await verifier.refresh(force=True)
    before = keys.fetches
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await verifier.verify(keys.sign(_claims(), kid="unknown"))
    # Within the refresh interval the key set is fetched at most once more.
    assert keys.fetches - before <= 1


async def test_a_rotated_key_is_picked_up(keys: Keys) -> None:
    verifier = AccessTokenVerifier(keys.fetch, issuer=ISSUER, audience=AUDIENCE, refresh_interval=0)
    await verifier.refresh(force=True)
    new_key = Ed25519PrivateKey.generate()
    keys.published.append(_jwk(new_key, "key-2"))
    claims = _claims()
    verified = await verifier.verify(keys.sign(claims, kid="key-2", key=new_key))
    assert verified.user_id == claims["sub"]


async def test_no_key_set_at_all_is_unavailable_not_unauthenticated(keys: Keys) -> None:
    async def down() -> str:
        raise ConnectionError("auth is down")

    verifier = AccessTokenVerifier(down, issuer=ISSUER, audience=AUDIENCE)
    token = keys.sign(_claims())
    for _ in range(3):  # the failed fetch and the paced ones after it alike
        with pytest.raises(Unavailable):
            await verifier.verify(token)
    with pytest.raises(Unavailable):
        await verifier.refresh()


async def test_a_malformed_key_set_is_unavailable(keys: Keys) -> None:
    async def nonsense() -> str:
        return '{"keys": "not a list"}'

    verifier = AccessTokenVerifier(nonsense, issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(Unavailable):
        await verifier.verify(keys.sign(_claims()))


async def test_a_key_removed_from_the_set_stops_verifying(keys: Keys) -> None:
    verifier = AccessTokenVerifier(
        keys.fetch, issuer=ISSUER, audience=AUDIENCE, refresh_interval=0, max_key_age=0
    )
    token = keys.sign(_claims())
    await verifier.verify(token)
    keys.published = [_jwk(Ed25519PrivateKey.generate(), "key-2")]
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_a_stale_set_keeps_verifying_while_auth_is_down(keys: Keys) -> None:
    state = {"up": True}

    async def flaky() -> str:
        if not state["up"]:
            raise ConnectionError("auth is down")
        return await keys.fetch()

    verifier = AccessTokenVerifier(
        flaky, issuer=ISSUER, audience=AUDIENCE, refresh_interval=0, max_key_age=0
    )
    claims = _claims()
    await verifier.verify(keys.sign(claims))
    state["up"] = False
    assert (await verifier.verify(keys.sign(claims))).user_id == claims["sub"]
