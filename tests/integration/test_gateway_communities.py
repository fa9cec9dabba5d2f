"""/api/v1/communities over HTTP: create, read, list, update, membership, moderators, bans."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.gateway_support import (
    COMMUNITY_FIELDS,
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
from tools.stack import Stack

pytestmark = needs("communities")


@pytest.fixture(scope="module")
async def users(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 4, "cm")


@pytest.fixture
def api(http: httpx.AsyncClient) -> Api:
    return Api(http)


@pytest.fixture
async def anonymous(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        yield client


async def test_create_and_read(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    owner, other = users[0], users[1]
    name = unique("Py")
    rules = [{"title": "Be kind", "description": "No personal attacks."}, {"title": "On topic"}]
    created = await http.post(
        "/api/v1/communities",
        json={"name": name, "title": "Python", "description": "All things Python", "rules": rules},
        headers=owner.auth,
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    community = created.json()
    assert set(community) == COMMUNITY_FIELDS | {"is_member"}
    assert created.headers["location"] == f"/api/v1/communities/{name}"
    assert community["name"] == name
    assert community["title"] == "Python"
    assert community["description"] == "All things Python"
    assert community["rules"] == [
        {"title": "Be kind", "description": "No personal attacks."},
        {"title": "On topic", "description": ""},
    ]
    assert RFC3339_UTC.fullmatch(community["created_at"])
    assert community["member_count"] == 1
    assert community["post_count"] == 0
    assert community["moderators"] == [owner.username]
    assert community["is_member"] is True

    # Anonymous readers get no is_member; other users get theirs.
    anonymous = await api.get(f"/api/v1/communities/{name}")
    assert set(anonymous) == COMMUNITY_FIELDS
    assert {k: v for k, v in community.items() if k != "is_member"} == anonymous
    assert (await api.get(f"/api/v1/communities/{name}", other))["is_member"] is False
    # Names are case-insensitive, in paths as on creation.
    assert (await api.get(f"/api/v1/communities/{name.upper()}"))["id"] == community["id"]
    taken = await http.post(
        "/api/v1/communities",
        json={"name": name.lower(), "title": "Again", "description": ""},
        headers=other.auth,
    )
    assert error_fields(assert_problem(taken, 409)) == {"name"}


async def test_unknown_and_impossible_names_are_404(api: Api, http: httpx.AsyncClient) -> None:
    for name in (unique("nope"), "x", "no-dashes", "a" * 22, "%C3%A9t%C3%A9"):
        assert_problem(await http.get(f"/api/v1/communities/{name}"), 404)
        assert_problem(await http.get(f"/api/v1/communities/{name}/posts"), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "ab", "title": "t"},
        {"name": "has space", "title": "t"},
        {"name": "x" * 22, "title": "t"},
        {"name": "okname_1", "title": ""},
        {"name": "okname_1", "title": "t" * 101},
        {"name": "okname_1", "title": 7},
        {"name": "okname_1", "title": "t", "description": "d" * 10_001},
        {"name": "okname_1", "title": "t", "rules": [{"title": ""}]},
        {"name": "okname_1", "title": "t", "rules": [{"title": "r"}] * 16},
        {"name": "okname_1", "title": "t", "colour": "red"},
        {"title": "t"},
        [],
    ],
)
async def test_create_refuses_bad_input(
    http: httpx.AsyncClient, users: list[Member], body: object
) -> None:
    assert_problem(await http.post("/api/v1/communities", json=body, headers=users[0].auth), 422)


async def test_create_refuses_non_json_and_anonymous(
    http: httpx.AsyncClient, users: list[Member]
) -> None:
    broken = await http.post(
        "/api/v1/communities",
        content=b"{",
        headers={**users[0].auth, "Content-Type": "application/json"},
    )
    assert_problem(broken, 400)
    form = await http.post(
        "/api/v1/communities", data={"name": "formname", "title": "t"}, headers=users[0].auth
    )
    assert_problem(form, 415)
    anonymous = await http.post("/api/v1/communities", json={"name": "anonname", "title": "t"})
    assert_problem(anonymous, 401)


async def test_list_new_and_popular_with_paging(api: Api, users: list[Member]) -> None:
    owner, a, b, c = users
    made = [await api.community(owner, "ls") for _ in range(3)]
    # The last one made gets the most members.
    for member in (a, b, c):
        await api.join(member, made[-1]["name"])

    newest = await api.get("/api/v1/communities", sort="new", limit=2)
    assert len(newest["items"]) == 2
    assert ids(newest["items"]) == [made[2]["id"], made[1]["id"]]
    assert newest["next_cursor"]
    second = await api.get("/api/v1/communities", sort="new", limit=2, cursor=newest["next_cursor"])
    assert second["items"][0]["id"] == made[0]["id"]

    everything = await api.all_pages("/api/v1/communities", owner, sort="new", limit=3)
    seen = ids(everything)
    assert len(seen) == len(set(seen))
    assert {m["id"] for m in made} <= set(seen)
    assert all(item["is_member"] is True for item in everything if item["id"] in seen[:3])

    popular = await api.all_pages("/api/v1/communities", limit=100)
    counts = [item["member_count"] for item in popular]
    assert counts == sorted(counts, reverse=True)
    assert "is_member" not in popular[0]


@pytest.mark.parametrize(
    "query",
    [{"sort": "hot"}, {"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"limit": 1.5}],
)
async def test_list_refuses_bad_queries(http: httpx.AsyncClient, query: dict[str, object]) -> None:
    body = assert_problem(await http.get("/api/v1/communities", params=query), 422)
    assert error_fields(body) <= {"query.sort", "query.limit"}


async def test_tampered_cursor_is_400(
    api: Api, http: httpx.AsyncClient, users: list[Member]
) -> None:
    for _ in range(2):
        await api.community(users[0], "cur")
    page = await api.get("/api/v1/communities", sort="new", limit=1)
    cursor = page["next_cursor"]
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for bad in (flipped, "garbage", "x" * 2000):
        answer = await http.get("/api/v1/communities", params={"sort": "new", "cursor": bad})
        assert error_fields(assert_problem(answer, 400)) == {"cursor"}
    # A cursor of one listing is refused by another.
    other = await http.get("/api/v1/communities", params={"sort": "popular", "cursor": cursor})
    assert_problem(other, 400)


async def test_update_by_moderators_only(
    http: httpx.AsyncClient, api: Api, users: list[Member]
) -> None:
    owner, other = users[0], users[1]
    community = await api.community(owner, "up", rules=[{"title": "Old rule"}])
    path = f"/api/v1/communities/{community['name']}"

    changed = await http.patch(
        path, json={"title": "New title", "rules": [{"title": "New rule"}]}, headers=owner.auth
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["title"] == "New title"
    assert body["description"] == community["description"]
    assert body["rules"] == [{"title": "New rule", "description": ""}]
    assert body["is_member"] is True
    # Leaving rules out keeps them; an empty list clears them.
    kept = (
        await http.patch(path, json={"description": "Now described"}, headers=owner.auth)
    ).json()
    assert kept["rules"] == body["rules"]
    assert kept["description"] == "Now described"
    cleared = (await http.patch(path, json={"rules": []}, headers=owner.auth)).json()
    assert cleared["rules"] == []

    assert_problem(await http.patch(path, json={"title": "Mine"}, headers=other.auth), 403)
    assert_problem(await http.patch(path, json={"title": "Mine"}), 401)
    assert_problem(
        await http.patch(f"/api/v1/communities/{unique('nx')}", json={}, headers=owner.auth), 404
    )
    for bad in ({"title": ""}, {"title": 5}, {"rules": "none"}, {"name": "renamed"}):
        assert_problem(await http.patch(path, json=bad, headers=owner.auth), 422)


async def test_membership(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    owner, member = users[0], users[1]
    community = await api.community(owner, "mb")
    path = f"/api/v1/communities/{community['name']}"

    for _ in range(2):  # joining twice changes nothing
        joined = await http.put(f"{path}/membership", headers=member.auth)
        assert joined.status_code == 204
        assert joined.content == b""
    seen = await api.get(path, member)
    assert seen["member_count"] == 2
    assert seen["is_member"] is True

    for _ in range(2):
        left = await http.delete(f"{path}/membership", headers=member.auth)
        assert left.status_code == 204
    seen = await api.get(path, member)
    assert seen["member_count"] == 1
    assert seen["is_member"] is False

    assert_problem(await http.put(f"{path}/membership"), 401)
    assert_problem(await http.delete(f"{path}/membership"), 401)
    nowhere = f"/api/v1/communities/{unique('nx')}/membership"
    assert_problem(await http.put(nowhere, headers=member.auth), 404)
    assert_problem(await http.delete(nowhere, headers=member.auth), 404)


async def test_moderators(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    owner, deputy, outsider, _ = users
    community = await api.community(owner, "md")
    path = f"/api/v1/communities/{community['name']}"

    added = await http.put(f"{path}/moderators/{deputy.username}", headers=owner.auth)
    assert added.status_code == 204, added.text
    seen = await api.get(path)
    assert seen["moderators"] == [owner.username, deputy.username]
    assert seen["member_count"] == 2  # a new moderator joins too
    # Appointing again changes nothing; the new moderator may now moderate.
    again = await http.put(f"{path}/moderators/{deputy.username}", headers=owner.auth)
    assert again.status_code == 204
    assert (await http.patch(path, json={"title": "By deputy"}, headers=deputy.auth)).is_success

    # Non-moderators may not appoint or dismiss, not even themselves.
    assert_problem(
        await http.put(f"{path}/moderators/{outsider.username}", headers=outsider.auth), 403
    )
    assert_problem(
        await http.delete(f"{path}/moderators/{deputy.username}", headers=outsider.auth), 403
    )
    assert_problem(await http.put(f"{path}/moderators/{outsider.username}"), 401)

    removed = await http.delete(f"{path}/moderators/{deputy.username}", headers=owner.auth)
    assert removed.status_code == 204, removed.text
    assert (await api.get(path))["moderators"] == [owner.username]
    # The last moderator cannot go.
    last = await http.delete(f"{path}/moderators/{owner.username}", headers=owner.auth)
    assert_problem(last, 409)

    for name in (unique("ghost"), "x", "bad-name"):
        assert_problem(await http.put(f"{path}/moderators/{name}", headers=owner.auth), 404)
        assert_problem(await http.delete(f"{path}/moderators/{name}", headers=owner.auth), 404)
    nowhere = f"/api/v1/communities/{unique('nx')}/moderators/{deputy.username}"
    assert_problem(await http.put(nowhere, headers=owner.auth), 404)


async def test_bans(http: httpx.AsyncClient, api: Api, users: list[Member]) -> None:
    owner, deputy, troll, outsider = users
    community = await api.community(owner, "bn")
    path = f"/api/v1/communities/{community['name']}"
    await api.join(troll, community["name"])

    banned = await http.put(
        f"{path}/bans/{troll.username}", json={"reason": "spam"}, headers=owner.auth
    )
    assert banned.status_code == 204, banned.text
    assert banned.content == b""
    # The ban ends the membership and refuses a new one.
    assert (await api.get(path, troll))["is_member"] is False
    assert_problem(await http.put(f"{path}/membership", headers=troll.auth), 403)
    # Banning again (new terms) and banning without a body are fine.
    again = await http.put(f"{path}/bans/{troll.username}", headers=owner.auth)
    assert again.status_code == 204, again.text

    # Moderators cannot be banned, nor can one ban oneself; others may not ban.
    await http.put(f"{path}/moderators/{deputy.username}", headers=owner.auth)
    assert_problem(await http.put(f"{path}/bans/{deputy.username}", headers=owner.auth), 409)
    assert_problem(await http.put(f"{path}/bans/{owner.username}", headers=owner.auth), 409)
    assert_problem(
        await http.put(f"{path}/bans/{troll.username}", json={}, headers=outsider.auth), 403
    )
    assert_problem(await http.delete(f"{path}/bans/{troll.username}", headers=outsider.auth), 403)
    assert_problem(await http.put(f"{path}/bans/{troll.username}", json={}), 401)
    for bad in ({"reason": "r" * 501}, {"reason": 3}, {"why": "x"}):
        answer = await http.put(f"{path}/bans/{troll.username}", json=bad, headers=owner.auth)
        assert_problem(answer, 422)
    assert_problem(await http.put(f"{path}/bans/{unique('ghost')}", headers=owner.auth), 404)

    lifted = await http.delete(f"{path}/bans/{troll.username}", headers=owner.auth)
    assert lifted.status_code == 204, lifted.text
    assert (
        await http.delete(f"{path}/bans/{troll.username}", headers=owner.auth)
    ).status_code == 204
    await api.join(troll, community["name"])
