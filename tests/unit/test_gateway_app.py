"""The gateway's edge behaviour in-process: middleware, schemas, settings and OpenAPI.

No upstreams are needed: these apps never run the gateway's lifespan, or are
small apps assembled from the same middleware and handlers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from agora.auth.v1 import auth_pb2
from fastapi import FastAPI, Request
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError
from starlette.middleware import Middleware
from starlette.responses import Response

from gateway.app import create_app
from gateway.middleware import BodyLimitMiddleware, RequestContextMiddleware
from gateway.problems import install_problem_handlers
from gateway.schemas import (
    LoginRequest,
    RegisterRequest,
    TokenPair,
    User,
    token_pair_payload,
    user_payload,
)
from gateway.security_headers import SecurityHeadersMiddleware
from gateway.settings import GatewaySettings


def _edge_app() -> FastAPI:
    app = FastAPI(
        middleware=[
            Middleware(SecurityHeadersMiddleware, hsts_max_age_seconds=0),
            Middleware(RequestContextMiddleware),
            Middleware(BodyLimitMiddleware, max_body_bytes=1024),
        ]
    )
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: postgres://admin:pw@db")

    @app.post("/raw")
    async def raw(request: Request) -> Response:
        # Reads the body outside FastAPI's own body handling.
        return Response(str(len(await request.body())))

    return app


@pytest.fixture
async def edge() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_edge_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
        yield client


async def test_unhandled_exceptions_become_a_bare_500_problem(edge: httpx.AsyncClient) -> None:
    response = await edge.get("/boom", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "trace-me"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert body["status"] == 500
    assert "postgres" not in response.text
    assert "RuntimeError" not in response.text


async def test_body_limit_applies_to_declared_and_streamed_bodies(edge: httpx.AsyncClient) -> None:
    assert (await edge.post("/raw", content=b"x" * 1024)).text == "1024"
    declared = await edge.post("/raw", content=b"x" * 1025)
    assert declared.status_code == 413
    assert declared.json()["status"] == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 300

    streamed = await edge.post("/raw", content=chunks())
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"


def _user(email: str = "alice@example.com") -> auth_pb2.User:
    created = Timestamp()
    created.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    return auth_pb2.User(id="u-1", username="alice", email=email, created_at=created, karma=7)


def test_user_payload_matches_the_documented_model() -> None:
    private = user_payload(_user(), with_email=True)
    assert private["created_at"] == "2026-01-02T03:04:05.678Z"
    assert User.model_validate(private).email == "alice@example.com"
    public = user_payload(_user(), with_email=False)
    assert "email" not in public
    assert set(User.model_validate(public).model_dump(exclude_none=True)) == set(public)


def test_token_pair_payload_matches_the_documented_model() -> None:
    pair = auth_pb2.TokenPair(
        access_token="a", refresh_token="r", token_type="Bearer", expires_in=9
    )
    payload = token_pair_payload(pair)
    assert TokenPair.model_validate(payload).model_dump() == payload


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": 123, "email": "a@b.co", "password": "12345678"}, "username"),
        ({"username": "abc", "email": "a@b.co", "password": 12345678}, "password"),
        ({"username": "abc", "email": "a@b.co", "password": "12345678", "x": 1}, "x"),
        ({"username": "ab\u200bc", "email": "a@b.co", "password": "12345678"}, "username"),
        ({"username": "abc", "email": "not-an-email", "password": "12345678"}, "email"),
    ],
)
def test_register_request_is_strict(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        RegisterRequest.model_validate(body)
    assert [e["loc"][0] for e in error.value.errors()] == [field]


def test_usernames_are_nfkc_normalised_before_the_pattern() -> None:
    request = RegisterRequest.model_validate(
        {"username": "\uff41\uff44\uff4d\uff49\uff4e_1", "email": "a@b.co", "password": "pw" * 4}
    )
    assert request.username == "admin_1"
    assert LoginRequest.model_validate({"username": "\uff41bc", "password": "x"}).username == "abc"
    schema = RegisterRequest.model_json_schema()
    assert schema["properties"]["username"]["pattern"] == "^[A-Za-z0-9_]{3,20}$"
    assert schema["additionalProperties"] is False


def test_settings_parse_lists_and_refuse_bad_origins() -> None:
    settings = GatewaySettings(cors_allow_origins="https://a.example, http://localhost:3000")
    assert settings.cors_allow_origins == ["https://a.example", "http://localhost:3000"]
    assert GatewaySettings(trusted_proxies='["10.0.0.1"]').trusted_proxies == ["10.0.0.1"]
    with pytest.raises(ValidationError):
        GatewaySettings(cors_allow_origins="https://a.example/path")
    with pytest.raises(ValidationError):
        GatewaySettings(environment="production", cors_allow_origins="*", cursor_secret="s" * 32)
    assert GatewaySettings().max_body_bytes == 1024 * 1024


def test_openapi_documents_problems_not_fastapi_defaults() -> None:
    document = create_app(GatewaySettings()).openapi()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"title", "status", "detail"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    assert list(answer["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )
                    assert answer["content"]["application/problem+json"]["schema"] == {
                        "$ref": "#/components/schemas/Problem"
                    }
