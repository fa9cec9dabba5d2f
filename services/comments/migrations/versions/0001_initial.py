"""Comments, per-post counters, the outbox and the processed-events log.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
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

SCHEMA = "comments"
TOP_LEVEL = sa.text("parent_id IS NULL")
VISIBLE = sa.text("deleted_at IS NULL AND removed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("post_id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(collation="C"), nullable=False),
        sa.Column("depth", sa.SmallInteger(), nullable=False),
        sa.Column("child_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("descendant_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("score", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("upvotes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("downvotes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("tally_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("best_rank", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("controversy_rank", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_by", sa.Uuid(), nullable=True),
        sa.Column("removal_reason", sa.Text(), nullable=True),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, body)", persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_comments"),
        sa.ForeignKeyConstraint(
            ["parent_id"], [f"{SCHEMA}.comments.id"], name="fk_comments_parent_id_comments"
        ),
        sa.CheckConstraint("depth BETWEEN 0 AND 10", name="ck_comments_depth_range"),
        sa.CheckConstraint(
            "(parent_id IS NULL) = (depth = 0)", name="ck_comments_top_level_has_no_parent"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_comments_parent_id", "comments", ["parent_id"], schema=SCHEMA)
    op.create_index("ix_comments_author_id", "comments", ["author_id"], schema=SCHEMA)
    op.create_index(
        "uq_comments_post_id_path", "comments", ["post_id", "path"], unique=True, schema=SCHEMA
    )
    for name, column in (
        ("ix_comments_top_best", "best_rank"),
        ("ix_comments_top_score", "score"),
        ("ix_comments_top_new", "created_at"),
        ("ix_comments_top_controversy", "controversy_rank"),
    ):
        op.create_index(
            name, "comments", ["post_id", column, "id"], schema=SCHEMA, postgresql_where=TOP_LEVEL
        )
    op.create_index(
        "ix_comments_search_vector",
        "comments",
        ["search_vector"],
        schema=SCHEMA,
        postgresql_using="gin",
        postgresql_where=VISIBLE,
    )

    op.execute(sa.schema.CreateSequence(sa.Sequence("comment_path_seq", schema=SCHEMA)))
    op.create_table(
        "post_counters",
        sa.Column("post_id", sa.Uuid(), nullable=False),
        sa.Column("comment_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("post_id", name="pk_post_counters"),
        schema=SCHEMA,
    )

    create_event_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_event_tables_v1(SCHEMA)
    op.drop_table("post_counters", schema=SCHEMA)
    op.drop_table("comments", schema=SCHEMA)
    op.execute(sa.schema.DropSequence(sa.Sequence("comment_path_seq", schema=SCHEMA)))
