"""Pure ASGI: anonymous cached reads answered from process memory, before FastAPI routes.

It sits inside the rate limiter (every request is still counted and limited)
and outside the routes: a memory hit costs neither FastAPI's routing and
dependency resolution nor a Redis round trip. The layers outside it still
run for it as for any answer: request id, access log and HTTP metrics (the
matched route is put back in the scope, so they name it), security headers,
gzip, CORS and the rate limit headers.

A request qualifies when it is an anonymous `GET /api/...`: no Authorization
header, which is the only thing besides the path and query that
`ResponseCache.serve` varies its answer on (the caller's `my_vote` and
`is_member`). Everything else goes through untouched, and so does a
qualifying request that memory does not hold: it then carries a
`MemoryOffer` down to the route, and if `ResponseCache.serve` answered it
from a Redis hit, the answer (body, headers, tags) is kept for the next
identical request. What may be kept, and for how long, is
`gateway.cache.memory`'s business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.tracing import annotate
from gateway.cache.memory import MEMORY_HIT_STATUS, MemoryOffer, memory_offer_var
from gateway.ratelimit.policy import API_PREFIX

if TYPE_CHECKING:
    from gateway.resources import Resources

_AUTHORIZATION = b"authorization"
_SPAN_ATTRIBUTES = {"agora.cache_status": MEMORY_HIT_STATUS}


class MemoryCacheMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(API_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        resources: Resources = scope["app"].state.resources
        memory = resources.cache.memory
        if memory is None or not memory.live or _signed(scope):
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"])
        entry = memory.get(key)
        if entry is not None:
            scope["route"] = entry.route
            entry.counter.inc()
            annotate(_SPAN_ATTRIBUTES)
            await send({"type": "http.response.start", "status": 200, "headers": [*entry.headers]})
            await send({"type": "http.response.body", "body": entry.body})
            return

        offer = MemoryOffer(memory.generation)
        token = memory_offer_var.set(offer)
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            memory_offer_var.reset(token)
        if status == 200 and offer.answer is not None:
            memory.put(key, offer, scope.get("route"))


def _signed(scope: Scope) -> bool:
    return any(key == _AUTHORIZATION for key, _ in scope["headers"])
