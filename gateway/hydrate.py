"""Turning a page of protos into public JSON, with every cross-service lookup batched.

Services answer ids: a post names its author and community by id, and nobody
but the votes service knows the caller's votes. A page therefore needs
usernames (auth BatchGetUsers), community names (communities
BatchGetCommunities) and the caller's votes (votes GetMyVotes, one call per
target type), never one call per item. The lookups are independent, so they
run concurrently; a page costs one round trip more than the listing itself.
Lookups that have nothing to ask (no ids, or an anonymous caller's votes)
are not made at all.

Usernames and community names never change, so the gateway keeps the ones it
was told (gateway.names, on `clients.names`) and asks only for ids it has not
seen: a page read again asks neither auth nor communities.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from agora.comments.v1 import comments_pb2
from agora.communities.v1 import communities_pb2
from agora.posts.v1 import posts_pb2
from agora.votes.v1 import votes_pb2

from gateway.clients import Clients
from gateway.concurrency import task_group
from gateway.deps import running
from gateway.schemas.comments import comment_payload, walk
from gateway.schemas.communities import community_payload
from gateway.schemas.posts import post_payload

_V = TypeVar("_V")


async def _my_votes(
    clients: Clients, target_type: votes_pb2.TargetType.ValueType, ids: Sequence[str]
) -> dict[str, int]:
    return await running(clients.votes, "votes").my_votes(target_type, ids)


async def _usernames(clients: Clients, user_ids: Iterable[str]) -> dict[str, str]:
    """id -> username of the users that exist, asking auth only for ids not known yet."""
    return await clients.names.users.lookup(user_ids, clients.auth.usernames)


async def _community_names(clients: Clients, community_ids: Iterable[str]) -> dict[str, str]:
    """id -> name of the communities that exist, asking only for ids not known yet."""

    async def fetch(ids: list[str]) -> dict[str, str]:
        return await running(clients.communities, "communities").names(ids)

    return await clients.names.communities.lookup(community_ids, fetch)


async def _maybe(
    needed: bool, call: Callable[[], Coroutine[Any, Any, dict[str, _V]]]
) -> dict[str, _V]:
    """call() when there is something to ask, else {} without a request."""
    return await call() if needed else {}


async def post_payloads(
    posts: Sequence[posts_pb2.Post],
    clients: Clients,
    *,
    signed_in: bool,
    community_names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """`Post` objects for a page; community_names are names the caller already knows."""
    if not posts:
        return []
    if community_names:
        clients.names.communities.learn(community_names)
    post_ids = [post.id for post in posts]
    async with task_group() as group:
        authors = group.create_task(_usernames(clients, [post.author_id for post in posts]))
        names = group.create_task(_community_names(clients, [post.community_id for post in posts]))
        votes = group.create_task(
            _maybe(signed_in, lambda: _my_votes(clients, votes_pb2.TARGET_TYPE_POST, post_ids))
        )
    my_votes = votes.result() if signed_in else None
    return [
        post_payload(
            post, usernames=authors.result(), community_names=names.result(), my_votes=my_votes
        )
        for post in posts
    ]


# Outages of the votes service: the tallies copied into posts are served instead.
_TALLIES_UNAVAILABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


async def exact_post_tallies(
    clients: Clients, post_ids: Sequence[str]
) -> dict[str, votes_pb2.Tally] | None:
    """The votes service's own tallies of these posts; None while it cannot answer.

    Posts keep copies of their tallies that they update from vote events a
    moment after each vote. An answer built from a copy and then cached would
    keep a just-cast vote's old score for the cache's whole life, so cached
    answers take the tallies from the authority instead. None tells the
    caller to serve the copies but not to cache them.
    """
    if clients.votes is None:
        return {}  # no votes service in this deployment: no votes, the copies are exact
    try:
        return await clients.votes.tallies(votes_pb2.TARGET_TYPE_POST, post_ids)
    except grpc.aio.AioRpcError as error:
        if error.code() in _TALLIES_UNAVAILABLE:
            return None
        raise


@dataclass(frozen=True, slots=True)
class SharedPosts:
    """Anonymous `Post` objects for answers shared through the cache, and how far to trust them.

    `exact`: the tallies are the votes service's (else the copies: serve, do not store).
    `settled`: every post's copy already agreed with them, so posts had applied the last
    votes, and a listing's order (which posts compute from their copies) is current too.
    """

    items: list[dict[str, Any]]
    exact: bool
    settled: bool


async def shared_post_payloads(
    posts: Sequence[posts_pb2.Post],
    clients: Clients,
    *,
    community_names: Mapping[str, str] | None = None,
) -> SharedPosts:
    """Anonymous `Post` objects with exact tallies (see exact_post_tallies and SharedPosts)."""
    async with task_group() as group:
        tallies = group.create_task(exact_post_tallies(clients, [post.id for post in posts]))
        payloads = group.create_task(
            post_payloads(posts, clients, signed_in=False, community_names=community_names)
        )
    exact, items = tallies.result(), payloads.result()
    if exact is None:
        return SharedPosts(items, exact=False, settled=False)
    settled = True
    for item in items:
        if (tally := exact.get(item["id"])) is None:
            continue
        copy = (item["score"], item["upvotes"], item["downvotes"])
        settled = settled and copy == (tally.score, tally.upvotes, tally.downvotes)
        item.update(score=tally.score, upvotes=tally.upvotes, downvotes=tally.downvotes)
    return SharedPosts(items, exact=True, settled=settled)


async def post_payload_one(
    post: posts_pb2.Post,
    clients: Clients,
    *,
    signed_in: bool,
    community_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    (payload,) = await post_payloads(
        [post], clients, signed_in=signed_in, community_names=community_names
    )
    return payload


async def comment_payloads(
    comments: Sequence[comments_pb2.Comment],
    clients: Clients,
    *,
    signed_in: bool,
    flat: bool = False,
) -> list[dict[str, Any]]:
    """`Comment` trees for a page: one batch of usernames and one of votes for every
    comment of every tree, at any depth."""
    if not comments:
        return []
    every = list(walk(comments))
    comment_ids = [comment.id for comment in every]
    async with task_group() as group:
        authors = group.create_task(_usernames(clients, [comment.author_id for comment in every]))
        votes = group.create_task(
            _maybe(
                signed_in,
                lambda: _my_votes(clients, votes_pb2.TARGET_TYPE_COMMENT, comment_ids),
            )
        )
    my_votes = votes.result() if signed_in else None
    return [
        comment_payload(comment, usernames=authors.result(), my_votes=my_votes, flat=flat)
        for comment in comments
    ]


async def comment_payload_one(
    comment: comments_pb2.Comment, clients: Clients, *, signed_in: bool, flat: bool = False
) -> dict[str, Any]:
    (payload,) = await comment_payloads([comment], clients, signed_in=signed_in, flat=flat)
    return payload


async def community_payloads(
    communities: Sequence[communities_pb2.Community], clients: Clients, *, signed_in: bool
) -> list[dict[str, Any]]:
    """`Community` objects for a page: every moderator of the page in one BatchGetUsers."""
    clients.names.communities.learn({c.id: c.name for c in communities})
    moderator_ids = [m for community in communities for m in community.moderator_ids]
    names = await _usernames(clients, moderator_ids)
    return [community_payload(c, names, signed_in=signed_in) for c in communities]


async def community_payload_one(
    community: communities_pb2.Community, clients: Clients, *, signed_in: bool
) -> dict[str, Any]:
    (payload,) = await community_payloads([community], clients, signed_in=signed_in)
    return payload
