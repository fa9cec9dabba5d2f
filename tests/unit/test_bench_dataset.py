"""The benchmark data set keeps the services' invariants (bench.dataset), without a database."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from bench.dataset.generate import (
    LOAD_USERS,
    SHOWCASE_COMMENTS,
    SHOWCASE_ROOTS,
    TARGET_POST,
    Plan,
    Sizes,
    make_plan,
    tables,
)
from bench.dataset.skew import allocate, spread, zipf_weights
from common import ranking
from common.contract import COMMENT_MAX_DEPTH
from services.comments.domain import SEGMENT_WIDTH, decode_segment

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
Rows = dict[str, list[list[str]]]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return make_plan(Sizes.at_scale(0.001), seed=3, now=NOW, password_hash="$2b$12$" + "x" * 53)


@pytest.fixture(scope="module")
def rows(plan: Plan) -> Rows:
    return {
        table.name: [line.rstrip("\n").split("\t") for line in table.rows()]
        for table in tables(plan, seed=plan.seed)
    }


def test_allocate_hits_the_total_exactly_and_respects_the_cap() -> None:
    rng = random.Random(1)
    counts = allocate(10_000, zipf_weights(100, 1.0), cap=500, rng=rng)
    assert sum(counts) == 10_000
    assert max(counts) == 500
    assert counts[0] >= counts[50]
    assert spread(10, 3, rng=rng) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    with pytest.raises(ValueError, match="does not fit"):
        allocate(100, [1.0, 1.0], cap=10, rng=rng)


def test_sizes_are_the_issues_at_scale_one() -> None:
    assert Sizes.at_scale(1.0) == Sizes(100, 10_000, 100_000, 1_000_000, 2_000_000)
    with pytest.raises(ValueError, match="scale"):
        Sizes.at_scale(0)


def test_row_counts_follow_the_sizes(plan: Plan, rows: Rows) -> None:
    sizes = plan.sizes
    assert len(rows["auth.users"]) == sizes.users
    assert len(rows["communities.communities"]) == sizes.communities
    assert len(rows["posts.posts"]) == sizes.posts
    assert len(rows["comments.comments"]) == sizes.comments
    assert len(rows["votes.votes"]) == sizes.votes


def test_usernames_and_their_skeletons_are_unique(rows: Rows) -> None:
    users = rows["auth.users"]
    for column in (2, 3, 5):
        assert len({row[column] for row in users}) == len(users)


def test_comment_trees_are_consistent(plan: Plan, rows: Rows) -> None:
    comments = {row[0]: row for row in rows["comments.comments"]}
    children: Counter[str] = Counter()
    descendants: Counter[str] = Counter()
    for row in comments.values():
        path, depth, parent = row[6], int(row[7]), row[3]
        assert len(path) == SEGMENT_WIDTH * (depth + 1)
        assert 0 <= depth <= COMMENT_MAX_DEPTH
        if parent == "\\N":
            assert depth == 0
            continue
        up = comments[parent]
        assert path.startswith(up[6])
        assert depth == int(up[7]) + 1
        assert up[1] == row[1]
        assert row[16] > up[16]  # a reply is younger than its parent
        children[parent] += 1
        ancestor = parent
        while ancestor != "\\N":
            descendants[ancestor] += 1
            ancestor = comments[ancestor][3]
    for comment_id, row in comments.items():
        assert int(row[8]) == children[comment_id]
        assert int(row[9]) == descendants[comment_id]
    segments = [decode_segment(row[6][-SEGMENT_WIDTH:]) for row in comments.values()]
    assert sorted(segments) == list(range(1, len(comments) + 1))


def test_the_showcase_post_is_one_page_of_500_comments(plan: Plan, rows: Rows) -> None:
    showcase = plan.post_ids[plan.showcase_post]
    thread = [row for row in rows["comments.comments"] if row[1] == showcase]
    assert len(thread) == SHOWCASE_COMMENTS
    assert sum(1 for row in thread if row[3] == "\\N") == SHOWCASE_ROOTS
    assert plan.post_community[plan.showcase_post] == 0


def test_counters_and_ranks_agree_with_the_rows(plan: Plan, rows: Rows) -> None:
    votes: dict[tuple[str, str], list[int]] = {}
    voters: set[tuple[str, str, str]] = set()
    for user, kind, target, direction, *_ in rows["votes.votes"]:
        assert (user, kind, target) not in voters  # one vote per user and target
        voters.add((user, kind, target))
        tally = votes.setdefault((kind, target), [0, 0])
        tally[0 if direction == "1" else 1] += 1
    for kind, target, ups, downs, score, version, _ in rows["votes.tallies"]:
        assert votes[(kind, target)] == [int(ups), int(downs)]
        assert int(score) == int(ups) - int(downs)
        assert int(version) == int(ups) + int(downs)
    assert sum(int(row[2]) + int(row[3]) for row in rows["votes.tallies"]) == plan.sizes.votes

    comment_counts = Counter(row[1] for row in rows["comments.comments"])
    counters = {row[0]: int(row[1]) for row in rows["comments.post_counters"]}
    authors: dict[str, str] = {}
    for row in rows["posts.posts"]:
        post_id, up, down = row[0], int(row[7]), int(row[8])
        authors[post_id] = row[2]
        assert votes.get((str(TARGET_POST), post_id), [0, 0]) == [up, down]
        assert int(row[10]) == comment_counts[post_id] == counters.get(post_id, 0)
        created = datetime.fromisoformat(row[13])
        assert float(row[11]) == ranking.hot(up, down, created)
        assert float(row[12]) == ranking.controversy(up, down)
    for user, kind, target, *_ in rows["votes.votes"]:
        if kind == str(TARGET_POST):
            assert authors[target] != user  # the votes service refuses self-votes

    members = Counter(row[0] for row in rows["communities.memberships"])
    posts = Counter(row[1] for row in rows["posts.posts"])
    for row in rows["communities.communities"]:
        assert int(row[6]) == members[row[0]]
        assert int(row[7]) == posts[row[0]]


def test_load_users_write_nothing(plan: Plan, rows: Rows) -> None:
    load_ids = {plan.user_ids[i] for i in plan.load_users}
    assert len(load_ids) == LOAD_USERS
    assert not load_ids & {row[2] for row in rows["posts.posts"]}
    assert not load_ids & {row[4] for row in rows["comments.comments"]}
