"""The one place that turns stored rows into what GetSummary and RequestSummary answer."""

from __future__ import annotations

from datetime import datetime

from agora.summarizer.v1 import summarizer_pb2

from services.summarizer.domain import retry_after_seconds
from services.summarizer.repository import QueuedJob, StoredSummary


def ready(summary: StoredSummary, *, refreshing: bool) -> summarizer_pb2.Summary:
    message = summarizer_pb2.Summary(
        post_id=str(summary.post_id),
        status=summarizer_pb2.SUMMARY_STATUS_READY,
        summary=summary.summary,
        provider=summary.provider,
        model=summary.model,
        comment_count=summary.comment_count,
        refreshing=refreshing,
    )
    message.generated_at.FromDatetime(summary.generated_at)
    return message


def pending(post_id: str) -> summarizer_pb2.Summary:
    return summarizer_pb2.Summary(post_id=post_id, status=summarizer_pb2.SUMMARY_STATUS_PENDING)


def answer(
    post_id: str, summary: StoredSummary | None, job: QueuedJob | None, now: datetime
) -> summarizer_pb2.GetSummaryResponse | None:
    """Ready (refreshing while a job is queued), pending, or None when neither exists."""
    retry_after = 0 if job is None else retry_after_seconds(job.due_at, now)
    if summary is not None:
        return summarizer_pb2.GetSummaryResponse(
            summary=ready(summary, refreshing=job is not None), retry_after_seconds=retry_after
        )
    if job is not None:
        return summarizer_pb2.GetSummaryResponse(
            summary=pending(post_id), retry_after_seconds=retry_after
        )
    return None
