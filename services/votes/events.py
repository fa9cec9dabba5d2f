"""What votes publishes: vote_cast, once per vote that changed a tally.

The event carries the absolute tally and its version rather than a delta, so
the copies in posts and comments apply it only when the version is newer than
theirs: replays and out-of-order deliveries change nothing. It also names the
target's author and community, for consumers such as karma that should not
have to look them up again. Votes consumes no events.
"""

from __future__ import annotations

from agora.events.v1 import events_pb2

from common.events import new_event
from services.votes.domain import Tally, Target, TargetType, VoteRequest

PRODUCER = "votes"

_EVENT_TARGET_TYPE = {
    TargetType.POST: events_pb2.VOTE_TARGET_TYPE_POST,
    TargetType.COMMENT: events_pb2.VOTE_TARGET_TYPE_COMMENT,
}


def vote_cast(
    request: VoteRequest, target: Target, previous: int, tally: Tally
) -> events_pb2.Event:
    voter = str(request.voter_id)
    return new_event(
        PRODUCER,
        voter,
        vote_cast=events_pb2.VoteCast(
            target_type=_EVENT_TARGET_TYPE[request.target_type],
            target_id=str(request.target_id),
            voter_id=voter,
            target_author_id=target.author_id,
            community_id=target.community_id,
            previous_direction=previous,
            direction=request.direction,
            score=tally.score,
            upvotes=tally.upvotes,
            downvotes=tally.downvotes,
            tally_version=tally.version,
        ),
    )
