"""The response cache over real HTTP, real Redis and the real services.

Every test runs a gateway of its own with its own Redis key prefix
(edge_support), and makes its writes through that gateway too, since
invalidation is the gateway's job. "No gRPC call" is proven with Prometheus
counters read before and after a request, like test_gateway_batching.py
does, but on the calling side: the edge gateway runs in this process, so
this process's `agora_grpc_client_handled_total` counts exactly the calls it
made, and nothing the stack's other callers (the summarizer reading new
posts in the background, say) make meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from common.settings import CommonSettings
from gateway.cache.document import Document
from gateway.cache.memory import MEMORY_HIT_STATUS
from gateway.cache.store import CacheStore, Hit, Miss, PersonalChange
from gateway.settings import GatewaySettings
from tests.integration.edge_support import Edge, dead_redis_url, edge_gateway, edge_settings, sample
from tests.integration.gateway_support import Api, Member, register_many
from tests.integration.grpc_support import eventually
from tools.stack import Stack

SERVICES = ("auth", "communities", "posts", "comments", "votes")
HIT = "agora-gateway; hit"
# Anonymous reads of what Redis answered lately come from the gateway's memory (its L1).
HITS = (HIT, MEMORY_HIT_STATUS)
Counts = dict[tuple[str, str], float]


def unthrottled(stack: Stack, **overrides: Any) -> GatewaySettings:
    """Cache tests send bursts from one address; limits are test_gateway_edge_limits.py's."""
    return edge_settings(stack, rate_limits_enabled=False, **overrides)


@pytest.fixture(scope="module")
async def members(stack: Stack) -> list[Member]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register_many(client, 4, "ca")


def counts() -> Counts:
    """(service, method) -> gRPC calls this process made so far, whatever their status."""
    found: Counts = {}
    for family in REGISTRY.collect():
        if family.name != "agora_grpc_client_handled":
            continue
        for metric in family.samples:
            if metric.name.endswith("_total"):
                service = metric.labels["grpc_service"].split(".")[1]  # agora.<service>.v1.X
                key = (service, metric.labels["grpc_method"])
                found[key] = found.get(key, 0.0) + metric.value
    return found


def caused(before: Counts, after: Counts) -> dict[str, dict[str, float]]:
    """Per service, the gRPC methods called between two readings (and how often)."""
    result: dict[str, dict[str, float]] = {name: {} for name in SERVICES}
    for (service, method), value in after.items():
        if delta := value - before.get((service, method), 0.0):
            result.setdefault(service, {})[method] = delta
    return result


async def calls_of(
    request: Callable[[], Awaitable[httpx.Response]],
) -> tuple[httpx.Response, dict[str, dict[str, float]]]:
    before = counts()
    answer = await request()
    return answer, caused(before, counts())


def no_calls(calls: dict[str, dict[str, float]]) -> bool:
    return not any(calls.values())


async def get(client: httpx.AsyncClient, path: str, member: Member | None = None) -> Any:
    answer = await client.get(path, headers=member.auth if member else {})
    assert answer.status_code == 200, answer.text
    return answer


async def cached(client: httpx.AsyncClient, path: str) -> bool:
    """Whether the path's answer is in the cache now (stored by this read or before)."""
    status = (await get(client, path)).headers["cache-status"]
    return status in (*HITS, "agora-gateway; fwd=miss; stored")


def post_hits() -> float:
    """Hits of the post resource, from Redis or from memory."""
    return sum(
        sample("agora_gateway_cache_requests_total", {"resource": "post", "result": result})
        for result in ("hit", "memory")
    )


@pytest.fixture
async def edge(stack: Stack) -> Any:
    async with edge_gateway(unthrottled(stack)) as running:
        yield running


async def test_a_hit_makes_no_grpc_call(stack: Stack, edge: Edge, members: list[Member]) -> None:
    author, reader, *_ = members
    async with edge.client() as client:
        api = Api(client)
        community = (await api.community(author, "ca"))["name"]
        post = await api.post(author, community, "cached")
        await api.vote(reader, "posts", post["id"], 1)
        paths = [
            f"/api/v1/posts/{post['id']}",
            f"/api/v1/communities/{community}/posts?sort=new",
            "/api/v1/posts?sort=new&limit=5",
            f"/api/v1/communities/{community}",
            "/api/v1/communities?sort=new&limit=5",
            f"/api/v1/users/{author.username}",
        ]
        hits_before = post_hits()
        for path in paths:
            # Listings are stored once posts has applied the vote (see the next test).
            await eventually(lambda p=path: cached(client, p))  # type: ignore[misc]
            for member in (None, reader, author):
                # A signed-in caller's first read fetches their own values once.
                await get(client, path, member)
                answer, calls = await calls_of(
                    lambda p=path, m=member: get(client, p, m)  # type: ignore[misc]
                )
                assert answer.headers["cache-status"] in (HITS if member is None else [HIT]), path
                assert no_calls(calls), (path, member, calls)
        mine = (await get(client, paths[0], reader)).json()
        assert mine["my_vote"] == 1
        assert mine["score"] == 1
        assert post_hits() >= hits_before + 6


async def test_listings_follow_votes_once_posts_reranked(
    stack: Stack, edge: Edge, members: list[Member]
) -> None:
    """Scores show at once; the order is the posts service's, which follows a moment later.

    Until posts has applied the votes (its copies of the tallies differ from the
    votes service's), a page is served in its old order but not stored, so the
    first read after posts caught up stores the new order.
    """
    author, first_voter, second_voter, _ = members
    async with edge.client() as client:
        api = Api(client)
        community = (await api.community(author, "ca"))["name"]
        low, high = [(await api.post(author, community, title))["id"] for title in ("a", "b")]
        top = f"/api/v1/communities/{community}/posts?sort=top&t=all"
        await get(client, top)
        for voter in (first_voter, second_voter):
            await api.vote(voter, "posts", high, 1)
        await api.vote(first_voter, "posts", low, -1)
        scores = {i["id"]: i["score"] for i in (await get(client, top)).json()["items"]}
        assert scores == {high: 2, low: -1}  # exact at once, whatever the order

        async def reranked() -> bool:
            answer = await get(client, top)
            return [i["id"] for i in answer.json()["items"]] == [high, low]

        await eventually(reranked, within=3)
        await eventually(lambda: cached(client, top))
        again = await get(client, top)
        assert again.headers["cache-status"] in HITS
        assert [i["id"] for i in again.json()["items"]] == [high, low]


async def test_a_vote_an_edit_and_a_delete_show_on_the_next_read(
    edge: Edge, members: list[Member]
) -> None:
    author, voter, other, _ = members
    async with edge.client() as client:
        api = Api(client)
        community = (await api.community(author, "ca"))["name"]
        post = await api.post(author, community, "before")
        post_path = f"/api/v1/posts/{post['id']}"
        listing = f"/api/v1/communities/{community}/posts?sort=new"

        async def read(member: Member | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
            one = (await get(client, post_path, member)).json()
            (item,) = (await get(client, listing, member)).json()["items"]
            return one, item

        for member in (None, voter, other):
            await read(member)  # everything cached, for everyone

        for direction, score in ((1, 1), (-1, -1), (0, 0), (1, 1)):
            await api.vote(voter, "posts", post["id"], direction)
            for member, mine in ((None, None), (voter, direction), (other, 0)):
                for answer in await read(member):
                    assert answer["score"] == score, (direction, member, answer)
                    assert answer.get("my_vote") == mine, (direction, member, answer)

        edited = await client.patch(post_path, json={"title": "after"}, headers=author.auth)
        assert edited.status_code == 200, edited.text
        for answer in await read():
            assert answer["title"] == "after"
            assert answer["edited_at"] is not None
            assert answer["score"] == 1

        assert (await client.delete(post_path, headers=author.auth)).status_code == 204
        gone = (await get(client, post_path)).json()
        assert gone["deleted"] is True
        assert gone["title"] == "[deleted]"
        assert (await get(client, listing)).json()["items"] == []


async def test_per_user_parts_never_leak(edge: Edge, members: list[Member]) -> None:
    owner, joiner, stranger, _ = members
    async with edge.client() as client:
        api = Api(client)
        community = (await api.community(owner, "ca"))["name"]
        post = await api.post(owner, community, "mine")
        await api.vote(joiner, "posts", post["id"], -1)
        await api.join(joiner, community)
        path = f"/api/v1/communities/{community}"
        page = "/api/v1/communities?sort=new&limit=100"

        async def views() -> dict[str, Any]:
            return {
                "owner": (await get(client, path, owner)).json(),
                "joiner": (await get(client, path, joiner)).json(),
                "stranger": (await get(client, path, stranger)).json(),
                "anonymous": (await get(client, path)).json(),
            }

        seen = await views()
        assert seen["owner"]["is_member"] is True
        assert seen["joiner"]["is_member"] is True
        assert seen["stranger"]["is_member"] is False
        assert "is_member" not in seen["anonymous"]
        assert seen["joiner"]["member_count"] == 2
        for who, member in (("joiner", joiner), ("stranger", stranger)):
            listed = (await get(client, page, member)).json()["items"]
            (entry,) = [c for c in listed if c["name"] == community]
            assert entry["is_member"] is seen[who]["is_member"]

        # Leaving changes the leaver's own view and the shared count at once.
        left = await client.delete(f"{path}/membership", headers=joiner.auth)
        assert left.status_code == 204
        seen = await views()
        assert seen["joiner"]["is_member"] is False
        assert seen["owner"]["is_member"] is True
        assert seen["anonymous"]["member_count"] == 1

        post_path = f"/api/v1/posts/{post['id']}"
        assert (await get(client, post_path, joiner)).json()["my_vote"] == -1
        assert (await get(client, post_path, stranger)).json()["my_vote"] == 0
        assert "my_vote" not in (await get(client, post_path)).json()

    # What is shared holds nothing of anyone's: the stored bodies are the anonymous answers.
    redis = aioredis.Redis.from_url(CommonSettings().redis_url.get_secret_value())
    try:
        prefix = f"{edge.settings.redis_key_prefix}cache:e:"
        bodies = [await redis.hget(key, "b") async for key in redis.scan_iter(match=f"{prefix}*")]
    finally:
        await redis.aclose()
    assert len(bodies) >= 2  # the post and the community (the page was invalidated)
    for body in bodies:
        assert b"my_vote" not in body
        assert b"is_member" not in body


async def test_concurrent_misses_rebuild_once(stack: Stack, members: list[Member]) -> None:
    """One rebuild for a burst of misses, however slow the machine.

    Two deadlines make extra rebuilds by design, and on a machine busy with the
    rest of the suite either can pass: a waiter rebuilds itself past the rebuild
    wait (1 s), and a request whose Redis lookup outlasts the Redis timeout
    (0.25 s) is served by a rebuild without the cache. With generous ones this
    asserts the stampede protection itself.
    """
    author = members[0]
    patient = unthrottled(
        stack,
        cache_rebuild_wait_seconds=20.0,
        cache_rebuild_lock_seconds=30.0,
        redis_timeout_seconds=5.0,
    )
    async with edge_gateway(patient) as edge, edge.client() as client:
        api = Api(client)
        community = (await api.community(author, "ca"))["name"]
        post = await api.post(author, community, "popular")
        for path, method in (
            (f"/api/v1/posts/{post['id']}", "GetPost"),
            (f"/api/v1/communities/{community}/posts?sort=hot", "ListPosts"),
        ):

            async def stampede(target: str = path) -> list[httpx.Response]:
                return list(await asyncio.gather(*(client.get(target) for _ in range(30))))

            before = counts()
            answers = await stampede()
            calls = caused(before, counts())
            assert {answer.status_code for answer in answers} == {200}
            assert len({answer.content for answer in answers}) == 1
            assert calls["posts"] == {method: 1}, calls
            assert calls["votes"] == {"GetTallies": 1}, calls
            # The author's name was learnt when the post was made through this gateway.
            assert calls["auth"] == {}, calls
            statuses = [answer.headers["cache-status"] for answer in answers]
            assert statuses.count("agora-gateway; fwd=miss; stored") == 1
            assert sum(statuses.count(hit) for hit in HITS) == 29


async def test_comment_and_post_counts_catch_up(edge: Edge, members: list[Member]) -> None:
    """Counts that services update from events are invalidated again once they settled."""
    author, commenter, *_ = members
    async with edge.client() as client:
        api = Api(client)
        community = (await api.community(author, "ca"))["name"]
        post = await api.post(author, community, "discuss")
        path = f"/api/v1/posts/{post['id']}"
        assert (await get(client, path)).json()["comment_count"] == 0
        await api.comment(commenter, post["id"], "first!")

        async def counted() -> bool:
            return bool((await get(client, path)).json()["comment_count"] == 1)

        await eventually(counted, within=edge.settings.cache_settle_seconds + 3)

        about = f"/api/v1/communities/{community}"
        assert (await get(client, about)).json()["post_count"] == 1
        await api.post(author, community, "another")

        async def posted() -> bool:
            return bool((await get(client, about)).json()["post_count"] == 2)

        await eventually(posted, within=edge.settings.cache_settle_seconds + 3)


async def test_cached_answers_equal_uncached_ones(stack: Stack, members: list[Member]) -> None:
    author, voter, *_ = members
    cached = unthrottled(stack)
    plain = unthrottled(stack, cache_enabled=False)
    async with (
        edge_gateway(cached) as with_cache,
        edge_gateway(plain) as without,
        with_cache.client() as client,
        without.client() as other,
    ):
        api = Api(client)
        community = (await api.community(author, "ca"))["name"]
        post = await api.post(author, community, "same", body="text", url="https://a.example")
        await api.vote(voter, "posts", post["id"], 1)
        await api.join(voter, community)
        # Let posts apply the vote to its copy of the tally, and the settled second
        # invalidation of the community (its post_count) pass.
        await asyncio.sleep(cached.cache_settle_seconds + 0.5)
        for path in (
            f"/api/v1/posts/{post['id']}",
            f"/api/v1/communities/{community}/posts?sort=top&t=day",
            f"/api/v1/communities/{community}",
            "/api/v1/communities?sort=new&limit=3",
            f"/api/v1/users/{author.username}",
        ):
            for member in (None, voter, author):
                for _ in range(2):  # a miss, then a hit
                    mine = await get(client, path, member)
                    theirs = await get(other, path, member)
                    assert mine.content == theirs.content, (path, member)
                assert mine.headers["cache-status"] == "agora-gateway; hit"
                assert theirs.headers["cache-status"] == "agora-gateway; fwd=bypass"


async def test_redis_down_reads_and_writes_still_work(stack: Stack, members: list[Member]) -> None:
    author, voter, *_ = members
    settings = unthrottled(stack, redis_url=dead_redis_url(), redis_timeout_seconds=0.2)
    async with edge_gateway(settings) as edge, edge.client() as client:
        api = Api(client)
        community = (await api.community(author, "ca"))["name"]
        post = await api.post(author, community, "no redis")
        path = f"/api/v1/posts/{post['id']}"
        answer = await get(client, path, voter)
        assert answer.headers["cache-status"] == "agora-gateway; fwd=bypass"
        assert answer.json()["my_vote"] == 0
        await api.vote(voter, "posts", post["id"], 1)
        assert (await get(client, path, voter)).json()["my_vote"] == 1
        listing = (await get(client, f"/api/v1/communities/{community}/posts")).json()
        assert [item["id"] for item in listing["items"]] == [post["id"]]


# The Redis side on its own: the races the scripts close ---------------------------------


@pytest.fixture
async def store(stack: Stack) -> Any:
    client = aioredis.Redis.from_url(CommonSettings().redis_url.get_secret_value())
    prefix = edge_settings(stack).redis_key_prefix
    try:
        yield CacheStore(client, prefix, tag_ttl_seconds=60, tombstone_ms=60_000)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


DOC = Document(b'{"id":"p1","score":1}', (20,), ("p1",))


async def test_a_rebuild_that_raced_a_write_is_not_stored(store: CacheStore) -> None:
    miss = await store.lookup("post:p1", lock_token="a", lock_ms=5000, viewer=None, mode=None)
    assert isinstance(miss, Miss)
    assert miss.locked
    # Others find the lock taken while the first rebuilds.
    other = await store.lookup("post:p1", lock_token="b", lock_ms=5000, viewer=None, mode=None)
    assert isinstance(other, Miss)
    assert not other.locked
    # A write invalidates the post while the first is still rebuilding from older data ...
    await store.invalidate(["post:p1"])
    stored = await store.fill(
        "post:p1", DOC, tags=["post:p1"], ttl_seconds=60, started_ms=miss.started_ms, lock_token="a"
    )
    assert not stored  # ... so its copy is not kept,
    await asyncio.sleep(0.01)  # (a rebuild in the invalidation's very millisecond is not kept)
    again = await store.lookup("post:p1", lock_token="c", lock_ms=5000, viewer=None, mode=None)
    assert isinstance(again, Miss)
    assert again.locked  # and its lock was released for the next rebuild, which stores.
    assert await store.fill(
        "post:p1",
        DOC,
        tags=["post:p1"],
        ttl_seconds=60,
        started_ms=again.started_ms,
        lock_token="c",
    )
    hit = await store.lookup("post:p1", lock_token="d", lock_ms=5000, viewer="u1", mode="votes")
    assert isinstance(hit, Hit)
    assert hit.document == DOC
    assert hit.personal == [None]
    assert hit.epoch == "0"


async def test_a_users_stale_values_are_not_stored_after_their_write(store: CacheStore) -> None:
    await store.fill("post:p1", DOC, tags=["post:p1"], ttl_seconds=60, started_ms=0, lock_token="")
    hit = await store.lookup("post:p1", lock_token="x", lock_ms=5000, viewer="u1", mode="votes")
    assert isinstance(hit, Hit)
    assert hit.epoch is not None
    # The user votes while their read is asking the votes service: the read's answer is stale.
    await store.invalidate(["post:p1"], personal=PersonalChange("u1", "votes", ("p1",)))
    assert not await store.fill_personal(
        "u1", "votes", {"p1": b"-1"}, epoch=hit.epoch, ttl_seconds=60
    )
    fresh = await store.lookup("post:p1", lock_token="y", lock_ms=5000, viewer="u1", mode="votes")
    assert isinstance(fresh, Miss)  # the invalidation also dropped the shared entry
    assert fresh.epoch is not None
    assert await store.fill_personal("u1", "votes", {"p1": b"1"}, epoch=fresh.epoch, ttl_seconds=60)
