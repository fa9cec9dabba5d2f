"""The one way an Agora service process starts, serves and stops.

`run_service` configures logging, tracing and metrics, builds the service's resources
through its `build` function, serves gRPC with health and reflection, and on
SIGTERM or SIGINT drains: health turns NOT_SERVING, in-flight RPCs get the
grace period, background tasks are cancelled, and resources are closed in the
reverse order they were opened.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.gc_tuning import tune_garbage_collection
from common.grpc_client import open_channel
from common.grpc_interceptors import ServerInterceptor
from common.logs import configure_logging
from common.metrics import serve_metrics
from common.process_metrics import describe_process
from common.settings import ServiceSettings
from common.telemetry import configure_tracing, server_interceptors, shutdown_tracing

log = logging.getLogger("agora.server")

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)

# Keepalive agreed with common.grpc_client: clients ping every 30 s, so the
# server must allow pings that often or it closes the connection.
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


@dataclass
class ServiceRuntime(Generic[SettingsT]):
    """What a service's build function fills in: servicers, background work, cleanups."""

    settings: SettingsT
    resources: AsyncExitStack
    servicers: list[tuple[str, Callable[[Any, grpc.aio.Server], None], Any]] = field(
        default_factory=list
    )
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    def add_servicer(
        self, full_name: str, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any
    ) -> None:
        """Register a servicer; full_name (e.g. 'agora.auth.v1.AuthService') feeds health."""
        self.servicers.append((full_name, add_to_server, servicer))

    def add_background(self, task: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run task for the life of the process (outbox relays, consumers); cancelled on stop."""
        self.background.append(task)

    def channel_to(self, name: str, service: ServiceDescriptor) -> grpc.aio.Channel:
        """A channel to another Agora service (by topology name), closed at shutdown.

        It connects lazily, so a service starts while the ones it calls are still starting.
        """
        channel = open_channel(self.settings.address_of(name), [service])
        self.resources.push_async_callback(channel.close, None)
        return channel


BuildFn = Callable[[ServiceRuntime[SettingsT]], Awaitable[None]]


async def serve(name: str, settings: SettingsT, build: BuildFn[SettingsT]) -> None:
    """Serve until SIGTERM/SIGINT, then drain and close everything."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with AsyncExitStack() as resources:
        runtime = ServiceRuntime(settings=settings, resources=resources)
        await build(runtime)

        # Tracing outermost: the RPC's log lines, SQL and outgoing calls are inside its span.
        server = grpc.aio.server(
            interceptors=[*server_interceptors(), ServerInterceptor()], options=SERVER_OPTIONS
        )
        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        service_names = [full_name for full_name, _, _ in runtime.servicers]
        for _, add_to_server, servicer in runtime.servicers:
            add_to_server(servicer, server)
        reflection.enable_server_reflection(
            [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        port = server.add_insecure_port(address)
        await server.start()
        for service_name in ["", *service_names]:
            await health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)

        tasks = [asyncio.create_task(job(), name=job.__name__) for job in runtime.background]
        for task in tasks:
            task.add_done_callback(lambda done: _background_ended(done, stop))
        serve_metrics(settings.metrics_port, settings.grpc_host)
        tune_garbage_collection()
        log.info(
            "%s serving", name, extra={"grpc_port": port, "metrics_port": settings.metrics_port}
        )

        await stop.wait()
        log.info("%s shutting down", name)
        await health_servicer.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace_seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    log.info("%s stopped", name)
    if failed := [t for t in tasks if not t.cancelled() and t.exception() is not None]:
        raise RuntimeError(f"background task {failed[0].get_name()} failed") from failed[
            0
        ].exception()


def _background_ended(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """A background task (relay, consumer) must run for the life of the process.

    If one ends on its own, the process is no longer doing its job: log why
    and stop, so the supervisor (Kubernetes, the dev launcher) restarts it
    rather than leaving a server that answers but never publishes.
    """
    if task.cancelled():
        return
    error = task.exception()
    log.error(
        "background task %s ended; stopping the service",
        task.get_name(),
        exc_info=error,
    )
    stop.set()


def run_service(name: str, settings: SettingsT, build: BuildFn[SettingsT]) -> None:
    """Entry point of `python -m services.<name>`."""
    configure_logging(name, settings.log_level, settings.log_format)
    configure_tracing(name, environment=settings.environment)
    describe_process(name)
    try:
        asyncio.run(serve(name, settings, build))
    except Exception:
        log.exception("%s crashed", name)
        raise SystemExit(1) from None
    finally:
        shutdown_tracing()
