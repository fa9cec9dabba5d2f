"""Who may do what, across every endpoint that needs a user, over HTTP.

The matrix: anonymous callers get 401 on every endpoint that needs a user
(and the list is checked against the OpenAPI document, so a new endpoint
cannot be forgotten); authors alone edit and delete their posts and
comments; moderators alone moderate, edit the community and appoint
moderators or ban; a banned user cannot post, comment, vote or join there;
and each of those calls succeeds for the role that may make it. Every
refusal is a problem+json, never a 500.
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
    unique,
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
    ("POST", "/api/v1/posts/{p}/summary", None),
    ("GET", "/api/v1/users/me", None),
    ("POST", "/api/v1/auth/logout", None),
]
# Writes anyone may make: they are how a caller gets a token in the first place.
PUBLIC_WRITES = {
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
}
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


async def test_the_matrix_covers_every_endpoint_that_needs_a_user(http: httpx.AsyncClient) -> None:
    """Every operation the document marks as needing a token, and every write, is listed."""
    document = (await http.get("/openapi.json")).json()
    needs_a_user, writes = set(), set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            if operation.get("security") == [{"HTTPBearer": []}]:
                needs_a_user.add(label)
            if method in ("post", "put", "patch", "delete"):
                writes.add(label)
    listed = {_label(method, template) for method, template, _ in NEEDS_A_USER}
    assert needs_a_user == listed
    assert writes - PUBLIC_WRITES <= listed, sorted(writes - PUBLIC_WRITES - listed)


def _label(method: str, template: str) -> str:
    """("PATCH", "/api/v1/posts/{p}") -> "PATCH /api/v1/posts/{post_id}", as the document says."""
    names = {"{c}": "{name}", "{p}": "{post_id}", "{cm}": "{comment_id}", "{other}": "{username}"}
    for short, long in names.items():
        template = template.replace(short, long)
    return f"{method} {template}"


# (role, call, status): each call made by the role that may make it, in a fresh community
# where the moderator moderates, the author wrote the post and the comment, and `other`
# is a plain member.
ALLOWED: list[tuple[str, tuple[str, str, Any], int]] = [
    ("other", ("POST", "/api/v1/communities", {"name": "{fresh}", "title": "t"}), 201),
    ("moderator", ("PATCH", "/api/v1/communities/{c}", {"title": "Renamed"}), 200),
    ("other", ("DELETE", "/api/v1/communities/{c}/membership", None), 204),
    ("moderator", ("PUT", "/api/v1/communities/{c}/moderators/{other}", None), 204),
    ("moderator", ("PUT", "/api/v1/communities/{c}/bans/{other}", {"reason": "x"}), 204),
    ("other", ("POST", "/api/v1/communities/{c}/posts", {"title": "t"}), 201),
    ("author", ("PATCH", "/api/v1/posts/{p}", {"title": "Edited"}), 200),
    ("author", ("DELETE", "/api/v1/posts/{p}", None), 204),
    *[
        ("moderator", ("POST", "/api/v1/posts/{p}/moderation", {"action": a}), 200)
        for a in ("remove", "lock", "pin")
    ],
    ("other", ("POST", "/api/v1/posts/{p}/comments", {"body": "b"}), 201),
    ("other", ("PUT", "/api/v1/posts/{p}/vote", {"direction": 1}), 200),
    ("author", ("PATCH", "/api/v1/comments/{cm}", {"body": "Edited"}), 200),
    ("author", ("DELETE", "/api/v1/comments/{cm}", None), 204),
    ("moderator", ("POST", "/api/v1/comments/{cm}/moderation", {"action": "remove"}), 200),
    ("other", ("PUT", "/api/v1/comments/{cm}/vote", {"direction": -1}), 200),
    ("other", ("POST", "/api/v1/posts/{p}/summary", None), 202),
]


@pytest.mark.parametrize(
    ("role", "call", "status"), ALLOWED, ids=lambda v: v if isinstance(v, str) else None
)
async def test_the_role_that_may_do_it_succeeds(
    http: httpx.AsyncClient, world: World, role: str, call: tuple[str, str, Any], status: int
) -> None:
    api = Api(http)
    community = (await api.community(world.moderator, "az"))["name"]
    post = (await api.post(world.author, community, "Fresh"))["id"]
    comment = (await api.comment(world.author, post, "Fresh"))["id"]
    await api.join(world.other, community)
    fresh = World(
        world.moderator, world.author, world.other, world.banned, community, post, comment
    )
    method, template, body = call
    if isinstance(body, dict) and body.get("name") == "{fresh}":
        body = {**body, "name": unique("az")}
    member = {"moderator": world.moderator, "author": world.author, "other": world.other}[role]
    answer = await _call(http, fresh, (method, template, body), member)
    assert answer.status_code == status, answer.text


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
