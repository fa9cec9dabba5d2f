"""PUT /api/v1/posts/{id}/vote and /comments/{id}/vote over HTTP: exact answers,
idempotency keys, my_vote per user, listings catching up, and bad input."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.integration.gateway_support import (
    Api,
    Member,
    assert_problem,
    error_fields,
    needs,
    register_many,
)
from tests.integration.grpc_support import eventually
from tools.stack import Stack

pytestmark = needs("communities", "posts", "comments", "votes")


@pytest.fixture(scope="module")
async def users(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 4, "vt")


@pytest.fixture
def api(http: httpx.AsyncClient) -> Api:
    return Api(http)


@pytest.fixture
async def post(api: Api, users: list[Member]) -> dict[str, Any]:
    community = await api.community(users[0], "vp")
    return await api.post(users[0], community["name"], "Vote on me")


def _tally(score: int, up: int, down: int, mine: int) -> dict[str, int]:
    return {"score": score, "upvotes": up, "downvotes": down, "my_vote": mine}


@pytest.mark.parametrize("kind", ["posts", "comments"])
async def test_answers_are_exact(
    http: httpx.AsyncClient, api: Api, users: list[Member], post: dict[str, Any], kind: str
) -> None:
    author, b, c, _ = users
    target = post if kind == "posts" else await api.comment(author, post["id"], "Vote too")
    path = f"/api/v1/{kind}/{target['id']}/vote"

    async def vote(voter: Member, direction: int) -> dict[str, Any]:
        answer = await http.put(path, json={"direction": direction}, headers=voter.auth)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        body: dict[str, Any] = answer.json()
        return body

    assert await vote(b, 1) == _tally(1, 1, 0, 1)
    assert await vote(b, 1) == _tally(1, 1, 0, 1)  # the same vote again changes nothing
    assert await vote(b, -1) == _tally(-1, 0, 1, -1)  # up to down moves the score by 2
    assert await vote(c, 1) == _tally(0, 1, 1, 1)
    assert await vote(b, 0) == _tally(1, 1, 0, 0)  # 0 withdraws
    assert await vote(b, 0) == _tally(1, 1, 0, 0)

    # Readers see the tally within about a second, and each user their own vote.
    one = f"/api/v1/{kind}/{target['id']}"

    async def caught_up() -> bool:
        seen = await api.get(one)
        return (seen["score"], seen["upvotes"], seen["downvotes"]) == (1, 1, 0)

    await eventually(caught_up)
    assert (await api.get(one, c))["my_vote"] == 1
    assert (await api.get(one, b))["my_vote"] == 0
    assert (await api.get(one, author))["my_vote"] == 0
    assert "my_vote" not in await api.get(one)
    # Nobody votes on their own post or comment.
    own = await http.put(path, json={"direction": 1}, headers=author.auth)
    assert_problem(own, 403)


async def test_listings_reflect_votes_within_two_seconds(
    api: Api, users: list[Member], post: dict[str, Any]
) -> None:
    _, b, c, d = users
    for voter in (b, c, d):
        await api.vote(voter, "posts", post["id"], 1)
    community = post["community"]

    async def listed() -> dict[str, Any] | None:
        page = await api.get(f"/api/v1/communities/{community}/posts", b, sort="top", t="all")
        (item,) = page["items"]
        return item if item["score"] == 3 else None

    item = await eventually(listed, within=2.0)
    assert (item["upvotes"], item["downvotes"], item["my_vote"]) == (3, 0, 1)


async def test_idempotency_key_replays_the_first_answer(
    http: httpx.AsyncClient, users: list[Member], post: dict[str, Any]
) -> None:
    _, b, c, _ = users
    path = f"/api/v1/posts/{post['id']}/vote"
    key = {"Idempotency-Key": f"vote-{uuid.uuid4()}"}
    first = await http.put(path, json={"direction": 1}, headers={**b.auth, **key})
    assert first.json() == _tally(1, 1, 0, 1)
    # Someone else votes; a replay of b's request still answers the first tally.
    await http.put(path, json={"direction": -1}, headers=c.auth)
    replay = await http.put(path, json={"direction": 1}, headers={**b.auth, **key})
    assert replay.status_code == 200, replay.text
    assert replay.json() == first.json()
    # The key names that one request: reusing it for another vote is a conflict.
    other = await http.put(path, json={"direction": -1}, headers={**b.auth, **key})
    assert_problem(other, 409)
    # A new key votes afresh.
    fresh = await http.put(
        path, json={"direction": 0}, headers={**b.auth, "Idempotency-Key": "another-key"}
    )
    assert fresh.json() == _tally(-1, 0, 1, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"direction": 2},
        {"direction": -2},
        {"direction": "1"},
        {"direction": 1.0},
        {"direction": True},
        {"direction": None},
        {},
        {"direction": 1, "weight": 5},
        [1],
    ],
)
async def test_bad_directions_are_422(
    http: httpx.AsyncClient, users: list[Member], post: dict[str, Any], body: object
) -> None:
    answer = await http.put(f"/api/v1/posts/{post['id']}/vote", json=body, headers=users[1].auth)
    problem = assert_problem(answer, 422)
    assert error_fields(problem) <= {"direction", "weight", "body"}


@pytest.mark.parametrize("key", ["", "k" * 256, "naïve", "tab\there"])
async def test_bad_idempotency_keys_are_422(
    users: list[Member], post: dict[str, Any], stack: Stack, key: str
) -> None:
    # Raw header bytes: httpx would refuse to encode some of these itself.
    headers = [
        (b"Authorization", users[1].auth["Authorization"].encode()),
        (b"Idempotency-Key", key.encode("utf-8")),
    ]
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        answer = await client.put(
            f"/api/v1/posts/{post['id']}/vote", json={"direction": 1}, headers=headers
        )
    assert error_fields(assert_problem(answer, 422)) == {"header.Idempotency-Key"}


async def test_unknown_and_anonymous(http: httpx.AsyncClient, users: list[Member]) -> None:
    for kind in ("posts", "comments"):
        for target in (str(uuid.uuid4()), "nope"):
            answer = await http.put(
                f"/api/v1/{kind}/{target}/vote", json={"direction": 1}, headers=users[0].auth
            )
            assert_problem(answer, 404)
        anonymous = await http.put(f"/api/v1/{kind}/{uuid.uuid4()}/vote", json={"direction": 1})
        assert_problem(anonymous, 401)
