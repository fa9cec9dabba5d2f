"""The posts service through real gRPC, in front of real auth, communities, Postgres and NATS.

Users are registered through AuthService and act through the
`x-agora-user-id` metadata the gateway would send; communities are made
through CommunitiesService, so every permission check is the real one. Vote
tallies and comment counts arrive as real events published into the run's
own JetStream stream, with `Nats-Msg-Id` = event id as producers send them.
Each test makes its own community, so listings see only that test's posts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from agora.auth.v1 import auth_pb2, auth_pb2_grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc
from agora.events.v1 import events_pb2
from agora.posts.v1 import posts_pb2, posts_pb2_grpc
from sqlalchemy.dialects import postgresql

from common import migrations, ranking
from common.events import new_event
from common.settings import DatabaseSettings
from common.topology import service
from services.posts.domain import Scope, Sort
from services.posts.repository import (
    PageQuery,
    listing_statement,
    pinned_statement,
    search_statement,
)
from tests.integration import event_support
from tests.integration.event_support import EventStream
from tests.integration.grpc_support import as_user, eventually, violated_fields
from tools import bootstrap
from tools.stack import Stack

PASSWORD = "correct horse battery"

HOT, NEW, TOP, CONTROVERSIAL = (
    posts_pb2.POST_SORT_HOT,
    posts_pb2.POST_SORT_NEW,
    posts_pb2.POST_SORT_TOP,
    posts_pb2.POST_SORT_CONTROVERSIAL,
)


@dataclass
class Agora:
    """Stubs of the services under test and helpers that act as users."""

    stack: Stack
    auth: auth_pb2_grpc.AuthServiceStub
    communities: communities_pb2_grpc.CommunitiesServiceStub
    posts: posts_pb2_grpc.PostsServiceStub
    events: EventStream

    async def user(self) -> str:
        name = f"p_{uuid.uuid4().hex[:12]}"
        answer = await self.auth.Register(
            auth_pb2.RegisterRequest(username=name, email=f"{name}@example.com", password=PASSWORD),
            timeout=10,
        )
        return str(answer.user.id)

    async def community(self, owner: str) -> communities_pb2.Community:
        name = f"c_{uuid.uuid4().hex[:12]}"
        answer = await self.communities.CreateCommunity(
            communities_pb2.CreateCommunityRequest(name=name, title=name, description="tests"),
            metadata=as_user(owner),
            timeout=5,
        )
        return answer.community

    async def post(
        self, user: str, community_id: str, title: str = "A post", body: str = "", url: str = ""
    ) -> posts_pb2.Post:
        answer = await self.posts.CreatePost(
            posts_pb2.CreatePostRequest(community_id=community_id, title=title, body=body, url=url),
            metadata=as_user(user),
            timeout=5,
        )
        return answer.post

    async def get(self, post_id: str) -> posts_pb2.Post:
        return (await self.posts.GetPost(posts_pb2.GetPostRequest(id=post_id), timeout=5)).post

    async def moderate(
        self, user: str, post_id: str, action: int, reason: str = ""
    ) -> posts_pb2.Post:
        answer = await self.posts.ModeratePost(
            posts_pb2.ModeratePostRequest(id=post_id, action=action, reason=reason),  # type: ignore[arg-type]
            metadata=as_user(user),
            timeout=5,
        )
        return answer.post

    async def listing(self, **request: Any) -> posts_pb2.ListPostsResponse:
        return await self.posts.ListPosts(posts_pb2.ListPostsRequest(**request), timeout=5)

    async def ids(self, **request: Any) -> list[str]:
        return [post.id for post in (await self.listing(**request)).posts]

    async def all_pages(self, **request: Any) -> list[str]:
        ids: list[str] = []
        token = ""
        while True:
            page = await self.listing(**request, page_token=token)
            ids += [post.id for post in page.posts]
            token = page.next_page_token
            if not token:
                return ids


@pytest.fixture(scope="module")
async def agora(stack: Stack) -> AsyncIterator[Agora]:
    async with (
        EventStream.connect(stack) as events,
        grpc.aio.insecure_channel(stack.address("auth")) as auth,
        grpc.aio.insecure_channel(stack.address("communities")) as communities,
        grpc.aio.insecure_channel(stack.address("posts")) as posts,
    ):
        yield Agora(
            stack=stack,
            auth=auth_pb2_grpc.AuthServiceStub(auth),
            communities=communities_pb2_grpc.CommunitiesServiceStub(communities),
            posts=posts_pb2_grpc.PostsServiceStub(posts),
            events=events,
        )


@pytest.fixture(scope="module")
def admin_db(db_settings: DatabaseSettings) -> Callable[[], psycopg.Connection[Any]]:
    """Connections to the run's database as the posts role (to travel in time, to EXPLAIN)."""

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=db_settings.host,
            port=db_settings.port,
            dbname=db_settings.name,
            user="agora_posts",
            autocommit=True,
        )

    return connect


def backdate(connect: Callable[[], psycopg.Connection[Any]], post_id: str, age: timedelta) -> None:
    """Make a post `age` old, with the hot rank it would have had then."""
    created_at = datetime.now(UTC) - age
    with connect() as conn:
        upvotes, downvotes = conn.execute(
            "SELECT upvotes, downvotes FROM posts.posts WHERE id = %s", (post_id,)
        ).fetchone() or (0, 0)
        conn.execute(
            "UPDATE posts.posts SET created_at = %s, hot_rank = %s WHERE id = %s",
            (created_at, ranking.hot(upvotes, downvotes, created_at), post_id),
        )


def vote_cast(
    post_id: str,
    *,
    up: int,
    down: int,
    version: int,
    target: events_pb2.VoteTargetType.ValueType = events_pb2.VOTE_TARGET_TYPE_POST,
) -> events_pb2.Event:
    return event_support.vote_cast(target, post_id, up=up, down=down, version=version)


async def set_tally(agora: Agora, post_id: str, up: int, down: int, version: int = 1) -> None:
    await agora.events.publish(vote_cast(post_id, up=up, down=down, version=version))

    async def applied() -> bool:
        post = await agora.get(post_id)
        return (post.upvotes, post.downvotes) == (up, down)

    await eventually(applied)


# Creating and reading


async def test_create_then_read_a_post(agora: Agora) -> None:
    author = await agora.user()
    community = await agora.community(author)
    post = await agora.post(
        author, community.id, title="  Hello, Agora  ", body="First!", url="HTTPS://example.com/a"
    )
    assert uuid.UUID(post.id).version == 7
    assert (post.community_id, post.author_id) == (community.id, author)
    assert (post.title, post.body, post.url) == ("Hello, Agora", "First!", "https://example.com/a")
    assert (post.score, post.upvotes, post.downvotes, post.comment_count) == (0, 0, 0, 0)
    assert (post.locked, post.removed, post.pinned, post.deleted) == (False, False, False, False)
    assert not post.HasField("edited_at")
    assert abs(post.created_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    assert await agora.get(post.id) == post

    created = await eventually(
        lambda: agora.events.matching("post_created", lambda e: e.post_created.post_id == post.id)
    )
    assert created[0].community_id == community.id
    assert created[0].author_id == author
    assert created[0].title == "Hello, Agora"


async def test_batch_get_keeps_request_order_and_skips_unknown(agora: Agora) -> None:
    author = await agora.user()
    community = await agora.community(author)
    first, second = [await agora.post(author, community.id, title=f"p{i}") for i in range(2)]
    answer = await agora.posts.BatchGetPosts(
        posts_pb2.BatchGetPostsRequest(
            ids=[second.id, "not-an-id", str(uuid.uuid4()), first.id, second.id]
        ),
        timeout=5,
    )
    assert [p.id for p in answer.posts] == [second.id, first.id]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.posts.BatchGetPosts(
            posts_pb2.BatchGetPostsRequest(ids=[str(uuid.uuid4()) for _ in range(101)]), timeout=5
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error.value) == ["ids"]


@pytest.mark.parametrize("post_id", ["", "nope", str(uuid.uuid4())])
async def test_unknown_or_malformed_post_is_not_found(agora: Agora, post_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.get(post_id)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_creating_needs_a_signed_in_user(agora: Agora) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.posts.CreatePost(
            posts_pb2.CreatePostRequest(community_id=community.id, title="anonymous"), timeout=5
        )
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("title", "body", "url", "fields"),
    [
        ("", "", "", ["title"]),
        ("x" * 301, "", "", ["title"]),
        ("ok", "b" * 40_001, "", ["body"]),
        ("ok", "", "javascript:alert(1)", ["url"]),
        ("ok", "", "data:text/html,<script>alert(1)</script>", ["url"]),
        ("ok", "", "https://user:pw@example.com/", ["url"]),
        ("ok", "", "https://example.com/" + "a" * 2000, ["url"]),
        ("", "\x07", "ftp://example.com", ["title", "body", "url"]),
        ("ok", "nul \x00 byte", "", ["body"]),
    ],
)
async def test_invalid_posts_are_refused_field_by_field(
    agora: Agora, title: str, body: str, url: str, fields: list[str]
) -> None:
    author = await agora.user()
    community = await agora.community(author)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.post(author, community.id, title=title, body=body, url=url)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error.value) == fields


@pytest.mark.parametrize("community_id", ["not-a-uuid", str(uuid.uuid4())])
async def test_posting_to_a_missing_community_is_not_found(agora: Agora, community_id: str) -> None:
    author = await agora.user()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.post(author, community_id)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_banned_user_cannot_post_but_others_need_not_join(agora: Agora) -> None:
    owner, troll, stranger = await agora.user(), await agora.user(), await agora.user()
    community = await agora.community(owner)
    await agora.post(troll, community.id, title="before the ban")
    await agora.communities.BanUser(
        communities_pb2.BanUserRequest(name=community.name, user_id=troll, reason="spam"),
        metadata=as_user(owner),
        timeout=5,
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.post(troll, community.id, title="after the ban")
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Joining is not required to post (as in Lemmy).
    assert (await agora.post(stranger, community.id, title="hello")).author_id == stranger


# Editing and deleting


async def test_only_the_author_edits_and_edits_are_marked(agora: Agora) -> None:
    author, other = await agora.user(), await agora.user()
    community = await agora.community(author)
    post = await agora.post(author, community.id, title="Original", body="old body")

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.posts.UpdatePost(
            posts_pb2.UpdatePostRequest(id=post.id, title="Hijacked"),
            metadata=as_user(other),
            timeout=5,
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED

    edited = (
        await agora.posts.UpdatePost(
            posts_pb2.UpdatePostRequest(id=post.id, body="new body"),
            metadata=as_user(author),
            timeout=5,
        )
    ).post
    assert (edited.title, edited.body) == ("Original", "new body")
    assert edited.HasField("edited_at")
    assert edited.edited_at.ToDatetime() >= post.created_at.ToDatetime()
    assert await agora.get(post.id) == edited

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.posts.UpdatePost(
            posts_pb2.UpdatePostRequest(id=post.id, title=" "),
            metadata=as_user(author),
            timeout=5,
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error.value) == ["title"]
    updated = await eventually(
        lambda: agora.events.matching("post_updated", lambda e: e.post_updated.post_id == post.id)
    )
    assert updated[0].community_id == community.id


async def test_only_the_author_deletes_and_the_post_reads_as_deleted(agora: Agora) -> None:
    author, other = await agora.user(), await agora.user()
    community = await agora.community(author)
    post = await agora.post(author, community.id, title="Regrettable", url="https://example.com")

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.posts.DeletePost(
            posts_pb2.DeletePostRequest(id=post.id), metadata=as_user(other), timeout=5
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED

    for _ in range(2):  # deleting twice is fine and changes nothing more
        await agora.posts.DeletePost(
            posts_pb2.DeletePostRequest(id=post.id), metadata=as_user(author), timeout=5
        )
    gone = await agora.get(post.id)
    assert (gone.title, gone.body, gone.url, gone.author_id) == ("[deleted]", "", "", "")
    assert gone.deleted
    assert gone.community_id == community.id

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.posts.UpdatePost(
            posts_pb2.UpdatePostRequest(id=post.id, title="Back"),
            metadata=as_user(author),
            timeout=5,
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    deleted = await eventually(
        lambda: agora.events.matching("post_deleted", lambda e: e.post_deleted.post_id == post.id)
    )
    assert len(deleted) == 1


# Moderation


async def test_moderation_is_for_moderators_and_idempotent(agora: Agora) -> None:
    owner, author, bystander = await agora.user(), await agora.user(), await agora.user()
    community = await agora.community(owner)
    post = await agora.post(author, community.id, title="Borderline", body="text")

    for user in (author, bystander):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await agora.moderate(user, post.id, posts_pb2.MODERATION_ACTION_REMOVE)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED

    removed = await agora.moderate(owner, post.id, posts_pb2.MODERATION_ACTION_REMOVE, "rule 1")
    again = await agora.moderate(owner, post.id, posts_pb2.MODERATION_ACTION_REMOVE, "rule 1")
    assert removed == again
    assert removed.removed
    assert (removed.title, removed.body, removed.author_id) == ("[removed]", "", author)
    assert (await agora.get(post.id)).title == "[removed]"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.posts.UpdatePost(
            posts_pb2.UpdatePostRequest(id=post.id, body="sneaky"),
            metadata=as_user(author),
            timeout=5,
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.moderate(owner, post.id, posts_pb2.MODERATION_ACTION_PIN)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    restored = await agora.moderate(owner, post.id, posts_pb2.MODERATION_ACTION_RESTORE)
    assert (restored.title, restored.body, restored.removed) == ("Borderline", "text", False)

    # A moderator appointed later has the same powers.
    await agora.communities.AddModerator(
        communities_pb2.AddModeratorRequest(name=community.name, user_id=bystander),
        metadata=as_user(owner),
        timeout=5,
    )
    locked = await agora.moderate(bystander, post.id, posts_pb2.MODERATION_ACTION_LOCK)
    pinned = await agora.moderate(bystander, post.id, posts_pb2.MODERATION_ACTION_PIN)
    assert locked.locked
    assert pinned.pinned
    assert pinned.locked
    unlocked = await agora.moderate(bystander, post.id, posts_pb2.MODERATION_ACTION_UNLOCK)
    unpinned = await agora.moderate(bystander, post.id, posts_pb2.MODERATION_ACTION_UNPIN)
    assert (unlocked.locked, unpinned.pinned) == (False, False)

    for action, reason, field in (
        (posts_pb2.MODERATION_ACTION_UNSPECIFIED, "", "action"),
        (posts_pb2.MODERATION_ACTION_LOCK, "r" * 501, "reason"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await agora.moderate(owner, post.id, action, reason)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(error.value) == [field]

    events = await eventually(
        lambda: agora.events.matching(
            "post_moderated", lambda e: e.post_moderated.post_id == post.id
        )
    )
    # The repeated remove changed nothing and staged nothing.
    assert [(e.action, e.reason) for e in events] == [
        ("remove", "rule 1"),
        ("restore", ""),
        ("lock", ""),
        ("pin", ""),
        ("unlock", ""),
        ("unpin", ""),
    ]


# Listings


async def test_each_sort_orders_a_community(agora: Agora) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    a, b, c, d = [await agora.post(owner, community.id, title=t) for t in "abcd"]
    # Tallies: a +10 (10/0), b split 6/5, c -3 (0/3), d untouched; all created just now.
    await set_tally(agora, a.id, 10, 0)
    await set_tally(agora, b.id, 6, 5)
    await set_tally(agora, c.id, 0, 3)
    scope = {"community_id": community.id}

    assert await agora.ids(**scope, sort=NEW) == [d.id, c.id, b.id, a.id]
    assert await agora.ids(**scope, sort=TOP) == [a.id, b.id, d.id, c.id]
    # Only b has votes on both sides; the rest tie at 0 and fall back to newest first.
    assert await agora.ids(**scope, sort=CONTROVERSIAL) == [b.id, d.id, c.id, a.id]
    # Hot: log10(10) = 1 lifts a; c's negative score drops it below the untouched d.
    assert await agora.ids(**scope, sort=HOT) == [a.id, d.id, b.id, c.id]
    assert await agora.ids(**scope) == await agora.ids(**scope, sort=HOT)


async def test_time_windows_bound_top_and_controversial_only(
    agora: Agora, admin_db: Callable[[], psycopg.Connection[Any]]
) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    ages = {"fresh": timedelta(0), "hours": timedelta(hours=5), "days": timedelta(days=3)}
    ages |= {
        "weeks": timedelta(days=20),
        "months": timedelta(days=200),
        "years": timedelta(days=900),
    }
    posts = {}
    for name, age in ages.items():
        posts[name] = await agora.post(owner, community.id, title=name)
        await set_tally(agora, posts[name].id, 5, 4)
        if age:
            backdate(admin_db, posts[name].id, age)

    def named(ids: Sequence[str]) -> set[str]:
        return {name for name, post in posts.items() if post.id in ids}

    scope = {"community_id": community.id}
    expected = {
        posts_pb2.TIME_WINDOW_HOUR: {"fresh"},
        posts_pb2.TIME_WINDOW_DAY: {"fresh", "hours"},
        posts_pb2.TIME_WINDOW_WEEK: {"fresh", "hours", "days"},
        posts_pb2.TIME_WINDOW_MONTH: {"fresh", "hours", "days", "weeks"},
        posts_pb2.TIME_WINDOW_YEAR: {"fresh", "hours", "days", "weeks", "months"},
        posts_pb2.TIME_WINDOW_ALL: set(ages),
        # Top and controversial default to the last day, as Reddit's t=day.
        posts_pb2.TIME_WINDOW_UNSPECIFIED: {"fresh", "hours"},
    }
    for window, names in expected.items():
        for sort in (TOP, CONTROVERSIAL):
            assert named(await agora.ids(**scope, sort=sort, time_window=window)) == names
    for sort in (HOT, NEW):  # the window means nothing to hot and new
        hour = await agora.ids(**scope, sort=sort, time_window=posts_pb2.TIME_WINDOW_HOUR)
        assert named(hour) == set(ages)
    # Hot favours the recent: with equal scores, newest first.
    assert await agora.ids(**scope, sort=HOT) == [posts[n].id for n in ages]


async def test_pinned_posts_lead_the_first_page_of_a_community_hot_listing(agora: Agora) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    posts = [await agora.post(owner, community.id, title=f"p{i}") for i in range(7)]
    oldest, second = posts[0], posts[1]
    await agora.moderate(owner, second.id, posts_pb2.MODERATION_ACTION_PIN)
    await agora.moderate(owner, oldest.id, posts_pb2.MODERATION_ACTION_PIN)
    newest_first = [p.id for p in reversed(posts)]
    rest = [i for i in newest_first if i not in (oldest.id, second.id)]

    first = await agora.listing(community_id=community.id, sort=HOT, page_size=3)
    assert [p.id for p in first.posts] == [second.id, oldest.id, rest[0]]
    assert all(p.pinned for p in first.posts[:2])
    everything = await agora.all_pages(community_id=community.id, sort=HOT, page_size=3)
    assert everything == [second.id, oldest.id, *rest]  # never shown twice
    # With pins filling the whole first page, the listing goes on from the top.
    assert await agora.all_pages(community_id=community.id, sort=HOT, page_size=2) == everything
    # Other sorts and scopes list pinned posts in their natural place.
    assert await agora.ids(community_id=community.id, sort=NEW) == newest_first
    assert await agora.ids(community_ids=[community.id, str(uuid.uuid4())], sort=HOT) == (
        newest_first
    )


async def test_paging_neither_repeats_nor_skips_while_posts_arrive(agora: Agora) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    original = [await agora.post(owner, community.id, title=f"p{i}") for i in range(11)]
    expected = [p.id for p in reversed(original)]
    for sort in (HOT, NEW, TOP, CONTROVERSIAL):
        seen: list[str] = []
        token = ""
        while True:
            page = await agora.listing(
                community_id=community.id, sort=sort, page_size=4, page_token=token
            )
            assert 0 < len(page.posts) <= 4
            seen += [p.id for p in page.posts]
            # New posts arrive between pages: they rank before the cursor, so this walk
            # never meets them and nothing already listed moves.
            await agora.post(owner, community.id, title="latecomer")
            token = page.next_page_token
            if not token:
                break
        assert seen == expected, sort
        # The later posts did arrive: a fresh listing starts with them.
        fresh = await agora.ids(community_id=community.id, sort=NEW, page_size=1)
        assert fresh[0] not in expected
        # Those latecomers are part of the next walk's expectations.
        expected = await agora.all_pages(community_id=community.id, sort=NEW, page_size=100)


async def test_feeds_and_all_communities(agora: Agora) -> None:
    owner = await agora.user()
    one, two, other = [await agora.community(owner) for _ in range(3)]
    posts = []
    for i in range(6):
        for community in (one, two, other):
            posts.append(await agora.post(owner, community.id, title=f"{community.name} {i}"))
    in_feed = [p.id for p in reversed(posts) if p.community_id in (one.id, two.id)]

    for sort in (HOT, NEW, TOP, CONTROVERSIAL):
        feed = await agora.all_pages(community_ids=[two.id, one.id, "junk"], sort=sort, page_size=5)
        assert feed == in_feed, sort
    everything = await agora.ids(all_communities=True, sort=NEW, page_size=100)
    assert everything[: len(posts)] == [p.id for p in reversed(posts)]
    assert await agora.ids(sort=NEW, page_size=3) == everything[:3]  # no scope means all

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.listing(community_id=one.id, all_communities=True)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.listing(community_ids=[str(uuid.uuid4()) for _ in range(1001)])
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error.value) == ["community_ids"]


async def test_hidden_posts_stay_out_of_listings_and_search(agora: Agora) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    word = f"zq{uuid.uuid4().hex[:10]}"
    keep, remove, delete = [
        await agora.post(owner, community.id, title=f"{word} {t}") for t in ("keep", "rm", "del")
    ]
    await agora.moderate(owner, remove.id, posts_pb2.MODERATION_ACTION_REMOVE)
    await agora.posts.DeletePost(
        posts_pb2.DeletePostRequest(id=delete.id), metadata=as_user(owner), timeout=5
    )
    for sort in (HOT, NEW, TOP, CONTROVERSIAL):
        for scope in ({"community_id": community.id}, {"community_ids": [community.id, owner]}):
            assert await agora.ids(**scope, sort=sort) == [keep.id]
    assert keep.id in await agora.ids(all_communities=True, sort=NEW, page_size=100)
    found = await agora.posts.SearchPosts(posts_pb2.SearchPostsRequest(query=word), timeout=5)
    assert [p.id for p in found.posts] == [keep.id]
    # Still readable by id, as placeholders.
    assert (await agora.get(remove.id)).title == "[removed]"
    assert (await agora.get(delete.id)).title == "[deleted]"


async def test_bad_paging_requests(agora: Agora) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    for i in range(3):
        await agora.post(owner, community.id, title=f"p{i}")
    page = await agora.listing(community_id=community.id, sort=NEW, page_size=1)
    assert len(page.posts) == 1
    assert page.next_page_token
    assert len((await agora.listing(community_id=community.id, sort=NEW)).posts) == 3

    cases: list[tuple[dict[str, Any], str]] = [
        ({"community_id": community.id, "page_size": 101}, "limit"),
        ({"community_id": community.id, "page_size": -1}, "limit"),
        ({"community_id": community.id, "sort": NEW, "page_token": "garbage"}, "cursor"),
        (
            {"community_id": community.id, "sort": NEW, "page_token": page.next_page_token[:-2]},
            "cursor",
        ),
        # A cursor only works for the listing it came from.
        ({"community_id": community.id, "sort": TOP, "page_token": page.next_page_token}, "cursor"),
        ({"all_communities": True, "sort": NEW, "page_token": page.next_page_token}, "cursor"),
        ({"community_id": community.id, "sort": 99}, "sort"),
        ({"community_id": community.id, "sort": TOP, "time_window": 99}, "t"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await agora.listing(**request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert violated_fields(error.value) == [field], request
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await agora.listing(community_id="not-a-uuid")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert await agora.ids(community_id=str(uuid.uuid4())) == []


# Search


async def test_search_ranks_best_match_first_and_pages(agora: Agora) -> None:
    owner = await agora.user()
    community, elsewhere = await agora.community(owner), await agora.community(owner)
    word = f"xylo{uuid.uuid4().hex[:8]}"
    in_body = await agora.post(owner, community.id, title="Instruments", body=f"A {word} is nice")
    in_title = await agora.post(owner, community.id, title=f"Wooden {word}")
    in_both = await agora.post(owner, community.id, title=f"{word}!", body=f"{word} {word} again")
    other = await agora.post(owner, elsewhere.id, title=f"{word} elsewhere")
    await agora.post(owner, community.id, title="Unrelated", body="nothing to see")

    async def search(**request: Any) -> posts_pb2.SearchPostsResponse:
        return await agora.posts.SearchPosts(posts_pb2.SearchPostsRequest(**request), timeout=5)

    scoped = await search(query=word, community_id=community.id)
    assert [p.id for p in scoped.posts] == [in_both.id, in_title.id, in_body.id]
    everywhere = await search(query=word)
    assert {p.id for p in everywhere.posts} == {in_both.id, in_title.id, in_body.id, other.id}
    assert everywhere.posts[0].id == in_both.id
    # Web search syntax: quoted phrases and exclusions.
    assert [p.id for p in (await search(query=f'"wooden {word}"')).posts] == [in_title.id]
    excluded = await search(query=f"{word} -elsewhere -instruments")
    assert {p.id for p in excluded.posts} == {in_both.id, in_title.id}

    paged: list[str] = []
    tokens: list[str] = []
    token = ""
    while True:
        page = await search(query=word, page_size=1, page_token=token)
        paged += [p.id for p in page.posts]
        token = page.next_page_token
        if not token:
            break
        tokens.append(token)
    assert paged == [p.id for p in everywhere.posts]

    for request, field in (
        ({"query": ""}, "q"),
        ({"query": "q" * 201}, "q"),
        ({"query": word, "page_size": 500}, "limit"),
        # A cursor belongs to its query and community.
        ({"query": "other words", "page_token": tokens[0]}, "cursor"),
        ({"query": word, "community_id": community.id, "page_token": tokens[0]}, "cursor"),
        ({"query": word, "page_token": tokens[0][:-3]}, "cursor"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await search(**request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(error.value) == [field]
    assert (await search(query="the and of")).posts == []  # only stop words


# Events consumed


async def test_vote_tallies_apply_only_when_newer(agora: Agora) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    post, bystander = [await agora.post(owner, community.id, title=t) for t in ("voted", "other")]

    await set_tally(agora, post.id, 7, 2, version=5)
    voted = await agora.get(post.id)
    assert (voted.score, voted.upvotes, voted.downvotes) == (5, 7, 2)

    newest = vote_cast(post.id, up=9, down=2, version=7)
    await agora.events.publish(newest)
    await eventually(lambda: _has_score(agora, post.id, 7))
    # An older version arriving late, and a replay of the newest event (same event id,
    # delivered again under a new message id), change nothing.
    await agora.events.publish(vote_cast(post.id, up=1, down=30, version=6))
    await agora.events.publish(newest, msg_id=str(uuid.uuid4()))
    # Comment tallies are not this service's business, even for a post's id.
    await agora.events.publish(
        vote_cast(post.id, up=0, down=50, version=99, target=events_pb2.VOTE_TARGET_TYPE_COMMENT)
    )
    await agora.events.publish(
        vote_cast(str(uuid.uuid4()), up=1, down=0, version=1)
    )  # unknown post
    # The consumer handles events in order: once this later one shows, the others were seen.
    await set_tally(agora, bystander.id, 1, 0)
    final = await agora.get(post.id)
    assert (final.score, final.upvotes, final.downvotes) == (7, 9, 2)

    # The ranks moved with the tally: both listings put the voted post first.
    assert (await agora.ids(community_id=community.id, sort=TOP))[0] == post.id
    assert (await agora.ids(community_id=community.id, sort=CONTROVERSIAL))[0] == post.id
    assert (await agora.ids(community_id=community.id, sort=HOT))[0] == post.id


async def _has_score(agora: Agora, post_id: str, score: int) -> bool:
    return (await agora.get(post_id)).score == score


async def test_comment_counts_follow_comment_events(agora: Agora) -> None:
    owner = await agora.user()
    community = await agora.community(owner)
    post, sentinel = await agora.post(owner, community.id), await agora.post(owner, community.id)

    def created(post_id: str, count: int) -> events_pb2.Event:
        return new_event(
            "comments",
            owner,
            comment_created=events_pb2.CommentCreated(
                comment_id=str(uuid.uuid4()),
                post_id=post_id,
                community_id=community.id,
                author_id=owner,
                post_comment_count=count,
            ),
        )

    def moderated(post_id: str, count: int) -> events_pb2.Event:
        return new_event(
            "comments",
            owner,
            comment_moderated=events_pb2.CommentModerated(
                comment_id=str(uuid.uuid4()),
                post_id=post_id,
                action="remove",
                post_comment_count=count,
            ),
        )

    first, second, third = created(post.id, 1), created(post.id, 2), created(post.id, 3)
    for event in (first, second, third):
        await agora.events.publish(event)
    await eventually(lambda: _has_comments(agora, post.id, 3))
    await agora.events.publish(
        new_event(
            "comments",
            owner,
            comment_deleted=events_pb2.CommentDeleted(
                comment_id=str(uuid.uuid4()), post_id=post.id, post_comment_count=2
            ),
        )
    )
    await eventually(lambda: _has_comments(agora, post.id, 2))

    # A replay of an applied event and events for unknown or malformed posts change
    # nothing; the later event for the sentinel shows they were all handled.
    await agora.events.publish(first, msg_id=str(uuid.uuid4()))
    await agora.events.publish(moderated(str(uuid.uuid4()), 9))
    await agora.events.publish(moderated("not-a-post", 9))
    await agora.events.publish(created(sentinel.id, 5))
    await eventually(lambda: _has_comments(agora, sentinel.id, 5))
    assert (await agora.get(post.id)).comment_count == 2

    await agora.events.publish(moderated(post.id, 0))
    await eventually(lambda: _has_comments(agora, post.id, 0))
    listed = await agora.listing(community_id=community.id, sort=NEW)
    assert [(p.id, p.comment_count) for p in listed.posts] == [(sentinel.id, 5), (post.id, 0)]


async def _has_comments(agora: Agora, post_id: str, count: int) -> bool:
    return (await agora.get(post_id)).comment_count == count


# Every listing query is served by an index


SEED_POSTS = """
INSERT INTO posts.posts (id, community_id, author_id, title, body, hot_rank, score, upvotes,
    downvotes, controversy_rank, created_at, removed, deleted, pinned)
SELECT gen_random_uuid(), ('00000000-0000-7000-8000-' || lpad(to_hex(g % 60), 12, '0'))::uuid,
    gen_random_uuid(),
    'seeded word' || (g % 50) || ' ' || (ARRAY['apple', 'banana', 'cherry'])[1 + g % 3],
    'body ' || md5(g::text),
    sign(s) * log(greatest(abs(s), 1)) + (extract(epoch FROM t) - 1134028003) / 45000,
    s, greatest(s, 0) + g % 7, greatest(-s, 0) + g % 7, (g % 13)::float, t,
    g % 37 = 0, g % 41 = 0, g % 500 = 0
FROM (SELECT g, (random() * 300 - 50)::int AS s, now() - random() * interval '400 days' AS t
      FROM generate_series(1, 6000) AS g) AS seeded
"""


def _seeded_community(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-7000-8000-{n:012x}")


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


@pytest.fixture(scope="module")
def seeded_db(db_settings: DatabaseSettings) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """A database of its own, migrated like the real one, with a few thousand posts.

    Seeded rows are committed and vacuumed, so the planner sees the statistics
    autovacuum keeps in production (a GIN index's cost is only right after a
    VACUUM), and the other tests' database never sees them.
    """
    settings = DatabaseSettings(name=f"{db_settings.name}_plans")
    spec = service("posts")
    bootstrap.ensure_database(settings, services=(spec,))

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=settings.host,
            port=settings.port,
            dbname=settings.name,
            user=spec.db_role,
            autocommit=True,
        )

    try:
        migrations.upgrade(spec, settings)
        with connect() as conn:
            conn.execute(SEED_POSTS)
            conn.execute("VACUUM ANALYZE posts.posts")
        yield connect
    finally:
        bootstrap.drop_database(settings)


def test_every_listing_and_search_query_is_served_by_an_index(
    seeded_db: Callable[[], psycopg.Connection[Any]],
) -> None:
    """EXPLAIN exactly the statements the service runs: no sequential scan of posts anywhere."""
    now = datetime.now(UTC)
    cursor_ranks: dict[Sort, Any] = {
        Sort.HOT: ranking.hot(10, 0, now - timedelta(days=30)),
        Sort.NEW: now - timedelta(days=30),
        Sort.TOP: 40,
        Sort.CONTROVERSIAL: 5.0,
    }
    windows = [timedelta(hours=1), timedelta(days=1), timedelta(days=30), None]
    statements: list[tuple[str, Any]] = []
    for scope in (
        Scope.community(_seeded_community(7)),
        Scope.feed(_seeded_community(n) for n in range(8)),
        Scope.everything(),
    ):
        for sort in Sort:
            for window in windows if sort in (Sort.TOP, Sort.CONTROVERSIAL) else [None]:
                for after in (None, (cursor_ranks[sort], uuid.uuid4())):
                    page = PageQuery(
                        sort=sort,
                        scope=scope,
                        limit=26,
                        cutoff=now - window if window else None,
                        after=after,
                        exclude_pinned=scope.single and sort is Sort.HOT,
                    )
                    label = f"{scope.key[:12]} {sort.value} window={window} after={bool(after)}"
                    statements.append((label, listing_statement(page)))
    statements.append(("pinned", pinned_statement(_seeded_community(7), 25)))
    for community in (None, _seeded_community(3)):
        for search_after in (None, (0.1, uuid.uuid4())):
            statements.append(
                (
                    f"search community={community} after={bool(search_after)}",
                    search_statement("word7", community_id=community, after=search_after, limit=26),
                )
            )

    dialect = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
    with seeded_db() as conn:
        assert conn.execute("SHOW enable_seqscan").fetchone() == ("on",)
        assert conn.execute("SELECT count(*) FROM posts.posts").fetchone() == (6000,)
        for label, statement in statements:
            compiled = statement.compile(dialect=dialect)
            row = conn.execute("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).fetchone()
            assert row is not None
            nodes = _plan_nodes(row[0][0]["Plan"])
            assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], (label, nodes)
            assert any(n.get("Index Name", "").startswith("ix_posts_") for n in nodes), (
                label,
                nodes,
            )
