"""SQLAlchemy queries over schema "comments", and nothing else.

A repository works inside the session it is given and never commits: the
caller's `Database.transaction()` block is the unit of work, so a comment, its
ancestors' counters, the post's counter and the staged event are kept together
or not at all.

Lock order, which keeps writers free of deadlocks: comment rows first (a
reply locks its ancestors in path order), the post's `post_counters` row last,
right before commit, so it is held for as short a time as possible. Row locks
on comments are FOR NO KEY UPDATE, which does not conflict with the KEY SHARE
lock a reply's foreign key takes on its parent.

Reads select plain columns into `CommentRecord`s (no ORM identity map), which
keeps assembling a 2,000-comment page cheap.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, REGCONFIG, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.comments.domain import PATH_RANGE_END, SEGMENT_WIDTH, CommentRecord, CommentSort
from services.comments.models import PATH_SEQUENCE, SEARCH_CONFIG, Comment, PostCounter

# In CommentRecord's field order.
COLUMNS: tuple[Any, ...] = (
    Comment.id,
    Comment.post_id,
    Comment.community_id,
    Comment.parent_id,
    Comment.author_id,
    Comment.body,
    Comment.path,
    Comment.depth,
    Comment.child_count,
    Comment.descendant_count,
    Comment.score,
    Comment.upvotes,
    Comment.downvotes,
    Comment.best_rank,
    Comment.controversy_rank,
    Comment.created_at,
    Comment.edited_at,
    Comment.deleted_at.is_not(None).label("deleted"),
    Comment.removed_at.is_not(None).label("removed"),
)

_RANK_COLUMN: dict[CommentSort, InstrumentedAttribute[Any]] = {
    CommentSort.BEST: Comment.best_rank,
    CommentSort.TOP: Comment.score,
    CommentSort.NEW: Comment.created_at,
    CommentSort.CONTROVERSIAL: Comment.controversy_rank,
}


def _bound(value: Any, like: sa.ColumnElement[Any] | InstrumentedAttribute[Any]) -> Any:
    """value as a parameter of the same SQL type as the column it is compared with."""
    return sa.bindparam(None, value, type_=like.type)


def _records(rows: Sequence[sa.Row[Any]]) -> list[CommentRecord]:
    return [CommentRecord(*row) for row in rows]


def ancestor_paths(path: str) -> list[str]:
    """The paths of a comment and of every comment above it."""
    return [path[:end] for end in range(SEGMENT_WIDTH, len(path) + 1, SEGMENT_WIDTH)]


@functools.cache
def _subtrees_statement(sort: CommentSort) -> sa.Select[Any]:
    """`CommentsRepository.subtrees`' statement for one sort, built once.

    Only its values change between calls (post_id, paths, limits, max_depth),
    so they are parameters: building the statement and its cache key anew
    was about 8% of the comments service's CPU on a 500-comment page.
    """
    rank = _RANK_COLUMN[sort]
    lanes = (
        sa.func.unnest(
            sa.bindparam("paths", type_=ARRAY(sa.Text)),
            sa.bindparam("limits", type_=ARRAY(sa.Integer)),
        )
        .table_valued("root_path", "lane_limit", with_ordinality="lane")
        .render_derived()
    )
    replies = (
        sa.select(*COLUMNS, rank.label("sort_rank"))
        .where(
            Comment.post_id == sa.bindparam("post_id", type_=Comment.post_id.type),
            Comment.path > lanes.c.root_path,
            Comment.path < lanes.c.root_path.concat(PATH_RANGE_END),
            Comment.depth <= sa.bindparam("max_depth", type_=sa.Integer),
        )
        .order_by(Comment.depth, rank.desc(), Comment.id.desc())
        .limit(lanes.c.lane_limit)
        .lateral("replies")
    )
    return (
        sa.select(*[column for column in replies.c if column.key != "sort_rank"])
        .select_from(lanes.join(replies, sa.true()))
        .order_by(
            lanes.c.lane,
            replies.c.depth,
            replies.c.sort_rank.desc(),
            replies.c.id.desc(),
        )
    )


class CommentsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _rows(
        self, statement: sa.Select[Any], parameters: dict[str, Any] | None = None
    ) -> Sequence[sa.Row[Any]]:
        """Run a read through the session's connection: Core rows, no ORM bookkeeping."""
        connection = await self._session.connection()
        return (await connection.execute(statement, parameters)).all()

    # Counters

    async def next_path_number(self) -> int:
        """A fresh number for a path segment; sequences take no lock, and gaps are fine."""
        number = await self._session.scalar(sa.select(PATH_SEQUENCE.next_value()))
        return int(number or 0)

    async def change_visible(self, post_id: uuid.UUID, delta: int) -> int:
        """Add delta (possibly 0) to the post's visible comments; the count after it.

        Takes the counter row's lock until commit, so callers do this last:
        the events that carry the count are then made in commit order.
        """
        statement = (
            insert(PostCounter)
            .values(post_id=post_id, comment_count=max(delta, 0))
            .on_conflict_do_update(
                index_elements=[PostCounter.post_id],
                set_={"comment_count": PostCounter.comment_count + delta},
            )
            .returning(PostCounter.comment_count)
        )
        return int((await self._session.execute(statement)).scalar_one())

    # One comment

    async def comment(
        self, comment_id: uuid.UUID, *, for_update: bool = False
    ) -> CommentRecord | None:
        statement = sa.select(*COLUMNS).where(Comment.id == comment_id)
        if for_update:
            statement = statement.with_for_update(of=Comment, key_share=True)
        row = (await self._session.execute(statement)).one_or_none()
        return CommentRecord(*row) if row is not None else None

    async def comments(self, ids: Collection[uuid.UUID]) -> list[CommentRecord]:
        if not ids:
            return []
        rows = (await self._session.execute(sa.select(*COLUMNS).where(Comment.id.in_(ids)))).all()
        return _records(rows)

    async def insert(
        self,
        *,
        comment_id: uuid.UUID,
        post_id: uuid.UUID,
        community_id: uuid.UUID,
        parent_id: uuid.UUID | None,
        author_id: uuid.UUID,
        body: str,
        path: str,
        depth: int,
    ) -> CommentRecord:
        row = (
            await self._session.execute(
                sa.insert(Comment)
                .values(
                    id=comment_id,
                    post_id=post_id,
                    community_id=community_id,
                    parent_id=parent_id,
                    author_id=author_id,
                    body=body,
                    path=path,
                    depth=depth,
                )
                .returning(*COLUMNS)
            )
        ).one()
        return CommentRecord(*row)

    async def count_new_reply(self, post_id: uuid.UUID, parent: CommentRecord) -> bool:
        """One more reply under parent: its child_count, and every ancestor's descendant_count.

        The ancestors (their paths are the prefixes of the parent's) are locked
        root first, the one order every reply uses. Returns whether the parent
        is still open to replies once locked: a moderator may have removed it
        since it was read.
        """
        ancestors = (
            sa.select(Comment.id)
            .where(Comment.post_id == post_id, Comment.path.in_(ancestor_paths(parent.path)))
            .order_by(Comment.path)
            .with_for_update(key_share=True)
            .subquery()
        )
        rows = await self._session.execute(
            sa.update(Comment)
            .where(Comment.id == ancestors.c.id)
            .values(
                descendant_count=Comment.descendant_count + 1,
                child_count=Comment.child_count + sa.case((Comment.id == parent.id, 1), else_=0),
            )
            .returning(Comment.id, Comment.removed_at)
        )
        return any(row.id == parent.id and row.removed_at is None for row in rows)

    async def set_body(
        self, comment_id: uuid.UUID, body: str, at: datetime
    ) -> CommentRecord | None:
        """Edit a comment that is still neither deleted nor removed; None otherwise."""
        row = (
            await self._session.execute(
                sa.update(Comment)
                .where(
                    Comment.id == comment_id,
                    Comment.deleted_at.is_(None),
                    Comment.removed_at.is_(None),
                )
                .values(body=body, edited_at=at)
                .returning(*COLUMNS)
            )
        ).one_or_none()
        return CommentRecord(*row) if row is not None else None

    async def mark_deleted(self, comment_id: uuid.UUID, at: datetime) -> CommentRecord:
        """Soft delete: the row stays in the tree, its text is erased."""
        row = (
            await self._session.execute(
                sa.update(Comment)
                .where(Comment.id == comment_id)
                .values(deleted_at=at, body="")
                .returning(*COLUMNS)
            )
        ).one()
        return CommentRecord(*row)

    async def set_removed(
        self,
        comment_id: uuid.UUID,
        *,
        at: datetime | None,
        by: uuid.UUID | None,
        reason: str | None,
    ) -> CommentRecord:
        """Remove (at set) or restore (at None) a comment."""
        row = (
            await self._session.execute(
                sa.update(Comment)
                .where(Comment.id == comment_id)
                .values(removed_at=at, removed_by=by, removal_reason=reason)
                .returning(*COLUMNS)
            )
        ).one()
        return CommentRecord(*row)

    async def apply_tally(
        self,
        comment_id: uuid.UUID,
        *,
        version: int,
        score: int,
        upvotes: int,
        downvotes: int,
        best_rank: float,
        controversy_rank: float,
    ) -> bool:
        """Store a tally unless the comment already holds this version or a newer one."""
        result = await self._session.execute(
            sa.update(Comment)
            .where(Comment.id == comment_id, Comment.tally_version < version)
            .values(
                tally_version=version,
                score=score,
                upvotes=upvotes,
                downvotes=downvotes,
                best_rank=best_rank,
                controversy_rank=controversy_rank,
            )
            .returning(Comment.id)
        )
        return result.one_or_none() is not None

    # Trees

    async def top_level_page(
        self,
        post_id: uuid.UUID,
        sort: CommentSort,
        *,
        after: tuple[Any, uuid.UUID] | None,
        limit: int,
    ) -> list[CommentRecord]:
        """Top-level comments in display order after the keyset position `after`."""
        rank = _RANK_COLUMN[sort]
        statement = sa.select(*COLUMNS).where(
            Comment.post_id == post_id, Comment.parent_id.is_(None)
        )
        if after is not None:
            last_rank, last_id = after
            statement = statement.where(
                sa.tuple_(rank, Comment.id)
                < sa.tuple_(_bound(last_rank, rank), _bound(last_id, Comment.id))
            )
        statement = statement.order_by(rank.desc(), Comment.id.desc()).limit(limit)
        return _records(await self._rows(statement))

    async def subtrees(
        self,
        post_id: uuid.UUID,
        roots: Sequence[tuple[str, int]],
        *,
        sort: CommentSort,
        max_depth: int,
    ) -> list[CommentRecord]:
        """Replies under each (root path, limit), breadth first, best first within a level.

        One statement: each root's subtree is one range scan of the (post_id,
        path) index cut at max_depth (absolute) and at the root's limit, so the
        rows of a page are bounded however big its threads are. Rows come root
        by root in the order given, as domain.assemble_trees expects.
        """
        wanted = [(path, limit) for path, limit in roots if limit > 0]
        if not wanted:
            return []
        parameters = {
            "post_id": post_id,
            "paths": [path for path, _ in wanted],
            "limits": [limit for _, limit in wanted],
            "max_depth": max_depth,
        }
        return _records(await self._rows(_subtrees_statement(sort), parameters))

    # Search

    async def search(
        self,
        query: str,
        *,
        post_id: uuid.UUID | None,
        community_id: uuid.UUID | None,
        after: tuple[float, uuid.UUID] | None,
        limit: int,
    ) -> list[tuple[CommentRecord, float]]:
        """Visible comments matching a web-search style query, best match first."""
        tsquery = sa.func.websearch_to_tsquery(sa.cast(SEARCH_CONFIG, REGCONFIG), query)
        # float8 prints exactly (shortest round trip), so a cursor's rank compares equal.
        relevance = sa.cast(sa.func.ts_rank_cd(Comment.search_vector, tsquery), sa.Double)
        statement = sa.select(*COLUMNS, relevance.label("relevance")).where(
            Comment.search_vector.bool_op("@@")(tsquery),
            Comment.deleted_at.is_(None),
            Comment.removed_at.is_(None),
        )
        if post_id is not None:
            statement = statement.where(Comment.post_id == post_id)
        if community_id is not None:
            statement = statement.where(Comment.community_id == community_id)
        if after is not None:
            last_relevance, last_id = after
            statement = statement.where(
                sa.tuple_(relevance, Comment.id)
                < sa.tuple_(_bound(last_relevance, relevance), _bound(last_id, Comment.id))
            )
        statement = statement.order_by(relevance.desc(), Comment.id.desc()).limit(limit)
        rows = await self._rows(statement)
        return [(CommentRecord(*row[:-1]), float(row[-1])) for row in rows]
