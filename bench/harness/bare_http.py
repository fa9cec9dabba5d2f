"""The HTTP ceiling: `python -m bench.harness.bare_http PORT BODY_FILE`.

One FastAPI route that answers fixed bytes (the gateway's cached hot listing,
captured by the harness), served by uvicorn exactly as the gateway is (one
process, the same Config: uvloop and httptools when installed, no access log,
no server header). No middleware, no Redis, no gRPC: what is left is the cost
of HTTP parsing, Starlette routing and the response, on this machine, which
is the most any gateway route could do.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Response

PATH = "/bench"


def create_app(body: bytes) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(PATH)
    async def answer() -> Response:
        return Response(content=body, media_type="application/json")

    return app


def main() -> None:
    port, body_file = int(sys.argv[1]), Path(sys.argv[2])
    config = uvicorn.Config(
        create_app(body_file.read_bytes()),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
