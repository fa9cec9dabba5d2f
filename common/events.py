"""Domain events: the envelope, and the subject each kind of event travels on.

Subjects are `<prefix><producer>.<aggregate>.<event>.v1`; the prefix comes from
settings so a test run has subjects of its own. The table below is the one
place that names them: producers look subjects up here, consumers filter on
them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agora.events.v1 import events_pb2

from common.ids import uuid7

# The payload field of events_pb2.Event -> subject, without the prefix.
SUBJECTS: dict[str, str] = {
    "user_registered": "auth.user.registered.v1",
    "community_created": "communities.community.created.v1",
    "membership_changed": "communities.membership.changed.v1",
    "post_created": "posts.post.created.v1",
    "post_updated": "posts.post.updated.v1",
    "post_deleted": "posts.post.deleted.v1",
    "post_moderated": "posts.post.moderated.v1",
    "comment_created": "comments.comment.created.v1",
    "comment_updated": "comments.comment.updated.v1",
    "comment_deleted": "comments.comment.deleted.v1",
    "comment_moderated": "comments.comment.moderated.v1",
    "vote_cast": "votes.vote.cast.v1",
    "summary_ready": "summarizer.summary.ready.v1",
}


def new_event(producer: str, actor_id: str | None, **payload: Any) -> events_pb2.Event:
    """An envelope with a fresh time-ordered id around exactly one payload.

    `new_event("posts", user_id, post_created=events_pb2.PostCreated(...))`
    """
    if len(payload) != 1:
        raise ValueError("an event carries exactly one payload")
    (kind,) = payload
    if kind not in SUBJECTS:
        raise ValueError(f"unknown event payload {kind!r}")
    event = events_pb2.Event(id=str(uuid7()), producer=producer, actor_id=actor_id or "", **payload)
    event.occurred_at.FromDatetime(datetime.now(UTC))
    return event


def subject_of(event: events_pb2.Event, prefix: str) -> str:
    kind = event.WhichOneof("payload")
    if kind is None:
        raise ValueError("event has no payload")
    return prefix + SUBJECTS[kind]
