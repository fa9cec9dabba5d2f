"""Hostile input over HTTP, against the session's stack: nothing breaks, nothing is interpreted.

- SQL injection and script payloads in every text a user can write are
  stored verbatim and come back as JSON string tokens (escaped, served as
  `application/json` with `nosniff`), never as markup and never as SQL; in
  search queries, path parameters and cursors they are a 2xx or a 4xx.
- Bodies nested deeper than any real request are a 400, not a 500 (Python's
  JSON parser would hit its recursion limit).
- Look-alike usernames (case, fullwidth, digit and letter-pair confusables)
  cannot register beside the name they imitate, and non-ASCII homoglyphs
  (Cyrillic, Greek, zero-width characters) are not usernames at all.

JWT forgeries, revocation and rate-limit spoofing have their own tests in
tests/integration (test_gateway_auth.py, test_gateway_edge_revocation.py,
test_gateway_edge_limits.py); oversize bodies too (test_gateway_edge_http.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.gateway_support import (
    PASSWORD,
    Api,
    Member,
    assert_problem,
    register,
)
from tools.stack import Stack

# One line each, so each also fits a title.
PAYLOADS = [
    "<script>alert(document.cookie)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)//",
    "'; DROP TABLE posts.posts; --",
    "' OR '1'='1' --",
    "1; SELECT pg_sleep(10); --",
    "Robert'); DELETE FROM auth.users;--",
    "\\'; COPY (SELECT '') TO PROGRAM 'id'; --",
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "</script><script>alert(1)</script>",
    "line\u2028separator\u2029paragraph",
]


@pytest.fixture(scope="module")
async def writer(stack: Stack) -> Member:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        return await register(client, "sx")


def assert_json_text(answer: httpx.Response, value: str) -> None:
    """`value` is in the body as an escaped JSON string, in a JSON answer that is never sniffed."""
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert orjson.dumps(value) in answer.content


async def test_payloads_are_stored_verbatim_and_returned_as_json_text(
    http: httpx.AsyncClient, writer: Member
) -> None:
    api = Api(http)
    description = "\n".join(PAYLOADS)
    community = await api.community(writer, "sx", title=PAYLOADS[0], description=description)
    read = await http.get(f"/api/v1/communities/{community['name']}")
    assert (read.json()["title"], read.json()["description"]) == (PAYLOADS[0], description)
    assert_json_text(read, description)
    for payload in PAYLOADS:
        post = await api.post(writer, community["name"], title=payload, body=payload)
        comment = await api.comment(writer, post["id"], body=payload)
        for path, fields in (
            (f"/api/v1/posts/{post['id']}", ("title", "body")),
            (f"/api/v1/comments/{comment['id']}", ("body",)),
        ):
            answer = await http.get(path)
            assert answer.status_code == 200, answer.text
            assert [answer.json()[field] for field in fields] == [payload] * len(fields)
            assert_json_text(answer, payload)
    # The tables the payloads name are all still there: every post reads back.
    listed = await api.all_pages(f"/api/v1/communities/{community['name']}/posts", sort="new")
    assert sorted(p["title"] for p in listed) == sorted(PAYLOADS)


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("kind", ["posts", "comments", "communities"])
async def test_payloads_as_search_queries_are_only_text(
    http: httpx.AsyncClient, payload: str, kind: str
) -> None:
    answer = await http.get("/api/v1/search", params={"q": payload, "type": kind})
    # Control characters (U+2028 is not one) are refused; anything else is searched for.
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json()["items"], list)


@pytest.mark.parametrize("payload", ["x' OR '1'='1", "x%27--", "..%2F..%2Fetc%2Fpasswd", "%00"])
async def test_payloads_in_paths_and_cursors_are_4xx(
    http: httpx.AsyncClient, writer: Member, payload: str
) -> None:
    for path in (
        f"/api/v1/communities/{payload}",
        f"/api/v1/posts/{payload}",
        f"/api/v1/comments/{payload}",
        f"/api/v1/users/{payload}",
    ):
        answer = await http.get(path, headers=writer.auth)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
    cursor = await http.get("/api/v1/posts", params={"cursor": payload})
    assert_problem(cursor, 400)


def _nested(depth: int) -> bytes:
    return b'{"title": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [64, 2_000, 200_000])
@pytest.mark.parametrize(
    "call",
    [
        ("POST", "/api/v1/auth/register", False),
        ("POST", "/api/v1/communities", True),
        ("PATCH", "/api/v1/communities/python", True),
        ("PUT", "/api/v1/posts/x/vote", True),
    ],
    ids=lambda call: f"{call[0]} {call[1]}",
)
async def test_deeply_nested_bodies_are_a_4xx(
    http: httpx.AsyncClient, writer: Member, call: tuple[str, str, bool], depth: int
) -> None:
    method, path, signed_in = call
    headers = {"Content-Type": "application/json", **(writer.auth if signed_in else {})}
    answer = await http.request(method, path, content=_nested(depth), headers=headers)
    assert answer.status_code in (400, 404, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# (spelling, status of registering it beside `<tag>_mallory`, whether it signs in as her)
LOOK_ALIKES: dict[str, tuple[str, int, bool]] = {
    "upper case": ("{tag}_MALLORY", 409, True),
    "mixed case": ("{tag}_MaLLoRy", 409, True),
    "fullwidth": ("{tag}_" + _fullwidth("mallory"), 409, True),
    "digit one for l": ("{tag}_ma11ory", 409, False),
    "digit zero for o": ("{tag}_mall0ry", 409, False),
    "rn for m": ("{tag}_rnallory", 409, False),
    "cyrillic a": ("{tag}_m\u0430llory", 422, False),
    "greek omicron": ("{tag}_mall\u03bfry", 422, False),
    "zero width space": ("{tag}_mal\u200blory", 422, False),
    "combining accent": ("{tag}_mallory\u0301", 422, False),
}


@pytest.mark.parametrize("case", list(LOOK_ALIKES))
async def test_look_alike_usernames_cannot_register(http: httpx.AsyncClient, case: str) -> None:
    tag = f"l{uuid.uuid4().hex[:6]}"
    created = await http.post(
        "/api/v1/auth/register",
        json={"username": f"{tag}_mallory", "email": f"{tag}@example.com", "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    template, status, same_account = LOOK_ALIKES[case]
    spelling = template.format(tag=tag)
    attempt = await http.post(
        "/api/v1/auth/register",
        json={"username": spelling, "email": f"{tag}.twin@example.com", "password": PASSWORD},
    )
    body: dict[str, Any] = assert_problem(attempt, status)
    assert [error["field"] for error in body["errors"]] == ["username"], body
    # Only spellings that are the same name reach her account; imitations reach nobody.
    login = await http.post("/api/v1/auth/login", json={"username": spelling, "password": PASSWORD})
    if same_account:
        assert login.status_code == 200, login.text
    else:
        assert login.status_code in (401, 422), login.text
