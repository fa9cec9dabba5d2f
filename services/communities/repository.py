"""SQLAlchemy queries over schema "communities", and nothing else.

A repository works inside the session it is given and never commits: the
caller's `Database.transaction()` block is the unit of work, so a membership
row, the count it changes and the event that announces it are kept together
or not at all. Every listing is a keyset query over an index; no OFFSET.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.communities.domain import (
    CommunityChanges,
    CommunityDraft,
    Permissions,
    SearchQuery,
    Sort,
    name_key,
)
from services.communities.models import bans, communities, memberships, moderators

# Every column a reader needs; `search` is only for matching and stays in the database.
COLUMNS = (
    communities.c.id,
    communities.c.name,
    communities.c.title,
    communities.c.description,
    communities.c.rules,
    communities.c.creator_id,
    communities.c.created_at,
    communities.c.member_count,
    communities.c.post_count,
)
# ts_rank_cd normalisation 32 (rank / (rank + 1)) keeps text ranks below 1, so
# the bonus of an exact name match puts that community first.
_RANK_NORMALISATION = 32
_EXACT_NAME_BONUS = 1.0


def _active_ban(community_id: uuid.UUID, user_id: uuid.UUID) -> sa.Exists:
    return sa.exists().where(
        bans.c.community_id == community_id,
        bans.c.user_id == user_id,
        sa.or_(bans.c.expires_at.is_(None), bans.c.expires_at > sa.func.now()),
    )


def _is_member(community_id: uuid.UUID, user_id: uuid.UUID) -> sa.Exists:
    return sa.exists().where(
        memberships.c.community_id == community_id, memberships.c.user_id == user_id
    )


def _is_moderator(community_id: uuid.UUID, user_id: uuid.UUID) -> sa.Exists:
    return sa.exists().where(
        moderators.c.community_id == community_id, moderators.c.user_id == user_id
    )


class CommunitiesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _flag(self, condition: sa.Exists) -> bool:
        return bool(await self._session.scalar(sa.select(condition)))

    # Communities

    async def insert_community(
        self, draft: CommunityDraft, *, community_id: uuid.UUID, creator_id: uuid.UUID
    ) -> sa.Row[Any]:
        """Insert a community of one member, its creator; IntegrityError if the name is taken."""
        return (
            await self._session.execute(
                sa.insert(communities)
                .values(
                    id=community_id,
                    name=draft.name,
                    title=draft.title,
                    description=draft.description,
                    rules=[rule.as_json() for rule in draft.rules],
                    creator_id=creator_id,
                    member_count=1,
                )
                .returning(*COLUMNS)
            )
        ).one()

    async def by_id(self, community_id: uuid.UUID) -> sa.Row[Any] | None:
        return (
            await self._session.execute(sa.select(*COLUMNS).where(communities.c.id == community_id))
        ).one_or_none()

    async def by_name(self, name: str, *, lock: bool = False) -> sa.Row[Any] | None:
        """The community called name in any case; locked until commit when lock is set.

        The lock (FOR NO KEY UPDATE) is how every change of members, moderators
        and bans is serialised per community: counts stay exact, and two
        moderators removing each other cannot leave none behind. It does not
        block inserts that only reference the row (their FK takes KEY SHARE).
        """
        statement = sa.select(*COLUMNS).where(sa.func.lower(communities.c.name) == name_key(name))
        if lock:
            statement = statement.with_for_update(key_share=True)
        return (await self._session.execute(statement)).one_or_none()

    async def by_ids(self, community_ids: Collection[uuid.UUID]) -> Sequence[sa.Row[Any]]:
        if not community_ids:
            return []
        return (
            await self._session.execute(
                sa.select(*COLUMNS).where(communities.c.id.in_(community_ids))
            )
        ).all()

    async def page(
        self, sort: Sort, after: tuple[Any, uuid.UUID] | None, limit: int
    ) -> Sequence[sa.Row[Any]]:
        key = communities.c.member_count if sort is Sort.POPULAR else communities.c.created_at
        statement = sa.select(*COLUMNS).order_by(key.desc(), communities.c.id.desc()).limit(limit)
        if after is not None:
            statement = statement.where(
                sa.tuple_(key, communities.c.id)
                < sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
            )
        return (await self._session.execute(statement)).all()

    async def search(
        self, query: SearchQuery, after: tuple[float, int, uuid.UUID] | None, limit: int
    ) -> Sequence[sa.Row[Any]]:
        """Matches of query, best first, with their rank (a float) in column `rank`.

        A community matches when its document matches the query as a web search
        (stemmed English words, quotes, `or`, `-word`) or every word as a prefix
        (`pyth` finds `python`), minus the `-word`s. Every tsquery is a bound
        parameter; nothing the user typed becomes SQL text.
        """
        words = sa.func.websearch_to_tsquery(sa.literal_column("'english'::regconfig"), query.text)
        prefixes: sa.ColumnElement[Any] = sa.func.to_tsquery(
            sa.literal_column("'simple'::regconfig"), query.prefix
        )
        if query.exclusions:
            prefixes = prefixes.op("&&")(
                sa.func.websearch_to_tsquery(
                    sa.literal_column("'english'::regconfig"), query.exclusions
                )
            )
        tsquery = words.op("||")(prefixes)
        exact = sa.case(
            (sa.func.lower(communities.c.name) == query.exact_name, _EXACT_NAME_BONUS),
            else_=0.0,
        )
        rank = sa.cast(
            sa.func.ts_rank_cd(
                communities.c.search, tsquery, sa.literal_column(str(_RANK_NORMALISATION))
            )
            + exact,
            sa.Double,
        ).label("rank")
        matches = sa.select(*COLUMNS, rank).where(communities.c.search.op("@@")(tsquery)).subquery()
        statement = (
            sa.select(matches)
            .order_by(matches.c.rank.desc(), matches.c.member_count.desc(), matches.c.id.desc())
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(
                sa.tuple_(matches.c.rank, matches.c.member_count, matches.c.id)
                < sa.tuple_(
                    sa.literal(after[0], sa.Double), sa.literal(after[1]), sa.literal(after[2])
                )
            )
        return (await self._session.execute(statement)).all()

    async def update_community(self, community_id: uuid.UUID, changes: CommunityChanges) -> None:
        values: dict[str, Any] = {}
        if changes.title is not None:
            values["title"] = changes.title
        if changes.description is not None:
            values["description"] = changes.description
        if changes.rules is not None:
            values["rules"] = [rule.as_json() for rule in changes.rules]
        if values:
            await self._session.execute(
                sa.update(communities).where(communities.c.id == community_id).values(**values)
            )

    async def change_member_count(self, community_id: uuid.UUID, delta: int) -> int:
        """Add delta in place (never read-modify-write) and return the new count."""
        count = await self._session.scalar(
            sa.update(communities)
            .where(communities.c.id == community_id)
            .values(member_count=communities.c.member_count + delta)
            .returning(communities.c.member_count)
        )
        return int(count or 0)

    async def change_post_count(self, community_id: uuid.UUID, delta: int) -> bool:
        """Add delta in place, never below zero; False when there is no such community."""
        changed = await self._session.scalar(
            sa.update(communities)
            .where(communities.c.id == community_id)
            .values(post_count=sa.func.greatest(communities.c.post_count + delta, 0))
            .returning(communities.c.id)
        )
        return changed is not None

    # Members

    async def add_member(self, community_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """True when user_id was not a member and now is."""
        added = await self._session.scalar(
            insert(memberships)
            .values(community_id=community_id, user_id=user_id)
            .on_conflict_do_nothing()
            .returning(memberships.c.user_id)
        )
        return added is not None

    async def remove_member(self, community_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """True when user_id was a member and no longer is."""
        removed = await self._session.scalar(
            sa.delete(memberships)
            .where(memberships.c.community_id == community_id, memberships.c.user_id == user_id)
            .returning(memberships.c.user_id)
        )
        return removed is not None

    async def joined_among(
        self, user_id: uuid.UUID, community_ids: Collection[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of community_ids user_id is a member of (is_member of a page, one query)."""
        if not community_ids:
            return set()
        found = await self._session.scalars(
            sa.select(memberships.c.community_id).where(
                memberships.c.user_id == user_id, memberships.c.community_id.in_(community_ids)
            )
        )
        return set(found)

    async def memberships_of(self, user_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
        """The communities user_id joined, most recent first (an index-only scan)."""
        found = await self._session.scalars(
            sa.select(memberships.c.community_id)
            .where(memberships.c.user_id == user_id)
            .order_by(memberships.c.joined_at.desc(), memberships.c.community_id)
            .limit(limit)
        )
        return list(found)

    # Moderators

    async def add_moderator(
        self, community_id: uuid.UUID, user_id: uuid.UUID, *, appointed_by: uuid.UUID | None
    ) -> bool:
        added = await self._session.scalar(
            insert(moderators)
            .values(community_id=community_id, user_id=user_id, appointed_by=appointed_by)
            .on_conflict_do_nothing()
            .returning(moderators.c.user_id)
        )
        return added is not None

    async def remove_moderator(self, community_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        removed = await self._session.scalar(
            sa.delete(moderators)
            .where(moderators.c.community_id == community_id, moderators.c.user_id == user_id)
            .returning(moderators.c.user_id)
        )
        return removed is not None

    async def is_moderator(self, community_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return await self._flag(_is_moderator(community_id, user_id))

    async def moderator_count(self, community_id: uuid.UUID) -> int:
        count = await self._session.scalar(
            sa.select(sa.func.count())
            .select_from(moderators)
            .where(moderators.c.community_id == community_id)
        )
        return int(count or 0)

    async def moderators_of(
        self, community_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Each community's moderators in appointment order (one query for a whole page)."""
        result: dict[uuid.UUID, list[uuid.UUID]] = {cid: [] for cid in community_ids}
        if not community_ids:
            return result
        rows = await self._session.execute(
            sa.select(moderators.c.community_id, moderators.c.user_id)
            .where(moderators.c.community_id.in_(community_ids))
            .order_by(moderators.c.community_id, moderators.c.appointed_at, moderators.c.user_id)
        )
        for community_id, user_id in rows:
            result[community_id].append(user_id)
        return result

    # Bans

    async def is_banned(self, community_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Whether an active (permanent or not yet expired) ban holds."""
        return await self._flag(_active_ban(community_id, user_id))

    async def put_ban(
        self,
        community_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        banned_by: uuid.UUID,
        reason: str,
        expires_at: datetime | None,
    ) -> None:
        """Ban, or replace the terms of an existing (possibly expired) ban."""
        statement = insert(bans).values(
            community_id=community_id,
            user_id=user_id,
            banned_by=banned_by,
            reason=reason,
            expires_at=expires_at,
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[bans.c.community_id, bans.c.user_id],
                set_={
                    "banned_by": statement.excluded.banned_by,
                    "reason": statement.excluded.reason,
                    "expires_at": statement.excluded.expires_at,
                    "created_at": sa.func.now(),
                },
            )
        )

    async def delete_ban(self, community_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        removed = await self._session.scalar(
            sa.delete(bans)
            .where(bans.c.community_id == community_id, bans.c.user_id == user_id)
            .returning(bans.c.user_id)
        )
        return removed is not None

    # Authorisation

    async def permissions(self, community_id: uuid.UUID, user_id: uuid.UUID | None) -> Permissions:
        if user_id is None:
            found = await self._session.scalar(
                sa.select(communities.c.id).where(communities.c.id == community_id)
            )
            return Permissions(community_exists=found is not None)
        row = (
            await self._session.execute(permissions_statement(community_id, user_id))
        ).one_or_none()
        if row is None:
            return Permissions()
        is_member, is_moderator, is_banned = row
        return Permissions(
            community_exists=True,
            is_member=bool(is_member),
            is_moderator=bool(is_moderator),
            is_banned=bool(is_banned),
        )


def permissions_statement(community_id: uuid.UUID, user_id: uuid.UUID) -> sa.Select[Any]:
    """Existence and a user's standing in one statement: four primary-key probes.

    No row means no such community. Every service checks this before acting in
    a community, so it must stay this cheap (the integration tests EXPLAIN it).
    """
    return (
        sa.select(
            _is_member(community_id, user_id),
            _is_moderator(community_id, user_id),
            _active_ban(community_id, user_id),
        )
        .select_from(communities)
        .where(communities.c.id == community_id)
    )
