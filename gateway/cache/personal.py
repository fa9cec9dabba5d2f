"""Per-user members of cached answers: `my_vote` on posts, `is_member` on communities.

These never enter a shared entry. Each user's values are kept in Redis under
the user's own key, filled from the service that knows them and dropped by
the user's own writes (a vote forgets that vote; joining, leaving, being
banned or appointed forgets all memberships). So a signed-in cache hit needs
no service either, and one user's values can never reach another.

- Votes are kept per object: the answer of GetMyVotes for the ids asked,
  including "no vote" (0), so only ids never asked about are fetched.
- Memberships are kept whole: ListMemberships answers every community the
  user joined, marked complete with `_all`, so any community can be answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agora.votes.v1 import votes_pb2

from gateway.cache.store import ALL_MARK, PersonalMode
from gateway.clients import Clients

TRUE, FALSE = b"true", b"false"
# A user's stored values as Redis answered them, None where nothing is stored.
Stored = Sequence[bytes | None]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A user's value per object id, and what to store for next time (empty: nothing new)."""

    values: dict[str, bytes]
    to_store: dict[str, bytes]


class PersonalPart(Protocol):
    member: str
    mode: PersonalMode

    def from_stored(self, ids: Sequence[str], stored: Stored) -> dict[str, bytes] | None:
        """The values when the stored ones cover `ids`; None when the service must be asked."""

    async def fetch(
        self, clients: Clients, user_id: str, ids: Sequence[str], stored: Stored | None
    ) -> Resolved:
        """Ask the service about what is not stored, and say what to store for next time."""


class PostVotes:
    """`my_vote` (-1, 0 or 1) of the caller on each post."""

    member = "my_vote"
    mode: PersonalMode = "votes"

    @staticmethod
    def _known(ids: Sequence[str], stored: Stored | None) -> dict[str, bytes]:
        if stored is None:
            return {}
        return {i: v for i, v in zip(ids, stored, strict=True) if v is not None}

    def from_stored(self, ids: Sequence[str], stored: Stored) -> dict[str, bytes] | None:
        known = self._known(ids, stored)
        return known if len(known) == len(set(ids)) else None

    async def fetch(
        self, clients: Clients, user_id: str, ids: Sequence[str], stored: Stored | None
    ) -> Resolved:
        from gateway.deps import running  # deps needs the resources, which need this module

        known = self._known(ids, stored)
        missing = [i for i in dict.fromkeys(ids) if i not in known]
        votes = running(clients.votes, "votes")
        found = await votes.my_votes(votes_pb2.TARGET_TYPE_POST, missing)
        fresh = {i: str(found.get(i, 0)).encode() for i in missing}
        return Resolved({**known, **fresh}, fresh)


class Memberships:
    """`is_member` of the caller in each community, from the user's whole membership list."""

    member = "is_member"
    mode: PersonalMode = "members"

    def from_stored(self, ids: Sequence[str], stored: Stored) -> dict[str, bytes] | None:
        complete, *values = stored
        if complete is None:
            return None
        return {i: TRUE if v is not None else FALSE for i, v in zip(ids, values, strict=True)}

    async def fetch(
        self, clients: Clients, user_id: str, ids: Sequence[str], stored: Stored | None
    ) -> Resolved:
        from gateway.deps import running

        communities = running(clients.communities, "communities")
        joined = set(await communities.memberships(user_id))
        store = {ALL_MARK: b"1", **dict.fromkeys(joined, b"1")}
        return Resolved({i: TRUE if i in joined else FALSE for i in ids}, store)


POST_VOTES = PostVotes()
MEMBERSHIPS = Memberships()
