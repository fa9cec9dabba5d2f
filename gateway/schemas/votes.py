"""The vote body and answer of PUT /api/v1/posts/{id}/vote and /comments/{id}/vote."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from agora.votes.v1 import votes_pb2
from pydantic import Field, Strict

from gateway.schemas.base import RequestModel, ResponseModel

# A JSON integer only: Literal[-1, 0, 1] would let `true` and `1.0` through as 1.
Direction = Annotated[int, Strict(), Field(ge=-1, le=1, json_schema_extra={"enum": [-1, 0, 1]})]


class VoteRequest(RequestModel):
    direction: Direction = Field(
        description="1 up, -1 down, 0 withdraws the vote. An integer: `true` or `1.0` is a 422."
    )


class VoteResult(ResponseModel):
    """The target's exact tally right after the vote, and the caller's vote now."""

    score: int = Field(description="upvotes - downvotes.")
    upvotes: int
    downvotes: int
    my_vote: Literal[-1, 0, 1]


def vote_payload(answer: votes_pb2.CastVoteResponse) -> dict[str, Any]:
    return {
        "score": answer.tally.score,
        "upvotes": answer.tally.upvotes,
        "downvotes": answer.tally.downvotes,
        "my_vote": answer.my_vote,
    }
