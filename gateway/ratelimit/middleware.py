"""Pure ASGI middleware that applies the rate limits before any route runs.

It sits inside the request-context middleware (so a 429 is logged, counted
and carries X-Request-ID) and CORS (so browsers can read a 429), and outside
routing and body parsing: a flood is refused before its bodies are read or
any service is asked. Only `/api/` paths are limited; probes, metrics and the
docs never are.

Answers carry the IETF draft's headers (draft-ietf-httpapi-ratelimit-headers):
`RateLimit-Policy` lists every limit the request counted against, `RateLimit`
the one closest to refusing, with `r` requests remaining and `t` seconds until
a slot frees. A refusal is a 429 problem with Retry-After.
"""

from __future__ import annotations

import hmac
import math
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.identity import peek_identity
from gateway.problems import problem
from gateway.ratelimit.policy import API_PREFIX
from gateway.ratelimit.windows import Usage, Verdict
from gateway.responses import ProblemResponse

if TYPE_CHECKING:
    from gateway.resources import Resources

RATE_LIMITED_TYPE = "urn:agora:problem:rate-limited"
BYPASS_HEADER = b"x-ratelimit-bypass"
_POLICY = b"ratelimit-policy"
_STATE = b"ratelimit"


def _describe(usage: Usage) -> str:
    rate = usage.limit.rate
    return f'"{usage.limit.name}";q={rate.limit};w={rate.window_seconds}'


def rate_limit_headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    tightest = verdict.tightest
    state = f'"{tightest.limit.name}";r={tightest.remaining};t={math.ceil(tightest.reset_seconds)}'
    policy = ", ".join(_describe(usage) for usage in verdict.usages)
    return [(_POLICY, policy.encode()), (_STATE, state.encode())]


def too_many_requests(verdict: Verdict, *, instance: str) -> ProblemResponse:
    full = [u for u in verdict.usages if u.remaining == 0] or [verdict.tightest]
    which = ", ".join(
        f"{u.limit.name} ({u.limit.rate.limit} per {u.limit.rate.window_seconds} s)" for u in full
    )
    seconds = verdict.retry_after_seconds
    response = problem(
        429,
        f"Too many requests: the {which} limit is used up; retry in {seconds} s.",
        type_=RATE_LIMITED_TYPE,
        title="Too Many Requests",
        instance=instance,
        headers={"Retry-After": str(seconds)},
    )
    response.raw_headers.extend(rate_limit_headers(verdict))
    return response


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, bypass_secret: str | None = None) -> None:
        self.app = app
        self._bypass = bypass_secret.encode() if bypass_secret else None

    def _bypassed(self, scope: Scope) -> bool:
        if self._bypass is None:
            return False
        for key, value in scope["headers"]:
            if key == BYPASS_HEADER:
                return hmac.compare_digest(value, self._bypass)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        resources: Resources = scope["app"].state.resources
        limiter = resources.limiter
        if not limiter.policy or self._bypassed(scope):
            await self.app(scope, receive, send)
            return
        claims = await peek_identity(scope, resources)
        client = scope.get("client")
        checks = limiter.policy.checks(
            scope["method"],
            scope["path"],
            user_id=claims.user_id if claims else None,
            host=client[0] if client else "unknown",
        )
        verdict = await limiter.check(checks)
        if verdict is None:
            await self.app(scope, receive, send)
            return
        if not verdict.allowed:
            await too_many_requests(verdict, instance=scope["path"])(scope, receive, send)
            return
        headers = rate_limit_headers(verdict)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
