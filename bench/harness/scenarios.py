"""The measured scenarios: what each one asks of the gateway, as request lists for wrk.

Targets come from the loaded data set (the hottest posts, their comments, the
showcase post), so every request is valid and hits realistic data: a vote
or a comment lands where traffic concentrates, a search uses the words the
text was made of. Writes are made by the data set's load users, who wrote
none of it (the votes service refuses self-votes).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import psycopg

from bench.dataset.text import VOCABULARY, TextPool
from bench.harness.wrk import Request

API = "/api/v1"
REQUESTS_PER_SCENARIO = 20_000


@dataclass(frozen=True, slots=True)
class Targets:
    """What the write and read scenarios aim at."""

    showcase_post: str
    largest_community: str
    hot_posts: list[str]
    # (post id, comment id) of comments on hot posts, written by nobody who votes here.
    hot_comments: list[tuple[str, str]]
    tokens: int


def find_targets(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    showcase_post: str,
    largest_community: str,
    load_user_ids: list[str],
    tokens: int,
) -> Targets:
    hot = [
        str(row[0])
        for row in conn.execute(
            "SELECT id FROM posts.posts WHERE NOT removed AND NOT deleted AND id <> %s "
            "ORDER BY hot_rank DESC, id DESC LIMIT 1000",
            (showcase_post,),
        )
    ]
    comments = [
        (str(row[0]), str(row[1]))
        for row in conn.execute(
            "SELECT c.post_id, c.id FROM comments.comments c "
            "WHERE c.post_id = ANY(%s::uuid[]) AND c.depth < 10 "
            "AND NOT (c.author_id = ANY(%s::uuid[])) "
            "AND c.deleted_at IS NULL AND c.removed_at IS NULL "
            "ORDER BY c.post_id, c.path LIMIT 5000",
            (hot[:200], load_user_ids),
        )
    ]
    return Targets(showcase_post, largest_community, hot, comments, tokens)


RequestMaker = Callable[[Targets, random.Random], list[Request]]


def _listing(targets: Targets, rng: random.Random) -> list[Request]:
    del targets, rng
    return [Request("GET", f"{API}/posts?sort=hot")]


def _post_page(targets: Targets, rng: random.Random) -> list[Request]:
    del rng
    return [Request("GET", f"{API}/posts/{targets.showcase_post}/comments?sort=best")]


def _search(targets: Targets, rng: random.Random) -> list[Request]:
    del targets
    requests = []
    for _ in range(REQUESTS_PER_SCENARIO):
        words = " ".join(rng.sample(VOCABULARY, rng.choice((1, 1, 2))))
        requests.append(Request("GET", f"{API}/search?q={quote(words)}&type=posts"))
    return requests


def _login(
    targets: Targets, rng: random.Random, usernames: list[str], password: str
) -> list[Request]:
    del targets
    return [
        Request(
            "POST",
            f"{API}/auth/login",
            body=json.dumps({"username": rng.choice(usernames), "password": password}),
        )
        for _ in range(REQUESTS_PER_SCENARIO // 10)
    ]


def _votes(targets: Targets, rng: random.Random) -> list[Request]:
    requests = []
    for _ in range(REQUESTS_PER_SCENARIO * 2):
        body = json.dumps({"direction": rng.choice((1, 1, -1, 0))})
        token = rng.randint(1, targets.tokens)
        if targets.hot_comments and rng.random() < 0.5:
            _, comment_id = rng.choice(targets.hot_comments)
            requests.append(Request("PUT", f"{API}/comments/{comment_id}/vote", token, body))
        else:
            post_id = rng.choice(targets.hot_posts)
            requests.append(Request("PUT", f"{API}/posts/{post_id}/vote", token, body))
    return requests


def _comments(targets: Targets, rng: random.Random) -> list[Request]:
    text = TextPool(rng, titles=10, sentences=2_000)
    requests = []
    for _ in range(REQUESTS_PER_SCENARIO):
        token = rng.randint(1, targets.tokens)
        if targets.hot_comments and rng.random() < 0.5:
            post_id, parent = rng.choice(targets.hot_comments)
            body = json.dumps({"body": text.body(1, 3), "parent_id": parent})
        else:
            post_id = rng.choice(targets.hot_posts)
            body = json.dumps({"body": text.body(1, 3)})
        requests.append(Request("POST", f"{API}/posts/{post_id}/comments", token, body))
    return requests


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    # What one request is, for the report.
    request: str
    make: RequestMaker
    # The gateway's response cache on (production) or off (every request reaches the services).
    cache: bool = True
    writes: bool = False
    # Connections when not the run's (None): see the login scenario.
    connections: int | None = None


def scenarios(usernames: list[str], password: str) -> list[Scenario]:
    """In run order: reads first (on the data as loaded), then the gateway without its cache,
    then the writes (which change what the reads would see)."""
    return [
        Scenario(
            "listing_cached",
            "Hot listing, anonymous, cached",
            "GET /api/v1/posts?sort=hot",
            _listing,
        ),
        Scenario(
            "post_page",
            "Post page: the 500-comment tree",
            "GET /api/v1/posts/{showcase}/comments?sort=best (25 top-level, 500 comments)",
            _post_page,
        ),
        Scenario(
            "post_page_alone",
            "Post page, one request at a time",
            "the post_page request on 1 connection: its latency without queueing",
            _post_page,
            connections=1,
        ),
        Scenario(
            "search",
            "Search posts",
            "GET /api/v1/search?q=<1-2 random words>&type=posts",
            _search,
        ),
        Scenario(
            "login",
            "Sign in",
            "POST /api/v1/auth/login (bcrypt cost 12), 8 connections",
            lambda targets, rng: _login(targets, rng, usernames, password),
            # bcrypt at cost 12 is about 0.3 s of CPU per sign-in: two cores sign in a few
            # users a second, so 64 at once would queue past the gateway's 5 s upstream
            # deadline and measure that deadline, not the service. Production sizes auth by
            # CPU; here 8 connections keep the queue inside it.
            connections=8,
        ),
        Scenario(
            "listing_uncached",
            "Hot listing, anonymous, cache off",
            "GET /api/v1/posts?sort=hot on a gateway with AGORA_CACHE_ENABLED=false",
            _listing,
            cache=False,
        ),
        Scenario(
            "listing_uncached_alone",
            "Hot listing, cache off, one request at a time",
            "the listing_uncached request on 1 connection: its latency without queueing",
            _listing,
            cache=False,
            # With 64 connections on two cores, latency is queueing (Little's law): this
            # is what one request costs when it waits for nothing.
            connections=1,
        ),
        Scenario(
            "vote",
            "Votes",
            "PUT /api/v1/{posts|comments}/{id}/vote, direction 1/-1/0, 32 users, hot targets",
            _votes,
            writes=True,
        ),
        Scenario(
            "comment_create",
            "Create comments",
            "POST /api/v1/posts/{id}/comments, half replies, on hot posts",
            _comments,
            writes=True,
        ),
    ]
