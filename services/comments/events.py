"""What the comments service publishes, and the one event it consumes.

Published (through the outbox, in the transaction of the change): comment
created, updated, deleted and moderated. Every one but `updated` carries the
post's visible comment count after the change, counted here under the post's
counter lock, so posts can store it as an absolute value.

Consumed: votes' VoteCast for comment targets, on votes.comment_vote.cast.v1
(durable `comments-comment-vote-tallies`), so votes on posts never reach this
service. The event holds the absolute tally and its version; a tally is stored
only when its version is newer than the stored one, so replays and
out-of-order deliveries change nothing, and the best and controversy ranks are
recomputed from it. The durable `comments-vote-tallies`, which consumed every
vote before votes split its subject, stays on the legacy votes.vote.cast.v1
with the same handler (which skips post votes), to apply what an older votes
published there; it idles once nothing is, and can be deleted a week (the
stream's max age) after the last votes replica was upgraded
(docs/architecture.md, "Events").
"""

from __future__ import annotations

import logging

from agora.events.v1 import events_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from common import ranking
from common.bus import EventBus
from common.consumer import EventConsumer, vote_tally_consumers
from common.db import Database
from common.events import new_event
from common.ids import parse_uuid
from services.comments.domain import CommentRecord, ModerationAction
from services.comments.models import processed_events
from services.comments.repository import CommentsRepository

log = logging.getLogger("agora.comments.events")

PRODUCER = "comments"
COMMENT_VOTE_TALLIES = "comments-comment-vote-tallies"
LEGACY_VOTE_TALLIES = "comments-vote-tallies"


def comment_created(comment: CommentRecord, post_comment_count: int) -> events_pb2.Event:
    return new_event(
        PRODUCER,
        str(comment.author_id),
        comment_created=events_pb2.CommentCreated(
            comment_id=str(comment.id),
            post_id=str(comment.post_id),
            community_id=str(comment.community_id),
            parent_id=str(comment.parent_id) if comment.parent_id else "",
            author_id=str(comment.author_id),
            depth=comment.depth,
            post_comment_count=post_comment_count,
        ),
    )


def comment_updated(comment: CommentRecord, actor_id: str) -> events_pb2.Event:
    return new_event(
        PRODUCER,
        actor_id,
        comment_updated=events_pb2.CommentUpdated(
            comment_id=str(comment.id), post_id=str(comment.post_id)
        ),
    )


def comment_deleted(
    comment: CommentRecord, actor_id: str, post_comment_count: int
) -> events_pb2.Event:
    return new_event(
        PRODUCER,
        actor_id,
        comment_deleted=events_pb2.CommentDeleted(
            comment_id=str(comment.id),
            post_id=str(comment.post_id),
            post_comment_count=post_comment_count,
        ),
    )


def comment_moderated(
    comment: CommentRecord,
    actor_id: str,
    action: ModerationAction,
    reason: str,
    post_comment_count: int,
) -> events_pb2.Event:
    return new_event(
        PRODUCER,
        actor_id,
        comment_moderated=events_pb2.CommentModerated(
            comment_id=str(comment.id),
            post_id=str(comment.post_id),
            action=action.value,
            reason=reason,
            post_comment_count=post_comment_count,
        ),
    )


async def apply_vote_cast(session: AsyncSession, event: events_pb2.Event) -> None:
    """The handler of the vote tally consumers (runs in the consumer's transaction)."""
    if event.WhichOneof("payload") != "vote_cast":
        return
    vote = event.vote_cast
    if vote.target_type != events_pb2.VOTE_TARGET_TYPE_COMMENT:
        return
    comment_id = parse_uuid(vote.target_id)
    if comment_id is None:
        log.warning("vote for a malformed comment id ignored", extra={"event_id": event.id})
        return
    applied = await CommentsRepository(session).apply_tally(
        comment_id,
        version=vote.tally_version,
        score=vote.score,
        upvotes=vote.upvotes,
        downvotes=vote.downvotes,
        best_rank=ranking.wilson_lower_bound(vote.upvotes, vote.downvotes),
        controversy_rank=ranking.controversy(vote.upvotes, vote.downvotes),
    )
    if not applied:
        # An older tally than the stored one, or a comment we do not have.
        log.debug("vote tally not newer; ignored", extra={"event_id": event.id})


def build_consumers(bus: EventBus, db: Database) -> list[EventConsumer]:
    return vote_tally_consumers(
        bus,
        db,
        processed_events,
        target_type=events_pb2.VOTE_TARGET_TYPE_COMMENT,
        durable=COMMENT_VOTE_TALLIES,
        legacy_durable=LEGACY_VOTE_TALLIES,
        handler=apply_vote_cast,
    )
