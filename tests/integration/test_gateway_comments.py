"""Comments over HTTP: threads and their shape, depth, edit, delete, moderation, paging."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.integration.gateway_support import (
    COMMENT_FIELDS,
    RFC3339_UTC,
    Api,
    Member,
    assert_problem,
    error_fields,
    ids,
    needs,
    register_many,
)
from tests.integration.grpc_support import eventually
from tools.stack import Stack

pytestmark = needs("communities", "posts", "comments", "votes")


@pytest.fixture(scope="module")
async def users(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 4, "ct")


@pytest.fixture
def api(http: httpx.AsyncClient) -> Api:
    return Api(http)


async def _post(api: Api, owner: Member) -> dict[str, Any]:
    community = await api.community(owner, "cc")
    return await api.post(owner, community["name"], "Discuss")


async def test_a_thread_four_levels_deep(api: Api, users: list[Member]) -> None:
    owner, a, b, reader = users
    post = await _post(api, owner)
    top = await api.comment(a, post["id"], "top")
    assert set(top) == COMMENT_FIELDS | {"my_vote"}
    assert (top["post_id"], top["parent_id"], top["depth"]) == (post["id"], None, 0)
    assert (top["author"], top["body"], top["replies"], top["more_replies"]) == (
        a.username,
        "top",
        [],
        0,
    )
    assert RFC3339_UTC.fullmatch(top["created_at"])
    assert top["edited_at"] is None
    assert (top["score"], top["upvotes"], top["downvotes"], top["my_vote"]) == (0, 0, 0, 0)
    reply = await api.comment(b, post["id"], "reply", top["id"])
    assert (reply["parent_id"], reply["depth"]) == (top["id"], 1)
    deeper = await api.comment(a, post["id"], "deeper", reply["id"])
    deepest = await api.comment(b, post["id"], "deepest", deeper["id"])
    assert deepest["depth"] == 3
    sibling = await api.comment(b, post["id"], "sibling")

    path = f"/api/v1/posts/{post['id']}/comments"
    page = await api.get(path, reader, sort="new")
    assert page["next_cursor"] is None
    assert ids(page["items"]) == [sibling["id"], top["id"]]
    tree = page["items"][1]
    assert set(tree) == COMMENT_FIELDS | {"my_vote"}
    chain = [tree, tree["replies"][0], tree["replies"][0]["replies"][0]]
    chain.append(chain[2]["replies"][0])
    assert [c["body"] for c in chain] == ["top", "reply", "deeper", "deepest"]
    assert [c["depth"] for c in chain] == [0, 1, 2, 3]
    assert [c["author"] for c in chain] == [a.username, b.username, a.username, b.username]
    assert chain[3]["replies"] == []
    assert all(c["more_replies"] == 0 and c["my_vote"] == 0 for c in chain)

    # Anonymous readers get no my_vote anywhere in the tree.
    anonymous = await api.get(path, sort="new")
    assert "my_vote" not in anonymous["items"][1]["replies"][0]["replies"][0]
    # max_depth cuts the tree and counts what it left out.
    shallow = (await api.get(path, sort="new", max_depth=1))["items"][1]
    assert shallow["replies"][0]["replies"] == []
    assert shallow["replies"][0]["more_replies"] == 2
    flat = (await api.get(path, sort="new", max_depth=0))["items"]
    assert [(c["replies"], c["more_replies"]) for c in flat] == [([], 0), ([], 3)]

    # "Continue this thread" from any comment.
    subtree = await api.get(f"/api/v1/comments/{reply['id']}", reader)
    assert subtree["id"] == reply["id"]
    assert subtree["my_vote"] == 0
    assert subtree["replies"][0]["replies"][0]["id"] == deepest["id"]
    cut = await api.get(f"/api/v1/comments/{reply['id']}", max_depth=0)
    assert (cut["replies"], cut["more_replies"]) == ([], 2)

    # The post counts its comments (from comment events) within about a second.
    async def counted() -> bool:
        return bool((await api.get(f"/api/v1/posts/{post['id']}"))["comment_count"] == 5)

    await eventually(counted)


async def test_depth_is_capped_at_ten(
    http: httpx.AsyncClient, api: Api, users: list[Member]
) -> None:
    owner = users[0]
    post = await _post(api, owner)
    parent: str | None = None
    for level in range(11):
        comment = await api.comment(owner, post["id"], f"level {level}", parent)
        assert comment["depth"] == level
        parent = comment["id"]
    too_deep = await http.post(
        f"/api/v1/posts/{post['id']}/comments",
        json={"body": "level 11", "parent_id": parent},
        headers=owner.auth,
    )
    assert error_fields(assert_problem(too_deep, 422)) == {"parent_id"}
    whole = (await api.get(f"/api/v1/posts/{post['id']}/comments"))["items"][0]
    depth = 0
    while whole["replies"]:
        whole, depth = whole["replies"][0], depth + 1
    assert depth == 10


async def test_bad_input_is_refused(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    owner = users[0]
    post = await _post(api, owner)
    other_post = await _post(api, owner)
    foreign = await api.comment(owner, other_post["id"], "elsewhere")
    path = f"/api/v1/posts/{post['id']}/comments"
    for body, field in (
        ({"body": ""}, "body"),
        ({"body": "   "}, "body"),
        ({"body": "b" * 10_001}, "body"),
        ({"body": 5}, "body"),
        ({}, "body"),
        ({"body": "x", "parent_id": "not-a-uuid"}, "parent_id"),
        ({"body": "x", "parent_id": foreign["id"]}, "parent_id"),
        ({"body": "x", "parent_id": str(uuid.uuid4())}, "parent_id"),
        ({"body": "x", "parent_id": 12}, "parent_id"),
        ({"body": "x", "score": 100}, "score"),
    ):
        answer = await http.post(path, json=body, headers=owner.auth)
        assert error_fields(assert_problem(answer, 422)) == {field}, body
    for query in (
        {"sort": "hot"},
        {"max_depth": 11},
        {"max_depth": -1},
        {"max_depth": "deep"},
        {"limit": 0},
        {"limit": 101},
    ):
        assert_problem(await http.get(path, params=query), 422)
        if "limit" not in query:
            single = await http.get(f"/api/v1/comments/{foreign['id']}", params=query)
            assert_problem(single, 422)
    for comment_id in (str(uuid.uuid4()), "nope"):
        base = f"/api/v1/comments/{comment_id}"
        assert_problem(await http.get(base), 404)
        assert_problem(await http.patch(base, json={"body": "x"}, headers=owner.auth), 404)
        assert_problem(await http.delete(base, headers=owner.auth), 404)
        moderation = await http.post(
            f"{base}/moderation", json={"action": "remove"}, headers=owner.auth
        )
        assert_problem(moderation, 404)
        vote = await http.put(f"{base}/vote", json={"direction": 1}, headers=owner.auth)
        assert_problem(vote, 404)


async def test_edit_and_delete_by_the_author(
    http: httpx.AsyncClient, api: Api, users: list[Member]
) -> None:
    owner, author, replier, other = users
    post = await _post(api, owner)
    comment = await api.comment(author, post["id"], "first draft")
    reply = await api.comment(replier, post["id"], "a reply", comment["id"])
    path = f"/api/v1/comments/{comment['id']}"

    edited = await http.patch(path, json={"body": "second draft"}, headers=author.auth)
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert set(body) == COMMENT_FIELDS | {"my_vote"}
    assert body["body"] == "second draft"
    assert RFC3339_UTC.fullmatch(body["edited_at"])
    assert body["replies"] == []
    assert body["more_replies"] == 1  # the reply is there, not carried in this answer
    assert_problem(await http.patch(path, json={"body": "mine"}, headers=other.auth), 403)
    assert_problem(await http.patch(path, json={"body": "mine"}), 401)
    for bad in ({"body": ""}, {"body": 1}, {}, {"body": "x", "parent_id": None}):
        assert_problem(await http.patch(path, json=bad, headers=author.auth), 422)

    assert_problem(await http.delete(path, headers=other.auth), 403)
    assert_problem(await http.delete(path), 401)
    deleted = await http.delete(path, headers=author.auth)
    assert deleted.status_code == 204, deleted.text
    tree = (await api.get(f"/api/v1/posts/{post['id']}/comments"))["items"][0]
    assert (tree["id"], tree["deleted"], tree["body"], tree["author"]) == (
        comment["id"],
        True,
        "[deleted]",
        "[deleted]",
    )
    assert tree["replies"][0]["id"] == reply["id"]
    assert tree["replies"][0]["author"] == replier.username
    # A deleted comment takes no edits but still takes replies.
    assert_problem(await http.patch(path, json={"body": "back"}, headers=author.auth), 409)
    await api.comment(replier, post["id"], "still talking", comment["id"])


async def test_moderation(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    moderator, author, other, _ = users
    post = await _post(api, moderator)
    comment = await api.comment(author, post["id"], "rude words")
    path = f"/api/v1/comments/{comment['id']}/moderation"

    for member in (author, other):
        answer = await http.post(path, json={"action": "remove"}, headers=member.auth)
        assert_problem(answer, 403)
    assert_problem(await http.post(path, json={"action": "remove"}), 401)
    for bad in ({"action": "lock"}, {}, {"action": "remove", "reason": "r" * 501}):
        assert_problem(await http.post(path, json=bad, headers=moderator.auth), 422)

    removed = await http.post(
        path, json={"action": "remove", "reason": "rude"}, headers=moderator.auth
    )
    assert removed.status_code == 200, removed.text
    body = removed.json()
    assert set(body) == COMMENT_FIELDS | {"my_vote"}
    assert (body["removed"], body["body"], body["author"]) == (True, "[removed]", "[deleted]")
    # A removed comment takes no replies and no votes.
    reply = await http.post(
        f"/api/v1/posts/{post['id']}/comments",
        json={"body": "me too", "parent_id": comment["id"]},
        headers=other.auth,
    )
    assert_problem(reply, 403)
    vote = await http.put(
        f"/api/v1/comments/{comment['id']}/vote", json={"direction": 1}, headers=other.auth
    )
    assert_problem(vote, 409)

    restored = await http.post(path, json={"action": "restore"}, headers=moderator.auth)
    assert restored.status_code == 200, restored.text
    assert (restored.json()["removed"], restored.json()["body"]) == (False, "rude words")
    assert restored.json()["author"] == author.username


async def test_sorts_paging_and_my_votes(
    http: httpx.AsyncClient, api: Api, users: list[Member]
) -> None:
    owner, a, b, c = users
    post = await _post(api, owner)
    made = [await api.comment(owner, post["id"], f"top {i}") for i in range(5)]
    reply = await api.comment(owner, post["id"], "a reply", made[0]["id"])
    # made[1]: +3; made[2]: +1 -1 (controversial); reply: +1 by a, -1 by b.
    for voter in (a, b, c):
        await api.vote(voter, "comments", made[1]["id"], 1)
    await api.vote(a, "comments", made[2]["id"], 1)
    await api.vote(b, "comments", made[2]["id"], -1)
    await api.vote(a, "comments", reply["id"], 1)
    await api.vote(b, "comments", reply["id"], -1)
    path = f"/api/v1/posts/{post['id']}/comments"

    async def sorted_by_votes() -> bool:
        top = ids((await api.get(path, sort="top"))["items"])
        controversial = ids((await api.get(path, sort="controversial"))["items"])
        best = ids((await api.get(path, sort="best"))["items"])
        return (top[0], controversial[0], best[0]) == (
            made[1]["id"],
            made[2]["id"],
            made[1]["id"],
        )

    await eventually(sorted_by_votes)
    new = await api.all_pages(path, sort="new", limit=2)
    assert ids(new) == [m["id"] for m in reversed(made)]

    # my_vote for every comment of the tree, per user.
    mine = {c["id"]: c for c in (await api.get(path, b, sort="new", limit=100))["items"]}
    assert mine[made[1]["id"]]["my_vote"] == 1
    assert mine[made[2]["id"]]["my_vote"] == -1
    assert mine[made[3]["id"]]["my_vote"] == 0
    assert mine[made[0]["id"]]["replies"][0]["my_vote"] == -1
    theirs = {c["id"]: c for c in (await api.get(path, a, sort="new"))["items"]}
    assert theirs[made[0]["id"]]["replies"][0]["my_vote"] == 1
    assert theirs[made[2]["id"]]["my_vote"] == 1
    single = await api.get(f"/api/v1/comments/{made[0]['id']}", b)
    assert single["replies"][0]["my_vote"] == -1

    # Tallies in the tree follow the votes.
    async def tallied() -> bool:
        tree = {c["id"]: c for c in (await api.get(path, sort="new"))["items"]}
        r = tree[made[0]["id"]]["replies"][0]
        return (r["score"], r["upvotes"], r["downvotes"]) == (0, 1, 1)

    await eventually(tallied)

    cursor = (await api.get(path, sort="new", limit=2))["next_cursor"]
    for bad in (cursor[:-3] + "xyz", "nope", cursor + "A"):
        answer = await http.get(path, params={"sort": "new", "cursor": bad})
        assert error_fields(assert_problem(answer, 400)) == {"cursor"}
    other_sort = await http.get(path, params={"sort": "top", "cursor": cursor})
    assert_problem(other_sort, 400)
