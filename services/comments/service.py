"""The comments use cases: write, read as trees, moderate and search (tallies: events.py).

Each write validates through domain, asks posts and communities what it needs
before opening a transaction (no connection is held across a network call),
then changes rows, counters and the outbox inside one `Database.transaction()`
and wakes the outbox relay after the commit.

Who may do what:
- comment: any signed-in user who is not banned from the post's community, on
  a post that is neither removed nor deleted; a locked post takes comments
  from its community's moderators only (as on Reddit and Lemmy);
- reply: as above, to a comment of the same post that is not removed and not
  at the maximum depth (deleted comments may be replied to, see domain.py);
- edit: the author, unless the comment is deleted or removed, and unless the
  author has been banned from the community since;
- delete: the author, always (taking one's own words back is never refused);
- remove / restore: the community's moderators.

Reads need no other service: an unknown post simply has no comments.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from common.cursors import decode_cursor, encode_cursor
from common.db import Database
from common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from common.ids import parse_uuid, uuid7
from common.metrics import business_counter
from common.outbox import Outbox
from services.comments import domain, events
from services.comments.domain import (
    CommentRecord,
    CommentSort,
    ModerationAction,
    TreeNode,
)
from services.comments.repository import CommentsRepository
from services.comments.upstream import Permissions, PostState, Upstream

log = logging.getLogger("agora.comments")

COMMENTS = business_counter(
    "comments",
    "Comments created, by kind (top_level, reply).",
    ("kind",),
    known=[("top_level",), ("reply",)],
)

COMMENT_NOT_FOUND = "comment not found"
POST_COMMUNITY_CACHE_SIZE = 50_000
NO_SUCH_PARENT = "no such comment on this post"
REMOVED_PARENT = "a removed comment takes no replies"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TreePage:
    trees: list[TreeNode]
    next_cursor: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    comments: list[CommentRecord]
    next_cursor: str


def _comment_id(value: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound(COMMENT_NOT_FOUND)
    return parsed


class CommentsService:
    def __init__(
        self,
        *,
        db: Database,
        outbox: Outbox,
        upstream: Upstream,
        cursor_secret: bytes,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._upstream = upstream
        self._cursor_secret = cursor_secret
        self._clock = clock
        # post id -> community id; a post never moves, so this never goes stale.
        self._post_communities: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()

    async def _post_and_rights(
        self, post_id: uuid.UUID, caller: str
    ) -> tuple[PostState, Permissions]:
        """The post's current state and the caller's rights in its community.

        The rights depend on the post's community, so the first time a post is
        seen the two questions go out one after the other; after that, in
        parallel (one round trip on every later comment instead of two).
        """
        known = self._post_communities.get(post_id)
        if known is None:
            post = await self._upstream.post(post_id)
            rights = await self._upstream.permissions(post.community_id, caller)
        else:
            try:
                async with asyncio.TaskGroup() as calls:
                    asked_post = calls.create_task(self._upstream.post(post_id))
                    asked_rights = calls.create_task(self._upstream.permissions(known, caller))
            except ExceptionGroup as failed:
                # Answer with the first failure itself (NOT_FOUND, UNAVAILABLE), not a group.
                raise failed.exceptions[0] from None
            post, rights = asked_post.result(), asked_rights.result()
            if post.community_id != known:  # a cache never outranks its source
                rights = await self._upstream.permissions(post.community_id, caller)
        self._post_communities[post_id] = post.community_id
        self._post_communities.move_to_end(post_id)
        if len(self._post_communities) > POST_COMMUNITY_CACHE_SIZE:
            self._post_communities.popitem(last=False)
        return post, rights

    # Writes

    async def create_comment(
        self, caller: str, *, post_id: str, parent_id: str, body: str
    ) -> CommentRecord:
        text = domain.validate_body(body)
        author_id = parse_uuid(caller)
        if author_id is None:
            raise PermissionDenied("caller identity is not a user id")
        post_uuid = parse_uuid(post_id)
        if post_uuid is None:
            raise NotFound("post not found")
        parent_uuid: uuid.UUID | None = None
        if parent_id:
            parent_uuid = parse_uuid(parent_id)
            if parent_uuid is None:
                raise InvalidArgument.for_field("parent_id", NO_SUCH_PARENT)

        post, rights = await self._post_and_rights(post_uuid, caller)
        if post.deleted:
            raise PermissionDenied("the post was deleted and takes no new comments")
        if post.removed:
            raise PermissionDenied("the post was removed by a moderator and takes no new comments")
        if rights.is_banned:
            raise PermissionDenied("you are banned from this community")
        if post.locked and not rights.is_moderator:
            raise PermissionDenied("the post is locked; only moderators can comment")

        async with self._db.transaction() as session:
            repo = CommentsRepository(session)
            parent: CommentRecord | None = None
            if parent_uuid is not None:
                parent = await repo.comment(parent_uuid)
                if parent is None or parent.post_id != post_uuid:
                    raise InvalidArgument.for_field("parent_id", NO_SUCH_PARENT)
                if parent.removed:
                    raise PermissionDenied(REMOVED_PARENT)
            depth = domain.reply_depth(parent.depth if parent else None)
            if parent is not None and not await repo.count_new_reply(post_uuid, parent):
                raise PermissionDenied(REMOVED_PARENT)
            number = await repo.next_path_number()
            comment = await repo.insert(
                comment_id=uuid7(),
                post_id=post_uuid,
                community_id=post.community_id,
                parent_id=parent.id if parent else None,
                author_id=author_id,
                body=text,
                path=domain.child_path(parent.path if parent else None, number),
                depth=depth,
            )
            visible = await repo.change_visible(post_uuid, +1)
            await self._outbox.stage(session, events.comment_created(comment, visible))
        self._outbox.notify_committed()
        COMMENTS.labels("reply" if parent_uuid else "top_level").inc()
        return comment

    async def update_comment(self, caller: str, *, comment_id: str, body: str) -> CommentRecord:
        text = domain.validate_body(body)
        wanted = _comment_id(comment_id)
        async with self._db.read() as session:
            current = await CommentsRepository(session).comment(wanted)
        if current is None:
            raise NotFound(COMMENT_NOT_FOUND)
        self._require_author(current, caller, "edit")
        self._require_editable(current)
        rights = await self._upstream.permissions(current.community_id, caller)
        if rights.is_banned:
            raise PermissionDenied("you are banned from this community")

        async with self._db.transaction() as session:
            updated = await CommentsRepository(session).set_body(wanted, text, self._clock())
            if updated is None:
                # Deleted or removed since we looked.
                raise FailedPrecondition("a deleted or removed comment cannot be edited")
            await self._outbox.stage(session, events.comment_updated(updated, caller))
        self._outbox.notify_committed()
        return updated

    async def delete_comment(self, caller: str, *, comment_id: str) -> None:
        """Soft-delete the caller's comment; deleting it again changes nothing."""
        wanted = _comment_id(comment_id)
        async with self._db.read() as session:
            current = await CommentsRepository(session).comment(wanted)
        if current is None:
            raise NotFound(COMMENT_NOT_FOUND)
        self._require_author(current, caller, "delete")
        if current.deleted:
            return

        async with self._db.transaction() as session:
            repo = CommentsRepository(session)
            locked = await repo.comment(wanted, for_update=True)
            if locked is None or locked.deleted:
                return
            deleted = await repo.mark_deleted(wanted, self._clock())
            visible = await repo.change_visible(current.post_id, -1 if locked.visible else 0)
            await self._outbox.stage(session, events.comment_deleted(deleted, caller, visible))
        self._outbox.notify_committed()

    async def moderate_comment(
        self, caller: str, *, comment_id: str, action: ModerationAction, reason: str
    ) -> CommentRecord:
        """Remove or restore a comment as a moderator of its community (idempotent)."""
        why = domain.validate_reason(reason)
        moderator_id = parse_uuid(caller)
        if moderator_id is None:
            raise PermissionDenied("caller identity is not a user id")
        wanted = _comment_id(comment_id)
        async with self._db.read() as session:
            current = await CommentsRepository(session).comment(wanted)
        if current is None:
            raise NotFound(COMMENT_NOT_FOUND)
        rights = await self._upstream.permissions(current.community_id, caller)
        if not rights.is_moderator:
            raise PermissionDenied("only the community's moderators can moderate its comments")

        remove = action is ModerationAction.REMOVE
        async with self._db.transaction() as session:
            repo = CommentsRepository(session)
            locked = await repo.comment(wanted, for_update=True)
            if locked is None:
                raise NotFound(COMMENT_NOT_FOUND)
            if locked.removed == remove:
                return locked
            changed = await repo.set_removed(
                wanted,
                at=self._clock() if remove else None,
                by=moderator_id if remove else None,
                reason=(why or None) if remove else None,
            )
            visible = await repo.change_visible(
                current.post_id, int(changed.visible) - int(locked.visible)
            )
            await self._outbox.stage(
                session, events.comment_moderated(changed, caller, action, why, visible)
            )
        self._outbox.notify_committed()
        log.info(
            "comment moderated",
            extra={"comment_id": str(changed.id), "action": action.value, "moderator_id": caller},
        )
        return changed

    @staticmethod
    def _require_author(comment: CommentRecord, caller: str, verb: str) -> None:
        if str(comment.author_id) != caller:
            raise PermissionDenied(f"only the author can {verb} this comment")

    @staticmethod
    def _require_editable(comment: CommentRecord) -> None:
        if comment.deleted or comment.removed:
            raise FailedPrecondition("a deleted or removed comment cannot be edited")

    # Reads

    async def get_comment(self, comment_id: str, *, sort: CommentSort, levels: int) -> TreeNode:
        """One comment with its replies down to `levels` levels ("continue this thread")."""
        wanted = _comment_id(comment_id)
        # A tree is read in two queries; one snapshot keeps the counts and rows agreeing.
        async with self._db.read(snapshot=True) as session:
            repo = CommentsRepository(session)
            comment = await repo.comment(wanted)
            if comment is None:
                raise NotFound(COMMENT_NOT_FOUND)
            (limit,) = domain.allocate_replies(
                [domain.reply_bound(comment, levels)],
                per_root=domain.REPLIES_PER_THREAD,
                budget=domain.REPLIES_PER_THREAD,
            )
            deepest = comment.depth + levels
            replies = await repo.subtrees(
                comment.post_id, [(comment.path, limit)], sort=sort, max_depth=deepest
            )
        (tree,) = domain.assemble_trees([comment], replies, max_depth=deepest, reply_limits=[limit])
        return tree

    async def list_tree(
        self, post_id: str, *, sort: CommentSort, levels: int, limit: int, cursor: str
    ) -> TreePage:
        """A page of top-level comments, each with its replies down to `levels` levels."""
        post_uuid = parse_uuid(post_id)
        if post_uuid is None:
            raise NotFound("post not found")
        scope = f"comment-tree:{post_uuid}:{sort.value}"
        after = None
        if cursor:
            position = decode_cursor(cursor, secret=self._cursor_secret, scope=scope)
            after = domain.parse_cursor_position(position, sort)

        # A tree is read in two queries; one snapshot keeps the counts and rows agreeing.
        async with self._db.read(snapshot=True) as session:
            repo = CommentsRepository(session)
            roots = await repo.top_level_page(post_uuid, sort, after=after, limit=limit + 1)
            has_more = len(roots) > limit
            roots = roots[:limit]
            limits = domain.allocate_replies(
                [domain.reply_bound(root, levels) for root in roots],
                per_root=domain.REPLIES_PER_ROOT,
                budget=domain.REPLIES_PER_PAGE,
            )
            replies = await repo.subtrees(
                post_uuid,
                [(root.path, n) for root, n in zip(roots, limits, strict=True)],
                sort=sort,
                max_depth=levels,
            )
        trees = domain.assemble_trees(roots, replies, max_depth=levels, reply_limits=limits)
        next_cursor = ""
        if has_more and roots:
            next_cursor = encode_cursor(
                domain.cursor_position(roots[-1], sort), secret=self._cursor_secret, scope=scope
            )
        return TreePage(trees=trees, next_cursor=next_cursor)

    async def batch_get(self, ids: Sequence[str]) -> list[CommentRecord]:
        """The comments found, in request order, each once; unknown and malformed are skipped."""
        if len(ids) > domain.BATCH_MAX:
            raise InvalidArgument.for_field("ids", f"at most {domain.BATCH_MAX} ids")
        wanted = list(dict.fromkeys(p for value in ids if (p := parse_uuid(value)) is not None))
        async with self._db.read() as session:
            found = {c.id: c for c in await CommentsRepository(session).comments(wanted)}
        return [found[i] for i in wanted if i in found]

    async def search(
        self, query: str, *, post_id: str, community_id: str, limit: int, cursor: str
    ) -> SearchPage:
        """Visible comments matching query, best match first, keyset paged."""
        text = domain.validate_search_query(query)
        post_uuid = parse_uuid(post_id) if post_id else None
        community_uuid = parse_uuid(community_id) if community_id else None
        if (post_id and post_uuid is None) or (community_id and community_uuid is None):
            # A filter no comment can match.
            return SearchPage(comments=[], next_cursor="")
        scope = f"comment-search:{post_uuid or ''}:{community_uuid or ''}:{text}"
        after: tuple[float, uuid.UUID] | None = None
        if cursor:
            position = decode_cursor(cursor, secret=self._cursor_secret, scope=scope)
            after = domain.parse_rank_position(position)
        async with self._db.read() as session:
            found = await CommentsRepository(session).search(
                text, post_id=post_uuid, community_id=community_uuid, after=after, limit=limit + 1
            )
        page = found[:limit]
        next_cursor = ""
        if len(found) > limit and page:
            last, relevance = page[-1]
            next_cursor = encode_cursor(
                [relevance, str(last.id)], secret=self._cursor_secret, scope=scope
            )
        return SearchPage(comments=[comment for comment, _ in page], next_cursor=next_cursor)
