"""gRPC channels to other Agora services, with deadlines, retries and context.

One channel per upstream for the life of the process. Every call gets a
deadline (the default unless the caller sets one), carries the request id and
verified caller in metadata (and the trace context, when tracing is on), and
is counted. Only idempotent reads (Get*,
BatchGet*, List*, Search*) are retried, by the channel itself, and only on
UNAVAILABLE, with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from common.context import REQUEST_ID_KEY, USER_ID_KEY, caller_id_var, request_id_var
from common.errors import DomainError, NotFound, Unavailable
from common.metrics import (
    GRPC_CLIENT_HANDLED,
    GRPC_CLIENT_IN_FLIGHT,
    GRPC_CLIENT_SECONDS,
    outcome_of,
    split_method,
)
from common.telemetry import client_interceptors

DEFAULT_DEADLINE_SECONDS = 5.0

# An upstream answering these about an id we passed means: there is no such thing.
_ABSENT = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT})
# These mean the upstream is down, overloaded or too slow: try again later.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
_READ_PREFIXES = ("Get", "BatchGet", "List", "Search")
log = logging.getLogger("agora.grpc.client")


def retry_service_config(services: list[ServiceDescriptor]) -> str:
    """A service config that retries the read methods of services on UNAVAILABLE."""
    reads = [
        {"service": svc.full_name, "method": method.name}
        for svc in services
        for method in svc.methods
        if method.name.startswith(_READ_PREFIXES)
    ]
    config: dict[str, Any] = {"methodConfig": []}
    if reads:
        config["methodConfig"].append(
            {
                "name": reads,
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        )
    return json.dumps(config)


class _ContextInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, default_deadline: float) -> None:
        self.default_deadline = default_deadline

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        if (request_id := request_id_var.get()) and REQUEST_ID_KEY not in metadata:
            metadata.add(REQUEST_ID_KEY, request_id)
        if (user_id := caller_id_var.get()) and USER_ID_KEY not in metadata:
            metadata.add(USER_ID_KEY, user_id)
        timeout = client_call_details.timeout
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=self.default_deadline if timeout is None else timeout,
            metadata=metadata,
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        method = client_call_details.method
        service, name = split_method(method.decode() if isinstance(method, bytes) else method)
        started = time.perf_counter()
        code = "UNKNOWN"
        in_flight = GRPC_CLIENT_IN_FLIGHT.labels(service)
        in_flight.inc()
        try:
            call = await continuation(details, request)
            response = await call
            code = "OK"
            return response
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            raise
        except asyncio.CancelledError:
            # This process gave up on the call (a sibling lookup failed, the client left).
            code = grpc.StatusCode.CANCELLED.name
            raise
        finally:
            in_flight.dec()
            GRPC_CLIENT_SECONDS.labels(service, name).observe(time.perf_counter() - started)
            GRPC_CLIENT_HANDLED.labels(service, name, code, outcome_of(code)).inc()


def open_channel(
    target: str,
    services: list[ServiceDescriptor],
    *,
    default_deadline: float = DEFAULT_DEADLINE_SECONDS,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """An insecure channel (mTLS belongs to the mesh) to target, for the given services.

    `interceptors` run inside the one that sets deadlines and metadata and
    counts calls (so a call they refuse, e.g. a circuit breaker's, is counted too).
    """
    options = [
        ("grpc.service_config", retry_service_config(services)),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Fail fast when the upstream is down rather than waiting out a long reconnect backoff.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    return grpc.aio.insecure_channel(
        target,
        options=options,
        # Tracing outermost, so a call a breaker refuses still has its span.
        interceptors=[
            *client_interceptors(),
            _ContextInterceptor(default_deadline),  # type: ignore[list-item]
            *interceptors,
        ],
    )


def upstream_error(
    error: grpc.aio.AioRpcError, upstream: str, *, not_found: str
) -> DomainError | grpc.aio.AioRpcError:
    """What a service raises when a call to another service failed.

    Absent → NotFound(not_found); down or slow → Unavailable (503 at the
    gateway, never an INTERNAL for somebody else's outage); anything else is
    a bug upstream and is returned as it is, to surface as one. Use as
    `raise upstream_error(error, "posts", not_found="post not found") from error`.
    """
    code = error.code()
    if code in _ABSENT:
        return NotFound(not_found)
    log.warning("%s call failed", upstream, extra={"grpc_code": code.name, "upstream": upstream})
    if code in _TRANSIENT:
        return Unavailable(f"{upstream} is unavailable; try again shortly")
    return error
