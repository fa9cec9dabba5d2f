"""The tables of schema "posts": posts, and the outbox and processed-events tables.

A post carries copies of numbers other services own (the vote tally from
votes, the comment count from comments), kept current by consuming their
events, plus the ranks derived from the tally. Ranks are stored so every
listing is a keyset walk down an index instead of a sort of the whole table:

| sort | order | per-community index | all-communities index |
|---|---|---|---|
| hot | hot_rank, id | ix_posts_community_hot | ix_posts_hot |
| new | created_at, id | ix_posts_community_new | ix_posts_new |
| top | score, id | ix_posts_community_top | ix_posts_top |
| controversial | controversy_rank, id | ix_posts_community_controversial | ix_posts_controversial |

Each is partial (`NOT removed AND NOT deleted`): hidden posts are never
listed, so they cost the listing indexes nothing. The indexes are ascending
and read backwards, which serves `ORDER BY rank DESC, id DESC` and the row
comparison `(rank, id) < (:rank, :id)` of the cursor as one index condition.
A windowed top/controversial listing may instead range-scan the `new` index
on created_at and sort the few rows in the window; the planner picks by
statistics. Pinned posts have a small index of their own, search a GIN index
over a stored tsvector (title weight A, body weight B).

A trade-off, knowingly taken: a new tally changes indexed ranks, so its
UPDATE is never a HOT update and adds entries to every index of the row,
the GIN one included (GIN's pending list, left on, keeps that an append).
Should vote traffic make this hurt, move the tally, ranks and listing
indexes into a narrow side table keyed by post id (Lemmy's post_aggregates);
the listing queries already touch only those columns.

migrations/versions/ mirrors these definitions by hand; change both together.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Double,
    Index,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.consumer import processed_events_table
from common.contract import POST_TITLE_MAX, URL_MAX
from common.db import schema_metadata
from common.outbox import outbox_table

SCHEMA = "posts"
metadata = schema_metadata(SCHEMA)

LISTED = "NOT removed AND NOT deleted"
SEARCH_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, body), 'B')"
)


class Base(DeclarativeBase):
    metadata = metadata


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    community_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    author_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    title: Mapped[str] = mapped_column(String(POST_TITLE_MAX))
    body: Mapped[str] = mapped_column(Text, server_default=text("''"))
    url: Mapped[str] = mapped_column(String(URL_MAX), server_default=text("''"))
    score: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    upvotes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    downvotes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # The votes service's version of the tally above; only a newer one replaces it.
    tally_version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    comment_count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    hot_rank: Mapped[float] = mapped_column(Double)
    controversy_rank: Mapped[float] = mapped_column(Double, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    removed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    pinned: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    deleted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Kept by Postgres itself, so it can never disagree with the text.
    search: Mapped[str] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR, persisted=True), deferred=True
    )

    __table_args__ = (
        Index(
            "ix_posts_community_hot",
            "community_id",
            "hot_rank",
            "id",
            postgresql_where=text(LISTED),
        ),
        Index(
            "ix_posts_community_new",
            "community_id",
            "created_at",
            "id",
            postgresql_where=text(LISTED),
        ),
        Index(
            "ix_posts_community_top", "community_id", "score", "id", postgresql_where=text(LISTED)
        ),
        Index(
            "ix_posts_community_controversial",
            "community_id",
            "controversy_rank",
            "id",
            postgresql_where=text(LISTED),
        ),
        Index("ix_posts_hot", "hot_rank", "id", postgresql_where=text(LISTED)),
        Index("ix_posts_new", "created_at", "id", postgresql_where=text(LISTED)),
        Index("ix_posts_top", "score", "id", postgresql_where=text(LISTED)),
        Index("ix_posts_controversial", "controversy_rank", "id", postgresql_where=text(LISTED)),
        Index(
            "ix_posts_community_pinned",
            "community_id",
            "hot_rank",
            "id",
            postgresql_where=text(f"pinned AND {LISTED}"),
        ),
        # A user's posts (profiles, moderation and erasure requests).
        Index("ix_posts_author_id", "author_id", "id"),
        Index(
            "ix_posts_search",
            "search",
            postgresql_using="gin",
            postgresql_where=text(LISTED),
        ),
    )


outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
