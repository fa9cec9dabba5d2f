"""What the communities service publishes, and the post events it consumes.

Published (through the outbox, in the transaction of the change):
`community_created` when a community is made, `membership_changed` whenever a
membership row appears or goes (join, leave, a ban, an appointment), carrying
the member count after the change.

Consumed: `post_created` and `post_deleted` by the durable consumer
`communities-post-counts`, which keeps each community's post_count. The
consumer records every event id in processed_events in the same transaction
(common.consumer), so a redelivered event changes nothing.
"""

from __future__ import annotations

import logging
import uuid

from agora.events.v1 import events_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from common.events import SUBJECTS, new_event
from common.ids import parse_uuid
from services.communities.repository import CommunitiesRepository

log = logging.getLogger("agora.communities")

PRODUCER = "communities"
POST_COUNTS_DURABLE = "communities-post-counts"
POST_COUNT_SUBJECTS = [SUBJECTS["post_created"], SUBJECTS["post_deleted"]]


def community_created(
    *, community_id: uuid.UUID, name: str, creator_id: uuid.UUID
) -> events_pb2.Event:
    return new_event(
        PRODUCER,
        str(creator_id),
        community_created=events_pb2.CommunityCreated(
            community_id=str(community_id), name=name, creator_id=str(creator_id)
        ),
    )


def membership_changed(
    *,
    actor_id: uuid.UUID,
    community_id: uuid.UUID,
    user_id: uuid.UUID,
    joined: bool,
    member_count: int,
) -> events_pb2.Event:
    return new_event(
        PRODUCER,
        str(actor_id),
        membership_changed=events_pb2.MembershipChanged(
            community_id=str(community_id),
            user_id=str(user_id),
            joined=joined,
            member_count=member_count,
        ),
    )


async def apply_post_event(session: AsyncSession, event: events_pb2.Event) -> None:
    """post_count +1 on post_created, -1 on post_deleted (never below zero)."""
    kind = event.WhichOneof("payload")
    if kind == "post_created":
        community, delta = event.post_created.community_id, 1
    elif kind == "post_deleted":
        community, delta = event.post_deleted.community_id, -1
    else:
        return
    community_id = parse_uuid(community)
    changed = community_id is not None and await CommunitiesRepository(session).change_post_count(
        community_id, delta
    )
    if not changed:
        # Nothing to retry: the community does not exist (here) and never will.
        log.warning(
            "post event for an unknown community ignored",
            extra={"event_id": event.id, "kind": kind},
        )
