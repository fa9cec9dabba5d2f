"""Schemathesis over the gateway's own /openapi.json, against the session's real stack.

Every operation of the document is fuzzed twice, anonymously and signed in,
with a bounded number of generated cases in positive and negative mode (valid
and deliberately invalid input). Each answer must not be a 5xx and must match
what the document promises: a documented status code and content type, a body
that conforms to the documented schema, the documented headers; negative cases
must be refused with a 4xx.

Random ids only ever reach the "not found" branch, so signed-in cases have
their path parameters swapped, half of the time, for a real community, post,
comment and user the fuzzing member owns: then the handlers behind them run
too.

Not checked: that every schema-valid request is accepted (schemathesis's
`positive_data_acceptance`). The services apply rules a JSON schema cannot
state (a title needs a visible character, a link needs a host, a cursor must
be one the API issued), so a 4xx for input that merely fits the schema is
the contract working, not a defect; a 5xx or an undocumented answer is one.

Generated extra headers that frame the HTTP message itself (a random
`Transfer-Encoding`, `Content-Length`, `Host`, `Connection`) are dropped:
the HTTP server answers those with its own plain-text 400 before any API
code runs, so they test uvicorn, not the API.

The bounds fit CI; `AGORA_FUZZ_EXAMPLES` raises them for a soak. How
many requests were sent is recorded for docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckFunction
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.integration.gateway_support import PASSWORD, unique
from tests.reliability.figures import record_figures
from tools.stack import Stack

EXAMPLES = int(os.environ.get("AGORA_FUZZ_EXAMPLES", "12"))
LOGOUT = "/api/v1/auth/logout"
SENT: Counter[str] = Counter()
EXCLUDED_CHECKS: list[CheckFunction] = [positive_data_acceptance]
FRAMING_HEADERS = ("transfer-encoding", "content-length", "host", "connection", "te", "upgrade")
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True)
class Fuzzer:
    """The signed-in fuzzing member and real resources of theirs for path parameters."""

    username: str
    token: str
    real: dict[str, str]

    def fresh_token(self, client: httpx.Client) -> str:
        """A token of its own session, for the logout cases (which end a session)."""
        answer = client.post(
            "/api/v1/auth/login", json={"username": self.username, "password": PASSWORD}
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def fuzzer(client: httpx.Client) -> Fuzzer:
    name = unique("fz")
    created = client.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name.lower()}@example.com", "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    fuzzer = Fuzzer(name, "", {})
    token = fuzzer.fresh_token(client)
    auth = {"Authorization": f"Bearer {token}"}
    community = client.post(
        "/api/v1/communities", json={"name": unique("fz"), "title": "Fuzzed"}, headers=auth
    ).json()["name"]
    post = client.post(
        f"/api/v1/communities/{community}/posts", json={"title": "Fuzzed"}, headers=auth
    ).json()["id"]
    comment = client.post(
        f"/api/v1/posts/{post}/comments", json={"body": "Fuzzed"}, headers=auth
    ).json()["id"]
    real = {"name": community, "post_id": post, "comment_id": comment, "username": name}
    return Fuzzer(name, token, real)


def _drop_framing_headers(case: Case[Any]) -> None:
    for name in FRAMING_HEADERS:
        case.headers.pop(name, None)


def _use_real_ids(case: Case[Any], fuzzer: Fuzzer) -> None:
    """Swap path parameters for real ones in half of the cases (chosen by their values)."""
    if not case.path_parameters:
        return
    digest = hashlib.sha256(repr(sorted(case.path_parameters.items())).encode()).digest()
    if digest[0] % 2:
        return
    for key in case.path_parameters:
        if key in fuzzer.real:
            case.path_parameters[key] = fuzzer.real[key]


def _count(mode: str, case: Case[Any]) -> None:
    SENT[mode] += 1
    SENT[f"{case.method.upper()} {case.path}"] += 1


def _document() -> dict[str, Any]:
    """The gateway's document, built by the code the stack's gateway runs.

    Tests are made per operation when pytest collects them, before the stack
    runs; test_the_fuzzed_document_is_the_served_one proves it is the same.
    """
    return create_app(GatewaySettings(environment="test")).openapi()


def _schema(*, with_security: bool) -> BaseSchema:
    """The document as schemathesis fuzzes it.

    The signed-in run adds a real token to every case, so it must not also
    generate (or leave out) the Authorization header: a case made "invalid"
    by a missing token would then be sent with one.
    """
    generation = {
        "mode": "all",
        "max-examples": EXAMPLES,
        "with-security-parameters": with_security,
    }
    config = schemathesis.Config.from_dict({"generation": generation})
    return schemathesis.openapi.from_dict(DOCUMENT, config=config)


DOCUMENT = _document()
anonymous = _schema(with_security=True)
signed_in = _schema(with_security=False)


def _shape(document: dict[str, Any]) -> dict[str, Any]:
    """What fuzzing checks against: operations, parameters, bodies, statuses, schemas."""
    operations = {
        f"{method.upper()} {path}": (
            operation.get("parameters"),
            operation.get("requestBody"),
            {
                status: {k: v for k, v in answer.items() if k != "description"}
                for status, answer in operation["responses"].items()
            },
        )
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    return {"operations": operations, "schemas": document["components"]["schemas"]}


def test_the_fuzzed_document_is_the_served_one(stack: Stack) -> None:
    served = httpx.get(f"{stack.gateway_url}/openapi.json", timeout=10).json()
    assert _shape(served) == _shape(DOCUMENT)


@anonymous.parametrize()
@FUZZ_SETTINGS
def test_anonymous_fuzzing(case: Case[Any], stack: Stack) -> None:
    _drop_framing_headers(case)
    _count("anonymous", case)
    case.call_and_validate(base_url=stack.gateway_url, excluded_checks=EXCLUDED_CHECKS)


@signed_in.parametrize()
@FUZZ_SETTINGS
def test_signed_in_fuzzing(
    case: Case[Any], stack: Stack, fuzzer: Fuzzer, client: httpx.Client
) -> None:
    _drop_framing_headers(case)
    _use_real_ids(case, fuzzer)
    # Logging out ends the session: those cases spend a session of their own.
    token = fuzzer.fresh_token(client) if case.path == LOGOUT else fuzzer.token
    _count("signed_in", case)
    case.call_and_validate(
        base_url=stack.gateway_url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=EXCLUDED_CHECKS,
    )


def test_what_fuzzing_found_stays_fixed(client: httpx.Client) -> None:
    """Two findings of the first run, pinned: both were the document or HTTP lying."""
    # Allow named only the first matching route's methods (Starlette), not every one.
    answer = client.request("OPTIONS", "/api/v1/communities/anything")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, PATCH"
    # Public reads were documented as needing a token; a token is optional there.
    paths = DOCUMENT["paths"]
    assert paths["/api/v1/communities"]["get"]["security"] == [{}, {"HTTPBearer": []}]
    assert paths["/api/v1/communities"]["post"]["security"] == [{"HTTPBearer": []}]
    assert set(DOCUMENT["components"]["securitySchemes"]) == {"HTTPBearer"}


def test_fuzzing_figures() -> None:
    """Runs after the fuzzing above: every operation was reached, and the counts are kept."""
    operations = set(_shape(DOCUMENT)["operations"])
    if not SENT:
        pytest.skip("the fuzzing tests did not run in this session")
    assert operations <= set(SENT), sorted(operations - set(SENT))
    record_figures(
        "fuzzing",
        {
            "operations": len(operations),
            "max_examples_per_phase": EXAMPLES,
            "requests_anonymous": SENT["anonymous"],
            "requests_signed_in": SENT["signed_in"],
            "requests_total": SENT["anonymous"] + SENT["signed_in"],
        },
    )
