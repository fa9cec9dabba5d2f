"""Summaries, summary jobs, on-demand requests, the outbox and processed events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.migration_ops import create_event_tables_v1, drop_event_tables_v1

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "summarizer"


def upgrade() -> None:
    op.create_table(
        "summaries",
        sa.Column("post_id", sa.Uuid(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("comment_count", sa.BigInteger(), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_summaries")),
        sa.CheckConstraint("comment_count >= 0", name=op.f("ck_summaries_comment_count")),
        schema=SCHEMA,
    )

    op.create_table(
        "summary_jobs",
        sa.Column("post_id", sa.Uuid(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_triggered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("forced", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_summary_jobs")),
        schema=SCHEMA,
    )
    op.create_index("ix_summary_jobs_due_at", "summary_jobs", ["due_at"], schema=SCHEMA)

    op.create_table(
        "summary_requests",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("post_id", sa.Uuid(), nullable=False),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_summary_requests")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_summary_requests_user_id_requested_at",
        "summary_requests",
        ["user_id", "requested_at"],
        schema=SCHEMA,
    )

    create_event_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_event_tables_v1(SCHEMA)
    op.drop_table("summary_requests", schema=SCHEMA)
    op.drop_table("summary_jobs", schema=SCHEMA)
    op.drop_table("summaries", schema=SCHEMA)
