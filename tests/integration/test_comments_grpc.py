"""The comments service through real gRPC, in front of real auth, communities, posts and NATS.

Users are registered through AuthService and act through the
`x-agora-user-id` metadata the gateway would send; communities and posts are
made through their services, so every permission check is the real one. Vote
tallies arrive as real VoteCast events published into the run's own
JetStream stream with `Nats-Msg-Id` = event id, as votes' outbox sends them.
Each test makes its own posts, so trees see only that test's comments.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from agora.auth.v1 import auth_pb2, auth_pb2_grpc
from agora.comments.v1 import comments_pb2, comments_pb2_grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc
from agora.events.v1 import events_pb2
from agora.posts.v1 import posts_pb2, posts_pb2_grpc

from common import ranking
from tests.integration import event_support
from tests.integration.event_support import EventStream
from tests.integration.grpc_support import as_user, eventually, refused, violated_fields
from tools.stack import Stack

PASSWORD = "correct horse battery"

BEST, TOP, NEW, CONTROVERSIAL = (
    comments_pb2.COMMENT_SORT_BEST,
    comments_pb2.COMMENT_SORT_TOP,
    comments_pb2.COMMENT_SORT_NEW,
    comments_pb2.COMMENT_SORT_CONTROVERSIAL,
)
SORTS = [BEST, TOP, NEW, CONTROVERSIAL]
REMOVE = comments_pb2.COMMENT_MODERATION_ACTION_REMOVE
RESTORE = comments_pb2.COMMENT_MODERATION_ACTION_RESTORE


def walk(comments: Iterable[comments_pb2.Comment]) -> Iterator[comments_pb2.Comment]:
    for comment in comments:
        yield comment
        yield from walk(comment.replies)


def vote_cast(
    target_id: str,
    *,
    up: int,
    down: int,
    version: int,
    target: events_pb2.VoteTargetType.ValueType = events_pb2.VOTE_TARGET_TYPE_COMMENT,
) -> events_pb2.Event:
    return event_support.vote_cast(target, target_id, up=up, down=down, version=version)


@dataclass
class Agora:
    """Stubs of the services under test and helpers that act as users."""

    stack: Stack
    auth: auth_pb2_grpc.AuthServiceStub
    communities: communities_pb2_grpc.CommunitiesServiceStub
    posts: posts_pb2_grpc.PostsServiceStub
    comments: comments_pb2_grpc.CommentsServiceStub
    events: EventStream

    async def user(self) -> str:
        name = f"c_{uuid.uuid4().hex[:12]}"
        answer = await self.auth.Register(
            auth_pb2.RegisterRequest(username=name, email=f"{name}@example.com", password=PASSWORD),
            timeout=10,
        )
        return str(answer.user.id)

    async def community(self, owner: str) -> communities_pb2.Community:
        name = f"k_{uuid.uuid4().hex[:12]}"
        answer = await self.communities.CreateCommunity(
            communities_pb2.CreateCommunityRequest(name=name, title=name, description="tests"),
            metadata=as_user(owner),
            timeout=5,
        )
        return answer.community

    async def post(self, user: str, community_id: str) -> posts_pb2.Post:
        answer = await self.posts.CreatePost(
            posts_pb2.CreatePostRequest(community_id=community_id, title="A post", body="text"),
            metadata=as_user(user),
            timeout=5,
        )
        return answer.post

    async def moderate_post(self, user: str, post_id: str, action: int) -> None:
        await self.posts.ModeratePost(
            posts_pb2.ModeratePostRequest(id=post_id, action=action),  # type: ignore[arg-type]
            metadata=as_user(user),
            timeout=5,
        )

    async def comment(
        self, user: str, post_id: str, body: str = "a comment", parent_id: str = ""
    ) -> comments_pb2.Comment:
        answer = await self.comments.CreateComment(
            comments_pb2.CreateCommentRequest(post_id=post_id, parent_id=parent_id, body=body),
            metadata=as_user(user),
            timeout=10,
        )
        return answer.comment

    async def tree(self, post_id: str, **request: Any) -> comments_pb2.ListCommentTreeResponse:
        request.setdefault("max_depth", 10)
        return await self.comments.ListCommentTree(
            comments_pb2.ListCommentTreeRequest(post_id=post_id, **request), timeout=10
        )

    async def get(self, comment_id: str, **request: Any) -> comments_pb2.Comment:
        answer = await self.comments.GetComment(
            comments_pb2.GetCommentRequest(id=comment_id, **request), timeout=5
        )
        return answer.comment

    async def set_tally(self, comment_id: str, up: int, down: int, version: int = 1) -> None:
        await self.events.publish(vote_cast(comment_id, up=up, down=down, version=version))

        async def applied() -> bool:
            comment = await self.get(comment_id)
            return (comment.upvotes, comment.downvotes) == (up, down)

        await eventually(applied)


@dataclass
class World:
    """A community run by `moderator`, where `author` and `other` take part."""

    moderator: str
    author: str
    other: str
    community: communities_pb2.Community


@pytest.fixture(scope="module")
async def agora(stack: Stack) -> AsyncIterator[Agora]:
    async with (
        EventStream.connect(stack) as events,
        grpc.aio.insecure_channel(stack.address("auth")) as auth,
        grpc.aio.insecure_channel(stack.address("communities")) as communities,
        grpc.aio.insecure_channel(stack.address("posts")) as posts,
        grpc.aio.insecure_channel(stack.address("comments")) as comments,
    ):
        yield Agora(
            stack=stack,
            auth=auth_pb2_grpc.AuthServiceStub(auth),
            communities=communities_pb2_grpc.CommunitiesServiceStub(communities),
            posts=posts_pb2_grpc.PostsServiceStub(posts),
            comments=comments_pb2_grpc.CommentsServiceStub(comments),
            events=events,
        )


@pytest.fixture(scope="module")
async def world(agora: Agora) -> World:
    moderator, author, other = await asyncio.gather(agora.user(), agora.user(), agora.user())
    return World(moderator, author, other, await agora.community(moderator))


async def fresh_post(agora: Agora, world: World) -> str:
    return (await agora.post(world.author, world.community.id)).id


# Writing comments


async def test_replies_nest_to_depth_ten_and_no_deeper(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    chain = [await agora.comment(world.author, post_id, "depth 0")]
    for depth in range(1, 11):
        reply = await agora.comment(world.other, post_id, f"depth {depth}", chain[-1].id)
        assert (reply.depth, reply.parent_id, reply.post_id) == (depth, chain[-1].id, post_id)
        assert reply.community_id == world.community.id
        chain.append(reply)

    error = await refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        agora.comment(world.author, post_id, "depth 11", chain[-1].id),
    )
    assert violated_fields(error) == ["parent_id"]
    assert "10 levels" in (error.details() or "")

    (root,) = (await agora.tree(post_id)).comments
    shown = list(walk([root]))
    assert [c.id for c in shown] == [c.id for c in chain]
    assert [c.depth for c in shown] == list(range(11))
    assert all(c.child_count == 1 for c in shown[:-1])
    assert all(c.more_replies == 0 for c in shown)


async def test_input_and_existence_checks(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    other_post = await fresh_post(agora, world)
    elsewhere = await agora.comment(world.author, other_post)

    for body in ("", "   \n", "x" * 10_001):
        error = await refused(
            grpc.StatusCode.INVALID_ARGUMENT, agora.comment(world.author, post_id, body)
        )
        assert violated_fields(error) == ["body"]
    assert (await agora.comment(world.author, post_id, "y" * 10_000)).body == "y" * 10_000

    for parent in (elsewhere.id, str(uuid.uuid4()), "not-a-uuid"):
        error = await refused(
            grpc.StatusCode.INVALID_ARGUMENT, agora.comment(world.author, post_id, "hi", parent)
        )
        assert violated_fields(error) == ["parent_id"]

    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        await refused(grpc.StatusCode.NOT_FOUND, agora.comment(world.author, missing))
        await refused(grpc.StatusCode.NOT_FOUND, agora.get(missing))
    await refused(grpc.StatusCode.NOT_FOUND, agora.tree("not-a-uuid"))
    assert list((await agora.tree(str(uuid.uuid4()))).comments) == []

    await refused(
        grpc.StatusCode.UNAUTHENTICATED,
        agora.comments.CreateComment(
            comments_pb2.CreateCommentRequest(post_id=post_id, body="anonymous"), timeout=5
        ),
    )
    for bad in ({"page_size": 101}, {"page_size": -1}, {"max_depth": 11}, {"max_depth": -1}):
        error = await refused(grpc.StatusCode.INVALID_ARGUMENT, agora.tree(post_id, **bad))
        assert violated_fields(error) == ["limit" if "page_size" in bad else "max_depth"]


async def test_locked_removed_and_deleted_posts_take_no_comments(
    agora: Agora, world: World
) -> None:
    locked = await fresh_post(agora, world)
    await agora.moderate_post(world.moderator, locked, posts_pb2.MODERATION_ACTION_LOCK)
    error = await refused(
        grpc.StatusCode.PERMISSION_DENIED, agora.comment(world.author, locked, "locked?")
    )
    assert "locked" in (error.details() or "")
    # Moderators may still speak in a locked thread, as on Reddit.
    await agora.comment(world.moderator, locked, "Locking this thread.")
    await agora.moderate_post(world.moderator, locked, posts_pb2.MODERATION_ACTION_UNLOCK)
    await agora.comment(world.author, locked, "thanks for unlocking")

    removed = await fresh_post(agora, world)
    await agora.moderate_post(world.moderator, removed, posts_pb2.MODERATION_ACTION_REMOVE)
    for user in (world.author, world.moderator):
        await refused(grpc.StatusCode.PERMISSION_DENIED, agora.comment(user, removed))

    deleted = await fresh_post(agora, world)
    await agora.posts.DeletePost(
        posts_pb2.DeletePostRequest(id=deleted), metadata=as_user(world.author), timeout=5
    )
    await refused(grpc.StatusCode.PERMISSION_DENIED, agora.comment(world.other, deleted))


async def test_banned_users_cannot_comment_or_edit_but_can_delete(
    agora: Agora, world: World
) -> None:
    post_id = await fresh_post(agora, world)
    troll = await agora.user()
    earlier = await agora.comment(troll, post_id, "before the ban")
    await agora.communities.BanUser(
        communities_pb2.BanUserRequest(name=world.community.name, user_id=troll, reason="spam"),
        metadata=as_user(world.moderator),
        timeout=5,
    )
    await refused(grpc.StatusCode.PERMISSION_DENIED, agora.comment(troll, post_id, "after"))
    await refused(
        grpc.StatusCode.PERMISSION_DENIED, agora.comment(troll, post_id, "reply", earlier.id)
    )
    await refused(
        grpc.StatusCode.PERMISSION_DENIED,
        agora.comments.UpdateComment(
            comments_pb2.UpdateCommentRequest(id=earlier.id, body="edited"),
            metadata=as_user(troll),
            timeout=5,
        ),
    )
    await agora.comments.DeleteComment(
        comments_pb2.DeleteCommentRequest(id=earlier.id), metadata=as_user(troll), timeout=5
    )
    assert (await agora.get(earlier.id)).deleted


async def test_only_the_author_edits_and_deletes(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    comment = await agora.comment(world.author, post_id, "first draft")
    reply = await agora.comment(world.other, post_id, "a reply", comment.id)
    assert not comment.HasField("edited_at")

    def update(user: str, body: str) -> Awaitable[comments_pb2.UpdateCommentResponse]:
        return agora.comments.UpdateComment(
            comments_pb2.UpdateCommentRequest(id=comment.id, body=body),
            metadata=as_user(user),
            timeout=5,
        )

    def delete(user: str) -> Awaitable[comments_pb2.DeleteCommentResponse]:
        return agora.comments.DeleteComment(
            comments_pb2.DeleteCommentRequest(id=comment.id), metadata=as_user(user), timeout=5
        )

    for user in (world.other, world.moderator):
        await refused(grpc.StatusCode.PERMISSION_DENIED, update(user, "hijacked"))
        await refused(grpc.StatusCode.PERMISSION_DENIED, delete(user))
    error = await refused(grpc.StatusCode.INVALID_ARGUMENT, update(world.author, " "))
    assert violated_fields(error) == ["body"]

    edited = (await update(world.author, "second draft")).comment
    assert edited.body == "second draft"
    assert edited.HasField("edited_at")
    assert edited.edited_at.ToDatetime() >= comment.created_at.ToDatetime()

    await delete(world.author)
    await delete(world.author)  # deleting again changes nothing
    (root,) = (await agora.tree(post_id)).comments
    assert (root.id, root.body, root.author_id, root.deleted) == (
        comment.id,
        "[deleted]",
        "",
        True,
    )
    assert [r.id for r in root.replies] == [reply.id]
    assert root.replies[0].body == "a reply"
    await refused(grpc.StatusCode.FAILED_PRECONDITION, update(world.author, "third draft"))
    # The discussion under a deleted comment may go on.
    await agora.comment(world.other, post_id, "still replying", comment.id)
    assert (await agora.get(comment.id)).child_count == 2


async def test_moderators_remove_and_restore(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    comment = await agora.comment(world.author, post_id, "rude words")

    def moderate(user: str, action: int, reason: str = "") -> Awaitable[Any]:
        return agora.comments.ModerateComment(
            comments_pb2.ModerateCommentRequest(
                id=comment.id,
                action=action,  # type: ignore[arg-type]
                reason=reason,
            ),
            metadata=as_user(user),
            timeout=5,
        )

    for user in (world.author, world.other):
        await refused(grpc.StatusCode.PERMISSION_DENIED, moderate(user, REMOVE))
    error = await refused(
        grpc.StatusCode.INVALID_ARGUMENT, moderate(world.moderator, REMOVE, "r" * 501)
    )
    assert violated_fields(error) == ["reason"]
    error = await refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        moderate(world.moderator, comments_pb2.COMMENT_MODERATION_ACTION_UNSPECIFIED),
    )
    assert violated_fields(error) == ["action"]

    removed = (await moderate(world.moderator, REMOVE, "rule 1")).comment
    assert (removed.removed, removed.body, removed.author_id) == (True, "[removed]", "")
    assert (await agora.get(comment.id)).body == "[removed]"
    await refused(
        grpc.StatusCode.PERMISSION_DENIED, agora.comment(world.other, post_id, "me too", comment.id)
    )
    await refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        agora.comments.UpdateComment(
            comments_pb2.UpdateCommentRequest(id=comment.id, body="sorry"),
            metadata=as_user(world.author),
            timeout=5,
        ),
    )

    restored = (await moderate(world.moderator, RESTORE)).comment
    assert (restored.removed, restored.body, restored.author_id) == (
        False,
        "rude words",
        world.author,
    )

    events = await agora.events.published(
        "comment_moderated", lambda e: e.comment_moderated.comment_id == comment.id, 2
    )
    assert [(e.action, e.reason, e.post_comment_count) for e in events] == [
        ("remove", "rule 1", 0),
        ("restore", "", 1),
    ]


# Reading trees


async def test_every_sort_orders_each_level(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    tallies = [(12, 0), (30, 25), (3, 0), (0, 0), (2, 1)]
    roots = [await agora.comment(world.author, post_id, f"top {i}") for i in range(5)]
    replies = [await agora.comment(world.other, post_id, f"re {i}", roots[0].id) for i in range(5)]
    for comment, (up, down) in zip(roots + replies, tallies + tallies[::-1], strict=True):
        if up or down:
            await agora.set_tally(comment.id, up, down)

    def expected(comments: list[comments_pb2.Comment], sort: int) -> list[str]:
        def key(comment: comments_pb2.Comment) -> tuple[Any, str]:
            up, down = comment.upvotes, comment.downvotes
            rank: Any = {
                BEST: ranking.wilson_lower_bound(up, down),
                TOP: up - down,
                NEW: comment.created_at.ToDatetime(),
                CONTROVERSIAL: ranking.controversy(up, down),
            }[sort]
            return rank, comment.id

        return [c.id for c in sorted(comments, key=key, reverse=True)]

    current_roots = [await agora.get(c.id, max_depth=0) for c in roots]
    current_replies = [await agora.get(c.id, max_depth=0) for c in replies]
    for sort in SORTS:
        page = await agora.tree(post_id, sort=sort)
        assert [c.id for c in page.comments] == expected(current_roots, sort), sort
        first = next(c for c in page.comments if c.id == roots[0].id)
        assert [c.id for c in first.replies] == expected(current_replies, sort), sort
        thread = await agora.get(roots[0].id, sort=sort, max_depth=1)
        assert [c.id for c in thread.replies] == expected(current_replies, sort), sort
    # BEST is the default sort.
    assert [c.id for c in (await agora.tree(post_id)).comments] == expected(current_roots, BEST)
    assert {c.id: c.score for c in current_roots} == {
        c.id: up - down for c, (up, down) in zip(roots, tallies, strict=True)
    }


async def test_paging_over_top_level_comments_while_comments_are_added(
    agora: Agora, world: World
) -> None:
    post_id = await fresh_post(agora, world)
    originals = [await agora.comment(world.author, post_id, f"top {i}") for i in range(23)]
    await agora.comment(world.other, post_id, "a reply", originals[3].id)
    rng = random.Random(5)
    for comment in rng.sample(originals, 8):
        up, down = rng.randrange(1, 20), rng.randrange(0, 20)
        await agora.set_tally(comment.id, up, down)

    for sort in SORTS:
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            page = await agora.tree(post_id, sort=sort, page_size=5, page_token=token)
            assert all(c.depth == 0 for c in page.comments)
            seen += [c.id for c in page.comments]
            pages += 1
            # New top-level comments and replies arrive while the reader pages.
            await agora.comment(world.other, post_id, "late arrival")
            await agora.comment(world.other, post_id, "late reply", originals[pages].id)
            token = page.next_page_token
            if not token:
                break
        counts = Counter(seen)
        assert max(counts.values()) == 1, f"repeated in sort {sort}"
        assert {c.id for c in originals} <= set(counts), f"skipped in sort {sort}"

    first = await agora.tree(post_id, sort=TOP, page_size=5)
    for tampered in (first.next_page_token[:-2] + "xx", "garbage"):
        error = await refused(
            grpc.StatusCode.INVALID_ARGUMENT, agora.tree(post_id, sort=TOP, page_token=tampered)
        )
        assert violated_fields(error) == ["cursor"]
    # A cursor belongs to its listing: another sort or another post refuses it.
    error = await refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        agora.tree(post_id, sort=NEW, page_token=first.next_page_token),
    )
    assert violated_fields(error) == ["cursor"]


async def test_max_depth_cuts_the_tree_and_counts_what_is_left_out(
    agora: Agora, world: World
) -> None:
    post_id = await fresh_post(agora, world)
    root = await agora.comment(world.author, post_id, "root")
    c1 = await agora.comment(world.other, post_id, "c1", root.id)
    c2 = await agora.comment(world.other, post_id, "c2", root.id)
    g1 = await agora.comment(world.author, post_id, "g1", c1.id)
    await agora.comment(world.author, post_id, "g2", c1.id)
    await agora.comment(world.other, post_id, "h1", g1.id)

    (top,) = (await agora.tree(post_id, max_depth=0)).comments
    assert (list(top.replies), top.more_replies, top.child_count) == ([], 5, 2)

    (top,) = (await agora.tree(post_id, max_depth=1, sort=NEW)).comments
    assert [c.id for c in top.replies] == [c2.id, c1.id]
    assert top.more_replies == 0
    assert {c.id: c.more_replies for c in top.replies} == {c1.id: 3, c2.id: 0}
    assert all(list(c.replies) == [] for c in top.replies)

    (top,) = (await agora.tree(post_id, max_depth=10)).comments
    assert len(list(walk([top]))) == 6
    assert all(c.more_replies == 0 for c in walk([top]))

    # "Continue this thread": a comment with its own subtree, depth counted from it.
    thread = await agora.get(c1.id, max_depth=1, sort=NEW)
    assert [c.body for c in thread.replies] == ["g2", "g1"]
    assert {c.body: c.more_replies for c in thread.replies} == {"g1": 1, "g2": 0}
    alone = await agora.get(c1.id, max_depth=0)
    assert (list(alone.replies), alone.more_replies, alone.child_count) == ([], 3, 2)


async def _grow(
    agora: Agora, world: World, post_id: str, *, roots: int, total: int, seed: int
) -> list[comments_pb2.Comment]:
    """A thread of `total` comments under `roots` top-level ones, written concurrently."""
    rng = random.Random(seed)
    made = list(
        await asyncio.gather(
            *(agora.comment(world.author, post_id, f"top {i} " * 5) for i in range(roots))
        )
    )
    users = [world.author, world.other, world.moderator]
    while len(made) < total:
        batch = min(10, total - len(made))
        open_parents = [c for c in made if c.depth < 10]
        made += await asyncio.gather(
            *(
                agora.comment(
                    rng.choice(users),
                    post_id,
                    f"reply {len(made) + i} " * rng.randrange(1, 8),
                    rng.choice(open_parents[-60:]).id,
                )
                for i in range(batch)
            )
        )
    return made


async def test_a_500_comment_thread_reads_in_one_call(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    made = await _grow(agora, world, post_id, roots=12, total=500, seed=1)

    started = time.perf_counter()
    page = await agora.tree(post_id, page_size=25, max_depth=10)
    elapsed = time.perf_counter() - started

    shown = list(walk(page.comments))
    assert len(shown) == 500
    assert {c.id for c in shown} == {c.id for c in made}
    assert page.next_page_token == ""
    assert all(c.more_replies == 0 for c in shown)
    assert all(len(c.replies) == c.child_count for c in shown)
    assert elapsed < 2.0, f"500 comments took {elapsed:.2f}s"

    created = await agora.events.published(
        "comment_created", lambda e: e.comment_created.post_id == post_id, 500
    )
    assert sorted(e.post_comment_count for e in created) == list(range(1, 501))


async def test_a_huge_subthread_is_cut_at_500_replies_and_counted(
    agora: Agora, world: World
) -> None:
    post_id = await fresh_post(agora, world)
    made = await _grow(agora, world, post_id, roots=1, total=531, seed=2)
    small = await agora.comment(world.other, post_id, "a small thread")
    await agora.comment(world.author, post_id, "its reply", small.id)

    page = await agora.tree(post_id, page_size=25, max_depth=10, sort=NEW)
    big = next(c for c in page.comments if c.id == made[0].id)
    shown = list(walk([big]))
    assert len(shown) == 501
    # Every reply left out is counted once, at the nearest comment shown above it.
    assert sum(c.more_replies for c in shown) == 30
    assert all(c.parent_id in {s.id for s in shown} for c in shown[1:])
    small_tree = next(c for c in page.comments if c.id == small.id)
    assert [r.body for r in small_tree.replies] == ["its reply"]


# Other reads


async def test_batch_get_comments(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    first = await agora.comment(world.author, post_id, "first")
    second = await agora.comment(world.other, post_id, "second", first.id)
    answer = await agora.comments.BatchGetComments(
        comments_pb2.BatchGetCommentsRequest(
            ids=[second.id, str(uuid.uuid4()), "nope", first.id, second.id]
        ),
        timeout=5,
    )
    assert [(c.id, c.body, c.depth) for c in answer.comments] == [
        (second.id, "second", 1),
        (first.id, "first", 0),
    ]
    error = await refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        agora.comments.BatchGetComments(
            comments_pb2.BatchGetCommentsRequest(ids=[str(uuid.uuid4()) for _ in range(101)]),
            timeout=5,
        ),
    )
    assert violated_fields(error) == ["ids"]


async def test_search_finds_visible_comments_best_match_first(agora: Agora, world: World) -> None:
    word = f"quokka{uuid.uuid4().hex[:8]}"
    post_id = await fresh_post(agora, world)
    other_community = await agora.community(world.other)
    elsewhere = (await agora.post(world.other, other_community.id)).id
    strong = await agora.comment(world.author, post_id, f"{word} {word} {word} is the word")
    weak = [
        await agora.comment(world.other, post_id, f"Somewhere here there is one {word}.")
        for _ in range(3)
    ]
    far = await agora.comment(world.other, elsewhere, f"The {word} lives elsewhere")
    gone = await agora.comment(world.author, post_id, f"deleted {word}")
    hidden = await agora.comment(world.other, post_id, f"removed {word}")
    await agora.comments.DeleteComment(
        comments_pb2.DeleteCommentRequest(id=gone.id), metadata=as_user(world.author), timeout=5
    )
    await agora.comments.ModerateComment(
        comments_pb2.ModerateCommentRequest(id=hidden.id, action=REMOVE),
        metadata=as_user(world.moderator),
        timeout=5,
    )

    async def search(**request: Any) -> list[str]:
        ids: list[str] = []
        token = ""
        while True:
            answer = await agora.comments.SearchComments(
                comments_pb2.SearchCommentsRequest(page_size=2, page_token=token, **request),
                timeout=5,
            )
            ids += [c.id for c in answer.comments]
            token = answer.next_page_token
            if not token:
                return ids

    everywhere = await search(query=word)
    assert everywhere[0] == strong.id
    assert Counter(everywhere) == Counter([strong.id, far.id, *(c.id for c in weak)])
    assert set(await search(query=word, post_id=post_id)) == {strong.id, *(c.id for c in weak)}
    assert set(await search(query=word, community_id=other_community.id)) == {far.id}
    assert await search(query=f"{word} -elsewhere", community_id=other_community.id) == []
    assert await search(query=word, post_id="not-a-uuid") == []
    error = await refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        agora.comments.SearchComments(comments_pb2.SearchCommentsRequest(query=" "), timeout=5),
    )
    assert violated_fields(error) == ["q"]


# Events


async def test_vote_tallies_apply_once_and_only_when_newer(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    target = await agora.comment(world.author, post_id, "vote on me")
    marker = await agora.comment(world.author, post_id, "a later marker")

    newer = vote_cast(target.id, up=5, down=1, version=2)
    await agora.events.publish(newer)

    async def applied() -> comments_pb2.Comment | None:
        comment = await agora.get(target.id)
        return comment if comment.upvotes == 5 else None

    comment = await eventually(applied)
    assert (comment.score, comment.upvotes, comment.downvotes) == (4, 5, 1)

    # The same event again (JetStream drops it), the same event under another
    # message id (the consumer's processed-events log drops it), an older tally,
    # and a post vote that happens to carry this id: none of them changes it.
    await agora.events.publish(newer)
    await agora.events.publish(newer, msg_id=str(uuid.uuid4()))
    await agora.events.publish(vote_cast(target.id, up=50, down=0, version=1))
    await agora.events.publish(
        vote_cast(target.id, up=70, down=0, version=9, target=events_pb2.VOTE_TARGET_TYPE_POST)
    )
    # Events are consumed in order: once the marker's tally shows, the rest were handled.
    await agora.set_tally(marker.id, 1, 0)
    comment = await agora.get(target.id)
    assert (comment.score, comment.upvotes, comment.downvotes) == (4, 5, 1)

    # The tally moves the comment in the BEST and TOP orders.
    for sort in (BEST, TOP):
        ids = [c.id for c in (await agora.tree(post_id, sort=sort)).comments]
        assert ids == [target.id, marker.id]


async def test_events_carry_the_posts_visible_comment_count(agora: Agora, world: World) -> None:
    post_id = await fresh_post(agora, world)
    first = await agora.comment(world.author, post_id, "one")
    second = await agora.comment(world.other, post_id, "two", first.id)
    await agora.comments.UpdateComment(
        comments_pb2.UpdateCommentRequest(id=first.id, body="one, edited"),
        metadata=as_user(world.author),
        timeout=5,
    )
    await agora.comments.ModerateComment(
        comments_pb2.ModerateCommentRequest(id=second.id, action=REMOVE),
        metadata=as_user(world.moderator),
        timeout=5,
    )
    # Deleting a removed comment leaves the visible count as it was.
    await agora.comments.DeleteComment(
        comments_pb2.DeleteCommentRequest(id=second.id), metadata=as_user(world.other), timeout=5
    )
    await agora.comments.DeleteComment(
        comments_pb2.DeleteCommentRequest(id=first.id), metadata=as_user(world.author), timeout=5
    )

    async def stream(kind: str, count: int) -> list[Any]:
        return await agora.events.published(
            kind, lambda e: getattr(e, kind).post_id == post_id, count
        )

    created = await stream("comment_created", 2)
    assert [(e.comment_id, e.parent_id, e.depth, e.post_comment_count) for e in created] == [
        (first.id, "", 0, 1),
        (second.id, first.id, 1, 2),
    ]
    assert created[0].community_id == world.community.id
    assert created[0].author_id == world.author
    assert [e.comment_id for e in await stream("comment_updated", 1)] == [first.id]
    moderated = await stream("comment_moderated", 1)
    assert [(e.comment_id, e.action, e.post_comment_count) for e in moderated] == [
        (second.id, "remove", 1)
    ]
    deleted = await stream("comment_deleted", 2)
    assert [(e.comment_id, e.post_comment_count) for e in deleted] == [
        (second.id, 1),
        (first.id, 0),
    ]
