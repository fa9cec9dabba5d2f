"""The tables of schema "communities": communities, memberships, moderators, bans, and events.

Counts (member_count, post_count) live on the community row and are changed
with `SET n = n + delta` in the same transaction as the row that causes the
change, so they stay exact under concurrency without a COUNT(*) per read.
Rules are a small, bounded list that is always read and replaced whole, so they
are one JSONB column rather than a table. `search` is a stored generated
tsvector (name weighted A, title B, description C) with a GIN index.
migrations/versions/ mirrors these definitions by hand; change both together.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

from common.consumer import processed_events_table
from common.contract import COMMUNITY_TITLE_MAX
from common.db import schema_metadata
from common.outbox import outbox_table
from services.communities.domain import BAN_REASON_MAX

SCHEMA = "communities"
NAME_MAX = 21

metadata = schema_metadata(SCHEMA)

# The name is one lexeme per word ('simple': no stemming, so prefixes of it
# match); title and description are stemmed as English.
SEARCH_DOCUMENT = (
    "setweight(to_tsvector('simple'::regconfig, name), 'A') || "
    "setweight(to_tsvector('english'::regconfig, title), 'B') || "
    "setweight(to_tsvector('english'::regconfig, description), 'C')"
)

communities = sa.Table(
    "communities",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # As created; looked up and unique by lower(name).
    sa.Column("name", sa.String(NAME_MAX), nullable=False),
    sa.Column("title", sa.String(COMMUNITY_TITLE_MAX), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # [{"title": ..., "description": ...}, ...] in display order.
    sa.Column("rules", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("creator_id", sa.Uuid, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("member_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("post_count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("search", TSVECTOR, sa.Computed(SEARCH_DOCUMENT, persisted=True), nullable=False),
    sa.CheckConstraint("member_count >= 0", name="member_count_not_negative"),
    sa.CheckConstraint("post_count >= 0", name="post_count_not_negative"),
)
# Case-insensitive uniqueness, and the index every lookup by name uses.
sa.Index("uq_communities_lower_name", sa.func.lower(communities.c.name), unique=True)
# ListCommunities POPULAR and NEW: each keyset page is one index range scan.
sa.Index("ix_communities_popular", communities.c.member_count.desc(), communities.c.id.desc())
sa.Index("ix_communities_new", communities.c.created_at.desc(), communities.c.id.desc())
sa.Index("ix_communities_search", communities.c.search, postgresql_using="gin")

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column(
        "community_id",
        sa.Uuid,
        sa.ForeignKey(communities.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column(
        "joined_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
# ListMemberships (home feed): newest first, answered from the index alone.
sa.Index(
    "ix_memberships_user_id_joined_at",
    memberships.c.user_id,
    memberships.c.joined_at.desc(),
    memberships.c.community_id,
)

moderators = sa.Table(
    "moderators",
    metadata,
    sa.Column(
        "community_id",
        sa.Uuid,
        sa.ForeignKey(communities.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("user_id", sa.Uuid, primary_key=True),
    # Appointment order is the display order (the creator first).
    sa.Column(
        "appointed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Null for the creator, who appointed nobody but was there first.
    sa.Column("appointed_by", sa.Uuid),
)

bans = sa.Table(
    "bans",
    metadata,
    sa.Column(
        "community_id",
        sa.Uuid,
        sa.ForeignKey(communities.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("banned_by", sa.Uuid, nullable=False),
    sa.Column("reason", sa.String(BAN_REASON_MAX), nullable=False, server_default=""),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Null means permanent; a ban whose time has passed no longer counts.
    sa.Column("expires_at", sa.DateTime(timezone=True)),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
