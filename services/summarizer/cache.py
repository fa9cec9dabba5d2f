"""Redis copies of summaries, so the common read costs one round trip and no SQL.

The database is the record of truth; this cache may lose anything at any
time. Writers follow one rule that keeps it from serving an old summary for
long: the worker overwrites the entry after it stored a new summary, a change
to the thread deletes it (the summary is now "refreshing"), and readers only
fill a missing entry (SET NX), so a slow reader cannot replace what a worker
wrote after that reader's query. Redis errors are logged and counted, and the
caller carries on with the database: summaries stay readable with Redis down.
"""

from __future__ import annotations

import logging
import uuid

from agora.summarizer.v1 import summarizer_pb2
from google.protobuf.message import DecodeError
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("agora.summarizer.cache")

CACHE_LOOKUPS = Counter(
    "agora_summary_cache_total",
    "Summary cache operations by outcome (hit, miss, error, write, drop).",
    ["outcome"],
)


class SummaryCache:
    def __init__(self, redis: Redis, key_prefix: str, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}summarizer:summary:"
        self._ttl = ttl_seconds

    def _key(self, post_id: uuid.UUID) -> str:
        return f"{self._prefix}{post_id}"

    async def get(self, post_id: uuid.UUID) -> summarizer_pb2.GetSummaryResponse | None:
        try:
            raw = await self._redis.get(self._key(post_id))
        except RedisError as error:
            _failed("read", post_id, error)
            return None
        if raw is None:
            CACHE_LOOKUPS.labels("miss").inc()
            return None
        try:
            answer = summarizer_pb2.GetSummaryResponse.FromString(_as_bytes(raw))
        except DecodeError:
            # Readers only fill missing entries: a corrupt one must go, or it stays a day.
            CACHE_LOOKUPS.labels("error").inc()
            await self.drop(post_id)
            return None
        CACHE_LOOKUPS.labels("hit").inc()
        return answer

    async def put(
        self,
        post_id: uuid.UUID,
        answer: summarizer_pb2.GetSummaryResponse,
        *,
        only_if_absent: bool,
    ) -> None:
        try:
            await self._redis.set(
                self._key(post_id), answer.SerializeToString(), ex=self._ttl, nx=only_if_absent
            )
        except RedisError as error:
            _failed("write", post_id, error)
            return
        CACHE_LOOKUPS.labels("write").inc()

    async def drop(self, post_id: uuid.UUID) -> None:
        try:
            await self._redis.delete(self._key(post_id))
        except RedisError as error:
            _failed("drop", post_id, error)
            return
        CACHE_LOOKUPS.labels("drop").inc()


def _as_bytes(raw: bytes | str) -> bytes:
    # The client is opened without decode_responses, so this is always bytes.
    return raw if isinstance(raw, bytes) else raw.encode()


def _failed(operation: str, post_id: uuid.UUID, error: RedisError) -> None:
    CACHE_LOOKUPS.labels("error").inc()
    log.warning(
        "summary cache %s failed; using the database",
        operation,
        extra={"post_id": str(post_id), "error": type(error).__name__},
    )
