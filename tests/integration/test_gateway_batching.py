"""No call per item: a page costs a fixed number of upstream calls, whatever its size.

The proof reads the gateway's own Prometheus counters of the calls it made
(agora_grpc_client_handled_total on its /metrics) before and after one HTTP
request, so background callers of the same services (the summarizer reads
every new post) cannot blur the count: a 25-post listing by several authors asks auth once
(BatchGetUsers, never GetUser), the caller's votes once (GetMyVotes) and, for
a listing across communities, communities once (BatchGetCommunities). A comment
tree asks once for all its authors and once for all its votes, at every depth.

Usernames and community names are immutable, so the gateway keeps those it was
told (gateway.names): a page read again asks auth and communities nothing, and
a page with new authors asks once, for them. So that the first read really is
the gateway's first sight of them, these tests write their users' content
through the services' gRPC APIs (as the gateway would, as that user), not
through the gateway, which would learn the names from its own answers.

Post listings go through the gateway's response cache: the first read of a
page (a miss) also asks votes once for the page's exact tallies (GetTallies),
and a page read again is served without any call (test_gateway_edge_cache.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from agora.comments.v1 import comments_pb2, comments_pb2_grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc
from agora.posts.v1 import posts_pb2, posts_pb2_grpc

from tests.integration.gateway_support import (
    Api,
    Member,
    gateway_calls,
    needs,
    register_many,
    unique,
)
from tests.integration.grpc_support import as_user
from tools.stack import Stack

pytestmark = needs("communities", "posts", "comments", "votes")

COUNTED = ("auth", "communities", "posts", "comments", "votes")


@pytest.fixture(scope="module")
async def users(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 6, "nb")


class Behind:
    """Writes straight to the services as a user, unseen by the gateway (see the docstring)."""

    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self.communities = communities_pb2_grpc.CommunitiesServiceStub(channels["communities"])
        self.posts = posts_pb2_grpc.PostsServiceStub(channels["posts"])
        self.comments = comments_pb2_grpc.CommentsServiceStub(channels["comments"])

    async def community(self, owner: Member) -> tuple[str, str]:
        """(id, name) of a new community owner created."""
        name = unique("nb")
        answer = await self.communities.CreateCommunity(
            communities_pb2.CreateCommunityRequest(name=name, title=name, description="batching"),
            metadata=as_user(owner.id),
        )
        return answer.community.id, name

    async def post(self, author: Member, community_id: str, title: str) -> str:
        answer = await self.posts.CreatePost(
            posts_pb2.CreatePostRequest(community_id=community_id, title=title, body="b"),
            metadata=as_user(author.id),
        )
        return answer.post.id

    async def comment(self, author: Member, post_id: str, parent_id: str = "") -> str:
        answer = await self.comments.CreateComment(
            comments_pb2.CreateCommentRequest(post_id=post_id, parent_id=parent_id, body="hi"),
            metadata=as_user(author.id),
        )
        return answer.comment.id


@pytest.fixture
async def behind(stack: Stack) -> AsyncIterator[Behind]:
    names = ("communities", "posts", "comments")
    channels = {name: grpc.aio.insecure_channel(stack.address(name)) for name in names}
    try:
        yield Behind(channels)
    finally:
        for channel in channels.values():
            await channel.close(None)


async def _count_calls(
    stack: Stack, request: Any
) -> tuple[httpx.Response, dict[str, dict[str, float]]]:
    """The answer of request() and, per service and method, the calls the gateway made for it."""
    before = await gateway_calls(stack)
    answer = await request()
    after = await gateway_calls(stack)
    caused: dict[str, dict[str, float]] = {name: {} for name in COUNTED}
    for (service, method), value in after.items():
        if (delta := value - before.get((service, method), 0.0)) and service in caused:
            caused[service][method] = delta
    return answer, caused


async def test_a_page_of_posts_costs_one_call_per_lookup(
    http: httpx.AsyncClient, stack: Stack, users: list[Member], behind: Behind
) -> None:
    api = Api(http)
    reader, *authors = users
    communities = [await behind.community(authors[0]) for _ in range(3)]
    posts: list[str] = []
    for i in range(25):
        community_id = communities[i % 3][0]
        posts.append(await behind.post(authors[i % len(authors)], community_id, f"post {i}"))
    for post in posts[::3]:
        await api.vote(reader, "posts", post, 1)

    # Every community: 25 posts, 5 authors, 3 communities, several votes, none seen before.
    answer, caused = await _count_calls(
        stack,
        lambda: http.get("/api/v1/posts", params={"sort": "new", "limit": 25}, headers=reader.auth),
    )
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [item["id"] for item in items] == list(reversed(posts))
    assert {item["author"] for item in items} == {a.username for a in authors}
    assert {item["community"] for item in items} == {name for _, name in communities}
    assert sum(item["my_vote"] for item in items) == len(posts[::3])
    assert caused["auth"] == {"BatchGetUsers": 1}
    assert caused["communities"] == {"BatchGetCommunities": 1}
    assert caused["posts"] == {"ListPosts": 1}
    assert caused["votes"] == {"GetMyVotes": 1, "GetTallies": 1}

    # The same authors and communities again (a page not cached yet: 24 posts): names
    # come from the gateway's memory, and anonymous readers cost no GetMyVotes call.
    answer, caused = await _count_calls(
        stack, lambda: http.get("/api/v1/posts", params={"sort": "new", "limit": 24})
    )
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert "my_vote" not in items[0]
    assert {item["author"] for item in items} == {a.username for a in authors}
    assert caused["posts"] == {"ListPosts": 1}
    assert caused["votes"] == {"GetTallies": 1}
    assert caused["auth"] == {}
    assert caused["communities"] == {}

    # A new author and a new community: one call each, for what is new.
    newcomer = (await register_many(http, 1, "nn"))[0]
    fresh_id, fresh_name = await behind.community(authors[0])
    posts.append(await behind.post(newcomer, fresh_id, "news"))
    answer, caused = await _count_calls(
        stack, lambda: http.get("/api/v1/posts", params={"sort": "new", "limit": 23})
    )
    assert answer.status_code == 200
    first = answer.json()["items"][0]
    assert (first["id"], first["author"], first["community"]) == (
        posts[-1],
        newcomer.username,
        fresh_name,
    )
    assert caused["auth"] == {"BatchGetUsers": 1}
    assert caused["communities"] == {"BatchGetCommunities": 1}

    # One community: its name comes with the community the route looks up.
    answer, caused = await _count_calls(
        stack,
        lambda: http.get(
            f"/api/v1/communities/{communities[0][1]}/posts",
            params={"sort": "new", "limit": 25},
            headers=reader.auth,
        ),
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["items"]) == 9
    assert caused["auth"] == {}
    assert caused["communities"] == {"GetCommunity": 1}
    assert caused["posts"] == {"ListPosts": 1}
    assert caused["votes"] == {"GetMyVotes": 1, "GetTallies": 1}
    assert caused["comments"] == {}


async def test_a_page_of_communities_asks_for_its_moderators_at_once(
    http: httpx.AsyncClient, stack: Stack, users: list[Member], behind: Behind
) -> None:
    moderator = (await register_many(http, 1, "nm"))[0]
    await behind.community(moderator)

    def page(limit: int) -> Any:
        return lambda: http.get("/api/v1/communities", params={"sort": "new", "limit": limit})

    answer, caused = await _count_calls(stack, page(25))
    assert answer.status_code == 200
    assert answer.json()["items"][0]["moderators"] == [moderator.username]
    assert caused["auth"] == {"BatchGetUsers": 1}
    assert caused["communities"] == {"ListCommunities": 1}

    # Every moderator of the page is known now (24: a page not cached yet).
    answer, caused = await _count_calls(stack, page(24))
    assert answer.status_code == 200
    assert answer.json()["items"][0]["moderators"] == [moderator.username]
    assert caused["auth"] == {}
    assert caused["communities"] == {"ListCommunities": 1}


async def test_a_comment_tree_costs_one_call_per_lookup(
    http: httpx.AsyncClient, stack: Stack, users: list[Member], behind: Behind
) -> None:
    api = Api(http)
    reader = users[0]
    authors = await register_many(http, 5, "nc")  # never seen by the gateway
    community_id, _ = await behind.community(authors[0])
    post = await behind.post(authors[0], community_id, "A busy thread")
    everyone: list[str] = []
    for i in range(5):
        parent = await behind.comment(authors[i], post)
        everyone.append(parent)
        for depth in range(1, 4):
            parent = await behind.comment(authors[(i + depth) % len(authors)], post, parent)
            everyone.append(parent)
    for comment in everyone[::2]:
        await api.vote(reader, "comments", comment, -1)

    def read() -> Any:
        return http.get(f"/api/v1/posts/{post}/comments", headers=reader.auth)

    answer, caused = await _count_calls(stack, read)
    assert answer.status_code == 200, answer.text
    seen: list[dict[str, Any]] = []
    stack_ = list(answer.json()["items"])
    while stack_:
        comment = stack_.pop()
        seen.append(comment)
        stack_.extend(comment["replies"])
    assert len(seen) == 20
    assert {c["author"] for c in seen} == {a.username for a in authors}
    assert sum(c["my_vote"] for c in seen) == -len(everyone[::2])
    assert caused["auth"] == {"BatchGetUsers": 1}
    assert caused["votes"] == {"GetMyVotes": 1}
    assert caused["comments"] == {"ListCommentTree": 1}
    assert caused["posts"] == {}
    assert caused["communities"] == {}

    # The same tree again: every author is known.
    answer, caused = await _count_calls(stack, read)
    assert answer.status_code == 200
    assert caused["auth"] == {}
    assert caused["votes"] == {"GetMyVotes": 1}
    assert caused["comments"] == {"ListCommentTree": 1}

    # A reply by someone new: one call, for them.
    newcomer = (await register_many(http, 1, "nr"))[0]
    await behind.comment(newcomer, post, everyone[0])
    answer, caused = await _count_calls(stack, read)
    assert answer.status_code == 200
    authors_seen = set()
    stack_ = list(answer.json()["items"])
    while stack_:
        comment = stack_.pop()
        authors_seen.add(comment["author"])
        stack_.extend(comment["replies"])
    assert newcomer.username in authors_seen
    assert caused["auth"] == {"BatchGetUsers": 1}
