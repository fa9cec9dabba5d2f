"""JSON log lines carry the request context and never a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from common.context import caller_id_var, request_id_var
from common.logs import JsonFormatter


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test-service"))
    logger = logging.getLogger("agora.test.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_line_is_json_with_context(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    request_token = request_id_var.set("req-123")
    caller_token = caller_id_var.set("user-9")
    try:
        logger.info("hello %s", "world", extra={"duration_ms": 1.5})
    finally:
        request_id_var.reset(request_token)
        caller_id_var.reset(caller_token)
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "hello world"
    assert entry["service"] == "test-service"
    assert entry["level"] == "info"
    assert entry["request_id"] == "req-123"
    assert entry["user_id"] == "user-9"
    assert entry["duration_ms"] == 1.5


@pytest.mark.parametrize(
    "key", ["password", "refresh_token", "access_token", "api_key", "authorization", "secret"]
)
def test_secret_looking_fields_are_masked(
    captured: tuple[logging.Logger, io.StringIO], key: str
) -> None:
    logger, stream = captured
    logger.info("careful", extra={key: "hunter2-very-secret"})
    line = stream.getvalue()
    assert "hunter2-very-secret" not in line
    assert json.loads(line)[key] == "[redacted]"


def test_counts_named_like_secrets_stay_readable(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("summary made", extra={"input_tokens": 812, "output_tokens": 95, "token": "abc"})
    entry = json.loads(stream.getvalue())
    assert (entry["input_tokens"], entry["output_tokens"]) == (812, 95)
    assert entry["token"] == "[redacted]"


def test_a_line_inside_a_span_carries_its_trace_and_span_ids(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    with TracerProvider().get_tracer("test").start_as_current_span("work") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside
    assert "span_id" not in outside
