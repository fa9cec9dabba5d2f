"""OpenTelemetry tracing for every Agora process: set up once at start, flushed at exit.

Tracing is configured by the standard `OTEL_*` variables and is on only when an
OTLP endpoint is set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
`OTEL_EXPORTER_OTLP_ENDPOINT`) and nothing turns it off (`OTEL_SDK_DISABLED=true`,
`OTEL_TRACES_EXPORTER=none`). Off, nothing is installed: no provider, no
instrumentation, no interceptor, so tracing costs nothing. On, spans go through
a BatchSpanProcessor to the OTLP/HTTP exporter; both, and the sampler, read their
own `OTEL_*` settings (batch delay, headers, timeout, `OTEL_TRACES_SAMPLER`...).

Instrumentations are applied to what Agora opens, explicitly: the gRPC server
and channels (`server_interceptors`, `client_interceptors`), each SQLAlchemy
engine (`instrument_engine`), each Redis client (`instrument_redis`), the
FastAPI app (`instrument_app`). Only httpx is patched globally, because the LLM
SDKs build their own clients. Our own spans (events through NATS, summary jobs)
are made by common.tracing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import (
    DEPLOYMENT_ENVIRONMENT,
    SERVICE_NAME,
    SERVICE_NAMESPACE,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

if TYPE_CHECKING:
    import grpc
    from fastapi import FastAPI
    from redis.asyncio import Redis
    from sqlalchemy.engine import Engine

log = logging.getLogger("agora.telemetry")

NAMESPACE = "agora"
# Probes and scrapes arrive every few seconds from every replica: not worth a trace.
UNTRACED_HTTP_PATHS = ("/healthz", "/readyz", "/metrics")
UNTRACED_GRPC_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")

# What the last batch gets at exit before it is dropped.
EXIT_FLUSH_SECONDS = 3.0


@dataclass(slots=True)
class _Installed:
    """What configure_tracing installed in this process (nothing while tracing is off)."""

    provider: TracerProvider | None = None
    exporter: _StoppableExporter | None = None


_installed = _Installed()


def exporting_configured(env: Mapping[str, str]) -> bool:
    """Whether these OTEL_* settings ask for traces to be exported (the on/off rule above)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
    if exporters <= {"none", ""}:
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint and endpoint.strip())


def tracing_enabled() -> bool:
    """True once configure_tracing installed a provider in this process."""
    return _installed.provider is not None


def service_resource(service: str, *, environment: str) -> Resource:
    """Who emits the spans: `agora-<service>` unless OTEL_SERVICE_NAME or
    OTEL_RESOURCE_ATTRIBUTES say otherwise (the environment wins, as the spec asks)."""
    ours = {
        SERVICE_NAME: f"{NAMESPACE}-{service}",
        SERVICE_NAMESPACE: NAMESPACE,
        SERVICE_VERSION: _package_version(),
        DEPLOYMENT_ENVIRONMENT: environment,
    }
    return Resource.create(ours).merge(OTELResourceDetector().detect())


def configure_tracing(
    service: str, *, environment: str, env: Mapping[str, str] | None = None
) -> bool:
    """Install tracing for this process if the environment asks for it; True when on.

    Called once at start by every process (common.grpc_server.run_service, the
    gateway's main), after logging is configured and before anything is opened.
    """
    if _installed.provider is not None:
        return True
    settings = os.environ if env is None else env
    if not exporting_configured(settings):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = settings.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or settings.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip() != "http/protobuf":
        log.warning(
            "only OTLP over http/protobuf is supported; exporting with it anyway",
            extra={"otlp_protocol": protocol},
        )
    # The sampler comes from OTEL_TRACES_SAMPLER / _ARG (default: parent-based, always on).
    provider = TracerProvider(resource=service_resource(service, environment=environment))
    exporter = _StoppableExporter(OTLPSpanExporter())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _installed.provider, _installed.exporter = provider, exporter
    log.info(
        "tracing on",
        extra={"service_name": provider.resource.attributes.get(SERVICE_NAME)},
    )
    return True


def shutdown_tracing(timeout_seconds: float = EXIT_FLUSH_SECONDS) -> None:
    """Export what is still buffered and stop; a no-op when tracing is off.

    A collector that is down must not hold the exit up (the exporter would
    retry for its whole timeout): after timeout_seconds the exporter stops
    retrying, and what it could not send is dropped.
    """
    provider, exporter = _installed.provider, _installed.exporter
    if provider is None:
        return
    _installed.provider = _installed.exporter = None
    deadline = threading.Timer(timeout_seconds, exporter.shutdown) if exporter else None
    if deadline is not None:
        deadline.daemon = True
        deadline.start()
    try:
        provider.shutdown()
    finally:
        if deadline is not None:
            deadline.cancel()


class _StoppableExporter(SpanExporter):
    """An exporter shut down once, by whoever asks first (the exit deadline or the
    processor), so the second caller neither waits nor logs a warning."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self._stopping = threading.Lock()
        self._stopped = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
        self._exporter.shutdown()


# ------------------------------------------------------------ instrumentation


def server_interceptors() -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The tracing interceptor for a gRPC server, to run outside Agora's own (empty when off).

    It continues the caller's trace from the call's metadata and makes the SERVER
    span that every log line and SQL statement of the RPC belongs to.
    """
    if not tracing_enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
        filter_=_traced_grpc_call()
    )
    return [interceptor]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The tracing interceptors for a channel: a CLIENT span per call, context in metadata."""
    if not tracing_enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    interceptors: list[grpc.aio.ClientInterceptor] = aio_client_interceptors(  # type: ignore[no-untyped-call]
        filter_=_traced_grpc_call()
    )
    return interceptors


def _traced_grpc_call() -> Any:
    from opentelemetry.instrumentation.grpc import filters

    untraced = [filters.service_name(name) for name in UNTRACED_GRPC_SERVICES]
    return filters.negate(filters.any_of(*untraced))


def instrument_engine(engine: Engine) -> None:
    """A span per SQL statement on this engine (the statement text, never its parameters)."""
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__ as sqlalchemy_version
    from opentelemetry.metrics import NoOpMeter

    # EngineTracer, not SQLAlchemyInstrumentor: the instrumentor is a process-wide
    # singleton that patches create_engine and Engine.connect (a span per pool
    # checkout) and traces only the first engine it is given.
    tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", sqlalchemy_version)
    connections = NoOpMeter("agora").create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer, engine, connections, enable_commenter=False)  # type: ignore[no-untyped-call]


def instrument_redis(client: Redis) -> None:
    """A span per Redis command (the command name; arguments are replaced by `?`)."""
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client)


def instrument_app(app: FastAPI) -> None:
    """The SERVER span of every HTTP request but probes and scrapes.

    It wraps the whole middleware stack, so the request-context middleware's
    access line and every gRPC call the handler makes happen inside it.
    """
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        # Matched against the whole URL, scheme and host included.
        excluded_urls=",".join(f"://[^/]+{path}$" for path in UNTRACED_HTTP_PATHS),
        # One span per request, not one more per ASGI message sent or received.
        exclude_spans=["receive", "send"],
    )


def _package_version() -> str:
    try:
        return version("agora")
    except PackageNotFoundError:
        return "0.0.0"
