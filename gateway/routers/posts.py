"""Posts: creating and reading them, the listings (all, one community, the home feed),
editing, deleting and moderating.

Every answer names the community and the author and, for a signed-in caller,
carries `my_vote`; gateway.hydrate fills those in for a whole page at once.
One post and the listings of all posts and of a community are served through
the response cache (gateway.cache): shared anonymous bytes, the caller's
`my_vote` spliced in. Writes invalidate what they changed; the home feed is
the caller's own and is not cached.
"""

from __future__ import annotations

from typing import Annotated

from agora.posts.v1 import posts_pb2
from fastapi import APIRouter, Query, Response

from gateway.cache import keys
from gateway.cache.dependency import CacheDep
from gateway.cache.document import item_document, page_document
from gateway.cache.personal import POST_VOTES
from gateway.cache.service import Built
from gateway.clients import Clients, PostsClient
from gateway.deps import (
    JSON_BODY,
    ClientsDep,
    CommunitiesClientDep,
    CurrentUser,
    OptionalUser,
    PostsClientDep,
)
from gateway.hydrate import post_payload_one, post_payloads, shared_post_payloads
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


async def _shared_page(
    posts: PostsClient,
    clients: Clients,
    listing: _Listing,
    *,
    scope_tag: str,
    community_id: str = "",
    community_names: dict[str, str] | None = None,
) -> Built:
    """A listing page for the cache: anonymous, exact tallies, tagged with every post on it."""
    page = await posts.listing(
        community_id=community_id,
        sort=listing.sort,
        time_window=listing.window,
        page_size=listing.paging.limit,
        page_token=listing.paging.token,
    )
    shared = await shared_post_payloads(page.posts, clients, community_names=community_names)
    tags = (scope_tag, *(keys.post_tag(item["id"]) for item in shared.items))
    # Right after a vote, posts may not have re-ranked yet: a page in that old order is
    # served but not kept (its next read, once posts caught up, stores the new order).
    return Built(
        page_document(shared.items, page.next_page_token or None),
        tags,
        cacheable=shared.exact and shared.settled,
    )


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
    cache: CacheDep,
    sort: SortQuery = "hot",
    t: WindowQuery = None,
) -> Response:
    listing = _Listing(sort, t, paging)

    async def build() -> Built:
        return await _shared_page(posts, clients, listing, scope_tag=keys.ALL_POSTS)

    return await cache.serve(
        keys.posts_page_entry("all", sort=sort, window=t, limit=paging.limit, cursor=paging.token),
        resource="posts",
        ttl_seconds=cache.ttls.listing,
        build=build,
        viewer=user.user_id if user else None,
        personal=POST_VOTES,
    )


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
    cache: CacheDep,
    sort: SortQuery = "hot",
    t: WindowQuery = None,
) -> Response:
    """`hot` leads with the community's pinned posts on the first page."""
    listing = _Listing(sort, t, paging)
    path_name = community_name(name)

    async def build() -> Built:
        community = await communities.get_by_name(path_name)
        return await _shared_page(
            posts,
            clients,
            listing,
            scope_tag=keys.community_posts_tag(community.name),
            community_id=community.id,
            community_names={community.id: community.name},
        )

    return await cache.serve(
        keys.posts_page_entry(
            f"c/{path_name}", sort=sort, window=t, limit=paging.limit, cursor=paging.token
        ),
        resource="posts",
        ttl_seconds=cache.ttls.listing,
        build=build,
        viewer=user.user_id if user else None,
        personal=POST_VOTES,
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
    cache: CacheDep,
) -> Response:
    """A text post, a link post or both; 403 for a user banned from the community."""
    community = await communities.get_by_name(community_name(name))
    post = await posts.create(
        community_id=community.id, title=body.title, body=body.body, url=body.url or ""
    )
    await cache.invalidate(keys.ALL_POSTS, keys.community_posts_tag(community.name))
    # The community's post_count follows from an event a moment later.
    cache.invalidate_later(keys.community_tag(community.name))
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
    post_id: PostIdParam,
    user: OptionalUser,
    posts: PostsClientDep,
    clients: ClientsDep,
    cache: CacheDep,
) -> Response:
    target = resource_id(post_id, "post")

    async def build() -> Built:
        post = await posts.get(target)
        shared = await shared_post_payloads([post], clients)
        (item,) = shared.items
        return Built(
            item_document(item, personal_id=post.id),
            (keys.post_tag(post.id),),
            cacheable=shared.exact,
        )

    return await cache.serve(
        keys.post_entry(target),
        resource="post",
        ttl_seconds=cache.ttls.post,
        build=build,
        viewer=user.user_id if user else None,
        personal=POST_VOTES,
    )


@router.patch(
    "/posts/{post_id}",
    response_model=Post,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 503),
    dependencies=[JSON_BODY],
    summary="Edit a post (its author)",
)
async def update(
    *,
    post_id: PostIdParam,
    body: UpdatePostRequest,
    user: CurrentUser,
    posts: PostsClientDep,
    clients: ClientsDep,
    cache: CacheDep,
) -> Response:
    """Sets `edited_at`; 403 for anyone but the author, 409 once it is deleted or removed."""
    post = await posts.update(resource_id(post_id, "post"), title=body.title, body=body.body)
    await cache.invalidate(keys.post_tag(post.id))
    return JSONBytesResponse(await post_payload_one(post, clients, signed_in=True))


@router.delete(
    "/posts/{post_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 503),
    summary="Delete a post (its author)",
)
async def delete(
    post_id: PostIdParam, user: CurrentUser, posts: PostsClientDep, cache: CacheDep
) -> Response:
    """The post stays in place as `[deleted]` (no author, title or body) and its comments
    stay readable."""
    target = resource_id(post_id, "post")
    await posts.delete(target)
    await cache.invalidate(keys.post_tag(target))
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
    *,
    post_id: PostIdParam,
    body: PostModerationRequest,
    user: CurrentUser,
    posts: PostsClientDep,
    clients: ClientsDep,
    cache: CacheDep,
) -> Response:
    """403 for anyone but the community's moderators."""
    post = await posts.moderate(
        resource_id(post_id, "post"), action=_ACTIONS[body.action], reason=body.reason
    )
    payload = await post_payload_one(post, clients, signed_in=True)
    # Removing, restoring and pinning also change which posts listings show, and in what order.
    await cache.invalidate(
        keys.post_tag(post.id), keys.ALL_POSTS, keys.community_posts_tag(payload["community"])
    )
    return JSONBytesResponse(payload)
