"""The gateway's discussion code without servers: the cursor rule of the problem table,
payload builders against the documented schemas, batching and the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import grpc
import orjson
import pytest
from agora.comments.v1 import comments_pb2
from agora.communities.v1 import communities_pb2
from agora.posts.v1 import posts_pb2
from agora.votes.v1 import votes_pb2
from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from common.errors import FieldError
from gateway import clients as clients_module
from gateway.app import create_app
from gateway.clients import BATCH_MAX, Clients, _batched
from gateway.concurrency import first_error, task_group
from gateway.hydrate import comment_payloads, community_payloads, post_payloads
from gateway.problems import (
    STATUS_DETAILS_KEY,
    VALIDATION_TYPE,
    http_status_for,
    rpc_error_problem,
    status_problem,
)
from gateway.schemas.comments import Comment, CommentPage, comment_payload
from gateway.schemas.communities import Community, community_payload
from gateway.schemas.posts import Post, PostPage, post_payload
from gateway.schemas.votes import VoteRequest, VoteResult, vote_payload
from gateway.settings import GatewaySettings

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


CREATED = _stamp(datetime(2025, 1, 31, 12, 0, 0, 500_000, tzinfo=UTC))
EDITED = _stamp(datetime(2025, 2, 1, 8, 30, tzinfo=UTC))


# The one refinement of the status table: tampered cursors are 400 ----------------------------


def test_a_cursor_violation_alone_is_400() -> None:
    assert http_status_for(INVALID, [FieldError("cursor", "invalid cursor")]) == 400
    response = status_problem(
        INVALID, "cursor: invalid cursor", field_errors=[FieldError("cursor", "invalid cursor")]
    )
    body = orjson.loads(response.body)
    assert response.status_code == 400
    assert body["status"] == 400
    assert body["errors"] == [{"field": "cursor", "message": "invalid cursor"}]


@pytest.mark.parametrize(
    "fields",
    [[], ["limit"], ["parent_id"], ["cursor", "limit"], ["q"]],
)
def test_other_invalid_arguments_stay_422(fields: list[str]) -> None:
    errors = [FieldError(field, "bad") for field in fields]
    assert http_status_for(INVALID, errors) == 422
    response = status_problem(INVALID, "bad", field_errors=errors)
    assert response.status_code == 422
    if errors:
        assert orjson.loads(response.body)["type"] == VALIDATION_TYPE


def test_other_codes_ignore_the_cursor_rule() -> None:
    cursor = [FieldError("cursor", "x")]
    assert http_status_for(grpc.StatusCode.NOT_FOUND, cursor) == 404
    assert http_status_for(grpc.StatusCode.FAILED_PRECONDITION, cursor) == 409


def test_an_upstream_cursor_violation_is_400() -> None:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="cursor", description="invalid")
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(bad_request)
    status = status_pb2.Status(code=INVALID.value[0], message="cursor: invalid", details=[packed])
    trailing = grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString()))
    error = grpc.aio.AioRpcError(INVALID, grpc.aio.Metadata(), trailing, "cursor: invalid", None)
    response = rpc_error_problem(error, instance="/api/v1/posts")
    assert response.status_code == 400
    assert orjson.loads(response.body)["errors"] == [{"field": "cursor", "message": "invalid"}]


# Payloads match the documented schemas ------------------------------------------------------


def _post(**fields: Any) -> posts_pb2.Post:
    values: dict[str, Any] = {
        "id": "p1",
        "community_id": "c1",
        "author_id": "u1",
        "title": "Hello",
        "body": "Body",
        "score": 3,
        "upvotes": 4,
        "downvotes": 1,
        "comment_count": 2,
        "created_at": CREATED,
        **fields,
    }
    return posts_pb2.Post(**values)


def test_post_payload() -> None:
    names, communities = {"u1": "alice"}, {"c1": "python"}
    signed_in = post_payload(
        _post(edited_at=EDITED, url="https://x.example"),
        usernames=names,
        community_names=communities,
        my_votes={"p1": -1},
    )
    Post.model_validate(signed_in)
    assert signed_in["community"] == "python"
    assert signed_in["author"] == "alice"
    assert signed_in["created_at"] == "2025-01-31T12:00:00.500Z"
    assert signed_in["edited_at"] == "2025-02-01T08:30:00Z"
    assert signed_in["url"] == "https://x.example"
    assert signed_in["my_vote"] == -1

    anonymous = post_payload(
        _post(author_id="", deleted=True),
        usernames=names,
        community_names=communities,
        my_votes=None,
    )
    Post.model_validate(anonymous)
    assert "my_vote" not in anonymous
    assert anonymous["author"] == "[deleted]"
    assert (anonymous["edited_at"], anonymous["url"]) == (None, None)
    no_vote = post_payload(_post(), usernames={}, community_names=communities, my_votes={})
    assert (no_vote["my_vote"], no_vote["author"]) == (0, "[deleted]")
    PostPage.model_validate({"items": [signed_in, anonymous], "next_cursor": None})


def _comment(comment_id: str, depth: int = 0, **fields: Any) -> comments_pb2.Comment:
    values: dict[str, Any] = {
        "id": comment_id,
        "post_id": "p1",
        "community_id": "c1",
        "author_id": f"author-{comment_id}",
        "body": f"body {comment_id}",
        "depth": depth,
        "created_at": CREATED,
        **fields,
    }
    return comments_pb2.Comment(**values)


def _tree() -> comments_pb2.Comment:
    root = _comment("a", more_replies=1)
    child = root.replies.add()
    child.CopyFrom(_comment("b", 1, parent_id="a", edited_at=EDITED))
    grandchild = child.replies.add()
    grandchild.CopyFrom(_comment("c", 2, parent_id="b", author_id="", deleted=True))
    return root


def test_comment_payload_is_a_tree() -> None:
    names = {"author-a": "ann", "author-b": "ben"}
    payload = comment_payload(_tree(), usernames=names, my_votes={"b": 1})
    Comment.model_validate(payload)
    CommentPage.model_validate({"items": [payload], "next_cursor": "abc"})
    assert (payload["parent_id"], payload["author"], payload["my_vote"]) == (None, "ann", 0)
    assert payload["more_replies"] == 1
    child = payload["replies"][0]
    assert (child["parent_id"], child["author"], child["my_vote"]) == ("a", "ben", 1)
    assert child["edited_at"] == "2025-02-01T08:30:00Z"
    grandchild = child["replies"][0]
    assert (grandchild["author"], grandchild["deleted"], grandchild["replies"]) == (
        "[deleted]",
        True,
        [],
    )
    anonymous = comment_payload(_tree(), usernames=names, my_votes=None)
    assert "my_vote" not in anonymous
    assert "my_vote" not in anonymous["replies"][0]["replies"][0]


def test_a_flat_comment_reports_its_direct_replies() -> None:
    flat = comment_payload(_comment("a", child_count=3), usernames={}, my_votes={}, flat=True)
    assert (flat["replies"], flat["more_replies"]) == ([], 3)
    tree = comment_payload(_comment("a", child_count=3), usernames={}, my_votes={})
    assert tree["more_replies"] == 0


def test_community_payload() -> None:
    community = communities_pb2.Community(
        id="c1",
        name="python",
        title="Python",
        description="d",
        rules=[communities_pb2.CommunityRule(title="Be kind")],
        created_at=CREATED,
        member_count=5,
        post_count=2,
        moderator_ids=["u1", "gone", "u2"],
        is_member=True,
    )
    payload = community_payload(community, {"u1": "alice", "u2": "bob"}, signed_in=True)
    Community.model_validate(payload)
    assert payload["moderators"] == ["alice", "bob"]
    assert payload["rules"] == [{"title": "Be kind", "description": ""}]
    assert payload["is_member"] is True
    assert "is_member" not in community_payload(community, {}, signed_in=False)


def test_vote_payload_and_strict_directions() -> None:
    answer = votes_pb2.CastVoteResponse(
        tally=votes_pb2.Tally(target_id="p1", score=-2, upvotes=1, downvotes=3), my_vote=-1
    )
    payload = vote_payload(answer)
    VoteResult.model_validate(payload)
    assert payload == {"score": -2, "upvotes": 1, "downvotes": 3, "my_vote": -1}
    for direction in (-1, 0, 1):
        assert VoteRequest.model_validate_json(f'{{"direction": {direction}}}').direction == (
            direction
        )
    for raw in ('{"direction": true}', '{"direction": 1.0}', '{"direction": "1"}', "{}"):
        with pytest.raises(ValueError, match="direction"):
            VoteRequest.model_validate_json(raw)


# Batching ---------------------------------------------------------------------------------------


async def test_batches_are_cut_at_the_services_limit() -> None:
    asked: list[list[str]] = []

    async def fetch(ids: list[str]) -> list[str]:
        asked.append(ids)
        await asyncio.sleep(0)
        return [f"found {i}" for i in ids]

    values = [str(i) for i in range(2 * BATCH_MAX + 50)]
    found = await _batched(values, fetch)
    assert found == [f"found {i}" for i in values]
    assert [len(chunk) for chunk in asked] == [BATCH_MAX, BATCH_MAX, 50]
    asked.clear()
    assert await _batched([], fetch) == []
    assert asked == []


class _Recorder:
    """Stands in for every upstream client and records the batch calls made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def usernames(self, ids: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(i for i in ids if i))
        if wanted:
            self.calls.append(("usernames", wanted))
        return {i: f"name-{i}" for i in wanted}

    async def names(self, ids: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(ids))
        self.calls.append(("names", wanted))
        return {i: f"community-{i}" for i in wanted}

    async def my_votes(self, target_type: int, ids: Iterable[str]) -> dict[str, int]:
        self.calls.append((f"my_votes:{target_type}", list(ids)))
        return {}


def _clients(recorder: _Recorder) -> Clients:
    fake: Any = recorder
    return Clients(auth=fake, communities=fake, posts=fake, comments=fake, votes=fake)


async def test_a_page_of_posts_needs_one_call_per_lookup() -> None:
    recorder = _Recorder()
    posts = [_post(id=f"p{i}", author_id=f"u{i % 3}", community_id=f"c{i % 2}") for i in range(25)]
    payloads = await post_payloads(posts, _clients(recorder), signed_in=True)
    assert len(payloads) == 25
    assert sorted(name for name, _ in recorder.calls) == [
        "my_votes:1",
        "names",
        "usernames",
    ]
    assert dict(recorder.calls)["usernames"] == ["u0", "u1", "u2"]
    assert dict(recorder.calls)["names"] == ["c0", "c1"]

    recorder.calls.clear()
    await post_payloads(
        posts, _clients(recorder), signed_in=False, community_names={"c0": "a", "c1": "b"}
    )
    assert [name for name, _ in recorder.calls] == ["usernames"]
    recorder.calls.clear()
    assert await post_payloads([], _clients(recorder), signed_in=True) == []
    assert recorder.calls == []


async def test_a_comment_tree_needs_one_call_per_lookup() -> None:
    recorder = _Recorder()
    trees = [_tree(), _comment("z")]
    payloads = await comment_payloads(trees, _clients(recorder), signed_in=True)
    assert [p["id"] for p in payloads] == ["a", "z"]
    calls = dict(recorder.calls)
    assert set(calls) == {"usernames", "my_votes:2"}
    assert calls["my_votes:2"] == ["a", "b", "c", "z"]
    assert calls["usernames"] == ["author-a", "author-b", "author-z"]


async def test_communities_ask_for_every_moderator_at_once() -> None:
    recorder = _Recorder()
    communities = [
        communities_pb2.Community(id=f"c{i}", name=f"n{i}", moderator_ids=[f"m{i}", "m0"])
        for i in range(3)
    ]
    await community_payloads(communities, _clients(recorder), signed_in=False)
    assert recorder.calls == [("usernames", ["m0", "m1", "m2"])]


async def test_task_group_raises_the_first_error_itself() -> None:
    class Boom(Exception):
        pass

    async def fail() -> None:
        raise Boom

    async def run() -> None:
        async with task_group() as group:
            group.create_task(fail())
            group.create_task(asyncio.sleep(1))

    with pytest.raises(Boom):
        await run()
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [KeyError("k")]), ValueError()])
    assert isinstance(first_error(nested), KeyError)


# OpenAPI ----------------------------------------------------------------------------------------


def test_every_discussion_route_documents_its_answers() -> None:
    document = create_app(GatewaySettings()).openapi()
    for path, operations in document["paths"].items():
        if not path.startswith(
            (
                "/api/v1/communities",
                "/api/v1/posts",
                "/api/v1/comments",
                "/api/v1/feed",
                "/api/v1/search",
            )
        ):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            success = [status for status in responses if int(status) < 400]
            # One success, or "here it is" and "not yet, come back" (summaries).
            assert len(success) == 1 or success == ["200", "202"], (method, path)
            for status in success:
                if status == "204":
                    continue
                schema = responses[status]["content"]["application/json"]["schema"]
                assert "$ref" in schema or "anyOf" in schema, (method, path)
            assert "500" in responses, (method, path)
            assert "503" in responses, (method, path)
            has_input = "requestBody" in operation or any(
                p["in"] != "path" for p in operation.get("parameters", ())
            )
            assert ("422" in responses) == has_input, (method, path)
            if method in ("post", "put", "patch", "delete"):
                assert "401" in responses, (method, path)


def test_upstreams_follow_the_topology() -> None:
    running = {spec.name for spec in clients_module.SERVICES}
    assert {u.name for u in clients_module.UPSTREAMS} == running & {
        u.name for u in clients_module.KNOWN_UPSTREAMS
    }
