"""The rules of voting, as pure functions: what a vote does to a tally, and who may cast it.

Nothing here does I/O, so every rule is unit-tested without a database.

A user holds at most one vote per target, +1 or -1; direction 0 withdraws it.
A tally is (upvotes, downvotes) plus the derived score. Moving from one
direction to another changes it by `tally_delta(previous, new)`: up to down
takes one upvote away and adds one downvote, so the score moves by 2. A vote
that keeps its direction changes nothing at all (no tally version, no event).

Who may vote, in the order the checks run:

| situation | answer (HTTP) |
|---|---|
| target missing (or a malformed id) | NOT_FOUND (404) |
| target deleted by its author or removed by a moderator | FAILED_PRECONDITION (409) |
| the voter wrote the target | PERMISSION_DENIED (403) |
| the voter is banned from the target's community | PERMISSION_DENIED (403), per API.md |

A deleted or removed target still exists; it is its current state that refuses
votes, which is what FAILED_PRECONDITION means (and the gateway's 409). That
includes withdrawing an old vote, so a removed target's tally stays frozen as it
was when it was taken down.

Self-votes are refused (HTTP 403) as the one manipulation guard beyond the
gateway's rate limits. Reddit casts an automatic upvote on one's own post, and
Lemmy allows an explicit self-vote; both make every score start from the
author's own voice and let one account farm its own karma. Refusing is the
simplest rule that cannot be gamed: a score counts other people only, and posts
and comments start at 0.

Locked posts still take votes (as on Reddit): locking stops the discussion,
not the judgement of it.

Idempotency keys (the HTTP `Idempotency-Key` header) are 1-255 printable ASCII
characters, as Stripe allows. A key belongs to one user and one request: the
same key again with the same target and direction replays the first answer;
with a different target or direction it is refused with FAILED_PRECONDITION
(HTTP 409), as Stripe refuses a reused key with other parameters, because
silently applying or silently ignoring the second request would both be wrong.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from common.contract import IDEMPOTENCY_KEY_MAX
from common.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from common.ids import parse_uuid

BATCH_MAX = 100
DIRECTIONS = (-1, 0, 1)
_PRINTABLE_ASCII = frozenset(chr(code) for code in range(0x20, 0x7F))


class TargetType(enum.IntEnum):
    """What can be voted on; the values are those of the proto enums (and the stored column)."""

    POST = 1
    COMMENT = 2

    @property
    def noun(self) -> str:
        return self.name.lower()


def parse_target_type(value: int) -> TargetType:
    try:
        return TargetType(value)
    except ValueError:
        raise InvalidArgument.for_field("target_type", "must be POST or COMMENT") from None


def parse_direction(value: int) -> int:
    if value not in DIRECTIONS:
        raise InvalidArgument.for_field("direction", "must be -1, 0 or 1")
    return value


def parse_idempotency_key(value: str) -> str | None:
    """The key, or None when the request carries none; malformed keys are refused."""
    if not value:
        return None
    if len(value) > IDEMPOTENCY_KEY_MAX:
        raise InvalidArgument.for_field(
            "idempotency_key", f"must be at most {IDEMPOTENCY_KEY_MAX} characters"
        )
    if not _PRINTABLE_ASCII.issuperset(value):
        raise InvalidArgument.for_field("idempotency_key", "must be printable ASCII")
    return value


def parse_target_ids(values: Iterable[str]) -> list[uuid.UUID]:
    """The distinct well-formed ids of a batch, in request order.

    Malformed ids name nothing that can exist, so they are dropped rather than
    refused: the answer simply has nothing for them, as for unknown ids.
    """
    values = list(values)
    if len(values) > BATCH_MAX:
        raise InvalidArgument.for_field("target_ids", f"at most {BATCH_MAX} ids")
    ids = (parse_uuid(value) for value in values)
    return list(dict.fromkeys(i for i in ids if i is not None))


@dataclass(frozen=True, slots=True)
class TallyDelta:
    upvotes: int
    downvotes: int

    @property
    def score(self) -> int:
        return self.upvotes - self.downvotes

    @property
    def is_zero(self) -> bool:
        return self.upvotes == 0 and self.downvotes == 0


def tally_delta(previous: int, new: int) -> TallyDelta:
    """How moving one vote from `previous` to `new` direction changes a tally."""
    parse_direction(previous)
    parse_direction(new)
    return TallyDelta(
        upvotes=(new == 1) - (previous == 1),
        downvotes=(new == -1) - (previous == -1),
    )


@dataclass(frozen=True, slots=True)
class Tally:
    """The authoritative count of one target; version grows by one with every change."""

    upvotes: int = 0
    downvotes: int = 0
    version: int = 0

    @property
    def score(self) -> int:
        return self.upvotes - self.downvotes


@dataclass(frozen=True, slots=True)
class Target:
    """What votes needs to know about a post or comment, as its owner reports it."""

    type: TargetType
    id: uuid.UUID
    community_id: str
    author_id: str
    deleted: bool
    removed: bool


def check_target_open(voter_id: uuid.UUID, target: Target) -> None:
    """The checks that need only the target (no call to communities)."""
    if target.deleted or target.removed:
        state = "deleted" if target.deleted else "removed"
        raise FailedPrecondition(f"this {target.type.noun} was {state} and takes no votes")
    if target.author_id == str(voter_id):
        raise PermissionDenied(f"you cannot vote on your own {target.type.noun}")


def check_not_banned(is_banned: bool) -> None:
    if is_banned:
        raise PermissionDenied("you are banned from this community")


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """One user's request to set their vote on one target; also an idempotency key's fingerprint."""

    voter_id: uuid.UUID
    target_type: TargetType
    target_id: uuid.UUID
    direction: int


@dataclass(frozen=True, slots=True)
class VoteAnswer:
    """What CastVote answers, and what an idempotency key replays."""

    target_id: uuid.UUID
    score: int
    upvotes: int
    downvotes: int
    my_vote: int


def check_same_request(stored: VoteRequest, request: VoteRequest) -> None:
    """A reused idempotency key must name exactly the request it was first used for."""
    if stored != request:
        raise FailedPrecondition(
            "this idempotency key was already used for a different vote; use a new key"
        )
