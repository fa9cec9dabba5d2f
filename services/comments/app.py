"""Wiring of the comments process: build settings-driven resources once, at start-up.

`build` is what common.grpc_server.run_service calls. It opens the database,
the event bus, one channel each to posts and communities, and registers the
servicer plus background tasks: the outbox relay (publishes comment events)
and the vote tally consumers (services/comments/events.py). Everything opened
is closed in reverse order after the gRPC server has drained.
"""

from __future__ import annotations

from agora.comments.v1 import comments_pb2, comments_pb2_grpc

from common.bus import EventBus
from common.db import Database
from common.grpc_server import ServiceRuntime
from common.outbox import Outbox, OutboxRelay
from common.topology import service
from services.comments import events
from services.comments.models import outbox
from services.comments.server import CommentsServicer
from services.comments.service import CommentsService
from services.comments.settings import CommentsSettings
from services.comments.upstream import COMMUNITIES_SERVICE, POSTS_SERVICE, GrpcUpstream

SERVICE_NAME = comments_pb2.DESCRIPTOR.services_by_name["CommentsService"].full_name


async def build(runtime: ServiceRuntime[CommentsSettings]) -> None:
    settings = runtime.settings
    db = Database(settings.db, role=service("comments").db_role, application_name="agora-comments")
    runtime.resources.push_async_callback(db.dispose)
    bus = EventBus(settings, client_name="agora-comments")
    runtime.resources.push_async_callback(bus.close)

    posts = runtime.channel_to("posts", POSTS_SERVICE)
    communities = runtime.channel_to("communities", COMMUNITIES_SERVICE)

    staged = Outbox(outbox, settings.nats_subject_prefix)
    comments = CommentsService(
        db=db,
        outbox=staged,
        upstream=GrpcUpstream(
            posts, communities, deadline=settings.comments_upstream_deadline_seconds
        ),
        cursor_secret=settings.cursor_secret.get_secret_value().encode(),
    )
    runtime.add_servicer(
        SERVICE_NAME,
        comments_pb2_grpc.add_CommentsServiceServicer_to_server,
        CommentsServicer(comments),
    )

    relay = OutboxRelay(db, staged, bus)

    async def comments_outbox_relay() -> None:
        await relay.run()

    runtime.add_background(comments_outbox_relay)
    for consumer in events.build_consumers(bus, db):
        runtime.add_background(consumer.run)
