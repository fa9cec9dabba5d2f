"""Votes, tallies, idempotency keys, the outbox and processed events.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.migration_ops import create_event_tables_v1, drop_event_tables_v1

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "votes"


def upgrade() -> None:
    # One live vote per (user, target): the primary key is the rule and GetMyVotes' index.
    op.create_table(
        "votes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("target_type", sa.SmallInteger(), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("direction", sa.SmallInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", "target_type", "target_id", name="pk_votes"),
        sa.CheckConstraint("target_type IN (1, 2)", name=op.f("ck_votes_target_type")),
        sa.CheckConstraint("direction IN (-1, 1)", name=op.f("ck_votes_direction")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_votes_target_type_target_id", "votes", ["target_type", "target_id"], schema=SCHEMA
    )

    op.create_table(
        "tallies",
        sa.Column("target_type", sa.SmallInteger(), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("upvotes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("downvotes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("score", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("target_type", "target_id", name="pk_tallies"),
        sa.CheckConstraint("target_type IN (1, 2)", name=op.f("ck_tallies_target_type")),
        sa.CheckConstraint("upvotes >= 0 AND downvotes >= 0", name=op.f("ck_tallies_counts")),
        sa.CheckConstraint("score = upvotes - downvotes", name=op.f("ck_tallies_score")),
        schema=SCHEMA,
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("target_type", sa.SmallInteger(), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("direction", sa.SmallInteger(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=True),
        sa.Column("upvotes", sa.BigInteger(), nullable=True),
        sa.Column("downvotes", sa.BigInteger(), nullable=True),
        sa.Column("my_vote", sa.SmallInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_keys"),
        sa.CheckConstraint("target_type IN (1, 2)", name=op.f("ck_idempotency_keys_target_type")),
        sa.CheckConstraint("direction IN (-1, 0, 1)", name=op.f("ck_idempotency_keys_direction")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], schema=SCHEMA
    )

    create_event_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_event_tables_v1(SCHEMA)
    op.drop_table("idempotency_keys", schema=SCHEMA)
    op.drop_table("tallies", schema=SCHEMA)
    op.drop_table("votes", schema=SCHEMA)
