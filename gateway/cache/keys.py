"""Names of cache entries and of the tags that invalidate them.

An entry is named by what was asked (the route and its query); a tag by what
it contains. Every entry carries the tags of the things in it, and a write
invalidates the tags of what it changed:

| tag | on | invalidated by |
|---|---|---|
| `post:<id>` | the post, every page showing it | its votes, edits, deletion, moderation |
| `posts:all` | pages of GET /posts | new posts, moderation (restore, pin) |
| `posts:community:<name>` | pages of a community's posts | the same, in that community |
| `community:<name>` | the community, pages showing it | edits, members, moderators, bans |
| `communities` | pages of GET /communities | new communities |

Comments change a post's `comment_count` and new posts a community's
`post_count` through events a moment later, so those writes invalidate
`post:<id>` and `community:<name>` again once that has settled.

Community names are case-insensitively unique, so their tags use the
lowercased name, and routes that only know the name from the path can
invalidate exactly. Query values that can be long (cursors) are hashed into
entry names.
"""

from __future__ import annotations

import hashlib


def _short(value: str) -> str:
    return hashlib.blake2s(value.encode(), digest_size=12).hexdigest() if value else "-"


# Entries -------------------------------------------------------------------------------


def post_entry(post_id: str) -> str:
    return f"post:{post_id}"


def profile_entry(username: str) -> str:
    return f"profile:{username}"


def community_entry(name: str) -> str:
    return f"community:{name}"


def posts_page_entry(scope: str, *, sort: str, window: str | None, limit: int, cursor: str) -> str:
    """`scope` is `all` or `c/<community name as in the path>`."""
    return f"posts:{scope}:{sort}:{window or '-'}:{limit}:{_short(cursor)}"


def communities_page_entry(*, sort: str, limit: int, cursor: str) -> str:
    return f"communities:{sort}:{limit}:{_short(cursor)}"


# Tags ----------------------------------------------------------------------------------

ALL_POSTS = "posts:all"
COMMUNITIES = "communities"


def post_tag(post_id: str) -> str:
    return f"post:{post_id}"


def community_posts_tag(name: str) -> str:
    return f"posts:community:{name.lower()}"


def community_tag(name: str) -> str:
    return f"community:{name.lower()}"
