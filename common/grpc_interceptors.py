"""The server interceptor every service runs: context, logging, metrics, errors.

For each RPC it reads the request id and verified caller from metadata into
common.context, refuses text with NUL characters anywhere in the request
(PostgreSQL cannot store them, so no service has to remember), times and
counts the call, logs one line, and turns a DomainError into its status code
(with field violations as google.rpc.BadRequest details). A dependency that
is down (database, Redis) is UNAVAILABLE, which callers answer with 503 and
may retry. Any other exception is a bug: logged with its traceback and
answered INTERNAL without leaking the message.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa_exc

from common.context import REQUEST_ID_KEY, USER_ID_KEY, caller_id_var, request_id_var
from common.errors import DomainError, InvalidArgument, Unavailable
from common.metrics import (
    GRPC_SERVER_HANDLED,
    GRPC_SERVER_IN_FLIGHT,
    GRPC_SERVER_SECONDS,
    outcome_of,
    split_method,
)
from common.tracing import record_rpc_code

log = logging.getLogger("agora.grpc")

# Health checks and reflection are polled constantly; they are not worth a log line.
_QUIET_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


def status_for(error: DomainError) -> status_pb2.Status:
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    if error.field_errors:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f.field, description=f.message)
                for f in error.field_errors
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status.details.append(detail)
    if error.retry_after_seconds is not None:
        retry_info = error_details_pb2.RetryInfo()
        retry_info.retry_delay.FromTimedelta(timedelta(seconds=error.retry_after_seconds))
        detail = any_pb2.Any()
        detail.Pack(retry_info)
        status.details.append(detail)
    return status


# Failures that mean "a dependency is down or saturated", not "our code is wrong".
_OUTAGES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # the connection pool is exhausted
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
)


def field_with_nul(message: Message, prefix: str = "") -> str | None:
    """The path of the first string field in message holding a NUL character, if any."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            values = value if field.is_repeated else (value,)
            if any("\x00" in text for text in values):
                return path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                items = [m for pair in value.items() for m in pair]
                if any(isinstance(i, str) and "\x00" in i for i in items):
                    return path
                nested = [i for i in items if isinstance(i, Message)]
            else:
                nested = list(value) if field.is_repeated else [value]
            for item in nested:
                if (found := field_with_nul(item, f"{path}.")) is not None:
                    return found
    return None


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item_key, value in metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode()
    return None


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        full_method = handler_call_details.method
        if full_method.startswith(_QUIET_PREFIXES):
            return handler
        inner = handler.unary_unary
        service, method = split_method(full_method)
        in_flight = GRPC_SERVER_IN_FLIGHT.labels(service, method)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            metadata = context.invocation_metadata()
            request_id_var.set(_metadata_value(metadata, REQUEST_ID_KEY) or uuid.uuid4().hex)
            caller_id_var.set(_metadata_value(metadata, USER_ID_KEY) or None)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            in_flight.inc()
            try:
                if isinstance(request, Message) and (bad := field_with_nul(request)) is not None:
                    raise InvalidArgument.for_field(bad, "must not contain NUL characters")
                return await inner(request, context)  # type: ignore[arg-type]
            except _OUTAGES as error:
                outage = Unavailable("a dependency of this service is unavailable; retry shortly")
                code = outage.code
                log.warning(
                    "dependency unavailable in %s",
                    full_method,
                    extra={"error": type(error).__name__},
                )
                await context.abort_with_status(rpc_status.to_status(status_for(outage)))  # type: ignore[attr-defined]
            except DomainError as error:
                code = error.code
                await context.abort_with_status(rpc_status.to_status(status_for(error)))  # type: ignore[attr-defined]
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error in %s", full_method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                elapsed = time.perf_counter() - started
                in_flight.dec()
                GRPC_SERVER_SECONDS.labels(service, method).observe(elapsed)
                GRPC_SERVER_HANDLED.labels(service, method, code.name, outcome_of(code.name)).inc()
                record_rpc_code(code)
                log.info(
                    "rpc %s",
                    method,
                    extra={
                        "grpc_method": full_method,
                        "grpc_code": code.name,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
