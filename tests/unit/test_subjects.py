"""NATS subject matching, which consumers apply themselves (servers before
2.10 ignore a consumer's list of filter subjects)."""

from __future__ import annotations

import pytest

from common.consumer import subject_matches


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.posts.post.created.v1", "a.posts.post.created.v1", True),
        ("a.posts.post.created.v1", "a.posts.post.deleted.v1", False),
        ("a.posts.>", "a.posts.post.created.v1", True),
        ("a.posts.>", "a.posts", False),
        ("a.*.post.created.v1", "a.posts.post.created.v1", True),
        ("a.*.post.created.v1", "a.posts.x.post.created.v1", False),
        ("a.votes.vote.cast.v1", "b.votes.vote.cast.v1", False),
        ("a.votes.vote.cast.v1", "a.votes.vote.cast.v1.extra", False),
    ],
)
def test_subject_matches(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected
