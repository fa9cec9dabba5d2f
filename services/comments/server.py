"""The CommentsService gRPC servicer: proto in, use case, proto out.

Nothing here decides anything: it reads the caller from the verified
metadata, turns enums and sizes into domain values (field names as in the
public API: body, parent_id, max_depth, limit, cursor, q, reason, action) and
converts the answer. Trees are written into the response in place
(`replies.add()`), so a page of 2,000 comments is not copied level by level.
"""

from __future__ import annotations

from typing import Any

import grpc
from agora.comments.v1 import comments_pb2, comments_pb2_grpc

from common.context import require_caller
from common.errors import InvalidArgument
from common.wire import IdText, set_timestamp
from services.comments import domain
from services.comments.domain import CommentRecord, CommentSort, ModerationAction, TreeNode
from services.comments.service import CommentsService

Context = grpc.aio.ServicerContext[Any, Any]

_SORTS: dict[int, CommentSort] = {
    comments_pb2.COMMENT_SORT_UNSPECIFIED: CommentSort.BEST,
    comments_pb2.COMMENT_SORT_BEST: CommentSort.BEST,
    comments_pb2.COMMENT_SORT_TOP: CommentSort.TOP,
    comments_pb2.COMMENT_SORT_NEW: CommentSort.NEW,
    comments_pb2.COMMENT_SORT_CONTROVERSIAL: CommentSort.CONTROVERSIAL,
}
_ACTIONS: dict[int, ModerationAction] = {
    comments_pb2.COMMENT_MODERATION_ACTION_REMOVE: ModerationAction.REMOVE,
    comments_pb2.COMMENT_MODERATION_ACTION_RESTORE: ModerationAction.RESTORE,
}


def _sort(value: int) -> CommentSort:
    if value not in _SORTS:
        raise InvalidArgument.for_field("sort", "must be best, top, new or controversial")
    return _SORTS[value]


def fill_comment(
    message: comments_pb2.Comment, comment: CommentRecord, ids: IdText | None = None
) -> None:
    """Write comment into message; `ids` shares id texts across one answer's comments."""
    text = ids if ids is not None else IdText()
    message.id = text(comment.id)
    message.post_id = text(comment.post_id)
    message.community_id = text(comment.community_id)
    if comment.parent_id is not None:
        message.parent_id = text(comment.parent_id)
    if (author := comment.shown_author) is not None:
        message.author_id = text(author)
    message.body = comment.shown_body
    message.score = comment.score
    message.upvotes = comment.upvotes
    message.downvotes = comment.downvotes
    message.depth = comment.depth
    set_timestamp(message.created_at, comment.created_at)
    if comment.edited_at is not None:
        set_timestamp(message.edited_at, comment.edited_at)
    message.deleted = comment.deleted
    message.removed = comment.removed
    message.child_count = comment.child_count


def fill_tree(message: comments_pb2.Comment, node: TreeNode, ids: IdText | None = None) -> None:
    """Write a tree in place, depth first, with one IdText for the whole tree."""
    text = ids if ids is not None else IdText()
    fill_comment(message, node.comment, text)
    message.more_replies = node.more_replies
    if node.replies:
        add = message.replies.add
        for reply in node.replies:
            fill_tree(add(), reply, text)


def comment_message(comment: CommentRecord) -> comments_pb2.Comment:
    message = comments_pb2.Comment()
    fill_comment(message, comment)
    return message


class CommentsServicer(comments_pb2_grpc.CommentsServiceServicer):
    def __init__(self, service: CommentsService) -> None:
        self._service = service

    async def CreateComment(
        self, request: comments_pb2.CreateCommentRequest, context: Context
    ) -> comments_pb2.CreateCommentResponse:
        caller = require_caller()
        comment = await self._service.create_comment(
            caller,
            post_id=request.post_id,
            parent_id=request.parent_id,
            body=request.body,
        )
        response = comments_pb2.CreateCommentResponse()
        fill_comment(response.comment, comment)
        return response

    async def GetComment(
        self, request: comments_pb2.GetCommentRequest, context: Context
    ) -> comments_pb2.GetCommentResponse:
        tree = await self._service.get_comment(
            request.id, sort=_sort(request.sort), levels=domain.max_depth(request.max_depth)
        )
        response = comments_pb2.GetCommentResponse()
        fill_tree(response.comment, tree)
        return response

    async def BatchGetComments(
        self, request: comments_pb2.BatchGetCommentsRequest, context: Context
    ) -> comments_pb2.BatchGetCommentsResponse:
        found = await self._service.batch_get(list(request.ids))
        return comments_pb2.BatchGetCommentsResponse(
            comments=[comment_message(comment) for comment in found]
        )

    async def UpdateComment(
        self, request: comments_pb2.UpdateCommentRequest, context: Context
    ) -> comments_pb2.UpdateCommentResponse:
        caller = require_caller()
        comment = await self._service.update_comment(
            caller, comment_id=request.id, body=request.body
        )
        response = comments_pb2.UpdateCommentResponse()
        fill_comment(response.comment, comment)
        return response

    async def DeleteComment(
        self, request: comments_pb2.DeleteCommentRequest, context: Context
    ) -> comments_pb2.DeleteCommentResponse:
        caller = require_caller()
        await self._service.delete_comment(caller, comment_id=request.id)
        return comments_pb2.DeleteCommentResponse()

    async def ModerateComment(
        self, request: comments_pb2.ModerateCommentRequest, context: Context
    ) -> comments_pb2.ModerateCommentResponse:
        caller = require_caller()
        if request.action not in _ACTIONS:
            raise InvalidArgument.for_field("action", "must be remove or restore")
        action = _ACTIONS[request.action]
        comment = await self._service.moderate_comment(
            caller, comment_id=request.id, action=action, reason=request.reason
        )
        response = comments_pb2.ModerateCommentResponse()
        fill_comment(response.comment, comment)
        return response

    async def ListCommentTree(
        self, request: comments_pb2.ListCommentTreeRequest, context: Context
    ) -> comments_pb2.ListCommentTreeResponse:
        page = await self._service.list_tree(
            request.post_id,
            sort=_sort(request.sort),
            levels=domain.max_depth(request.max_depth),
            limit=domain.page_size(request.page_size),
            cursor=request.page_token,
        )
        response = comments_pb2.ListCommentTreeResponse(next_page_token=page.next_cursor)
        ids = IdText()
        add = response.comments.add
        for tree in page.trees:
            fill_tree(add(), tree, ids)
        return response

    async def SearchComments(
        self, request: comments_pb2.SearchCommentsRequest, context: Context
    ) -> comments_pb2.SearchCommentsResponse:
        page = await self._service.search(
            request.query,
            post_id=request.post_id,
            community_id=request.community_id,
            limit=domain.page_size(request.page_size),
            cursor=request.page_token,
        )
        return comments_pb2.SearchCommentsResponse(
            comments=[comment_message(comment) for comment in page.comments],
            next_page_token=page.next_cursor,
        )
