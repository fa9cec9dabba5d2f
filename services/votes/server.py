"""The VotesService gRPC servicer: proto in, use case, proto out.

Nothing here decides anything. The caller comes from the verified identity
metadata only (common.context): CastVote needs one, GetMyVotes answers an
empty map without one, GetTallies is public. Failures are common.errors types,
which the server interceptor turns into status codes with field violations
named as in the public API (target_type, direction, idempotency_key,
target_ids).
"""

from __future__ import annotations

from typing import Any

import grpc
from agora.votes.v1 import votes_pb2, votes_pb2_grpc

from common.context import caller_id, require_caller
from services.votes.domain import Tally
from services.votes.service import VotesService

Context = grpc.aio.ServicerContext[Any, Any]


def tally_message(target_id: str, tally: Tally) -> votes_pb2.Tally:
    return votes_pb2.Tally(
        target_id=target_id, score=tally.score, upvotes=tally.upvotes, downvotes=tally.downvotes
    )


class VotesServicer(votes_pb2_grpc.VotesServiceServicer):
    def __init__(self, service: VotesService) -> None:
        self._service = service

    async def CastVote(
        self, request: votes_pb2.CastVoteRequest, context: Context
    ) -> votes_pb2.CastVoteResponse:
        answer = await self._service.cast_vote(
            require_caller(),
            target_type=request.target_type,
            target_id=request.target_id,
            direction=request.direction,
            idempotency_key=request.idempotency_key,
        )
        return votes_pb2.CastVoteResponse(
            tally=votes_pb2.Tally(
                target_id=str(answer.target_id),
                score=answer.score,
                upvotes=answer.upvotes,
                downvotes=answer.downvotes,
            ),
            my_vote=answer.my_vote,
        )

    async def GetMyVotes(
        self, request: votes_pb2.GetMyVotesRequest, context: Context
    ) -> votes_pb2.GetMyVotesResponse:
        votes = await self._service.my_votes(
            caller_id(), target_type=request.target_type, target_ids=list(request.target_ids)
        )
        return votes_pb2.GetMyVotesResponse(
            votes={str(target_id): direction for target_id, direction in votes.items()}
        )

    async def GetTallies(
        self, request: votes_pb2.GetTalliesRequest, context: Context
    ) -> votes_pb2.GetTalliesResponse:
        tallies = await self._service.tallies(
            target_type=request.target_type, target_ids=list(request.target_ids)
        )
        return votes_pb2.GetTalliesResponse(
            tallies=[tally_message(str(target_id), tally) for target_id, tally in tallies]
        )
