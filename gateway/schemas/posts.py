"""Bodies of /api/v1/posts (and a community's posts) and the public `Post` shape."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from agora.posts.v1 import posts_pb2
from pydantic import Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from common.contract import POST_BODY_MAX, POST_TITLE_MAX, POST_TITLE_MIN, URL_MAX
from common.wire import timestamp_json
from gateway.schemas.base import RequestModel, ResponseModel, omit_default
from gateway.schemas.paging import NEXT_CURSOR

# What a reader sees instead of the author of a deleted post or comment.
DELETED_AUTHOR = "[deleted]"
MODERATION_REASON_MAX = 500

PostTitle = Annotated[str, StringConstraints(min_length=POST_TITLE_MIN, max_length=POST_TITLE_MAX)]
PostBody = Annotated[str, StringConstraints(max_length=POST_BODY_MAX)]
Reason = Annotated[str, StringConstraints(max_length=MODERATION_REASON_MAX)]

PostSortName = Literal["hot", "new", "top", "controversial"]
TimeWindowName = Literal["hour", "day", "week", "month", "year", "all"]
PostActionName = Literal["remove", "restore", "lock", "unlock", "pin", "unpin"]


class CreatePostRequest(RequestModel):
    title: PostTitle = Field(examples=["What is new in Python 3.13?"])
    body: PostBody = Field(default="", description="Markdown text, up to 40,000 characters.")
    url: Annotated[str, StringConstraints(max_length=URL_MAX)] | None = Field(
        default=None,
        description="An http(s) link; a post may have a link, a body, or both.",
        examples=["https://docs.python.org/3/whatsnew/3.13.html"],
    )


class UpdatePostRequest(RequestModel):
    """Only the members given change; the link cannot be edited."""

    title: PostTitle | None = None
    body: PostBody | None = None


class PostModerationRequest(RequestModel):
    action: PostActionName
    reason: Reason = Field(default="", description="Recorded for the moderation log.")


class Post(ResponseModel):
    """A post. `my_vote` is only present for a signed-in caller."""

    id: str = Field(description="Opaque, time-ordered id.")
    community: str = Field(description="The community's name.", examples=["python"])
    author: str = Field(
        description=f"The author's username, or `{DELETED_AUTHOR}` once the post is deleted.",
        examples=["alice"],
    )
    title: str = Field(description="`[deleted]` or `[removed]` once deleted or removed.")
    body: str = Field(description="Empty when the post has none, or is deleted or removed.")
    url: str | None = Field(description="The link of a link post, else null.")
    score: int
    upvotes: int
    downvotes: int
    comment_count: int
    created_at: datetime = Field(description="RFC 3339, UTC.")
    edited_at: datetime | None = Field(description="When the author last edited it, or null.")
    locked: bool = Field(description="Locked posts take no new comments.")
    removed: bool = Field(description="Removed by a moderator.")
    pinned: bool = Field(description="Pinned posts lead their community's hot listing.")
    deleted: bool = Field(description="Deleted by its author.")
    my_vote: Literal[-1, 0, 1] | SkipJsonSchema[None] = Field(
        default=None,
        description="The caller's vote; only for a signed-in caller.",
        json_schema_extra=omit_default,
    )


class PostPage(ResponseModel):
    items: list[Post]
    next_cursor: str | None = NEXT_CURSOR


def post_payload(
    post: posts_pb2.Post,
    *,
    usernames: Mapping[str, str],
    community_names: Mapping[str, str],
    my_votes: Mapping[str, int] | None,
) -> dict[str, Any]:
    """The JSON object for `Post`; my_votes is None for an anonymous caller."""
    payload: dict[str, Any] = {
        "id": post.id,
        "community": community_names.get(post.community_id, ""),
        "author": usernames.get(post.author_id, DELETED_AUTHOR),
        "title": post.title,
        "body": post.body,
        "url": post.url or None,
        "score": post.score,
        "upvotes": post.upvotes,
        "downvotes": post.downvotes,
        "comment_count": post.comment_count,
        "created_at": timestamp_json(post.created_at),
        "edited_at": timestamp_json(post.edited_at) if post.HasField("edited_at") else None,
        "locked": post.locked,
        "removed": post.removed,
        "pinned": post.pinned,
        "deleted": post.deleted,
    }
    if my_votes is not None:
        payload["my_vote"] = my_votes.get(post.id, 0)
    return payload
