"""GET /api/v1/search over HTTP: posts, communities and comments, best match first."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.gateway_support import (
    COMMENT_FIELDS,
    COMMUNITY_FIELDS,
    POST_FIELDS,
    Api,
    Member,
    assert_problem,
    error_fields,
    ids,
    needs,
    register_many,
    unique,
)
from tools.stack import Stack

pytestmark = needs("communities", "posts", "comments", "votes")


@pytest.fixture(scope="module")
async def users(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 2, "sr")


@pytest.fixture
def api(http: httpx.AsyncClient) -> Api:
    return Api(http)


async def test_posts_best_match_first_and_by_community(api: Api, users: list[Member]) -> None:
    owner, reader = users
    word = f"zq{uuid.uuid4().hex[:8]}"  # a word no other test writes
    here = await api.community(owner, "sh")
    there = await api.community(owner, "st")
    strong = await api.post(owner, here["name"], f"{word} {word} guide", body=f"All about {word}")
    weak = await api.post(owner, here["name"], "Gardening notes", body=f"mentions {word} once")
    elsewhere = await api.post(owner, there["name"], f"{word} elsewhere")
    await api.post(owner, here["name"], "Unrelated")

    found = await api.get("/api/v1/search", reader, q=word)
    assert set(ids(found["items"])) == {strong["id"], weak["id"], elsewhere["id"]}
    assert ids(found["items"]).index(strong["id"]) < ids(found["items"]).index(weak["id"])
    first = found["items"][0]
    assert set(first) == POST_FIELDS | {"my_vote"}
    assert first["community"] in (here["name"], there["name"])
    assert first["author"] == owner.username

    narrowed = await api.get("/api/v1/search", q=word, type="posts", community=here["name"])
    assert ids(narrowed["items"]) == [strong["id"], weak["id"]]
    assert "my_vote" not in narrowed["items"][0]
    paged = await api.all_pages("/api/v1/search", q=word, limit=1)
    assert sorted(ids(paged)) == sorted(ids(found["items"]))


async def test_communities_and_comments(api: Api, users: list[Member]) -> None:
    owner, reader = users
    word = f"zq{uuid.uuid4().hex[:8]}"
    community = await api.community(owner, "sc", title=f"The {word} club")
    post = await api.post(owner, community["name"], "A post")
    comment = await api.comment(owner, post["id"], f"I like {word} a lot")
    await api.comment(reader, post["id"], "nothing to see")

    communities = await api.get("/api/v1/search", reader, q=word, type="communities")
    assert ids(communities["items"]) == [community["id"]]
    assert set(communities["items"][0]) == COMMUNITY_FIELDS | {"is_member"}
    assert communities["items"][0]["moderators"] == [owner.username]

    comments = await api.get("/api/v1/search", reader, q=word, type="comments")
    assert ids(comments["items"]) == [comment["id"]]
    hit = comments["items"][0]
    assert set(hit) == COMMENT_FIELDS | {"my_vote"}
    assert (hit["author"], hit["post_id"], hit["replies"]) == (owner.username, post["id"], [])
    narrowed = await api.get("/api/v1/search", q=word, type="comments", community=community["name"])
    assert ids(narrowed["items"]) == [comment["id"]]


async def test_bad_queries(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    for params, status, field in (
        ({}, 422, "query.q"),
        ({"q": ""}, 422, "query.q"),
        ({"q": "x" * 201}, 422, "query.q"),
        ({"q": "   "}, 422, "q"),
        ({"q": "x", "type": "users"}, 422, "query.type"),
        ({"q": "x", "limit": 0}, 422, "query.limit"),
        ({"q": "x", "limit": 101}, 422, "query.limit"),
        ({"q": "x", "cursor": "forged"}, 400, "cursor"),
    ):
        body = assert_problem(await http.get("/api/v1/search", params=params), status)
        assert field in error_fields(body), (params, body)
    for kind in ("posts", "comments"):
        missing = await http.get(
            "/api/v1/search", params={"q": "x", "type": kind, "community": unique("nx")}
        )
        assert_problem(missing, 404)
        impossible = await http.get(
            "/api/v1/search", params={"q": "x", "type": kind, "community": "bad name"}
        )
        assert_problem(impossible, 404)
    # A cursor of one query is refused for another.
    owner = users[0]
    community = await api.community(owner, "sq")
    for i in range(2):
        await api.post(owner, community["name"], f"cursorword {i}")
    cursor = (await api.get("/api/v1/search", q="cursorword", limit=1))["next_cursor"]
    assert cursor
    other = await http.get("/api/v1/search", params={"q": "different", "cursor": cursor})
    assert_problem(other, 400)
