"""Posts with their listing and search indexes, the outbox and processed events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from common.migration_ops import create_event_tables_v1, drop_event_tables_v1

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "posts"
LISTED = "NOT removed AND NOT deleted"
SEARCH_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, body), 'B')"
)

# (name, columns) of the partial listing indexes; ascending, read backwards.
LISTING_INDEXES = (
    ("ix_posts_community_hot", ["community_id", "hot_rank", "id"]),
    ("ix_posts_community_new", ["community_id", "created_at", "id"]),
    ("ix_posts_community_top", ["community_id", "score", "id"]),
    ("ix_posts_community_controversial", ["community_id", "controversy_rank", "id"]),
    ("ix_posts_hot", ["hot_rank", "id"]),
    ("ix_posts_new", ["created_at", "id"]),
    ("ix_posts_top", ["score", "id"]),
    ("ix_posts_controversial", ["controversy_rank", "id"]),
)


def upgrade() -> None:
    op.create_table(
        "posts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("url", sa.String(2000), server_default=sa.text("''"), nullable=False),
        sa.Column("score", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("upvotes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("downvotes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("tally_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("comment_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("hot_rank", sa.Double(), nullable=False),
        sa.Column("controversy_rank", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("removed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(SEARCH_VECTOR, persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_posts"),
        schema=SCHEMA,
    )
    for name, columns in LISTING_INDEXES:
        op.create_index(name, "posts", columns, schema=SCHEMA, postgresql_where=sa.text(LISTED))
    op.create_index(
        "ix_posts_community_pinned",
        "posts",
        ["community_id", "hot_rank", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text(f"pinned AND {LISTED}"),
    )
    op.create_index("ix_posts_author_id", "posts", ["author_id", "id"], schema=SCHEMA)
    op.create_index(
        "ix_posts_search",
        "posts",
        ["search"],
        schema=SCHEMA,
        postgresql_using="gin",
        postgresql_where=sa.text(LISTED),
    )

    create_event_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_event_tables_v1(SCHEMA)
    op.drop_table("posts", schema=SCHEMA)
