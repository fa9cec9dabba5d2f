"""The tables of schema "votes": votes, tallies, idempotency keys, and the outbox.

`votes` holds each user's live vote (+1 or -1; a withdrawn vote is deleted), keyed
by (user_id, target_type, target_id): that primary key is the one-vote-per-user
rule and the index GetMyVotes reads. `tallies` is the authoritative count of one
target, changed in the same transaction as the vote; its `version` grows by one
per change and travels in vote_cast events, so the copies in posts and comments
apply only newer tallies. `idempotency_keys` keeps a request's first answer for
24 hours. `processed_events` exists, like in every service, for consumers
(votes consumes nothing today). migrations/versions/ mirrors these definitions by
hand; change both together.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    SmallInteger,
    String,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.consumer import processed_events_table
from common.contract import IDEMPOTENCY_KEY_MAX
from common.db import schema_metadata
from common.outbox import outbox_table

metadata = schema_metadata("votes")

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)

# target_type holds domain.TargetType values (1 post, 2 comment).
_TARGET_TYPES = "target_type IN (1, 2)"


class Base(DeclarativeBase):
    metadata = metadata


class Vote(Base):
    __tablename__ = "votes"
    __table_args__ = (
        CheckConstraint(_TARGET_TYPES, name="target_type"),
        CheckConstraint("direction IN (-1, 1)", name="direction"),
        # Recounting a target (repairs, audits) reads its votes through this.
        Index("ix_votes_target_type_target_id", "target_type", "target_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    target_type: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    target_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    direction: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Tally(Base):
    __tablename__ = "tallies"
    __table_args__ = (
        CheckConstraint(_TARGET_TYPES, name="target_type"),
        CheckConstraint("upvotes >= 0 AND downvotes >= 0", name="counts"),
        CheckConstraint("score = upvotes - downvotes", name="score"),
    )

    target_type: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    target_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    upvotes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    downvotes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    score: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyKey(Base):
    """A user's key, the request it was first used for, and that request's answer.

    The row is inserted first in the vote's transaction and answered before it
    commits, so nobody ever reads a key without its answer.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint(_TARGET_TYPES, name="target_type"),
        CheckConstraint("direction IN (-1, 0, 1)", name="direction"),
        # The purge of expired keys walks this.
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX), primary_key=True)
    target_type: Mapped[int] = mapped_column(SmallInteger)
    target_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    direction: Mapped[int] = mapped_column(SmallInteger)
    # The answer; NULL only inside the transaction that claimed the key.
    score: Mapped[int | None] = mapped_column(BigInteger)
    upvotes: Mapped[int | None] = mapped_column(BigInteger)
    downvotes: Mapped[int | None] = mapped_column(BigInteger)
    my_vote: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
