"""The RPC ceiling and its client: a bare grpc.aio server, and a concurrent unary-call driver.

    python -m bench.harness.grpc_load serve PORT RESPONSE_FILE
    python -m bench.harness.grpc_load drive TARGET METHOD REQUEST_FILE CONNECTIONS SECONDS

`serve` answers every call of /bench.Bare/Get with fixed bytes (the posts
service's serialized hot listing, captured by the harness) through a generic
handler: no interceptors, no protobuf parsing, the services' server options.
`drive` is the load generator (no ghz in Debian): CONNECTIONS concurrent
callers on one channel (as the gateway holds one channel per service), each
calling METHOD with the raw request bytes back to back for SECONDS, and prints
one JSON line with every call's latency summarised. The same driver also
measures the real posts service, so service and ceiling are compared with
the same client. Being Python, the driver costs CPU of its own on this
2-core machine; its share is reported with the results.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc

from bench.harness.measure import from_latencies
from common.grpc_server import SERVER_OPTIONS

BARE_METHOD = "/bench.Bare/Get"


async def serve(port: int, response: bytes) -> None:
    async def get(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        del request, context
        return response

    server = grpc.aio.server(options=SERVER_OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        "bench.Bare", {"Get": grpc.unary_unary_rpc_method_handler(get)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def drive(target: str, method: str, request: bytes, connections: int, seconds: float) -> None:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        await call(request, timeout=10)  # connected and warm before the clock starts
        deadline = time.monotonic() + seconds

        async def caller() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    await call(request, timeout=30)
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] = errors.get(error.code().name, 0) + 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(connections)))
        elapsed = time.monotonic() - started
    result = from_latencies(
        method,
        "grpc_load",
        connections=connections,
        seconds=elapsed,
        latencies_ms=latencies,
        errors=sum(errors.values()),
        error_detail=errors,
    )
    print("GRPC_JSON " + json.dumps(result.as_dict()), flush=True)


def main() -> None:
    mode = sys.argv[1]
    if mode == "serve":
        asyncio.run(serve(int(sys.argv[2]), Path(sys.argv[3]).read_bytes()))
    elif mode == "drive":
        target, method, request_file, connections, seconds = sys.argv[2:7]
        request = Path(request_file).read_bytes()
        asyncio.run(drive(target, method, request, int(connections), float(seconds)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
