"""The OpenAPI document: every error status documented as problem+json.

FastAPI documents additional responses under the route's own media type and
adds a 422 `HTTPValidationError` (`{"detail": [...]}`) that the gateway never
sends. Routes list their error statuses with `problem_responses(...)`, which
points at one `Problem` schema under `application/problem+json`;
`install_openapi` registers that schema and rewrites any automatic 422 into
the problem form the handlers really send, so /openapi.json describes exactly
what goes over the wire.

Rate limits are applied by middleware, not by routes, so `install_openapi`
also adds them from the limit policy: every `/api/` operation documents its
429 (with the limits it counts against) and the `RateLimit` /
`RateLimit-Policy` headers of its answers; 429 and 503 document Retry-After.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.schemas.problem import Problem

if TYPE_CHECKING:
    from gateway.ratelimit.policy import Limit, LimitPolicy

PROBLEM_MEDIA_TYPE = "application/problem+json"
# The scheme name of the bearer token on endpoints that serve anonymous callers
# too; the published document says so with an empty requirement instead.
OPTIONAL_BEARER = "OptionalHTTPBearer"
BEARER = "HTTPBearer"
_REF_TEMPLATE = "#/components/schemas/{model}"

# Why each status can happen, as shown in the docs.
_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed: the body is not valid JSON, or the cursor is not one this API issued.",
    401: "No, an invalid, expired or revoked access token, or bad credentials.",
    403: "The caller may not do this.",
    404: "Not found.",
    409: "Conflicts with existing data.",
    413: "The body is larger than the limit.",
    415: "The body is not `application/json`.",
    422: "A field is invalid; `errors` lists each one.",
    429: "Rate limited; see `Retry-After`.",
    503: "A dependency is down; retry after `Retry-After` seconds.",
}
# Any route can fail these ways.
COMMON_STATUSES = (500,)
# A route with a JSON body can also fail these ways.
BODY_STATUSES = (400, 413, 415, 422)


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit-Policy": {
        "description": "Every limit this request counted against "
        "(draft-ietf-httpapi-ratelimit-headers): `q` requests per `w` seconds.",
        "schema": {"type": "string"},
        "example": '"user";q=100;w=60, "posts";q=10;w=3600',
    },
    "RateLimit": {
        "description": "The limit closest to refusing: `r` requests remaining, "
        "`t` seconds until one more is allowed.",
        "schema": {"type": "string"},
        "example": '"posts";r=9;t=3600',
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry of a route for the error statuses it can answer."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *COMMON_STATUSES}):
        answer: dict[str, Any] = {
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            "content": {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _REF_TEMPLATE.format(model="Problem")}}
            },
        }
        if status in (429, 503):
            answer["headers"] = dict(_RETRY_AFTER)
        responses[status] = answer
    return responses


def _limit_text(limit: Limit) -> str:
    per = "user" if limit.per == "user" else "client IP"
    return f"`{limit.name}` ({limit.rate.limit} per {limit.rate.window_seconds} s per {per})"


def _document_rate_limits(document: dict[str, Any], policy: LimitPolicy) -> None:
    """429 and the RateLimit headers on every rate-limited operation."""
    general = " or, without a valid token, ".join(
        _limit_text(policy.limits[name]) for name in ("user", "anonymous") if name in policy.limits
    )
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            extra = policy.route_limits(method.upper(), path)
            if not path.startswith("/api/") or not (general or extra):
                continue
            responses = operation.setdefault("responses", {})
            for status, answer in responses.items():
                if status.startswith("2"):
                    answer.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
            counted = [general] if general else []
            counted += [_limit_text(limit) for limit in extra]
            too_many = problem_responses(429)[429]
            too_many["description"] = (
                "Rate limited; see `Retry-After`. Counts against " + "; and ".join(counted) + "."
            )
            too_many["headers"].update(RATE_LIMIT_HEADERS)
            responses["429"] = too_many
            operation["responses"] = dict(sorted(responses.items()))


# Schema keys of a path parameter that accepts any string.
_ANY_STRING_KEYS = frozenset({"type", "title", "description", "examples"})


def _can_fail_validation(operation: dict[str, Any]) -> bool:
    """Whether request validation can refuse a call: a body, or a parameter with rules.

    FastAPI documents a 422 for every operation with parameters, but a path
    parameter that takes any string cannot be invalid (routes answer 404 for
    values that name nothing), so listing 422 there would be a lie.
    """
    if "requestBody" in operation:
        return True
    for parameter in operation.get("parameters", ()):
        schema = parameter.get("schema", {})
        if (
            parameter.get("in") != "path"
            or schema.get("type") != "string"
            or set(schema) - _ANY_STRING_KEYS
        ):
            return True
    return False


def _replace_fastapi_validation_errors(document: dict[str, Any]) -> None:
    """Turn FastAPI's automatic `HTTPValidationError` 422s into our problem 422, and drop
    them where validation cannot fail."""
    automatic = _REF_TEMPLATE.format(model="HTTPValidationError")
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == automatic:
                if _can_fail_validation(operation):
                    operation["responses"]["422"] = problem_responses(422)[422]
                else:
                    del operation["responses"]["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _document_optional_auth(document: dict[str, Any]) -> None:
    """`security: [{}, {"HTTPBearer": []}]` where a token is optional (OpenAPI's way).

    FastAPI lists every security dependency as required. An operation that
    demands a user anywhere in its dependencies keeps the plain requirement.
    """
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            requirements = operation.get("security")
            if not requirements or not any(OPTIONAL_BEARER in r for r in requirements):
                continue
            if any(BEARER in r for r in requirements):
                operation["security"] = [{BEARER: []}]
            else:
                operation["security"] = [{}, {BEARER: []}]
    schemes = document.get("components", {}).get("securitySchemes", {})
    optional = schemes.pop(OPTIONAL_BEARER, None)
    if optional is not None and BEARER not in schemes:
        schemes[BEARER] = {**optional, "description": "An access token from /auth/login."}


def install_openapi(app: FastAPI, policy: LimitPolicy | None = None) -> None:
    """Generate the document once, with the Problem schemas in its components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            _replace_fastapi_validation_errors(document)
            _document_optional_auth(document)
            if policy:
                _document_rate_limits(document, policy)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            problem_schema = Problem.model_json_schema(
                ref_template=_REF_TEMPLATE, mode="serialization"
            )
            schemas.update(problem_schema.pop("$defs", {}))
            schemas["Problem"] = problem_schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
