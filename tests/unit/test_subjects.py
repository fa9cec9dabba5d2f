"""NATS subjects: matching, which consumers apply themselves, the one filter a
consumer of several subjects gets (servers before 2.10 ignore a list of filter
subjects), and the subject each event is published on."""

from __future__ import annotations

import pytest
from agora.events.v1 import events_pb2

from common.consumer import covering_subject, subject_matches
from common.events import LEGACY_VOTE_CAST_SUBJECT, SUBJECTS, new_event, subject_of


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


@pytest.mark.parametrize(
    ("subjects", "expected"),
    [
        (["a.posts.post.created.v1"], "a.posts.post.created.v1"),
        (["a.posts.post.created.v1", "a.posts.post.deleted.v1"], "a.posts.post.*.v1"),
        (["a.votes.post_vote.cast.v1", "a.votes.vote.cast.v1"], "a.votes.*.cast.v1"),
        (["a.x.b.v1", "a.y.c.v1"], "a.*.*.v1"),
        (["a.posts.>", "a.comments.comment.created.v1"], "a.>"),
        (["a.b.>", "a.b.c.d"], "a.b.>"),
        (["a.b", "a.b.c"], "a.>"),
    ],
)
def test_one_filter_covers_every_subject(subjects: list[str], expected: str) -> None:
    covering = covering_subject(subjects)
    assert covering == expected
    # It really covers them (a pattern in subjects is covered by what covers its matches).
    for subject in subjects:
        concrete = subject.replace(">", "z").replace("*", "z")
        assert subject_matches(covering, concrete)


def _vote(target_type: events_pb2.VoteTargetType.ValueType) -> events_pb2.Event:
    return new_event("votes", "u", vote_cast=events_pb2.VoteCast(target_type=target_type))


def test_votes_travel_on_a_subject_per_target_type() -> None:
    on_post = subject_of(_vote(events_pb2.VOTE_TARGET_TYPE_POST), "p.")
    on_comment = subject_of(_vote(events_pb2.VOTE_TARGET_TYPE_COMMENT), "p.")
    assert (on_post, on_comment) == ("p.votes.post_vote.cast.v1", "p.votes.comment_vote.cast.v1")
    # The vote_cast filter takes both, and the subject every vote had before the split.
    for subject in (on_post, on_comment, "p." + LEGACY_VOTE_CAST_SUBJECT):
        assert subject_matches("p." + SUBJECTS["vote_cast"], subject)
    with pytest.raises(ValueError, match="target type"):
        subject_of(_vote(events_pb2.VOTE_TARGET_TYPE_UNSPECIFIED), "p.")
