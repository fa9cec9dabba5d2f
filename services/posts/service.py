"""The posts use cases: write, read, moderate, list and search posts.

Each write validates through domain, asks communities for the caller's
permissions (outside any database transaction, so a slow upstream never holds
a pooled connection), then changes the row and stages its event in the outbox
inside one `Database.transaction()`; the relay is woken after the commit. The
row is re-read under `FOR UPDATE` in that transaction, so a concurrent delete,
edit or moderation is seen and decided on, never overwritten.

Listing pages carry a signed keyset cursor bound to the listing's sort,
window and scope. Its position is the (rank, id) of the last row shown, plus
the window's cut-off time fixed on the first page, so every page of one
listing uses the same window even while time passes.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from agora.events.v1 import events_pb2

from common.cursors import decode_cursor, encode_cursor
from common.db import Database
from common.errors import (
    FailedPrecondition,
    FieldError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from common.events import new_event
from common.ids import parse_uuid, uuid7
from common.metrics import business_counter
from common.outbox import Outbox
from services.posts import domain
from services.posts.domain import Action, PostView, Scope, Sort, Window
from services.posts.models import Post
from services.posts.permissions import COMMUNITY_NOT_FOUND, PermissionSource
from services.posts.repository import (
    RANK_COLUMNS,
    ListedPost,
    PageQuery,
    PostsRepository,
    RankValue,
)

log = logging.getLogger("agora.posts")

POSTS = business_counter("posts", "Posts created.")

PRODUCER = "posts"
POST_NOT_FOUND = "post not found"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

ItemT = TypeVar("ItemT")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _micros(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (a float would round)."""
    return (moment - _EPOCH) // _MICROSECOND


def _from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    items: list[ItemT]
    # "" when this is the last page.
    next_token: str


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a listing continues: after (rank, id), within the window that started at cutoff."""

    after: tuple[RankValue, uuid.UUID] | None
    cutoff: datetime | None


def _caller_uuid(caller: str) -> uuid.UUID:
    user_id = parse_uuid(caller)
    if user_id is None:
        raise Unauthenticated("caller identity is not a user id")
    return user_id


def _post_uuid(post_id: str) -> uuid.UUID:
    """Malformed ids name no post: NOT_FOUND, as for an unknown one."""
    parsed = parse_uuid(post_id)
    if parsed is None:
        raise NotFound(POST_NOT_FOUND)
    return parsed


def _community_uuid(community_id: str) -> uuid.UUID:
    parsed = parse_uuid(community_id)
    if parsed is None:
        raise NotFound(COMMUNITY_NOT_FOUND)
    return parsed


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class PostsService:
    def __init__(
        self,
        *,
        db: Database,
        outbox: Outbox,
        permissions: PermissionSource,
        cursor_secret: bytes,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._permissions = permissions
        self._cursor_secret = cursor_secret
        self._clock = clock

    # Writes

    async def create_post(
        self, caller: str, community_id: str, title: str, body: str, url: str
    ) -> PostView:
        author_id = _caller_uuid(caller)
        title, body, url = domain.validate_post(title, body, url)
        community = _community_uuid(community_id)
        permissions = await self._permissions.permissions(community, author_id)
        if not permissions.community_exists:
            raise NotFound(COMMUNITY_NOT_FOUND)
        if permissions.is_banned:
            raise PermissionDenied("you are banned from this community")

        now = self._clock()
        hot_rank, controversy_rank = domain.ranks(0, 0, now)
        post = Post(
            id=uuid7(),
            community_id=community,
            author_id=author_id,
            title=title,
            body=body,
            url=url,
            score=0,
            upvotes=0,
            downvotes=0,
            tally_version=0,
            comment_count=0,
            hot_rank=hot_rank,
            controversy_rank=controversy_rank,
            created_at=now,
            edited_at=None,
            locked=False,
            removed=False,
            pinned=False,
            deleted=False,
        )
        event = new_event(
            PRODUCER,
            caller,
            post_created=events_pb2.PostCreated(
                post_id=str(post.id),
                community_id=str(community),
                author_id=str(author_id),
                title=title,
            ),
        )
        async with self._db.transaction() as session:
            await PostsRepository(session).add(post)
            await self._outbox.stage(session, event)
        self._outbox.notify_committed()
        POSTS.inc()
        log.info("post created", extra={"post_id": str(post.id), "community_id": str(community)})
        return domain.render(post)

    async def update_post(
        self, caller: str, post_id: str, *, title: str | None, body: str | None
    ) -> PostView:
        """The author edits title and/or body; edited_at is set when something changed.

        A banned author may no longer edit there (they could otherwise turn old
        posts into whatever got them banned); deleting stays possible.
        """
        author_id = _caller_uuid(caller)
        wanted = _post_uuid(post_id)
        violations: list[FieldError] = []
        new_title = new_body = None
        try:
            new_title = domain.validate_title(title) if title is not None else None
        except InvalidArgument as error:
            violations.extend(error.field_errors)
        try:
            new_body = domain.validate_body(body) if body is not None else None
        except InvalidArgument as error:
            violations.extend(error.field_errors)
        if violations:
            raise InvalidArgument(
                "; ".join(f"{e.field}: {e.message}" for e in violations),
                field_errors=tuple(violations),
            )

        current = await self._read(wanted)
        self._check_editable(current, author_id)
        permissions = await self._permissions.permissions(current.community_id, author_id)
        if permissions.is_banned:
            raise PermissionDenied("you are banned from this community")

        async with self._db.transaction() as session:
            post = await PostsRepository(session).get_for_update(wanted)
            if post is None:
                raise NotFound(POST_NOT_FOUND)
            self._check_editable(post, author_id)
            changed = False
            if new_title is not None and new_title != post.title:
                post.title, changed = new_title, True
            if new_body is not None and new_body != post.body:
                post.body, changed = new_body, True
            if changed:
                post.edited_at = self._clock()
                await self._outbox.stage(
                    session,
                    new_event(
                        PRODUCER,
                        caller,
                        post_updated=events_pb2.PostUpdated(
                            post_id=str(post.id), community_id=str(post.community_id)
                        ),
                    ),
                )
            view = domain.render(post)
        if changed:
            self._outbox.notify_committed()
        return view

    @staticmethod
    def _check_editable(post: Post, author_id: uuid.UUID) -> None:
        if post.author_id != author_id:
            raise PermissionDenied("only the author can edit this post")
        if post.deleted or post.removed:
            raise FailedPrecondition("a deleted or removed post cannot be edited")

    async def delete_post(self, caller: str, post_id: str) -> None:
        """Soft delete by the author: the post reads as [deleted], its thread stays.

        Deleting an already deleted post succeeds and changes nothing.
        """
        author_id = _caller_uuid(caller)
        wanted = _post_uuid(post_id)
        async with self._db.transaction() as session:
            post = await PostsRepository(session).get_for_update(wanted)
            if post is None:
                raise NotFound(POST_NOT_FOUND)
            if post.author_id != author_id:
                raise PermissionDenied("only the author can delete this post")
            if post.deleted:
                return
            post.deleted = True
            await self._outbox.stage(
                session,
                new_event(
                    PRODUCER,
                    caller,
                    post_deleted=events_pb2.PostDeleted(
                        post_id=str(post.id), community_id=str(post.community_id)
                    ),
                ),
            )
        self._outbox.notify_committed()
        log.info("post deleted", extra={"post_id": str(wanted)})

    async def moderate_post(
        self, caller: str, post_id: str, action: Action, reason: str
    ) -> PostView:
        """A community moderator removes, restores, locks, unlocks, pins or unpins a post.

        Idempotent: an action that changes nothing (locking a locked post)
        succeeds without an event. A deleted or removed post cannot be pinned.
        """
        moderator_id = _caller_uuid(caller)
        wanted = _post_uuid(post_id)
        reason = domain.validate_reason(reason)
        current = await self._read(wanted)
        permissions = await self._permissions.permissions(current.community_id, moderator_id)
        if not permissions.is_moderator:
            raise PermissionDenied("only a moderator of this community can do that")

        flag, value = domain.ACTION_EFFECTS[action]
        async with self._db.transaction() as session:
            post = await PostsRepository(session).get_for_update(wanted)
            if post is None:
                raise NotFound(POST_NOT_FOUND)
            changed = getattr(post, flag) != value
            if changed and action is Action.PIN and (post.deleted or post.removed):
                raise FailedPrecondition("a deleted or removed post cannot be pinned")
            if changed:
                setattr(post, flag, value)
                await self._outbox.stage(
                    session,
                    new_event(
                        PRODUCER,
                        caller,
                        post_moderated=events_pb2.PostModerated(
                            post_id=str(post.id),
                            community_id=str(post.community_id),
                            action=action.value,
                            reason=reason,
                        ),
                    ),
                )
            view = domain.render(post)
        if changed:
            self._outbox.notify_committed()
            log.info(
                "post moderated",
                extra={"post_id": str(wanted), "action": action.value},
            )
        return view

    # Reads

    async def _read(self, post_id: uuid.UUID) -> Post:
        """The stored post, detached: leaving a read session would expire a row still in it."""
        async with self._db.read() as session:
            post = await PostsRepository(session).get(post_id)
            if post is None:
                raise NotFound(POST_NOT_FOUND)
            session.expunge(post)
        return post

    async def get_post(self, post_id: str) -> PostView:
        return domain.render(await self._read(_post_uuid(post_id)))

    async def batch_get_posts(self, post_ids: Sequence[str]) -> list[PostView]:
        """The posts found, in request order; unknown and malformed ids are skipped."""
        if len(post_ids) > domain.BATCH_MAX:
            raise InvalidArgument.for_field("ids", f"at most {domain.BATCH_MAX} entries")
        wanted = list(dict.fromkeys(parsed for value in post_ids if (parsed := parse_uuid(value))))
        async with self._db.read() as session:
            found = await PostsRepository(session).get_many(wanted)
            views = {post.id: domain.render(post) for post in found}
        return [views[i] for i in wanted if i in views]

    # Listings

    def scope_of(
        self, community_id: str, community_ids: Sequence[str], all_communities: bool
    ) -> Scope:
        """One community, a feed of several, or everything; mixing them is a bad request."""
        chosen = sum((bool(community_id), bool(community_ids), all_communities))
        if chosen > 1:
            raise InvalidArgument.for_field(
                "community", "give one community, a list of communities, or all communities"
            )
        if community_id:
            return Scope.community(_community_uuid(community_id))
        if community_ids:
            if len(community_ids) > domain.FEED_COMMUNITIES_MAX:
                raise InvalidArgument.for_field(
                    "community_ids", f"at most {domain.FEED_COMMUNITIES_MAX} communities"
                )
            # Malformed ids name no community: they simply contribute no posts.
            return Scope.feed(p for value in community_ids if (p := parse_uuid(value)))
        return Scope.everything()

    async def list_posts(
        self,
        scope: Scope,
        sort: Sort,
        window: Window | None,
        page_size: int,
        page_token: str,
    ) -> Page[PostView]:
        """One page of a listing, hidden (removed or deleted) posts left out.

        In a single community's HOT listing the pinned posts come first, on the
        first page only and counted in its size (so at most one page of them
        shows), and never again further down; everywhere else a pinned post
        sits where its rank puts it.
        """
        limit = domain.page_size(page_size)
        window = domain.effective_window(sort, window)
        cursor_scope = domain.listing_cursor_scope(sort, window, scope)
        if page_token:
            position = self._decode_listing(page_token, cursor_scope, sort)
        else:
            position = _Position(after=None, cutoff=domain.window_cutoff(window, self._clock()))
        if scope.communities == ():
            return Page(items=[], next_token="")

        # A community's hot listing leads with its pinned posts, on the first page only;
        # they never show again further down (every page of that listing skips them).
        pins_apart = scope.single and sort is Sort.HOT
        async with self._db.read() as session:
            repo = PostsRepository(session)
            pinned: Sequence[ListedPost] = []
            if pins_apart and not page_token and scope.communities:
                pinned = await repo.pinned(scope.communities[0], limit)
            room = limit - len(pinned)
            # One row more than the page shows tells whether another page follows.
            rows = await repo.page(
                PageQuery(
                    sort=sort,
                    scope=scope,
                    limit=room + 1,
                    cutoff=position.cutoff,
                    after=position.after,
                    exclude_pinned=pins_apart,
                )
            )
            shown = list(rows[:room])
            next_token = ""
            if len(rows) > room:
                last = shown[-1] if shown else None
                next_token = self._encode_listing(cursor_scope, sort, last, position)
            items = [domain.render(p) for p in [*pinned, *shown]]
        return Page(items=items, next_token=next_token)

    def _encode_listing(
        self, cursor_scope: str, sort: Sort, last: ListedPost | None, position: _Position
    ) -> str:
        cutoff = _micros(position.cutoff) if position.cutoff else None
        if last is None:
            # The pinned posts filled the first page: continue from the top, pins skipped.
            body: list[Any] = [None, None, cutoff]
        else:
            rank: Any = (
                _micros(last.created_at)
                if sort is Sort.NEW
                else getattr(last, RANK_COLUMNS[sort].key)
            )
            body = [rank, str(last.id), cutoff]
        return encode_cursor(body, secret=self._cursor_secret, scope=cursor_scope)

    def _decode_listing(self, token: str, cursor_scope: str, sort: Sort) -> _Position:
        invalid = InvalidArgument.for_field("cursor", "invalid cursor")
        body = decode_cursor(token, secret=self._cursor_secret, scope=cursor_scope)
        if len(body) != 3:
            raise invalid
        rank, raw_id, cutoff = body
        if cutoff is not None and not isinstance(cutoff, int):
            raise invalid
        cutoff_at = _from_micros(cutoff) if cutoff is not None else None
        if rank is None and raw_id is None:
            return _Position(after=None, cutoff=cutoff_at)
        post_id = parse_uuid(raw_id) if isinstance(raw_id, str) else None
        if post_id is None or not _is_number(rank):
            raise invalid
        value: RankValue
        if sort is Sort.NEW:
            if not isinstance(rank, int):
                raise invalid
            value = _from_micros(rank)
        elif sort is Sort.TOP:
            if not isinstance(rank, int):
                raise invalid
            value = rank
        else:
            value = float(rank)
            if not math.isfinite(value):
                raise invalid
        return _Position(after=(value, post_id), cutoff=cutoff_at)

    # Search

    async def search_posts(
        self, query: str, community_id: str, page_size: int, page_token: str
    ) -> Page[PostView]:
        text = domain.validate_search_query(query)
        limit = domain.page_size(page_size)
        community = _community_uuid(community_id) if community_id else None
        cursor_scope = domain.search_cursor_scope(text, community)
        after: tuple[float, uuid.UUID] | None = None
        if page_token:
            body = decode_cursor(page_token, secret=self._cursor_secret, scope=cursor_scope)
            post_id = parse_uuid(body[1]) if len(body) == 2 and isinstance(body[1], str) else None
            if post_id is None or not _is_number(body[0]) or not math.isfinite(body[0]):
                raise InvalidArgument.for_field("cursor", "invalid cursor")
            after = (float(body[0]), post_id)
        async with self._db.read() as session:
            rows = await PostsRepository(session).search(
                text, community_id=community, after=after, limit=limit + 1
            )
            shown = rows[:limit]
            next_token = ""
            if len(rows) > limit:
                post, rank = shown[-1]
                next_token = encode_cursor(
                    [rank, str(post.id)], secret=self._cursor_secret, scope=cursor_scope
                )
            items = [domain.render(post) for post, _ in shown]
        return Page(items=items, next_token=next_token)
