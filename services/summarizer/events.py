"""What the summarizer consumes: post and comment events, through two durable consumers.

One consumer per producer keeps each on a single filter subject, which every
NATS version honours (servers before 2.10 ignore `filter_subjects`), so the
summarizer is never handed the far busier vote traffic. It publishes
summary_ready through its outbox (see worker.py).
"""

from __future__ import annotations

from datetime import timedelta

from common.bus import EventBus
from common.consumer import EventConsumer
from common.db import Database
from services.summarizer.models import processed_events
from services.summarizer.service import SummarizerService

POST_EVENTS = "summarizer-posts"
COMMENT_EVENTS = "summarizer-comments"
# Durable name -> the one subject pattern it filters on.
SUBSCRIPTIONS = ((POST_EVENTS, "posts.post.>"), (COMMENT_EVENTS, "comments.comment.>"))
_SUBSCRIPTIONS = ((POST_EVENTS, "posts.post.>"), (COMMENT_EVENTS, "comments.comment.>"))


def build_consumers(
    bus: EventBus, db: Database, service: SummarizerService, *, ack_wait: timedelta
) -> list[EventConsumer]:
    return [
        EventConsumer(
            bus,
            db,
            processed_events,
            durable=durable,
            subjects=[subject],
            handler=service.handle_event,
            after_commit=service.after_event,
            ack_wait=ack_wait,
        )
        for durable, subject in SUBSCRIPTIONS
    ]
