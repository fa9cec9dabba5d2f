"""SQLAlchemy queries over schema "summarizer", and nothing else.

A repository works inside the session it is given and never commits: the
caller's `Database.transaction()` block is the unit of work. Times come from
the database's clock (`now()`), so several workers on several machines agree
on what is due and which leases expired.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Interval

from services.summarizer.models import Summary, SummaryJob, SummaryRequest


def _later(seconds: float) -> ColumnElement[Any]:
    return func.now() + literal(timedelta(seconds=seconds), Interval())


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker holds until `lease_token` expires or it reports back."""

    post_id: uuid.UUID
    generation: int
    forced: bool
    attempts: int
    lease_token: uuid.UUID
    first_triggered_at: datetime
    # The W3C trace context of the latest trigger (common.tracing); {} when none.
    trace_context: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredSummary:
    """A summary as stored; plain values, usable after its session is gone."""

    post_id: uuid.UUID
    summary: str
    provider: str
    model: str
    comment_count: int
    input_hash: str
    generated_at: datetime


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """What readers need to know of a queued job."""

    post_id: uuid.UUID
    due_at: datetime
    # A worker holds it now (its lease has not expired).
    running: bool


@dataclass(frozen=True, slots=True)
class NewSummary:
    post_id: uuid.UUID
    summary: str
    provider: str
    model: str
    comment_count: int
    input_hash: str
    input_tokens: int
    output_tokens: int


class SummariesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # Reads

    async def summary(self, post_id: uuid.UUID) -> StoredSummary | None:
        row = (
            await self._session.execute(
                select(
                    Summary.post_id,
                    Summary.summary,
                    Summary.provider,
                    Summary.model,
                    Summary.comment_count,
                    Summary.input_hash,
                    Summary.generated_at,
                ).where(Summary.post_id == post_id)
            )
        ).first()
        return None if row is None else StoredSummary(*row)

    async def job(self, post_id: uuid.UUID) -> QueuedJob | None:
        row = (
            await self._session.execute(
                select(
                    SummaryJob.post_id,
                    SummaryJob.due_at,
                    func.coalesce(SummaryJob.leased_until > func.now(), False),
                ).where(SummaryJob.post_id == post_id)
            )
        ).first()
        return None if row is None else QueuedJob(*row)

    async def now(self) -> datetime:
        """The database's clock, which due times and leases are measured by."""
        value = await self._session.scalar(select(func.now()))
        assert value is not None
        return value

    async def due_count(self) -> int:
        """Jobs waiting for a worker now (the queue depth autoscaling watches)."""
        count = await self._session.scalar(
            select(func.count())
            .select_from(SummaryJob)
            .where(SummaryJob.due_at <= func.now(), _unleased())
        )
        return int(count or 0)

    # Scheduling

    async def schedule(
        self,
        post_id: uuid.UUID,
        *,
        debounce_seconds: float,
        max_delay_seconds: float,
        forced: bool = False,
        trace_context: Mapping[str, str] | None = None,
    ) -> None:
        """Create the post's job or push its due time back, within the max delay.

        Every call bumps the generation, so a worker busy with the previous
        state of the thread keeps the job instead of deleting it. A job that is
        backing off after a failure keeps its due time unless a user asked.
        The job takes the trigger's trace context (the latest wins; a trigger
        without one keeps the job's).
        """
        due = func.now() if forced else _later(debounce_seconds)
        context = dict(trace_context or {})
        stmt = insert(SummaryJob).values(
            post_id=post_id,
            due_at=due,
            first_triggered_at=func.now(),
            forced=forced,
            trace_context=context,
        )
        capped = func.least(
            stmt.excluded.due_at,
            SummaryJob.first_triggered_at
            + literal(timedelta(seconds=max_delay_seconds), Interval()),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[SummaryJob.post_id],
            set_={
                "due_at": case(
                    (stmt.excluded.forced, stmt.excluded.due_at),
                    (SummaryJob.last_error.is_(None), capped),
                    else_=SummaryJob.due_at,
                ),
                "generation": SummaryJob.generation + 1,
                "forced": SummaryJob.forced | stmt.excluded.forced,
                **({"trace_context": stmt.excluded.trace_context} if context else {}),
            },
        )
        await self._session.execute(stmt)

    async def forget(self, post_id: uuid.UUID) -> None:
        await self._session.execute(delete(SummaryJob).where(SummaryJob.post_id == post_id))
        await self._session.execute(delete(Summary).where(Summary.post_id == post_id))

    # The work queue

    async def claim_due(self, limit: int, *, lease_seconds: float) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs, oldest due first; other workers skip them."""
        due = (
            select(SummaryJob.post_id)
            .where(SummaryJob.due_at <= func.now(), _unleased())
            .order_by(SummaryJob.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        rows = await self._session.execute(
            update(SummaryJob)
            .where(SummaryJob.post_id == due.c.post_id)
            .values(
                leased_until=_later(lease_seconds),
                lease_token=func.gen_random_uuid(),
                attempts=SummaryJob.attempts + 1,
            )
            .returning(
                SummaryJob.post_id,
                SummaryJob.generation,
                SummaryJob.forced,
                SummaryJob.attempts,
                SummaryJob.lease_token,
                SummaryJob.first_triggered_at,
                SummaryJob.trace_context,
            )
        )
        return [ClaimedJob(*row) for row in rows.all()]

    async def renew(self, job: ClaimedJob, *, lease_seconds: float) -> bool:
        """Extend a lease still held; False when it was lost (another worker took the job)."""
        result = await self._session.execute(
            update(SummaryJob)
            .where(SummaryJob.post_id == job.post_id, SummaryJob.lease_token == job.lease_token)
            .values(leased_until=_later(lease_seconds))
            .returning(SummaryJob.post_id)
        )
        return result.first() is not None

    async def holds(self, job: ClaimedJob) -> bool:
        """Lock the job if this worker still holds its lease; False when it lost it.

        Storing a summary checks this first, in the same transaction: a post
        removed meanwhile (its job deleted) or a job taken over by another
        worker after a missed renewal must not get this worker's summary.
        """
        held = await self._session.execute(
            select(SummaryJob.post_id)
            .where(SummaryJob.post_id == job.post_id, SummaryJob.lease_token == job.lease_token)
            .with_for_update()
        )
        return held.first() is not None

    async def finish(self, job: ClaimedJob, *, requeue_after_seconds: float) -> bool:
        """Done with this generation: delete the job, or requeue it if the thread changed meanwhile.

        True when the job is gone; False when triggers that came in while it
        ran keep it: it is due again after the debounce, counted from now.
        """
        deleted = await self._session.execute(
            delete(SummaryJob)
            .where(
                SummaryJob.post_id == job.post_id,
                SummaryJob.lease_token == job.lease_token,
                SummaryJob.generation == job.generation,
            )
            .returning(SummaryJob.post_id)
        )
        if deleted.first() is not None:
            return True
        await self._session.execute(
            update(SummaryJob)
            .where(SummaryJob.post_id == job.post_id, SummaryJob.lease_token == job.lease_token)
            .values(
                leased_until=None,
                lease_token=None,
                attempts=0,
                last_error=None,
                first_triggered_at=func.now(),
                due_at=_later(requeue_after_seconds),
                # What this run just made answers a request made during it too:
                # the next run only needs to happen if the input changed.
                forced=False,
            )
        )
        return False

    async def recount(self, post_id: uuid.UUID, comment_count: int) -> None:
        """The summary still stands for a thread of this size (its input did not change)."""
        await self._session.execute(
            update(Summary).where(Summary.post_id == post_id).values(comment_count=comment_count)
        )

    async def release_failed(self, job: ClaimedJob, *, retry_in: timedelta, error: str) -> None:
        await self._session.execute(
            update(SummaryJob)
            .where(SummaryJob.post_id == job.post_id, SummaryJob.lease_token == job.lease_token)
            .values(
                leased_until=None,
                lease_token=None,
                due_at=func.now() + literal(retry_in, Interval()),
                last_error=error,
            )
        )

    async def release(self, jobs: list[ClaimedJob]) -> None:
        """Hand leased jobs back at once (shutdown), as if never claimed."""
        for job in jobs:
            await self._session.execute(
                update(SummaryJob)
                .where(SummaryJob.post_id == job.post_id, SummaryJob.lease_token == job.lease_token)
                .values(leased_until=None, lease_token=None, attempts=SummaryJob.attempts - 1)
            )

    async def store(self, summary: NewSummary) -> datetime:
        """Insert or replace the post's summary; returns its generated_at (database time)."""
        values = {
            "summary": summary.summary,
            "provider": summary.provider,
            "model": summary.model,
            "comment_count": summary.comment_count,
            "input_hash": summary.input_hash,
            "input_tokens": summary.input_tokens,
            "output_tokens": summary.output_tokens,
            "generated_at": func.now(),
        }
        stmt = insert(Summary).values(post_id=summary.post_id, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[Summary.post_id], set_=values)
        generated_at = await self._session.scalar(stmt.returning(Summary.generated_at))
        assert generated_at is not None
        return generated_at

    # On-demand requests

    async def lock_requester(self, user_id: uuid.UUID) -> None:
        """Serialise one user's requests for the rest of the transaction, so the count is exact."""
        await self._session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"agora-summary-requests:{user_id}"},
        )

    async def requests_since(self, user_id: uuid.UUID, since: timedelta) -> list[datetime]:
        """When the user asked within the last `since`, oldest first."""
        rows = await self._session.scalars(
            select(SummaryRequest.requested_at)
            .where(
                SummaryRequest.user_id == user_id,
                SummaryRequest.requested_at > func.now() - literal(since, Interval()),
            )
            .order_by(SummaryRequest.requested_at)
        )
        return list(rows)

    async def add_request(self, user_id: uuid.UUID, post_id: uuid.UUID) -> None:
        await self._session.execute(insert(SummaryRequest).values(user_id=user_id, post_id=post_id))

    async def prune_requests(self, user_id: uuid.UUID, older_than: timedelta) -> None:
        await self._session.execute(
            delete(SummaryRequest).where(
                SummaryRequest.user_id == user_id,
                SummaryRequest.requested_at <= func.now() - literal(older_than, Interval()),
            )
        )


def _unleased() -> ColumnElement[bool]:
    return (SummaryJob.leased_until.is_(None)) | (SummaryJob.leased_until < func.now())
