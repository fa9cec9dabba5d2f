"""The rules of voting, without I/O: tally deltas, who may vote, request checks."""

from __future__ import annotations

import uuid

import pytest

from common.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.votes import domain
from services.votes.domain import Tally, TallyDelta, Target, TargetType, VoteRequest

# previous -> new: (upvotes, downvotes, score) change.
TRANSITIONS = {
    (-1, -1): (0, 0, 0),
    (-1, 0): (0, -1, 1),
    (-1, 1): (1, -1, 2),
    (0, -1): (0, 1, -1),
    (0, 0): (0, 0, 0),
    (0, 1): (1, 0, 1),
    (1, -1): (-1, 1, -2),
    (1, 0): (-1, 0, -1),
    (1, 1): (0, 0, 0),
}


@pytest.mark.parametrize(("previous", "new"), sorted(TRANSITIONS))
def test_tally_delta_for_every_transition(previous: int, new: int) -> None:
    delta = domain.tally_delta(previous, new)
    assert (delta.upvotes, delta.downvotes, delta.score) == TRANSITIONS[(previous, new)]
    assert delta.is_zero == (previous == new)


def test_changing_up_to_down_moves_the_score_by_two() -> None:
    assert domain.tally_delta(1, -1).score == -2
    assert domain.tally_delta(-1, 1).score == 2


@pytest.mark.parametrize("path", [[1, -1, 0, -1, 1, 1, 0], [-1, -1, 1, 0, 0, 1, -1]])
def test_deltas_along_any_path_sum_to_the_final_vote(path: list[int]) -> None:
    upvotes = downvotes = 0
    previous = 0
    for direction in path:
        delta = domain.tally_delta(previous, direction)
        upvotes += delta.upvotes
        downvotes += delta.downvotes
        previous = direction
    assert (upvotes, downvotes) == (int(previous == 1), int(previous == -1))


@pytest.mark.parametrize(("previous", "new"), [(2, 0), (0, -2), (5, 5)])
def test_tally_delta_refuses_directions_outside_minus_one_to_one(previous: int, new: int) -> None:
    with pytest.raises(InvalidArgument):
        domain.tally_delta(previous, new)


def test_tally_score_is_upvotes_minus_downvotes() -> None:
    assert Tally(upvotes=7, downvotes=3, version=4).score == 4
    assert Tally().score == 0
    assert TallyDelta(upvotes=-1, downvotes=1).score == -2


@pytest.mark.parametrize("direction", [-1, 0, 1])
def test_directions_accepted(direction: int) -> None:
    assert domain.parse_direction(direction) == direction


@pytest.mark.parametrize("direction", [-2, 2, 100])
def test_other_directions_are_invalid(direction: int) -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.parse_direction(direction)
    assert error.value.field_errors[0].field == "direction"


def test_target_types() -> None:
    assert domain.parse_target_type(1) is TargetType.POST
    assert domain.parse_target_type(2) is TargetType.COMMENT
    for value in (0, 3):
        with pytest.raises(InvalidArgument) as error:
            domain.parse_target_type(value)
        assert error.value.field_errors[0].field == "target_type"


def test_idempotency_keys() -> None:
    assert domain.parse_idempotency_key("") is None
    assert domain.parse_idempotency_key("a" * 255) == "a" * 255
    assert domain.parse_idempotency_key("vote 1: ~!@#") == "vote 1: ~!@#"
    for bad in ("a" * 256, "café", "tab\there", "new\nline", "\x7f"):
        with pytest.raises(InvalidArgument) as error:
            domain.parse_idempotency_key(bad)
        assert error.value.field_errors[0].field == "idempotency_key"


def test_target_id_batches_drop_malformed_and_repeated_ids_and_keep_order() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert domain.parse_target_ids([str(b), "nope", str(a), str(b).upper()]) == [b, a]
    assert domain.parse_target_ids([]) == []
    assert len(domain.parse_target_ids([str(uuid.uuid4()) for _ in range(100)])) == 100
    with pytest.raises(InvalidArgument) as error:
        domain.parse_target_ids([str(uuid.uuid4()) for _ in range(101)])
    assert error.value.field_errors[0].field == "target_ids"


def _target(**changes: object) -> Target:
    fields: dict[str, object] = {
        "type": TargetType.POST,
        "id": uuid.uuid4(),
        "community_id": str(uuid.uuid4()),
        "author_id": str(uuid.uuid4()),
        "deleted": False,
        "removed": False,
    }
    fields.update(changes)
    return Target(**fields)  # type: ignore[arg-type]


def test_an_open_target_of_someone_else_takes_votes() -> None:
    domain.check_target_open(uuid.uuid4(), _target())
    domain.check_not_banned(False)


@pytest.mark.parametrize("state", ["deleted", "removed"])
def test_deleted_or_removed_targets_take_no_votes(state: str) -> None:
    with pytest.raises(FailedPrecondition, match=state):
        domain.check_target_open(uuid.uuid4(), _target(**{state: True}))


def test_authors_cannot_vote_on_their_own_targets() -> None:
    author = uuid.uuid4()
    for kind in TargetType:
        with pytest.raises(PermissionDenied, match=f"your own {kind.noun}"):
            domain.check_target_open(author, _target(type=kind, author_id=str(author)))


def test_banned_voters_are_refused() -> None:
    with pytest.raises(PermissionDenied, match="banned"):
        domain.check_not_banned(True)


def test_a_reused_key_must_name_the_same_request() -> None:
    request = VoteRequest(uuid.uuid4(), TargetType.POST, uuid.uuid4(), 1)
    domain.check_same_request(request, VoteRequest(*_fields(request)))
    for other in (
        VoteRequest(request.voter_id, TargetType.POST, request.target_id, -1),
        VoteRequest(request.voter_id, TargetType.POST, uuid.uuid4(), 1),
        VoteRequest(request.voter_id, TargetType.COMMENT, request.target_id, 1),
    ):
        with pytest.raises(FailedPrecondition, match="idempotency key"):
            domain.check_same_request(request, other)


def _fields(request: VoteRequest) -> tuple[uuid.UUID, TargetType, uuid.UUID, int]:
    return request.voter_id, request.target_type, request.target_id, request.direction
