"""Traces and logs of the real stack: one trace across processes and NATS, logs that carry it.

The session stack exports every process's spans to the test's OTLP receiver
(tests/otlp_receiver.py, wired in conftest). Each test starts a trace of its
own by sending a `traceparent` with its request, so it reads exactly the
spans of what it did, as an SRE would in Jaeger.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.gateway_support import Api, register
from tests.integration.grpc_support import eventually
from tests.otlp_receiver import (
    OtlpReceiver,
    ReceivedSpan,
    new_trace_id,
    settled_spans,
    traceparent,
)
from tools.stack import Stack


def _one(spans: list[ReceivedSpan], **wanted: Any) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in wanted.items())]
    assert len(found) == 1, (wanted, [(s.service, s.kind, s.name) for s in spans])
    return found[0]


def _is_sql(span: ReceivedSpan) -> bool:
    system = span.attributes.get("db.system") or span.attributes.get("db.system.name")
    return span.kind == "CLIENT" and system == "postgresql"


def _descends(spans: list[ReceivedSpan], span: ReceivedSpan, ancestor: ReceivedSpan) -> bool:
    by_id = {s.span_id: s for s in spans}
    current: ReceivedSpan | None = span
    while current is not None:
        if current.parent_id == ancestor.span_id:
            return True
        current = by_id.get(current.parent_id)
    return False


def _has_request(spans: list[ReceivedSpan]) -> bool:
    return any(s.service == "agora-gateway" and s.kind == "SERVER" for s in spans)


def _job_of(post_id: str) -> Callable[[ReceivedSpan], bool]:
    def matches(span: ReceivedSpan) -> bool:
        return span.name == "summary job" and span.attributes.get("agora.post_id") == post_id

    return matches


async def test_one_trace_runs_from_a_request_through_services_and_nats_to_the_summary(
    http: httpx.AsyncClient, stack: Stack, otlp_receiver: OtlpReceiver
) -> None:
    api = Api(http)
    author = await register(http, "trace")
    community = await api.community(author, "trace")
    trace_id = new_trace_id()
    otlp_receiver.watch(trace_id)

    answer = await http.post(
        f"/api/v1/communities/{community['name']}/posts",
        json={"title": "A traced post", "body": "Every hop of this post is in one trace."},
        headers={**author.auth, "traceparent": traceparent(trace_id)},
    )
    assert answer.status_code == 201, answer.text
    post_id = answer.json()["id"]

    def complete(spans: list[ReceivedSpan]) -> bool:
        # Each process exports on its own: wait for the gateway's and the summarizer's spans.
        return (
            _has_request(spans)
            and any(map(_job_of(post_id), spans))
            and any(
                s.kind == "PRODUCER" and s.name.endswith("summarizer.summary.ready.v1")
                for s in spans
            )
        )

    spans = await settled_spans(otlp_receiver, [trace_id], complete)
    prefix = stack.env["AGORA_NATS_SUBJECT_PREFIX"]

    # The gateway's request, its call to posts, and posts' handling with its SQL.
    request = _one(spans, service="agora-gateway", kind="SERVER")
    assert request.attributes["http.route"] == "/api/v1/communities/{name}/posts"
    assert request.attributes["agora.request_id"] == answer.headers["x-request-id"]
    call = _one(
        spans,
        service="agora-gateway",
        kind="CLIENT",
        name="/agora.posts.v1.PostsService/CreatePost",
    )
    create = _one(
        spans, service="agora-posts", kind="SERVER", name="/agora.posts.v1.PostsService/CreatePost"
    )
    assert create.parent_id == call.span_id
    assert _descends(spans, call, request)
    assert create.attributes["rpc.grpc.status_code"] == 0
    assert any(_is_sql(s) and _descends(spans, s, create) for s in spans)

    # The event: published by posts' relay, handled by the summarizer's consumer.
    publish = _one(spans, kind="PRODUCER", name=f"publish {prefix}posts.post.created.v1")
    assert publish.service == "agora-posts"
    assert publish.parent_id == create.span_id
    consume = _one(
        spans,
        service="agora-summarizer",
        kind="CONSUMER",
        name=f"process {prefix}posts.post.created.v1",
    )
    assert consume.parent_id == publish.span_id
    assert consume.attributes["messaging.consumer.group.name"] == "summarizer-posts"
    assert any(_is_sql(s) and s.parent_id == consume.span_id for s in spans)

    # The job that event queued (tried again, in the same trace, if an attempt failed):
    # it reads the thread, asks the model and publishes summary_ready.
    ready = _one(spans, kind="PRODUCER", name=f"publish {prefix}summarizer.summary.ready.v1")
    (job,) = [s for s in filter(_job_of(post_id), spans) if _descends(spans, ready, s)]
    assert job.service == "agora-summarizer"
    assert job.parent_id == consume.span_id
    reads = [
        s
        for s in spans
        if s.service == "agora-posts"
        and s.kind == "SERVER"
        and s.name == "/agora.posts.v1.PostsService/GetPost"
    ]
    assert any(_descends(spans, s, job) for s in reads), "the job did not read the post"
    model_calls = [
        s
        for s in spans
        if s.kind == "CLIENT"
        and ("http.request.method" in s.attributes or "http.method" in s.attributes)
    ]
    assert any(_descends(spans, s, job) for s in model_calls), "no HTTP call to the model"
    assert all(s.status != "ERROR" for s in (request, create, publish, consume, job, ready))

    # One tree: every span hangs from the request, which hangs from the test's traceparent.
    ids = {s.span_id for s in spans}
    assert [s for s in spans if s.parent_id not in ids] == [request]
    assert {s.trace_id for s in spans} == {trace_id}


async def test_a_requested_summary_continues_the_trace_of_the_request(
    http: httpx.AsyncClient, otlp_receiver: OtlpReceiver
) -> None:
    api = Api(http)
    author = await register(http, "trace")
    community = await api.community(author, "trace")
    post = await api.post(author, community["name"])
    trace_id = new_trace_id()
    otlp_receiver.watch(trace_id)

    answer = await http.post(
        f"/api/v1/posts/{post['id']}/summary",
        headers={**author.auth, "traceparent": traceparent(trace_id)},
    )
    assert answer.status_code == 202, answer.text

    def complete(spans: list[ReceivedSpan]) -> bool:
        return _has_request(spans) and any(map(_job_of(post["id"]), spans))

    spans = await settled_spans(otlp_receiver, [trace_id], complete)
    request = _one(spans, service="agora-gateway", kind="SERVER")
    jobs = list(filter(_job_of(post["id"]), spans))
    assert all(job.attributes["agora.summary_job.forced"] is True for job in jobs)
    assert all(_descends(spans, job, request) for job in jobs)


def _log_entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(process, JSON entry) of every JSON line the stack printed so far."""
    entries = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        process, _, line = raw.partition("| ")
        if line.startswith("{"):
            try:
                entries.append((process.strip(), json.loads(line)))
            except json.JSONDecodeError:
                continue
    return entries


@pytest.mark.parametrize("sampled", [True, False], ids=["sampled", "unsampled"])
async def test_log_lines_of_a_request_carry_its_request_trace_and_span_ids(
    http: httpx.AsyncClient, stack_log: Path, sampled: bool
) -> None:
    """Recorded or not (the session samples only traces tests start), a request has its ids."""
    trace_id = new_trace_id()
    request_id = f"trace-logs-{uuid.uuid4().hex}"
    headers = {"x-request-id": request_id}
    if sampled:
        headers["traceparent"] = traceparent(trace_id)
    answer = await http.post(
        "/api/v1/auth/login",
        json={"username": f"nobody_{uuid.uuid4().hex[:8]}", "password": "not the password"},
        headers=headers,
    )
    assert answer.status_code == 401
    assert answer.headers["x-request-id"] == request_id

    async def lines() -> dict[str, dict[str, Any]] | None:
        found = {
            process: entry
            for process, entry in _log_entries(stack_log)
            if entry.get("request_id") == request_id
        }
        return found if {"gateway", "auth"} <= set(found) else None

    found = await eventually(lines)
    if not sampled:
        trace_id = found["gateway"]["trace_id"]  # the gateway started the trace
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
        assert trace_id != "0" * 32
    for process in ("gateway", "auth"):
        entry = found[process]
        assert entry["trace_id"] == trace_id, (process, entry)
        assert re.fullmatch(r"[0-9a-f]{16}", entry["span_id"]), (process, entry)
        assert entry["span_id"] != "0" * 16, (process, entry)
    assert found["gateway"]["span_id"] != found["auth"]["span_id"]
    assert found["gateway"]["service"] == "gateway"
    assert found["auth"]["grpc_method"] == "/agora.auth.v1.AuthService/Login"
