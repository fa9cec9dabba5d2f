"""`python -m gateway`: serve the public HTTP API with uvicorn until SIGTERM."""

from __future__ import annotations

import uvicorn

from common.gc_tuning import tune_garbage_collection
from common.logs import configure_logging
from common.process_metrics import describe_process
from common.settings import load_settings
from common.telemetry import configure_tracing, shutdown_tracing
from gateway.app import create_app
from gateway.settings import GatewaySettings


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level, settings.log_format)
    configure_tracing("gateway", environment=settings.environment)
    describe_process("gateway")
    app = create_app(settings)
    tune_garbage_collection()
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        # Logging is ours (common.logs); the request middleware writes access lines.
        log_config=None,
        access_log=False,
        # X-Forwarded-* is read by gateway.client_address, from trusted proxies only.
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    try:
        uvicorn.Server(config).run()
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
