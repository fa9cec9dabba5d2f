"""/api/v1/communities: the directory, one community, membership, moderators and bans.

Community names in paths go straight to the communities service, which looks
them up (404) and checks the caller's rights (403); usernames are resolved to
ids through auth first (404 for an unknown user). Posts of a community live in
gateway.routers.posts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from agora.communities.v1 import communities_pb2
from fastapi import APIRouter, Body, Query, Response

from gateway.cache import keys
from gateway.cache.dependency import CacheDep
from gateway.cache.document import item_document, page_document
from gateway.cache.personal import MEMBERSHIPS
from gateway.cache.service import Built
from gateway.cache.store import PersonalChange
from gateway.deps import (
    JSON_BODY,
    AuthClientDep,
    ClientsDep,
    CommunitiesClientDep,
    CurrentUser,
    OptionalUser,
)
from gateway.hydrate import community_payload_one, community_payloads
from gateway.openapi import BODY_STATUSES, problem_responses
from gateway.params import (
    CommunityNameParam,
    PagingDep,
    UsernameParam,
    community_name,
)
from gateway.params import username as valid_username
from gateway.responses import JSONBytesResponse
from gateway.schemas.communities import (
    BanRequest,
    Community,
    CommunityPage,
    CommunityRuleIn,
    CreateCommunityRequest,
    UpdateCommunityRequest,
)

router = APIRouter(prefix="/api/v1/communities", tags=["communities"])

_SORTS: dict[str, communities_pb2.CommunitySort.ValueType] = {
    "popular": communities_pb2.COMMUNITY_SORT_POPULAR,
    "new": communities_pb2.COMMUNITY_SORT_NEW,
}


def _rules(rules: list[CommunityRuleIn]) -> list[communities_pb2.CommunityRule]:
    return [communities_pb2.CommunityRule(title=r.title, description=r.description) for r in rules]


@router.post(
    "",
    status_code=201,
    response_model=Community,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 409, 503),
    dependencies=[JSON_BODY],
    summary="Create a community",
)
async def create(
    body: CreateCommunityRequest,
    user: CurrentUser,
    communities: CommunitiesClientDep,
    clients: ClientsDep,
    cache: CacheDep,
) -> Response:
    """The creator becomes its first member and moderator; 409 when the name is taken
    (case-insensitively)."""
    community = await communities.create(
        name=body.name, title=body.title, description=body.description, rules=_rules(body.rules)
    )
    await cache.invalidate(keys.COMMUNITIES, personal=PersonalChange(user.user_id, "members"))
    payload = await community_payload_one(community, clients, signed_in=True)
    return JSONBytesResponse(
        payload, status_code=201, headers={"Location": f"/api/v1/communities/{community.name}"}
    )


@router.get(
    "",
    response_model=CommunityPage,
    response_class=JSONBytesResponse,
    responses=problem_responses(400, 401, 422, 503),
    summary="List communities",
)
async def list_communities(
    *,
    paging: PagingDep,
    user: OptionalUser,
    communities: CommunitiesClientDep,
    clients: ClientsDep,
    cache: CacheDep,
    sort: Annotated[
        Literal["popular", "new"],
        Query(description="`popular`: most members first; `new`: newest first."),
    ] = "popular",
) -> Response:
    async def build() -> Built:
        page = await communities.listing(
            sort=_SORTS[sort], page_size=paging.limit, page_token=paging.token
        )
        items = await community_payloads(page.communities, clients, signed_in=False)
        tags = (keys.COMMUNITIES, *(keys.community_tag(item["name"]) for item in items))
        return Built(page_document(items, page.next_page_token or None), tags)

    return await cache.serve(
        keys.communities_page_entry(sort=sort, limit=paging.limit, cursor=paging.token),
        resource="communities",
        ttl_seconds=cache.ttls.listing,
        build=build,
        viewer=user.user_id if user else None,
        personal=MEMBERSHIPS,
    )


@router.get(
    "/{name}",
    response_model=Community,
    response_class=JSONBytesResponse,
    responses=problem_responses(401, 404, 503),
    summary="One community",
)
async def get(
    name: CommunityNameParam,
    user: OptionalUser,
    communities: CommunitiesClientDep,
    clients: ClientsDep,
    cache: CacheDep,
) -> Response:
    path_name = community_name(name)

    async def build() -> Built:
        community = await communities.get_by_name(path_name)
        payload = await community_payload_one(community, clients, signed_in=False)
        return Built(
            item_document(payload, personal_id=community.id),
            (keys.community_tag(community.name),),
        )

    return await cache.serve(
        keys.community_entry(path_name),
        resource="community",
        ttl_seconds=cache.ttls.community,
        build=build,
        viewer=user.user_id if user else None,
        personal=MEMBERSHIPS,
    )


@router.patch(
    "/{name}",
    response_model=Community,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 503),
    dependencies=[JSON_BODY],
    summary="Change a community's title, description or rules (moderators)",
)
async def update(
    *,
    name: CommunityNameParam,
    body: UpdateCommunityRequest,
    user: CurrentUser,
    communities: CommunitiesClientDep,
    clients: ClientsDep,
    cache: CacheDep,
) -> Response:
    """Only the members given change; `rules` replaces the whole list."""
    community = await communities.update(
        community_name(name),
        title=body.title,
        description=body.description,
        rules=None if body.rules is None else _rules(body.rules),
    )
    await cache.invalidate(keys.community_tag(community.name))
    payload = await community_payload_one(community, clients, signed_in=True)
    return JSONBytesResponse(payload)


@router.put(
    "/{name}/membership",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 503),
    summary="Join a community",
)
async def join(
    name: CommunityNameParam, user: CurrentUser, communities: CommunitiesClientDep, cache: CacheDep
) -> Response:
    """Joining again changes nothing; 403 for a user banned from it."""
    await communities.join(community_name(name))
    await _membership_changed(cache, name, user.user_id)
    return Response(status_code=204)


async def _membership_changed(cache: CacheDep, name: str, user_id: str) -> None:
    """The community's member count and the user's own membership list are stale."""
    await cache.invalidate(keys.community_tag(name), personal=PersonalChange(user_id, "members"))


@router.delete(
    "/{name}/membership",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 404, 503),
    summary="Leave a community",
)
async def leave(
    name: CommunityNameParam, user: CurrentUser, communities: CommunitiesClientDep, cache: CacheDep
) -> Response:
    """Leaving again changes nothing; moderators who leave stay moderators."""
    await communities.leave(community_name(name))
    await _membership_changed(cache, name, user.user_id)
    return Response(status_code=204)


async def _user_id(auth: AuthClientDep, name: str) -> str:
    return (await auth.get_user_by_username(valid_username(name))).id


@router.put(
    "/{name}/moderators/{username}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 409, 503),
    summary="Appoint a moderator (moderators)",
)
async def add_moderator(
    *,
    name: CommunityNameParam,
    username: UsernameParam,
    user: CurrentUser,
    auth: AuthClientDep,
    communities: CommunitiesClientDep,
    cache: CacheDep,
) -> Response:
    """The user also becomes a member; appointing a moderator again changes nothing.
    409 for a user banned from the community."""
    community = community_name(name)
    appointed = await _user_id(auth, username)
    await communities.add_moderator(community, appointed)
    await _membership_changed(cache, community, appointed)
    return Response(status_code=204)


@router.delete(
    "/{name}/moderators/{username}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 409, 503),
    summary="Dismiss a moderator (moderators)",
)
async def remove_moderator(
    *,
    name: CommunityNameParam,
    username: UsernameParam,
    user: CurrentUser,
    auth: AuthClientDep,
    communities: CommunitiesClientDep,
    cache: CacheDep,
) -> Response:
    """Moderators may dismiss each other or step down, but never the last moderator (409)."""
    community = community_name(name)
    await communities.remove_moderator(community, await _user_id(auth, username))
    await cache.invalidate(keys.community_tag(community))
    return Response(status_code=204)


@router.put(
    "/{name}/bans/{username}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 503),
    dependencies=[JSON_BODY],
    summary="Ban a user from a community (moderators)",
)
async def ban(
    *,
    name: CommunityNameParam,
    username: UsernameParam,
    user: CurrentUser,
    auth: AuthClientDep,
    communities: CommunitiesClientDep,
    cache: CacheDep,
    body: Annotated[BanRequest | None, Body()] = None,
) -> Response:
    """A banned user cannot post, comment or vote there (403) and stops being a member;
    banning again replaces the reason. Moderators cannot be banned, nor can oneself (409)."""
    community = community_name(name)
    banned = await _user_id(auth, username)
    await communities.ban(community, banned, reason=body.reason if body else "")
    await _membership_changed(cache, community, banned)
    return Response(status_code=204)


@router.delete(
    "/{name}/bans/{username}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 503),
    summary="Lift a ban (moderators)",
)
async def unban(
    name: CommunityNameParam,
    username: UsernameParam,
    user: CurrentUser,
    auth: AuthClientDep,
    communities: CommunitiesClientDep,
) -> Response:
    """Lifting a ban that is not there changes nothing; the user may join again."""
    community = community_name(name)
    await communities.unban(community, await _user_id(auth, username))
    return Response(status_code=204)
