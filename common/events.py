"""Domain events: the envelope, and the subject each kind of event travels on.

Subjects are `<prefix><producer>.<aggregate>.<event>.v1`; the prefix comes from
settings so a test run has subjects of its own. This module is the one place
that names them: producers take an event's subject from `subject_of`,
consumers filter on `SUBJECTS` (or, for one target type of votes, on
`VOTE_CAST_SUBJECTS`).

vote_cast is the one kind split over several subjects: one per target type
(`votes.post_vote.cast.v1`, `votes.comment_vote.cast.v1`), so posts receive
only post votes and comments only comment votes, instead of each paying a
delivery and a transaction for every vote of the other. Its `SUBJECTS` entry
is the filter that matches all of them, and also `LEGACY_VOTE_CAST_SUBJECT`,
the single subject every vote travelled on before the split (see
docs/architecture.md, "Events", for the upgrade).
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
    # A filter: every vote_cast subject below, and the legacy one.
    "vote_cast": "votes.*.cast.v1",
    "summary_ready": "summarizer.summary.ready.v1",
}


# vote_cast's subject by events_pb2.VoteTargetType.
VOTE_CAST_SUBJECTS: dict[int, str] = {
    events_pb2.VOTE_TARGET_TYPE_POST: "votes.post_vote.cast.v1",
    events_pb2.VOTE_TARGET_TYPE_COMMENT: "votes.comment_vote.cast.v1",
}
# Where votes published every vote_cast before the split. Outbox rows staged
# by an older votes and messages still in the stream carry it; posts and
# comments keep a durable consumer on it (their original one) to drain them.
LEGACY_VOTE_CAST_SUBJECT = "votes.vote.cast.v1"


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
    """The subject an event is published on."""
    kind = event.WhichOneof("payload")
    if kind is None:
        raise ValueError("event has no payload")
    if kind == "vote_cast":
        target_type = event.vote_cast.target_type
        if target_type not in VOTE_CAST_SUBJECTS:
            raise ValueError(f"vote_cast has no subject for target type {target_type}")
        return prefix + VOTE_CAST_SUBJECTS[target_type]
    return prefix + SUBJECTS[kind]
