"""The summary job queue against Postgres: leases, generations and the debounce.

These run on a database of their own (no summarizer process polls it), so a
test can hold a lease and play the worker step by step: what the races the
service must survive look like when they happen in the worst order.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from common.db import Database
from common.ids import uuid7
from common.settings import DatabaseSettings
from common.topology import service
from services.summarizer.repository import ClaimedJob, NewSummary, SummariesRepository
from tests.conftest import RUN_ID
from tools import bootstrap

SUMMARIZER = service("summarizer")


@pytest.fixture(scope="module")
async def db(db_settings: DatabaseSettings) -> AsyncIterator[Database]:
    settings = db_settings.model_copy(update={"name": f"agora_test_{RUN_ID}_queue"})
    bootstrap.ensure_database(settings)
    database = Database(settings, role=SUMMARIZER.db_role, application_name="queue-tests")
    try:
        bootstrap.migrate(settings, (SUMMARIZER,))
        yield database
    finally:
        await database.dispose()
        bootstrap.drop_database(settings)


async def _schedule(db: Database, post_id: uuid.UUID, *, debounce: float = 0) -> None:
    async with db.transaction() as session:
        await SummariesRepository(session).schedule(
            post_id, debounce_seconds=debounce, max_delay_seconds=60
        )


async def _claim(db: Database, post_id: uuid.UUID) -> ClaimedJob | None:
    async with db.transaction() as session:
        jobs = await SummariesRepository(session).claim_due(100, lease_seconds=30)
    return next((job for job in jobs if job.post_id == post_id), None)


async def _store_and_finish(db: Database, job: ClaimedJob) -> bool | None:
    """What the worker does with an answer: None when it no longer holds the job."""
    async with db.transaction() as session:
        repo = SummariesRepository(session)
        if not await repo.holds(job):
            return None
        await repo.store(
            NewSummary(job.post_id, "A summary.", "local", "extractive-v1", 3, "0" * 64, 10, 5)
        )
        return await repo.finish(job, requeue_after_seconds=2)


async def test_a_post_removed_while_its_summary_is_made_stays_without_one(db: Database) -> None:
    post_id = uuid7()
    await _schedule(db, post_id)
    job = await _claim(db, post_id)
    assert job is not None

    async with db.transaction() as session:  # the post_deleted event, mid-run
        await SummariesRepository(session).forget(post_id)

    assert await _store_and_finish(db, job) is None
    async with db.read() as session:
        assert await SummariesRepository(session).summary(post_id) is None


async def test_a_job_taken_over_after_its_lease_expired_is_not_finished_twice(
    db: Database,
) -> None:
    post_id = uuid7()
    await _schedule(db, post_id)
    first = await _claim(db, post_id)
    assert first is not None
    # The first worker stalls past its lease (as time would expire it); a second takes over.
    async with db.transaction() as session:
        await session.execute(
            text(
                "UPDATE summarizer.summary_jobs SET leased_until = now() - interval '1 s'"
                " WHERE post_id = :p"
            ),
            {"p": post_id},
        )
    second = await _claim(db, post_id)
    assert second is not None
    assert second.lease_token != first.lease_token

    assert await _store_and_finish(db, first) is None  # the stale worker's answer is void
    assert await _store_and_finish(db, second) is True


async def test_triggers_during_a_run_requeue_the_job_after_the_debounce(db: Database) -> None:
    post_id = uuid7()
    await _schedule(db, post_id)
    job = await _claim(db, post_id)
    assert job is not None

    await _schedule(db, post_id, debounce=1)  # a comment arrives while the model thinks
    assert await _store_and_finish(db, job) is False  # kept: the thread changed

    # Not claimable at once (that made back-to-back paid calls), only after the debounce.
    assert await _claim(db, post_id) is None
    async with db.read() as session:
        repo = SummariesRepository(session)
        queued = await repo.job(post_id)
        now = await repo.now()
    assert queued is not None
    assert queued.running is False
    assert timedelta(seconds=1) < queued.due_at - now <= timedelta(seconds=2)


async def test_an_untouched_run_ends_its_job(db: Database) -> None:
    post_id = uuid7()
    await _schedule(db, post_id)
    job = await _claim(db, post_id)
    assert job is not None
    assert await _store_and_finish(db, job) is True
    async with db.read() as session:
        repo = SummariesRepository(session)
        assert await repo.job(post_id) is None
        stored = await repo.summary(post_id)
    assert stored is not None
    assert stored.comment_count == 3
