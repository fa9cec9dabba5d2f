"""The gateway's one translation of errors into RFC 9457 problems, without any server."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from common.errors import FieldError
from gateway.problems import (
    GRPC_TO_HTTP,
    STATUS_DETAILS_KEY,
    VALIDATION_TYPE,
    http_status_for,
    problem,
    rpc_error_problem,
    status_problem,
    validation_problem,
)
from gateway.responses import ProblemResponse

EXPECTED = {
    grpc.StatusCode.OK: 500,  # an error carrying OK is nonsense, hence a bug
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 500,
    grpc.StatusCode.OUT_OF_RANGE: 500,
    grpc.StatusCode.UNIMPLEMENTED: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def _body(response: ProblemResponse) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(response.body)
    return body


def test_every_grpc_code_has_a_status() -> None:
    assert set(EXPECTED) == set(grpc.StatusCode)
    for code, status in EXPECTED.items():
        assert http_status_for(code) == status, code
    # The table holds only the deliberate mappings; everything else is a bug.
    assert all(status < 500 or status == 503 for status in GRPC_TO_HTTP.values())


@pytest.mark.parametrize("code", list(grpc.StatusCode))
def test_status_problem_is_well_formed(code: grpc.StatusCode) -> None:
    response = status_problem(code, "the service said why", instance="/api/v1/x")
    body = _body(response)
    status = EXPECTED[code]
    assert response.status_code == status
    assert response.media_type == "application/problem+json"
    assert response.headers["content-type"] == "application/problem+json"
    assert body["status"] == status
    assert body["instance"] == "/api/v1/x"
    assert body["type"]
    assert body["title"]
    if status >= 500:
        # Server-side messages never reach clients.
        assert "the service said why" not in body["detail"]
    else:
        assert body["detail"] == "the service said why"


def test_unauthenticated_challenges_bearer() -> None:
    response = status_problem(grpc.StatusCode.UNAUTHENTICATED, "bad credentials")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_unavailable_says_when_to_retry(code: grpc.StatusCode) -> None:
    response = status_problem(code, "connection refused to 10.0.0.7:50051")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "10.0.0.7" not in _body(response)["detail"]


def test_rate_limits_use_the_services_retry_delay() -> None:
    response = status_problem(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", retry_after=2.2)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    default = status_problem(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
    assert default.headers["retry-after"] == "1"


def _rpc_error(code: grpc.StatusCode, message: str, *details: Any) -> grpc.aio.AioRpcError:
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    trailing = grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, message, None)


def test_field_violations_become_errors() -> None:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="username", description="too short"),
            error_details_pb2.BadRequest.FieldViolation(field="email", description="not valid"),
        ]
    )
    error = _rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "two problems", bad_request)
    response = rpc_error_problem(error, instance="/api/v1/auth/register")
    body = _body(response)
    assert response.status_code == 422
    assert body["type"] == VALIDATION_TYPE
    assert body["errors"] == [
        {"field": "username", "message": "too short"},
        {"field": "email", "message": "not valid"},
    ]


def test_conflicts_keep_their_field() -> None:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="email", description="is taken")
        ]
    )
    body = _body(rpc_error_problem(_rpc_error(grpc.StatusCode.ALREADY_EXISTS, "x", bad_request)))
    assert body["status"] == 409
    assert body["errors"] == [{"field": "email", "message": "is taken"}]


def test_retry_info_sets_retry_after() -> None:
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=7))
    response = rpc_error_problem(_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "later", retry))
    assert response.headers["retry-after"] == "7"


def test_garbage_status_details_are_ignored() -> None:
    trailing = grpc.aio.Metadata((STATUS_DETAILS_KEY, b"\xff\x00not a proto"))
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), trailing, "bad", None
    )
    body = _body(rpc_error_problem(error))
    assert body["status"] == 422
    assert "errors" not in body


def test_request_validation_errors_name_fields_without_the_body_prefix() -> None:
    errors: list[dict[str, Any]] = [
        {"type": "missing", "loc": ("body", "username"), "msg": "Field required"},
        {
            "type": "value_error",
            "loc": ("body", "items", 0, "name"),
            "msg": "Value error, must not be blank",
            "input": "hunter2-password",
        },
        {"type": "int_parsing", "loc": ("query", "limit"), "msg": "bad int"},
        {"type": "model_type", "loc": ("body",), "msg": "Input should be an object"},
    ]
    response = validation_problem(errors, instance="/api/v1/auth/register")
    body = _body(response)
    assert response.status_code == 422
    assert body["errors"] == [
        {"field": "username", "message": "Field required"},
        {"field": "items.0.name", "message": "must not be blank"},
        {"field": "query.limit", "message": "bad int"},
        {"field": "body", "message": "Input should be an object"},
    ]
    assert b"hunter2" not in bytes(response.body)


def test_malformed_json_is_400() -> None:
    errors = [
        {
            "type": "json_invalid",
            "loc": ("body", 17),
            "msg": "JSON decode error",
            "ctx": {"error": "Expecting value"},
        }
    ]
    response = validation_problem(errors)
    body = _body(response)
    assert response.status_code == 400
    assert "Expecting value" in body["detail"]
    assert "errors" not in body


def test_problem_carries_extensions_and_headers() -> None:
    response = problem(
        503,
        "not ready",
        type_="urn:agora:problem:not-ready",
        title="Not ready",
        headers={"Cache-Control": "no-store"},
        extra={"checks": {"redis": "ok"}},
        errors=[FieldError("a", "b")],
    )
    assert _body(response) == {
        "type": "urn:agora:problem:not-ready",
        "title": "Not ready",
        "status": 503,
        "detail": "not ready",
        "errors": [{"field": "a", "message": "b"}],
        "checks": {"redis": "ok"},
    }
    assert response.headers["cache-control"] == "no-store"
