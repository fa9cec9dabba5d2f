"""The FastAPI application factory.

`create_app(settings)` builds a fresh app: no module-level app or clients, so
tests and tools can build as many as they like. Connections are opened in the
lifespan (one gRPC channel per upstream, Redis, the token verifier) and stored
on `app.state.resources`; see gateway.resources.

The middleware, outermost first (each is pure ASGI):

1. client address: the real client IP and scheme, from trusted proxies only;
2. security headers, on every answer including 500s and 429s;
3. request context: request id, access log, metrics, unhandled errors as 500;
4. CORS (when origins are configured), so browsers can read errors and 429s;
5. gzip above a size threshold;
6. rate limits, before routing and body parsing;
7. the in-process L1 of the response cache: anonymous cached reads answered
   from memory, limited like any request but before routing (gateway.cache.front);
8. the request body limit (413).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from common.process_metrics import package_version
from common.telemetry import instrument_app, tracing_enabled
from gateway.cache.front import MemoryCacheMiddleware
from gateway.client_address import ClientAddressMiddleware
from gateway.docs import install_docs
from gateway.middleware import BodyLimitMiddleware, RequestContextMiddleware
from gateway.openapi import install_openapi
from gateway.problems import install_problem_handlers
from gateway.ratelimit.middleware import RateLimitMiddleware
from gateway.ratelimit.policy import LimitPolicy
from gateway.resources import open_resources
from gateway.responses import JSONBytesResponse
from gateway.routers import ROUTERS
from gateway.security_headers import SecurityHeadersMiddleware
from gateway.settings import GatewaySettings

DESCRIPTION = (
    "The public HTTP API of Agora. Errors are RFC 9457 problem details "
    "(`application/problem+json`); every response carries `X-Request-ID`."
)
TAGS = [
    {"name": "auth", "description": "Accounts, sign-in and sessions."},
    {"name": "users", "description": "Profiles."},
    {
        "name": "communities",
        "description": "Communities, membership, moderators and bans.",
    },
    {
        "name": "posts",
        "description": "Posts, the listings and the home feed, editing and moderation.",
    },
    {"name": "comments", "description": "Comment trees, replies, editing and moderation."},
    {"name": "votes", "description": "Up and down votes on posts and comments."},
    {"name": "summaries", "description": "AI summaries of discussions, made in the background."},
    {"name": "search", "description": "Full-text search."},
    {"name": "operations", "description": "Health, readiness, keys and metrics."},
]
# Headers a browser client may send and read across origins.
_CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"]
_CORS_EXPOSED_HEADERS = [
    "Cache-Status",
    "Location",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "WWW-Authenticate",
    "X-Request-ID",
]


OPENAPI_URL = "/openapi.json"


# Level 6 compresses JSON nearly as well as 9 for a fraction of the CPU.
GZIP_LEVEL = 6


def _middleware(settings: GatewaySettings) -> list[Middleware]:
    """Outermost first; see the module doc for why in this order."""
    stack = [
        Middleware(ClientAddressMiddleware, trusted_proxies=settings.trusted_proxies),
        Middleware(SecurityHeadersMiddleware, hsts_max_age_seconds=settings.hsts_max_age_seconds),
        Middleware(RequestContextMiddleware),
    ]
    if settings.cors_allow_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_allow_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=_CORS_REQUEST_HEADERS,
                expose_headers=_CORS_EXPOSED_HEADERS,
                # Bearer tokens, not cookies: no credentials mode needed.
                allow_credentials=False,
                max_age=600,
            )
        )
    if settings.gzip_minimum_bytes > 0:
        stack.append(
            Middleware(
                GZipMiddleware, minimum_size=settings.gzip_minimum_bytes, compresslevel=GZIP_LEVEL
            )
        )
    bypass = settings.rate_limit_bypass_secret
    stack.append(
        Middleware(RateLimitMiddleware, bypass_secret=bypass.get_secret_value() if bypass else None)
    )
    if settings.cache_enabled and settings.cache_memory_max_age_seconds > 0:
        # A memory hit is a GET that reads no body: the body limit has nothing to do for it.
        stack.append(Middleware(MemoryCacheMiddleware))
    stack.append(Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes))
    return stack


def _native_telemetry() -> TelemetryConfig | None:
    """FastAPI's own telemetry settings: its defaults when this process traces.

    Without them FastAPI looks for OpenTelemetry providers on every request
    (a few environment lookups, about 4 µs) and finds none when tracing is
    off, so then it is told once that there are none.
    """
    if tracing_enabled():
        return None
    return {"tracing": False, "metrics": False, "logs": False}


def _operation_id(route: APIRoute) -> str:
    """`auth_login`, `users_me`: stable, readable names for generated SDKs."""
    return f"{route.tags[0]}_{route.name}" if route.tags else route.name


def create_app(settings: GatewaySettings) -> FastAPI:
    """A gateway app for these settings; nothing is connected until its lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.resources = resources
            yield

    app = FastAPI(
        title="Agora API",
        version=package_version(),
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        # Served by gateway.docs, with a Content-Security-Policy of its own.
        docs_url=None,
        swagger_ui_oauth2_redirect_url=None,
        redoc_url=None,
        openapi_tags=TAGS,
        default_response_class=JSONBytesResponse,
        generate_unique_id_function=_operation_id,
        middleware=_middleware(settings),
        lifespan=lifespan,
        telemetry=_native_telemetry(),
    )
    install_problem_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_docs(app, openapi_url=OPENAPI_URL)
    install_openapi(app, LimitPolicy.from_settings(settings))
    # Outside the whole middleware stack above (a no-op when tracing is off).
    instrument_app(app)
    return app
