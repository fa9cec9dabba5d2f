"""SQLAlchemy queries over schema "auth", and nothing else.

A repository works inside the session it is given and never commits: the
caller's `Database.transaction()` block is the unit of work, so a use case
that writes several rows either keeps all of them or none.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Row, Select, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import RefreshToken, TokenFamily, User

RowT = TypeVar("RowT")

# What anyone may see of a user, plus the lookup key (for batch reads by name).
PUBLIC_COLUMNS = (User.id, User.username, User.username_canonical, User.created_at, User.karma)
PublicUserRow = tuple[uuid.UUID, str, str, datetime, int]

# Only one replica purges at a time; the key is this schema's own advisory lock.
_PURGE_LOCK_KEY = 0x61757468_0001  # "auth" + 1


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _one(self, statement: Select[tuple[RowT]]) -> RowT | None:
        """The one row a unique lookup finds, or None."""
        return (await self._session.scalars(statement)).one_or_none()

    # Users

    async def add_user(self, user: User) -> None:
        """Insert now, so a unique violation surfaces here rather than at commit."""
        self._session.add(user)
        await self._session.flush()

    async def user_by_id(self, user_id: uuid.UUID) -> User | None:
        return await self._session.get(User, user_id)

    async def user_by_username(self, canonical: str) -> User | None:
        return await self._one(select(User).where(User.username_canonical == canonical))

    async def user_by_email(self, canonical: str) -> User | None:
        return await self._one(select(User).where(User.email_canonical == canonical))

    async def taken_fields(self, *, skeleton: str, email_canonical: str) -> set[str]:
        """Which of username (by look-alike skeleton) and email already belong to someone."""
        rows = await self._session.execute(
            select(
                User.username_skeleton == skeleton, User.email_canonical == email_canonical
            ).where(
                (User.username_skeleton == skeleton) | (User.email_canonical == email_canonical)
            )
        )
        taken: set[str] = set()
        for name_taken, email_taken in rows:
            if name_taken:
                taken.add("username")
            if email_taken:
                taken.add("email")
        return taken

    async def public_users(
        self, ids: Collection[uuid.UUID], canonicals: Collection[str]
    ) -> Sequence[Row[PublicUserRow]]:
        """The public columns of the users named by id or canonical name.

        Core rows on the session's connection, not ORM entities: a batch read of
        a page's authors needs five columns, not an identity map and loaded
        objects (in-process, 2.5 against 1.4 ms of CPU for 25 users, see
        docs/performance.md).
        """
        if not ids and not canonicals:
            return []
        statement = select(*PUBLIC_COLUMNS).where(
            User.id.in_(ids) | User.username_canonical.in_(canonicals)
        )
        connection = await self._session.connection()
        return (await connection.execute(statement)).all()

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self._session.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )

    # Sessions

    async def add_family(self, family: TokenFamily) -> None:
        """Insert now: its tokens reference it, and the ORM knows no relationship to order by."""
        self._session.add(family)
        await self._session.flush()

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self._session.add(token)

    async def refresh_token_for_update(self, token_hash: bytes) -> RefreshToken | None:
        """The token row, locked until commit, so two refreshes of one token run one at a time.

        The second waits for the first to commit and then sees the token spent,
        which is exactly the reuse that revokes the family.
        """
        return await self._one(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        )

    async def refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        return await self._one(select(RefreshToken).where(RefreshToken.token_hash == token_hash))

    async def family(self, family_id: uuid.UUID) -> TokenFamily | None:
        return await self._session.get(TokenFamily, family_id)

    async def family_for_update(self, family_id: uuid.UUID) -> TokenFamily | None:
        """The family row, locked, so a refresh and a revocation of it never interleave.

        Every path locks a token before its family (never the other way round),
        so these locks cannot deadlock.
        """
        return await self._session.get(TokenFamily, family_id, with_for_update=True)

    async def revoke_family(self, family_id: uuid.UUID, *, reason: str, at: datetime) -> None:
        """Revoke a family unless it already is (the first reason and time are kept)."""
        await self._session.execute(
            update(TokenFamily)
            .where(TokenFamily.id == family_id, TokenFamily.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason)
        )

    async def mark_spent(
        self, token_id: uuid.UUID, *, at: datetime, replaced_by: uuid.UUID
    ) -> None:
        """Record that token_id was exchanged for replaced_by (added in this session)."""
        # Insert the pending successor first: replaced_by references it.
        await self._session.flush()
        await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id)
            .values(used_at=at, replaced_by=replaced_by)
        )

    # Housekeeping

    async def try_lock_purge(self) -> bool:
        """Take this transaction's purge lock, unless another replica holds it."""
        locked = await self._session.scalar(select(func.pg_try_advisory_xact_lock(_PURGE_LOCK_KEY)))
        return bool(locked)

    async def purge_expired(self, *, before: datetime, limit: int) -> int:
        """Delete up to limit tokens that expired before `before`, then the families they emptied.

        An expired token is useless whether it is found or not, and a family
        whose every token has expired can never be refreshed again.
        """
        expired = (
            select(RefreshToken.id)
            .where(RefreshToken.expires_at < before)
            .limit(limit)
            .scalar_subquery()
        )
        families = (
            await self._session.scalars(
                delete(RefreshToken)
                .where(RefreshToken.id.in_(expired))
                .returning(RefreshToken.family_id)
            )
        ).all()
        if families:
            await self._session.execute(
                delete(TokenFamily).where(
                    TokenFamily.id.in_(set(families)),
                    ~exists().where(RefreshToken.family_id == TokenFamily.id),
                )
            )
        return len(families)
