"""Wiring of the communities process: build settings-driven resources once, at start-up.

`build` is what common.grpc_server.run_service calls. Everything it opens is
registered on runtime.resources, which closes them in reverse order after the
gRPC server has drained and the background tasks (outbox relay, post-count
consumer) have been cancelled.
"""

from __future__ import annotations

from agora.auth.v1 import auth_pb2, auth_pb2_grpc
from agora.communities.v1 import communities_pb2, communities_pb2_grpc

from common.bus import EventBus
from common.consumer import EventConsumer
from common.db import Database
from common.grpc_server import ServiceRuntime
from common.outbox import Outbox, OutboxRelay
from common.topology import service
from services.communities import events, models
from services.communities.server import CommunitiesServicer
from services.communities.service import CommunitiesService
from services.communities.settings import CommunitiesSettings
from services.communities.users import AuthUserDirectory

SERVICE_NAME = communities_pb2.DESCRIPTOR.services_by_name["CommunitiesService"].full_name


async def build(runtime: ServiceRuntime[CommunitiesSettings]) -> None:
    settings = runtime.settings
    db = Database(
        settings.db, role=service("communities").db_role, application_name="agora-communities"
    )
    runtime.resources.push_async_callback(db.dispose)
    # One NATS connection for the relay and the consumer; it (re)connects lazily,
    # so the service starts and serves while NATS is down.
    bus = EventBus(settings, client_name="agora-communities")
    runtime.resources.push_async_callback(bus.close)
    auth_channel = runtime.channel_to("auth", auth_pb2.DESCRIPTOR.services_by_name["AuthService"])

    outbox = Outbox(models.outbox, settings.nats_subject_prefix)
    communities = CommunitiesService(
        db=db,
        outbox=outbox,
        users=AuthUserDirectory(auth_pb2_grpc.AuthServiceStub(auth_channel)),
        cursor_secret=settings.cursor_secret.get_secret_value().encode(),
    )
    runtime.add_servicer(
        SERVICE_NAME,
        communities_pb2_grpc.add_CommunitiesServiceServicer_to_server,
        CommunitiesServicer(communities),
    )

    relay = OutboxRelay(db, outbox, bus)
    post_counts = EventConsumer(
        bus,
        db,
        models.processed_events,
        durable=events.POST_COUNTS_DURABLE,
        subjects=events.POST_COUNT_SUBJECTS,
        handler=events.apply_post_event,
    )
    runtime.add_background(relay.run)
    runtime.add_background(post_counts.run)
