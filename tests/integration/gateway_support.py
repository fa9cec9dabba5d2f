"""Helpers of the gateway's discussion tests (communities, posts, comments, votes, search).

Everything goes through the public HTTP API of the test run's stack, as a
client would: users register and sign in over HTTP, in parallel (bcrypt makes
each registration cost about 0.3 s), and modules share one set of users.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.topology import SERVICES
from tools.stack import Stack

PASSWORD = "correct horse battery"
PROBLEM_JSON = "application/problem+json"
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
DISCUSSION_SERVICES = ("communities", "posts", "comments", "votes")
POST_FIELDS = {
    "id",
    "community",
    "author",
    "title",
    "body",
    "url",
    "score",
    "upvotes",
    "downvotes",
    "comment_count",
    "created_at",
    "edited_at",
    "locked",
    "removed",
    "pinned",
    "deleted",
}
COMMENT_FIELDS = {
    "id",
    "post_id",
    "parent_id",
    "author",
    "body",
    "score",
    "upvotes",
    "downvotes",
    "depth",
    "created_at",
    "edited_at",
    "deleted",
    "removed",
    "replies",
    "more_replies",
}
COMMUNITY_FIELDS = {
    "id",
    "name",
    "title",
    "description",
    "rules",
    "created_at",
    "member_count",
    "post_count",
    "moderators",
}

T = TypeVar("T")


def needs(*names: str) -> pytest.MarkDecorator:
    """Skip unless these services are part of the topology the stack runs."""
    running = {spec.name for spec in SERVICES}
    missing = sorted(set(names) - running)
    return pytest.mark.skipif(bool(missing), reason=f"not in common.topology yet: {missing}")


def unique(prefix: str) -> str:
    """A fresh name that fits both usernames (<= 20) and community names (<= 21)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Member:
    username: str
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register(http: httpx.AsyncClient, prefix: str = "u") -> Member:
    name = unique(prefix)
    created = await http.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name.lower()}@example.com", "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    login = await http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return Member(name, created.json()["id"], login.json()["access_token"])


async def register_many(http: httpx.AsyncClient, count: int, prefix: str = "u") -> list[Member]:
    return list(await asyncio.gather(*(register(http, prefix) for _ in range(count))))


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status, in body and headers alike."""
    assert response.status_code == status, (response.request.method, response.url, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str), member
        assert body[member], member
    assert response.headers["x-request-id"]
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors", ())}


class Api:
    """Short-hands for the calls tests make over and over; each asserts its success."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def community(self, owner: Member, prefix: str = "c", **fields: Any) -> dict[str, Any]:
        body = {"name": unique(prefix), "title": "A community", "description": "", **fields}
        answer = await self.http.post("/api/v1/communities", json=body, headers=owner.auth)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def join(self, member: Member, community: str) -> None:
        answer = await self.http.put(
            f"/api/v1/communities/{community}/membership", headers=member.auth
        )
        assert answer.status_code == 204, answer.text

    async def post(
        self, author: Member, community: str, title: str = "A post", **fields: Any
    ) -> dict[str, Any]:
        answer = await self.http.post(
            f"/api/v1/communities/{community}/posts",
            json={"title": title, **fields},
            headers=author.auth,
        )
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def comment(
        self, author: Member, post_id: str, body: str = "A comment", parent_id: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"body": body}
        if parent_id is not None:
            payload["parent_id"] = parent_id
        answer = await self.http.post(
            f"/api/v1/posts/{post_id}/comments", json=payload, headers=author.auth
        )
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def vote(
        self, voter: Member, kind: str, target_id: str, direction: int
    ) -> dict[str, Any]:
        answer = await self.http.put(
            f"/api/v1/{kind}/{target_id}/vote", json={"direction": direction}, headers=voter.auth
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def get(self, path: str, member: Member | None = None, **params: Any) -> Any:
        answer = await self.http.get(path, params=params, headers=member.auth if member else {})
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def all_pages(
        self, path: str, member: Member | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = dict(params) | ({"cursor": cursor} if cursor else {})
            page = await self.get(path, member, **query)
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items


async def gateway_calls(stack: Stack) -> dict[tuple[str, str], float]:
    """(service, gRPC method) -> calls the gateway has made, from its own /metrics.

    The service is its topology name ("posts" for agora.posts.v1.PostsService).
    """
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{stack.gateway_url}/metrics")).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "agora_grpc_client_handled":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                service = sample.labels["grpc_service"].split(".")[1]
                key = (service, sample.labels["grpc_method"])
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def ids(items: Iterable[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]
