"""The communities use cases: create, read, list, search, update, join, leave, moderate.

Each use case validates through domain, then reads and writes through the
repository inside one `Database.transaction()` (the unit of work), staging its
events in the outbox of the same transaction and waking the relay after
commit. Every change of members, moderators or bans first locks the community
row (CommunitiesRepository.by_name(lock=True)), so such changes to one
community run one at a time: member counts stay exact and rules such as
"never remove the last moderator" cannot be raced past. Calls to the auth
service happen before the transaction, never while holding a connection and a
lock.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from agora.events.v1 import events_pb2
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.cursors import decode_cursor, encode_cursor
from common.db import Database
from common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from common.ids import parse_uuid, uuid7
from common.metrics import business_counter
from common.outbox import Outbox
from services.communities import domain, events
from services.communities.domain import Community, Permissions, Sort
from services.communities.repository import CommunitiesRepository
from services.communities.users import UserDirectory

log = logging.getLogger("agora.communities")

COMMUNITIES = business_counter("communities", "Communities created.")

NAME_INDEX = "uq_communities_lower_name"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Community]
    # "" on the last page.
    next_cursor: str


def _caller(raw: str) -> uuid.UUID:
    """The acting user; the gateway only ever sends verified user ids."""
    caller = parse_uuid(raw)
    if caller is None:
        raise Unauthenticated("caller identity is not a user id")
    return caller


def _reader(raw: str | None) -> uuid.UUID | None:
    """The reading user, if any; an unusable identity reads as anonymous."""
    return parse_uuid(raw) if raw else None


def _target(raw: str) -> uuid.UUID:
    if not raw:
        raise InvalidArgument.for_field("user_id", "is required")
    target = parse_uuid(raw)
    if target is None:
        raise NotFound("user not found")
    return target


def _community_not_found() -> NotFound:
    return NotFound("community not found")


def _name_taken(error: IntegrityError) -> bool:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == NAME_INDEX


class CommunitiesService:
    def __init__(
        self,
        *,
        db: Database,
        outbox: Outbox,
        users: UserDirectory,
        cursor_secret: bytes,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._users = users
        self._cursor_secret = cursor_secret
        self._clock = clock

    # Reading

    async def _views(
        self, repo: CommunitiesRepository, rows: Sequence[sa.Row[Any]], reader: uuid.UUID | None
    ) -> list[Community]:
        """Rows as readers see them: moderators and the reader's membership, two queries a page."""
        ids = [row.id for row in rows]
        moderators = await repo.moderators_of(ids)
        joined = await repo.joined_among(reader, ids) if reader else set()
        return [
            Community(
                id=row.id,
                name=row.name,
                title=row.title,
                description=row.description,
                rules=domain.rules_from_json(row.rules),
                creator_id=row.creator_id,
                created_at=row.created_at,
                member_count=row.member_count,
                post_count=row.post_count,
                moderator_ids=tuple(moderators.get(row.id, ())),
                is_member=row.id in joined,
            )
            for row in rows
        ]

    async def get(
        self, *, community_id: str = "", name: str = "", reader: str | None = None
    ) -> Community:
        if not community_id and not name:
            raise InvalidArgument.for_field("name", "an id or a name is required")
        async with self._db.read() as session:
            repo = CommunitiesRepository(session)
            if community_id:
                parsed = parse_uuid(community_id)
                row = await repo.by_id(parsed) if parsed else None
            else:
                row = await repo.by_name(name) if domain.is_valid_name(name) else None
            if row is None:
                raise _community_not_found()
            (view,) = await self._views(repo, [row], _reader(reader))
            return view

    async def batch_get(self, ids: Sequence[str], reader: str | None = None) -> list[Community]:
        """The communities found, in request order; unknown and malformed ids are skipped."""
        wanted = domain.batch_ids(ids)
        async with self._db.read() as session:
            repo = CommunitiesRepository(session)
            rows = await repo.by_ids(wanted)
            by_id = {view.id: view for view in await self._views(repo, rows, _reader(reader))}
        return [by_id[i] for i in wanted if i in by_id]

    async def list_communities(
        self, sort: Sort, *, limit: int, cursor: str = "", reader: str | None = None
    ) -> Page:
        size = domain.page_size(limit)
        scope = f"communities.list.{sort.value}"
        after: tuple[Any, uuid.UUID] | None = None
        if cursor:
            position = decode_cursor(cursor, secret=self._cursor_secret, scope=scope)
            after = (
                domain.parse_popular_position(position)
                if sort is Sort.POPULAR
                else domain.parse_new_position(position)
            )
        async with self._db.read() as session:
            repo = CommunitiesRepository(session)
            rows = await repo.page(sort, after, size + 1)
            views = await self._views(repo, rows[:size], _reader(reader))
        next_cursor = ""
        if len(rows) > size:
            last = rows[size - 1]
            position = (
                domain.popular_position(last.member_count, last.id)
                if sort is Sort.POPULAR
                else domain.new_position(last.created_at, last.id)
            )
            next_cursor = encode_cursor(position, secret=self._cursor_secret, scope=scope)
        return Page(views, next_cursor)

    async def search(
        self, query: str, *, limit: int, cursor: str = "", reader: str | None = None
    ) -> Page:
        terms = domain.search_query(query)
        size = domain.page_size(limit)
        # The cursor is bound to the query: ranks mean nothing for another one.
        scope = f"communities.search\0{terms.text}"
        after = None
        if cursor:
            after = domain.parse_search_position(
                decode_cursor(cursor, secret=self._cursor_secret, scope=scope)
            )
        if not terms.has_terms:
            return Page([], "")
        async with self._db.read() as session:
            repo = CommunitiesRepository(session)
            rows = await repo.search(terms, after, size + 1)
            views = await self._views(repo, rows[:size], _reader(reader))
        next_cursor = ""
        if len(rows) > size:
            last = rows[size - 1]
            next_cursor = encode_cursor(
                domain.search_position(last.rank, last.member_count, last.id),
                secret=self._cursor_secret,
                scope=scope,
            )
        return Page(views, next_cursor)

    async def permissions(self, community_id: str, user_id: str) -> Permissions:
        """The standing of user_id in a community; malformed ids simply match nothing."""
        community = parse_uuid(community_id)
        if community is None:
            return Permissions()
        async with self._db.read() as session:
            return await CommunitiesRepository(session).permissions(
                community, parse_uuid(user_id) if user_id else None
            )

    async def memberships(self, user_id: str) -> list[uuid.UUID]:
        """The communities user_id joined, newest first, at most MEMBERSHIPS_MAX."""
        user = parse_uuid(user_id)
        if user is None:
            return []
        async with self._db.read() as session:
            return await CommunitiesRepository(session).memberships_of(user, domain.MEMBERSHIPS_MAX)

    # Creating and updating

    async def create(
        self,
        caller: str,
        *,
        name: str,
        title: str,
        description: str,
        rules: Sequence[tuple[str, str]],
    ) -> Community:
        """A new community; its creator is its first member and first moderator."""
        creator = _caller(caller)
        draft = domain.community_draft(name, title, description, rules)
        community_id = uuid7()
        try:
            async with self._db.transaction() as session:
                repo = CommunitiesRepository(session)
                row = await repo.insert_community(
                    draft, community_id=community_id, creator_id=creator
                )
                await repo.add_member(community_id, creator)
                await repo.add_moderator(community_id, creator, appointed_by=None)
                await self._outbox.stage(
                    session,
                    events.community_created(
                        community_id=community_id, name=draft.name, creator_id=creator
                    ),
                    events.membership_changed(
                        actor_id=creator,
                        community_id=community_id,
                        user_id=creator,
                        joined=True,
                        member_count=1,
                    ),
                )
                (view,) = await self._views(repo, [row], creator)
        except IntegrityError as error:
            if _name_taken(error):
                raise AlreadyExists(
                    "a community with this name already exists",
                    field_errors=(FieldError("name", "is taken"),),
                ) from None
            raise
        self._outbox.notify_committed()
        COMMUNITIES.inc()
        log.info("community created", extra={"community_id": str(community_id)})
        return view

    async def update(
        self,
        caller: str,
        name: str,
        *,
        title: str | None = None,
        description: str | None = None,
        rules: Sequence[tuple[str, str]] | None = None,
    ) -> Community:
        """Change title, description and/or rules; moderators only."""
        actor = _caller(caller)
        changes = domain.community_changes(title=title, description=description, rules=rules)
        async with self._db.transaction() as session:
            repo = CommunitiesRepository(session)
            community = await self._locked(repo, name)
            domain.require_moderator(await repo.is_moderator(community.id, actor))
            await repo.update_community(community.id, changes)
            row = await repo.by_id(community.id)
            assert row is not None  # locked above, so still there
            (view,) = await self._views(repo, [row], actor)
        return view

    # Membership

    async def join(self, caller: str, name: str) -> None:
        """Become a member; joining again changes nothing. Banned users are refused."""
        user = _caller(caller)
        staged = False
        async with self._db.transaction() as session:
            repo = CommunitiesRepository(session)
            community = await self._locked(repo, name)
            if await repo.is_banned(community.id, user):
                raise PermissionDenied("you are banned from this community")
            staged = await self._change_membership(
                session, repo, community.id, user, actor=user, joined=True
            )
        self._committed(staged)

    async def leave(self, caller: str, name: str) -> None:
        """Stop being a member; leaving again changes nothing. Moderators stay moderators."""
        user = _caller(caller)
        async with self._db.transaction() as session:
            repo = CommunitiesRepository(session)
            community = await self._locked(repo, name)
            staged = await self._change_membership(
                session, repo, community.id, user, actor=user, joined=False
            )
        self._committed(staged)

    # Moderation

    async def add_moderator(self, caller: str, name: str, user_id: str) -> None:
        """Appoint user_id (who also becomes a member); appointing a moderator again is a no-op."""
        actor = _caller(caller)
        target = _target(user_id)
        await self._require_moderator(name, actor)
        await self._require_user(target)
        async with self._db.transaction() as session:
            repo = CommunitiesRepository(session)
            community = await self._locked(repo, name)
            domain.require_moderator(await repo.is_moderator(community.id, actor))
            domain.check_appointment(target_is_banned=await repo.is_banned(community.id, target))
            staged = False
            if await repo.add_moderator(community.id, target, appointed_by=actor):
                staged = await self._change_membership(
                    session, repo, community.id, target, actor=actor, joined=True
                )
        self._committed(staged)

    async def remove_moderator(self, caller: str, name: str, user_id: str) -> None:
        """Dismiss a moderator (or oneself); never the last one. A non-moderator is a no-op."""
        actor = _caller(caller)
        target = _target(user_id)
        await self._require_moderator(name, actor)
        await self._require_user(target)
        async with self._db.transaction() as session:
            repo = CommunitiesRepository(session)
            community = await self._locked(repo, name)
            domain.require_moderator(await repo.is_moderator(community.id, actor))
            domain.check_moderator_removal(
                target_is_moderator=await repo.is_moderator(community.id, target),
                moderator_count=await repo.moderator_count(community.id),
            )
            await repo.remove_moderator(community.id, target)

    async def ban(
        self,
        caller: str,
        name: str,
        user_id: str,
        *,
        reason: str = "",
        expires_at: datetime | None = None,
    ) -> None:
        """Ban user_id (again: new terms replace the old), ending their membership."""
        actor = _caller(caller)
        target = _target(user_id)
        reason, expires_at = domain.ban_terms(reason, expires_at, now=self._clock())
        await self._require_moderator(name, actor)
        if target == actor:
            raise FailedPrecondition("you cannot ban yourself")
        await self._require_user(target)
        async with self._db.transaction() as session:
            repo = CommunitiesRepository(session)
            community = await self._locked(repo, name)
            domain.require_moderator(await repo.is_moderator(community.id, actor))
            domain.check_ban(
                actor_id=actor,
                target_id=target,
                target_is_moderator=await repo.is_moderator(community.id, target),
            )
            await repo.put_ban(
                community.id, target, banned_by=actor, reason=reason, expires_at=expires_at
            )
            staged = await self._change_membership(
                session, repo, community.id, target, actor=actor, joined=False
            )
        self._committed(staged)
        log.info(
            "user banned",
            extra={"community_id": str(community.id), "subject_id": str(target)},
        )

    async def unban(self, caller: str, name: str, user_id: str) -> None:
        """Lift a ban; lifting one that is not there is a no-op. The user may join again."""
        actor = _caller(caller)
        target = _target(user_id)
        await self._require_moderator(name, actor)
        await self._require_user(target)
        async with self._db.transaction() as session:
            repo = CommunitiesRepository(session)
            community = await self._locked(repo, name)
            domain.require_moderator(await repo.is_moderator(community.id, actor))
            await repo.delete_ban(community.id, target)

    # Helpers

    async def _locked(self, repo: CommunitiesRepository, name: str) -> sa.Row[Any]:
        row = await repo.by_name(name, lock=True) if domain.is_valid_name(name) else None
        if row is None:
            raise _community_not_found()
        return row

    async def _require_moderator(self, name: str, actor: uuid.UUID) -> None:
        """NOT_FOUND or PERMISSION_DENIED before anything else is revealed or asked of auth.

        The transaction that acts checks again under the lock; this read only
        decides what a caller who may not moderate gets to learn.
        """
        async with self._db.read() as session:
            repo = CommunitiesRepository(session)
            community = await repo.by_name(name) if domain.is_valid_name(name) else None
            if community is None:
                raise _community_not_found()
            domain.require_moderator(await repo.is_moderator(community.id, actor))

    async def _require_user(self, user_id: uuid.UUID) -> None:
        if not await self._users.exists(user_id):
            raise NotFound("user not found")

    async def _change_membership(
        self,
        session: AsyncSession,
        repo: CommunitiesRepository,
        community_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        actor: uuid.UUID,
        joined: bool,
    ) -> bool:
        """Add or remove a membership; when a row really changed, move the count and stage
        membership_changed. True when an event was staged."""
        changed = (
            await repo.add_member(community_id, user_id)
            if joined
            else await repo.remove_member(community_id, user_id)
        )
        if not changed:
            return False
        count = await repo.change_member_count(community_id, 1 if joined else -1)
        event: events_pb2.Event = events.membership_changed(
            actor_id=actor,
            community_id=community_id,
            user_id=user_id,
            joined=joined,
            member_count=count,
        )
        await self._outbox.stage(session, event)
        return True

    def _committed(self, staged: bool) -> None:
        if staged:
            self._outbox.notify_committed()
