"""Posts over HTTP: create, read, edit, delete, moderate; the listings, the feed and paging."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.gateway_support import (
    POST_FIELDS,
    RFC3339_UTC,
    Api,
    Member,
    assert_problem,
    error_fields,
    ids,
    needs,
    register_many,
    unique,
)
from tests.integration.grpc_support import eventually
from tools.stack import Stack

pytestmark = needs("communities", "posts", "comments", "votes")


@pytest.fixture(scope="module")
async def users(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 4, "ps")


@pytest.fixture
def api(http: httpx.AsyncClient) -> Api:
    return Api(http)


async def test_create_and_read(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    author, reader = users[0], users[1]
    community = await api.community(author, "pc")
    name = community["name"]
    created = await http.post(
        f"/api/v1/communities/{name}/posts",
        json={"title": "  Hello  ", "body": "First!", "url": "https://example.com/a?b=c"},
        headers=author.auth,
    )
    assert created.status_code == 201, created.text
    post = created.json()
    assert created.headers["location"] == f"/api/v1/posts/{post['id']}"
    assert set(post) == POST_FIELDS | {"my_vote"}
    assert post["community"] == name
    assert post["author"] == author.username
    assert post["title"] == "Hello"
    assert post["body"] == "First!"
    assert post["url"] == "https://example.com/a?b=c"
    assert (post["score"], post["upvotes"], post["downvotes"], post["comment_count"]) == (
        0,
        0,
        0,
        0,
    )
    assert RFC3339_UTC.fullmatch(post["created_at"])
    assert post["edited_at"] is None
    assert not any(post[flag] for flag in ("locked", "removed", "pinned", "deleted"))
    assert post["my_vote"] == 0

    anonymous = await api.get(f"/api/v1/posts/{post['id']}")
    assert set(anonymous) == POST_FIELDS
    assert anonymous == {k: v for k, v in post.items() if k != "my_vote"}
    assert (await api.get(f"/api/v1/posts/{post['id']}", reader))["my_vote"] == 0
    # A post without a link has url null; the canonical id form is accepted.
    text = await api.post(author, name, "Text only", body="Body")
    assert text["url"] is None
    upper = await api.get(f"/api/v1/posts/{text['id'].upper()}")
    assert upper["id"] == text["id"]


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "   "},
        {"title": "t" * 301},
        {"title": 1},
        {"title": "t", "body": "b" * 40_001},
        {"title": "t", "url": "ftp://example.com/x"},
        {"title": "t", "url": "javascript:alert(1)"},
        {"title": "t", "url": "u" * 2_001},
        {"title": "t", "flair": "x"},
        {"body": "no title"},
        "just a string",
    ],
)
async def test_create_refuses_bad_input(
    http: httpx.AsyncClient, api: Api, users: list[Member], body: object
) -> None:
    community = await api.community(users[0], "pb")
    answer = await http.post(
        f"/api/v1/communities/{community['name']}/posts", json=body, headers=users[0].auth
    )
    assert_problem(answer, 422)


async def test_unknown_posts_are_404(http: httpx.AsyncClient, users: list[Member]) -> None:
    member = users[0]
    for post_id in (str(uuid.uuid4()), "not-a-uuid", "1", "%20"):
        base = f"/api/v1/posts/{post_id}"
        assert_problem(await http.get(base), 404)
        assert_problem(await http.patch(base, json={"title": "x"}, headers=member.auth), 404)
        assert_problem(await http.delete(base, headers=member.auth), 404)
        moderation = await http.post(
            f"{base}/moderation", json={"action": "lock"}, headers=member.auth
        )
        assert_problem(moderation, 404)
        assert_problem(await http.get(f"{base}/comments"), 404)
        comment = await http.post(f"{base}/comments", json={"body": "x"}, headers=member.auth)
        assert_problem(comment, 404)
        vote = await http.put(f"{base}/vote", json={"direction": 1}, headers=member.auth)
        assert_problem(vote, 404)
    nowhere = await http.post(
        f"/api/v1/communities/{unique('nx')}/posts", json={"title": "t"}, headers=member.auth
    )
    assert_problem(nowhere, 404)


async def test_edit_by_author_only(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    author, other = users[0], users[1]
    community = await api.community(author, "pe")
    post = await api.post(author, community["name"], "Original", body="Old body")
    path = f"/api/v1/posts/{post['id']}"

    edited = await http.patch(path, json={"body": "New body"}, headers=author.auth)
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["body"] == "New body"
    assert body["title"] == "Original"
    assert RFC3339_UTC.fullmatch(body["edited_at"])
    assert body["edited_at"] >= body["created_at"]
    assert body["my_vote"] == 0
    retitled = (await http.patch(path, json={"title": "Renamed"}, headers=author.auth)).json()
    assert (retitled["title"], retitled["body"]) == ("Renamed", "New body")

    assert_problem(await http.patch(path, json={"title": "Hijack"}, headers=other.auth), 403)
    assert_problem(await http.patch(path, json={"title": "Hijack"}), 401)
    for bad in ({"title": ""}, {"title": None, "body": 3}, {"url": "https://x.example"}):
        assert_problem(await http.patch(path, json=bad, headers=author.auth), 422)
    assert (await api.get(path))["title"] == "Renamed"


async def test_delete_keeps_the_thread(
    http: httpx.AsyncClient, api: Api, users: list[Member]
) -> None:
    author, commenter, other = users[0], users[1], users[2]
    community = await api.community(author, "pd")
    post = await api.post(author, community["name"], "To be deleted", body="Secret")
    comment = await api.comment(commenter, post["id"], "Still here")
    path = f"/api/v1/posts/{post['id']}"

    assert_problem(await http.delete(path, headers=other.auth), 403)
    assert_problem(await http.delete(path), 401)
    deleted = await http.delete(path, headers=author.auth)
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""

    shown = await api.get(path)
    assert shown["deleted"] is True
    assert shown["author"] == "[deleted]"
    assert shown["title"] == "[deleted]"
    assert shown["body"] == ""
    assert shown["url"] is None
    thread = await api.get(f"{path}/comments")
    assert ids(thread["items"]) == [comment["id"]]
    assert thread["items"][0]["body"] == "Still here"
    # A deleted post is no longer edited, voted on or commented on.
    assert_problem(await http.patch(path, json={"title": "Back"}, headers=author.auth), 409)
    assert_problem(await http.put(f"{path}/vote", json={"direction": 1}, headers=other.auth), 409)
    assert_problem(
        await http.post(f"{path}/comments", json={"body": "late"}, headers=other.auth), 403
    )


async def test_moderation(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    moderator, author, other = users[0], users[1], users[2]
    community = await api.community(moderator, "pm")
    name = community["name"]
    older = await api.post(author, name, "Older")
    post = await api.post(author, name, "Newer")
    path = f"/api/v1/posts/{post['id']}/moderation"

    async def act(action: str, **extra: Any) -> dict[str, Any]:
        answer = await http.post(path, json={"action": action, **extra}, headers=moderator.auth)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        assert set(result) == POST_FIELDS | {"my_vote"}
        return result

    assert (await act("lock", reason="heated"))["locked"] is True
    assert_problem(
        await http.post(
            f"/api/v1/posts/{post['id']}/comments", json={"body": "x"}, headers=other.auth
        ),
        403,
    )
    assert (await act("unlock"))["locked"] is False
    # Pinning an older post puts it first in the community's hot listing.
    pinned = await http.post(
        f"/api/v1/posts/{older['id']}/moderation", json={"action": "pin"}, headers=moderator.auth
    )
    assert pinned.json()["pinned"] is True
    hot = await api.get(f"/api/v1/communities/{name}/posts", sort="hot")
    assert ids(hot["items"])[:2] == [older["id"], post["id"]]
    unpinned = await http.post(
        f"/api/v1/posts/{older['id']}/moderation", json={"action": "unpin"}, headers=moderator.auth
    )
    assert unpinned.json()["pinned"] is False

    removed = await act("remove", reason="off topic")
    assert removed["removed"] is True
    assert removed["title"] == "[removed]"
    assert_problem(
        await http.post(
            f"/api/v1/posts/{post['id']}/comments", json={"body": "x"}, headers=other.auth
        ),
        403,
    )
    restored = await act("restore")
    assert (restored["removed"], restored["title"]) == (False, "Newer")

    for member in (author, other):
        assert_problem(await http.post(path, json={"action": "lock"}, headers=member.auth), 403)
    assert_problem(await http.post(path, json={"action": "lock"}), 401)
    for bad in ({"action": "ban"}, {}, {"action": "lock", "reason": "r" * 501}, {"action": 1}):
        assert_problem(await http.post(path, json=bad, headers=moderator.auth), 422)


async def test_listings_sort_and_window(
    http: httpx.AsyncClient, api: Api, users: list[Member]
) -> None:
    owner, voter_a, voter_b, reader = users
    community = await api.community(owner, "pl")
    name = community["name"]
    first = await api.post(owner, name, "first")
    second = await api.post(owner, name, "second")
    third = await api.post(owner, name, "third")
    await api.vote(voter_a, "posts", first["id"], 1)
    await api.vote(voter_b, "posts", first["id"], 1)
    await api.vote(voter_a, "posts", second["id"], 1)
    await api.vote(voter_b, "posts", second["id"], -1)
    path = f"/api/v1/communities/{name}/posts"

    # Listings catch up with the votes from their events within about a second.
    async def ranked() -> bool:
        top = ids((await api.get(path, sort="top", t="all"))["items"])
        controversial = ids((await api.get(path, sort="controversial", t="day"))["items"])
        return top[0] == first["id"] and controversial[0] == second["id"]

    await eventually(ranked)
    new = ids((await api.get(path, sort="new"))["items"])
    assert new == [third["id"], second["id"], first["id"]]
    for t in ("hour", "day", "week", "month", "year", "all"):
        top = await api.get(path, sort="top", t=t)
        assert ids(top["items"])[0] == first["id"], t
    scores = {item["id"]: item for item in (await api.get(path, reader, sort="new"))["items"]}
    assert (scores[first["id"]]["score"], scores[first["id"]]["upvotes"]) == (2, 2)
    assert (scores[second["id"]]["upvotes"], scores[second["id"]]["downvotes"]) == (1, 1)
    assert all(item["my_vote"] == 0 for item in scores.values())
    mine = {item["id"]: item["my_vote"] for item in (await api.get(path, voter_b))["items"]}
    assert (mine[first["id"]], mine[second["id"]], mine[third["id"]]) == (1, -1, 0)

    everywhere = await api.get("/api/v1/posts", voter_a, sort="new", limit=100)
    mine_everywhere = {i["id"]: i for i in everywhere["items"]}
    assert mine_everywhere[first["id"]]["community"] == name
    assert mine_everywhere[first["id"]]["my_vote"] == 1

    for query in (
        {"sort": "best"},
        {"t": "decade"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
    ):
        assert_problem(await http.get(path, params=query), 422)
        assert_problem(await http.get("/api/v1/posts", params=query), 422)


async def test_paging_neither_repeats_nor_skips_while_posts_arrive(
    http: httpx.AsyncClient, api: Api, users: list[Member]
) -> None:
    owner = users[0]
    community = await api.community(owner, "pp")
    name = community["name"]
    original = [(await api.post(owner, name, f"post {i}"))["id"] for i in range(12)]
    path = f"/api/v1/communities/{name}/posts"

    for sort in ("new", "hot", "top"):
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 5}
            if cursor:
                params["cursor"] = cursor
            page = await api.get(path, **params)
            seen += ids(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            # Newer posts arrive between pages; they belong before the cursor.
            await api.post(owner, name, f"arrived during {sort}")
        assert len(seen) == len(set(seen)), sort
        assert [post_id for post_id in seen if post_id in original] == sorted(
            original, reverse=True
        ), sort
        assert set(original) <= set(seen), sort


async def test_tampered_cursor_is_400(
    http: httpx.AsyncClient, api: Api, users: list[Member]
) -> None:
    owner = users[0]
    community = await api.community(owner, "pt")
    for i in range(3):
        await api.post(owner, community["name"], f"p{i}")
    path = f"/api/v1/communities/{community['name']}/posts"
    cursor = (await api.get(path, sort="new", limit=1))["next_cursor"]
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    for bad_path, params in (
        (path, {"sort": "new", "cursor": flipped}),
        (path, {"sort": "new", "cursor": "not a cursor"}),
        (path, {"sort": "top", "cursor": cursor}),  # another listing's cursor
        ("/api/v1/posts", {"sort": "new", "cursor": cursor}),
        (path, {"sort": "new", "cursor": "c" * 5000}),
    ):
        body = assert_problem(await http.get(bad_path, params=params), 400)
        assert error_fields(body) == {"cursor"}


async def test_feed(http: httpx.AsyncClient, api: Api, stack: Stack) -> None:
    owner, reader = await register_many(http, 2, "fd")
    joined = await api.community(owner, "fj")
    other = await api.community(owner, "fo")
    assert_problem(await http.get("/api/v1/feed"), 401)
    empty = await api.get("/api/v1/feed", reader)
    assert empty == {"items": [], "next_cursor": None}

    wanted = [await api.post(owner, joined["name"], f"joined {i}") for i in range(3)]
    await api.post(owner, other["name"], "not in the feed")
    await api.join(reader, joined["name"])
    feed = await api.all_pages("/api/v1/feed", reader, sort="new", limit=2)
    assert ids(feed) == [post["id"] for post in reversed(wanted)]
    assert all(item["community"] == joined["name"] and item["my_vote"] == 0 for item in feed)
    # The creator is a member of both.
    both = await api.get("/api/v1/feed", owner, sort="new", limit=100)
    assert {item["community"] for item in both["items"]} == {joined["name"], other["name"]}
    for query in ({"sort": "rising"}, {"limit": 0}, {"t": "never"}):
        assert_problem(await http.get("/api/v1/feed", params=query, headers=reader.auth), 422)
    await asyncio.sleep(0)
