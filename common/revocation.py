"""The Redis denylist of revoked sessions and access tokens.

Access tokens are verified locally and live 15 minutes, so logout and refresh
token reuse must also be visible to every gateway at once. The auth service
writes `revoked:jti:<id>` and `revoked:sid:<session>` keys that expire when the
last access token they could cover does; the gateway asks about both in one
round trip on every authenticated request.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis


class RevocationList:
    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}revoked:"

    def _jti(self, token_id: str) -> str:
        return f"{self._prefix}jti:{token_id}"

    def _sid(self, session_id: str) -> str:
        return f"{self._prefix}sid:{session_id}"

    async def revoke_token(self, token_id: str, expires_at: datetime) -> None:
        ttl = int((expires_at - datetime.now(UTC)).total_seconds()) + 1
        if ttl > 0:
            await self._redis.set(self._jti(token_id), b"1", ex=ttl)

    async def revoke_session(self, session_id: str, ttl_seconds: int) -> None:
        """Deny every access token of a session for as long as one could still be valid."""
        await self._redis.set(self._sid(session_id), b"1", ex=max(ttl_seconds, 1))

    async def is_revoked(self, token_id: str, session_id: str) -> bool:
        return bool(await self._redis.exists(self._jti(token_id), self._sid(session_id)))
