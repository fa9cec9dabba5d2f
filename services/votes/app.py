"""Wiring of the votes process: build settings-driven resources once, at start-up.

`build` is what common.grpc_server.run_service calls. Everything it opens is
registered on runtime.resources, which closes them in reverse order after the
gRPC server has drained and the background tasks (outbox relay, key purge)
were cancelled. Channels to posts, comments and communities are opened once
here and connect lazily, so votes starts even while they are still starting.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from agora.comments.v1 import comments_pb2, comments_pb2_grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc
from agora.posts.v1 import posts_pb2, posts_pb2_grpc
from agora.votes.v1 import votes_pb2, votes_pb2_grpc

from common.bus import EventBus
from common.db import Database
from common.grpc_server import ServiceRuntime
from common.outbox import Outbox, OutboxRelay
from common.topology import service
from services.votes import models
from services.votes.server import VotesServicer
from services.votes.service import VotesService
from services.votes.settings import VotesSettings
from services.votes.targets import GrpcTargetDirectory

log = logging.getLogger("agora.votes")

SERVICE_NAME = votes_pb2.DESCRIPTOR.services_by_name["VotesService"].full_name


async def build(runtime: ServiceRuntime[VotesSettings]) -> None:
    settings = runtime.settings
    db = Database(settings.db, role=service("votes").db_role, application_name="agora-votes")
    runtime.resources.push_async_callback(db.dispose)
    bus = EventBus(settings, client_name="agora-votes")
    runtime.resources.push_async_callback(bus.close)
    outbox = Outbox(models.outbox, settings.nats_subject_prefix)

    posts = runtime.channel_to("posts", posts_pb2.DESCRIPTOR.services_by_name["PostsService"])
    comments = runtime.channel_to(
        "comments", comments_pb2.DESCRIPTOR.services_by_name["CommentsService"]
    )
    communities = runtime.channel_to(
        "communities", communities_pb2.DESCRIPTOR.services_by_name["CommunitiesService"]
    )

    votes = VotesService(
        db=db,
        outbox=outbox,
        targets=GrpcTargetDirectory(
            posts=posts_pb2_grpc.PostsServiceStub(posts),
            comments=comments_pb2_grpc.CommentsServiceStub(comments),
            communities=communities_pb2_grpc.CommunitiesServiceStub(communities),
        ),
        idempotency_ttl=timedelta(seconds=settings.votes_idempotency_ttl_seconds),
    )
    runtime.add_servicer(
        SERVICE_NAME, votes_pb2_grpc.add_VotesServiceServicer_to_server, VotesServicer(votes)
    )
    runtime.add_background(OutboxRelay(db, outbox, bus).run)

    interval = settings.votes_key_purge_interval_seconds
    if interval > 0:

        async def purge_expired_idempotency_keys() -> None:
            while True:
                try:
                    await votes.purge_expired_keys()
                except Exception:
                    # Housekeeping must never take the service down; try again next round.
                    log.exception("purging expired idempotency keys failed")
                await asyncio.sleep(interval)

        runtime.add_background(purge_expired_idempotency_keys)
