"""VotesService through real gRPC against the running stack.

Users come from AuthService.Register, the community, posts and comments from
their own services; the caller is the `x-agora-user-id` metadata the gateway
would send. Tallies are checked in every answer, against GetTallies, and
against a fresh recount of the votes table; vote_cast events are read back
from this run's JetStream stream with a consumer of the test's own: each on
its target type's subject, and each service's processed-events log (every
event its consumers applied) shows it received only the votes on its own
targets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
import pytest
from agora.auth.v1 import auth_pb2, auth_pb2_grpc
from agora.comments.v1 import comments_pb2, comments_pb2_grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc
from agora.events.v1 import events_pb2
from agora.posts.v1 import posts_pb2, posts_pb2_grpc
from agora.votes.v1 import votes_pb2, votes_pb2_grpc
from psycopg import sql

from common.events import LEGACY_VOTE_CAST_SUBJECT, VOTE_CAST_SUBJECTS
from common.settings import DatabaseSettings
from tests.integration.event_support import EventStream, vote_cast
from tests.integration.grpc_support import as_user, eventually
from tools.stack import Stack

RUN = uuid.uuid4().hex[:8]
POST = votes_pb2.TARGET_TYPE_POST
COMMENT = votes_pb2.TARGET_TYPE_COMMENT
VOTERS = 50


@dataclass
class World:
    stack: Stack
    auth: Any
    communities: Any
    posts: Any
    comments: Any
    votes: Any
    author: str
    moderator: str
    voters: list[str]
    community_id: str
    community_name: str

    async def new_post(self, title: str = "a post", author: str | None = None) -> str:
        answer = await self.posts.CreatePost(
            posts_pb2.CreatePostRequest(community_id=self.community_id, title=title, body="body"),
            metadata=as_user(author or self.author),
        )
        return str(answer.post.id)

    async def vote(
        self,
        user_id: str,
        target_id: str,
        direction: int,
        *,
        target_type: votes_pb2.TargetType.ValueType = POST,
        key: str = "",
    ) -> votes_pb2.CastVoteResponse:
        request = votes_pb2.CastVoteRequest(
            target_type=target_type, target_id=target_id, direction=direction, idempotency_key=key
        )
        answer: votes_pb2.CastVoteResponse = await self.votes.CastVote(
            request, metadata=as_user(user_id), timeout=15
        )
        return answer

    async def new_comment(self, post_id: str) -> str:
        answer = await self.comments.CreateComment(
            comments_pb2.CreateCommentRequest(post_id=post_id, body="a comment"),
            metadata=as_user(self.author),
        )
        return str(answer.comment.id)

    async def copies(self, post_id: str, comment_id: str) -> tuple[tuple[int, int], ...]:
        """(upvotes, downvotes) of the copies that posts and comments keep from vote_cast."""
        post = (await self.posts.GetPost(posts_pb2.GetPostRequest(id=post_id))).post
        comment = (
            await self.comments.GetComment(
                comments_pb2.GetCommentRequest(id=comment_id, max_depth=0)
            )
        ).comment
        return (post.upvotes, post.downvotes), (comment.upvotes, comment.downvotes)

    async def tally(
        self, target_id: str, target_type: votes_pb2.TargetType.ValueType = POST
    ) -> tuple[int, int, int]:
        answer = await self.votes.GetTallies(
            votes_pb2.GetTalliesRequest(target_type=target_type, target_ids=[target_id])
        )
        (found,) = answer.tallies
        assert found.target_id == target_id
        return found.score, found.upvotes, found.downvotes


def tally_of(answer: votes_pb2.CastVoteResponse) -> tuple[int, int, int]:
    return answer.tally.score, answer.tally.upvotes, answer.tally.downvotes


async def register(auth: Any, name: str) -> str:
    answer = await auth.Register(
        auth_pb2.RegisterRequest(
            username=name, email=f"{name}@example.com", password="correct horse battery"
        ),
        timeout=60,
    )
    return str(answer.user.id)


@pytest.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[World]:
    channels = {
        name: grpc.aio.insecure_channel(stack.address(name))
        for name in ("auth", "communities", "posts", "comments", "votes")
    }
    try:
        auth = auth_pb2_grpc.AuthServiceStub(channels["auth"])
        # bcrypt makes each registration slow: all at once.
        names = [f"vo{RUN}a", f"vo{RUN}m", *(f"vo{RUN}v{n}" for n in range(VOTERS))]
        ids = await asyncio.gather(*(register(auth, name) for name in names))
        author, moderator, voters = ids[0], ids[1], ids[2:]
        communities = communities_pb2_grpc.CommunitiesServiceStub(channels["communities"])
        community_name = f"votes_{RUN}"
        created = await communities.CreateCommunity(
            communities_pb2.CreateCommunityRequest(
                name=community_name, title="Votes", description="where votes are tested"
            ),
            metadata=as_user(moderator),
        )
        yield World(
            stack=stack,
            auth=auth,
            communities=communities,
            posts=posts_pb2_grpc.PostsServiceStub(channels["posts"]),
            comments=comments_pb2_grpc.CommentsServiceStub(channels["comments"]),
            votes=votes_pb2_grpc.VotesServiceStub(channels["votes"]),
            author=author,
            moderator=moderator,
            voters=voters,
            community_id=created.community.id,
            community_name=community_name,
        )
    finally:
        for channel in channels.values():
            await channel.close(None)


async def recount(db_settings: DatabaseSettings, target_id: str) -> tuple[int, int]:
    """Up and down votes on a target, counted afresh from the votes table."""
    async with await psycopg.AsyncConnection.connect(
        host=db_settings.host,
        port=db_settings.port,
        dbname=db_settings.name,
        user="agora_votes",
        autocommit=True,
    ) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FILTER (WHERE direction = 1), count(*) FILTER (WHERE direction = -1)"
            " FROM votes.votes WHERE target_id = %s",
            (uuid.UUID(target_id),),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def expect_code(code: grpc.StatusCode, call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    assert error.value.code() == code, error.value.details()
    return error.value


async def test_up_down_change_and_withdraw_answer_the_exact_tally(world: World) -> None:
    post = await world.new_post()
    alice, bob = world.voters[0], world.voters[1]

    up = await world.vote(alice, post, 1)
    assert tally_of(up) == (1, 1, 0)
    assert (up.my_vote, up.tally.target_id) == (1, post)

    down = await world.vote(bob, post, -1)
    assert tally_of(down) == (0, 1, 1)
    assert down.my_vote == -1

    # Alice changes up to down: the score moves by 2.
    changed = await world.vote(alice, post, -1)
    assert tally_of(changed) == (-2, 0, 2)
    assert changed.tally.score - down.tally.score == -2

    # Voting the same way again changes nothing.
    again = await world.vote(alice, post, -1)
    assert tally_of(again) == (-2, 0, 2)

    withdrawn = await world.vote(bob, post, 0)
    assert tally_of(withdrawn) == (-1, 0, 1)
    assert withdrawn.my_vote == 0
    # Withdrawing a vote one does not hold is a no-op with the current tally.
    assert tally_of(await world.vote(bob, post, 0)) == (-1, 0, 1)

    assert await world.tally(post) == (-1, 0, 1)


async def test_comments_take_votes_too(world: World) -> None:
    post = await world.new_post()
    created = await world.comments.CreateComment(
        comments_pb2.CreateCommentRequest(post_id=post, body="a comment"),
        metadata=as_user(world.author),
    )
    comment = created.comment.id
    answer = await world.vote(world.voters[2], comment, 1, target_type=COMMENT)
    assert tally_of(answer) == (1, 1, 0)
    assert await world.tally(comment, COMMENT) == (1, 1, 0)
    # The comment's votes are not the post's.
    assert await world.tally(post) == (0, 0, 0)


async def test_fifty_concurrent_upvotes_are_all_counted(
    world: World, db_settings: DatabaseSettings
) -> None:
    post = await world.new_post()
    answers = await asyncio.gather(*(world.vote(voter, post, 1) for voter in world.voters))
    # Each answer is the exact tally at its moment: 1..50, each once.
    assert sorted(answer.tally.score for answer in answers) == list(range(1, VOTERS + 1))
    assert await world.tally(post) == (VOTERS, VOTERS, 0)
    assert await recount(db_settings, post) == (VOTERS, 0)


async def test_fifty_concurrent_mixed_votes_are_exact(
    world: World, db_settings: DatabaseSettings
) -> None:
    post = await world.new_post()
    directions = [(1, -1, 1, 0)[n % 4] for n in range(VOTERS)]
    answers = await asyncio.gather(
        *(world.vote(voter, post, d) for voter, d in zip(world.voters, directions, strict=True))
    )
    up, down = directions.count(1), directions.count(-1)
    assert await world.tally(post) == (up - down, up, down)
    assert await recount(db_settings, post) == (up, down)
    assert [answer.my_vote for answer in answers] == directions
    # The answers of vote-changing requests are distinct tallies: no two saw the same count.
    changing = [tally_of(a) for a, d in zip(answers, directions, strict=True) if d != 0]
    assert len(set(changing)) == len(changing)


async def test_one_user_voting_twenty_times_at_once_stays_consistent(
    world: World, db_settings: DatabaseSettings
) -> None:
    post = await world.new_post()
    voter = world.voters[3]
    answers = await asyncio.gather(*(world.vote(voter, post, (1, -1)[n % 2]) for n in range(20)))
    assert {answer.my_vote for answer in answers} == {1, -1}
    up, down = await recount(db_settings, post)
    assert up + down == 1
    assert await world.tally(post) == (up - down, up, down)


async def test_an_idempotent_replay_returns_the_first_answer_and_changes_nothing(
    world: World, db_settings: DatabaseSettings
) -> None:
    post = await world.new_post()
    voter, other = world.voters[4], world.voters[5]
    key = f"vote-{uuid.uuid4()}"

    first = await world.vote(voter, post, 1, key=key)
    assert tally_of(first) == (1, 1, 0)
    await world.vote(other, post, 1)
    assert await world.tally(post) == (2, 2, 0)

    replay = await world.vote(voter, post, 1, key=key)
    assert replay == first
    assert await world.tally(post) == (2, 2, 0)
    assert await recount(db_settings, post) == (2, 0)


async def test_concurrent_replays_apply_once(world: World, db_settings: DatabaseSettings) -> None:
    post = await world.new_post()
    voter = world.voters[6]
    key = f"race-{uuid.uuid4()}"
    answers = await asyncio.gather(*(world.vote(voter, post, -1, key=key) for _ in range(10)))
    assert all(answer == answers[0] for answer in answers)
    assert tally_of(answers[0]) == (-1, 0, 1)
    assert await recount(db_settings, post) == (0, 1)


async def test_reusing_a_key_for_another_vote_is_refused(world: World) -> None:
    post, other_post = await world.new_post(), await world.new_post()
    voter = world.voters[7]
    key = f"reuse-{uuid.uuid4()}"
    await world.vote(voter, post, 1, key=key)
    await expect_code(grpc.StatusCode.FAILED_PRECONDITION, world.vote(voter, post, -1, key=key))
    await expect_code(
        grpc.StatusCode.FAILED_PRECONDITION, world.vote(voter, other_post, 1, key=key)
    )
    # Nothing of the refused requests happened.
    assert await world.tally(post) == (1, 1, 0)
    assert await world.tally(other_post) == (0, 0, 0)


async def test_a_banned_user_cannot_vote(world: World) -> None:
    post = await world.new_post()
    banned = world.voters[8]
    await world.communities.BanUser(
        communities_pb2.BanUserRequest(name=world.community_name, user_id=banned, reason="spam"),
        metadata=as_user(world.moderator),
    )
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, world.vote(banned, post, 1))
    assert await world.tally(post) == (0, 0, 0)


async def test_a_target_voted_on_before_is_still_checked_on_every_vote(world: World) -> None:
    """votes remembers a target's community (it never changes) and asks about the ban
    while it asks about the target: a ban, a removal and a lifted ban after the
    first votes still decide the next ones."""
    post = await world.new_post()
    voter, banned = world.voters[44], world.voters[45]
    await world.vote(voter, post, 1)
    await world.vote(banned, post, 1)  # the community of the post is known from here on
    await world.communities.BanUser(
        communities_pb2.BanUserRequest(name=world.community_name, user_id=banned, reason="spam"),
        metadata=as_user(world.moderator),
    )
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, world.vote(banned, post, -1))
    await world.communities.UnbanUser(
        communities_pb2.UnbanUserRequest(name=world.community_name, user_id=banned),
        metadata=as_user(world.moderator),
    )
    assert tally_of(await world.vote(banned, post, -1)) == (0, 1, 1)
    # The author is refused before any ban is considered, known target or not.
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, world.vote(world.author, post, 1))
    await world.posts.ModeratePost(
        posts_pb2.ModeratePostRequest(
            id=post, action=posts_pb2.MODERATION_ACTION_REMOVE, reason="off topic"
        ),
        metadata=as_user(world.moderator),
    )
    await expect_code(grpc.StatusCode.FAILED_PRECONDITION, world.vote(voter, post, -1))
    assert await world.tally(post) == (0, 1, 1)


async def test_missing_targets_are_not_found(world: World) -> None:
    voter = world.voters[9]
    for target_type, target_id in (
        (POST, str(uuid.uuid4())),
        (COMMENT, str(uuid.uuid4())),
        (POST, "not-an-id"),
    ):
        await expect_code(
            grpc.StatusCode.NOT_FOUND, world.vote(voter, target_id, 1, target_type=target_type)
        )


async def test_deleted_posts_and_own_posts_take_no_votes(world: World) -> None:
    post = await world.new_post()
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, world.vote(world.author, post, 1))
    await world.posts.DeletePost(
        posts_pb2.DeletePostRequest(id=post), metadata=as_user(world.author)
    )
    await expect_code(grpc.StatusCode.FAILED_PRECONDITION, world.vote(world.voters[10], post, 1))


async def test_bad_requests(world: World) -> None:
    post = await world.new_post()
    anonymous = votes_pb2.CastVoteRequest(target_type=POST, target_id=post, direction=1)
    await expect_code(grpc.StatusCode.UNAUTHENTICATED, world.votes.CastVote(anonymous))
    voter = world.voters[11]
    await expect_code(grpc.StatusCode.INVALID_ARGUMENT, world.vote(voter, post, 2))
    await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        world.vote(voter, post, 1, target_type=votes_pb2.TARGET_TYPE_UNSPECIFIED),
    )
    await expect_code(grpc.StatusCode.INVALID_ARGUMENT, world.vote(voter, post, 1, key="k" * 256))
    await expect_code(grpc.StatusCode.INVALID_ARGUMENT, world.vote(voter, post, 1, key="clé"))


async def test_get_my_votes_for_a_page(world: World) -> None:
    page = [await world.new_post(f"page {n}") for n in range(5)]
    voter = world.voters[12]
    await world.vote(voter, page[0], 1)
    await world.vote(voter, page[2], -1)
    await world.vote(voter, page[3], 1)
    await world.vote(voter, page[3], 0)
    request = votes_pb2.GetMyVotesRequest(
        target_type=POST, target_ids=[*page, str(uuid.uuid4()), "not-an-id"]
    )
    mine = await world.votes.GetMyVotes(request, metadata=as_user(voter))
    assert dict(mine.votes) == {page[0]: 1, page[2]: -1}
    # Somebody else, and nobody, have no votes here.
    theirs = await world.votes.GetMyVotes(request, metadata=as_user(world.voters[13]))
    assert dict(theirs.votes) == {}
    assert dict((await world.votes.GetMyVotes(request)).votes) == {}

    tallies = await world.votes.GetTallies(
        votes_pb2.GetTalliesRequest(target_type=POST, target_ids=page)
    )
    assert [(t.target_id, t.score) for t in tallies.tallies] == list(
        zip(page, [1, 0, -1, 0, 0], strict=True)
    )
    too_many = votes_pb2.GetMyVotesRequest(
        target_type=POST, target_ids=[str(uuid.uuid4()) for _ in range(101)]
    )
    await expect_code(
        grpc.StatusCode.INVALID_ARGUMENT, world.votes.GetMyVotes(too_many, metadata=as_user(voter))
    )


async def read_vote_events(
    stack: Stack, target_id: str, *, until: Callable[[list[events_pb2.Event]], bool]
) -> list[events_pb2.Event]:
    """This target's vote_cast events in stream order, once `until` accepts them."""

    def about_target(event: events_pb2.Event) -> bool:
        return event.vote_cast.target_id == target_id

    async with EventStream.connect(stack) as events:

        async def enough() -> list[events_pb2.Event] | None:
            found = await events.envelopes("vote_cast", about_target)
            return found if until(found) else None

        return await eventually(enough, within=20)


async def test_vote_cast_events_carry_the_tally_and_increasing_versions(world: World) -> None:
    post = await world.new_post()
    voters = world.voters[20:40]
    await asyncio.gather(*(world.vote(voter, post, 1) for voter in voters))
    changer = voters[0]
    await world.vote(changer, post, -1)
    # A repeated vote changes nothing and publishes nothing.
    await world.vote(changer, post, -1)
    expected = len(voters) + 1

    events = await read_vote_events(world.stack, post, until=lambda found: len(found) >= expected)
    cast = [event.vote_cast for event in events]
    assert [c.tally_version for c in cast] == list(range(1, expected + 1))
    assert sorted(c.score for c in cast[:-1]) == list(range(1, len(voters) + 1))
    last = cast[-1]
    assert (last.score, last.upvotes, last.downvotes) == (len(voters) - 2, len(voters) - 1, 1)
    assert (last.voter_id, last.previous_direction, last.direction) == (changer, 1, -1)
    assert {c.target_author_id for c in cast} == {world.author}
    assert {c.community_id for c in cast} == {world.community_id}
    assert {c.target_type for c in cast} == {events_pb2.VOTE_TARGET_TYPE_POST}
    assert {(e.producer, e.actor_id == e.vote_cast.voter_id) for e in events} == {("votes", True)}
    assert len({e.id for e in events}) == expected


# vote_cast routing: one subject per target type


async def vote_messages(stack: Stack, target_id: str) -> list[tuple[str, events_pb2.Event]]:
    """(subject, event) of every vote_cast about target_id in the stream, in order."""
    async with EventStream.connect(stack) as events:
        return await events.delivered(
            "vote_cast", lambda event: event.vote_cast.target_id == target_id
        )


async def processed_by(
    db_settings: DatabaseSettings, schema: str, event_ids: list[str]
) -> set[str]:
    """The consumers of a service that recorded any of these events as processed."""
    async with await psycopg.AsyncConnection.connect(
        host=db_settings.host,
        port=db_settings.port,
        dbname=db_settings.name,
        user=f"agora_{schema}",
        autocommit=True,
    ) as conn:
        query = sql.SQL(
            "SELECT DISTINCT consumer FROM {}.processed_events WHERE event_id = ANY(%s)"
        ).format(sql.Identifier(schema))
        cursor = await conn.execute(query, ([uuid.UUID(event_id) for event_id in event_ids],))
        return {str(row[0]) for row in await cursor.fetchall()}


async def test_each_vote_travels_on_its_target_types_subject(world: World) -> None:
    post = await world.new_post()
    comment = await world.new_comment(post)
    await world.vote(world.voters[46], post, 1)
    await world.vote(world.voters[46], comment, -1, target_type=COMMENT)

    async def published() -> tuple[list[str], list[str]] | None:
        on_post = [subject for subject, _ in await vote_messages(world.stack, post)]
        on_comment = [subject for subject, _ in await vote_messages(world.stack, comment)]
        return (on_post, on_comment) if on_post and on_comment else None

    on_post, on_comment = await eventually(published, within=15)
    assert on_post == [VOTE_CAST_SUBJECTS[events_pb2.VOTE_TARGET_TYPE_POST]]
    assert on_comment == [VOTE_CAST_SUBJECTS[events_pb2.VOTE_TARGET_TYPE_COMMENT]]


async def test_posts_never_see_comment_votes_nor_comments_post_votes(
    world: World, db_settings: DatabaseSettings
) -> None:
    post = await world.new_post()
    comment = await world.new_comment(post)
    voter = world.voters[47]
    # Each durable applies its subject in stream order, and these votes alternate: once
    # a service's copy shows its last vote, it has seen every vote cast before, so a
    # service that received the other kind would have recorded it by then.
    await world.vote(voter, post, 1)
    await world.vote(voter, comment, 1, target_type=COMMENT)
    await world.vote(voter, post, -1)
    await world.vote(voter, comment, -1, target_type=COMMENT)

    async def copied() -> bool:
        return await world.copies(post, comment) == ((0, 1), (0, 1))

    await eventually(copied, within=15)
    every = [
        event.id
        for target in (post, comment)
        for _, event in await vote_messages(world.stack, target)
    ]
    assert len(every) == 4
    # Each service received (and paid a transaction for) its own votes only.
    assert await processed_by(db_settings, "posts", every) == {"posts-post-vote-tallies"}
    assert await processed_by(db_settings, "comments", every) == {"comments-comment-vote-tallies"}


async def test_votes_left_on_the_legacy_subject_are_still_applied(
    world: World, db_settings: DatabaseSettings
) -> None:
    """What a votes from before the split published (or left in its outbox) on the
    one old subject: both target types there, each applied by its own service."""
    post = await world.new_post()
    comment = await world.new_comment(post)
    on_post = vote_cast(events_pb2.VOTE_TARGET_TYPE_POST, post, up=4, down=0, version=100)
    on_comment = vote_cast(events_pb2.VOTE_TARGET_TYPE_COMMENT, comment, up=6, down=0, version=100)
    async with EventStream.connect(world.stack) as events:
        for event in (on_post, on_comment):
            await events.publish(event, subject=LEGACY_VOTE_CAST_SUBJECT)

    async def applied() -> bool:
        return await world.copies(post, comment) == ((4, 0), (6, 0))

    await eventually(applied, within=15)
    # The services' original durables, kept on the old subject, applied them.
    both = [on_post.id, on_comment.id]
    assert await processed_by(db_settings, "posts", both) == {"posts-vote-tallies"}
    assert await processed_by(db_settings, "comments", both) == {"comments-vote-tallies"}
