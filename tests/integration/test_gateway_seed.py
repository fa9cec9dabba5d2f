"""tools/seed.py against the running stack: a living site, and nothing doubled on a rerun."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration.gateway_support import Api, needs
from tools import seed
from tools.stack import Stack

pytestmark = needs("communities", "posts", "comments", "votes")


async def test_seed_fills_the_site_once(http: httpx.AsyncClient, stack: Stack) -> None:
    said: list[str] = []
    await asyncio.to_thread(seed.seed, stack.gateway_url, said.append)
    assert said[-1].startswith("demo data: "), said
    assert not [line for line in said if line.startswith("seeding:")], said

    api = Api(http)
    names = {community.name for community in seed.COMMUNITIES}
    for community in seed.COMMUNITIES:
        shown = await api.get(f"/api/v1/communities/{community.name}")
        assert shown["moderators"] == list(community.moderators)
        assert shown["member_count"] == len(seed.DEMO_USERS)
    posts = [
        item
        for name in names
        for item in (await api.get(f"/api/v1/communities/{name}/posts", limit=100))["items"]
    ]
    assert sorted(p["title"] for p in posts) == sorted(p.title for p in seed.POSTS)
    weekly = next(p for p in posts if p["title"] == "What did you play this weekend?")
    assert weekly["pinned"] is True
    stdlib = next(p for p in posts if p["title"].startswith("Share your favourite"))
    tree = (await api.get(f"/api/v1/posts/{stdlib['id']}/comments"))["items"]
    depth, node = 0, tree[0] if tree else None
    while node and node["replies"]:
        node, depth = node["replies"][0], depth + 1
    assert depth >= 3

    async def scored() -> bool:
        listed = await api.get("/api/v1/communities/gardening/posts", sort="top", t="all")
        return bool(listed["items"][0]["score"] == 4)

    deadline = asyncio.get_running_loop().time() + 5
    while not await scored():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)

    # A second run finds everything in place and makes nothing new.
    again: list[str] = []
    await asyncio.to_thread(seed.seed, stack.gateway_url, again.append)
    assert again[-1].startswith("demo data: already there"), again
    recount = [
        item
        for name in names
        for item in (await api.get(f"/api/v1/communities/{name}/posts", limit=100))["items"]
    ]
    assert len(recount) == len(posts)
