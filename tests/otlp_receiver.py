"""A local OTLP/HTTP trace receiver for tests: what a collector such as Jaeger would get.

Processes export to it as to any collector (`OTEL_EXPORTER_OTLP_ENDPOINT=
receiver.endpoint`): every `POST /v1/traces` body is an
`ExportTraceServiceRequest` (protobuf, gzip-compressed or not), decoded here
into `ReceivedSpan`s. The whole test session's stack exports to one receiver,
so to stay cheap it keeps only the spans of traces a test asked for: a test
picks a trace id, `watch`es it, and starts the trace itself by sending
`traceparent(trace_id)` with its request. Every other span is only counted.
It runs on 127.0.0.1 on a free port, in daemon threads; it is thread-safe.
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACES_PATH = "/v1/traces"
# A few export rounds of the stack's processes (conftest sets a round to 200 ms).
QUIET_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One exported span, in plain values."""

    trace_id: str
    span_id: str
    # "" for a root span.
    parent_id: str
    name: str
    # SERVER, CLIENT, PRODUCER, CONSUMER or INTERNAL.
    kind: str
    # The resource's service.name: which process made it.
    service: str
    attributes: dict[str, Any]
    # UNSET, OK or ERROR.
    status: str
    # Names of the span's events (exceptions are recorded as "exception" events).
    events: tuple[str, ...]


def new_trace_id() -> str:
    return secrets.token_hex(16)


def traceparent(trace_id: str) -> str:
    """A W3C traceparent header making the next request a sampled child of trace_id."""
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


async def settled_spans(
    receiver: OtlpReceiver,
    trace_ids: Sequence[str],
    complete: Callable[[list[ReceivedSpan]], bool],
    *,
    within: float = 30.0,
) -> list[ReceivedSpan]:
    """The spans of these traces once `complete` holds and no process has more to export.

    Processes export on their own schedules, so a span can arrive before its
    parent's: the set counts as whole once no span came for QUIET_SECONDS.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within

    def spans() -> list[ReceivedSpan]:
        return [span for trace_id in trace_ids for span in receiver.spans(trace_id)]

    found = spans()
    while not complete(found):
        if loop.time() > deadline:
            seen = sorted({(s.service, s.kind, s.name) for s in found})
            raise AssertionError(f"trace incomplete after {within} s; spans: {seen}")
        await asyncio.sleep(0.05)
        found = spans()
    while True:
        await asyncio.sleep(QUIET_SECONDS)
        settled = spans()
        if len(settled) == len(found):
            return settled
        found = settled


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode(body: bytes, wanted: Callable[[str], bool] = lambda _: True) -> list[ReceivedSpan]:
    """The spans of one ExportTraceServiceRequest (of the trace ids `wanted` accepts)."""
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if not wanted(span.trace_id.hex()):
                    continue
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        service=service,
                        attributes=_attributes(span.attributes),
                        status=trace_pb2.Status.StatusCode.Name(span.status.code).removeprefix(
                            "STATUS_CODE_"
                        ),
                        events=tuple(event.name for event in span.events),
                    )
                )
    return spans


class OtlpReceiver:
    """`with OtlpReceiver() as receiver:` ... `receiver.spans(trace_id)`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[str, list[ReceivedSpan]] = {}
        self.exports_received = 0
        self.bad_exports = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL for OTEL_EXPORTER_OTLP_ENDPOINT (exporters append /v1/traces)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def watch(self, trace_id: str) -> None:
        """Keep the spans of this trace from now on."""
        with self._lock:
            self._watched.setdefault(trace_id, [])

    def spans(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of a watched trace received so far."""
        with self._lock:
            return list(self._watched.get(trace_id, ()))

    def _receive(self, body: bytes) -> None:
        # Only watched traces are turned into ReceivedSpans: the rest of the
        # session's traffic costs a protobuf parse and a lookup per span.
        spans = decode(body, self._watched.__contains__)
        with self._lock:
            self.exports_received += 1
            for span in spans:
                self._watched[span.trace_id].append(span)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != TRACES_PATH:
                    self._answer(404, b"")
                    return
                try:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    receiver._receive(body)
                except (DecodeError, OSError):
                    with receiver._lock:
                        receiver.bad_exports += 1
                    self._answer(400, b"")
                    return
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self._answer(200, answer)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the stack's exports are not worth a line each

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
