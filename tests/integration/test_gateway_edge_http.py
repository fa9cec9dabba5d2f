"""HTTP hygiene at the edge: security headers, HSTS, the docs' own CSP, CORS, gzip,
body limits, strict content types, and an OpenAPI document that tells all of it.

Mostly against gateways of the test's own (real HTTP, real Redis, the stack's
services), where a setting (trusted proxies, CORS origins, a low limit) is needed.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from typing import Any

import httpx
import pytest

from gateway.security_headers import API_CSP
from tests.integration.edge_support import edge_gateway, edge_settings
from tests.integration.gateway_support import Api, assert_problem, register
from tools.stack import Stack

APP_ORIGIN = "https://app.example.com"


def assert_secure_headers(response: httpx.Response, *, csp: str = API_CSP.decode()) -> None:
    headers = response.headers
    assert headers["content-security-policy"] == csp, response.request.url
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in headers  # plain HTTP: meaningless, not sent


async def test_every_answer_carries_the_security_headers(http: httpx.AsyncClient) -> None:
    member = await register(http, "hy")
    answers = [
        await http.get("/api/v1/posts"),
        await http.get("/api/v1/users/me", headers=member.auth),
        await http.get("/api/v1/nothing-here"),
        await http.post("/api/v1/auth/login", content=b"{", headers={"content-type": "a/b"}),
        await http.get("/healthz"),
        await http.get("/metrics"),
        await http.get("/openapi.json"),
    ]
    for answer in answers:
        assert_secure_headers(answer)


async def test_hsts_only_over_https_as_trusted_proxies_report_it(stack: Stack) -> None:
    https = {"X-Forwarded-Proto": "https"}
    async with edge_gateway(edge_settings(stack)) as edge, edge.client() as client:
        # Anyone can claim https; without trusted proxies the claim is ignored.
        assert (
            "strict-transport-security" not in (await client.get("/healthz", headers=https)).headers
        )
    settings = edge_settings(stack, trusted_proxies=["127.0.0.1"])
    async with edge_gateway(settings) as edge, edge.client() as client:
        secure = await client.get("/api/v1/no-such-route", headers=https)
        assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        plain = await client.get("/healthz", headers={"X-Forwarded-Proto": "http"})
        assert "strict-transport-security" not in plain.headers


def _csp(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def _allowed(url: str, sources: list[str]) -> bool:
    return any(source.startswith("https://") and url.startswith(source) for source in sources)


async def test_the_docs_page_has_a_policy_that_lets_it_work(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    html = page.text
    csp = _csp(page.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["connect-src"] == ["'self'"]  # fetching /openapi.json
    assert "'unsafe-inline'" not in csp["script-src"]
    scripts = re.findall(r'<script src="([^"]+)"', html)
    styles = re.findall(r'<link type="text/css" rel="stylesheet" href="([^"]+)"', html)
    icons = re.findall(r'<link rel="shortcut icon" href="([^"]+)"', html)
    assert scripts
    assert styles
    assert icons
    assert all(_allowed(src, csp["script-src"]) for src in scripts)
    assert all(_allowed(href, csp["style-src"]) for href in styles)
    assert all(_allowed(href, csp["img-src"]) for href in icons)
    inline = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert inline, "Swagger UI is started by an inline script"
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp["script-src"]
    assert "'/openapi.json'" in html
    # The rest of the API keeps the strict policy.
    assert_secure_headers(await http.get("/openapi.json"))


async def test_cors_allows_configured_origins_only(stack: Stack) -> None:
    settings = edge_settings(
        stack, cors_allow_origins=[APP_ORIGIN], rate_limit_anonymous="1/minute"
    )
    async with edge_gateway(settings) as edge, edge.client() as client:
        preflight = await client.options(
            "/api/v1/posts/x/vote",
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "PUT" in preflight.headers["access-control-allow-methods"]
        evil = await client.options(
            "/api/v1/posts",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in evil.headers
        answer = await client.get("/api/v1/posts", headers={"Origin": APP_ORIGIN})
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
        exposed = {
            h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
        }
        assert {"ratelimit", "ratelimit-policy", "retry-after", "x-request-id"} <= exposed
        # A browser can read why it was throttled.
        limited = await client.get("/api/v1/posts", headers={"Origin": APP_ORIGIN})
        assert_problem(limited, 429)
        assert limited.headers["access-control-allow-origin"] == APP_ORIGIN
        other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_large_answers_are_gzipped_for_clients_that_accept_it(
    http: httpx.AsyncClient,
) -> None:
    big = await http.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in big.headers["vary"].lower()
    assert big.json()["info"]["title"] == "Agora API"  # httpx decoded it
    raw = await http.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert raw.content == big.content
    async with http.stream("GET", "/openapi.json", headers={"Accept-Encoding": "gzip"}) as streamed:
        compressed = b"".join([chunk async for chunk in streamed.aiter_raw()])
    assert len(compressed) < len(raw.content) / 3
    assert gzip.decompress(compressed) == raw.content
    small = await http.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # below the 1 KiB threshold


async def test_bodies_are_limited_in_size_and_must_be_json(http: httpx.AsyncClient) -> None:
    member = await register(http, "hy")
    api = Api(http)
    community = (await api.community(member, "hy"))["name"]
    posts = f"/api/v1/communities/{community}/posts"
    too_big = await http.post(
        posts,
        content=b'{"title": "' + b"x" * (1024 * 1024) + b'"}',
        headers={**member.auth, "Content-Type": "application/json"},
    )
    assert_problem(too_big, 413)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        refused = await http.post(
            posts, content=b'{"title": "t"}', headers={**member.auth, "Content-Type": content_type}
        )
        assert_problem(refused, 415)
    untyped = await http.post(posts, content=b'{"title": "t"}', headers=member.auth)
    assert_problem(untyped, 415)
    fine = await http.post(
        posts,
        content=b'{"title": "t"}',
        headers={**member.auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert fine.status_code == 201, fine.text


@pytest.fixture
async def document(stack: Stack) -> dict[str, Any]:
    """The document of a gateway with the default limits (the suite's runs unthrottled)."""
    async with edge_gateway(edge_settings(stack)) as edge, edge.client() as client:
        answer = await client.get("/openapi.json")
    result: dict[str, Any] = answer.json()
    return result


async def test_openapi_documents_limits_and_outages(document: dict[str, Any]) -> None:
    api_operations = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status, answer in responses.items():
                if status in ("429", "503"):
                    assert "Retry-After" in answer["headers"], (method, path, status)
            if not path.startswith("/api/"):
                assert "429" not in responses, (method, path)
                continue
            api_operations += 1
            limited = responses["429"]
            assert set(limited["content"]) == {"application/problem+json"}
            assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(limited["headers"])
            assert "`user` (" in limited["description"], (method, path)
            for status, answer in responses.items():
                if status.startswith("2"):
                    assert {"RateLimit", "RateLimit-Policy"} <= set(answer.get("headers", {}))
            assert "503" in responses, (method, path)
    assert api_operations >= 30
    posting = document["paths"]["/api/v1/communities/{name}/posts"]["post"]["responses"]["429"]
    assert "`posts` (10 per 3600 s per user)" in posting["description"]
    voting = document["paths"]["/api/v1/posts/{post_id}/vote"]["put"]["responses"]["429"]
    assert "`votes_ip` (60 per 60 s per client IP)" in voting["description"]
    login = document["paths"]["/api/v1/auth/login"]["post"]["responses"]["429"]
    assert "`auth` (5 per 60 s per client IP)" in login["description"]
