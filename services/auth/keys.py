"""The Ed25519 keys that sign access tokens, and the JWKS that publishes their public halves.

EdDSA over Ed25519: small keys, fast deterministic signatures, and no
parameter choices to get wrong (unlike RSA padding or ECDSA nonces). Each key's
`kid` is its RFC 7638 JWK thumbprint, so the id follows from the key itself:
every replica holding the same PEM agrees on it without coordination, and a new
key can never reuse an old id.

Rotation: start publishing the next key's public half through
AGORA_AUTH_VERIFICATION_KEY_FILES on every replica, wait for verifiers to
refresh their JWKS, then make it the signing key and keep the old one as a
verification key until the last access token it signed has expired.

In development a missing key file is generated: written to a private
temporary file (mode 0600) and hard-linked into place, which fails if the
name exists, so two processes starting at once both end up with the first
one's complete key instead of clobbering or half-reading each other's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from services.auth.settings import DEV_SIGNING_KEY_FILE, AuthSettings

log = logging.getLogger("agora.auth.keys")

ALGORITHM = "EdDSA"


class KeyConfigurationError(RuntimeError):
    """The configured keys are missing or unusable; the process must not start."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The RFC 8037 OKP members of a public key (without kid/alg/use)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 thumbprint of an OKP key: SHA-256 over its required members, sorted, compact."""
    if jwk.get("kty") != "OKP":
        raise ValueError("only OKP (Ed25519) keys are used here")
    required = {name: jwk[name] for name in ("crv", "kty", "x")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def parse_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise KeyConfigurationError(
            f"signing key is not a readable PEM private key: {error}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError("signing key must be an Ed25519 private key (EdDSA)")
    return key


def parse_public_key(pem: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from a public or private PEM (rotation may hand over either)."""
    if b"PRIVATE KEY" in pem:
        return parse_private_key(pem).public_key()
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise KeyConfigurationError(
            f"verification key is not a readable PEM key: {error}"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyConfigurationError("verification keys must be Ed25519 keys (EdDSA)")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_key_file(path: Path) -> None:
    """Write a fresh private key to path unless one is there already; never overwrite."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = private_key_pem(Ed25519PrivateKey.generate())
    # mkstemp creates the file with mode 0600 in the target directory (same filesystem).
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            log.info("signing key file appeared concurrently; using it", extra={"path": str(path)})
        else:
            log.warning("generated a development signing key", extra={"path": str(path)})
    finally:
        os.unlink(temporary)


def _read_key_file(path: Path, *, create: bool) -> bytes:
    if not path.exists():
        if not create:
            raise KeyConfigurationError(f"signing key file {path} does not exist")
        create_key_file(path)
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning(
            "signing key file is readable by group or others; use mode 0600 (or 0400)",
            extra={"path": str(path), "mode": oct(mode & 0o777)},
        )
    return path.read_bytes()


class KeySet:
    """The one signing key and every public key verifiers should accept."""

    def __init__(
        self, signing_key: Ed25519PrivateKey, verification_keys: Iterable[Ed25519PublicKey] = ()
    ) -> None:
        self._signing_key = signing_key
        published: dict[str, dict[str, str]] = {}
        for public_key in (signing_key.public_key(), *verification_keys):
            jwk = public_jwk(public_key)
            kid = jwk_thumbprint(jwk)
            published.setdefault(kid, {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"})
        self.kid = next(iter(published))
        self.jwks_json = json.dumps({"keys": list(published.values())}, separators=(",", ":"))

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS of claims, signed with the current key and naming it in `kid`."""
        return jwt.encode(
            dict(claims), self._signing_key, algorithm=ALGORITHM, headers={"kid": self.kid}
        )


def load_key_set(settings: AuthSettings) -> KeySet:
    """The key set the settings describe; generates the dev key file where that is allowed."""
    if settings.auth_signing_key is not None:
        pem = settings.auth_signing_key.get_secret_value().encode("utf-8")
    else:
        path = settings.auth_signing_key_file or DEV_SIGNING_KEY_FILE
        # Production never generates: a generated key would differ between replicas.
        pem = _read_key_file(path, create=not settings.is_production)
    signing_key = parse_private_key(pem)
    verification: list[Ed25519PublicKey] = []
    for extra in settings.auth_verification_key_files:
        try:
            verification.append(parse_public_key(extra.read_bytes()))
        except OSError as error:
            raise KeyConfigurationError(
                f"verification key file {extra} cannot be read: {error.strerror}"
            ) from None
    return KeySet(signing_key, verification)
