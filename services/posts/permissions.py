"""Who may do what in a community: the one question posts asks the communities service.

Every write that acts in a community on someone's behalf (create, edit,
moderate) asks communities.GetPermissions first, over the one channel the
process opened at start-up. Its failures become domain errors here, so a
communities outage reads as UNAVAILABLE to the caller, never as a 500.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

import grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc

from common.grpc_client import upstream_error

COMMUNITY_NOT_FOUND = "community not found"


@dataclass(frozen=True, slots=True)
class Permissions:
    community_exists: bool
    is_member: bool
    is_moderator: bool
    is_banned: bool


class PermissionSource(Protocol):
    async def permissions(self, community_id: uuid.UUID, user_id: uuid.UUID) -> Permissions: ...


class CommunitiesPermissions:
    """PermissionSource over gRPC to the communities service."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = communities_pb2_grpc.CommunitiesServiceStub(channel)
        self._deadline = deadline_seconds

    async def permissions(self, community_id: uuid.UUID, user_id: uuid.UUID) -> Permissions:
        request = communities_pb2.GetPermissionsRequest(
            community_id=str(community_id), user_id=str(user_id)
        )
        try:
            answer = await self._stub.GetPermissions(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            raise upstream_error(error, "communities", not_found=COMMUNITY_NOT_FOUND) from error
        return Permissions(
            community_exists=answer.community_exists,
            is_member=answer.is_member,
            is_moderator=answer.is_moderator,
            is_banned=answer.is_banned,
        )
