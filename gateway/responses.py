"""Responses that carry ready JSON bytes.

Handlers build plain dicts from protos and hand them to these classes, which
serialise with orjson. That skips FastAPI's generic encoder and response-model
validation, which cost several times more than the work itself on listings;
the schemas in gateway.schemas still document the shapes in OpenAPI, and unit
tests check that the payload builders match them.
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response


class JSONBytesResponse(JSONResponse):
    """`application/json` rendered by orjson (UTF-8, no spaces).

    A JSONResponse subclass so FastAPI documents routes' response models with it.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)


class PrometheusResponse(Response):
    """The Prometheus text exposition format, as prometheus_client renders it."""

    media_type = CONTENT_TYPE_LATEST


class ProblemResponse(JSONBytesResponse):
    """An RFC 9457 problem details document."""

    media_type = "application/problem+json"
