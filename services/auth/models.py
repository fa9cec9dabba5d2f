"""The tables of schema "auth": users, session (token) families and refresh tokens.

A login starts a token family (the session); every refresh spends the
family's current refresh token and adds its successor. Only SHA-256 digests of
refresh tokens are stored, so a database dump cannot be replayed. Spent tokens
stay until they expire: presenting one again is the sign of a stolen token and
revokes the whole family. migrations/versions/ mirrors these definitions by
hand; change both together.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    LargeBinary,
    String,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.contract import EMAIL_MAX, USERNAME_MAX
from common.db import schema_metadata
from common.ids import uuid7

metadata = schema_metadata("auth")

# bcrypt hashes are 60 characters; room for a future scheme prefix.
PASSWORD_HASH_MAX = 255
REVOKE_REASON_MAX = 32


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __tablename__ = "users"
    # Fill server defaults (created_at, karma) through INSERT ... RETURNING.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - SQLAlchemy's declarative API

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    # As typed, after NFKC: what everyone sees.
    username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    # Case-folded: the lookup key and one uniqueness rule.
    username_canonical: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    # Look-alike skeleton (domain.username_skeleton): the other uniqueness rule.
    username_skeleton: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    email_canonical: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(PASSWORD_HASH_MAX))
    karma: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TokenFamily(Base):
    """One session: the chain of refresh tokens that started with one login."""

    __tablename__ = "token_families"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(User.id, ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "logout" or "reuse" (a spent refresh token came back).
    revoke_reason: Mapped[str | None] = mapped_column(String(REVOKE_REASON_MAX))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    family_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(TokenFamily.id, ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(User.id, ondelete="CASCADE"), index=True)
    # sha256 of the token (domain.refresh_token_digest); the token itself is never stored.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Indexed for the purge of expired tokens.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The successor issued when this token was spent. Indexed because deleting a
    # token (the purge) looks up the rows that point at it.
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("refresh_tokens.id", ondelete="SET NULL"), index=True
    )
