"""Communities, memberships, moderators, bans, the outbox and processed events.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

from common.migration_ops import create_event_tables_v1, drop_event_tables_v1

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "communities"

SEARCH_DOCUMENT = (
    "setweight(to_tsvector('simple'::regconfig, name), 'A') || "
    "setweight(to_tsvector('english'::regconfig, title), 'B') || "
    "setweight(to_tsvector('english'::regconfig, description), 'C')"
)


def _membership_like(name: str, *columns: sa.Column[Any]) -> None:
    """A (community_id, user_id) table whose rows go away with their community."""
    op.create_table(
        name,
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("community_id", "user_id", name=f"pk_{name}"),
        sa.ForeignKeyConstraint(
            ["community_id"],
            [f"{SCHEMA}.communities.id"],
            name=f"fk_{name}_community_id_communities",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )


def upgrade() -> None:
    op.create_table(
        "communities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(21), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("rules", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("creator_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("member_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("post_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "search", TSVECTOR(), sa.Computed(SEARCH_DOCUMENT, persisted=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_communities"),
        sa.CheckConstraint("member_count >= 0", name="ck_communities_member_count_not_negative"),
        sa.CheckConstraint("post_count >= 0", name="ck_communities_post_count_not_negative"),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_communities_lower_name",
        "communities",
        [sa.text("lower(name)")],
        unique=True,
        schema=SCHEMA,
    )
    op.create_index(
        "ix_communities_popular",
        "communities",
        [sa.text("member_count DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_communities_new",
        "communities",
        [sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_communities_search",
        "communities",
        ["search"],
        postgresql_using="gin",
        schema=SCHEMA,
    )

    _membership_like(
        "memberships",
        sa.Column(
            "joined_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index(
        "ix_memberships_user_id_joined_at",
        "memberships",
        ["user_id", sa.text("joined_at DESC"), "community_id"],
        schema=SCHEMA,
    )
    _membership_like(
        "moderators",
        sa.Column(
            "appointed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("appointed_by", sa.Uuid(), nullable=True),
    )
    _membership_like(
        "bans",
        sa.Column("banned_by", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(500), server_default="", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )

    create_event_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_event_tables_v1(SCHEMA)
    for table in ("bans", "moderators", "memberships"):
        op.drop_table(table, schema=SCHEMA)
    op.drop_table("communities", schema=SCHEMA)
