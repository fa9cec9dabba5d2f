"""Wiring of the posts process: build settings-driven resources once, at start-up.

`build` is what common.grpc_server.run_service calls. Everything it opens is
registered on runtime.resources, which closes them in reverse order after the
gRPC server has drained; the outbox relay and the consumers run as
background tasks and are cancelled at shutdown (an event in flight is simply
redelivered: every step is idempotent).
"""

from __future__ import annotations

from agora.communities.v1 import communities_pb2
from agora.posts.v1 import posts_pb2, posts_pb2_grpc

from common.bus import EventBus
from common.db import Database
from common.grpc_server import ServiceRuntime
from common.outbox import Outbox, OutboxRelay
from common.topology import service
from services.posts.events import build_consumers
from services.posts.models import outbox
from services.posts.permissions import CommunitiesPermissions
from services.posts.server import PostsServicer
from services.posts.service import PostsService
from services.posts.settings import PostsSettings

SERVICE_NAME = posts_pb2.DESCRIPTOR.services_by_name["PostsService"].full_name
COMMUNITIES = communities_pb2.DESCRIPTOR.services_by_name["CommunitiesService"]


async def build(runtime: ServiceRuntime[PostsSettings]) -> None:
    settings = runtime.settings
    db = Database(settings.db, role=service("posts").db_role, application_name="agora-posts")
    runtime.resources.push_async_callback(db.dispose)

    bus = EventBus(settings, client_name="agora-posts")
    runtime.resources.push_async_callback(bus.close)

    communities = runtime.channel_to("communities", COMMUNITIES)

    staged = Outbox(outbox, settings.nats_subject_prefix)
    posts = PostsService(
        db=db,
        outbox=staged,
        permissions=CommunitiesPermissions(
            communities, deadline_seconds=settings.posts_communities_deadline_seconds
        ),
        cursor_secret=settings.cursor_secret.get_secret_value().encode(),
    )
    runtime.add_servicer(
        SERVICE_NAME, posts_pb2_grpc.add_PostsServiceServicer_to_server, PostsServicer(posts)
    )

    relay = OutboxRelay(db, staged, bus)
    runtime.add_background(relay.run)
    for consumer in build_consumers(bus, db):
        runtime.add_background(consumer.run)
