"""Signing keys, their thumbprint ids, the JWKS, and the settings that choose them."""

from __future__ import annotations

import json
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr, ValidationError

from common.tokens import AccessTokenVerifier
from services.auth import domain
from services.auth.keys import (
    KeyConfigurationError,
    KeySet,
    create_key_file,
    jwk_thumbprint,
    load_key_set,
    parse_private_key,
    private_key_pem,
)
from services.auth.settings import AuthSettings

# Production also demands the platform's shared secrets; give it one so only ours is missing.
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "cursor_secret": SecretStr("a-real-production-cursor-secret"),
}


@pytest.fixture(autouse=True)
def _no_agora_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings under test come from arguments only, never from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("AGORA_"):
            monkeypatch.delenv(name)


def test_thumbprint_matches_the_rfc_8037_example() -> None:
    # RFC 8037, appendix A.3.
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_kid_is_stable_for_a_key_and_differs_between_keys() -> None:
    key = Ed25519PrivateKey.generate()
    reloaded = parse_private_key(private_key_pem(key))
    assert KeySet(key).kid == KeySet(reloaded).kid
    assert KeySet(key).kid != KeySet(Ed25519PrivateKey.generate()).kid


def test_jwks_publishes_the_signing_key_first_then_verification_keys_once() -> None:
    signing, old = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = KeySet(signing, [old.public_key(), old.public_key(), signing.public_key()])
    document = json.loads(keys.jwks_json)
    assert [k["kid"] for k in document["keys"]] == [keys.kid, KeySet(old).kid]
    for jwk in document["keys"]:
        assert jwk["kty"] == "OKP"
        assert jwk["crv"] == "Ed25519"
        assert jwk["alg"] == "EdDSA"
        assert jwk["use"] == "sig"
        assert "d" not in jwk  # never the private part


async def test_signed_tokens_verify_with_the_shared_verifier() -> None:
    keys = KeySet(Ed25519PrivateKey.generate())
    user, session = uuid.uuid4(), uuid.uuid4()
    token = keys.sign(
        domain.access_token_claims(
            user_id=user,
            session_id=session,
            token_id=uuid.uuid4(),
            issuer="agora-auth",
            audience="agora",
            issued_at=datetime.now(UTC),
            ttl_seconds=900,
        )
    )

    async def fetch() -> str:
        return keys.jwks_json

    claims = await AccessTokenVerifier(fetch, issuer="agora-auth", audience="agora").verify(token)
    assert claims.user_id == str(user)
    assert claims.session_id == str(session)


async def test_a_token_signed_by_a_retired_key_verifies_while_it_is_published() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    claims = domain.access_token_claims(
        user_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        token_id=uuid.uuid4(),
        issuer="agora-auth",
        audience="agora",
        issued_at=datetime.now(UTC),
        ttl_seconds=900,
    )
    token = KeySet(old).sign(claims)
    rotated = KeySet(new, [old.public_key()])

    async def fetch() -> str:
        return rotated.jwks_json

    verifier = AccessTokenVerifier(fetch, issuer="agora-auth", audience="agora")
    assert (await verifier.verify(token)).user_id == claims["sub"]


def test_key_file_is_created_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "key.pem"
    create_key_file(path)
    first = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    create_key_file(path)
    assert path.read_bytes() == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["key.pem"]  # no temp files left


def test_processes_racing_to_create_the_dev_key_agree_on_one(tmp_path: Path) -> None:
    settings = AuthSettings(auth_signing_key_file=tmp_path / "key.pem")
    with ThreadPoolExecutor(max_workers=16) as pool:
        kids = set(pool.map(lambda _: load_key_set(settings).kid, range(32)))
    assert len(kids) == 1


def test_production_never_generates_a_key(tmp_path: Path) -> None:
    path = tmp_path / "missing.pem"
    settings = AuthSettings(**PRODUCTION, auth_signing_key_file=path)
    with pytest.raises(KeyConfigurationError):
        load_key_set(settings)
    assert not path.exists()


def test_inline_key_and_verification_files_are_loaded(tmp_path: Path) -> None:
    signing, old = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public_file = tmp_path / "old.pub.pem"
    public_file.write_bytes(
        old.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = AuthSettings(
        auth_signing_key=SecretStr(private_key_pem(signing).decode()),
        auth_verification_key_files=str(public_file),
    )
    keys = load_key_set(settings)
    assert keys.kid == KeySet(signing).kid
    assert len(json.loads(keys.jwks_json)["keys"]) == 2


@pytest.mark.parametrize(
    "pem",
    [
        b"not a key",
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
)
def test_only_ed25519_private_keys_sign(pem: bytes) -> None:
    with pytest.raises(KeyConfigurationError):
        parse_private_key(pem)


class TestSettings:
    def test_defaults_follow_the_topology_and_the_spec(self) -> None:
        settings = AuthSettings()
        assert (settings.grpc_port, settings.metrics_port) == (50051, 9101)
        assert settings.auth_access_token_ttl_seconds == 900
        assert settings.auth_refresh_token_ttl_seconds == 7 * 24 * 3600
        assert settings.auth_bcrypt_rounds == 12

    def test_production_refuses_to_start_without_a_key(self) -> None:
        with pytest.raises(ValidationError, match="AGORA_AUTH_SIGNING_KEY"):
            AuthSettings(**PRODUCTION)
        with pytest.raises(ValidationError, match="AGORA_AUTH_SIGNING_KEY"):
            AuthSettings(**PRODUCTION, auth_signing_key=SecretStr("  "))

    def test_production_refuses_a_cheap_bcrypt_cost(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="BCRYPT_ROUNDS"):
            AuthSettings(
                **PRODUCTION,
                auth_signing_key_file=tmp_path / "k.pem",
                auth_bcrypt_rounds=11,
            )
        assert AuthSettings(environment="test", auth_bcrypt_rounds=4).auth_bcrypt_rounds == 4

    def test_key_and_key_file_together_are_ambiguous(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="not both"):
            AuthSettings(auth_signing_key=SecretStr("pem"), auth_signing_key_file=tmp_path)

    def test_verification_files_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AGORA_AUTH_VERIFICATION_KEY_FILES", "/keys/a.pem, /keys/b.pem")
        assert AuthSettings().auth_verification_key_files == [
            Path("/keys/a.pem"),
            Path("/keys/b.pem"),
        ]
        monkeypatch.setenv("AGORA_AUTH_VERIFICATION_KEY_FILES", '["/keys/c.pem"]')
        assert AuthSettings().auth_verification_key_files == [Path("/keys/c.pem")]
        monkeypatch.setenv("AGORA_AUTH_VERIFICATION_KEY_FILES", "")
        assert AuthSettings().auth_verification_key_files == []

    def test_the_signing_key_is_never_shown(self) -> None:
        settings = AuthSettings(auth_signing_key=SecretStr("-----BEGIN PRIVATE KEY-----"))
        assert "BEGIN PRIVATE" not in repr(settings)
