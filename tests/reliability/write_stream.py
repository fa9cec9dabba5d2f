"""A steady stream of writes through the gateway, and an account of what was acknowledged.

Fault tests run it while they break something: several workers each create
a post, comment on the scenario's anchor post, and a second member up-votes
the post just made (authors cannot vote on their own), over and over. Every
answer is recorded with its latency; a write counts as acknowledged only on
its success status. Afterwards `verify`
reads every acknowledged write back, straight from the services (the
private Redis is flushed first, so no cached copy can stand in for a lost row).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.integration.gateway_support import Member


@dataclass
class Answer:
    kind: str  # "post", "comment" or "vote"
    status: int
    seconds: float
    at: float


@dataclass
class WriteStream:
    http: httpx.AsyncClient
    writer: Member
    voter: Member
    community: str
    anchor: str
    workers: int = 3
    pause: float = 0.05
    answers: list[Answer] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    votes: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _send(
        self, kind: str, method: str, path: str, body: dict[str, Any], member: Member
    ) -> Any:
        started = time.monotonic()
        try:
            answer = await self.http.request(method, path, json=body, headers=member.auth)
            status = answer.status_code
        except httpx.TransportError:
            answer, status = None, 0
        self.answers.append(Answer(kind, status, time.monotonic() - started, started))
        if answer is not None and answer.is_success:
            return answer.json()
        return None

    async def _work(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            post = await self._send(
                "post",
                "POST",
                f"/api/v1/communities/{self.community}/posts",
                {"title": f"Worker {worker} post {n}"},
                self.writer,
            )
            if post is not None:
                self.posts.append(post["id"])
            comment = await self._send(
                "comment",
                "POST",
                f"/api/v1/posts/{self.anchor}/comments",
                {"body": f"Worker {worker} comment {n}"},
                self.writer,
            )
            if comment is not None:
                self.comments.append(comment["id"])
            if post is not None:
                vote = await self._send(
                    "vote", "PUT", f"/api/v1/posts/{post['id']}/vote", {"direction": 1}, self.voter
                )
                if vote is not None:
                    self.votes.append(post["id"])
            await asyncio.sleep(self.pause)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(i)) for i in range(self.workers)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def between(self, start: float, end: float, kind: str | None = None) -> list[Answer]:
        """Answers to requests sent in [start, end), of one kind or all."""
        return [a for a in self.answers if start <= a.at < end and (kind is None or a.kind == kind)]

    @property
    def acknowledged(self) -> int:
        return len(self.posts) + len(self.comments) + len(self.votes)

    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    async def verify(self) -> int:
        """How many acknowledged writes read back as written (posts, comments, votes)."""
        found = 0
        voted = set(self.votes)
        for post_id in self.posts:
            answer = await self.http.get(f"/api/v1/posts/{post_id}", headers=self.voter.auth)
            if answer.status_code != 200:
                continue
            found += 1
            # my_vote is read from the votes service at every request.
            if post_id in voted and answer.json()["my_vote"] == 1:
                found += 1
        for comment_id in self.comments:
            answer = await self.http.get(f"/api/v1/comments/{comment_id}")
            if answer.status_code == 200 and answer.json()["post_id"] == self.anchor:
                found += 1
        return found
