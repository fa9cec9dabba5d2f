"""The worker that turns due jobs into summaries.

It leases due jobs from the database (several workers, in one process or
many, share the queue through SKIP LOCKED), reads each thread from posts and
comments, builds the prompt and asks the provider chain. A summary, the end
of its job and its summary_ready event commit together. A lease is renewed
while a job runs, so a slow model call is not mistaken for a dead worker; a
worker that does die (kill -9, OOM) loses nothing: its leases expire and
another worker, or the restarted one, picks the jobs up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agora.events.v1 import events_pb2
from agora.summarizer.v1 import summarizer_pb2
from prometheus_client import Counter, Gauge, Histogram

from common.db import Database
from common.errors import NotFound
from common.events import new_event
from common.outbox import Outbox
from common.tracing import continue_trace, record_error, untraced
from services.summarizer import answers
from services.summarizer.cache import SummaryCache
from services.summarizer.domain import error_text, retry_delay
from services.summarizer.prompt import build_prompt
from services.summarizer.repository import (
    ClaimedJob,
    NewSummary,
    StoredSummary,
    SummariesRepository,
)
from services.summarizer.threads import GrpcThreadSource

if TYPE_CHECKING:
    from services.summarizer.providers.chain import SummaryChain

log = logging.getLogger("agora.summarizer.worker")

PRODUCER = "summarizer"
LOCAL = "local"
POLL_INTERVAL = 1.0
QUEUE_GAUGE_INTERVAL = 5.0

SUMMARIES = Counter(
    "agora_summaries_total",
    "Summary jobs by outcome (created, unchanged, post_gone, failed) and provider.",
    ["provider", "outcome"],
)
FRESHNESS = Histogram(
    "agora_summary_freshness_seconds",
    "From the first event that asked for a summary to the summary being stored.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
)
JOB_SECONDS = Histogram(
    "agora_summary_job_seconds",
    "Time a worker spent on one job (thread reads, model calls, storing).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
JOBS_DUE = Gauge("agora_summary_jobs_due", "Summary jobs waiting for a worker.")
JOBS_RUNNING = Gauge("agora_summary_jobs_running", "Summary jobs this process is working on.")


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    concurrency: int
    lease_seconds: float
    # A job that got new triggers while it ran is due again this long after it ends.
    debounce_seconds: float
    input_token_budget: int
    max_output_tokens: int


class SummaryWorker:
    def __init__(
        self,
        *,
        db: Database,
        source: GrpcThreadSource,
        chain: SummaryChain,
        outbox: Outbox,
        cache: SummaryCache,
        limits: WorkerLimits,
        work_available: asyncio.Event,
    ) -> None:
        self._db = db
        self._source = source
        self._chain = chain
        self._outbox = outbox
        self._cache = cache
        self._limits = limits
        self._work_available = work_available
        self._running: dict[asyncio.Task[None], ClaimedJob] = {}
        self._last_gauge = 0.0

    async def run(self) -> None:
        """Claim and work until cancelled; on cancellation hand unfinished jobs back.

        The polling is untraced; each job is traced on its own (see `_work`).
        """
        with untraced():
            try:
                while True:
                    await self._claim_more()
                    await self._wait_for_work()
            finally:
                await self._hand_back()

    async def _claim_more(self) -> None:
        free = self._limits.concurrency - len(self._running)
        try:
            async with self._db.transaction() as session:
                repo = SummariesRepository(session)
                # Measured even with every slot busy: that is when autoscaling needs it.
                if time.monotonic() - self._last_gauge > QUEUE_GAUGE_INTERVAL:
                    JOBS_DUE.set(await repo.due_count())
                    self._last_gauge = time.monotonic()
                if free <= 0:
                    return
                jobs = await repo.claim_due(free, lease_seconds=self._limits.lease_seconds)
        except Exception:
            # The database is down or restarting: try again next round.
            log.warning("claiming summary jobs failed", exc_info=True)
            return
        for job in jobs:
            task = asyncio.create_task(self._work(job), name=f"summary-{job.post_id}")
            self._running[task] = job
            task.add_done_callback(self._finished)
        JOBS_RUNNING.set(len(self._running))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        JOBS_RUNNING.set(len(self._running))
        # A free slot: look for more work at once.
        self._work_available.set()

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work_available.wait(), POLL_INTERVAL)
        self._work_available.clear()

    async def _hand_back(self) -> None:
        tasks = list(self._running)
        jobs = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not jobs:
            return
        try:
            async with self._db.transaction() as session:
                await SummariesRepository(session).release(jobs)
            log.info("handed back unfinished summary jobs", extra={"jobs": len(jobs)})
        except Exception:
            log.warning("could not hand back jobs; their leases will expire", exc_info=True)

    # One job

    async def _work(self, job: ClaimedJob) -> None:
        # A job may stand for many events; it continues the trace of the latest.
        with continue_trace(job.trace_context, "summary job", attributes=_job_attributes(job)):
            await self._work_traced(job)

    async def _work_traced(self, job: ClaimedJob) -> None:
        started = time.perf_counter()
        keeper = asyncio.create_task(self._keep_lease(job))
        try:
            try:
                await self._make_summary(job)
            except NotFound:
                await self._forget(job)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "summary job failed; retrying later",
                exc_info=True,
                extra={"post_id": str(job.post_id), "attempts": job.attempts},
            )
            record_error(error)
            await self._release_failed(job, error)
        finally:
            keeper.cancel()
            JOB_SECONDS.observe(time.perf_counter() - started)

    async def _keep_lease(self, job: ClaimedJob) -> None:
        while True:
            await asyncio.sleep(self._limits.lease_seconds / 3)
            try:
                async with self._db.transaction() as session:
                    held = await SummariesRepository(session).renew(
                        job, lease_seconds=self._limits.lease_seconds
                    )
            except Exception:
                log.warning("renewing a summary lease failed", exc_info=True)
                continue
            if not held:
                log.warning("lost the lease of a summary job", extra={"post_id": str(job.post_id)})
                return

    async def _make_summary(self, job: ClaimedJob) -> None:
        thread = await self._source.thread(job.post_id)
        prompt = build_prompt(
            thread,
            input_token_budget=self._limits.input_token_budget,
            max_output_tokens=self._limits.max_output_tokens,
        )
        async with self._db.read() as session:
            current = await SummariesRepository(session).summary(job.post_id)
        if self._still_good(current, prompt.input_hash, forced=job.forced):
            # Nothing a summary is made from changed (an edit outside the chosen
            # comments, say): keep the summary, skip the model call.
            async with self._db.transaction() as session:
                repo = SummariesRepository(session)
                if not await repo.holds(job):
                    SUMMARIES.labels("none", "lost_lease").inc()
                    return
                await repo.recount(job.post_id, thread.comment_count)
                gone = await repo.finish(job, requeue_after_seconds=self._limits.debounce_seconds)
            await self._publish_cache(job, gone=gone)
            SUMMARIES.labels("none", "unchanged").inc()
            return

        completion = await self._chain.summarize(prompt)
        async with self._db.transaction() as session:
            repo = SummariesRepository(session)
            if not await repo.holds(job):
                # The post was removed or deleted meanwhile (its job went with
                # it), or another worker took the job over: this summary is void.
                log.warning("summary dropped: lease lost", extra={"post_id": str(job.post_id)})
                SUMMARIES.labels(completion.provider, "lost_lease").inc()
                return
            await repo.store(
                NewSummary(
                    post_id=job.post_id,
                    summary=completion.text,
                    provider=completion.provider,
                    model=completion.model,
                    comment_count=thread.comment_count,
                    input_hash=prompt.input_hash,
                    input_tokens=completion.input_tokens,
                    output_tokens=completion.output_tokens,
                )
            )
            gone = await repo.finish(job, requeue_after_seconds=self._limits.debounce_seconds)
            await self._outbox.stage(
                session, _summary_ready(job, completion.provider, completion.model)
            )
            now = await repo.now()
        self._outbox.notify_committed()
        await self._publish_cache(job, gone=gone)
        FRESHNESS.observe(max((now - job.first_triggered_at).total_seconds(), 0.0))
        SUMMARIES.labels(completion.provider, "created").inc()
        log.info(
            "summary stored",
            extra={
                "post_id": str(job.post_id),
                "provider": completion.provider,
                "model": completion.model,
                "comment_count": thread.comment_count,
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
            },
        )

    def _still_good(self, current: StoredSummary | None, input_hash: str, *, forced: bool) -> bool:
        """Whether the stored summary can stand for this input without a model call.

        Not when a user asked, and not when it came from the local fallback
        while a remote model is configured: an outage's summaries must not stay.
        """
        if current is None or forced or current.input_hash != input_hash:
            return False
        return current.provider != LOCAL or not self._chain.has_remote_provider

    async def _publish_cache(self, job: ClaimedJob, *, gone: bool) -> None:
        """Write the new answer through to Redis (or drop it while another job is queued)."""
        if not gone:
            await self._cache.drop(job.post_id)
            return
        async with self._db.read() as session:
            summary = await SummariesRepository(session).summary(job.post_id)
        if summary is None:
            return
        answer = summarizer_pb2.GetSummaryResponse(summary=answers.ready(summary, refreshing=False))
        await self._cache.put(job.post_id, answer, only_if_absent=False)

    async def _forget(self, job: ClaimedJob) -> None:
        """The post is gone (deleted, removed or never existed): so are its summary and job."""
        async with self._db.transaction() as session:
            await SummariesRepository(session).forget(job.post_id)
        await self._cache.drop(job.post_id)
        SUMMARIES.labels("none", "post_gone").inc()

    async def _release_failed(self, job: ClaimedJob, error: BaseException) -> None:
        """Back to the queue after a growing delay; a job is never dropped for failing."""
        delay = retry_delay(job.attempts)
        SUMMARIES.labels("none", "failed").inc()
        try:
            async with self._db.transaction() as session:
                await SummariesRepository(session).release_failed(
                    job, retry_in=delay, error=error_text(error)
                )
        except Exception:
            log.warning("could not release a failed job; its lease will expire", exc_info=True)


def _job_attributes(job: ClaimedJob) -> dict[str, str | int | bool]:
    return {
        "agora.post_id": str(job.post_id),
        "agora.summary_job.attempt": job.attempts,
        "agora.summary_job.generation": job.generation,
        "agora.summary_job.forced": job.forced,
    }


def _summary_ready(job: ClaimedJob, provider: str, model: str) -> events_pb2.Event:
    return new_event(
        PRODUCER,
        None,
        summary_ready=events_pb2.SummaryReady(
            post_id=str(job.post_id), provider=provider, model=model
        ),
    )
