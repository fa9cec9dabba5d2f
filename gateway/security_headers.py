"""Security headers on every answer, whoever produced it (routes, errors, limits, 500s).

The API answers JSON only, so its Content-Security-Policy allows nothing at
all: a JSON body that a browser were tricked into rendering could load no
script, style or frame, and no page may frame it. A route that serves HTML
(the interactive docs) sets its own, narrower policy, which is kept.

HSTS only means something on an answer that came over HTTPS (RFC 6797 8.1:
browsers ignore it over plain HTTP), so it is sent only when the request's
scheme, as gateway.client_address resolved it behind trusted proxies, is https.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_CSP = b"content-security-policy"
_HSTS = b"strict-transport-security"
# Always these values, whatever a route set.
_FIXED: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_FIXED_NAMES = frozenset(name for name, _ in _FIXED)


class SecurityHeadersMiddleware:
    """Adds CSP (unless the route set one), nosniff, frame and referrer policies, and HSTS."""

    def __init__(self, app: ASGIApp, *, hsts_max_age_seconds: int) -> None:
        self.app = app
        self.hsts = (
            f"max-age={hsts_max_age_seconds}; includeSubDomains".encode()
            if hsts_max_age_seconds > 0
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts if scope.get("scheme") == "https" else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() not in _FIXED_NAMES
                ]
                if not any(k.lower() == _CSP for k, _ in headers):
                    headers.append((_CSP, API_CSP))
                headers.extend(_FIXED)
                if hsts is not None:
                    headers.append((_HSTS, hsts))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
