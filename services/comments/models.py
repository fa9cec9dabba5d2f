"""The tables of schema "comments": comments, per-post counters, outbox, processed events.

A comment row is one node of its post's tree, kept four ways at once: its
parent (adjacency list), its materialised `path` (domain.py explains the
encoding; collated "C" so a subtree is one byte-ordered index range), its
`depth`, and two counters, `child_count` (direct replies) and
`descendant_count` (the whole subtree), which a create keeps current in the
same transaction. Rows are never deleted: a deleted or removed comment stays
as a placeholder so its replies keep their place.

Vote tallies are copies from votes' VoteCast events (`tally_version` guards
against replays and reordering), with `best_rank` (Wilson lower bound) and
`controversy_rank` stored beside them so every sort is an index scan.

`comment_path_seq` numbers path segments (domain.py). `post_counters` holds
each post's number of visible comments; every change to it takes the row's
lock as the last step before commit, so the counts a post's events carry are
in the order the changes committed, and the lock is held only briefly.

migrations/versions/ mirrors these definitions by hand; change both together.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Sequence,
    SmallInteger,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.consumer import processed_events_table
from common.contract import COMMENT_MAX_DEPTH
from common.db import schema_metadata
from common.outbox import outbox_table

SCHEMA = "comments"
metadata = schema_metadata(SCHEMA)

# The text search configuration of comment bodies (stemming, stop words).
SEARCH_CONFIG = "english"
TOP_LEVEL = text("parent_id IS NULL")
VISIBLE = text("deleted_at IS NULL AND removed_at IS NULL")


class Base(DeclarativeBase):
    metadata = metadata


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    post_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    community_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("comments.id"), index=True)
    author_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    body: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text(collation="C"))
    depth: Mapped[int] = mapped_column(SmallInteger)
    child_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    descendant_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    score: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    upvotes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    downvotes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    tally_version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    best_rank: Mapped[float] = mapped_column(Double, server_default=text("0"))
    controversy_rank: Mapped[float] = mapped_column(Double, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    removal_reason: Mapped[str | None] = mapped_column(Text)
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed(f"to_tsvector('{SEARCH_CONFIG}'::regconfig, body)", persisted=True)
    )

    __table_args__ = (
        CheckConstraint(f"depth BETWEEN 0 AND {COMMENT_MAX_DEPTH}", name="depth_range"),
        CheckConstraint("(parent_id IS NULL) = (depth = 0)", name="top_level_has_no_parent"),
        # A subtree is one range of this index; unique because a path names one comment.
        Index("uq_comments_post_id_path", "post_id", "path", unique=True),
        # One index per sort of the top-level listing: keyset pages are index scans.
        Index("ix_comments_top_best", "post_id", "best_rank", "id", postgresql_where=TOP_LEVEL),
        Index("ix_comments_top_score", "post_id", "score", "id", postgresql_where=TOP_LEVEL),
        Index("ix_comments_top_new", "post_id", "created_at", "id", postgresql_where=TOP_LEVEL),
        Index(
            "ix_comments_top_controversy",
            "post_id",
            "controversy_rank",
            "id",
            postgresql_where=TOP_LEVEL,
        ),
        # Search finds visible comments only, so only they are indexed.
        Index(
            "ix_comments_search_vector",
            "search_vector",
            postgresql_using="gin",
            postgresql_where=VISIBLE,
        ),
    )


class PostCounter(Base):
    __tablename__ = "post_counters"

    post_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # Comments of the post that are neither deleted nor removed.
    comment_count: Mapped[int] = mapped_column(BigInteger)


PATH_SEQUENCE = Sequence("comment_path_seq", metadata=metadata)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
