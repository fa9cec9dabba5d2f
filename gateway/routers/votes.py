"""Votes on posts and comments: PUT /api/v1/posts/{id}/vote and /comments/{id}/vote.

The answer is the votes service's exact tally right after the change;
listings catch up from its events within about a second. An
`Idempotency-Key` makes a retried request replay the first answer.

A vote on a post drops the cached answers showing that post (rebuilt with the
votes service's exact tallies, so the next read shows the vote) and the
voter's own cached `my_vote` for it. Comments are not cached.
"""

from __future__ import annotations

from typing import Annotated

from agora.votes.v1 import votes_pb2
from fastapi import APIRouter, Header, Response

from common.contract import IDEMPOTENCY_KEY_PATTERN
from gateway.cache import keys
from gateway.cache.dependency import CacheDep
from gateway.cache.store import PersonalChange
from gateway.clients import VotesClient
from gateway.deps import JSON_BODY, CurrentUser, VotesClientDep
from gateway.openapi import BODY_STATUSES, problem_responses
from gateway.params import CommentIdParam, PostIdParam, resource_id
from gateway.responses import JSONBytesResponse
from gateway.schemas.votes import VoteRequest, VoteResult, vote_payload

router = APIRouter(prefix="/api/v1", tags=["votes"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="1-255 printable ASCII characters. The same key again replays the "
        "first answer and changes nothing; with another vote it is a 409.",
    ),
]
_ERRORS = problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 503)
_DESCRIPTION = (
    "`direction` 1 up, -1 down, 0 withdraws. 403 for one's own {noun} and for a user "
    "banned from the community; 409 once the {noun} is deleted or removed."
)


async def _vote(
    votes: VotesClient,
    target_type: votes_pb2.TargetType.ValueType,
    target_id: str,
    body: VoteRequest,
    key: str | None,
) -> Response:
    answer = await votes.cast(
        target_type=target_type,
        target_id=target_id,
        direction=body.direction,
        idempotency_key=key or "",
    )
    return JSONBytesResponse(vote_payload(answer))


@router.put(
    "/posts/{post_id}/vote",
    response_model=VoteResult,
    response_class=JSONBytesResponse,
    responses=_ERRORS,
    dependencies=[JSON_BODY],
    summary="Vote on a post",
    description=_DESCRIPTION.format(noun="post"),
)
async def vote_post(
    *,
    post_id: PostIdParam,
    body: VoteRequest,
    user: CurrentUser,
    votes: VotesClientDep,
    cache: CacheDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    target = resource_id(post_id, "post")
    answer = await _vote(votes, votes_pb2.TARGET_TYPE_POST, target, body, idempotency_key)
    await cache.invalidate(
        keys.post_tag(target), personal=PersonalChange(user.user_id, "votes", (target,))
    )
    return answer


@router.put(
    "/comments/{comment_id}/vote",
    response_model=VoteResult,
    response_class=JSONBytesResponse,
    responses=_ERRORS,
    dependencies=[JSON_BODY],
    summary="Vote on a comment",
    description=_DESCRIPTION.format(noun="comment"),
)
async def vote_comment(
    comment_id: CommentIdParam,
    body: VoteRequest,
    user: CurrentUser,
    votes: VotesClientDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    target = resource_id(comment_id, "comment")
    return await _vote(votes, votes_pb2.TARGET_TYPE_COMMENT, target, body, idempotency_key)
