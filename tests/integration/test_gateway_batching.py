"""No call per item: a page costs a fixed number of upstream calls, whatever its size.

The proof reads the gateway's own Prometheus counters of the calls it made
(agora_grpc_client_handled_total on its /metrics) before and after one HTTP
request, so background callers of the same services (the summarizer reads
every new post) cannot blur the count: a 25-post listing by several authors asks auth once
(BatchGetUsers, never GetUser), the caller's votes once (GetMyVotes) and, for
a listing across communities, communities once (BatchGetCommunities). A comment
tree asks once for all its authors and once for all its votes, at every depth.

Post listings go through the gateway's response cache: the first read of a
page (a miss) also asks votes once for the page's exact tallies (GetTallies),
and a page read again is served without any call (test_gateway_edge_cache.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.gateway_support import (
    Api,
    Member,
    gateway_calls,
    needs,
    register_many,
)
from tools.stack import Stack

pytestmark = needs("communities", "posts", "comments", "votes")

COUNTED = ("auth", "communities", "posts", "comments", "votes")


@pytest.fixture(scope="module")
async def users(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 6, "nb")


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
    http: httpx.AsyncClient, stack: Stack, users: list[Member]
) -> None:
    api = Api(http)
    reader, *authors = users
    communities = [(await api.community(authors[0], "nb"))["name"] for _ in range(3)]
    posts: list[dict[str, Any]] = []
    for i in range(25):
        posts.append(await api.post(authors[i % len(authors)], communities[i % 3], f"post {i}"))
    for post in posts[::3]:
        await api.vote(reader, "posts", post["id"], 1)

    # One community: its name is known, so communities is asked only for the community.
    answer, caused = await _count_calls(
        stack,
        lambda: http.get(
            f"/api/v1/communities/{communities[0]}/posts",
            params={"sort": "new", "limit": 25},
            headers=reader.auth,
        ),
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["items"]) == 9
    assert caused["auth"] == {"BatchGetUsers": 1}
    assert caused["communities"] == {"GetCommunity": 1}
    assert caused["posts"] == {"ListPosts": 1}
    assert caused["votes"] == {"GetMyVotes": 1, "GetTallies": 1}
    assert caused["comments"] == {}

    # Every community: 25 posts, 5 authors, 3 communities, several votes.
    answer, caused = await _count_calls(
        stack,
        lambda: http.get("/api/v1/posts", params={"sort": "new", "limit": 25}, headers=reader.auth),
    )
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [item["id"] for item in items] == [post["id"] for post in reversed(posts)]
    assert {item["author"] for item in items} == {a.username for a in authors}
    assert {item["community"] for item in items} == set(communities)
    assert sum(item["my_vote"] for item in items) == len(posts[::3])
    assert caused["auth"] == {"BatchGetUsers": 1}
    assert caused["communities"] == {"BatchGetCommunities": 1}
    assert caused["posts"] == {"ListPosts": 1}
    assert caused["votes"] == {"GetMyVotes": 1, "GetTallies": 1}

    # Anonymous readers cost no GetMyVotes call (a page not cached yet: 24 posts).
    answer, caused = await _count_calls(
        stack, lambda: http.get("/api/v1/posts", params={"sort": "new", "limit": 24})
    )
    assert answer.status_code == 200
    assert "my_vote" not in answer.json()["items"][0]
    assert caused["votes"] == {"GetTallies": 1}
    assert caused["auth"] == {"BatchGetUsers": 1}

    # A page of communities asks for all of their moderators at once.
    answer, caused = await _count_calls(
        stack, lambda: http.get("/api/v1/communities", params={"sort": "new", "limit": 25})
    )
    assert answer.status_code == 200
    assert caused["auth"] == {"BatchGetUsers": 1}
    assert caused["communities"] == {"ListCommunities": 1}


async def test_a_comment_tree_costs_one_call_per_lookup(
    http: httpx.AsyncClient, stack: Stack, users: list[Member]
) -> None:
    api = Api(http)
    reader, *authors = users
    community = (await api.community(authors[0], "nt"))["name"]
    post = await api.post(authors[0], community, "A busy thread")
    everyone: list[dict[str, Any]] = []
    for i in range(5):
        parent = await api.comment(authors[i], post["id"], f"top {i}")
        everyone.append(parent)
        for depth in range(1, 4):
            parent = await api.comment(
                authors[(i + depth) % len(authors)], post["id"], f"depth {depth}", parent["id"]
            )
            everyone.append(parent)
    for comment in everyone[::2]:
        await api.vote(reader, "comments", comment["id"], -1)

    answer, caused = await _count_calls(
        stack,
        lambda: http.get(f"/api/v1/posts/{post['id']}/comments", headers=reader.auth),
    )
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
