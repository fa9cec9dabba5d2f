"""One circuit breaker per upstream service, applied to every call on its channel.

A service that is down answers UNAVAILABLE at once, but one that hangs (a
stuck process, a partition) makes every call wait out its deadline; with the
breaker, after a few such failures in a row the gateway stops calling it and
answers 503 at once, with a Retry-After of the time left until it tries
again. Routes that do not need that service are unaffected: each upstream has
its own breaker.

Only outages count as failures (UNAVAILABLE, DEADLINE_EXCEEDED): a service
answering NOT_FOUND or PERMISSION_DENIED is healthy. A call cancelled by the
gateway itself (a sibling lookup failed) records nothing. Health checks
bypass the breaker, so /readyz always reports the service's real state.

A refused call raises the same grpc.aio.AioRpcError an unavailable service
would, with a google.rpc.RetryInfo detail, so every caller (routes, the
hydration task groups, the token verifier) handles it as it handles an
outage, and gateway.problems turns it into 503 + Retry-After in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from common.breaker import CircuitBreaker
from gateway.problems import STATUS_DETAILS_KEY

_OUTAGES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_HEALTH_PREFIX = "/grpc.health.v1.Health/"


def circuit_open_error(upstream: str, retry_after: float) -> grpc.aio.AioRpcError:
    """The error of a call the breaker refused: UNAVAILABLE, retry after `retry_after` s."""
    message = f"{upstream} is unavailable (circuit open); not called"
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromTimedelta(timedelta(seconds=max(retry_after, 0.0)))
    detail = any_pb2.Any()
    detail.Pack(retry)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        initial_metadata=grpc.aio.Metadata(),
        trailing_metadata=grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString())),
        details=message,
        debug_error_string=None,
    )


class BreakerInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Guards the unary calls of one channel with its upstream's breaker."""

    def __init__(self, upstream: str, breaker: CircuitBreaker) -> None:
        self.upstream = upstream
        self.breaker = breaker

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else method
        if name.startswith(_HEALTH_PREFIX):
            return await (await continuation(client_call_details, request))
        if not self.breaker.allow():
            raise circuit_open_error(self.upstream, self.breaker.retry_after())
        try:
            call = await continuation(client_call_details, request)
            response = await call
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in _OUTAGES:
                self.breaker.record_failure()
            elif code is grpc.StatusCode.CANCELLED:
                self.breaker.release()
            else:
                self.breaker.record_success()
            raise
        except BaseException:  # cancelled by us, or a client-side bug: no verdict on the service
            self.breaker.release()
            raise
        self.breaker.record_success()
        return response
