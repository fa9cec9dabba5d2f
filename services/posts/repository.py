"""SQLAlchemy queries over schema "posts", and nothing else.

A repository works inside the session it is given and never commits: the
caller's `Database.transaction()` block is the unit of work.

Listings are keyset queries: `WHERE (rank, id) < (:rank, :id) ORDER BY rank
DESC, id DESC LIMIT n`, over the partial indexes described in models.py, so a
page costs the same on page 1 and page 1,000 and rows added meanwhile never
shift it. A feed over many communities runs one such index walk per community
(a LATERAL join, at most n rows each) and merges the results, which stays
cheap whether the feed's communities are busy or quiet; scanning the global
index with a community filter would read every other community's posts first
when the feed's are quiet. The statements are built by module functions so
the tests can EXPLAIN exactly what the service runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnClause, ColumnElement, Select, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.posts.domain import Scope, Sort, ranks
from services.posts.models import Post

# What a cursor position holds: the rank of the last row shown (its type
# follows the sort: float, int or timestamp) and its id.
RankValue = float | int | datetime
SEARCH_CONFIG: ColumnClause[Any] = sa.literal_column("'english'::regconfig")

RANK_COLUMNS: dict[Sort, InstrumentedAttribute[Any]] = {
    Sort.HOT: Post.hot_rank,
    Sort.NEW: Post.created_at,
    Sort.TOP: Post.score,
    Sort.CONTROVERSIAL: Post.controversy_rank,
}


# What a listing reads of a post: every column but the search vector and the tally's
# version, as Core rows rather than ORM entities (no identity map, no instrumented
# objects per row: a listing only renders them). The ranks make the next cursor.
LISTED_COLUMNS = tuple(
    column for column in Post.__table__.columns if column.key not in {"search", "tally_version"}
)
ListedPost = sa.Row[Any]


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of a listing: which posts, in which order, after which row, how many."""

    sort: Sort
    scope: Scope
    limit: int
    # Oldest creation time included (TOP/CONTROVERSIAL windows); None for no bound.
    cutoff: datetime | None = None
    # The (rank, id) of the last row already shown; None for the first page.
    after: tuple[RankValue, uuid.UUID] | None = None
    # A community's HOT listing shows its pinned posts apart, on the first page.
    exclude_pinned: bool = False


def _listed(post: Any) -> list[ColumnElement[bool]]:
    """The predicate of the partial indexes, spelled so the planner can match it."""
    return [sa.not_(post.removed), sa.not_(post.deleted)]


def _after(
    rank: ColumnElement[Any], post_id: Any, after: tuple[RankValue, uuid.UUID]
) -> ColumnElement[bool]:
    """`(rank, id) < (:rank, :id)`: a row comparison a btree index serves as one condition."""
    value, last_id = after
    return sa.tuple_(rank, post_id) < sa.tuple_(
        sa.literal(value, rank.type), sa.literal(last_id, sa.Uuid())
    )


def _page_conditions(post: Any, page: PageQuery) -> list[ColumnElement[bool]]:
    rank = getattr(post, RANK_COLUMNS[page.sort].key)
    conditions = _listed(post)
    if page.cutoff is not None:
        conditions.append(post.created_at >= page.cutoff)
    if page.after is not None:
        conditions.append(_after(rank, post.id, page.after))
    if page.exclude_pinned:
        conditions.append(sa.not_(post.pinned))
    return conditions


def _ordered(post: Any, sort: Sort) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    rank = getattr(post, RANK_COLUMNS[sort].key)
    return rank.desc(), post.id.desc()


def listing_statement(page: PageQuery) -> Select[Any]:
    """The query of one listing page (see the module docstring for its shape)."""
    communities = page.scope.communities
    if communities is None or len(communities) == 1:
        statement = select(*LISTED_COLUMNS).where(*_page_conditions(Post, page))
        if communities is not None:
            statement = statement.where(Post.community_id == communities[0])
        return statement.order_by(*_ordered(Post, page.sort)).limit(page.limit)

    wanted = (
        sa.func.unnest(sa.bindparam("feed_communities", list(communities), ARRAY(sa.Uuid)))
        .table_valued("community_id")
        .render_derived(name="wanted")
    )
    per_community = (
        select(*LISTED_COLUMNS)
        .where(Post.community_id == wanted.c.community_id, *_page_conditions(Post, page))
        .order_by(*_ordered(Post, page.sort))
        .limit(page.limit)
        .lateral("feed_post")
    )
    return (
        select(*per_community.c)
        .select_from(wanted)
        .join(per_community, sa.true())
        .order_by(*_ordered(per_community.c, page.sort))
        .limit(page.limit)
    )


def pinned_statement(community_id: uuid.UUID, limit: int) -> Select[Any]:
    return (
        select(*LISTED_COLUMNS)
        .where(Post.community_id == community_id, Post.pinned, *_listed(Post))
        .order_by(Post.hot_rank.desc(), Post.id.desc())
        .limit(limit)
    )


def search_rank(query: str) -> ColumnElement[float]:
    tsquery = sa.func.websearch_to_tsquery(SEARCH_CONFIG, query)
    # As double precision: a `real` printed as text does not read back as the same number,
    # and the cursor must compare equal to the rank it came from.
    return sa.cast(sa.func.ts_rank_cd(Post.search, tsquery), sa.Double)


def search_statement(
    query: str,
    *,
    community_id: uuid.UUID | None,
    after: tuple[float, uuid.UUID] | None,
    limit: int,
) -> Select[tuple[Post, float]]:
    """Best match first (ts_rank_cd, title weighted over body), then newest id."""
    tsquery = sa.func.websearch_to_tsquery(SEARCH_CONFIG, query)
    rank = search_rank(query)
    statement = select(Post, rank.label("rank")).where(
        Post.search.op("@@")(tsquery), *_listed(Post)
    )
    if community_id is not None:
        statement = statement.where(Post.community_id == community_id)
    if after is not None:
        statement = statement.where(_after(rank, Post.id, after))
    return statement.order_by(rank.desc(), Post.id.desc()).limit(limit)


class PostsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, post: Post) -> None:
        self._session.add(post)
        await self._session.flush()

    async def get(self, post_id: uuid.UUID) -> Post | None:
        return await self._session.get(Post, post_id)

    async def get_for_update(self, post_id: uuid.UUID) -> Post | None:
        """The post, locked until commit, so concurrent edits and moderation apply one by one."""
        statement = (
            select(Post)
            .where(Post.id == post_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self._session.scalars(statement)).one_or_none()

    async def get_many(self, post_ids: Collection[uuid.UUID]) -> Sequence[Post]:
        if not post_ids:
            return []
        return (await self._session.scalars(select(Post).where(Post.id.in_(post_ids)))).all()

    async def _rows(self, statement: Select[Any]) -> Sequence[ListedPost]:
        """Core rows on the session's connection: no identity map, no loaded entities."""
        connection = await self._session.connection()
        return (await connection.execute(statement)).all()

    async def page(self, page: PageQuery) -> Sequence[ListedPost]:
        return await self._rows(listing_statement(page))

    async def pinned(self, community_id: uuid.UUID, limit: int) -> Sequence[ListedPost]:
        return await self._rows(pinned_statement(community_id, limit))

    async def search(
        self,
        query: str,
        *,
        community_id: uuid.UUID | None,
        after: tuple[float, uuid.UUID] | None,
        limit: int,
    ) -> list[tuple[Post, float]]:
        rows = await self._session.execute(
            search_statement(query, community_id=community_id, after=after, limit=limit)
        )
        return [(post, float(rank)) for post, rank in rows]

    # Copies of other services' numbers, kept current by events.

    async def apply_tally(
        self, post_id: uuid.UUID, *, score: int, upvotes: int, downvotes: int, version: int
    ) -> bool:
        """Store a tally and its ranks if it is newer than the stored one; True when applied.

        One conditional UPDATE decides, so concurrent consumers (replicas) can
        never put an older tally over a newer one.
        """
        created_at = await self._session.scalar(select(Post.created_at).where(Post.id == post_id))
        if created_at is None:
            return False
        hot_rank, controversy_rank = ranks(upvotes, downvotes, created_at)
        applied = await self._session.scalar(
            update(Post)
            .where(Post.id == post_id, Post.tally_version < version)
            .values(
                score=score,
                upvotes=upvotes,
                downvotes=downvotes,
                tally_version=version,
                hot_rank=hot_rank,
                controversy_rank=controversy_rank,
            )
            .returning(Post.id)
            .execution_options(synchronize_session=False)
        )
        return applied is not None

    async def set_comment_count(self, post_id: uuid.UUID, count: int) -> bool:
        applied = await self._session.scalar(
            update(Post)
            .where(Post.id == post_id)
            .values(comment_count=count)
            .returning(Post.id)
            .execution_options(synchronize_session=False)
        )
        return applied is not None
