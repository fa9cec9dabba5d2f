"""Wiring of the summarizer process: build settings-driven resources once, at start-up.

`build` is what common.grpc_server.run_service calls. Besides the gRPC
servicer it runs four background tasks: the two event consumers, the worker
that makes summaries, and the outbox relay for summary_ready events. They
share one asyncio.Event, which the consumers and the servicer set whenever
they queued work, so the worker starts at once instead of at its next poll.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from agora.comments.v1 import comments_pb2
from agora.posts.v1 import posts_pb2
from agora.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

from common.bus import EventBus
from common.db import Database
from common.grpc_server import ServiceRuntime
from common.outbox import Outbox, OutboxRelay
from common.redis_client import open_redis
from common.topology import service
from services.summarizer import models
from services.summarizer.cache import SummaryCache
from services.summarizer.domain import GrowthRule
from services.summarizer.events import build_consumers
from services.summarizer.providers.chain import build_chain
from services.summarizer.server import SummarizerServicer
from services.summarizer.service import Scheduling, SummarizerService
from services.summarizer.settings import SummarizerSettings
from services.summarizer.threads import GrpcThreadSource
from services.summarizer.worker import SummaryWorker, WorkerLimits

SERVICE_NAME = summarizer_pb2.DESCRIPTOR.services_by_name["SummarizerService"].full_name
REDIS_TIMEOUT_SECONDS = 0.5


async def build(runtime: ServiceRuntime[SummarizerSettings]) -> None:
    settings = runtime.settings
    db = Database(
        settings.db, role=service("summarizer").db_role, application_name="agora-summarizer"
    )
    runtime.resources.push_async_callback(db.dispose)
    redis = open_redis(settings, timeout_seconds=REDIS_TIMEOUT_SECONDS)
    runtime.resources.push_async_callback(redis.aclose)
    bus = EventBus(settings, client_name="agora-summarizer")
    runtime.resources.push_async_callback(bus.close)
    outbox = Outbox(models.outbox, settings.nats_subject_prefix)
    cache = SummaryCache(
        redis, settings.redis_key_prefix, ttl_seconds=settings.summarizer_cache_ttl_seconds
    )

    posts = runtime.channel_to("posts", posts_pb2.DESCRIPTOR.services_by_name["PostsService"])
    comments = runtime.channel_to(
        "comments", comments_pb2.DESCRIPTOR.services_by_name["CommentsService"]
    )
    source = GrpcThreadSource(
        posts, comments, deadline=settings.summarizer_upstream_deadline_seconds
    )

    work_available = asyncio.Event()
    summarizer = SummarizerService(
        db=db,
        cache=cache,
        posts=source,
        scheduling=Scheduling(
            debounce_seconds=settings.summarizer_debounce_seconds,
            max_delay_seconds=settings.summarizer_max_delay_seconds,
            growth=GrowthRule(
                min_new=settings.summarizer_min_new_comments,
                ratio=settings.summarizer_growth_ratio,
            ),
        ),
        daily_requests_per_user=settings.summarizer_daily_requests_per_user,
        work_available=work_available,
    )
    runtime.add_servicer(
        SERVICE_NAME,
        summarizer_pb2_grpc.add_SummarizerServiceServicer_to_server,
        SummarizerServicer(summarizer),
    )
    chain = build_chain(settings)
    runtime.resources.push_async_callback(chain.aclose)
    worker = SummaryWorker(
        db=db,
        source=source,
        chain=chain,
        outbox=outbox,
        cache=cache,
        limits=WorkerLimits(
            concurrency=settings.summarizer_concurrency,
            lease_seconds=settings.summarizer_lease_seconds,
            debounce_seconds=settings.summarizer_debounce_seconds,
            input_token_budget=settings.summarizer_input_token_budget,
            max_output_tokens=settings.summarizer_max_output_tokens,
        ),
        work_available=work_available,
    )
    runtime.add_background(worker.run)
    runtime.add_background(OutboxRelay(db, outbox, bus).run)
    ack_wait = timedelta(seconds=settings.summarizer_event_ack_wait_seconds)
    for consumer in build_consumers(bus, db, summarizer, ack_wait=ack_wait):
        runtime.add_background(consumer.run)
