"""Field rules fixed by the public API (../shared/API.md), in one place.

The gateway validates requests against these at the edge and each service
validates again against the same constants, so the two can never disagree.
"""

from __future__ import annotations

import unicodedata

USERNAME_PATTERN = r"^[A-Za-z0-9_]{3,20}$"
USERNAME_MIN, USERNAME_MAX = 3, 20
PASSWORD_MIN, PASSWORD_MAX = 8, 128
EMAIL_MAX = 254

COMMUNITY_NAME_PATTERN = r"^[A-Za-z0-9_]{3,21}$"
COMMUNITY_TITLE_MAX = 100
COMMUNITY_DESCRIPTION_MAX = 10_000

POST_TITLE_MIN, POST_TITLE_MAX = 1, 300
POST_BODY_MAX = 40_000
URL_MAX = 2_000
COMMENT_BODY_MIN, COMMENT_BODY_MAX = 1, 10_000
COMMENT_MAX_DEPTH = 10

# The HTTP Idempotency-Key header (Stripe's rule): 1-255 printable ASCII characters.
IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"

PAGE_LIMIT_MIN, PAGE_LIMIT_MAX, PAGE_LIMIT_DEFAULT = 1, 100, 25
SEARCH_QUERY_MIN, SEARCH_QUERY_MAX = 1, 200


def nfkc(text: str) -> str:
    """Unicode compatibility normalisation (fullwidth letters become ASCII, and so on).

    Applied to names and passwords before any rule or comparison, at the edge
    and in the services alike, so both see the same text.
    """
    return unicodedata.normalize("NFKC", text)
