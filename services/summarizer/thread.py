"""What a summary is made from: a post and the comments chosen from its thread.

The worker fills it from the posts and comments services; the prompt builder
and every provider read only this, so none of them knows about gRPC. Authors
are left out on purpose: names add little to a summary and are personal data
we need not send to a third-party model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ThreadComment:
    comment_id: str
    # "" for a top-level comment.
    parent_id: str
    body: str
    score: int
    depth: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Thread:
    post_id: str
    title: str
    # Empty for a link post.
    body: str
    url: str
    score: int
    # Live comments in the whole thread; may be more than `comments` holds.
    comment_count: int
    # Best first (highest score), as fetched; the prompt builder picks among them.
    comments: tuple[ThreadComment, ...]
