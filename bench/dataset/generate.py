"""The benchmark data set as rows of each service's tables, as consistent as the services keep them.

`make_plan` decides the shape (who, where, when, how many) and `tables`
turns it into COPY text, table by table, in an order the loader can stream.
Every number the services keep denormalised is computed from the rows it
summarises, exactly as their write paths would have left it:

| kept number | equals |
|---|---|
| communities.member_count / post_count | memberships / posts of the community |
| posts.score, upvotes, downvotes, tally_version | the post's votes.tallies (version = votes) |
| posts.hot_rank, controversy_rank | common.ranking of that tally and created_at |
| posts.comment_count, comments.post_counters | visible comments of the post |
| comments.path, depth | parent's path + one base-36 segment per comment, from one sequence |
| comments.child_count, descendant_count | direct replies, whole subtree |
| comments tally and best_rank, controversy_rank | votes.tallies of the comment |
| votes.tallies | the votes rows of the target (one per user, never the author's own) |

Skew: communities get posts by Zipf (exponent 1.1: the largest has about a
fifth), posts get comments and votes by Zipf over one popularity order (a
few threads of tens of thousands of comments, most of a handful), authors
are Zipf too. One "showcase" post, recent and in the largest community, has
exactly 500 comments under 25 top-level ones, so its first page (the API's
default 25 top-level comments, 10 levels) is a whole 500-comment tree.
The last LOAD_USERS users author nothing, so the harness can sign them in
and let them vote on anything (the votes service refuses self-votes).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.dataset.skew import allocate, zipf_weights
from bench.dataset.text import TextPool
from common import ranking
from common.contract import COMMENT_MAX_DEPTH
from services.auth.domain import username_skeleton
from services.comments.domain import encode_segment

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US = 86_400 * 1_000_000
NULL = "\\N"

# Every generated user's password (the harness signs in with it).
BENCH_PASSWORD = "correct-horse-bench"  # noqa: S105 - a public test password, by design
SHOWCASE_COMMENTS = 500
SHOWCASE_ROOTS = 25
# Users that write nothing: the harness's voters and commenters.
LOAD_USERS = 100
POST_VOTE_SHARE = 0.4
# Share of a regular thread's comments that are top-level.
TOP_LEVEL_SHARE = 0.3
TARGET_POST = 1
TARGET_COMMENT = 2


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many of each thing; `at_scale(1.0)` is the issue's data set."""

    communities: int
    users: int
    posts: int
    comments: int
    votes: int

    @classmethod
    def at_scale(cls, scale: float) -> Sizes:
        if not 0 < scale <= 10:
            raise ValueError("scale must be in (0, 10]")
        return cls(
            communities=max(5, round(100 * scale)),
            users=max(LOAD_USERS * 3, round(10_000 * scale)),
            posts=max(500, round(100_000 * scale)),
            comments=max(SHOWCASE_COMMENTS * 4, round(1_000_000 * scale)),
            votes=max(5_000, round(2_000_000 * scale)),
        )


def timestamp(micros: int) -> str:
    """A timestamptz literal of micros since the epoch (exact, so ranks recompute equal)."""
    return (EPOCH + timedelta(microseconds=micros)).isoformat()


def as_datetime(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def uuid7_at(micros: int, rng: random.Random) -> str:
    """A UUIDv7 of the given time, random bits from rng (deterministic per seed)."""
    value = ((micros // 1000) & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rng.getrandbits(12) << 64
    value |= 0b10 << 62
    value |= rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def line(*fields: object) -> str:
    """One COPY text-format row; callers pass text free of tabs, newlines and backslashes."""
    return "\t".join(map(str, fields)) + "\n"


@dataclass(slots=True)
class Comments:
    """All comments, as parallel arrays indexed by a global comment number (creation order)."""

    post: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)  # -1 for top-level
    depth: list[int] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    author: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    descendants: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """Every decision of the data set; `tables` renders it."""

    sizes: Sizes
    seed: int
    now: int
    password_hash: str
    user_ids: list[str]
    user_created: list[int]
    community_ids: list[str]
    community_names: list[str]
    community_created: list[int]
    community_creator: list[int]
    members: list[list[int]]
    post_ids: list[str]
    post_community: list[int]
    post_author: list[int]
    post_created: list[int]
    post_comments: list[int]
    post_up: list[int]
    post_down: list[int]
    comments: Comments
    comment_up: list[int]
    comment_down: list[int]
    showcase_post: int

    @property
    def load_users(self) -> range:
        return range(self.sizes.users - LOAD_USERS, self.sizes.users)


def username(index: int) -> str:
    # Digits only after a fixed prefix: distinct look-alike skeletons (0->o, 1->l, 5->s
    # map digits to letters the prefix never has in those places).
    return f"bench_{index:06d}"


def community_name(index: int) -> str:
    return f"bench_c{index:03d}"


def _up_share(rng: random.Random) -> float:
    """Most targets are liked, some split evenly (the controversial ones)."""
    if rng.random() < 0.1:
        return rng.uniform(0.4, 0.6)
    return rng.betavariate(5, 2)


def _split_votes(counts: list[int], rng: random.Random) -> tuple[list[int], list[int]]:
    up, down = [], []
    for count in counts:
        share = _up_share(rng)
        ups = sum(1 for _ in range(count) if rng.random() < share)
        up.append(ups)
        down.append(count - ups)
    return up, down


def make_plan(sizes: Sizes, *, seed: int, now: datetime, password_hash: str) -> Plan:
    """Decide the whole data set (no text yet); deterministic for (sizes, seed, now)."""
    rng = random.Random(seed)
    now_us = (now - EPOCH) // timedelta(microseconds=1)
    year_us = 365 * DAY_US

    users = sizes.users
    user_created = sorted(now_us - 3 * year_us + rng.randrange(3 * year_us) for _ in range(users))
    user_ids = [uuid7_at(t, rng) for t in user_created]
    authors = users - LOAD_USERS
    author_weights = zipf_weights(authors, 0.7)
    author_order = list(range(authors))
    rng.shuffle(author_order)
    author_cum = _cumulative(author_weights)

    def pick_authors(k: int) -> list[int]:
        return [author_order[i] for i in rng.choices(range(authors), cum_weights=author_cum, k=k)]

    # Communities: index 0 is the largest (Zipf weights follow the index).
    n_comm = sizes.communities
    community_created = [now_us - 3 * year_us + rng.randrange(year_us) for _ in range(n_comm)]
    community_ids = [uuid7_at(t, rng) for t in community_created]
    community_creator = pick_authors(n_comm)
    community_weights = zipf_weights(n_comm, 1.1)
    community_cum = _cumulative(community_weights)
    member_sets: list[set[int]] = [{creator} for creator in community_creator]
    for user in range(users):
        joins = min(n_comm, 1 + int(rng.expovariate(1 / 3)))
        for community in rng.choices(range(n_comm), cum_weights=community_cum, k=joins):
            member_sets[community].add(user)
    members = [sorted(s) for s in member_sets]

    # Posts, in creation order; the showcase is two hours old, in the largest community.
    n_posts = sizes.posts
    post_created = sorted(now_us - rng.randrange(year_us) for _ in range(n_posts))
    post_ids = [uuid7_at(t, rng) for t in post_created]
    post_community = rng.choices(range(n_comm), cum_weights=community_cum, k=n_posts)
    post_author = pick_authors(n_posts)
    showcase = max(i for i, t in enumerate(post_created) if t <= now_us - 2 * 3600 * 1_000_000)
    post_community[showcase] = 0

    # One popularity order for comments and votes: busy threads are also voted on most.
    popularity = [i for i in range(n_posts) if i != showcase]
    rng.shuffle(popularity)
    thread_sizes = allocate(
        sizes.comments - SHOWCASE_COMMENTS, zipf_weights(len(popularity), 1.0), rng=rng
    )
    post_comments = [0] * n_posts
    for post, count in zip(popularity, thread_sizes, strict=True):
        post_comments[post] = count
    post_comments[showcase] = SHOWCASE_COMMENTS

    vote_cap = (users - 1) // 2
    post_vote_total = round(sizes.votes * POST_VOTE_SHARE)
    showcase_votes = min(300, vote_cap)
    post_vote_counts = [0] * n_posts
    for post, count in zip(
        popularity,
        allocate(
            post_vote_total - showcase_votes,
            zipf_weights(len(popularity), 0.9),
            cap=vote_cap,
            rng=rng,
        ),
        strict=True,
    ):
        post_vote_counts[post] = count
    post_vote_counts[showcase] = showcase_votes
    post_up, post_down = _split_votes(post_vote_counts, rng)
    post_up[showcase], post_down[showcase] = showcase_votes - 20, 20

    comments = _make_comments(
        post_comments=post_comments,
        post_created=post_created,
        showcase=showcase,
        now_us=now_us,
        pick_authors=pick_authors,
        rng=rng,
    )
    comment_order = list(range(len(comments.ids)))
    rng.shuffle(comment_order)
    comment_vote_counts = [0] * len(comment_order)
    for comment, count in zip(
        comment_order,
        allocate(
            sizes.votes - post_vote_total,
            zipf_weights(len(comment_order), 0.8),
            cap=vote_cap,
            rng=rng,
        ),
        strict=True,
    ):
        comment_vote_counts[comment] = count
    comment_up, comment_down = _split_votes(comment_vote_counts, rng)

    return Plan(
        sizes=sizes,
        seed=seed,
        now=now_us,
        password_hash=password_hash,
        user_ids=user_ids,
        user_created=user_created,
        community_ids=community_ids,
        community_names=[community_name(i) for i in range(n_comm)],
        community_created=community_created,
        community_creator=community_creator,
        members=members,
        post_ids=post_ids,
        post_community=post_community,
        post_author=post_author,
        post_created=post_created,
        post_comments=post_comments,
        post_up=post_up,
        post_down=post_down,
        comments=comments,
        comment_up=comment_up,
        comment_down=comment_down,
        showcase_post=showcase,
    )


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _make_comments(
    *,
    post_comments: list[int],
    post_created: list[int],
    showcase: int,
    now_us: int,
    pick_authors: Callable[[int], list[int]],
    rng: random.Random,
) -> Comments:
    """Every thread's tree: parents, depths, paths, times and subtree counters."""
    out = Comments()
    total = sum(post_comments)
    authors = pick_authors(total)
    sequence = 0  # comments.comment_path_seq: one number per comment, across posts
    for post, count in enumerate(post_comments):
        if count == 0:
            continue
        start = len(out.ids)
        created = post_created[post]
        span = max(1, min(now_us - created, 7 * DAY_US))
        for k in range(count):
            if post == showcase:
                top_level = k < SHOWCASE_ROOTS
            else:
                top_level = k == 0 or rng.random() < TOP_LEVEL_SHARE
            if top_level:
                parent, depth, parent_path = -1, 0, ""
            else:
                parent = start + rng.randrange(k)
                while out.depth[parent] >= COMMENT_MAX_DEPTH:
                    parent = out.parent[parent]
                depth, parent_path = out.depth[parent] + 1, out.path[parent]
            sequence += 1
            # Increasing in k, so a reply is always younger than its parent.
            at = created + 1 + int(span * (k + rng.random()) / count)
            index = len(out.ids)
            out.post.append(post)
            out.parent.append(parent)
            out.depth.append(depth)
            out.path.append(parent_path + encode_segment(sequence))
            out.created.append(at)
            out.author.append(authors[index])
            out.ids.append(uuid7_at(at, rng))
            out.children.append(0)
            out.descendants.append(0)
            if parent >= 0:
                out.children[parent] += 1
                ancestor = parent
                while ancestor >= 0:
                    out.descendants[ancestor] += 1
                    ancestor = out.parent[ancestor]
    return out


@dataclass(frozen=True, slots=True)
class Table:
    """One table's COPY: its qualified name, the columns given, and the rows as text lines."""

    name: str
    columns: tuple[str, ...]
    rows: Callable[[], Iterator[str]]


def tables(plan: Plan, *, seed: int) -> list[Table]:
    """Every table of the data set, in load order; each `rows()` is run once, in this order."""
    rng = random.Random(seed + 1)
    text = TextPool(rng)
    return [
        Table(
            "auth.users",
            (
                "id",
                "username",
                "username_canonical",
                "username_skeleton",
                "email",
                "email_canonical",
                "password_hash",
                "karma",
                "created_at",
            ),
            lambda: _users(plan),
        ),
        Table(
            "communities.communities",
            (
                "id",
                "name",
                "title",
                "description",
                "creator_id",
                "created_at",
                "member_count",
                "post_count",
            ),
            lambda: _communities(plan, text),
        ),
        Table(
            "communities.memberships",
            ("community_id", "user_id", "joined_at"),
            lambda: _memberships(plan, rng),
        ),
        Table(
            "communities.moderators",
            ("community_id", "user_id", "appointed_at", "appointed_by"),
            lambda: _moderators(plan),
        ),
        Table(
            "posts.posts",
            (
                "id",
                "community_id",
                "author_id",
                "title",
                "body",
                "url",
                "score",
                "upvotes",
                "downvotes",
                "tally_version",
                "comment_count",
                "hot_rank",
                "controversy_rank",
                "created_at",
            ),
            lambda: _posts(plan, text, rng),
        ),
        Table(
            "comments.comments",
            (
                "id",
                "post_id",
                "community_id",
                "parent_id",
                "author_id",
                "body",
                "path",
                "depth",
                "child_count",
                "descendant_count",
                "score",
                "upvotes",
                "downvotes",
                "tally_version",
                "best_rank",
                "controversy_rank",
                "created_at",
            ),
            lambda: _comments(plan, text),
        ),
        Table(
            "comments.post_counters",
            ("post_id", "comment_count"),
            lambda: _post_counters(plan),
        ),
        Table(
            "votes.tallies",
            ("target_type", "target_id", "upvotes", "downvotes", "score", "version", "updated_at"),
            lambda: _tallies(plan),
        ),
        Table(
            "votes.votes",
            ("user_id", "target_type", "target_id", "direction", "created_at", "updated_at"),
            lambda: _votes(plan, rng),
        ),
    ]


def _users(plan: Plan) -> Iterator[str]:
    for index, (user_id, created) in enumerate(zip(plan.user_ids, plan.user_created, strict=True)):
        name = username(index)
        email = f"{name}@bench.example"
        # Lower-case names: as typed = canonical; the skeleton by the auth service's rule.
        skeleton = username_skeleton(name)
        yield line(
            user_id, name, name, skeleton, email, email, plan.password_hash, 0, timestamp(created)
        )


def _communities(plan: Plan, text: TextPool) -> Iterator[str]:
    post_counts = [0] * len(plan.community_ids)
    for community in plan.post_community:
        post_counts[community] += 1
    for index, community_id in enumerate(plan.community_ids):
        yield line(
            community_id,
            plan.community_names[index],
            text.title()[:100],
            text.body(1, 3),
            plan.user_ids[plan.community_creator[index]],
            timestamp(plan.community_created[index]),
            len(plan.members[index]),
            post_counts[index],
        )


def _memberships(plan: Plan, rng: random.Random) -> Iterator[str]:
    for index, members in enumerate(plan.members):
        created = plan.community_created[index]
        for user in members:
            joined = max(created, plan.user_created[user]) + rng.randrange(30 * DAY_US)
            joined = min(joined, plan.now)
            yield line(plan.community_ids[index], plan.user_ids[user], timestamp(joined))


def _moderators(plan: Plan) -> Iterator[str]:
    for index, creator in enumerate(plan.community_creator):
        created = timestamp(plan.community_created[index])
        yield line(plan.community_ids[index], plan.user_ids[creator], created, NULL)


def _posts(plan: Plan, text: TextPool, rng: random.Random) -> Iterator[str]:
    for post, post_id in enumerate(plan.post_ids):
        up, down = plan.post_up[post], plan.post_down[post]
        created = as_datetime(plan.post_created[post])
        url = f"https://example.com/{rng.randrange(10**9)}" if rng.random() < 0.2 else ""
        yield line(
            post_id,
            plan.community_ids[plan.post_community[post]],
            plan.user_ids[plan.post_author[post]],
            text.title(),
            text.body(0, 4),
            url,
            up - down,
            up,
            down,
            up + down,
            plan.post_comments[post],
            repr(ranking.hot(up, down, created)),
            repr(ranking.controversy(up, down)),
            created.isoformat(),
        )


def _comments(plan: Plan, text: TextPool) -> Iterator[str]:
    c = plan.comments
    for index, comment_id in enumerate(c.ids):
        post = c.post[index]
        parent = c.parent[index]
        up, down = plan.comment_up[index], plan.comment_down[index]
        yield line(
            comment_id,
            plan.post_ids[post],
            plan.community_ids[plan.post_community[post]],
            c.ids[parent] if parent >= 0 else NULL,
            plan.user_ids[c.author[index]],
            text.body(1, 3),
            c.path[index],
            c.depth[index],
            c.children[index],
            c.descendants[index],
            up - down,
            up,
            down,
            up + down,
            repr(ranking.wilson_lower_bound(up, down)),
            repr(ranking.controversy(up, down)),
            timestamp(c.created[index]),
        )


def _post_counters(plan: Plan) -> Iterator[str]:
    for post, count in enumerate(plan.post_comments):
        if count:
            yield line(plan.post_ids[post], count)


def _targets(plan: Plan) -> Iterator[tuple[int, str, int, int, int, int]]:
    """(type, id, author, created, up, down) of every target with votes."""
    for post, post_id in enumerate(plan.post_ids):
        if plan.post_up[post] + plan.post_down[post]:
            yield (
                TARGET_POST,
                post_id,
                plan.post_author[post],
                plan.post_created[post],
                plan.post_up[post],
                plan.post_down[post],
            )
    c = plan.comments
    for index, comment_id in enumerate(c.ids):
        if plan.comment_up[index] + plan.comment_down[index]:
            yield (
                TARGET_COMMENT,
                comment_id,
                c.author[index],
                c.created[index],
                plan.comment_up[index],
                plan.comment_down[index],
            )


def _tallies(plan: Plan) -> Iterator[str]:
    for kind, target_id, _author, _created, up, down in _targets(plan):
        yield line(kind, target_id, up, down, up - down, up + down, timestamp(plan.now))


def _votes(plan: Plan, rng: random.Random) -> Iterator[str]:
    users = plan.sizes.users
    for kind, target_id, author, created, up, down in _targets(plan):
        voters = [u for u in rng.sample(range(users), up + down + 1) if u != author]
        for position, voter in enumerate(voters[: up + down]):
            at = timestamp(created + rng.randrange(max(1, plan.now - created)))
            direction = 1 if position < up else -1
            yield line(plan.user_ids[voter], kind, target_id, direction, at, at)
