"""Operational endpoints: liveness, readiness, the JWKS and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

import grpc
from fastapi import APIRouter, Response
from prometheus_client import REGISTRY, generate_latest
from redis.exceptions import RedisError

from common.errors import Unavailable
from gateway.clients import UPSTREAMS, NotServingError, Upstream, check_upstream
from gateway.deps import ResourcesDep
from gateway.openapi import problem_responses
from gateway.problems import problem
from gateway.resources import Resources
from gateway.responses import JSONBytesResponse, PrometheusResponse
from gateway.schemas import Health, JsonWebKeySet, Readiness

log = logging.getLogger("agora.gateway")

router = APIRouter(tags=["operations"])

NOT_READY_TYPE = "urn:agora:problem:not-ready"
JWKS_MAX_AGE_SECONDS = 300
_NO_STORE = {"Cache-Control": "no-store"}
_OK = "ok"


@router.get("/healthz", response_model=Health, response_class=JSONBytesResponse, summary="Liveness")
async def healthz() -> Response:
    """Liveness: the process serves HTTP. Checks nothing else, so a dependency outage
    never makes the orchestrator restart a healthy gateway."""
    return JSONBytesResponse({"status": "ok"}, headers=_NO_STORE)


async def _check_redis(resources: Resources) -> str:
    try:
        async with asyncio.timeout(resources.settings.readiness_timeout_seconds):
            await resources.redis.ping()
    except (RedisError, OSError, TimeoutError) as error:
        return f"unavailable: {type(error).__name__}"
    return _OK


async def _check_upstream(resources: Resources, upstream: Upstream) -> str:
    timeout = resources.settings.readiness_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            await check_upstream(resources.channels[upstream.name], upstream, deadline=timeout)
    except grpc.aio.AioRpcError as error:
        return f"unavailable: {error.code().name}"
    except NotServingError as error:
        return f"not serving: {error}"
    except TimeoutError:
        return "unavailable: timeout"
    return _OK


@router.get(
    "/readyz",
    response_model=Readiness,
    response_class=JSONBytesResponse,
    responses=problem_responses(503),
    summary="Readiness",
)
async def readyz(resources: ResourcesDep) -> Response:
    """Readiness: Redis answers PING and every upstream's gRPC health says SERVING.

    All checks run at once, each within the readiness timeout; a 503 names
    the failing ones in `checks`.
    """
    names = ["redis", *(upstream.name for upstream in UPSTREAMS)]
    results = await asyncio.gather(
        _check_redis(resources),
        *(_check_upstream(resources, upstream) for upstream in UPSTREAMS),
    )
    checks = dict(zip(names, results, strict=True))
    failing = sorted(name for name, result in checks.items() if result != _OK)
    if failing:
        return problem(
            503,
            f"Not ready: {', '.join(failing)}.",
            type_=NOT_READY_TYPE,
            title="Not ready",
            headers=_NO_STORE,
            extra={"checks": checks},
        )
    return JSONBytesResponse({"status": "ok", "checks": checks}, headers=_NO_STORE)


@router.get(
    "/.well-known/jwks.json",
    response_model=JsonWebKeySet,
    response_class=JSONBytesResponse,
    responses=problem_responses(503),
    summary="Token verification keys (JWKS)",
)
async def jwks(resources: ResourcesDep) -> Response:
    """The public keys that verify access tokens, as the auth service publishes them.

    Served from the verifier's cache, refreshed from auth at most once per
    refresh interval; while auth is down the cached set is still served.
    """
    verifier = resources.verifier
    try:
        await verifier.refresh()
    except Unavailable as error:
        if not verifier.jwks_json:
            raise
        log.warning("serving a cached JWKS", extra={"error": type(error).__name__})
    return JSONBytesResponse(
        verifier.jwks_json.encode(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"},
    )


@router.get(
    "/metrics",
    response_class=PrometheusResponse,
    summary="Prometheus metrics",
)
async def metrics() -> Response:
    """Prometheus metrics of this process, in the text exposition format."""
    return PrometheusResponse(generate_latest(REGISTRY), headers=_NO_STORE)
