"""The interceptor's request guard finds NUL characters wherever they hide."""

from __future__ import annotations

import pytest
from agora.auth.v1 import auth_pb2
from agora.comments.v1 import comments_pb2
from agora.votes.v1 import votes_pb2

from common.grpc_interceptors import field_with_nul


@pytest.mark.parametrize(
    ("message", "path"),
    [
        (auth_pb2.LoginRequest(login="ab\x00cd", password="x"), "login"),
        (auth_pb2.BatchGetUsersRequest(ids=["ok", "b\x00d"]), "ids"),
        (
            comments_pb2.ListCommentTreeResponse(
                comments=[comments_pb2.Comment(replies=[comments_pb2.Comment(body="\x00")])]
            ),
            "comments.replies.body",
        ),
        (votes_pb2.GetMyVotesResponse(votes={"a\x00": 1}), "votes"),
    ],
)
def test_nul_is_found(message: object, path: str) -> None:
    assert field_with_nul(message) == path  # type: ignore[arg-type]


def test_clean_messages_pass() -> None:
    assert field_with_nul(auth_pb2.LoginRequest(login="dana", password="päss wörd ✓")) is None
    assert field_with_nul(votes_pb2.GetMyVotesResponse(votes={"a": 1})) is None
