"""The rules of posts, as pure functions: what a valid post is, how one reads, how listings order.

Nothing here does I/O, so every rule is unit-tested without a database.

Text. Titles and bodies are stored NFC-normalised (one spelling per visible
text, so search and equality behave) with `\\r\\n` folded to `\\n`. A title is
one line: surrounding whitespace is trimmed, it must keep at least one visible
character, and control characters are refused. A body may hold newlines and
tabs but no other control characters (Postgres cannot even store NUL).

Links. Only absolute `http` and `https` URLs with a host are accepted, so
`javascript:`, `data:`, `file:` and scheme-relative links never reach a page.
Credentials (`user:pass@`) are refused: they leak secrets and are the classic
disguise (`https://good.example@evil.example`). Whitespace, control characters
and backslashes are refused too, because browsers "repair" them in ways that
change which host a link points at.

Reading. A post deleted by its author reads as `[deleted]` with empty body,
link and author; a post removed by a moderator reads as `[removed]` with empty
body and link, to everyone, moderators included (a moderator view with the
original text can come later through a separate, audited call). Both stay
readable by id so links and comment threads keep working; listings and search
leave them out. When both apply, `[deleted]` wins: the author asked to be
dissociated from it.

Listings. HOT orders by r2's hot rank, NEW by creation time, TOP by score and
CONTROVERSIAL by the controversy rank; ties break on the id (a UUIDv7), so the
order is total and keyset cursors never repeat or skip a row. TOP and
CONTROVERSIAL take a time window and default to the last DAY, as Reddit's
`t=day`; HOT and NEW ignore the window (HOT already favours recent posts).
"""

from __future__ import annotations

import enum
import hashlib
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from common import ranking
from common.contract import (
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    PAGE_LIMIT_MIN,
    POST_BODY_MAX,
    POST_TITLE_MAX,
    POST_TITLE_MIN,
    SEARCH_QUERY_MAX,
    SEARCH_QUERY_MIN,
    URL_MAX,
)
from common.errors import FieldError, InvalidArgument

DELETED_TITLE = "[deleted]"
REMOVED_TITLE = "[removed]"
MODERATION_REASON_MAX = 500
BATCH_MAX = 100
FEED_COMMUNITIES_MAX = 1000

_ALLOWED_SCHEMES = frozenset({"http", "https"})
_MULTILINE_CONTROLS = frozenset("\n\t")


class Sort(enum.Enum):
    HOT = "hot"
    NEW = "new"
    TOP = "top"
    CONTROVERSIAL = "controversial"


class Window(enum.Enum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"
    ALL = "all"


# A month and a year are calendar-free spans, as Reddit's windows are.
WINDOW_SPANS: dict[Window, timedelta | None] = {
    Window.HOUR: timedelta(hours=1),
    Window.DAY: timedelta(days=1),
    Window.WEEK: timedelta(days=7),
    Window.MONTH: timedelta(days=30),
    Window.YEAR: timedelta(days=365),
    Window.ALL: None,
}
DEFAULT_WINDOW = Window.DAY
WINDOWED_SORTS = frozenset({Sort.TOP, Sort.CONTROVERSIAL})


class Action(enum.Enum):
    REMOVE = "remove"
    RESTORE = "restore"
    LOCK = "lock"
    UNLOCK = "unlock"
    PIN = "pin"
    UNPIN = "unpin"


# Which flag each moderation action sets, and to what.
ACTION_EFFECTS: dict[Action, tuple[str, bool]] = {
    Action.REMOVE: ("removed", True),
    Action.RESTORE: ("removed", False),
    Action.LOCK: ("locked", True),
    Action.UNLOCK: ("locked", False),
    Action.PIN: ("pinned", True),
    Action.UNPIN: ("pinned", False),
}


def _invalid(violations: Iterable[FieldError]) -> InvalidArgument:
    errors = tuple(violations)
    return InvalidArgument(
        "; ".join(f"{e.field}: {e.message}" for e in errors), field_errors=errors
    )


def _normalize_text(raw: str) -> str:
    return unicodedata.normalize("NFC", raw.replace("\r\n", "\n").replace("\r", "\n"))


def _is_visible(char: str) -> bool:
    """Not whitespace, not a control and not an invisible format character (e.g. U+200B)."""
    return not char.isspace() and unicodedata.category(char) not in ("Cc", "Cf")


def validate_title(raw: str) -> str:
    title = _normalize_text(raw).strip()
    if any(unicodedata.category(c) == "Cc" for c in title):
        raise InvalidArgument.for_field("title", "must be one line without control characters")
    if not any(_is_visible(c) for c in title):
        raise InvalidArgument.for_field("title", "is required")
    if not POST_TITLE_MIN <= len(title) <= POST_TITLE_MAX:
        raise InvalidArgument.for_field(
            "title", f"must be {POST_TITLE_MIN}-{POST_TITLE_MAX} characters"
        )
    return title


def validate_body(raw: str) -> str:
    body = _normalize_text(raw)
    if any(unicodedata.category(c) == "Cc" and c not in _MULTILINE_CONTROLS for c in body):
        raise InvalidArgument.for_field("body", "must not contain control characters")
    if not body.strip():
        return ""
    if len(body) > POST_BODY_MAX:
        raise InvalidArgument.for_field("body", f"must be at most {POST_BODY_MAX} characters")
    return body


def validate_url(raw: str) -> str:
    """An absolute http(s) link with a host and no credentials, or "" for no link."""
    url = raw.strip()
    if not url:
        return ""
    if len(url) > URL_MAX:
        raise InvalidArgument.for_field("url", f"must be at most {URL_MAX} characters")
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") or c == "\\" for c in url):
        raise InvalidArgument.for_field(
            "url", "must not contain spaces, control characters or backslashes"
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise InvalidArgument.for_field("url", "is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        raise InvalidArgument.for_field("url", "must be an http or https link")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidArgument.for_field("url", "must not contain credentials")
    if not parts.hostname or port == 0:
        raise InvalidArgument.for_field("url", "must name a host")
    # Lower-case the scheme only: the rest of a URL can be case-sensitive.
    return scheme + url[len(parts.scheme) :]


def validate_post(title: str, body: str, url: str) -> tuple[str, str, str]:
    """All three fields, reporting every invalid one at once."""
    violations: list[FieldError] = []
    results: list[str] = []
    for check, value in ((validate_title, title), (validate_body, body), (validate_url, url)):
        try:
            results.append(check(value))
        except InvalidArgument as error:
            violations.extend(error.field_errors)
    if violations:
        raise _invalid(violations)
    return results[0], results[1], results[2]


def validate_reason(raw: str) -> str:
    reason = _normalize_text(raw).strip()
    if any(unicodedata.category(c) == "Cc" and c not in _MULTILINE_CONTROLS for c in reason):
        raise InvalidArgument.for_field("reason", "must not contain control characters")
    if len(reason) > MODERATION_REASON_MAX:
        raise InvalidArgument.for_field(
            "reason", f"must be at most {MODERATION_REASON_MAX} characters"
        )
    return reason


def validate_search_query(raw: str) -> str:
    query = _normalize_text(raw).strip()
    if not SEARCH_QUERY_MIN <= len(query) <= SEARCH_QUERY_MAX:
        raise InvalidArgument.for_field(
            "q", f"must be {SEARCH_QUERY_MIN}-{SEARCH_QUERY_MAX} characters"
        )
    if any(unicodedata.category(c) == "Cc" for c in query):
        raise InvalidArgument.for_field("q", "must not contain control characters")
    return query


def page_size(requested: int) -> int:
    """0 means the default; anything else must be within the API's bounds."""
    if requested == 0:
        return PAGE_LIMIT_DEFAULT
    if not PAGE_LIMIT_MIN <= requested <= PAGE_LIMIT_MAX:
        raise InvalidArgument.for_field(
            "limit", f"must be between {PAGE_LIMIT_MIN} and {PAGE_LIMIT_MAX}"
        )
    return requested


def effective_window(sort: Sort, window: Window | None) -> Window | None:
    """The window a listing uses: None for HOT and NEW; DAY when TOP/CONTROVERSIAL omit it."""
    if sort not in WINDOWED_SORTS:
        return None
    return window or DEFAULT_WINDOW


def window_cutoff(window: Window | None, now: datetime) -> datetime | None:
    """The oldest creation time a windowed listing includes, or None for no bound."""
    if window is None:
        return None
    span = WINDOW_SPANS[window]
    return None if span is None else now - span


def ranks(upvotes: int, downvotes: int, created_at: datetime) -> tuple[float, float]:
    """(hot_rank, controversy_rank) of a tally; stored so listings sort on an index."""
    return (
        ranking.hot(upvotes, downvotes, created_at),
        ranking.controversy(upvotes, downvotes),
    )


# Listing scopes, as the cursor binds them.


@dataclass(frozen=True, slots=True)
class Scope:
    """Which posts a listing draws from: one community, several (a feed), or all (None)."""

    communities: tuple[uuid.UUID, ...] | None
    single: bool = False

    @classmethod
    def community(cls, community_id: uuid.UUID) -> Scope:
        return cls(communities=(community_id,), single=True)

    @classmethod
    def feed(cls, community_ids: Iterable[uuid.UUID]) -> Scope:
        return cls(communities=tuple(sorted(set(community_ids))), single=False)

    @classmethod
    def everything(cls) -> Scope:
        return cls(communities=None)

    @property
    def key(self) -> str:
        """A short, stable name of the scope; a feed is named by a digest of its communities."""
        if self.communities is None:
            return "all"
        if self.single:
            return f"community:{self.communities[0]}"
        digest = hashlib.sha256(",".join(str(c) for c in self.communities).encode()).hexdigest()
        return f"feed:{digest[:32]}"


def listing_cursor_scope(sort: Sort, window: Window | None, scope: Scope) -> str:
    return f"posts.list|{sort.value}|{window.value if window else '-'}|{scope.key}"


def search_cursor_scope(query: str, community_id: uuid.UUID | None) -> str:
    digest = hashlib.sha256(query.encode()).hexdigest()[:32]
    return f"posts.search|{community_id or 'all'}|{digest}"


# Reading


class StoredPost(Protocol):
    """What rendering needs of a stored post (the ORM row satisfies it)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def community_id(self) -> uuid.UUID: ...
    @property
    def author_id(self) -> uuid.UUID: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def score(self) -> int: ...
    @property
    def upvotes(self) -> int: ...
    @property
    def downvotes(self) -> int: ...
    @property
    def comment_count(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def edited_at(self) -> datetime | None: ...
    @property
    def locked(self) -> bool: ...
    @property
    def removed(self) -> bool: ...
    @property
    def pinned(self) -> bool: ...
    @property
    def deleted(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class PostView:
    """A post as readers see it: placeholders instead of deleted or removed content."""

    id: uuid.UUID
    community_id: uuid.UUID
    # None when the author deleted the post.
    author_id: uuid.UUID | None
    title: str
    body: str
    url: str
    score: int
    upvotes: int
    downvotes: int
    comment_count: int
    created_at: datetime
    edited_at: datetime | None
    locked: bool
    removed: bool
    pinned: bool
    deleted: bool


def render(post: StoredPost) -> PostView:
    author_id: uuid.UUID | None = post.author_id
    title, body, url = post.title, post.body, post.url
    if post.deleted:
        author_id, title, body, url = None, DELETED_TITLE, "", ""
    elif post.removed:
        title, body, url = REMOVED_TITLE, "", ""
    return PostView(
        id=post.id,
        community_id=post.community_id,
        author_id=author_id,
        title=title,
        body=body,
        url=url,
        score=post.score,
        upvotes=post.upvotes,
        downvotes=post.downvotes,
        comment_count=post.comment_count,
        created_at=post.created_at,
        edited_at=post.edited_at,
        locked=post.locked,
        removed=post.removed,
        pinned=post.pinned,
        deleted=post.deleted,
    )
