"""The cache's Redis side: a few Lua scripts, each one round trip.

Key layout under `<AGORA_REDIS_KEY_PREFIX>cache:`:

| key | type | holds |
|---|---|---|
| `e:<entry>` | hash | `b` the anonymous body, `o` offsets, `i` ids of per-user members, `g` tags |
| `l:<entry>` | string | the rebuild lock: a token, for a few seconds |
| `t:<tag>` | set | names of the entries carrying the tag |
| `x:<tag>` | string | when the tag was last invalidated (Redis time, ms), for a minute |
| `v:<user>:<part>` | hash | the user's values by object id (`members` complete, marked `_all`) |
| `ve:<user>` | string | the user's epoch, bumped by each of their writes |
| `invalidations` | pub/sub channel | the tags of each invalidation, space-separated |

*Lookup* answers a hit with the body, its tags and how long it has to live,
and for a signed-in caller the caller's values for the entry's ids, in the
same round trip. On a miss it takes the rebuild lock if it is free (stampede
protection: one rebuild per entry) and answers the Redis time, which the
rebuild later proves its freshness with.

*Fill* stores a rebuilt entry only if none of its tags was invalidated since
that time: a write that lands while a reader is rebuilding from data read
before the write would otherwise be overwritten by the stale copy. The same
guard, with the user's epoch, protects per-user values.

*Invalidate* deletes every entry of the given tags, records the time, and can
bump a user's epoch and drop their stale values in the same step. It also
publishes the tags on `<prefix>cache:invalidations`, in the same step, so
every gateway's in-process copies (gateway.cache.memory) hear of it no
earlier than the entries are gone from Redis, and whenever they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from gateway.cache.document import Document

PersonalMode = Literal["votes", "members"]
ALL_MARK = "_all"

_LOOKUP = """
local found = redis.call('HMGET', KEYS[1], 'b', 'o', 'i', 'g')
local epoch = false
if ARGV[3] ~= '' then epoch = redis.call('GET', KEYS[4]) or '0' end
if found[1] then
  local personal = false
  if ARGV[3] ~= '' and found[3] and found[3] ~= '' then
    local fields = {}
    if ARGV[3] == 'members' then fields[1] = '_all' end
    for id in string.gmatch(found[3], '%S+') do fields[#fields + 1] = id end
    personal = redis.call('HMGET', KEYS[3], unpack(fields))
  end
  return {1, found[1], found[2] or '', found[3] or '', personal, epoch, found[4],
          redis.call('PTTL', KEYS[1])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local locked = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
if locked then locked = 1 else locked = 0 end
return {0, now, locked, epoch}
"""

_FILL = """
local n = tonumber(ARGV[1])
local started = tonumber(ARGV[2])
local stored = 0
local fresh = true
for i = 1, n do
  local at = redis.call('GET', KEYS[2 + n + i])
  if at and tonumber(at) >= started then fresh = false break end
end
if fresh then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'b', ARGV[5], 'o', ARGV[6], 'i', ARGV[7], 'g', ARGV[9])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  for i = 1, n do
    redis.call('SADD', KEYS[2 + i], KEYS[1])
    redis.call('EXPIRE', KEYS[2 + i], ARGV[4])
  end
  stored = 1
end
if redis.call('GET', KEYS[2]) == ARGV[8] then redis.call('DEL', KEYS[2]) end
return stored
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_FILL_PERSONAL = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

_INVALIDATE = """
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = 0
for i = 1, n do
  redis.call('SET', KEYS[n + i], now, 'PX', ARGV[2])
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 500 do
    removed = removed + redis.call('DEL', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('DEL', KEYS[i])
end
if n > 0 then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
if ARGV[3] == '1' then
  redis.call('INCR', KEYS[2 * n + 1])
  redis.call('EXPIRE', KEYS[2 * n + 1], ARGV[4])
  if #ARGV > 6 then
    redis.call('HDEL', KEYS[2 * n + 2], unpack(ARGV, 7))
  else
    redis.call('DEL', KEYS[2 * n + 2])
  end
end
return removed
"""


@dataclass(frozen=True, slots=True)
class Hit:
    document: Document
    # The caller's stored values, aligned with the lookup's fields (None: unknown),
    # and the caller's epoch; both None for anonymous lookups.
    personal: list[bytes | None] | None
    epoch: str | None
    # The entry's tags (None: stored before entries kept them) and remaining life.
    tags: tuple[str, ...] | None = None
    ttl_ms: int = 0


@dataclass(frozen=True, slots=True)
class Miss:
    started_ms: int
    locked: bool
    epoch: str | None


@dataclass(frozen=True, slots=True)
class PersonalChange:
    """A user's write that makes some of their stored values stale.

    `fields` are the object ids to forget; empty forgets the whole part.
    """

    user_id: str
    mode: PersonalMode
    fields: tuple[str, ...] = ()


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CacheStore:
    """The scripts behind typed methods. Raises redis errors; callers guard them."""

    def __init__(
        self, redis: Redis, key_prefix: str, *, tag_ttl_seconds: int, tombstone_ms: int
    ) -> None:
        self._prefix = f"{key_prefix}cache:"
        self.channel = f"{self._prefix}invalidations"
        self._tag_ttl = tag_ttl_seconds
        self._tombstone_ms = tombstone_ms
        self._lookup = redis.register_script(_LOOKUP)
        self._fill = redis.register_script(_FILL)
        self._release = redis.register_script(_RELEASE)
        self._fill_personal = redis.register_script(_FILL_PERSONAL)
        self._invalidate = redis.register_script(_INVALIDATE)

    def _entry(self, name: str) -> str:
        return f"{self._prefix}e:{name}"

    def _personal(self, user_id: str, mode: PersonalMode) -> str:
        return f"{self._prefix}v:{user_id}:{mode}"

    def _epoch(self, user_id: str) -> str:
        return f"{self._prefix}ve:{user_id}"

    async def lookup(
        self,
        name: str,
        *,
        lock_token: str,
        lock_ms: int,
        viewer: str | None,
        mode: PersonalMode | None,
    ) -> Hit | Miss:
        personal = viewer is not None and mode is not None
        keys = [self._entry(name), f"{self._prefix}l:{name}"]
        if viewer is not None and mode is not None:
            keys += [self._personal(viewer, mode), self._epoch(viewer)]
        args: list[str | int] = [lock_token, lock_ms, mode if personal and mode else ""]
        answer = await self._lookup(keys=keys, args=args)
        if int(answer[0]) == 1:
            _, body, offsets, ids, values, epoch, tags, ttl_ms = answer
            return Hit(
                Document.from_stored(body, offsets, ids),
                None if values is None else list(values),
                None if epoch is None else _text(epoch),
                None if tags is None else tuple(_text(tags).split()),
                int(ttl_ms),
            )
        _, now, locked, epoch = answer
        return Miss(int(now), bool(int(locked)), None if epoch is None else _text(epoch))

    async def fill(
        self,
        name: str,
        document: Document,
        *,
        tags: Sequence[str],
        ttl_seconds: int,
        started_ms: int,
        lock_token: str,
    ) -> bool:
        """Store the entry unless a tag was invalidated since started_ms; True when stored."""
        keys = [
            self._entry(name),
            f"{self._prefix}l:{name}",
            *(f"{self._prefix}t:{tag}" for tag in tags),
            *(f"{self._prefix}x:{tag}" for tag in tags),
        ]
        args: list[str | int | bytes] = [
            len(tags),
            started_ms,
            ttl_seconds,
            self._tag_ttl,
            document.body,
            document.stored_offsets,
            document.stored_ids,
            lock_token,
            " ".join(tags),
        ]
        return bool(await self._fill(keys=keys, args=args))

    async def release(self, name: str, *, lock_token: str) -> None:
        """Give up a rebuild lock early (the rebuild failed or is not cacheable)."""
        await self._release(keys=[f"{self._prefix}l:{name}"], args=[lock_token])

    async def fill_personal(
        self,
        user_id: str,
        mode: PersonalMode,
        values: dict[str, bytes],
        *,
        epoch: str,
        ttl_seconds: int,
    ) -> bool:
        """Remember a user's values unless one of their writes happened since `epoch`."""
        if not values:
            return False
        args: list[str | bytes | int] = [epoch, ttl_seconds]
        for field, value in values.items():
            args += [field, value]
        keys = [self._personal(user_id, mode), self._epoch(user_id)]
        return bool(await self._fill_personal(keys=keys, args=args))

    async def invalidate(
        self,
        tags: Sequence[str],
        *,
        personal: PersonalChange | None = None,
        personal_ttl_seconds: int = 0,
    ) -> int:
        """Delete the tags' entries (and a user's stale values); the number of entries deleted."""
        keys = [
            *(f"{self._prefix}t:{tag}" for tag in tags),
            *(f"{self._prefix}x:{tag}" for tag in tags),
        ]
        args: list[str | int] = [len(tags), self._tombstone_ms]
        if personal is None:
            args += ["0", 0]
        else:
            keys += [self._epoch(personal.user_id), self._personal(personal.user_id, personal.mode)]
            args += ["1", personal_ttl_seconds + 60]
        args += [self.channel, " ".join(tags)]
        if personal is not None:
            args += personal.fields
        return int(await self._invalidate(keys=keys, args=args))
