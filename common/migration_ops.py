"""Migration operations shared by every service that publishes or consumes events.

These create the outbox (common.outbox.outbox_table) and processed-events
(common.consumer.processed_events_table) tables exactly as version 1 of
those tables, in a service's own schema. They are frozen: a migration that
ran must keep meaning what it meant, so a later change to either table is a
new `*_v2` operation called from a new migration, never an edit here. Each
service's test that compares its migrations with its models proves that the
live table definitions and these operations still agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB


def create_event_tables_v1(schema: str) -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        schema=schema,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
        schema=schema,
    )


def drop_event_tables_v1(schema: str) -> None:
    op.drop_table("processed_events", schema=schema)
    op.drop_table("outbox", schema=schema)
