"""Usernames and community names the gateway has already been told, kept in process memory.

Every page names its authors and communities, which services answer only by
id, so every page asked auth (BatchGetUsers) and often communities
(BatchGetCommunities) for names: a third of the CPU of an uncached listing and
of a 500-comment page. Those names are immutable, so a process may keep them:

- a user's id -> username never changes: auth has no rename and no account
  deletion (protos/agora/auth/v1/auth.proto, ../shared/API.md);
- a community's id -> name never changes: UpdateCommunity changes only title,
  description and rules, and no API deletes a community;
- a deleted or removed post or comment hides its author by sending no author
  id at all, so hiding never depends on forgetting a name.

If a rename or an account or community deletion is ever added, this cache
must learn of it (an event fanned out to every gateway) or go.

Each map is a bounded LRU (USERNAMES_MAX, COMMUNITY_NAMES_MAX entries; about
250 bytes an entry, so at most about 15 MB per process). Only answers are
kept: an id a service did not know is asked again next time, so an id that
comes into existence later is never hidden. Two pages that miss the same ids
at the same moment both ask; that costs a call, never a wrong name. The maps
live on `gateway.clients.Clients`, one per gateway process (and a fresh one
for every Clients a test builds).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

# Enough for every author on a busy site's front pages and hot threads.
USERNAMES_MAX = 50_000
COMMUNITY_NAMES_MAX = 10_000

Fetch = Callable[[list[str]], Awaitable[dict[str, str]]]


class BoundedNames:
    """id -> name, least recently used first out beyond `capacity` entries."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._names: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._names)

    def split(self, ids: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """(the names known, the distinct non-empty ids not known, in first-seen order)."""
        known: dict[str, str] = {}
        missing: dict[str, None] = {}
        names = self._names
        for key in ids:
            if not key or key in known or key in missing:
                continue
            name = names.get(key)
            if name is None:
                missing[key] = None
            else:
                names.move_to_end(key)
                known[key] = name
        return known, list(missing)

    def learn(self, names: Mapping[str, str]) -> None:
        """Remember these names as the most recent, forgetting the least recent beyond capacity."""
        stored = self._names
        for key, name in names.items():
            if key and name:
                stored[key] = name
                stored.move_to_end(key)
        while len(stored) > self.capacity:
            stored.popitem(last=False)

    async def lookup(self, ids: Iterable[str], fetch: Fetch) -> dict[str, str]:
        """The names of ids: known ones from memory, the rest in one fetch() (if any)."""
        known, missing = self.split(ids)
        if missing:
            fetched = await fetch(missing)
            self.learn(fetched)
            known.update(fetched)
        return known


@dataclass(frozen=True, slots=True)
class KnownNames:
    """The gateway's two immutable name maps."""

    users: BoundedNames = field(default_factory=lambda: BoundedNames(USERNAMES_MAX))
    communities: BoundedNames = field(default_factory=lambda: BoundedNames(COMMUNITY_NAMES_MAX))
