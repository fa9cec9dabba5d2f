"""GET /api/v1/search: full-text search over posts, communities or comments.

Each service searches its own data (tsvector and GIN indexes, best match
first); `community` narrows posts and comments to one community, named as in
paths. Results come in the same shapes as everywhere else.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from common.contract import SEARCH_QUERY_MAX, SEARCH_QUERY_MIN
from gateway.deps import ClientsDep, OptionalUser, running
from gateway.hydrate import comment_payloads, community_payloads, post_payloads
from gateway.openapi import problem_responses
from gateway.params import PagingDep, community_name
from gateway.responses import JSONBytesResponse
from gateway.schemas.comments import CommentPage
from gateway.schemas.communities import CommunityPage
from gateway.schemas.paging import page_payload
from gateway.schemas.posts import PostPage

router = APIRouter(prefix="/api/v1", tags=["search"])


@router.get(
    "/search",
    response_model=PostPage | CommunityPage | CommentPage,
    response_class=JSONBytesResponse,
    responses=problem_responses(400, 401, 404, 422, 503),
    summary="Search posts, communities or comments, best match first",
)
async def search(
    *,
    q: Annotated[
        str,
        Query(
            min_length=SEARCH_QUERY_MIN,
            max_length=SEARCH_QUERY_MAX,
            description='Words to find; `"a phrase"`, `or` and `-word` work as on web search.',
        ),
    ],
    paging: PagingDep,
    user: OptionalUser,
    clients: ClientsDep,
    kind: Annotated[
        Literal["posts", "communities", "comments"],
        Query(
            alias="type",
            description="What to search; the page holds `Post`, `Community` or `Comment`.",
        ),
    ] = "posts",
    community: Annotated[
        str | None,
        Query(description="Only posts or comments of this community (by name); 404 if none."),
    ] = None,
) -> Response:
    signed_in = user is not None
    if kind == "communities":
        found = await running(clients.communities, "communities").search(
            query=q, page_size=paging.limit, page_token=paging.token
        )
        items = await community_payloads(found.communities, clients, signed_in=signed_in)
        return JSONBytesResponse(page_payload(items, found.next_page_token))

    community_id, names = "", {}
    if community is not None:
        named = await running(clients.communities, "communities").get_by_name(
            community_name(community)
        )
        community_id, names = named.id, {named.id: named.name}
    if kind == "posts":
        posts = await running(clients.posts, "posts").search(
            query=q, community_id=community_id, page_size=paging.limit, page_token=paging.token
        )
        items = await post_payloads(
            posts.posts, clients, signed_in=signed_in, community_names=names
        )
        return JSONBytesResponse(page_payload(items, posts.next_page_token))
    comments = await running(clients.comments, "comments").search(
        query=q, community_id=community_id, page_size=paging.limit, page_token=paging.token
    )
    items = await comment_payloads(comments.comments, clients, signed_in=signed_in, flat=True)
    return JSONBytesResponse(page_payload(items, comments.next_page_token))
