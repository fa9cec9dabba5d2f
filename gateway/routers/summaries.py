"""AI summaries of a post's discussion: GET and POST /api/v1/posts/{id}/summary.

Summaries are made in the background by the summarizer service; these routes
only read them or ask for a fresh one. A summary that is not made yet is a 202
with `Retry-After`, so clients poll at the pace the service suggests instead
of hammering it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from gateway.deps import CurrentUser, SummarizerClientDep
from gateway.openapi import problem_responses
from gateway.params import PostIdParam, resource_id
from gateway.responses import JSONBytesResponse
from gateway.schemas.summaries import SummaryPending, SummaryReady, is_ready, summary_payload

router = APIRouter(prefix="/api/v1", tags=["summaries"])

_PENDING: dict[int | str, dict[str, Any]] = {
    202: {
        "model": SummaryPending,
        "description": "Being made; ask again after `Retry-After` seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
}


def _answer(payload: dict[str, Any], *, ready: bool, retry_after: int) -> Response:
    if ready:
        return JSONBytesResponse(payload)
    return JSONBytesResponse(
        payload, status_code=202, headers={"Retry-After": str(max(1, retry_after))}
    )


@router.get(
    "/posts/{post_id}/summary",
    response_model=SummaryReady,
    response_class=JSONBytesResponse,
    responses={**_PENDING, **problem_responses(404, 503)},
    summary="The AI summary of a post's discussion",
)
async def get_summary(post_id: PostIdParam, summarizer: SummarizerClientDep) -> Response:
    answer = await summarizer.get(resource_id(post_id, "post"))
    return _answer(
        summary_payload(answer.summary),
        ready=is_ready(answer.summary),
        retry_after=answer.retry_after_seconds,
    )


@router.post(
    "/posts/{post_id}/summary",
    status_code=202,
    response_model=SummaryPending,
    response_class=JSONBytesResponse,
    responses={
        202: {
            "model": SummaryPending,
            "description": "A fresh summary is being made; GET it after `Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
        **problem_responses(401, 404, 429, 503),
    },
    summary="Ask for a fresh summary (50 a day per user)",
)
async def request_summary(
    post_id: PostIdParam, user: CurrentUser, summarizer: SummarizerClientDep
) -> Response:
    answer = await summarizer.request(resource_id(post_id, "post"))
    payload = {"post_id": answer.summary.post_id, "status": "pending"}
    return _answer(payload, ready=False, retry_after=answer.retry_after_seconds)
