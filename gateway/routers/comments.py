"""Comments: a post's comment trees, one comment's thread, writing, editing, deleting
and moderating comments.

Trees come from the comments service in one answer; gateway.hydrate fills in
every author and, for a signed-in caller, every `my_vote` at any depth with
one batch call each.

Comment trees are not cached (every reply and vote would invalidate them), but
a post's cached answers show its `comment_count`, which the posts service
updates from comment events a moment after each write: writes here invalidate
the post once that has settled.
"""

from __future__ import annotations

from typing import Annotated

from agora.comments.v1 import comments_pb2
from fastapi import APIRouter, Query, Response

from common.contract import COMMENT_MAX_DEPTH
from gateway.cache import keys
from gateway.cache.dependency import CacheDep
from gateway.deps import (
    JSON_BODY,
    ClientsDep,
    CommentsClientDep,
    CurrentUser,
    OptionalUser,
    running,
)
from gateway.hydrate import comment_payload_one, comment_payloads
from gateway.openapi import BODY_STATUSES, problem_responses
from gateway.params import CommentIdParam, PagingDep, PostIdParam, resource_id
from gateway.responses import JSONBytesResponse
from gateway.schemas.comments import (
    Comment,
    CommentModerationRequest,
    CommentPage,
    CommentSortName,
    CreateCommentRequest,
    UpdateCommentRequest,
)
from gateway.schemas.paging import page_payload

router = APIRouter(prefix="/api/v1", tags=["comments"])

_SORTS: dict[str, comments_pb2.CommentSort.ValueType] = {
    "best": comments_pb2.COMMENT_SORT_BEST,
    "top": comments_pb2.COMMENT_SORT_TOP,
    "new": comments_pb2.COMMENT_SORT_NEW,
    "controversial": comments_pb2.COMMENT_SORT_CONTROVERSIAL,
}
_ACTIONS: dict[str, comments_pb2.CommentModerationAction.ValueType] = {
    "remove": comments_pb2.COMMENT_MODERATION_ACTION_REMOVE,
    "restore": comments_pb2.COMMENT_MODERATION_ACTION_RESTORE,
}

SortQuery = Annotated[
    CommentSortName,
    Query(
        description="`best` (Wilson lower bound of the upvote share), `top` (score), "
        "`new` or `controversial`; every level of replies is sorted alike."
    ),
]
MaxDepthQuery = Annotated[
    int,
    Query(
        ge=0,
        le=COMMENT_MAX_DEPTH,
        description="Levels of replies to include (0: none); deeper ones are counted in "
        "`more_replies`.",
    ),
]


@router.post(
    "/posts/{post_id}/comments",
    status_code=201,
    response_model=Comment,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 503),
    dependencies=[JSON_BODY],
    summary="Comment on a post, or reply to a comment",
)
async def create(
    *,
    post_id: PostIdParam,
    body: CreateCommentRequest,
    user: CurrentUser,
    comments: CommentsClientDep,
    clients: ClientsDep,
    cache: CacheDep,
) -> Response:
    """403 on a locked, removed or deleted post, under a removed comment, or for a user
    banned from the community; 422 (`parent_id`) beyond depth 10 or for a parent that is
    not a comment of this post."""
    comment = await comments.create(
        post_id=resource_id(post_id, "post"), parent_id=body.parent_id or "", body=body.body
    )
    cache.invalidate_later(keys.post_tag(comment.post_id))
    payload = await comment_payload_one(comment, clients, signed_in=True, flat=True)
    return JSONBytesResponse(
        payload, status_code=201, headers={"Location": f"/api/v1/comments/{comment.id}"}
    )


@router.get(
    "/posts/{post_id}/comments",
    response_model=CommentPage,
    response_class=JSONBytesResponse,
    responses=problem_responses(400, 401, 404, 422, 503),
    summary="A post's comment trees, a page of top-level comments at a time",
)
async def list_comments(
    *,
    post_id: PostIdParam,
    paging: PagingDep,
    user: OptionalUser,
    comments: CommentsClientDep,
    clients: ClientsDep,
    sort: SortQuery = "best",
    max_depth: MaxDepthQuery = COMMENT_MAX_DEPTH,
) -> Response:
    """`limit` counts top-level comments; each comes with its replies. 404 for an unknown
    post."""
    post = resource_id(post_id, "post")
    page = await comments.tree(
        post,
        sort=_SORTS[sort],
        max_depth=max_depth,
        page_size=paging.limit,
        page_token=paging.token,
    )
    if not page.comments and not paging.token:
        # The comments service knows comments, not posts: an empty first page may
        # mean no such post. Only then is the post looked up (404 if missing).
        await running(clients.posts, "posts").get(post)
    items = await comment_payloads(page.comments, clients, signed_in=user is not None)
    return JSONBytesResponse(page_payload(items, page.next_page_token))


@router.get(
    "/comments/{comment_id}",
    response_model=Comment,
    response_class=JSONBytesResponse,
    responses=problem_responses(401, 404, 422, 503),
    summary="One comment with its replies (continue a thread)",
)
async def get(
    *,
    comment_id: CommentIdParam,
    user: OptionalUser,
    comments: CommentsClientDep,
    clients: ClientsDep,
    sort: SortQuery = "best",
    max_depth: MaxDepthQuery = COMMENT_MAX_DEPTH,
) -> Response:
    comment = await comments.get(
        resource_id(comment_id, "comment"), max_depth=max_depth, sort=_SORTS[sort]
    )
    return JSONBytesResponse(
        await comment_payload_one(comment, clients, signed_in=user is not None)
    )


@router.patch(
    "/comments/{comment_id}",
    response_model=Comment,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 503),
    dependencies=[JSON_BODY],
    summary="Edit a comment (its author)",
)
async def update(
    comment_id: CommentIdParam,
    body: UpdateCommentRequest,
    user: CurrentUser,
    comments: CommentsClientDep,
    clients: ClientsDep,
) -> Response:
    """Sets `edited_at`; 403 for anyone but the author, 409 once it is deleted or removed.
    The answer carries no replies (`more_replies` counts the direct ones)."""
    comment = await comments.update(resource_id(comment_id, "comment"), body=body.body)
    return JSONBytesResponse(await comment_payload_one(comment, clients, signed_in=True, flat=True))


@router.delete(
    "/comments/{comment_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 503),
    summary="Delete a comment (its author)",
)
async def delete(
    comment_id: CommentIdParam, user: CurrentUser, comments: CommentsClientDep, cache: CacheDep
) -> Response:
    """It stays in the tree as `[deleted]`, so its replies stay readable."""
    target = resource_id(comment_id, "comment")
    # Which post's count changes: the delete itself answers nothing.
    comment = await comments.get(target, max_depth=0, sort=comments_pb2.COMMENT_SORT_NEW)
    await comments.delete(target)
    cache.invalidate_later(keys.post_tag(comment.post_id))
    return Response(status_code=204)


@router.post(
    "/comments/{comment_id}/moderation",
    response_model=Comment,
    response_class=JSONBytesResponse,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 503),
    dependencies=[JSON_BODY],
    summary="Remove or restore a comment (moderators)",
)
async def moderate(
    *,
    comment_id: CommentIdParam,
    body: CommentModerationRequest,
    user: CurrentUser,
    comments: CommentsClientDep,
    clients: ClientsDep,
    cache: CacheDep,
) -> Response:
    """403 for anyone but the community's moderators."""
    comment = await comments.moderate(
        resource_id(comment_id, "comment"), action=_ACTIONS[body.action], reason=body.reason
    )
    cache.invalidate_later(keys.post_tag(comment.post_id))
    return JSONBytesResponse(await comment_payload_one(comment, clients, signed_in=True, flat=True))
