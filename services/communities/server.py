"""The CommunitiesService gRPC servicer: proto in, use case, proto out.

Nothing here decides anything: it reads the caller from the verified identity
metadata (common.context), calls one CommunitiesService use case and converts
the answer. Failures are common.errors types, which the server interceptor
turns into status codes with field violations named as in the public API
(name, title, description, rules[i].title, reason, limit, cursor, q, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

import grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc

from common.context import caller_id, require_caller
from common.wire import timestamp
from services.communities.domain import Community, Sort
from services.communities.service import CommunitiesService, Page

Context = grpc.aio.ServicerContext[Any, Any]

# An unspecified sort lists the most popular communities, as Reddit's directory does.
_SORTS = {
    communities_pb2.COMMUNITY_SORT_UNSPECIFIED: Sort.POPULAR,
    communities_pb2.COMMUNITY_SORT_POPULAR: Sort.POPULAR,
    communities_pb2.COMMUNITY_SORT_NEW: Sort.NEW,
}


def community_message(community: Community) -> communities_pb2.Community:
    return communities_pb2.Community(
        id=str(community.id),
        name=community.name,
        title=community.title,
        description=community.description,
        rules=[
            communities_pb2.CommunityRule(title=rule.title, description=rule.description)
            for rule in community.rules
        ],
        created_at=timestamp(community.created_at),
        member_count=community.member_count,
        post_count=community.post_count,
        moderator_ids=[str(moderator) for moderator in community.moderator_ids],
        creator_id=str(community.creator_id),
        is_member=community.is_member,
    )


def _rules(rules: Iterable[communities_pb2.CommunityRule]) -> list[tuple[str, str]]:
    return [(rule.title, rule.description) for rule in rules]


def _page(page: Page) -> tuple[list[communities_pb2.Community], str]:
    return [community_message(item) for item in page.items], page.next_cursor


class CommunitiesServicer(communities_pb2_grpc.CommunitiesServiceServicer):
    def __init__(self, service: CommunitiesService) -> None:
        self._service = service

    async def CreateCommunity(
        self, request: communities_pb2.CreateCommunityRequest, context: Context
    ) -> communities_pb2.CreateCommunityResponse:
        community = await self._service.create(
            require_caller(),
            name=request.name,
            title=request.title,
            description=request.description,
            rules=_rules(request.rules),
        )
        return communities_pb2.CreateCommunityResponse(community=community_message(community))

    async def GetCommunity(
        self, request: communities_pb2.GetCommunityRequest, context: Context
    ) -> communities_pb2.GetCommunityResponse:
        lookup = request.WhichOneof("lookup")
        community = await self._service.get(
            community_id=request.id if lookup == "id" else "",
            name=request.name if lookup == "name" else "",
            reader=caller_id(),
        )
        return communities_pb2.GetCommunityResponse(community=community_message(community))

    async def BatchGetCommunities(
        self, request: communities_pb2.BatchGetCommunitiesRequest, context: Context
    ) -> communities_pb2.BatchGetCommunitiesResponse:
        found = await self._service.batch_get(list(request.ids), reader=caller_id())
        return communities_pb2.BatchGetCommunitiesResponse(
            communities=[community_message(community) for community in found]
        )

    async def ListCommunities(
        self, request: communities_pb2.ListCommunitiesRequest, context: Context
    ) -> communities_pb2.ListCommunitiesResponse:
        items, token = _page(
            await self._service.list_communities(
                _SORTS.get(request.sort, Sort.POPULAR),
                limit=request.page_size,
                cursor=request.page_token,
                reader=caller_id(),
            )
        )
        return communities_pb2.ListCommunitiesResponse(communities=items, next_page_token=token)

    async def UpdateCommunity(
        self, request: communities_pb2.UpdateCommunityRequest, context: Context
    ) -> communities_pb2.UpdateCommunityResponse:
        community = await self._service.update(
            require_caller(),
            request.name,
            title=request.title if request.HasField("title") else None,
            description=request.description if request.HasField("description") else None,
            rules=_rules(request.rules) if request.update_rules else None,
        )
        return communities_pb2.UpdateCommunityResponse(community=community_message(community))

    async def JoinCommunity(
        self, request: communities_pb2.JoinCommunityRequest, context: Context
    ) -> communities_pb2.JoinCommunityResponse:
        await self._service.join(require_caller(), request.name)
        return communities_pb2.JoinCommunityResponse()

    async def LeaveCommunity(
        self, request: communities_pb2.LeaveCommunityRequest, context: Context
    ) -> communities_pb2.LeaveCommunityResponse:
        await self._service.leave(require_caller(), request.name)
        return communities_pb2.LeaveCommunityResponse()

    async def AddModerator(
        self, request: communities_pb2.AddModeratorRequest, context: Context
    ) -> communities_pb2.AddModeratorResponse:
        await self._service.add_moderator(require_caller(), request.name, request.user_id)
        return communities_pb2.AddModeratorResponse()

    async def RemoveModerator(
        self, request: communities_pb2.RemoveModeratorRequest, context: Context
    ) -> communities_pb2.RemoveModeratorResponse:
        await self._service.remove_moderator(require_caller(), request.name, request.user_id)
        return communities_pb2.RemoveModeratorResponse()

    async def BanUser(
        self, request: communities_pb2.BanUserRequest, context: Context
    ) -> communities_pb2.BanUserResponse:
        await self._service.ban(
            require_caller(),
            request.name,
            request.user_id,
            reason=request.reason,
            expires_at=request.expires_at.ToDatetime(tzinfo=UTC)
            if request.HasField("expires_at")
            else None,
        )
        return communities_pb2.BanUserResponse()

    async def UnbanUser(
        self, request: communities_pb2.UnbanUserRequest, context: Context
    ) -> communities_pb2.UnbanUserResponse:
        await self._service.unban(require_caller(), request.name, request.user_id)
        return communities_pb2.UnbanUserResponse()

    async def GetPermissions(
        self, request: communities_pb2.GetPermissionsRequest, context: Context
    ) -> communities_pb2.GetPermissionsResponse:
        # Without a user_id the question is about the caller (or an anonymous reader).
        permissions = await self._service.permissions(
            request.community_id, request.user_id or caller_id() or ""
        )
        return communities_pb2.GetPermissionsResponse(
            community_exists=permissions.community_exists,
            is_member=permissions.is_member,
            is_moderator=permissions.is_moderator,
            is_banned=permissions.is_banned,
        )

    async def ListMemberships(
        self, request: communities_pb2.ListMembershipsRequest, context: Context
    ) -> communities_pb2.ListMembershipsResponse:
        community_ids = await self._service.memberships(request.user_id or require_caller())
        return communities_pb2.ListMembershipsResponse(
            community_ids=[str(community_id) for community_id in community_ids]
        )

    async def SearchCommunities(
        self, request: communities_pb2.SearchCommunitiesRequest, context: Context
    ) -> communities_pb2.SearchCommunitiesResponse:
        items, token = _page(
            await self._service.search(
                request.query,
                limit=request.page_size,
                cursor=request.page_token,
                reader=caller_id(),
            )
        )
        return communities_pb2.SearchCommunitiesResponse(communities=items, next_page_token=token)
