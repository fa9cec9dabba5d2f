"""Posts: creating and reading them, the listings (all, one community, the home feed),
editing, deleting and moderating.

Every answer names the community and the author and, for a signed-in caller,
carries `my_vote`; gateway.hydrate fills those in for a whole page at once.
"""

from __future__ import annotations

from typing import Annotated

from agora.posts.v1 import posts_pb2
from fastapi import APIRouter, Query, Response

from gateway.clients import Clients, PostsClient
from gateway.deps import (
    JSON_BODY,
    ClientsDep,
    CommunitiesClientDep,
    CurrentUser,
    OptionalUser,
    PostsClientDep,
)
from gateway.hydrate import post_payload_one, post_payloads
from gateway.openapi import BODY_STATUSES, problem_responses
from gateway.params import (
    CommunityNameParam,
    Paging,
    PagingDep,
    PostIdParam,
    community_name,
    resource_id,
)
from gateway.responses import JSONBytesResponse
from gateway.schemas.paging import page_payload
from gateway.schemas.posts import (
    CreatePostRequest,
    Post,
    PostModerationRequest,
    PostPage,
    PostSortName,
    TimeWindowName,
    UpdatePostRequest,
)

router = APIRouter(prefix="/api/v1", tags=["posts"])

_SORTS: dict[str, posts_pb2.PostSort.ValueType] = {
    "hot": posts_pb2.POST_SORT_HOT,
    "new": posts_pb2.POST_SORT_NEW,
    "top": posts_pb2.POST_SORT_TOP,
    "controversial": posts_pb2.POST_SORT_CONTROVERSIAL,
}
_WINDOWS: dict[str, posts_pb2.TimeWindow.ValueType] = {
    "hour": posts_pb2.TIME_WINDOW_HOUR,
    "day": posts_pb2.TIME_WINDOW_DAY,
    "week": posts_pb2.TIME_WINDOW_WEEK,
    "month": posts_pb2.TIME_WINDOW_MONTH,
    "year": posts_pb2.TIME_WINDOW_YEAR,
    "all": posts_pb2.TIME_WINDOW_ALL,
}
_ACTIONS: dict[str, posts_pb2.ModerationAction.ValueType] = {
    "remove": posts_pb2.MODERATION_ACTION_REMOVE,
    "restore": posts_pb2.MODERATION_ACTION_RESTORE,
    "lock": posts_pb2.MODERATION_ACTION_LOCK,
    "unlock": posts_pb2.MODERATION_ACTION_UNLOCK,
    "pin": posts_pb2.MODERATION_ACTION_PIN,
    "unpin": posts_pb2.MODERATION_ACTION_UNPIN,
}

SortQuery = Annotated[
    PostSortName,
    Query(
        description="`hot` (score and age), `new`, `top` (score) or `controversial` "
        "(many votes, evenly split)."
    ),
]
WindowQuery = Annotated[
    TimeWindowName | None,
    Query(description="The time window of `top` and `controversial` (default `day`)."),
]
_LISTING_ERRORS = (400, 401, 422, 503)


class _Listing:
    """The query every post listing takes: sort, time window and paging."""

    def __init__(self, sort: str, window: str | None, paging: Paging) -> None:
        self.sort = _SORTS[sort]
        self.window = _WINDOWS[window] if window else posts_pb2.TIME_WINDOW_UNSPECIFIED
        self.paging = paging


async def _page(
    posts: PostsClient,
    clients: Clients,
    listing: _Listing,
    *,
    signed_in: bool,
    community_id: str = "",
    community_ids: list[str] | None = None,
    community_names: dict[str, str] | None = None,
) -> Response:
    page = await posts.listing(
        community_id=community_id,
        community_ids=community_ids or (),
        sort=listing.sort,
        time_window=listing.window,
        page_size=listing.paging.limit,
        page_token=listing.paging.token,
    )
    items = await post_payloads(
        page.posts, clients, signed_in=signed_in, community_names=community_names
    )
    return JSONBytesResponse(page_payload(items, page.next_page_token))


@router.get(
    "/posts",
    response_model=PostPage,
    response_class=JSONBytesResponse,
    responses=problem_responses(*_LISTING_ERRORS),
    summary="Posts of every community",
)
async def list_posts(
    *,
    paging: PagingDep,
    user: OptionalUser,
    posts: PostsClientDep,
    clients: ClientsDep,
    sort: SortQuery = "hot",
    t: WindowQuery = None,
) -> Response:
    return await _page(posts, clients, _Listing(sort, t, paging), signed_in=user is not None)


@router.get(
    "/communities/{name}/posts",
    response_model=PostPage,
    response_class=JSONBytesResponse,
    responses=problem_responses(*_LISTING_ERRORS, 404),
    summary="Posts of one community",
)
async def list_community_posts(
    *,
    name: CommunityNameParam,
    paging: PagingDep,
    user: OptionalUser,
    communities: CommunitiesClientDep,
    posts: PostsClientDep,
    clients: ClientsDep,
    sort: SortQuery = "hot",
    t: WindowQuery = None,
) -> Response:
    """`hot` leads with the community's pinned posts on the first page."""
    community = await communities.get_by_name(community_name(name))
    return await _page(
        posts,
        clients,
        _Listing(sort, t, paging),
        signed_in=user is not None,
        community_id=community.id,
        community_names={community.id: community.name},
    )


@router.get(
    "/feed",
    response_model=PostPage,
    response_class=JSONBytesResponse,
    responses=problem_responses(*_LISTING_ERRORS),
    summary="The signed-in user's home feed: posts of the communities they joined",
)
async def feed(
    *,
    paging: PagingDep,
    user: CurrentUser,
    communities: CommunitiesClientDep,
    posts: PostsClientDep,
    clients: ClientsDep,
    sort: SortQuery = "hot",
    t: WindowQuery = None,
) -> Response:
    """Empty until the user joins a community. A cursor belongs to the set of communities
    it was made for: after joining or leaving one, start again from the first page."""
    joined = await communities.memberships(user.user_id)
    if not joined:
        return JSONBytesResponse(page_payload([], ""))
    return await _page(
        posts, clients, _Listing(sort, t, paging), signed_in=True, community_ids=joined
    )


@router.post(
    "/communities/{name}/posts",
    status_code=201,
    response_model=Post,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 503),
    dependencies=[JSON_BODY],
    summary="Create a post",
)
async def create(
    *,
    name: CommunityNameParam,
    body: CreatePostRequest,
    user: CurrentUser,
    communities: CommunitiesClientDep,
    posts: PostsClientDep,
    clients: ClientsDep,
) -> Response:
    """A text post, a link post or both; 403 for a user banned from the community."""
    community = await communities.get_by_name(community_name(name))
    post = await posts.create(
        community_id=community.id, title=body.title, body=body.body, url=body.url or ""
    )
    payload = await post_payload_one(
        post, clients, signed_in=True, community_names={community.id: community.name}
    )
    return JSONBytesResponse(
        payload, status_code=201, headers={"Location": f"/api/v1/posts/{post.id}"}
    )


@router.get(
    "/posts/{post_id}",
    response_model=Post,
    response_class=JSONBytesResponse,
    responses=problem_responses(401, 404, 503),
    summary="One post",
)
async def get(
    post_id: PostIdParam, user: OptionalUser, posts: PostsClientDep, clients: ClientsDep
) -> Response:
    post = await posts.get(resource_id(post_id, "post"))
    return JSONBytesResponse(await post_payload_one(post, clients, signed_in=user is not None))


@router.patch(
    "/posts/{post_id}",
    response_model=Post,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 503),
    dependencies=[JSON_BODY],
    summary="Edit a post (its author)",
)
async def update(
    post_id: PostIdParam,
    body: UpdatePostRequest,
    user: CurrentUser,
    posts: PostsClientDep,
    clients: ClientsDep,
) -> Response:
    """Sets `edited_at`; 403 for anyone but the author, 409 once it is deleted or removed."""
    post = await posts.update(resource_id(post_id, "post"), title=body.title, body=body.body)
    return JSONBytesResponse(await post_payload_one(post, clients, signed_in=True))


@router.delete(
    "/posts/{post_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 503),
    summary="Delete a post (its author)",
)
async def delete(post_id: PostIdParam, user: CurrentUser, posts: PostsClientDep) -> Response:
    """The post stays in place as `[deleted]` (no author, title or body) and its comments
    stay readable."""
    await posts.delete(resource_id(post_id, "post"))
    return Response(status_code=204)


@router.post(
    "/posts/{post_id}/moderation",
    response_model=Post,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 503),
    dependencies=[JSON_BODY],
    summary="Remove, restore, lock, unlock, pin or unpin a post (moderators)",
)
async def moderate(
    post_id: PostIdParam,
    body: PostModerationRequest,
    user: CurrentUser,
    posts: PostsClientDep,
    clients: ClientsDep,
) -> Response:
    """403 for anyone but the community's moderators."""
    post = await posts.moderate(
        resource_id(post_id, "post"), action=_ACTIONS[body.action], reason=body.reason
    )
    return JSONBytesResponse(await post_payload_one(post, clients, signed_in=True))
