"""Every error the gateway sends, as RFC 9457 problem details, from one place.

FastAPI answers errors with `{"detail": ...}`; the public contract wants
`application/problem+json`. The handlers installed here cover HTTP errors
raised by routing and dependencies, request validation (422, or 400 for
malformed JSON), domain errors raised in the gateway and, above all, gRPC
status codes from upstream services, which are translated by the single table
GRPC_TO_HTTP. Unhandled exceptions are turned into a 500 by the request
middleware, which uses `internal_error` from here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from common.errors import DomainError, FieldError
from gateway.responses import ProblemResponse
from gateway.scope import route_template

log = logging.getLogger("agora.gateway.problems")

BLANK = "about:blank"
# Requests that fail validation (422 with `errors`), at the edge or upstream.
VALIDATION_TYPE = "urn:agora:problem:validation-error"
BEARER_CHALLENGE = 'Bearer realm="agora"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="agora", error="invalid_token"'  # noqa: S105 - a header
# Status details that google.rpc clients attach as binary trailing metadata.
STATUS_DETAILS_KEY = "grpc-status-details-bin"

# The one translation of upstream gRPC codes to HTTP statuses. Codes missing
# here (INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS, ...) are bugs: 500.
GRPC_TO_HTTP: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    # A rule of the resource's current state (e.g. already a member) forbids it.
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    # The upstream is down, overloaded, restarting or too slow: transient,
    # answered at once with Retry-After rather than left to hang.
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    # Upstreams cancel in-flight calls when they shut down.
    grpc.StatusCode.CANCELLED: 503,
}
# INVALID_ARGUMENT about these fields alone is a malformed request (400), not
# an invalid value (422): a cursor is a token the API handed out, so one that
# comes back altered, forged or from another listing was tampered with
# (API.md: "a tampered cursor is a 400"). Any other invalid field stays 422.
MALFORMED_REQUEST_FIELDS = frozenset({"cursor"})
RETRY_AFTER_SECONDS = 1
_UNAVAILABLE_DETAIL = "A service this request needs is temporarily unavailable; retry shortly."
_INTERNAL_DETAIL = "An unexpected error occurred. It has been logged; please report the request id."


def http_status_for(code: grpc.StatusCode, field_errors: Sequence[FieldError] = ()) -> int:
    """The HTTP status for an upstream gRPC status code (500 for codes that mean a bug).

    The one refinement of the table: INVALID_ARGUMENT whose field violations
    all name MALFORMED_REQUEST_FIELDS is a 400.
    """
    status = GRPC_TO_HTTP.get(code, 500)
    if (
        status == 422
        and field_errors
        and all(error.field in MALFORMED_REQUEST_FIELDS for error in field_errors)
    ):
        return 400
    return status


def problem(
    status: int,
    detail: str,
    *,
    type_: str = BLANK,
    title: str | None = None,
    instance: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ProblemResponse:
    """A problem+json response; `title` defaults to the status's reason phrase."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    if extra:
        body.update(extra)
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def internal_error(instance: str | None = None) -> ProblemResponse:
    """The answer to a bug: nothing about the internals, the request id is in the headers."""
    return problem(500, _INTERNAL_DETAIL, instance=instance)


def _instance(request: Request) -> str:
    return request.url.path


# Request validation ---------------------------------------------------------------------------


def _field_path(loc: Iterable[Any]) -> str:
    """('body', 'user', 0, 'name') -> 'user.0.name'; query and path keep their prefix."""
    parts = [str(part) for part in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _field_message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    # Our own validators raise ValueError, which pydantic prefixes.
    return message.removeprefix("Value error, ")


def validation_problem(
    errors: Sequence[Mapping[str, Any]], *, instance: str | None = None
) -> ProblemResponse:
    """422 with one entry per invalid field, or 400 when the body was not JSON at all.

    The offending input is never echoed: it may be a password.
    """
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            loc = tuple(error.get("loc", ()))
            where = f" at position {loc[1]}" if len(loc) > 1 else ""
            return problem(400, f"The body is not valid JSON: {reason}{where}.", instance=instance)
    field_errors = [
        FieldError(_field_path(error.get("loc", ())), _field_message(error)) for error in errors
    ]
    count = len(field_errors)
    return problem(
        422,
        f"{count} invalid field{'s' if count != 1 else ''}.",
        type_=VALIDATION_TYPE,
        title="Invalid request",
        instance=instance,
        errors=field_errors,
    )


# gRPC statuses --------------------------------------------------------------------------------


def _status_details(trailing_metadata: Any) -> status_pb2.Status | None:
    for key, value in trailing_metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def _unpack_details(
    details: status_pb2.Status | None,
) -> tuple[list[FieldError], float | None]:
    """Field violations (google.rpc.BadRequest) and a retry delay (google.rpc.RetryInfo)."""
    field_errors: list[FieldError] = []
    retry_after: float | None = None
    if details is None:
        return field_errors, retry_after
    for packed in details.details:
        if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            packed.Unpack(bad_request)
            field_errors.extend(
                FieldError(v.field, v.description) for v in bad_request.field_violations
            )
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    return field_errors, retry_after


def status_problem(
    code: grpc.StatusCode,
    message: str,
    *,
    field_errors: Sequence[FieldError] = (),
    retry_after: float | None = None,
    instance: str | None = None,
) -> ProblemResponse:
    """The problem for a gRPC status code, through GRPC_TO_HTTP.

    Client errors pass the service's message on (services write them for
    callers); server errors never do.
    """
    status = http_status_for(code, field_errors)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    if status in (429, 503):
        seconds = RETRY_AFTER_SECONDS if retry_after is None else retry_after
        headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    if status == 503:
        return problem(503, _UNAVAILABLE_DETAIL, instance=instance, headers=headers)
    if status >= 500:
        return internal_error(instance)
    if status == 422 and field_errors:
        return problem(
            422,
            message or "invalid request",
            type_=VALIDATION_TYPE,
            title="Invalid request",
            instance=instance,
            errors=field_errors,
        )
    # Other client errors keep their field details too (409: which field is taken).
    return problem(
        status,
        message or HTTPStatus(status).phrase,
        instance=instance,
        errors=field_errors,
        headers=headers,
    )


def rpc_error_problem(
    error: grpc.aio.AioRpcError, *, instance: str | None = None
) -> ProblemResponse:
    """Translate a failed upstream call, including its google.rpc details."""
    field_errors, retry_after = _unpack_details(_status_details(error.trailing_metadata()))
    return status_problem(
        error.code(),
        error.details() or "",
        field_errors=field_errors,
        retry_after=retry_after,
        instance=instance,
    )


# Exception handlers ---------------------------------------------------------------------------


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path.

    Starlette's 405 lists only the methods of the first route whose path
    matched, but one path often has several routes (GET and PATCH of a
    community are two), and `Allow` must name all of them (RFC 9110). Each
    method is tried against the routes, through their public `matches`.
    """
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


async def _http_exception(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(exc.status_code, detail, instance=_instance(request), headers=headers or None)


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_problem(exc.errors(), instance=_instance(request))


async def _rpc_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    code = exc.code()
    status = http_status_for(code)
    if status == 503:
        log.warning(
            "upstream unavailable",
            extra={
                "route": route_template(request.scope),
                "grpc_code": code.name,
                "grpc_message": exc.details(),
            },
        )
    elif status >= 500:
        log.error(
            "upstream call failed with a status that means a bug",
            extra={
                "route": route_template(request.scope),
                "grpc_code": code.name,
                "grpc_message": exc.details(),
            },
        )
    return rpc_error_problem(exc, instance=_instance(request))


async def _domain_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, DomainError)
    if exc.code not in GRPC_TO_HTTP:
        log.error("domain error with a status that means a bug", extra={"error": exc.message})
    return status_problem(
        exc.code, exc.message, field_errors=exc.field_errors, instance=_instance(request)
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every handled error answer with problem+json."""
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(grpc.aio.AioRpcError, _rpc_error)
    app.add_exception_handler(DomainError, _domain_error)
