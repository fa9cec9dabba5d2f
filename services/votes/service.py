"""The votes use cases: cast a vote, read one's own votes, read tallies.

CastVote in order:
1. Check the shape of the request (domain), before any I/O.
2. With an idempotency key, replay a stored answer if there is one: a replay
   changes nothing and costs no upstream call.
3. Ask posts or comments for the target and communities for a ban, outside
   any transaction, so no database connection waits on another service (both
   at once when the target's community is known from an earlier vote).
4. One transaction, the unit of work: claim the idempotency key (a concurrent
   twin waits here and then replays this answer), swap the voter's vote,
   apply the tally delta with one upsert that answers the new tally, stage
   vote_cast in the outbox, store the answer under the key. A vote that keeps
   its direction writes no tally, bumps no version and stages no event.
5. After commit, wake the outbox relay.

The answer carries the exact tally at once: the tally row is the point where
concurrent votes on one target queue, and each reads the count the previous
one committed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from common.db import Database
from common.errors import FieldError, InvalidArgument, NotFound, Unauthenticated, Unavailable
from common.ids import parse_uuid
from common.metrics import business_counter
from common.outbox import Outbox
from services.votes import domain, events
from services.votes.domain import Tally, Target, TargetType, VoteAnswer, VoteRequest
from services.votes.repository import VotesRepository
from services.votes.targets import KnownCommunities, TargetDirectory

log = logging.getLogger("agora.votes")

PURGE_BATCH = 1000

_DIRECTION_LABELS = {1: "up", -1: "down", 0: "cleared"}
VOTES = business_counter(
    "votes",
    "Votes that changed a tally, by target (post, comment) and the direction set "
    "(up, down, cleared); replays and repeats of the same vote are not counted.",
    ("target", "direction"),
    known=[(kind.noun, label) for kind in TargetType for label in _DIRECTION_LABELS.values()],
)

T = TypeVar("T")


def _collect(violations: list[FieldError], check: Callable[[], T]) -> T | None:
    try:
        return check()
    except InvalidArgument as error:
        violations.extend(error.field_errors)
        return None


def _invalid(violations: list[FieldError]) -> InvalidArgument:
    return InvalidArgument(
        "; ".join(f"{e.field}: {e.message}" for e in violations), field_errors=tuple(violations)
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    answer: VoteAnswer
    staged_event: bool


class VotesService:
    def __init__(
        self,
        *,
        db: Database,
        outbox: Outbox,
        targets: TargetDirectory,
        idempotency_ttl: timedelta,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._targets = targets
        self._communities = KnownCommunities()
        self._ttl = idempotency_ttl

    async def cast_vote(
        self,
        caller: str,
        *,
        target_type: int,
        target_id: str,
        direction: int,
        idempotency_key: str = "",
    ) -> VoteAnswer:
        voter = parse_uuid(caller)
        if voter is None:
            raise Unauthenticated("caller identity is not a user id")
        violations: list[FieldError] = []
        kind = _collect(violations, lambda: domain.parse_target_type(target_type))
        new_direction = _collect(violations, lambda: domain.parse_direction(direction))
        key = _collect(violations, lambda: domain.parse_idempotency_key(idempotency_key))
        if violations or kind is None or new_direction is None:
            raise _invalid(violations)
        parsed_target = parse_uuid(target_id)
        if parsed_target is None:
            raise NotFound(f"{kind.noun} not found")
        request = VoteRequest(
            voter_id=voter, target_type=kind, target_id=parsed_target, direction=new_direction
        )

        if key is not None:
            async with self._db.read() as session:
                stored = await VotesRepository(session).stored_key(voter, key, ttl=self._ttl)
            if stored is not None:
                return self._replay(stored, request)

        target = await self._check(kind, parsed_target, voter)

        outcome = await self._apply(request, target, key)
        if outcome.staged_event:
            self._outbox.notify_committed()
            VOTES.labels(kind.noun, _DIRECTION_LABELS[new_direction]).inc()
        return outcome.answer

    async def _check(self, kind: TargetType, target_id: uuid.UUID, voter: uuid.UUID) -> Target:
        """The target, unless it refuses the vote now or the voter is banned from it.

        For a target seen before, its community is known (it never changes),
        so the ban is asked while the target is; otherwise after. Either way
        the target's refusals come first, as in the table in domain.py.
        """
        community_id = self._communities.get(kind, target_id)
        if community_id is None:
            target = await self._targets.target(kind, target_id)
            self._communities.remember(target)
            domain.check_target_open(voter, target)
            domain.check_not_banned(await self._targets.is_banned(target.community_id, voter))
            return target
        banned = asyncio.ensure_future(self._targets.is_banned(community_id, voter))
        # An answer nobody waits for any more must not be logged as never retrieved.
        banned.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            target = await self._targets.target(kind, target_id)
            domain.check_target_open(voter, target)
        except BaseException:
            banned.cancel()
            raise
        domain.check_not_banned(await banned)
        return target

    @staticmethod
    def _replay(stored: tuple[VoteRequest, VoteAnswer], request: VoteRequest) -> VoteAnswer:
        first_request, first_answer = stored
        domain.check_same_request(first_request, request)
        return first_answer

    async def _apply(self, request: VoteRequest, target: Target, key: str | None) -> _Outcome:
        async with self._db.transaction() as session:
            repo = VotesRepository(session)
            if key is not None and not await repo.claim_key(key, request, ttl=self._ttl):
                # A twin request holds or held the key; the claim waited for it to commit.
                stored = await repo.stored_key(request.voter_id, key, ttl=None)
                if stored is None:
                    raise Unavailable("this idempotency key is being used right now; try again")
                return _Outcome(self._replay(stored, request), staged_event=False)

            previous = await repo.swap_vote(request)
            delta = domain.tally_delta(previous, request.direction)
            if delta.is_zero:
                tally = await repo.tally(request.target_type, request.target_id)
            else:
                tally = await repo.add_to_tally(request.target_type, request.target_id, delta)
                await self._outbox.stage(
                    session, events.vote_cast(request, target, previous, tally)
                )
            answer = VoteAnswer(
                target_id=request.target_id,
                score=tally.score,
                upvotes=tally.upvotes,
                downvotes=tally.downvotes,
                my_vote=request.direction,
            )
            if key is not None:
                await repo.answer_key(request.voter_id, key, answer)
        return _Outcome(answer, staged_event=not delta.is_zero)

    async def my_votes(
        self, caller: str | None, *, target_type: int, target_ids: list[str]
    ) -> dict[uuid.UUID, int]:
        """The caller's votes among target_ids (absent: no vote); nothing for anonymous callers."""
        kind, ids = self._batch(target_type, target_ids)
        voter = parse_uuid(caller) if caller else None
        if voter is None or not ids:
            return {}
        async with self._db.read() as session:
            return await VotesRepository(session).my_votes(voter, kind, ids)

    async def tallies(
        self, *, target_type: int, target_ids: list[str]
    ) -> list[tuple[uuid.UUID, Tally]]:
        """A tally per distinct well-formed id, in request order; zero for targets without votes."""
        kind, ids = self._batch(target_type, target_ids)
        if not ids:
            return []
        async with self._db.read() as session:
            found = await VotesRepository(session).tallies(kind, ids)
        return [(target_id, found.get(target_id, Tally())) for target_id in ids]

    @staticmethod
    def _batch(target_type: int, target_ids: list[str]) -> tuple[TargetType, list[uuid.UUID]]:
        violations: list[FieldError] = []
        kind = _collect(violations, lambda: domain.parse_target_type(target_type))
        ids = _collect(violations, lambda: domain.parse_target_ids(target_ids))
        if violations or kind is None or ids is None:
            raise _invalid(violations)
        return kind, ids

    async def purge_expired_keys(self) -> int:
        """Delete idempotency keys past their time, in batches."""
        total = 0
        while True:
            async with self._db.transaction() as session:
                deleted = await VotesRepository(session).purge_expired_keys(
                    ttl=self._ttl, limit=PURGE_BATCH
                )
            total += deleted
            if deleted < PURGE_BATCH:
                if total:
                    log.info("purged expired idempotency keys", extra={"deleted": total})
                return total
