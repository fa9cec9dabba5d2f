"""Typed gRPC clients of the upstream services, one channel each, every call with a deadline.

KNOWN_UPSTREAMS lists every service the gateway can talk to; UPSTREAMS is the
part of it that common.topology runs, which the lifespan opens channels for
and /readyz checks. A resource whose service is not in the topology yet has
no client (its field on `Clients` is None) and its routes answer 503, so the
gateway starts and serves everything else while a service is being built.
Request ids and the verified caller ride along in metadata through
common.grpc_client.

Batch reads are cut into chunks of BATCH_MAX (the services' limit) and the
chunks sent concurrently, so one page of any size costs one round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from agora.auth.v1 import auth_pb2, auth_pb2_grpc
from agora.comments.v1 import comments_pb2, comments_pb2_grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc
from agora.posts.v1 import posts_pb2, posts_pb2_grpc
from agora.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc
from agora.votes.v1 import votes_pb2, votes_pb2_grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.topology import SERVICES
from gateway.concurrency import task_group
from gateway.names import KnownNames

if TYPE_CHECKING:
    from agora.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from agora.comments.v1.comments_pb2_grpc import CommentsServiceAsyncStub
    from agora.communities.v1.communities_pb2_grpc import CommunitiesServiceAsyncStub
    from agora.posts.v1.posts_pb2_grpc import PostsServiceAsyncStub
    from agora.summarizer.v1.summarizer_pb2_grpc import SummarizerServiceAsyncStub
    from agora.votes.v1.votes_pb2_grpc import VotesServiceAsyncStub

AUTH_SERVICE: ServiceDescriptor = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
COMMUNITIES_SERVICE: ServiceDescriptor = communities_pb2.DESCRIPTOR.services_by_name[
    "CommunitiesService"
]
POSTS_SERVICE: ServiceDescriptor = posts_pb2.DESCRIPTOR.services_by_name["PostsService"]
COMMENTS_SERVICE: ServiceDescriptor = comments_pb2.DESCRIPTOR.services_by_name["CommentsService"]
VOTES_SERVICE: ServiceDescriptor = votes_pb2.DESCRIPTOR.services_by_name["VotesService"]
SUMMARIZER_SERVICE: ServiceDescriptor = summarizer_pb2.DESCRIPTOR.services_by_name[
    "SummarizerService"
]

# The most ids any service's BatchGet*/GetMyVotes takes in one request.
BATCH_MAX = 100

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Upstream:
    """A service process the gateway talks to: its topology name and its gRPC services."""

    name: str
    services: tuple[ServiceDescriptor, ...]


KNOWN_UPSTREAMS: tuple[Upstream, ...] = (
    Upstream("auth", (AUTH_SERVICE,)),
    Upstream("communities", (COMMUNITIES_SERVICE,)),
    Upstream("posts", (POSTS_SERVICE,)),
    Upstream("comments", (COMMENTS_SERVICE,)),
    Upstream("votes", (VOTES_SERVICE,)),
    Upstream("summarizer", (SUMMARIZER_SERVICE,)),
)
_RUNNING = frozenset(spec.name for spec in SERVICES)
UPSTREAMS: tuple[Upstream, ...] = tuple(u for u in KNOWN_UPSTREAMS if u.name in _RUNNING)


def _distinct(values: Iterable[str]) -> list[str]:
    """The non-empty values, first occurrence kept, in order."""
    return list(dict.fromkeys(value for value in values if value))


async def _batched(
    values: Sequence[str], fetch: Callable[[list[str]], Coroutine[Any, Any, list[_T]]]
) -> list[_T]:
    """fetch() over chunks of at most BATCH_MAX values, concurrently, results concatenated."""
    chunks = [list(values[i : i + BATCH_MAX]) for i in range(0, len(values), BATCH_MAX)]
    if not chunks:
        return []
    if len(chunks) == 1:
        return await fetch(chunks[0])
    async with task_group() as group:
        tasks = [group.create_task(fetch(chunk)) for chunk in chunks]
    return [item for task in tasks for item in task.result()]


class AuthClient:
    """agora.auth.v1.AuthService, with the gateway's deadline on every call."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline: float) -> None:
        self._stub: AuthServiceAsyncStub = auth_pb2_grpc.AuthServiceStub(channel)
        self._deadline = deadline

    async def register(self, *, username: str, email: str, password: str) -> auth_pb2.User:
        request = auth_pb2.RegisterRequest(username=username, email=email, password=password)
        response = await self._stub.Register(request, timeout=self._deadline)
        return response.user

    async def login(self, *, login: str, password: str) -> auth_pb2.LoginResponse:
        request = auth_pb2.LoginRequest(login=login, password=password)
        return await self._stub.Login(request, timeout=self._deadline)

    async def refresh(self, refresh_token: str) -> auth_pb2.TokenPair:
        request = auth_pb2.RefreshRequest(refresh_token=refresh_token)
        response = await self._stub.Refresh(request, timeout=self._deadline)
        return response.tokens

    async def logout(
        self,
        *,
        session_id: str,
        token_id: str,
        token_expires_at: datetime,
        refresh_token: str | None,
    ) -> None:
        expires_at = Timestamp()
        expires_at.FromDatetime(token_expires_at)
        request = auth_pb2.LogoutRequest(
            refresh_token=refresh_token or "",
            session_id=session_id,
            token_id=token_id,
            token_expires_at=expires_at,
        )
        await self._stub.Logout(request, timeout=self._deadline)

    async def get_user_by_id(self, user_id: str, *, include_email: bool) -> auth_pb2.User:
        request = auth_pb2.GetUserRequest(id=user_id, include_email=include_email)
        response = await self._stub.GetUser(request, timeout=self._deadline)
        return response.user

    async def get_user_by_username(self, username: str) -> auth_pb2.User:
        request = auth_pb2.GetUserRequest(username=username, include_email=False)
        response = await self._stub.GetUser(request, timeout=self._deadline)
        return response.user

    async def usernames(self, user_ids: Iterable[str]) -> dict[str, str]:
        """user id -> username for the ids that exist (unknown ids are absent)."""

        async def fetch(ids: list[str]) -> list[auth_pb2.User]:
            request = auth_pb2.BatchGetUsersRequest(ids=ids)
            response = await self._stub.BatchGetUsers(request, timeout=self._deadline)
            return list(response.users)

        users = await _batched(_distinct(user_ids), fetch)
        return {user.id: user.username for user in users}

    async def get_jwks(self) -> str:
        response = await self._stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=self._deadline)
        return response.jwks_json


class CommunitiesClient:
    """agora.communities.v1.CommunitiesService."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline: float) -> None:
        self._stub: CommunitiesServiceAsyncStub = communities_pb2_grpc.CommunitiesServiceStub(
            channel
        )
        self._deadline = deadline

    async def create(
        self,
        *,
        name: str,
        title: str,
        description: str,
        rules: Sequence[communities_pb2.CommunityRule],
    ) -> communities_pb2.Community:
        request = communities_pb2.CreateCommunityRequest(
            name=name, title=title, description=description, rules=rules
        )
        response = await self._stub.CreateCommunity(request, timeout=self._deadline)
        return response.community

    async def get_by_name(self, name: str) -> communities_pb2.Community:
        request = communities_pb2.GetCommunityRequest(name=name)
        response = await self._stub.GetCommunity(request, timeout=self._deadline)
        return response.community

    async def get_by_id(self, community_id: str) -> communities_pb2.Community:
        request = communities_pb2.GetCommunityRequest(id=community_id)
        response = await self._stub.GetCommunity(request, timeout=self._deadline)
        return response.community

    async def batch_get(self, community_ids: Iterable[str]) -> list[communities_pb2.Community]:
        async def fetch(ids: list[str]) -> list[communities_pb2.Community]:
            request = communities_pb2.BatchGetCommunitiesRequest(ids=ids)
            response = await self._stub.BatchGetCommunities(request, timeout=self._deadline)
            return list(response.communities)

        return await _batched(_distinct(community_ids), fetch)

    async def names(self, community_ids: Iterable[str]) -> dict[str, str]:
        """community id -> name for the ids that exist."""
        return {c.id: c.name for c in await self.batch_get(community_ids)}

    async def listing(
        self, *, sort: communities_pb2.CommunitySort.ValueType, page_size: int, page_token: str
    ) -> communities_pb2.ListCommunitiesResponse:
        request = communities_pb2.ListCommunitiesRequest(
            sort=sort, page_size=page_size, page_token=page_token
        )
        return await self._stub.ListCommunities(request, timeout=self._deadline)

    async def update(
        self,
        name: str,
        *,
        title: str | None,
        description: str | None,
        rules: Sequence[communities_pb2.CommunityRule] | None,
    ) -> communities_pb2.Community:
        request = communities_pb2.UpdateCommunityRequest(name=name)
        if title is not None:
            request.title = title
        if description is not None:
            request.description = description
        if rules is not None:
            request.rules.extend(rules)
            request.update_rules = True
        response = await self._stub.UpdateCommunity(request, timeout=self._deadline)
        return response.community

    async def join(self, name: str) -> None:
        request = communities_pb2.JoinCommunityRequest(name=name)
        await self._stub.JoinCommunity(request, timeout=self._deadline)

    async def leave(self, name: str) -> None:
        request = communities_pb2.LeaveCommunityRequest(name=name)
        await self._stub.LeaveCommunity(request, timeout=self._deadline)

    async def add_moderator(self, name: str, user_id: str) -> None:
        request = communities_pb2.AddModeratorRequest(name=name, user_id=user_id)
        await self._stub.AddModerator(request, timeout=self._deadline)

    async def remove_moderator(self, name: str, user_id: str) -> None:
        request = communities_pb2.RemoveModeratorRequest(name=name, user_id=user_id)
        await self._stub.RemoveModerator(request, timeout=self._deadline)

    async def ban(self, name: str, user_id: str, *, reason: str) -> None:
        request = communities_pb2.BanUserRequest(name=name, user_id=user_id, reason=reason)
        await self._stub.BanUser(request, timeout=self._deadline)

    async def unban(self, name: str, user_id: str) -> None:
        request = communities_pb2.UnbanUserRequest(name=name, user_id=user_id)
        await self._stub.UnbanUser(request, timeout=self._deadline)

    async def memberships(self, user_id: str) -> list[str]:
        request = communities_pb2.ListMembershipsRequest(user_id=user_id)
        response = await self._stub.ListMemberships(request, timeout=self._deadline)
        return list(response.community_ids)

    async def search(
        self, *, query: str, page_size: int, page_token: str
    ) -> communities_pb2.SearchCommunitiesResponse:
        request = communities_pb2.SearchCommunitiesRequest(
            query=query, page_size=page_size, page_token=page_token
        )
        return await self._stub.SearchCommunities(request, timeout=self._deadline)


class PostsClient:
    """agora.posts.v1.PostsService."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline: float) -> None:
        self._stub: PostsServiceAsyncStub = posts_pb2_grpc.PostsServiceStub(channel)
        self._deadline = deadline

    async def create(self, *, community_id: str, title: str, body: str, url: str) -> posts_pb2.Post:
        request = posts_pb2.CreatePostRequest(
            community_id=community_id, title=title, body=body, url=url
        )
        response = await self._stub.CreatePost(request, timeout=self._deadline)
        return response.post

    async def get(self, post_id: str) -> posts_pb2.Post:
        request = posts_pb2.GetPostRequest(id=post_id)
        response = await self._stub.GetPost(request, timeout=self._deadline)
        return response.post

    async def update(self, post_id: str, *, title: str | None, body: str | None) -> posts_pb2.Post:
        request = posts_pb2.UpdatePostRequest(id=post_id)
        if title is not None:
            request.title = title
        if body is not None:
            request.body = body
        response = await self._stub.UpdatePost(request, timeout=self._deadline)
        return response.post

    async def delete(self, post_id: str) -> None:
        request = posts_pb2.DeletePostRequest(id=post_id)
        await self._stub.DeletePost(request, timeout=self._deadline)

    async def moderate(
        self, post_id: str, *, action: posts_pb2.ModerationAction.ValueType, reason: str
    ) -> posts_pb2.Post:
        request = posts_pb2.ModeratePostRequest(id=post_id, action=action, reason=reason)
        response = await self._stub.ModeratePost(request, timeout=self._deadline)
        return response.post

    async def listing(
        self,
        *,
        community_id: str = "",
        community_ids: Sequence[str] = (),
        sort: posts_pb2.PostSort.ValueType,
        time_window: posts_pb2.TimeWindow.ValueType,
        page_size: int,
        page_token: str,
    ) -> posts_pb2.ListPostsResponse:
        """One community, several (a feed), or every community when neither is given."""
        request = posts_pb2.ListPostsRequest(
            community_id=community_id,
            community_ids=community_ids,
            all_communities=not community_id and not community_ids,
            sort=sort,
            time_window=time_window,
            page_size=page_size,
            page_token=page_token,
        )
        return await self._stub.ListPosts(request, timeout=self._deadline)

    async def search(
        self, *, query: str, community_id: str, page_size: int, page_token: str
    ) -> posts_pb2.SearchPostsResponse:
        request = posts_pb2.SearchPostsRequest(
            query=query, community_id=community_id, page_size=page_size, page_token=page_token
        )
        return await self._stub.SearchPosts(request, timeout=self._deadline)


class CommentsClient:
    """agora.comments.v1.CommentsService."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline: float) -> None:
        self._stub: CommentsServiceAsyncStub = comments_pb2_grpc.CommentsServiceStub(channel)
        self._deadline = deadline

    async def create(self, *, post_id: str, parent_id: str, body: str) -> comments_pb2.Comment:
        request = comments_pb2.CreateCommentRequest(post_id=post_id, parent_id=parent_id, body=body)
        response = await self._stub.CreateComment(request, timeout=self._deadline)
        return response.comment

    async def get(
        self, comment_id: str, *, max_depth: int, sort: comments_pb2.CommentSort.ValueType
    ) -> comments_pb2.Comment:
        request = comments_pb2.GetCommentRequest(id=comment_id, max_depth=max_depth, sort=sort)
        response = await self._stub.GetComment(request, timeout=self._deadline)
        return response.comment

    async def update(self, comment_id: str, *, body: str) -> comments_pb2.Comment:
        request = comments_pb2.UpdateCommentRequest(id=comment_id, body=body)
        response = await self._stub.UpdateComment(request, timeout=self._deadline)
        return response.comment

    async def delete(self, comment_id: str) -> None:
        request = comments_pb2.DeleteCommentRequest(id=comment_id)
        await self._stub.DeleteComment(request, timeout=self._deadline)

    async def moderate(
        self,
        comment_id: str,
        *,
        action: comments_pb2.CommentModerationAction.ValueType,
        reason: str,
    ) -> comments_pb2.Comment:
        request = comments_pb2.ModerateCommentRequest(id=comment_id, action=action, reason=reason)
        response = await self._stub.ModerateComment(request, timeout=self._deadline)
        return response.comment

    async def tree(
        self,
        post_id: str,
        *,
        sort: comments_pb2.CommentSort.ValueType,
        max_depth: int,
        page_size: int,
        page_token: str,
    ) -> comments_pb2.ListCommentTreeResponse:
        request = comments_pb2.ListCommentTreeRequest(
            post_id=post_id,
            sort=sort,
            max_depth=max_depth,
            page_size=page_size,
            page_token=page_token,
        )
        return await self._stub.ListCommentTree(request, timeout=self._deadline)

    async def search(
        self, *, query: str, community_id: str, page_size: int, page_token: str
    ) -> comments_pb2.SearchCommentsResponse:
        request = comments_pb2.SearchCommentsRequest(
            query=query, community_id=community_id, page_size=page_size, page_token=page_token
        )
        return await self._stub.SearchComments(request, timeout=self._deadline)


class VotesClient:
    """agora.votes.v1.VotesService."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline: float) -> None:
        self._stub: VotesServiceAsyncStub = votes_pb2_grpc.VotesServiceStub(channel)
        self._deadline = deadline

    async def cast(
        self,
        *,
        target_type: votes_pb2.TargetType.ValueType,
        target_id: str,
        direction: int,
        idempotency_key: str,
    ) -> votes_pb2.CastVoteResponse:
        request = votes_pb2.CastVoteRequest(
            target_type=target_type,
            target_id=target_id,
            direction=direction,
            idempotency_key=idempotency_key,
        )
        return await self._stub.CastVote(request, timeout=self._deadline)

    async def my_votes(
        self, target_type: votes_pb2.TargetType.ValueType, target_ids: Iterable[str]
    ) -> dict[str, int]:
        """The caller's vote per target id (-1 or 1); targets without a vote are absent."""

        async def fetch(ids: list[str]) -> list[tuple[str, int]]:
            request = votes_pb2.GetMyVotesRequest(target_type=target_type, target_ids=ids)
            response = await self._stub.GetMyVotes(request, timeout=self._deadline)
            return list(response.votes.items())

        return dict(await _batched(_distinct(target_ids), fetch))

    async def tallies(
        self, target_type: votes_pb2.TargetType.ValueType, target_ids: Iterable[str]
    ) -> dict[str, votes_pb2.Tally]:
        """The exact tally per target id, from the votes service (zero for unvoted targets)."""

        async def fetch(ids: list[str]) -> list[votes_pb2.Tally]:
            request = votes_pb2.GetTalliesRequest(target_type=target_type, target_ids=ids)
            response = await self._stub.GetTallies(request, timeout=self._deadline)
            return list(response.tallies)

        return {tally.target_id: tally for tally in await _batched(_distinct(target_ids), fetch)}


class SummarizerClient:
    """agora.summarizer.v1.SummarizerService."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline: float) -> None:
        self._stub: SummarizerServiceAsyncStub = summarizer_pb2_grpc.SummarizerServiceStub(channel)
        self._deadline = deadline

    async def get(self, post_id: str) -> summarizer_pb2.GetSummaryResponse:
        request = summarizer_pb2.GetSummaryRequest(post_id=post_id)
        return await self._stub.GetSummary(request, timeout=self._deadline)

    async def request(self, post_id: str) -> summarizer_pb2.RequestSummaryResponse:
        request = summarizer_pb2.RequestSummaryRequest(post_id=post_id)
        return await self._stub.RequestSummary(request, timeout=self._deadline)


_C = TypeVar("_C", CommunitiesClient, PostsClient, CommentsClient, VotesClient, SummarizerClient)


@dataclass(frozen=True, slots=True)
class Clients:
    """One typed client per upstream, built on the lifespan's channels.

    A client is None while its service is not part of the topology; the
    dependencies in gateway.deps turn that into a 503 for the routes that need it.
    `names` holds the usernames and community names already answered (gateway.names).
    """

    auth: AuthClient
    communities: CommunitiesClient | None = None
    posts: PostsClient | None = None
    comments: CommentsClient | None = None
    votes: VotesClient | None = None
    summarizer: SummarizerClient | None = None
    names: KnownNames = field(default_factory=KnownNames)

    @classmethod
    def build(cls, channels: Mapping[str, grpc.aio.Channel], *, deadline: float) -> Clients:
        def optional(name: str, client: type[_C]) -> _C | None:
            channel = channels.get(name)
            return None if channel is None else client(channel, deadline=deadline)

        return cls(
            auth=AuthClient(channels["auth"], deadline=deadline),
            communities=optional("communities", CommunitiesClient),
            posts=optional("posts", PostsClient),
            comments=optional("comments", CommentsClient),
            votes=optional("votes", VotesClient),
            summarizer=optional("summarizer", SummarizerClient),
        )


class NotServingError(Exception):
    """An upstream answered its health check with something other than SERVING."""


async def check_upstream(channel: grpc.aio.Channel, upstream: Upstream, *, deadline: float) -> None:
    """Ask the upstream's grpc.health.v1 service about each of its services, concurrently.

    Raises grpc.aio.AioRpcError when it cannot be reached in time and
    NotServingError when it answers but is not serving (e.g. draining).
    """
    stub = health_pb2_grpc.HealthStub(channel)

    async def check(service: ServiceDescriptor) -> None:
        request = health_pb2.HealthCheckRequest(service=service.full_name)
        response = await stub.Check(request, timeout=deadline)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            raise NotServingError(f"{service.full_name} is {status}")

    results = await asyncio.gather(
        *(check(service) for service in upstream.services), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
