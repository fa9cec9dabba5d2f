"""The summarizer's rules: what events mean, when growth is worth a summary, how long to wait."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from agora.events.v1 import events_pb2

from common.events import new_event
from services.summarizer.domain import (
    GrowthRule,
    Trigger,
    TriggerKind,
    error_text,
    retry_after_seconds,
    retry_delay,
    trigger_for,
)

POST = str(uuid.uuid4())


def _event(**payload: object) -> events_pb2.Event:
    return new_event("test", None, **payload)


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (_event(post_created=events_pb2.PostCreated(post_id=POST)), TriggerKind.FIRST),
        (_event(post_updated=events_pb2.PostUpdated(post_id=POST)), TriggerKind.SCHEDULE),
        (_event(post_deleted=events_pb2.PostDeleted(post_id=POST)), TriggerKind.FORGET),
        (
            _event(post_moderated=events_pb2.PostModerated(post_id=POST, action="remove")),
            TriggerKind.FORGET,
        ),
        (
            _event(post_moderated=events_pb2.PostModerated(post_id=POST, action="restore")),
            TriggerKind.SCHEDULE,
        ),
        (_event(comment_updated=events_pb2.CommentUpdated(post_id=POST)), TriggerKind.REFRESH),
        (_event(comment_deleted=events_pb2.CommentDeleted(post_id=POST)), TriggerKind.REFRESH),
        (
            _event(comment_moderated=events_pb2.CommentModerated(post_id=POST, action="remove")),
            TriggerKind.REFRESH,
        ),
    ],
)
def test_what_each_event_means(event: events_pb2.Event, kind: TriggerKind) -> None:
    assert trigger_for(event) == Trigger(kind, uuid.UUID(POST))


def test_a_new_comment_carries_the_thread_size() -> None:
    event = _event(comment_created=events_pb2.CommentCreated(post_id=POST, post_comment_count=7))
    assert trigger_for(event) == Trigger(TriggerKind.GROWTH, uuid.UUID(POST), 7)


@pytest.mark.parametrize(
    "event",
    [
        _event(post_moderated=events_pb2.PostModerated(post_id=POST, action="pin")),
        _event(post_moderated=events_pb2.PostModerated(post_id=POST, action="lock")),
        _event(comment_moderated=events_pb2.CommentModerated(post_id=POST, action="lock")),
        _event(post_created=events_pb2.PostCreated(post_id="not-a-uuid")),
        _event(vote_cast=events_pb2.VoteCast(target_id=POST)),
        _event(summary_ready=events_pb2.SummaryReady(post_id=POST)),
        events_pb2.Event(id=str(uuid.uuid4())),
    ],
)
def test_events_that_change_nothing_to_read(event: events_pb2.Event) -> None:
    assert trigger_for(event) is None


@pytest.mark.parametrize(
    ("summarized", "now", "worth"),
    [
        (0, 4, False),  # fewer than min_new
        (0, 5, True),
        (10, 14, False),
        (10, 15, True),
        (100, 119, False),  # 5 is not 20% of 100
        (100, 120, True),
        (100, 90, False),  # deletions never ask for a summary by count
    ],
)
def test_growth_needs_min_new_and_a_share(summarized: int, now: int, worth: bool) -> None:
    assert GrowthRule(min_new=5, ratio=0.2).grown_enough(summarized, now) is worth


def test_retry_after_counts_the_wait_and_the_making() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds(now + timedelta(seconds=4.2), now) == 7
    # Overdue or due now: soon, but never 0 (clients would spin).
    assert retry_after_seconds(now - timedelta(minutes=1), now) == 2


def test_failed_jobs_back_off_doubling_up_to_ten_minutes() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay(50) == timedelta(minutes=10)


def test_stored_errors_are_bounded() -> None:
    text = error_text(RuntimeError("x" * 2000))
    assert text.startswith("RuntimeError: x")
    assert len(text) == 500
