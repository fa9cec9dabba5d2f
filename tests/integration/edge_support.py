"""Gateways of a test's own, for the edge tests: real HTTP, real Redis, the stack's services.

The suite's shared gateway runs with limits too high to ever trigger and a
Redis key prefix every test shares. Edge tests start their own gateway
instead: `create_app(settings)` served by uvicorn on a free port, in this
process, in front of the same running services, with its own Redis key
prefix (so counters and cached entries are the test's alone) and whatever
limits, deadlines or Redis the test needs. Redis outages are made with a
private redis-server on a free port (never the machine's shared one).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY

from common.topology import SERVICES
from gateway.app import create_app
from gateway.resources import Resources
from gateway.settings import GatewaySettings
from tools.stack import Stack, free_port


def edge_settings(stack: Stack, *, prefix: str | None = None, **overrides: Any) -> GatewaySettings:
    """Settings for a gateway of the test's own in front of the stack's services."""
    values: dict[str, Any] = {
        "environment": "test",
        "redis_key_prefix": prefix or f"{stack.redis_key_prefix}edge-{uuid.uuid4().hex[:8]}:",
        "service_addresses": {spec.name: stack.address(spec.name) for spec in SERVICES},
        "readiness_timeout_seconds": 0.5,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@dataclass
class Edge:
    """A running gateway: its URL, app (for its resources) and settings."""

    url: str
    app: FastAPI
    settings: GatewaySettings

    @property
    def resources(self) -> Resources:
        resources: Resources = self.app.state.resources
        return resources

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=15, **kwargs)


@contextlib.asynccontextmanager
async def edge_gateway(settings: GatewaySettings) -> AsyncIterator[Edge]:
    """Serve create_app(settings) over HTTP on a free port until the block ends."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        if task.done():
            task.result()  # raises what went wrong
            raise RuntimeError("the edge gateway stopped while starting")
        if time.monotonic() > deadline:
            raise RuntimeError("the edge gateway did not start")
        await asyncio.sleep(0.02)
    try:
        yield Edge(f"http://127.0.0.1:{port}", app, settings)
    finally:
        server.should_exit = True
        await task


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """A Prometheus sample of this process (where edge gateways run), 0 when absent."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


class PrivateRedis:
    """A redis-server of the test's own on a free port, to pause or kill at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="agora-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("redis-server is not installed")
        self._process = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pause(self, seconds: float) -> None:
        """Make every client command hang for `seconds` (a hung Redis, not a dead one)."""
        redis.Redis(port=self.port).execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()


def dead_redis_url() -> str:
    """A Redis URL where nothing listens: every connection is refused at once."""
    return f"redis://127.0.0.1:{free_port()}/0"
