"""Access-token verification against the auth service's JWKS, done locally.

Only EdDSA and RS256 with a `kid` the JWKS knows are accepted: `alg: none`,
HMAC algorithms (the classic public-key-as-HMAC-secret confusion), unknown
keys, bad signatures, expired or not-yet-valid tokens, a wrong issuer or
audience and missing claims all fail the same way. An unknown `kid` refreshes
the key set at most once per `refresh_interval`, so key rotation is picked up
without letting forged kids hammer the auth service, and the whole set is
reloaded once it is older than `max_key_age`, so retired keys stop verifying.
When no key set can be loaded at all, verification is Unavailable (503), not
a 401 that would make clients throw their sessions away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from jwt import PyJWKSet

from common.errors import Unauthenticated, Unavailable

ALLOWED_ALGORITHMS = ("EdDSA", "RS256")
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "sub", "jti", "sid", "iss", "aud")
_FAILED_FETCH_PAUSE = 1.0


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    token_id: str
    expires_at: datetime


JwksFetcher = Callable[[], Awaitable[str]]


class AccessTokenVerifier:
    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 30,
        refresh_interval: float = 30.0,
        max_key_age: float = 300.0,
    ) -> None:
        self._fetch_jwks = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._refresh_interval = refresh_interval
        self._keys: dict[str, jwt.PyJWK] = {}
        self._jwks_json = ""
        self._max_key_age = max_key_age
        self._fetched_at = self._loaded_at = float("-inf")
        self._last_error: Exception | None = None
        self._lock = asyncio.Lock()

    @property
    def jwks_json(self) -> str:
        return self._jwks_json

    async def refresh(self, *, force: bool = False) -> None:
        """Fetch the key set, unless it was fetched less than refresh_interval ago.

        Raises Unavailable when no key set can be had: the fetch failed (or
        failed moments ago) and there is nothing loaded to fall back on, or it
        failed just now. Callers holding an older set may keep using it.
        """
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < self._refresh_interval:
                if self._last_error is not None and not self._keys:
                    raise Unavailable("token signing keys are not available yet")
                return
            try:
                document = await self._fetch_jwks()
                key_set = PyJWKSet.from_json(document)
            except Exception as error:
                # Count a failed fetch as a fetch, so an outage of the auth
                # service is not hammered by every token with an unknown kid;
                # retry sooner than a full interval once it may be back.
                self._fetched_at = time.monotonic() - self._refresh_interval + _FAILED_FETCH_PAUSE
                self._last_error = error
                raise Unavailable("token signing keys cannot be loaded right now") from error
            self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
            self._jwks_json = document
            self._fetched_at = self._loaded_at = time.monotonic()
            self._last_error = None

    async def verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated("malformed access token") from error
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALLOWED_ALGORITHMS or not isinstance(kid, str) or not kid:
            raise Unauthenticated("access token uses an unaccepted algorithm or has no key id")
        if time.monotonic() - self._loaded_at > self._max_key_age:
            # Keys removed from the JWKS (rotation done, or a compromise) must
            # stop verifying; while auth is down the older set still serves.
            with contextlib.suppress(Unavailable):
                await self.refresh()
        key = self._keys.get(kid)
        if key is None:
            await self.refresh()
            key = self._keys.get(kid)
        if key is None or key.algorithm_name != algorithm:
            raise Unauthenticated("access token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid access token: {error}") from error
        subject, session, token_id = claims["sub"], claims["sid"], claims["jti"]
        if not all(isinstance(v, str) and v for v in (subject, session, token_id)):
            raise Unauthenticated("invalid access token: bad subject, session or id")
        return AccessClaims(
            user_id=subject,
            session_id=session,
            token_id=token_id,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
