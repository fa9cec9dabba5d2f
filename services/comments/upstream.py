"""What comments asks other services: a post's state (posts) and a user's rights (communities).

One channel per upstream for the life of the process (common.grpc_client adds
deadlines, read retries on UNAVAILABLE and passes the caller along). Their
failures become domain errors through common.grpc_client.upstream_error, so a
servicer never answers INTERNAL for somebody else's outage.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

import grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc
from agora.posts.v1 import posts_pb2, posts_pb2_grpc

from common.errors import Unavailable
from common.grpc_client import upstream_error
from common.ids import parse_uuid

log = logging.getLogger("agora.comments.upstream")

POSTS_SERVICE = posts_pb2.DESCRIPTOR.services_by_name["PostsService"]
COMMUNITIES_SERVICE = communities_pb2.DESCRIPTOR.services_by_name["CommunitiesService"]


@dataclass(frozen=True, slots=True)
class PostState:
    id: uuid.UUID
    community_id: uuid.UUID
    locked: bool
    removed: bool
    deleted: bool


@dataclass(frozen=True, slots=True)
class Permissions:
    community_exists: bool
    is_member: bool
    is_moderator: bool
    is_banned: bool


class Upstream(Protocol):
    async def post(self, post_id: uuid.UUID) -> PostState:
        """The post's state; NotFound when there is no such post."""

    async def permissions(self, community_id: uuid.UUID, user_id: str) -> Permissions: ...


class GrpcUpstream:
    def __init__(
        self, posts: grpc.aio.Channel, communities: grpc.aio.Channel, *, deadline: float
    ) -> None:
        self._posts = posts_pb2_grpc.PostsServiceStub(posts)
        self._communities = communities_pb2_grpc.CommunitiesServiceStub(communities)
        self._deadline = deadline

    async def post(self, post_id: uuid.UUID) -> PostState:
        try:
            answer = await self._posts.GetPost(
                posts_pb2.GetPostRequest(id=str(post_id)), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error(error, "posts", not_found="post not found") from error
        post = answer.post
        community_id = parse_uuid(post.community_id)
        if community_id is None:
            log.error("posts answered a post without a community id", extra={"post_id": post.id})
            raise Unavailable("posts answered an incomplete post")
        return PostState(
            id=post_id,
            community_id=community_id,
            locked=post.locked,
            removed=post.removed,
            deleted=post.deleted,
        )

    async def permissions(self, community_id: uuid.UUID, user_id: str) -> Permissions:
        try:
            answer = await self._communities.GetPermissions(
                communities_pb2.GetPermissionsRequest(
                    community_id=str(community_id), user_id=user_id
                ),
                timeout=self._deadline,
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error(error, "communities", not_found="community not found") from error
        return Permissions(
            community_exists=answer.community_exists,
            is_member=answer.is_member,
            is_moderator=answer.is_moderator,
            is_banned=answer.is_banned,
        )
