"""The PostsService gRPC servicer: proto in, use case, proto out.

Nothing here decides anything: it maps enums and the caller identity, calls
one PostsService use case and converts the answer. Failures are raised as
common.errors types, which the server interceptor turns into status codes with
field violations named as in the public API (title, body, url, action,
reason, sort, t, limit, cursor, q, ids).
"""

from __future__ import annotations

from typing import Any

import grpc
from agora.posts.v1 import posts_pb2, posts_pb2_grpc

from common.context import require_caller
from common.errors import InvalidArgument
from common.wire import set_timestamp, timestamp
from services.posts.domain import Action, PostView, Sort, Window
from services.posts.service import PostsService

Context = grpc.aio.ServicerContext[Any, Any]

_SORTS = {
    posts_pb2.POST_SORT_UNSPECIFIED: Sort.HOT,
    posts_pb2.POST_SORT_HOT: Sort.HOT,
    posts_pb2.POST_SORT_NEW: Sort.NEW,
    posts_pb2.POST_SORT_TOP: Sort.TOP,
    posts_pb2.POST_SORT_CONTROVERSIAL: Sort.CONTROVERSIAL,
}
_WINDOWS = {
    posts_pb2.TIME_WINDOW_UNSPECIFIED: None,
    posts_pb2.TIME_WINDOW_HOUR: Window.HOUR,
    posts_pb2.TIME_WINDOW_DAY: Window.DAY,
    posts_pb2.TIME_WINDOW_WEEK: Window.WEEK,
    posts_pb2.TIME_WINDOW_MONTH: Window.MONTH,
    posts_pb2.TIME_WINDOW_YEAR: Window.YEAR,
    posts_pb2.TIME_WINDOW_ALL: Window.ALL,
}
_ACTIONS = {
    posts_pb2.MODERATION_ACTION_REMOVE: Action.REMOVE,
    posts_pb2.MODERATION_ACTION_RESTORE: Action.RESTORE,
    posts_pb2.MODERATION_ACTION_LOCK: Action.LOCK,
    posts_pb2.MODERATION_ACTION_UNLOCK: Action.UNLOCK,
    posts_pb2.MODERATION_ACTION_PIN: Action.PIN,
    posts_pb2.MODERATION_ACTION_UNPIN: Action.UNPIN,
}


def post_message(post: PostView) -> posts_pb2.Post:
    message = posts_pb2.Post(
        id=str(post.id),
        community_id=str(post.community_id),
        author_id=str(post.author_id) if post.author_id else "",
        title=post.title,
        body=post.body,
        url=post.url,
        score=post.score,
        upvotes=post.upvotes,
        downvotes=post.downvotes,
        comment_count=post.comment_count,
        created_at=timestamp(post.created_at),
        locked=post.locked,
        removed=post.removed,
        pinned=post.pinned,
        deleted=post.deleted,
    )
    if post.edited_at is not None:
        set_timestamp(message.edited_at, post.edited_at)
    return message


def _sort(value: posts_pb2.PostSort.ValueType) -> Sort:
    try:
        return _SORTS[value]
    except KeyError:
        raise InvalidArgument.for_field("sort", "unknown sort") from None


def _window(value: posts_pb2.TimeWindow.ValueType) -> Window | None:
    try:
        return _WINDOWS[value]
    except KeyError:
        raise InvalidArgument.for_field("t", "unknown time window") from None


def _action(value: posts_pb2.ModerationAction.ValueType) -> Action:
    try:
        return _ACTIONS[value]
    except KeyError:
        raise InvalidArgument.for_field(
            "action", "must be remove, restore, lock, unlock, pin or unpin"
        ) from None


class PostsServicer(posts_pb2_grpc.PostsServiceServicer):
    def __init__(self, service: PostsService) -> None:
        self._service = service

    async def CreatePost(
        self, request: posts_pb2.CreatePostRequest, context: Context
    ) -> posts_pb2.CreatePostResponse:
        post = await self._service.create_post(
            require_caller(), request.community_id, request.title, request.body, request.url
        )
        return posts_pb2.CreatePostResponse(post=post_message(post))

    async def GetPost(
        self, request: posts_pb2.GetPostRequest, context: Context
    ) -> posts_pb2.GetPostResponse:
        post = await self._service.get_post(request.id)
        return posts_pb2.GetPostResponse(post=post_message(post))

    async def BatchGetPosts(
        self, request: posts_pb2.BatchGetPostsRequest, context: Context
    ) -> posts_pb2.BatchGetPostsResponse:
        posts = await self._service.batch_get_posts(list(request.ids))
        return posts_pb2.BatchGetPostsResponse(posts=[post_message(p) for p in posts])

    async def UpdatePost(
        self, request: posts_pb2.UpdatePostRequest, context: Context
    ) -> posts_pb2.UpdatePostResponse:
        post = await self._service.update_post(
            require_caller(),
            request.id,
            title=request.title if request.HasField("title") else None,
            body=request.body if request.HasField("body") else None,
        )
        return posts_pb2.UpdatePostResponse(post=post_message(post))

    async def DeletePost(
        self, request: posts_pb2.DeletePostRequest, context: Context
    ) -> posts_pb2.DeletePostResponse:
        await self._service.delete_post(require_caller(), request.id)
        return posts_pb2.DeletePostResponse()

    async def ModeratePost(
        self, request: posts_pb2.ModeratePostRequest, context: Context
    ) -> posts_pb2.ModeratePostResponse:
        caller = require_caller()
        post = await self._service.moderate_post(
            caller, request.id, _action(request.action), request.reason
        )
        return posts_pb2.ModeratePostResponse(post=post_message(post))

    async def ListPosts(
        self, request: posts_pb2.ListPostsRequest, context: Context
    ) -> posts_pb2.ListPostsResponse:
        scope = self._service.scope_of(
            request.community_id, list(request.community_ids), request.all_communities
        )
        page = await self._service.list_posts(
            scope,
            _sort(request.sort),
            _window(request.time_window),
            request.page_size,
            request.page_token,
        )
        return posts_pb2.ListPostsResponse(
            posts=[post_message(p) for p in page.items], next_page_token=page.next_token
        )

    async def SearchPosts(
        self, request: posts_pb2.SearchPostsRequest, context: Context
    ) -> posts_pb2.SearchPostsResponse:
        page = await self._service.search_posts(
            request.query, request.community_id, request.page_size, request.page_token
        )
        return posts_pb2.SearchPostsResponse(
            posts=[post_message(p) for p in page.items], next_page_token=page.next_token
        )
