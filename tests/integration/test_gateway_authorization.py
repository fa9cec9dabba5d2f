"""Who may do what, across every discussion endpoint, over HTTP.

Anonymous callers get 401 on every endpoint that needs a user; authors alone
edit and delete their posts and comments; moderators alone moderate, edit the
community and appoint moderators or ban; a banned user cannot post, comment,
vote or join there. Every refusal is a problem+json, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.gateway_support import (
    Api,
    Member,
    assert_problem,
    needs,
    register_many,
)
from tools.stack import Stack

pytestmark = needs("communities", "posts", "comments", "votes")


@dataclass(frozen=True)
class World:
    moderator: Member
    author: Member
    other: Member
    banned: Member
    community: str
    post: str
    comment: str

    def fill(self, template: str) -> str:
        return template.format(
            c=self.community,
            p=self.post,
            cm=self.comment,
            author=self.author.username,
            other=self.other.username,
        )


@pytest.fixture(scope="module")
async def world(stack: Stack) -> World:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        moderator, author, other, banned = await register_many(client, 4, "az")
        api = Api(client)
        community = (await api.community(moderator, "az"))["name"]
        post = (await api.post(author, community, "By the author"))["id"]
        comment = (await api.comment(author, post, "Also by the author"))["id"]
        await api.join(banned, community)
        answer = await client.put(
            f"/api/v1/communities/{community}/bans/{banned.username}",
            json={"reason": "test"},
            headers=moderator.auth,
        )
        assert answer.status_code == 204, answer.text
        return World(moderator, author, other, banned, community, post, comment)


NEEDS_A_USER: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/communities", {"name": "anon_c", "title": "t"}),
    ("PATCH", "/api/v1/communities/{c}", {"title": "t"}),
    ("PUT", "/api/v1/communities/{c}/membership", None),
    ("DELETE", "/api/v1/communities/{c}/membership", None),
    ("PUT", "/api/v1/communities/{c}/moderators/{other}", None),
    ("DELETE", "/api/v1/communities/{c}/moderators/{other}", None),
    ("PUT", "/api/v1/communities/{c}/bans/{other}", {"reason": "x"}),
    ("DELETE", "/api/v1/communities/{c}/bans/{other}", None),
    ("POST", "/api/v1/communities/{c}/posts", {"title": "t"}),
    ("GET", "/api/v1/feed", None),
    ("PATCH", "/api/v1/posts/{p}", {"title": "t"}),
    ("DELETE", "/api/v1/posts/{p}", None),
    ("POST", "/api/v1/posts/{p}/moderation", {"action": "lock"}),
    ("POST", "/api/v1/posts/{p}/comments", {"body": "b"}),
    ("PUT", "/api/v1/posts/{p}/vote", {"direction": 1}),
    ("PATCH", "/api/v1/comments/{cm}", {"body": "b"}),
    ("DELETE", "/api/v1/comments/{cm}", None),
    ("POST", "/api/v1/comments/{cm}/moderation", {"action": "remove"}),
    ("PUT", "/api/v1/comments/{cm}/vote", {"direction": 1}),
]
PUBLIC_READS = [
    "/api/v1/communities",
    "/api/v1/communities/{c}",
    "/api/v1/communities/{c}/posts",
    "/api/v1/posts",
    "/api/v1/posts/{p}",
    "/api/v1/posts/{p}/comments",
    "/api/v1/comments/{cm}",
    "/api/v1/search?q=author",
]
AUTHOR_ONLY: list[tuple[str, str, Any]] = [
    ("PATCH", "/api/v1/posts/{p}", {"title": "Hijacked"}),
    ("DELETE", "/api/v1/posts/{p}", None),
    ("PATCH", "/api/v1/comments/{cm}", {"body": "Hijacked"}),
    ("DELETE", "/api/v1/comments/{cm}", None),
]
MODERATORS_ONLY: list[tuple[str, str, Any]] = [
    *[("POST", "/api/v1/posts/{p}/moderation", {"action": a}) for a in ("remove", "lock", "pin")],
    ("POST", "/api/v1/comments/{cm}/moderation", {"action": "remove"}),
    ("PATCH", "/api/v1/communities/{c}", {"title": "Taken over"}),
    ("PUT", "/api/v1/communities/{c}/moderators/{other}", None),
    ("DELETE", "/api/v1/communities/{c}/moderators/{other}", None),
    ("PUT", "/api/v1/communities/{c}/bans/{other}", {"reason": "x"}),
    ("DELETE", "/api/v1/communities/{c}/bans/{other}", None),
]
BANNED: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/communities/{c}/posts", {"title": "Back again"}),
    ("POST", "/api/v1/posts/{p}/comments", {"body": "Back again"}),
    ("PUT", "/api/v1/posts/{p}/vote", {"direction": -1}),
    ("PUT", "/api/v1/comments/{cm}/vote", {"direction": -1}),
    ("PUT", "/api/v1/communities/{c}/membership", None),
]


async def _call(
    http: httpx.AsyncClient, world: World, call: tuple[str, str, Any], member: Member | None
) -> httpx.Response:
    method, template, body = call
    return await http.request(
        method,
        world.fill(template),
        json=body,
        headers=member.auth if member else {},
    )


@pytest.mark.parametrize("call", NEEDS_A_USER, ids=lambda c: f"{c[0]} {c[1]}")
async def test_anonymous_callers_get_401(
    http: httpx.AsyncClient, world: World, call: tuple[str, str, Any]
) -> None:
    answer = await _call(http, world, call, None)
    assert_problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PUBLIC_READS)
async def test_reads_are_public_but_a_bad_token_is_401(
    http: httpx.AsyncClient, world: World, path: str
) -> None:
    assert (await http.get(world.fill(path))).status_code == 200
    bad = await http.get(world.fill(path), headers={"Authorization": "Bearer not.a.token"})
    assert_problem(bad, 401)


@pytest.mark.parametrize("call", AUTHOR_ONLY, ids=lambda c: f"{c[0]} {c[1]}")
async def test_only_the_author_edits_or_deletes(
    http: httpx.AsyncClient, world: World, call: tuple[str, str, Any]
) -> None:
    for member in (world.other, world.moderator):
        assert_problem(await _call(http, world, call, member), 403)


@pytest.mark.parametrize("call", MODERATORS_ONLY, ids=lambda c: f"{c[0]} {c[1]} {c[2]}")
async def test_only_moderators_moderate(
    http: httpx.AsyncClient, world: World, call: tuple[str, str, Any]
) -> None:
    for member in (world.author, world.other):
        assert_problem(await _call(http, world, call, member), 403)


@pytest.mark.parametrize("call", BANNED, ids=lambda c: f"{c[0]} {c[1]}")
async def test_banned_users_cannot_post_comment_vote_or_join(
    http: httpx.AsyncClient, world: World, call: tuple[str, str, Any]
) -> None:
    assert_problem(await _call(http, world, call, world.banned), 403)


async def test_nothing_was_changed_by_the_refusals(api: Api, world: World) -> None:
    post = await api.get(f"/api/v1/posts/{world.post}")
    assert (post["title"], post["deleted"], post["removed"], post["locked"]) == (
        "By the author",
        False,
        False,
        False,
    )
    assert (post["score"], post["pinned"]) == (0, False)
    comment = await api.get(f"/api/v1/comments/{world.comment}")
    assert (comment["body"], comment["removed"], comment["score"]) == (
        "Also by the author",
        False,
        0,
    )
    community = await api.get(f"/api/v1/communities/{world.community}")
    assert community["moderators"] == [world.moderator.username]
    assert community["title"] == "A community"


@pytest.fixture
def api(http: httpx.AsyncClient) -> Api:
    return Api(http)
