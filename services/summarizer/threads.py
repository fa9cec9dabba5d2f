"""Reading a thread from the posts and comments services, for summarising.

Two reads of the comment tree make the candidates the prompt builder picks
from: the best-scored comments with their best replies, and the newest
top-level ones (a summary should notice where a discussion is going, not only
where it started). Deleted and removed content is left out: a summary must
never repeat what a moderator or its author took down.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import TYPE_CHECKING

import grpc
from agora.comments.v1 import comments_pb2, comments_pb2_grpc
from agora.posts.v1 import posts_pb2, posts_pb2_grpc

from common.errors import NotFound
from common.grpc_client import upstream_error
from services.summarizer.thread import Thread, ThreadComment

if TYPE_CHECKING:
    from agora.comments.v1.comments_pb2_grpc import CommentsServiceAsyncStub
    from agora.posts.v1.posts_pb2_grpc import PostsServiceAsyncStub

POST_NOT_FOUND = "post not found"
# Top-level comments of the "best" read, and levels of replies under each.
BEST_ROOTS = 100
BEST_DEPTH = 3
NEWEST_ROOTS = 20


class GrpcThreadSource:
    def __init__(
        self, posts: grpc.aio.Channel, comments: grpc.aio.Channel, *, deadline: float
    ) -> None:
        self._posts: PostsServiceAsyncStub = posts_pb2_grpc.PostsServiceStub(posts)
        self._comments: CommentsServiceAsyncStub = comments_pb2_grpc.CommentsServiceStub(comments)
        self._deadline = deadline

    async def post(self, post_id: uuid.UUID) -> posts_pb2.Post:
        """The post if it can be summarised; NotFound when absent, deleted or removed."""
        try:
            response = await self._posts.GetPost(
                posts_pb2.GetPostRequest(id=str(post_id)), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error(error, "posts", not_found=POST_NOT_FOUND) from error
        if response.post.deleted or response.post.removed:
            raise NotFound(POST_NOT_FOUND)
        return response.post

    async def thread(self, post_id: uuid.UUID) -> Thread:
        """The post and candidate comments; NotFound when the post cannot be summarised."""
        post = await self.post(post_id)
        best = await self._tree(post_id, comments_pb2.COMMENT_SORT_TOP, BEST_ROOTS, BEST_DEPTH)
        newest = await self._tree(post_id, comments_pb2.COMMENT_SORT_NEW, NEWEST_ROOTS, 0)
        read = list(_flatten([*best, *newest]))
        chosen = {c.comment_id: c for c in _readable(read)}
        return Thread(
            post_id=str(post_id),
            title=post.title,
            body=post.body,
            url=post.url,
            score=post.score,
            # The post's count is fed by the same comment events that queued this job
            # and can lag them (a backlog after a NATS outage lands all at once); the
            # comments read here exist for sure, so the count is at least theirs.
            comment_count=max(post.comment_count, _live_count(read)),
            comments=tuple(sorted(chosen.values(), key=lambda c: -c.score)),
        )

    async def _tree(
        self, post_id: uuid.UUID, sort: comments_pb2.CommentSort.ValueType, roots: int, depth: int
    ) -> list[comments_pb2.Comment]:
        request = comments_pb2.ListCommentTreeRequest(
            post_id=str(post_id), sort=sort, max_depth=depth, page_size=roots
        )
        try:
            response = await self._comments.ListCommentTree(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            raise upstream_error(error, "comments", not_found=POST_NOT_FOUND) from error
        return list(response.comments)


def _flatten(comments: Iterable[comments_pb2.Comment]) -> Iterator[comments_pb2.Comment]:
    for comment in comments:
        yield comment
        yield from _flatten(comment.replies)


def _live_count(comments: Iterable[comments_pb2.Comment]) -> int:
    return len({c.id for c in comments if not (c.deleted or c.removed)})


def _readable(comments: Iterable[comments_pb2.Comment]) -> Iterator[ThreadComment]:
    for comment in comments:
        if comment.deleted or comment.removed or not comment.body.strip():
            continue
        yield ThreadComment(
            comment_id=comment.id,
            parent_id=comment.parent_id,
            body=comment.body,
            score=comment.score,
            depth=comment.depth,
            created_at=comment.created_at.ToDatetime(tzinfo=UTC),
        )
