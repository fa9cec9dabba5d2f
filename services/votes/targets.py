"""What votes learns from other services: the target of a vote, and whether the voter is banned.

Posts and comments own their targets, communities owns bans; votes asks them
over gRPC (never their tables). `TargetDirectory` is the port the use cases
depend on; `GrpcTargetDirectory` is its one production adapter, and tests can
stand in a fake. Upstream failures become domain errors here: a missing target
is NOT_FOUND, an upstream that is down or slow is UNAVAILABLE (retryable), and
anything else is a bug that surfaces as INTERNAL.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

import grpc
from agora.comments.v1 import comments_pb2
from agora.communities.v1 import communities_pb2
from agora.posts.v1 import posts_pb2

from common.errors import NotFound
from common.grpc_client import upstream_error
from services.votes.domain import Target, TargetType

if TYPE_CHECKING:
    from agora.comments.v1.comments_pb2_grpc import CommentsServiceAsyncStub
    from agora.communities.v1.communities_pb2_grpc import CommunitiesServiceAsyncStub
    from agora.posts.v1.posts_pb2_grpc import PostsServiceAsyncStub


class TargetDirectory(Protocol):
    async def target(self, target_type: TargetType, target_id: uuid.UUID) -> Target:
        """The target as its owner sees it now; NotFound when there is none."""
        ...

    async def is_banned(self, community_id: str, user_id: uuid.UUID) -> bool: ...


class KnownCommunities:
    """The community of targets seen before: a post or comment never changes community.

    With it, votes asks communities about a ban while it asks posts or comments
    about the target, instead of after: the two calls overlap, and a vote
    waits for one upstream round trip instead of two. Only the community is
    kept; whether a target is deleted or removed, and whether the voter is
    banned, change at any time and are asked on every vote. Least recently
    used entries go first, so memory stays bounded.
    """

    def __init__(self, capacity: int = 50_000) -> None:
        self._capacity = capacity
        self._known: OrderedDict[tuple[TargetType, uuid.UUID], str] = OrderedDict()

    def get(self, target_type: TargetType, target_id: uuid.UUID) -> str | None:
        key = (target_type, target_id)
        community_id = self._known.get(key)
        if community_id is not None:
            self._known.move_to_end(key)
        return community_id

    def remember(self, target: Target) -> None:
        self._known[(target.type, target.id)] = target.community_id
        self._known.move_to_end((target.type, target.id))
        while len(self._known) > self._capacity:
            self._known.popitem(last=False)


class GrpcTargetDirectory:
    def __init__(
        self,
        *,
        posts: PostsServiceAsyncStub,
        comments: CommentsServiceAsyncStub,
        communities: CommunitiesServiceAsyncStub,
    ) -> None:
        self._posts = posts
        self._comments = comments
        self._communities = communities

    async def target(self, target_type: TargetType, target_id: uuid.UUID) -> Target:
        missing = f"{target_type.noun} not found"
        try:
            if target_type is TargetType.POST:
                post = (await self._posts.GetPost(posts_pb2.GetPostRequest(id=str(target_id)))).post
                return Target(
                    type=target_type,
                    id=target_id,
                    community_id=post.community_id,
                    author_id=post.author_id,
                    deleted=post.deleted,
                    removed=post.removed,
                )
            # max_depth 0: the comment alone, without its replies.
            comment = (
                await self._comments.GetComment(
                    comments_pb2.GetCommentRequest(id=str(target_id), max_depth=0)
                )
            ).comment
        except grpc.aio.AioRpcError as error:
            raise upstream_error(error, f"{target_type.noun}s", not_found=missing) from error
        return Target(
            type=target_type,
            id=target_id,
            community_id=comment.community_id,
            author_id=comment.author_id,
            deleted=comment.deleted,
            removed=comment.removed,
        )

    async def is_banned(self, community_id: str, user_id: uuid.UUID) -> bool:
        try:
            permissions = await self._communities.GetPermissions(
                communities_pb2.GetPermissionsRequest(
                    community_id=community_id, user_id=str(user_id)
                )
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error(error, "communities", not_found="community not found") from error
        if not permissions.community_exists:
            raise NotFound("community not found")
        return bool(permissions.is_banned)
