"""The summarizer's use cases: read a summary, ask for one, and react to thread events.

Reads go to the Redis copy first and to the database on a miss. Asking for a
summary and reacting to events only ever write a job (the worker makes the
summary later), so these calls are fast and cost no model call themselves.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from agora.events.v1 import events_pb2
from agora.posts.v1 import posts_pb2
from agora.summarizer.v1 import summarizer_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database
from common.errors import NotFound, ResourceExhausted
from common.ids import parse_uuid
from common.tracing import carrier
from services.summarizer import answers
from services.summarizer.cache import SummaryCache
from services.summarizer.domain import GrowthRule, TriggerKind, trigger_for
from services.summarizer.repository import SummariesRepository
from services.summarizer.threads import POST_NOT_FOUND

log = logging.getLogger("agora.summarizer")

QUOTA_WINDOW = timedelta(days=1)
# Event ids awaiting their after-commit step (see SummarizerService._changed_by).
CHANGED_IDS_KEPT = 10_000
_UNCHANGED = object()


class PostDirectory(Protocol):
    async def post(self, post_id: uuid.UUID) -> posts_pb2.Post: ...


@dataclass(frozen=True, slots=True)
class Scheduling:
    """How events become jobs: the debounce and the growth rule, from settings."""

    debounce_seconds: float
    max_delay_seconds: float
    growth: GrowthRule


class SummarizerService:
    def __init__(
        self,
        *,
        db: Database,
        cache: SummaryCache,
        posts: PostDirectory,
        scheduling: Scheduling,
        daily_requests_per_user: int,
        work_available: asyncio.Event,
    ) -> None:
        self._db = db
        self._cache = cache
        self._posts = posts
        self._scheduling = scheduling
        self._daily_quota = daily_requests_per_user
        self._work_available = work_available
        # Ids of events whose handler changed a job or summary; their after-commit
        # step drops the cached answer. An id whose transaction did not commit
        # (a failed batch whose event was then parked, or found already applied
        # after a commit whose answer was lost) never gets that step: the oldest
        # ids go beyond CHANGED_IDS_KEPT, so the map stays bounded.
        self._changed_by: OrderedDict[str, None] = OrderedDict()

    async def get_summary(self, post_id: str) -> summarizer_pb2.GetSummaryResponse:
        wanted = _post_uuid(post_id)
        cached = await self._cache.get(wanted)
        if cached is not None:
            return cached
        async with self._db.read() as session:
            repo = SummariesRepository(session)
            found = answers.answer(
                str(wanted), await repo.summary(wanted), await repo.job(wanted), await repo.now()
            )
        if found is not None:
            if found.summary.status == summarizer_pb2.SUMMARY_STATUS_READY:
                await self._cache.put(wanted, found, only_if_absent=True)
            return found
        # Never summarised (older than the summarizer, say): make one now.
        await self._posts.post(wanted)
        async with self._db.transaction() as session:
            answer = await self._schedule_now(SummariesRepository(session), wanted, forced=False)
        await self._after_change(wanted)
        return answer

    async def request_summary(
        self, user_id: str, post_id: str
    ) -> summarizer_pb2.RequestSummaryResponse:
        """Queue a fresh summary for a user, within their daily quota."""
        requester = uuid.UUID(user_id)
        wanted = _post_uuid(post_id)
        await self._posts.post(wanted)
        async with self._db.transaction() as session:
            repo = SummariesRepository(session)
            await repo.lock_requester(requester)
            recent = await repo.requests_since(requester, QUOTA_WINDOW)
            if len(recent) >= self._daily_quota:
                now = await repo.now()
                # A slot frees when enough of the window's requests leave it to go under.
                leaving = len(recent) - self._daily_quota
                free_at = recent[leaving] + QUOTA_WINDOW if recent else now + QUOTA_WINDOW
                raise ResourceExhausted(
                    f"at most {self._daily_quota} summary requests a day",
                    retry_after_seconds=max((free_at - now).total_seconds(), 1.0),
                )
            await repo.prune_requests(requester, QUOTA_WINDOW)
            await repo.add_request(requester, wanted)
            # The request counts only if its job is queued: both commit or neither.
            answer = await self._schedule_now(repo, wanted, forced=True)
        await self._after_change(wanted)
        log.info("summary requested", extra={"post_id": str(wanted), "user_id": user_id})
        return summarizer_pb2.RequestSummaryResponse(
            summary=answer.summary, retry_after_seconds=answer.retry_after_seconds
        )

    async def _schedule_now(
        self, repo: SummariesRepository, post_id: uuid.UUID, *, forced: bool
    ) -> summarizer_pb2.GetSummaryResponse:
        await repo.schedule(
            post_id,
            debounce_seconds=0,
            max_delay_seconds=self._scheduling.max_delay_seconds,
            forced=forced,
            trace_context=carrier(),
        )
        found = answers.answer(
            str(post_id), await repo.summary(post_id), await repo.job(post_id), await repo.now()
        )
        assert found is not None  # the job was just written
        return found

    # Events

    async def handle_event(self, session: AsyncSession, event: events_pb2.Event) -> None:
        """Consumer handler: runs inside the transaction that records the event as processed."""
        trigger = trigger_for(event)
        if trigger is None:
            return
        repo = SummariesRepository(session)
        if trigger.kind is TriggerKind.FORGET:
            await repo.forget(trigger.post_id)
            self._note_change(event.id)
            return
        if trigger.kind is TriggerKind.FIRST and (
            await repo.job(trigger.post_id) is not None
            or await repo.summary(trigger.post_id) is not None
        ):
            # A reader's GET got here first and queued the summary: scheduling
            # again would make a running job summarise the same post twice.
            return
        if trigger.kind not in {
            TriggerKind.FIRST,
            TriggerKind.SCHEDULE,
        } and not await self._worth_a_summary(
            repo, trigger.post_id, trigger.kind, trigger.comment_count
        ):
            return
        await repo.schedule(
            trigger.post_id,
            debounce_seconds=self._scheduling.debounce_seconds,
            max_delay_seconds=self._scheduling.max_delay_seconds,
            # The job's summary continues this event's trace (common.tracing).
            trace_context=carrier(),
        )
        self._note_change(event.id)

    async def _worth_a_summary(
        self, repo: SummariesRepository, post_id: uuid.UUID, kind: TriggerKind, count: int
    ) -> bool:
        job = await repo.job(post_id)
        if job is not None and not job.running:
            return True  # it will run anyway; push its debounce back
        # No job, or one running on an older state of the thread: the same
        # rules as for a summary that is already there decide.
        summary = await repo.summary(post_id)
        if kind is TriggerKind.REFRESH:
            # The old summary may quote what changed; nothing to refresh without one.
            return summary is not None
        return summary is None or self._scheduling.growth.grown_enough(summary.comment_count, count)

    def _note_change(self, event_id: str) -> None:
        self._changed_by[event_id] = None
        while len(self._changed_by) > CHANGED_IDS_KEPT:
            self._changed_by.popitem(last=False)

    async def after_event(self, event: events_pb2.Event) -> None:
        """After the handler's commit: if it changed anything, the cached answer is stale."""
        if self._changed_by.pop(event.id, _UNCHANGED) is _UNCHANGED:
            return
        trigger = trigger_for(event)
        if trigger is not None:
            await self._after_change(trigger.post_id)

    async def _after_change(self, post_id: uuid.UUID) -> None:
        await self._cache.drop(post_id)
        self._work_available.set()


def _post_uuid(post_id: str) -> uuid.UUID:
    """Malformed ids name no post: NOT_FOUND, as the posts service answers."""
    parsed = parse_uuid(post_id)
    if parsed is None:
        raise NotFound(POST_NOT_FOUND)
    return parsed
