"""The rules of comments and comment trees, as pure functions (no I/O).

Paths. Every comment takes the next number of one database sequence, written
as eight base-36 digits; its path is its parent's path followed by that
segment, so a top-level comment's path is one segment and a depth-d comment's
is d+1. Segments have a fixed width, so "is a descendant of P" is exactly "the
path starts with P and is longer", and because the column is collated "C"
(byte order) and base-36 digits sort below "~", all descendants of P are the
one index range `P < path < P || '~'`. A segment is 8 bytes a level instead of
the 36 of an ancestor chain of UUIDs, and eight digits last for 2.8 trillion
comments. The number comes from a sequence, not a per-post counter, because
a sequence hands out numbers without a lock that would serialise a post's
writers for the rest of their transaction.

Depth. Top-level comments have depth 0; a reply is one deeper than its parent;
nothing is deeper than COMMENT_MAX_DEPTH (10), so replying to a depth-10
comment is refused on the field `parent_id`.

Trees. A listing pages over top-level comments; each carries its replies,
every level sorted like the top level. The replies of a page are read in one
query, breadth first per top-level comment (depth, then rank), which makes any
prefix of them closed under parents: a reply is only ever shown with its
parent. `assemble_trees` links them in one pass and cuts where the request or
the budgets say (depth, replies per top-level comment, replies per page,
response bytes); every comment shown reports in `more_replies` how many of its
descendants were left out below it and not already counted under one of its
shown replies (from the stored descendant counts), so a client can offer "load
more" or "continue this thread" (GetComment) exactly where needed, and the
comments shown plus every more_replies add up to the whole thread.

Deleted and removed comments stay in the tree (their replies would otherwise
be orphaned) but show "[deleted]" or "[removed]" and no author. A deleted
comment's text is erased when it is deleted, because its author asked for it
to be gone; a removed comment's text is kept, because a moderator may restore
it. Replying to a deleted comment is allowed (as on Reddit: the discussion
under it goes on), replying to a removed one is not (a moderator took it down,
and replies would keep the removed discussion alive).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.contract import (
    COMMENT_BODY_MAX,
    COMMENT_BODY_MIN,
    COMMENT_MAX_DEPTH,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    PAGE_LIMIT_MIN,
    SEARCH_QUERY_MAX,
    SEARCH_QUERY_MIN,
)
from common.errors import InvalidArgument

SEGMENT_WIDTH = 8
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE = len(_DIGITS)
MAX_SEQUENCE = _BASE**SEGMENT_WIDTH - 1
# Sorts after every base-36 digit in byte order: the exclusive upper bound of a subtree.
PATH_RANGE_END = "~"

DELETED_BODY = "[deleted]"
REMOVED_BODY = "[removed]"
MODERATION_REASON_MAX = 500
BATCH_MAX = 100

# Bounds of one answer (see the module docstring): replies under one top-level
# comment, replies in a whole page, and approximate bytes, kept under gRPC's
# default 4 MiB message limit with room for the envelope.
REPLIES_PER_ROOT = 500
REPLIES_PER_PAGE = 2_000
# GetComment ("continue this thread") answers one subtree, so it may use the page's budget.
REPLIES_PER_THREAD = REPLIES_PER_PAGE
RESPONSE_BYTES_BUDGET = 3_000_000
# Ids, counters and timestamps of one comment in a protobuf answer, roughly.
NODE_OVERHEAD_BYTES = 200


class CommentSort(enum.Enum):
    BEST = "best"
    TOP = "top"
    NEW = "new"
    CONTROVERSIAL = "controversial"


class ModerationAction(enum.Enum):
    REMOVE = "remove"
    RESTORE = "restore"


@dataclass(frozen=True, slots=True)
class CommentRecord:
    """One stored comment, as the repository reads it (field order = its column order)."""

    id: uuid.UUID
    post_id: uuid.UUID
    community_id: uuid.UUID
    parent_id: uuid.UUID | None
    author_id: uuid.UUID
    body: str
    path: str
    depth: int
    child_count: int
    descendant_count: int
    score: int
    upvotes: int
    downvotes: int
    best_rank: float
    controversy_rank: float
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    removed: bool

    @property
    def visible(self) -> bool:
        """Counted in the post's comment count and found by search."""
        return not (self.deleted or self.removed)

    @property
    def shown_body(self) -> str:
        if self.deleted:
            return DELETED_BODY
        if self.removed:
            return REMOVED_BODY
        return self.body

    @property
    def shown_author(self) -> uuid.UUID | None:
        """The author readers see: nobody once the comment is deleted or removed."""
        return None if self.deleted or self.removed else self.author_id


@dataclass(slots=True)
class TreeNode:
    comment: CommentRecord
    replies: list[TreeNode] = field(default_factory=list)
    # Descendants of this comment that the answer left out.
    more_replies: int = 0


# Paths


def encode_segment(sequence: int) -> str:
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence {sequence} does not fit {SEGMENT_WIDTH} base-36 digits")
    digits = []
    for _ in range(SEGMENT_WIDTH):
        sequence, digit = divmod(sequence, _BASE)
        digits.append(_DIGITS[digit])
    return "".join(reversed(digits))


def decode_segment(segment: str) -> int:
    if len(segment) != SEGMENT_WIDTH:
        raise ValueError(f"a segment has {SEGMENT_WIDTH} digits: {segment!r}")
    return int(segment, _BASE)


def child_path(parent_path: str | None, sequence: int) -> str:
    return (parent_path or "") + encode_segment(sequence)


def path_depth(path: str) -> int:
    return len(path) // SEGMENT_WIDTH - 1


def subtree_range(path: str) -> tuple[str, str]:
    """Exclusive bounds that hold exactly the descendants of path (byte order)."""
    return path, path + PATH_RANGE_END


def is_descendant(path: str, ancestor_path: str) -> bool:
    return len(path) > len(ancestor_path) and path.startswith(ancestor_path)


def reply_depth(parent_depth: int | None) -> int:
    """The depth of a new comment under a parent at parent_depth (None: top-level)."""
    if parent_depth is None:
        return 0
    if parent_depth >= COMMENT_MAX_DEPTH:
        raise InvalidArgument.for_field(
            "parent_id",
            f"comments nest at most {COMMENT_MAX_DEPTH} levels deep; "
            "reply to a comment higher up the thread",
        )
    return parent_depth + 1


# Input rules


def _no_nul(value: str, field_name: str) -> None:
    # Postgres text cannot hold NUL; refusing it here keeps it a 422, not a 500.
    if "\x00" in value:
        raise InvalidArgument.for_field(field_name, "must not contain NUL characters")


def validate_body(raw: str) -> str:
    if len(raw) < COMMENT_BODY_MIN or not raw.strip():
        raise InvalidArgument.for_field("body", "is required and cannot be only whitespace")
    if len(raw) > COMMENT_BODY_MAX:
        raise InvalidArgument.for_field("body", f"must be at most {COMMENT_BODY_MAX} characters")
    _no_nul(raw, "body")
    return raw


def validate_reason(raw: str) -> str:
    if len(raw) > MODERATION_REASON_MAX:
        raise InvalidArgument.for_field(
            "reason", f"must be at most {MODERATION_REASON_MAX} characters"
        )
    _no_nul(raw, "reason")
    return raw.strip()


def validate_search_query(raw: str) -> str:
    query = raw.strip()
    if not SEARCH_QUERY_MIN <= len(query) <= SEARCH_QUERY_MAX:
        raise InvalidArgument.for_field(
            "q", f"must be {SEARCH_QUERY_MIN}-{SEARCH_QUERY_MAX} characters"
        )
    _no_nul(query, "q")
    return query


def page_size(requested: int) -> int:
    """0 means the default; otherwise 1..100 (the API calls it `limit`)."""
    if requested == 0:
        return PAGE_LIMIT_DEFAULT
    if not PAGE_LIMIT_MIN <= requested <= PAGE_LIMIT_MAX:
        raise InvalidArgument.for_field(
            "limit", f"must be between {PAGE_LIMIT_MIN} and {PAGE_LIMIT_MAX}"
        )
    return requested


def max_depth(requested: int) -> int:
    """Levels of replies to include below the comments answered, 0..10.

    0 is taken literally (the comments alone, no replies), which is what a
    caller that only needs one comment's state asks for (votes checks a
    target that way). The API's default of 10 is the gateway's to send:
    proto3 cannot tell an unset int32 from 0.
    """
    if not 0 <= requested <= COMMENT_MAX_DEPTH:
        raise InvalidArgument.for_field("max_depth", f"must be between 0 and {COMMENT_MAX_DEPTH}")
    return requested


# Sorting and cursors


def rank_of(comment: CommentRecord, sort: CommentSort) -> float | int | datetime:
    """The stored, indexed value a sort orders by (descending, ties by id descending)."""
    if sort is CommentSort.BEST:
        return comment.best_rank
    if sort is CommentSort.TOP:
        return comment.score
    if sort is CommentSort.NEW:
        return comment.created_at
    return comment.controversy_rank


def sort_key(comment: CommentRecord, sort: CommentSort) -> tuple[Any, uuid.UUID]:
    """Ascending key of the display order: sort by it with reverse=True."""
    return rank_of(comment, sort), comment.id


def cursor_position(comment: CommentRecord, sort: CommentSort) -> list[Any]:
    rank = rank_of(comment, sort)
    return [rank.isoformat() if isinstance(rank, datetime) else rank, str(comment.id)]


def _invalid_cursor() -> InvalidArgument:
    return InvalidArgument.for_field("cursor", "invalid cursor")


def _position_id(position: list[Any]) -> uuid.UUID:
    if len(position) != 2 or not isinstance(position[1], str):
        raise _invalid_cursor()
    try:
        return uuid.UUID(position[1])
    except ValueError as error:
        raise _invalid_cursor() from error


def parse_rank_position(position: list[Any]) -> tuple[float, uuid.UUID]:
    """A (float rank, id) position: best, controversial and search relevance."""
    last_id = _position_id(position)
    rank = position[0]
    if isinstance(rank, bool) or not isinstance(rank, int | float):
        raise _invalid_cursor()
    return float(rank), last_id


def parse_cursor_position(
    position: list[Any], sort: CommentSort
) -> tuple[float | int | datetime, uuid.UUID]:
    """The (rank, id) a signed cursor of a tree listing holds; a shape we never wrote is refused."""
    if sort is CommentSort.BEST or sort is CommentSort.CONTROVERSIAL:
        return parse_rank_position(position)
    last_id = _position_id(position)
    rank = position[0]
    if sort is CommentSort.TOP:
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise _invalid_cursor()
        return rank, last_id
    if not isinstance(rank, str):
        raise _invalid_cursor()
    try:
        created_at = datetime.fromisoformat(rank)
    except ValueError as error:
        raise _invalid_cursor() from error
    if created_at.tzinfo is None:
        raise _invalid_cursor()
    return created_at, last_id


# Trees


def reply_bound(comment: CommentRecord, levels: int) -> int:
    """At most how many replies within `levels` levels below comment exist.

    Exact for one level (child_count) and for all levels (descendant_count);
    in between, descendant_count is an upper bound.
    """
    if levels <= 0:
        return 0
    if levels == 1:
        return comment.child_count
    return comment.descendant_count


def allocate_replies(bounds: Sequence[int], *, per_root: int, budget: int) -> list[int]:
    """How many replies to read under each top-level comment of a page.

    Each gets what it has, up to per_root; when that exceeds the page budget,
    the budget is shared out evenly (water-filling), so small threads are shown
    whole and the big ones share what is left rather than the first big one
    taking everything.
    """
    wanted = [max(0, min(bound, per_root)) for bound in bounds]
    if sum(wanted) <= budget:
        return wanted
    remaining = max(0, budget)
    level = 0
    ascending = sorted(wanted)
    for index, want in enumerate(ascending):
        share = remaining // (len(ascending) - index)
        if want > share:
            level = share
            break
        remaining -= want
    return [min(want, level) for want in wanted]


def node_bytes(comment: CommentRecord) -> int:
    return len(comment.shown_body.encode()) + NODE_OVERHEAD_BYTES


def assemble_trees(
    roots: Sequence[CommentRecord],
    replies: Iterable[CommentRecord],
    *,
    max_depth: int,
    reply_limits: Sequence[int] | None = None,
    byte_budget: int = RESPONSE_BYTES_BUDGET,
) -> list[TreeNode]:
    """Link replies under roots, in one pass, and count what was left out.

    `replies` come breadth first within each root (depth ascending, then in
    display order); any order of the roots among themselves. A reply is kept
    when its parent was kept, its absolute depth is at most max_depth, its
    root's limit (reply_limits, in roots' order) is not reached and the answer
    still fits byte_budget; the first reply that does not fit ends the answer,
    so a shorter later reply never jumps ahead of a better one. Every node's
    more_replies counts the descendants hidden directly under it (see below),
    so the comments shown plus all more_replies make the whole thread.
    """
    trees = [TreeNode(root) for root in roots]
    nodes: dict[uuid.UUID, TreeNode] = {tree.comment.id: tree for tree in trees}
    root_index: dict[uuid.UUID, int] = {tree.comment.id: i for i, tree in enumerate(trees)}
    taken = [0] * len(trees)
    limits = list(reply_limits) if reply_limits is not None else None
    remaining_bytes = byte_budget - sum(node_bytes(root) for root in roots)
    kept: list[TreeNode] = []
    for comment in replies:
        if remaining_bytes <= 0 or comment.parent_id is None or comment.depth > max_depth:
            continue
        parent = nodes.get(comment.parent_id)
        if parent is None or comment.id in nodes:
            continue
        index = root_index[parent.comment.id]
        if limits is not None and taken[index] >= limits[index]:
            continue
        size = node_bytes(comment)
        if size > remaining_bytes:
            remaining_bytes = 0
            continue
        remaining_bytes -= size
        taken[index] += 1
        node = TreeNode(comment)
        parent.replies.append(node)
        nodes[comment.id] = node
        root_index[comment.id] = index
        kept.append(node)

    # A node's more_replies counts the replies hidden right below it: its
    # descendants minus the whole subtrees of the children it shows. Each left-out
    # comment is so counted once, at the nearest comment shown above it, which is
    # where a client puts its "load more" link.
    for node in kept:
        node.more_replies = node.comment.descendant_count
    for tree in trees:
        tree.more_replies = tree.comment.descendant_count
    for node in kept:
        parent_id = node.comment.parent_id
        if parent_id is not None:  # always: only replies are kept here
            nodes[parent_id].more_replies -= 1 + node.comment.descendant_count
    for node in nodes.values():
        # Counters and rows come from one snapshot; never show a negative count regardless.
        node.more_replies = max(0, node.more_replies)
    return trees
