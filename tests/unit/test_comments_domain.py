"""The pure rules of comments: paths, depth, input limits, cursors and tree assembly."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from common.contract import COMMENT_MAX_DEPTH
from common.errors import InvalidArgument
from common.ids import uuid7
from services.comments import domain
from services.comments.domain import CommentRecord, CommentSort, TreeNode

POST = uuid.UUID("01900000-0000-7000-8000-000000000001")
COMMUNITY = uuid.UUID("01900000-0000-7000-8000-000000000002")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


# Paths


def test_segments_round_trip_with_a_fixed_width() -> None:
    for sequence in (0, 1, 35, 36, 1295, 1296, 123_456_789, domain.MAX_SEQUENCE):
        segment = domain.encode_segment(sequence)
        assert len(segment) == domain.SEGMENT_WIDTH
        assert domain.decode_segment(segment) == sequence


def test_segments_sort_like_their_numbers() -> None:
    numbers = random.Random(7).sample(range(domain.MAX_SEQUENCE), 2000)
    assert sorted(numbers, key=domain.encode_segment) == sorted(numbers)


@pytest.mark.parametrize("sequence", [-1, domain.MAX_SEQUENCE + 1])
def test_a_sequence_outside_eight_digits_is_refused(sequence: int) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        domain.encode_segment(sequence)


def test_paths_grow_one_segment_a_level() -> None:
    top = domain.child_path(None, 1)
    reply = domain.child_path(top, 2)
    assert (top, reply) == ("00000001", "0000000100000002")
    assert domain.path_depth(top) == 0
    assert domain.path_depth(reply) == 1
    assert domain.is_descendant(reply, top)
    assert not domain.is_descendant(top, top)
    assert not domain.is_descendant(domain.child_path(None, 10), top)


def test_a_subtree_is_exactly_one_byte_ordered_range() -> None:
    rng = random.Random(11)
    paths = [domain.child_path(None, n) for n in range(1, 6)]
    for sequence in range(6, 400):
        parent = rng.choice(paths)
        if domain.path_depth(parent) < COMMENT_MAX_DEPTH:
            paths.append(domain.child_path(parent, sequence))
    for ancestor in rng.sample(paths, 50):
        low, high = domain.subtree_range(ancestor)
        # Python compares str by code point: for ASCII that is Postgres' "C" byte order.
        in_range = {p for p in paths if low < p < high}
        assert in_range == {p for p in paths if domain.is_descendant(p, ancestor)}


def test_depth_rule() -> None:
    assert domain.reply_depth(None) == 0
    assert domain.reply_depth(0) == 1
    assert domain.reply_depth(COMMENT_MAX_DEPTH - 1) == COMMENT_MAX_DEPTH
    with pytest.raises(InvalidArgument) as error:
        domain.reply_depth(COMMENT_MAX_DEPTH)
    assert error.value.field_errors[0].field == "parent_id"
    assert "10 levels" in error.value.field_errors[0].message


# Input


@pytest.mark.parametrize("body", ["", "   ", "\n\t ", "x" * 10_001, "a\x00b"])
def test_bad_bodies_are_refused_on_the_body_field(body: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.validate_body(body)
    assert error.value.field_errors[0].field == "body"


def test_good_bodies_are_kept_as_typed() -> None:
    assert domain.validate_body(" hi ") == " hi "
    assert domain.validate_body("é" * 10_000) == "é" * 10_000


def test_reason_limit() -> None:
    assert domain.validate_reason("  spam ") == "spam"
    with pytest.raises(InvalidArgument) as error:
        domain.validate_reason("x" * 501)
    assert error.value.field_errors[0].field == "reason"


@pytest.mark.parametrize("query", ["", "   ", "q" * 201])
def test_search_query_limits(query: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.validate_search_query(query)
    assert error.value.field_errors[0].field == "q"


def test_page_size_and_depth_defaults_and_bounds() -> None:
    assert domain.page_size(0) == 25
    assert domain.page_size(1) == 1
    assert domain.page_size(100) == 100
    for bad in (-1, 101):
        with pytest.raises(InvalidArgument) as error:
            domain.page_size(bad)
        assert error.value.field_errors[0].field == "limit"
    assert domain.max_depth(0) == 0
    assert domain.max_depth(COMMENT_MAX_DEPTH) == COMMENT_MAX_DEPTH
    assert domain.max_depth(3) == 3
    for bad in (-1, 11):
        with pytest.raises(InvalidArgument) as error:
            domain.max_depth(bad)
        assert error.value.field_errors[0].field == "max_depth"


# Cursors


@pytest.mark.parametrize("sort", list(CommentSort))
def test_cursor_positions_round_trip(sort: CommentSort) -> None:
    comment = _record(best_rank=0.4231, score=-3, controversy_rank=2.5)
    position = domain.cursor_position(comment, sort)
    assert domain.parse_cursor_position(position, sort) == (
        domain.rank_of(comment, sort),
        comment.id,
    )


@pytest.mark.parametrize(
    ("position", "sort"),
    [
        ([], CommentSort.BEST),
        ([1.0], CommentSort.BEST),
        (["x", str(uuid.uuid4())], CommentSort.BEST),
        ([True, str(uuid.uuid4())], CommentSort.TOP),
        ([1.5, str(uuid.uuid4())], CommentSort.TOP),
        ([1.0, "not-a-uuid"], CommentSort.CONTROVERSIAL),
        (["yesterday", str(uuid.uuid4())], CommentSort.NEW),
        (["2025-01-01T00:00:00", str(uuid.uuid4())], CommentSort.NEW),
        ([3, 4], CommentSort.NEW),
    ],
)
def test_cursor_positions_we_never_wrote_are_refused(
    position: list[object], sort: CommentSort
) -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.parse_cursor_position(list(position), sort)
    assert error.value.field_errors[0].field == "cursor"


# Budgets


def test_allocation_gives_everyone_what_they_have_when_it_fits() -> None:
    assert domain.allocate_replies([3, 0, 700, 10], per_root=500, budget=2000) == [3, 0, 500, 10]


def test_allocation_shares_an_exhausted_budget_evenly() -> None:
    limits = domain.allocate_replies([5, 1000, 1000, 1000, 20], per_root=500, budget=1000)
    assert limits[0] == 5
    assert limits[4] == 20
    assert limits[1] == limits[2] == limits[3] == (1000 - 25) // 3
    assert sum(limits) <= 1000


def test_allocation_never_exceeds_the_budget() -> None:
    rng = random.Random(3)
    for _ in range(200):
        bounds = [rng.randrange(0, 900) for _ in range(rng.randrange(1, 30))]
        budget = rng.randrange(0, 3000)
        limits = domain.allocate_replies(bounds, per_root=500, budget=budget)
        assert sum(limits) <= budget
        assert all(0 <= n <= min(b, 500) for n, b in zip(limits, bounds, strict=True))


# Trees


def _record(**overrides: object) -> CommentRecord:
    values: dict[str, object] = {
        "id": uuid7(),
        "post_id": POST,
        "community_id": COMMUNITY,
        "parent_id": None,
        "author_id": uuid.uuid4(),
        "body": "text",
        "path": domain.child_path(None, 1),
        "depth": 0,
        "child_count": 0,
        "descendant_count": 0,
        "score": 0,
        "upvotes": 0,
        "downvotes": 0,
        "best_rank": 0.0,
        "controversy_rank": 0.0,
        "created_at": T0,
        "edited_at": None,
        "deleted": False,
        "removed": False,
    }
    values.update(overrides)
    return CommentRecord(**values)  # type: ignore[arg-type]


class Thread:
    """Comments of one post built the way the service numbers them, with true counters."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.sequence = 0
        self.rows: dict[uuid.UUID, CommentRecord] = {}

    def add(self, parent: CommentRecord | None = None, **overrides: object) -> CommentRecord:
        self.sequence += 1
        up, down = self.rng.randrange(0, 50), self.rng.randrange(0, 50)
        record = _record(
            parent_id=parent.id if parent else None,
            path=domain.child_path(parent.path if parent else None, self.sequence),
            depth=domain.reply_depth(parent.depth if parent else None),
            upvotes=up,
            downvotes=down,
            score=up - down,
            best_rank=self.rng.random(),
            controversy_rank=self.rng.random() * 10,
            created_at=T0 + timedelta(seconds=self.sequence),
            **overrides,
        )
        self.rows[record.id] = record
        return record

    def grow(self, roots: int, replies: int) -> None:
        for _ in range(roots):
            self.add()
        for _ in range(replies):
            candidates = [r for r in self.rows.values() if r.depth < COMMENT_MAX_DEPTH]
            self.add(self.rng.choice(candidates))

    def counted(self) -> dict[uuid.UUID, CommentRecord]:
        """Every row with child_count and descendant_count as the service keeps them."""
        children: dict[uuid.UUID, int] = {}
        descendants: dict[uuid.UUID, int] = {}
        by_path = {r.path: r for r in self.rows.values()}
        for row in self.rows.values():
            if row.parent_id:
                children[row.parent_id] = children.get(row.parent_id, 0) + 1
            for end in range(domain.SEGMENT_WIDTH, len(row.path), domain.SEGMENT_WIDTH):
                ancestor = by_path[row.path[:end]]
                descendants[ancestor.id] = descendants.get(ancestor.id, 0) + 1
        return {
            i: dataclasses.replace(
                r, child_count=children.get(i, 0), descendant_count=descendants.get(i, 0)
            )
            for i, r in self.rows.items()
        }

    def page(
        self, sort: CommentSort, max_depth: int = COMMENT_MAX_DEPTH
    ) -> tuple[list[CommentRecord], list[CommentRecord]]:
        """(top-level comments, their replies) in the order the repository reads them."""
        rows = self.counted()
        roots = sorted(
            (r for r in rows.values() if r.depth == 0),
            key=lambda r: domain.sort_key(r, sort),
            reverse=True,
        )
        replies = []
        for root in roots:
            below = [
                r
                for r in rows.values()
                if domain.is_descendant(r.path, root.path) and r.depth <= max_depth
            ]
            # depth ascending, then display order (rank and id descending)
            below.sort(key=lambda r: domain.sort_key(r, sort), reverse=True)
            below.sort(key=lambda r: r.depth)
            replies.extend(below)
        return roots, replies


def _walk(nodes: list[TreeNode]) -> Iterator[TreeNode]:
    for node in nodes:
        yield node
        yield from _walk(node.replies)


@pytest.mark.parametrize("sort", list(CommentSort))
def test_a_whole_thread_assembles_sorted_at_every_level(sort: CommentSort) -> None:
    thread = Thread(seed=5)
    thread.grow(roots=12, replies=300)
    roots, replies = thread.page(sort)
    trees = domain.assemble_trees(roots, replies, max_depth=COMMENT_MAX_DEPTH)

    assert [t.comment.id for t in trees] == [r.id for r in roots]
    seen = list(_walk(trees))
    assert len(seen) == len(thread.rows)
    for node in seen:
        assert node.more_replies == 0
        keys = [domain.sort_key(child.comment, sort) for child in node.replies]
        assert keys == sorted(keys, reverse=True)
        assert all(child.comment.parent_id == node.comment.id for child in node.replies)
        assert len(node.replies) == node.comment.child_count


@pytest.mark.parametrize("max_depth", [0, 1, 2, 5])
def test_max_depth_cuts_and_counts_what_it_left_out(max_depth: int) -> None:
    thread = Thread(seed=9)
    thread.grow(roots=6, replies=250)
    roots, replies = thread.page(CommentSort.BEST)
    trees = domain.assemble_trees(roots, replies, max_depth=max_depth)

    counted = thread.counted()
    for node in _walk(trees):
        assert node.comment.depth <= max_depth
        if node.comment.depth == max_depth:
            assert node.replies == []
            assert node.more_replies == counted[node.comment.id].descendant_count
        else:
            assert node.more_replies == 0
            assert len(node.replies) == node.comment.child_count
    shown = sum(1 for _ in _walk(trees))
    hidden = sum(n.more_replies for n in _walk(trees) if n.comment.depth == max_depth)
    assert shown + hidden == len(thread.rows)


def test_the_reply_limit_keeps_the_shallowest_best_replies_with_their_parents() -> None:
    thread = Thread(seed=13)
    thread.grow(roots=2, replies=400)
    roots, replies = thread.page(CommentSort.TOP)
    limits = [30, 500]
    trees = domain.assemble_trees(roots, replies, max_depth=COMMENT_MAX_DEPTH, reply_limits=limits)

    first = list(_walk([trees[0]]))
    assert len(first) == 1 + min(30, roots[0].descendant_count)
    kept = {n.comment.id for n in first}
    for node in first[1:]:
        assert node.comment.parent_id in kept
    # Breadth first: nothing kept is deeper than anything left out.
    deepest_kept = max(n.comment.depth for n in first)
    left_out = [
        r for r in replies if domain.is_descendant(r.path, roots[0].path) and r.id not in kept
    ]
    assert all(r.depth >= deepest_kept for r in left_out)
    # Every reply is either shown or counted exactly once in its nearest shown ancestor.
    assert sum(1 for _ in first) - 1 + sum(n.more_replies for n in first) == (
        roots[0].descendant_count
    )
    assert sum(1 for _ in _walk([trees[1]])) == 1 + min(500, roots[1].descendant_count)


def test_the_byte_budget_ends_the_answer_and_counts_the_rest() -> None:
    thread = Thread(seed=17)
    big = "b" * 5_000
    root = thread.add(body=big)
    for _ in range(50):
        thread.add(root, body=big)
    roots, replies = thread.page(CommentSort.NEW)
    budget = 20 * (5_000 + domain.NODE_OVERHEAD_BYTES)
    (tree,) = domain.assemble_trees(roots, replies, max_depth=10, byte_budget=budget)
    assert len(tree.replies) == 19
    assert tree.more_replies == 31


def test_deleted_and_removed_comments_keep_their_place_without_text_or_author() -> None:
    thread = Thread()
    root = thread.add()
    deleted = thread.add(root, deleted=True, body="")
    removed = thread.add(root, removed=True, body="rude")
    thread.add(deleted)
    roots, replies = thread.page(CommentSort.NEW)
    (tree,) = domain.assemble_trees(roots, replies, max_depth=10)
    shown = {n.comment.id: n.comment for n in _walk([tree])}
    assert shown[deleted.id].shown_body == "[deleted]"
    assert shown[deleted.id].shown_author is None
    assert shown[removed.id].shown_body == "[removed]"
    assert shown[removed.id].shown_author is None
    assert shown[root.id].shown_author == root.author_id
    assert len(shown) == 4
    assert not shown[deleted.id].visible
    assert shown[root.id].visible


def test_get_comment_shape_a_subtree_from_a_deep_root() -> None:
    thread = Thread()
    chain = [thread.add()]
    for _ in range(COMMENT_MAX_DEPTH):
        chain.append(thread.add(chain[-1]))
    rows = thread.counted()
    middle = rows[chain[4].id]
    below = sorted(
        (r for r in rows.values() if domain.is_descendant(r.path, middle.path)),
        key=lambda r: r.depth,
    )
    (tree,) = domain.assemble_trees([middle], below, max_depth=middle.depth + 2)
    assert [n.comment.depth for n in _walk([tree])] == [4, 5, 6]
    assert list(_walk([tree]))[-1].more_replies == COMMENT_MAX_DEPTH - 6
