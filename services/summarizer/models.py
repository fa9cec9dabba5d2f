"""The tables of schema "summarizer": summaries, jobs, on-demand requests, and the event tables.

`summaries` is the record of truth, one row per post (Redis only holds copies).
`summary_jobs` is the durable work queue: one row per post that needs a new
summary, written in the same transaction that records the triggering event,
so a crash never loses a trigger. `due_at` implements the debounce and
`generation` grows with every new trigger, so a worker that finishes knows
whether the thread changed while it was working. `leased_until`/`lease_token`
let several workers share the queue (SKIP LOCKED) and return a job whose
worker died. `trace_context` holds the W3C trace context of the latest
trigger, so the summary is made in the trace of the event or request that
asked for it (see common.tracing). `summary_requests` counts on-demand
requests for the daily quota.
migrations/versions/ mirrors these definitions by hand; change both together.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.consumer import processed_events_table
from common.db import schema_metadata
from common.outbox import outbox_table

metadata = schema_metadata("summarizer")

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Summary(Base):
    __tablename__ = "summaries"
    __table_args__ = (CheckConstraint("comment_count >= 0", name="comment_count"),)

    post_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    summary: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    # Comments in the thread when it was summarised: the growth rule compares with it.
    comment_count: Mapped[int] = mapped_column(BigInteger)
    # sha256 of the prompt: the same input again needs no new model call.
    input_hash: Mapped[str] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SummaryJob(Base):
    __tablename__ = "summary_jobs"
    __table_args__ = (
        # Workers claim due jobs in due order.
        Index("ix_summary_jobs_due_at", "due_at"),
    )

    post_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The first trigger since the last summary: the debounce never waits past
    # first_triggered_at + max delay, so a busy thread still gets summaries.
    first_triggered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    generation: Mapped[int] = mapped_column(BigInteger, server_default=text("1"))
    # Asked for by a user: made even when the input did not change.
    forced: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_error: Mapped[str | None] = mapped_column(Text)
    # traceparent/tracestate of the latest trigger; {} when tracing is off.
    trace_context: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class SummaryRequest(Base):
    __tablename__ = "summary_requests"
    __table_args__ = (
        # The quota counts one user's requests of the last 24 hours through this.
        Index("ix_summary_requests_user_id_requested_at", "user_id", "requested_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    post_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
