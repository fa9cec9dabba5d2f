"""The votes use cases against real Postgres, with a stand-in for posts, comments and communities.

These pin what the database must guarantee, independently of the other
services: the migration matches the models, concurrent votes leave exact
tallies, one voter racing with themself stays consistent, idempotent twins
apply once, and every tally change stages exactly one event with the next
version. tests/integration/test_votes_grpc.py covers the same through the
running stack.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from agora.events.v1 import events_pb2

from common import migrations
from common.db import Database
from common.errors import FailedPrecondition, NotFound, PermissionDenied
from common.outbox import Outbox
from common.settings import DatabaseSettings
from common.topology import ServiceSpec
from services.votes import models
from services.votes.domain import Target, TargetType
from services.votes.service import VotesService
from tools import bootstrap

RUN = uuid.uuid4().hex[:8]
# Not necessarily in common.topology yet: only the name (schema, role) matters here.
SPEC = ServiceSpec("votes", grpc_port=0, metrics_port=0)
POST, COMMENT = int(TargetType.POST), int(TargetType.COMMENT)


class FakeTargets:
    """Posts and comments that exist, with authors and bans, as the upstreams would answer."""

    def __init__(self) -> None:
        self.targets: dict[uuid.UUID, Target] = {}
        self.banned: set[tuple[str, uuid.UUID]] = set()
        self.community = str(uuid.uuid4())

    def add(
        self, kind: TargetType = TargetType.POST, *, deleted: bool = False, removed: bool = False
    ) -> uuid.UUID:
        target_id = uuid.uuid4()
        self.targets[target_id] = Target(
            type=kind,
            id=target_id,
            community_id=self.community,
            author_id=str(uuid.uuid4()),
            deleted=deleted,
            removed=removed,
        )
        return target_id

    async def target(self, target_type: TargetType, target_id: uuid.UUID) -> Target:
        found = self.targets.get(target_id)
        if found is None or found.type is not target_type:
            raise NotFound(f"{target_type.noun} not found")
        return found

    async def is_banned(self, community_id: str, user_id: uuid.UUID) -> bool:
        return (community_id, user_id) in self.banned


@pytest.fixture(scope="module")
def votes_db(infrastructure: dict[str, str]) -> Iterator[DatabaseSettings]:
    # A small pool: Postgres' connections are shared with every other test run on the
    # machine, and 12 connections are plenty to make 50 concurrent votes collide.
    settings = DatabaseSettings(name=f"agora_test_votes_{RUN}", pool_size=8, max_overflow=4)
    bootstrap.ensure_database(settings, services=(SPEC,))
    try:
        migrations.upgrade(SPEC, settings)
        yield settings
    finally:
        bootstrap.drop_database(settings)


@pytest.fixture
async def db(votes_db: DatabaseSettings) -> AsyncIterator[Database]:
    database = Database(votes_db, role=SPEC.db_role, application_name="votes-test")
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def targets() -> FakeTargets:
    return FakeTargets()


@pytest.fixture
def votes(db: Database, targets: FakeTargets) -> VotesService:
    return VotesService(
        db=db,
        outbox=Outbox(models.outbox, "test."),
        targets=targets,
        idempotency_ttl=timedelta(hours=24),
    )


def _user() -> str:
    return str(uuid.uuid4())


async def _recount(db: Database, target_id: uuid.UUID) -> tuple[int, int]:
    async with db.read() as session:
        row = (
            await session.execute(
                sa.select(
                    sa.func.count().filter(models.Vote.direction == 1),
                    sa.func.count().filter(models.Vote.direction == -1),
                ).where(models.Vote.target_id == target_id)
            )
        ).one()
    return int(row[0]), int(row[1])


async def _events(db: Database, target_id: uuid.UUID) -> list[events_pb2.VoteCast]:
    async with db.read() as session:
        payloads = await session.scalars(sa.select(models.outbox.c.payload).order_by("id"))
        found = [events_pb2.Event.FromString(payload).vote_cast for payload in payloads]
    return [event for event in found if event.target_id == str(target_id)]


async def test_votes_move_the_tally_and_answer_it_exactly(
    votes: VotesService, targets: FakeTargets, db: Database
) -> None:
    post = str(targets.add())
    alice, bob = _user(), _user()

    up = await votes.cast_vote(alice, target_type=POST, target_id=post, direction=1)
    assert (up.score, up.upvotes, up.downvotes, up.my_vote) == (1, 1, 0, 1)
    down = await votes.cast_vote(bob, target_type=POST, target_id=post, direction=-1)
    assert (down.score, down.upvotes, down.downvotes, down.my_vote) == (0, 1, 1, -1)
    changed = await votes.cast_vote(alice, target_type=POST, target_id=post, direction=-1)
    assert (changed.score, changed.upvotes, changed.downvotes) == (-2, 0, 2)
    same = await votes.cast_vote(alice, target_type=POST, target_id=post, direction=-1)
    assert (same.score, same.my_vote) == (-2, -1)
    withdrawn = await votes.cast_vote(bob, target_type=POST, target_id=post, direction=0)
    assert (withdrawn.score, withdrawn.upvotes, withdrawn.downvotes) == (-1, 0, 1)
    assert withdrawn.my_vote == 0

    # Four changes, four events, versions 1..4; the repeated vote made none.
    cast = await _events(db, uuid.UUID(post))
    assert [event.tally_version for event in cast] == [1, 2, 3, 4]
    assert [(e.previous_direction, e.direction) for e in cast] == [
        (0, 1),
        (0, -1),
        (1, -1),
        (-1, 0),
    ]
    assert cast[-1].score == -1
    assert cast[0].target_author_id == targets.targets[uuid.UUID(post)].author_id
    assert cast[0].community_id == targets.community

    assert await votes.my_votes(alice, target_type=POST, target_ids=[post]) == {uuid.UUID(post): -1}
    assert await votes.my_votes(bob, target_type=POST, target_ids=[post]) == {}
    assert await votes.my_votes(None, target_type=POST, target_ids=[post]) == {}
    # A post's votes are not a comment's.
    assert await votes.my_votes(alice, target_type=COMMENT, target_ids=[post]) == {}


async def test_refusals(votes: VotesService, targets: FakeTargets) -> None:
    voter = _user()
    with pytest.raises(NotFound):
        await votes.cast_vote(voter, target_type=POST, target_id=str(uuid.uuid4()), direction=1)
    with pytest.raises(NotFound):
        await votes.cast_vote(voter, target_type=POST, target_id="not-a-uuid", direction=1)
    comment = str(targets.add(TargetType.COMMENT))
    with pytest.raises(NotFound):
        await votes.cast_vote(voter, target_type=POST, target_id=comment, direction=1)
    for gone in (str(targets.add(deleted=True)), str(targets.add(removed=True))):
        with pytest.raises(FailedPrecondition):
            await votes.cast_vote(voter, target_type=POST, target_id=gone, direction=1)
    own = targets.add()
    with pytest.raises(PermissionDenied):
        await votes.cast_vote(
            targets.targets[own].author_id, target_type=POST, target_id=str(own), direction=1
        )
    targets.banned.add((targets.community, uuid.UUID(voter)))
    with pytest.raises(PermissionDenied):
        await votes.cast_vote(voter, target_type=COMMENT, target_id=comment, direction=1)


async def test_fifty_concurrent_voters_leave_an_exact_tally(
    votes: VotesService, targets: FakeTargets, db: Database
) -> None:
    post = str(targets.add())
    directions = [1 if n % 5 else -1 for n in range(50)]
    answers = await asyncio.gather(
        *(
            votes.cast_vote(_user(), target_type=POST, target_id=post, direction=direction)
            for direction in directions
        )
    )
    expected_up, expected_down = directions.count(1), directions.count(-1)
    (tally,) = await votes.tallies(target_type=POST, target_ids=[post])
    assert (tally[1].upvotes, tally[1].downvotes, tally[1].version) == (
        expected_up,
        expected_down,
        50,
    )
    assert await _recount(db, uuid.UUID(post)) == (expected_up, expected_down)
    # Every answer was an exact tally at its moment: all distinct, one per version.
    assert len({(a.upvotes, a.downvotes) for a in answers}) == 50
    versions = sorted(event.tally_version for event in await _events(db, uuid.UUID(post)))
    assert versions == list(range(1, 51))


async def test_one_voter_racing_with_themself_stays_consistent(
    votes: VotesService, targets: FakeTargets, db: Database
) -> None:
    post = str(targets.add())
    voter = _user()
    await asyncio.gather(
        *(
            votes.cast_vote(voter, target_type=POST, target_id=post, direction=(1, -1, 0)[n % 3])
            for n in range(30)
        )
    )
    (tally,) = await votes.tallies(target_type=POST, target_ids=[post])
    recount = await _recount(db, uuid.UUID(post))
    assert (tally[1].upvotes, tally[1].downvotes) == recount
    assert sum(recount) <= 1
    cast = await _events(db, uuid.UUID(post))
    assert [event.tally_version for event in cast] == list(range(1, len(cast) + 1))
    # Each event starts from the direction the one before it left.
    for before, after in itertools.pairwise(cast):
        assert after.previous_direction == before.direction


async def test_idempotent_twins_apply_once(
    votes: VotesService, targets: FakeTargets, db: Database
) -> None:
    post = str(targets.add())
    voter = _user()
    answers = await asyncio.gather(
        *(
            votes.cast_vote(
                voter, target_type=POST, target_id=post, direction=1, idempotency_key="k-1"
            )
            for _ in range(10)
        )
    )
    assert len(set(answers)) == 1
    assert len(await _events(db, uuid.UUID(post))) == 1
    other = _user()
    await votes.cast_vote(other, target_type=POST, target_id=post, direction=1)
    replay = await votes.cast_vote(
        voter, target_type=POST, target_id=post, direction=1, idempotency_key="k-1"
    )
    assert replay == answers[0]
    assert replay.score == 1
    with pytest.raises(FailedPrecondition):
        await votes.cast_vote(
            voter, target_type=POST, target_id=post, direction=-1, idempotency_key="k-1"
        )
    # Keys belong to their user: another voter's k-1 is a new request.
    fresh = await votes.cast_vote(
        _user(), target_type=POST, target_id=post, direction=1, idempotency_key="k-1"
    )
    assert fresh.score == 3


async def test_expired_keys_are_taken_over_and_purged(
    votes: VotesService, targets: FakeTargets, db: Database
) -> None:
    post = str(targets.add())
    voter = _user()
    await votes.cast_vote(
        voter, target_type=POST, target_id=post, direction=1, idempotency_key="old"
    )
    async with db.transaction() as session:
        await session.execute(
            sa.update(models.IdempotencyKey)
            .where(models.IdempotencyKey.key == "old")
            .values(created_at=sa.func.now() - timedelta(days=2))
        )
    # Expired: the same key now names a new request.
    again = await votes.cast_vote(
        voter, target_type=POST, target_id=post, direction=-1, idempotency_key="old"
    )
    assert (again.score, again.my_vote) == (-1, -1)
    async with db.transaction() as session:
        await session.execute(
            sa.update(models.IdempotencyKey).values(created_at=sa.func.now() - timedelta(days=2))
        )
    assert await votes.purge_expired_keys() >= 1
    async with db.read() as session:
        assert (
            await session.scalar(sa.select(sa.func.count()).select_from(models.IdempotencyKey)) == 0
        )
