"""What posts consumes: vote tallies from votes, comment counts from comments.

Posts publishes post_created, post_updated, post_deleted and post_moderated
through its outbox (see service.py). It keeps these durable consumers:

- `posts-post-vote-tallies` on votes.post_vote.cast.v1 (votes on posts only):
  a post's absolute tally replaces the stored one only when its
  `tally_version` is newer, and the hot and controversy ranks are recomputed
  with it. Replays and late, older versions change nothing.
- `posts-vote-tallies` on the legacy votes.vote.cast.v1, with the same handler:
  the durable that consumed every vote before votes split its subject, kept
  (with its position in the stream) to apply what an older votes published
  there; it skips comment votes. It idles once nothing is published there and
  can be deleted a week (the stream's max age) after the last votes replica
  was upgraded (docs/architecture.md, "Events").
- `posts-comment-counts` on comments.comment.{created,deleted,moderated}.v1
  (filter comments.comment.*.v1): the post's comment count becomes the
  `post_comment_count` the comments service counted after the change.

common.consumer records each event id in processed_events in the handler's
own transaction, so a redelivered event is applied at most once. Events for
posts this service does not hold (or with malformed ids) are acknowledged and
ignored: retrying them would never succeed. Each handler also ignores payload
kinds it does not handle, because a consumer can be handed events outside its
filter (NATS servers before 2.10 ignore multi-subject filters).
"""

from __future__ import annotations

import logging

from agora.events.v1 import events_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from common.bus import EventBus
from common.consumer import EventConsumer, vote_tally_consumers
from common.db import Database
from common.events import SUBJECTS
from common.ids import parse_uuid
from services.posts.models import processed_events
from services.posts.repository import PostsRepository

log = logging.getLogger("agora.posts.events")

POST_VOTE_TALLIES = "posts-post-vote-tallies"
LEGACY_VOTE_TALLIES = "posts-vote-tallies"
COMMENT_COUNTS = "posts-comment-counts"
COMMENT_COUNT_EVENTS = ("comment_created", "comment_deleted", "comment_moderated")


async def apply_vote_cast(session: AsyncSession, event: events_pb2.Event) -> None:
    if event.WhichOneof("payload") != "vote_cast":
        return
    vote = event.vote_cast
    if vote.target_type != events_pb2.VOTE_TARGET_TYPE_POST:
        return
    post_id = parse_uuid(vote.target_id)
    if post_id is None:
        log.warning("vote for a malformed post id ignored", extra={"event_id": event.id})
        return
    applied = await PostsRepository(session).apply_tally(
        post_id,
        score=vote.score,
        upvotes=vote.upvotes,
        downvotes=vote.downvotes,
        version=vote.tally_version,
    )
    if not applied:
        log.debug(
            "vote tally not applied (unknown post or not newer)",
            extra={"event_id": event.id, "post_id": str(post_id)},
        )


async def apply_comment_count(session: AsyncSession, event: events_pb2.Event) -> None:
    kind = event.WhichOneof("payload")
    if kind == "comment_created":
        raw_post_id, count = event.comment_created.post_id, event.comment_created.post_comment_count
    elif kind == "comment_deleted":
        raw_post_id, count = event.comment_deleted.post_id, event.comment_deleted.post_comment_count
    elif kind == "comment_moderated":
        raw_post_id, count = (
            event.comment_moderated.post_id,
            event.comment_moderated.post_comment_count,
        )
    else:
        return
    post_id = parse_uuid(raw_post_id)
    if post_id is None:
        log.warning("comment event for a malformed post id ignored", extra={"event_id": event.id})
        return
    await PostsRepository(session).set_comment_count(post_id, max(count, 0))


def build_consumers(bus: EventBus, db: Database) -> list[EventConsumer]:
    return [
        *vote_tally_consumers(
            bus,
            db,
            processed_events,
            target_type=events_pb2.VOTE_TARGET_TYPE_POST,
            durable=POST_VOTE_TALLIES,
            legacy_durable=LEGACY_VOTE_TALLIES,
            handler=apply_vote_cast,
        ),
        EventConsumer(
            bus,
            db,
            processed_events,
            durable=COMMENT_COUNTS,
            subjects=[SUBJECTS[kind] for kind in COMMENT_COUNT_EVENTS],
            handler=apply_comment_count,
        ),
    ]
