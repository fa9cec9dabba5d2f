"""EXPLAIN (ANALYZE, BUFFERS) of every listing query, exactly as the services run them.

Each query is made by calling the service's own repository method on a
session of the service's own role, with a listener that records the SQL and
parameters SQLAlchemy sends; every recorded statement is then run again under
EXPLAIN (ANALYZE, BUFFERS). So the plans are of the statements production
sends, not of hand-written look-alikes. Each statement then runs 40 more
times, one at a time: plainly from Python (the round trip: median, p95,
worst; it includes turning the rows into Python objects) and under
EXPLAIN (ANALYZE, TIMING OFF) (the server's execution time, whose p95 is
the database time of the targets). The plan is checked for a sequential
scan of a big table: a listing must never need one.
"""

from __future__ import annotations

import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bench.harness.measure import percentile
from common.db import database_url
from common.settings import DatabaseSettings
from services.comments import domain as comments_domain
from services.comments.repository import CommentsRepository
from services.communities.domain import Sort as CommunitySort
from services.communities.repository import CommunitiesRepository
from services.posts.domain import Scope, Sort, Window, window_cutoff
from services.posts.repository import PageQuery, PostsRepository

# Big tables: a sequential scan of one in a listing plan is a finding.
BIG_TABLES = ("posts", "comments", "votes", "tallies", "memberships")
REPEATS = 40
_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
_EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")


@dataclass(frozen=True, slots=True)
class Explained:
    name: str
    service: str
    sql: str
    plan: str
    execution_ms: float
    # Server-side execution time of the repeats (EXPLAIN ANALYZE, TIMING OFF).
    server_p95_ms: float
    # Round trips from Python of the repeats.
    median_ms: float
    p95_ms: float
    max_ms: float
    seq_scans: list[str]

    @property
    def listing(self) -> bool:
        """A listing query (the targets' subject), not a search."""
        return "search" not in self.name

    @property
    def index_only(self) -> bool:
        return not any(table in BIG_TABLES for table in self.seq_scans)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service": self.service,
            "sql": self.sql,
            "plan": self.plan,
            "execution_ms": self.execution_ms,
            "server_p95_ms": round(self.server_p95_ms, 3),
            "median_ms": round(self.median_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "listing": self.listing,
            "seq_scans": self.seq_scans,
            "served_by_indexes": self.index_only,
        }


Recorded = list[tuple[str, Any]]


@contextmanager
def recording(engine: AsyncEngine) -> Iterator[Recorded]:
    recorded: Recorded = []

    def listener(  # noqa: PLR0917 - SQLAlchemy's before_cursor_execute signature
        conn: object, cursor: object, statement: str, parameters: Any, context: object, many: bool
    ) -> None:
        del conn, cursor, context, many
        if not statement.lstrip().upper().startswith(("SET ", "BEGIN", "SELECT 1")):
            recorded.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        yield recorded
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listener)


Call = Callable[[AsyncSession], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    service: str
    call: Call


async def _explain_case(engine: AsyncEngine, case: Case) -> list[Explained]:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    with recording(engine) as recorded:
        async with sessions() as session:
            await case.call(session)
            await session.rollback()
    results = []
    for index, (statement, parameters) in enumerate(recorded):
        name = case.name if len(recorded) == 1 else f"{case.name} ({index + 1}/{len(recorded)})"
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = "\n".join(str(row[0]) for row in rows)
            timings, server = [], []
            for _ in range(REPEATS):
                started = time.perf_counter()
                await conn.exec_driver_sql(statement, parameters)
                timings.append((time.perf_counter() - started) * 1000)
                quiet = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, TIMING OFF) " + statement, parameters
                )
                found = _EXECUTION.search("\n".join(str(row[0]) for row in quiet))
                server.append(float(found.group(1)) if found else 0.0)
            await conn.rollback()
        match = _EXECUTION.search(plan)
        results.append(
            Explained(
                name=name,
                service=case.service,
                sql=statement,
                plan=plan,
                execution_ms=float(match.group(1)) if match else -1.0,
                server_p95_ms=percentile(sorted(server), 0.95),
                median_ms=statistics.median(timings),
                p95_ms=percentile(sorted(timings), 0.95),
                max_ms=max(timings),
                seq_scans=sorted(set(_SEQ_SCAN.findall(plan))),
            )
        )
    return results


@dataclass(frozen=True, slots=True)
class Targets:
    """Ids the cases need, looked up in the loaded data set."""

    largest_community: uuid.UUID
    smallest_community: uuid.UUID
    feed_communities: tuple[uuid.UUID, ...]
    showcase_post: uuid.UUID
    biggest_thread: uuid.UUID
    # (hot_rank, id) of the 1,000th post of the hot listing: a deep keyset page starts there.
    deep_hot_position: tuple[float, uuid.UUID]


async def find_targets(settings: DatabaseSettings, showcase_post: str) -> Targets:
    engine = create_async_engine(database_url(settings, role="", admin=True))
    try:
        async with engine.connect() as conn:
            ordered = (
                await conn.exec_driver_sql(
                    "SELECT id FROM communities.communities ORDER BY post_count DESC, id"
                )
            ).all()
            busiest_member = (
                await conn.exec_driver_sql(
                    "SELECT user_id FROM communities.memberships GROUP BY user_id "
                    "ORDER BY count(*) DESC, user_id LIMIT 1"
                )
            ).scalar_one()
            feed = (
                await conn.exec_driver_sql(
                    "SELECT community_id FROM communities.memberships WHERE user_id = %(u)s",
                    {"u": busiest_member},
                )
            ).all()
            deep = (
                await conn.exec_driver_sql(
                    "SELECT hot_rank, id FROM posts.posts WHERE NOT removed AND NOT deleted "
                    "ORDER BY hot_rank DESC, id DESC OFFSET 999 LIMIT 1"
                )
            ).one()
            thread = (
                await conn.exec_driver_sql(
                    "SELECT post_id FROM comments.post_counters ORDER BY comment_count DESC LIMIT 1"
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return Targets(
        largest_community=ordered[0][0],
        smallest_community=ordered[-1][0],
        feed_communities=tuple(row[0] for row in feed),
        showcase_post=uuid.UUID(showcase_post),
        biggest_thread=thread,
        deep_hot_position=(float(deep[0]), deep[1]),
    )


def _posts_cases(targets: Targets) -> list[Case]:
    now = datetime.now(UTC)
    day = window_cutoff(Window.DAY, now)
    cases: list[Case] = []

    def page(name: str, query: PageQuery) -> None:
        async def call(session: AsyncSession) -> object:
            return await PostsRepository(session).page(query)

        cases.append(Case(name, "posts", call))

    scopes = {
        "all communities": Scope.everything(),
        "largest community": Scope.community(targets.largest_community),
        "smallest community": Scope.community(targets.smallest_community),
        f"feed of {len(targets.feed_communities)} communities": Scope.feed(
            targets.feed_communities
        ),
    }
    for label, scope in scopes.items():
        single = scope.single
        page(f"posts hot, {label}", PageQuery(Sort.HOT, scope, 26, exclude_pinned=single))
        page(f"posts new, {label}", PageQuery(Sort.NEW, scope, 26))
        page(f"posts top (day), {label}", PageQuery(Sort.TOP, scope, 26, cutoff=day))
        page(f"posts top (all), {label}", PageQuery(Sort.TOP, scope, 26))
        page(
            f"posts controversial (day), {label}",
            PageQuery(Sort.CONTROVERSIAL, scope, 26, cutoff=day),
        )

    async def deep_page(session: AsyncSession) -> object:
        return await PostsRepository(session).page(
            PageQuery(Sort.HOT, Scope.everything(), 26, after=targets.deep_hot_position)
        )

    cases.append(Case("posts hot, all communities, page 41 (keyset)", "posts", deep_page))

    async def pinned(session: AsyncSession) -> object:
        return await PostsRepository(session).pinned(targets.largest_community, 25)

    cases.append(Case("posts pinned, largest community", "posts", pinned))

    async def search(session: AsyncSession) -> object:
        return await PostsRepository(session).search(
            "garden tomato", community_id=None, after=None, limit=26
        )

    cases.append(Case("posts search 'garden tomato'", "posts", search))
    return cases


def _tree_case(name: str, post_id: uuid.UUID) -> Case:
    async def call(session: AsyncSession) -> object:
        repo = CommentsRepository(session)
        roots = await repo.top_level_page(
            post_id, comments_domain.CommentSort.BEST, after=None, limit=26
        )
        shown = roots[:25]
        limits = comments_domain.allocate_replies(
            [comments_domain.reply_bound(root, 10) for root in shown],
            per_root=comments_domain.REPLIES_PER_ROOT,
            budget=comments_domain.REPLIES_PER_PAGE,
        )
        return await repo.subtrees(
            post_id,
            [(root.path, limit) for root, limit in zip(shown, limits, strict=True)],
            sort=comments_domain.CommentSort.BEST,
            max_depth=10,
        )

    return Case(name, "comments", call)


def _comments_cases(targets: Targets) -> list[Case]:
    async def search(session: AsyncSession) -> object:
        return await CommentsRepository(session).search(
            "garden tomato", post_id=None, community_id=None, after=None, limit=26
        )

    return [
        _tree_case("comments page (best), the 500-comment post", targets.showcase_post),
        _tree_case("comments page (best), the biggest thread", targets.biggest_thread),
        Case("comments search 'garden tomato'", "comments", search),
    ]


def _communities_cases() -> list[Case]:
    async def popular(session: AsyncSession) -> object:
        return await CommunitiesRepository(session).page(CommunitySort.POPULAR, None, 26)

    async def newest(session: AsyncSession) -> object:
        return await CommunitiesRepository(session).page(CommunitySort.NEW, None, 26)

    return [
        Case("communities popular", "communities", popular),
        Case("communities new", "communities", newest),
    ]


async def explain_all(settings: DatabaseSettings, targets: Targets) -> list[Explained]:
    cases = [*_posts_cases(targets), *_comments_cases(targets), *_communities_cases()]
    engines: dict[str, AsyncEngine] = {}
    results: list[Explained] = []
    try:
        for case in cases:
            if case.service not in engines:
                engines[case.service] = create_async_engine(
                    database_url(settings, role=f"agora_{case.service}")
                )
            results.extend(await _explain_case(engines[case.service], case))
    finally:
        for engine in engines.values():
            await engine.dispose()
    return results
