"""Agora's own spans: the hops no library instrumentation sees.

common.telemetry traces what happens inside one process (requests, RPCs, SQL,
Redis, HTTP). A trace crosses NATS and the summarizer's job queue only because
Agora carries the W3C trace context (`traceparent`, `tracestate`) itself:

- an event staged in the outbox keeps the context of the transaction that made
  it (`carrier()`, stored in the outbox row's `headers`);
- the relay publishes it in a PRODUCER span that continues that context, and
  sends the span's own context in the NATS headers (`publishing`);
- a consumer runs its handler in a CONSUMER span that continues the message's
  context (`processing`);
- a summary job keeps the context of its latest trigger, and the worker makes
  the summary in a span that continues it (`continue_trace`).

Loops that poll (the relay, the job queue) run `untraced()`, so their idle SQL
does not start a new trace every second. When tracing is off, all of this
does nothing: no context is stored, no span made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from common.metrics import SERVER_FAULT_CODES
from common.telemetry import tracing_enabled

_tracer = trace.get_tracer("agora")

Attributes = Mapping[str, AttributeValue]


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers; empty when tracing is off or no span is current."""
    headers: dict[str, str] = {}
    if tracing_enabled():
        propagate.inject(headers)
    return headers


@contextmanager
def continue_trace(
    headers: Mapping[str, str] | None,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes | None = None,
) -> Iterator[None]:
    """Run the block in a span whose parent is the context in headers (a new trace without one).

    The block's context is built from headers alone, so an enclosing
    `untraced()` (the polling loop that found the work) does not reach into it.
    An exception leaving the block is recorded on the span, which ends as an error.
    """
    if not tracing_enabled():
        yield
        return
    token = otel_context.attach(propagate.extract(dict(headers or {})))
    try:
        with _tracer.start_as_current_span(name, kind=kind, attributes=attributes):
            yield
    finally:
        otel_context.detach(token)


@contextmanager
def untraced() -> Iterator[None]:
    """No instrumentation spans inside (SQL, Redis, RPCs): for loops that poll."""
    if not tracing_enabled():
        yield
        return
    with suppress_instrumentation():
        yield


@contextmanager
def publishing(
    subject: str, message_id: str, stored: Mapping[str, str]
) -> Iterator[dict[str, str]]:
    """The PRODUCER span of publishing one outbox event; yields the headers to send.

    `stored` is what the event was staged with; the headers yielded carry this
    span's context instead, so the consumer's span is its child.
    """
    attributes = _messaging("publish", subject, message_id)
    name = f"publish {subject}"
    with continue_trace(stored, name, kind=SpanKind.PRODUCER, attributes=attributes):
        yield {**stored, **carrier()}


@contextmanager
def processing(
    subject: str,
    message_id: str,
    headers: Mapping[str, str] | None,
    *,
    consumer: str,
    delivery: int,
) -> Iterator[None]:
    """The CONSUMER span of one delivery of an event, continuing the trace it was published in."""
    attributes = {
        **_messaging("process", subject, message_id),
        "messaging.consumer.group.name": consumer,
        "messaging.nats.delivery_count": delivery,
    }
    name = f"process {subject}"
    with continue_trace(headers, name, kind=SpanKind.CONSUMER, attributes=attributes):
        yield


def _messaging(operation: str, subject: str, message_id: str) -> dict[str, AttributeValue]:
    return {
        "messaging.system": "nats",
        "messaging.operation.name": operation,
        "messaging.operation.type": "send" if operation == "publish" else "process",
        "messaging.destination.name": subject,
        "messaging.message.id": message_id,
    }


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (e.g. the request id), if one is recording."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


def record_error(error: BaseException) -> None:
    """Mark the current span failed by error, for failures handled without re-raising
    (a consumer that naks an event for a retry, a job put back in the queue)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def record_rpc_code(code: grpc.StatusCode) -> None:
    """Put the status an RPC really ended with on its SERVER span.

    The gRPC instrumentation cannot see codes set through abort_with_status,
    which is how Agora answers every error. Only server faults mark the span as
    an error: a NOT_FOUND is the caller's mistake, not the service's.
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in SERVER_FAULT_CODES:
        span.set_status(Status(StatusCode.ERROR, code.name))
