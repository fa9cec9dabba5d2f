"""Tracing set-up rules and Agora's own spans, with an in-memory exporter.

The whole path across real processes is tested in
tests/integration/test_tracing.py; these pin the rules that decide it: when
tracing is on, what a process is called, how context rides on messages and
jobs, which RPC outcomes are errors, what SQL spans hold (tests/unit/test_logs.py:
log lines carry the ids).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import grpc
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from common import telemetry, tracing
from tools.stack import ROOT, free_port

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, every finished span in the exporter.

    The global provider can be set once per process; it stays (harmlessly:
    nothing here makes spans unless tracing_enabled() says so).
    """
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(_PROVIDER)
    monkeypatch.setattr(telemetry._installed, "provider", _PROVIDER)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "otlp"}, True),
    ],
)
def test_tracing_is_on_only_with_an_endpoint_and_not_disabled(
    env: dict[str, str], on: bool
) -> None:
    assert telemetry.exporting_configured(env) is on


def test_without_an_endpoint_nothing_is_installed() -> None:
    assert telemetry.configure_tracing("auth", environment="test", env={}) is False
    assert not telemetry.tracing_enabled()
    assert telemetry.server_interceptors() == []
    assert telemetry.client_interceptors() == []
    assert tracing.carrier() == {}


def test_a_process_is_named_after_its_service_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    attributes = telemetry.service_resource("posts", environment="production").attributes
    assert attributes["service.name"] == "agora-posts"
    assert attributes["service.namespace"] == "agora"
    assert attributes["deployment.environment"] == "production"
    assert attributes["service.version"]

    monkeypatch.setenv("OTEL_SERVICE_NAME", "posts-canary")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")
    attributes = telemetry.service_resource("posts", environment="production").attributes
    assert attributes["service.name"] == "posts-canary"
    assert attributes["deployment.environment"] == "staging"


def test_an_event_carries_its_trace_from_staging_to_the_consumer(
    spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request"):
        stored = tracing.carrier()  # what the outbox row keeps
    assert set(stored) >= {"traceparent"}

    with tracing.publishing("agora.posts.post.created.v1", "event-1", stored) as headers:
        pass
    assert headers["traceparent"] != stored["traceparent"]  # the producer span's own context

    with tracing.processing(
        "agora.posts.post.created.v1", "event-1", headers, consumer="summarizer-posts", delivery=2
    ):
        job_context = tracing.carrier()  # what a job queued by the handler keeps
    with tracing.continue_trace(job_context, "summary job"):
        pass

    found = _by_name(spans)
    request = found["request"]
    publish = found["publish agora.posts.post.created.v1"]
    process = found["process agora.posts.post.created.v1"]
    job = found["summary job"]
    assert {s.context.trace_id for s in found.values()} == {request.context.trace_id}
    assert publish.parent is not None
    assert publish.parent.span_id == request.context.span_id
    assert process.parent is not None
    assert process.parent.span_id == publish.context.span_id
    assert job.parent is not None
    assert job.parent.span_id == process.context.span_id
    assert (publish.kind, process.kind, job.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.INTERNAL,
    )
    assert publish.attributes is not None
    assert process.attributes is not None
    assert publish.attributes["messaging.system"] == "nats"
    assert publish.attributes["messaging.message.id"] == "event-1"
    assert process.attributes["messaging.consumer.group.name"] == "summarizer-posts"
    assert process.attributes["messaging.nats.delivery_count"] == 2


def test_without_a_stored_context_a_message_starts_a_trace(spans: InMemorySpanExporter) -> None:
    with tracing.processing("agora.x.v1", "e", None, consumer="c", delivery=1):
        pass
    (span,) = spans.get_finished_spans()
    assert span.parent is None


def test_polling_is_untraced_but_the_work_it_finds_is_traced(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.untraced():
        assert not is_instrumentation_enabled()
        with tracing.continue_trace({}, "job"):
            assert is_instrumentation_enabled()
        assert not is_instrumentation_enabled()
    assert is_instrumentation_enabled()
    assert [span.name for span in spans.get_finished_spans()] == ["job"]


def test_a_failure_leaving_or_handled_in_a_span_marks_it(spans: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError), tracing.continue_trace({}, "raised"):
        raise RuntimeError("boom")
    with tracing.continue_trace({}, "handled"):
        tracing.record_error(ValueError("bad event"))
    found = _by_name(spans)
    for name in ("raised", "handled"):
        assert found[name].status.status_code is StatusCode.ERROR
        assert [event.name for event in found[name].events] == ["exception"]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.OK, False),
        (grpc.StatusCode.NOT_FOUND, False),
        (grpc.StatusCode.PERMISSION_DENIED, False),
        (grpc.StatusCode.INTERNAL, True),
        (grpc.StatusCode.UNAVAILABLE, True),
    ],
)
def test_only_server_faults_make_an_rpc_span_an_error(
    spans: InMemorySpanExporter, code: grpc.StatusCode, error: bool
) -> None:
    with trace.get_tracer("test").start_as_current_span("rpc"):
        tracing.record_rpc_code(code)
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]
    assert (span.status.status_code is StatusCode.ERROR) is error


def test_sql_statements_become_spans_without_their_parameters(
    spans: InMemorySpanExporter,
) -> None:
    engine = sa.create_engine("sqlite://")
    telemetry.instrument_engine(engine)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT :secret"), {"secret": "hunter2-parameter"})
    finally:
        engine.dispose()
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.CLIENT
    assert "hunter2-parameter" not in json.dumps(dict(span.attributes or {}))
    assert "SELECT" in json.dumps(dict(span.attributes or {}))


def test_a_collector_that_is_down_holds_the_exit_up_only_briefly() -> None:
    """In a process of its own: configure_tracing installs a process-wide provider."""
    program = textwrap.dedent(
        """
        import time
        from opentelemetry import trace
        from common.telemetry import configure_tracing, shutdown_tracing, tracing_enabled
        assert configure_tracing("probe", environment="test") and tracing_enabled()
        with trace.get_tracer("probe").start_as_current_span("work"):
            pass
        started = time.monotonic()
        shutdown_tracing(timeout_seconds=1.0)
        print(time.monotonic() - started)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # Nothing listens there: every export attempt is refused and retried.
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 2.5, "the exporter's retries held the exit up"
