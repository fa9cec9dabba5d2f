"""The answers of GET and POST /api/v1/posts/{id}/summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from agora.summarizer.v1 import summarizer_pb2
from pydantic import Field

from common.wire import timestamp_json
from gateway.schemas.base import ResponseModel


class SummaryReady(ResponseModel):
    """A summary of the post and its discussion, as plain text (never HTML or markdown)."""

    post_id: str
    status: Literal["ready"]
    summary: str
    provider: str = Field(description="`openai`, `anthropic` or `local` (extractive, offline).")
    model: str
    generated_at: datetime = Field(description="RFC 3339, UTC.")
    comment_count: int = Field(description="Comments in the thread when it was summarised.")
    refreshing: bool = Field(description="A newer summary is being made; ask again later.")


class SummaryPending(ResponseModel):
    """No summary yet: one is being made. Ask again after `Retry-After` seconds."""

    post_id: str
    status: Literal["pending"]


def is_ready(summary: summarizer_pb2.Summary) -> bool:
    return summary.status == summarizer_pb2.SUMMARY_STATUS_READY


def summary_payload(summary: summarizer_pb2.Summary) -> dict[str, Any]:
    if not is_ready(summary):
        return {"post_id": summary.post_id, "status": "pending"}
    return {
        "post_id": summary.post_id,
        "status": "ready",
        "summary": summary.summary,
        "provider": summary.provider,
        "model": summary.model,
        "generated_at": timestamp_json(summary.generated_at),
        "comment_count": summary.comment_count,
        "refreshing": summary.refreshing,
    }
