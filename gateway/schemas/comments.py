"""Bodies of /api/v1/comments (and a post's comments) and the public `Comment` tree."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from agora.comments.v1 import comments_pb2
from pydantic import Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from common.contract import COMMENT_BODY_MAX, COMMENT_BODY_MIN, COMMENT_MAX_DEPTH
from common.wire import timestamp_json
from gateway.schemas.base import RequestModel, ResponseModel, omit_default
from gateway.schemas.paging import NEXT_CURSOR
from gateway.schemas.posts import DELETED_AUTHOR, Reason

# Ids are UUIDs; anything much longer cannot name a comment.
ID_MAX = 64

CommentBody = Annotated[
    str, StringConstraints(min_length=COMMENT_BODY_MIN, max_length=COMMENT_BODY_MAX)
]
CommentSortName = Literal["best", "top", "new", "controversial"]
CommentActionName = Literal["remove", "restore"]


class CreateCommentRequest(RequestModel):
    body: CommentBody = Field(description="Markdown text, up to 10,000 characters.")
    parent_id: Annotated[str, StringConstraints(max_length=ID_MAX)] | None = Field(
        default=None,
        description=f"The comment this replies to; none for a top-level comment. "
        f"Threads nest at most {COMMENT_MAX_DEPTH} levels deep (422 beyond).",
    )


class UpdateCommentRequest(RequestModel):
    body: CommentBody


class CommentModerationRequest(RequestModel):
    action: CommentActionName
    reason: Reason = Field(default="", description="Recorded for the moderation log.")


class Comment(ResponseModel):
    """A comment with the replies the answer includes. `my_vote` only for a signed-in caller."""

    id: str = Field(description="Opaque, time-ordered id.")
    post_id: str
    parent_id: str | None = Field(description="null for a top-level comment.")
    author: str = Field(
        description=f"The author's username, or `{DELETED_AUTHOR}` once deleted or removed.",
        examples=["bob"],
    )
    body: str = Field(description="`[deleted]` or `[removed]` once deleted or removed.")
    score: int
    upvotes: int
    downvotes: int
    depth: int = Field(ge=0, le=COMMENT_MAX_DEPTH, description="0 for a top-level comment.")
    created_at: datetime = Field(description="RFC 3339, UTC.")
    edited_at: datetime | None = Field(description="When the author last edited it, or null.")
    deleted: bool
    removed: bool
    replies: list[Comment] = Field(description="Replies, sorted like the listing.")
    more_replies: int = Field(
        ge=0,
        description="Replies below this comment that the answer left out (depth or size): "
        "fetch `/comments/{id}` to continue the thread.",
    )
    my_vote: Literal[-1, 0, 1] | SkipJsonSchema[None] = Field(
        default=None,
        description="The caller's vote; only for a signed-in caller.",
        json_schema_extra=omit_default,
    )


class CommentPage(ResponseModel):
    items: list[Comment] = Field(description="Top-level comments, each with its replies.")
    next_cursor: str | None = NEXT_CURSOR


def walk(comments: Iterable[comments_pb2.Comment]) -> Iterator[comments_pb2.Comment]:
    """Every comment of these trees, each before its replies."""
    stack = list(comments)[::-1]
    while stack:
        comment = stack.pop()
        yield comment
        stack.extend(list(comment.replies)[::-1])


def comment_payload(
    comment: comments_pb2.Comment,
    *,
    usernames: Mapping[str, str],
    my_votes: Mapping[str, int] | None,
    flat: bool = False,
) -> dict[str, Any]:
    """The JSON object for `Comment` with its replies; my_votes is None for anonymous callers.

    `flat` is for answers that carry no tree (create, edit, moderate, search):
    they report the direct replies as left out (`child_count`), so a client
    still knows there is a thread to load.
    """
    payload: dict[str, Any] = {
        "id": comment.id,
        "post_id": comment.post_id,
        "parent_id": comment.parent_id or None,
        "author": usernames.get(comment.author_id, DELETED_AUTHOR),
        "body": comment.body,
        "score": comment.score,
        "upvotes": comment.upvotes,
        "downvotes": comment.downvotes,
        "depth": comment.depth,
        "created_at": timestamp_json(comment.created_at),
        "edited_at": timestamp_json(comment.edited_at) if comment.HasField("edited_at") else None,
        "deleted": comment.deleted,
        "removed": comment.removed,
        "replies": [
            comment_payload(reply, usernames=usernames, my_votes=my_votes)
            for reply in comment.replies
        ],
        "more_replies": max(comment.more_replies, comment.child_count)
        if flat
        else comment.more_replies,
    }
    if my_votes is not None:
        payload["my_vote"] = my_votes.get(comment.id, 0)
    return payload
