"""Demo data for `make up`, written through the public API like any client.

A newcomer should land on a living site: a few users, communities with
members and moderators, posts with text and links, comment threads a few
levels deep, and votes that give the listings an order. Everything goes
through the gateway, so the demo exercises the same paths as real clients.

Idempotent: what already exists is left as it is (409 for users and
communities; posts are matched by title within their community, and a post
found there keeps the thread it has), joining, appointing and voting again
change nothing, so the stack can be started again and again. Only what the
running services support is seeded (common.topology), and a failed step is
reported and skipped, never fatal: `make up` must come up regardless. Never
runs in production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from common.topology import SERVICES

# Demo accounts for a local stack only; they are printed for the newcomer.
DEMO_USERS = (
    ("alice", "alice@example.com", "correct-horse-alice"),
    ("bob", "bob@example.com", "correct-horse-bob"),
    ("carol", "carol@example.com", "correct-horse-carol"),
    ("dave", "dave@example.com", "correct-horse-dave"),
    ("erin", "erin@example.com", "correct-horse-erin"),
)


@dataclass(frozen=True)
class DemoCommunity:
    name: str
    title: str
    description: str
    creator: str
    moderators: tuple[str, ...]
    rules: tuple[tuple[str, str], ...]


COMMUNITIES = (
    DemoCommunity(
        "python",
        "Python",
        "News, questions and projects about the Python programming language.",
        "alice",
        ("alice", "bob"),
        (
            ("Be kind", "Everyone was a beginner once."),
            ("Show your code", "Paste it, not a photo."),
        ),
    ),
    DemoCommunity(
        "gardening",
        "Gardening",
        "Vegetables, flowers, houseplants and the soil they grow in.",
        "bob",
        ("bob",),
        (("Name your zone", "Climate matters: say where you grow."),),
    ),
    DemoCommunity(
        "boardgames",
        "Board Games",
        "Tabletop games: reviews, strategy and what you played this weekend.",
        "carol",
        ("carol", "dave"),
        (("No spoilers", "Mark campaign spoilers clearly."),),
    ),
)

# (author, body, replies): replies nest the same way.
Thread = tuple[str, str, tuple["Thread", ...]]


@dataclass(frozen=True)
class DemoPost:
    community: str
    author: str
    title: str
    body: str = ""
    url: str = ""
    votes: tuple[tuple[str, int], ...] = ()
    comments: tuple[Thread, ...] = ()
    pinned_by: str = ""


POSTS = (
    DemoPost(
        "python",
        "alice",
        "What's new in Python 3.13",
        "A better REPL, an experimental free-threaded build and a JIT. Which one are you "
        "trying first?",
        "https://docs.python.org/3/whatsnew/3.13.html",
        votes=(("bob", 1), ("carol", 1), ("dave", 1), ("erin", 1)),
        comments=(
            (
                "bob",
                "The new REPL alone is worth the upgrade: multi-line editing at last.",
                (("carol", "And colour in tracebacks!", ()),),
            ),
            (
                "dave",
                "Free-threading, for a CPU-bound simulation I have been waiting to parallelise.",
                (),
            ),
        ),
    ),
    DemoPost(
        "python",
        "bob",
        "Share your favourite standard-library module",
        "Mine is `itertools`: `pairwise` and `batched` replaced half of my helpers.",
        votes=(("alice", 1), ("carol", 1), ("erin", 1)),
        comments=(
            (
                "alice",
                "`pathlib`. I have not typed `os.path.join` in years.",
                (
                    (
                        "bob",
                        "Same, and `Path.read_text()` for the small files.",
                        (
                            (
                                "carol",
                                "Careful with encodings: pass `encoding='utf-8'` explicitly.",
                                (
                                    (
                                        "alice",
                                        "True, the default depends on the platform until 3.15.",
                                        (),
                                    ),
                                ),
                            ),
                        ),
                    ),
                    ("dave", "`shutil` completes it for copying trees.", ()),
                ),
            ),
            (
                "erin",
                "`collections.Counter`, counting anything in one line.",
                (("bob", "`most_common(3)` is my favourite method name.", ()),),
            ),
            ("carol", "`functools.cache` on a recursive function feels like cheating.", ()),
        ),
    ),
    DemoPost(
        "python",
        "carol",
        "asyncio.TaskGroup or gather: which do you reach for?",
        "TaskGroup cancels the siblings when one task fails; gather keeps going unless you "
        "tell it otherwise. I now default to TaskGroup. Am I missing a case for gather?",
        votes=(("alice", 1), ("bob", -1), ("dave", 1)),
        comments=(
            (
                "bob",
                "gather with return_exceptions=True when I want every result, failures included.",
                (("carol", "Fair: for best-effort fan-out, gather is simpler.", ()),),
            ),
        ),
    ),
    DemoPost(
        "python",
        "dave",
        "PEP 8, the style guide, is worth a re-read",
        url="https://peps.python.org/pep-0008/",
        votes=(("alice", 1), ("erin", -1)),
    ),
    DemoPost(
        "gardening",
        "bob",
        "First tomatoes of the season!",
        "Sungold cherry tomatoes, planted in April in a sunny corner of the balcony. "
        "Three weeks earlier than last year.",
        votes=(("alice", 1), ("carol", 1), ("dave", 1), ("erin", 1)),
        comments=(
            (
                "erin",
                "Jealous! Mine are still green. What do you feed them?",
                (
                    (
                        "bob",
                        "Tomato feed once a week since the first flowers.",
                        (("erin", "I will try that, thanks.", ()),),
                    ),
                ),
            ),
        ),
    ),
    DemoPost(
        "gardening",
        "erin",
        "How often should I water succulents?",
        "I water my echeveria weekly and it looks sad. Too much or too little?",
        votes=(("bob", 1), ("alice", 1)),
        comments=(
            (
                "bob",
                "Almost certainly too much. Water only when the soil is dry all the way down.",
                (
                    (
                        "erin",
                        "Every two to three weeks, then?",
                        (("bob", "In summer, about that. Much less in winter.", ()),),
                    ),
                    ("alice", "And a pot with a drainage hole: soggy roots rot.", ()),
                ),
            ),
        ),
    ),
    DemoPost(
        "gardening",
        "alice",
        "The RHS guide to home composting",
        url="https://www.rhs.org.uk/soil-composts-mulches/composting",
        votes=(("bob", 1), ("erin", 1)),
    ),
    DemoPost(
        "boardgames",
        "carol",
        "Wingspan is the perfect gateway game",
        "Gorgeous, calm and easy to teach, yet there is real engine building in it. It "
        "got my parents into modern board games.",
        votes=(("alice", 1), ("bob", 1), ("dave", -1), ("erin", 1)),
        comments=(
            (
                "dave",
                "Too little interaction for me, but I see the appeal.",
                (
                    (
                        "carol",
                        "Try the Oceania expansion: the nectar adds some competition.",
                        (("dave", "Fine, I will give it another go.", ()),),
                    ),
                ),
            ),
        ),
    ),
    DemoPost(
        "boardgames",
        "dave",
        "What did you play this weekend?",
        "The weekly thread: tell us what hit the table.",
        votes=(("alice", 1), ("carol", 1), ("erin", 1)),
        pinned_by="carol",
        comments=(
            (
                "alice",
                "Azul, four games in a row. My partner won three.",
                (("erin", "Azul is so satisfying to play.", ()),),
            ),
            (
                "erin",
                "Spirit Island, and we lost to the blight on the last turn.",
                (
                    (
                        "dave",
                        "Which spirits?",
                        (
                            (
                                "erin",
                                "River Surges in Sunlight and Vital Strength of the Earth.",
                                (
                                    (
                                        "carol",
                                        "A classic pair, but they are slow against the blight.",
                                        (),
                                    ),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        ),
    ),
    DemoPost(
        "boardgames",
        "erin",
        "BoardGameGeek's rankings",
        url="https://boardgamegeek.com/browse/boardgame",
        votes=(("carol", 1), ("dave", 1)),
    ),
)


@dataclass
class _Seeder:
    client: httpx.Client
    say: Callable[[str], None]
    tokens: dict[str, str] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)

    def _count(self, what: str) -> None:
        self.created[what] = self.created.get(what, 0) + 1

    def _headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def _call(
        self, method: str, path: str, user: str | None, ok: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response | None:
        """The answer when its status is one of ok; otherwise reported and None."""
        headers = self._headers(user) if user else {}
        try:
            answer = self.client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            self.say(f"seeding: {method} {path} failed: {type(error).__name__}")
            return None
        if answer.status_code not in ok:
            self.say(f"seeding: {method} {path} answered {answer.status_code} {answer.text[:200]}")
            return None
        return answer

    def users(self) -> None:
        for username, email, password in DEMO_USERS:
            answer = self._call(
                "POST",
                "/api/v1/auth/register",
                None,
                (201, 409),
                json={"username": username, "email": email, "password": password},
            )
            if answer is not None and answer.status_code == 201:
                self._count("users")
            login = self._call(
                "POST",
                "/api/v1/auth/login",
                None,
                (200,),
                json={"username": username, "password": password},
            )
            if login is not None:
                self.tokens[username] = login.json()["access_token"]

    def communities(self) -> None:
        for community in COMMUNITIES:
            if community.creator not in self.tokens:
                continue
            answer = self._call(
                "POST",
                "/api/v1/communities",
                community.creator,
                (201, 409),
                json={
                    "name": community.name,
                    "title": community.title,
                    "description": community.description,
                    "rules": [{"title": t, "description": d} for t, d in community.rules],
                },
            )
            if answer is None:
                continue
            if answer.status_code == 201:
                self._count("communities")
            base = f"/api/v1/communities/{community.name}"
            for moderator in community.moderators[1:]:
                self._call("PUT", f"{base}/moderators/{moderator}", community.creator, (204,))
            for username in self.tokens:
                self._call("PUT", f"{base}/membership", username, (204,))

    def _existing_titles(self, community: str) -> dict[str, str] | None:
        """title -> id of the posts a community has (its newest 100), None if unreadable."""
        answer = self._call(
            "GET",
            f"/api/v1/communities/{community}/posts",
            None,
            (200,),
            params={"sort": "new", "limit": 100},
        )
        if answer is None:
            return None
        return {item["title"]: item["id"] for item in answer.json()["items"]}

    def posts(self, *, with_comments: bool, with_votes: bool) -> None:
        titles: dict[str, dict[str, str] | None] = {}
        for post in POSTS:
            if post.author not in self.tokens:
                continue
            if post.community not in titles:
                titles[post.community] = self._existing_titles(post.community)
            existing = titles[post.community]
            if existing is None:
                continue
            post_id = existing.get(post.title)
            if post_id is None:
                body: dict[str, Any] = {"title": post.title, "body": post.body}
                if post.url:
                    body["url"] = post.url
                answer = self._call(
                    "POST",
                    f"/api/v1/communities/{post.community}/posts",
                    post.author,
                    (201,),
                    json=body,
                )
                if answer is None:
                    continue
                post_id = answer.json()["id"]
                self._count("posts")
                if post.pinned_by in self.tokens:
                    self._call(
                        "POST",
                        f"/api/v1/posts/{post_id}/moderation",
                        post.pinned_by,
                        (200,),
                        json={"action": "pin"},
                    )
                if with_comments:
                    self._thread(post_id, None, post.comments, with_votes=with_votes)
            if with_votes:
                for voter, direction in post.votes:
                    self._vote("posts", post_id, voter, direction)

    def _thread(
        self, post_id: str, parent_id: str | None, threads: tuple[Thread, ...], *, with_votes: bool
    ) -> None:
        for index, (author, text, replies) in enumerate(threads):
            if author not in self.tokens:
                continue
            body: dict[str, Any] = {"body": text}
            if parent_id is not None:
                body["parent_id"] = parent_id
            answer = self._call(
                "POST", f"/api/v1/posts/{post_id}/comments", author, (201,), json=body
            )
            if answer is None:
                continue
            comment_id = answer.json()["id"]
            self._count("comments")
            if with_votes:
                # Earlier comments of a level collect more votes, so `best` has an order.
                for voter in [u for u in self.tokens if u != author][: max(0, 3 - index)]:
                    self._vote("comments", comment_id, voter, 1)
            self._thread(post_id, comment_id, replies, with_votes=with_votes)

    def _vote(self, kind: str, target_id: str, voter: str, direction: int) -> None:
        if voter in self.tokens:
            self._call(
                "PUT",
                f"/api/v1/{kind}/{target_id}/vote",
                voter,
                (200,),
                json={"direction": direction},
            )


def seed(gateway_url: str, say: Callable[[str], None], *, bypass_secret: str | None = None) -> None:
    """Fill the stack at gateway_url; `bypass_secret` is the gateway's rate-limit bypass
    (AGORA_RATE_LIMIT_BYPASS_SECRET), without which /auth's 5 a minute would stop it."""
    running = {spec.name for spec in SERVICES}
    headers = {"X-RateLimit-Bypass": bypass_secret} if bypass_secret else {}
    with httpx.Client(base_url=gateway_url, timeout=30, headers=headers) as client:
        seeder = _Seeder(client, say)
        seeder.users()
        if "communities" in running:
            seeder.communities()
            if "posts" in running:
                seeder.posts(with_comments="comments" in running, with_votes="votes" in running)
    made = ", ".join(f"{count} {what}" for what, count in seeder.created.items())
    say(
        f"demo data: {made or 'already there'}; sign in as "
        + ", ".join(f"{u}/{p}" for u, _, p in DEMO_USERS)
    )
