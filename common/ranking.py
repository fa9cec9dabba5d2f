"""Ranking formulas shared by posts and comments (pure functions, no I/O).

`hot` is r2's formula: its time term only grows, so a stored, indexed rank
changes only when the score changes and listings need no periodic recompute
(the trap Lemmy's decaying formula fell into). `best` is the lower bound of
the Wilson score interval for the up-vote share, at 80% confidence as in r2.
`controversy` favours many votes split evenly and is 0 when either side is 0.
"""

from __future__ import annotations

import math
from datetime import datetime

# r2's epoch offset (2005-12-08T07:46:43Z) and the seconds one order of magnitude is worth.
HOT_EPOCH_SECONDS = 1_134_028_003
HOT_SECONDS_PER_DECADE = 45_000
WILSON_Z = 1.281551565545


def hot(upvotes: int, downvotes: int, created_at: datetime) -> float:
    score = upvotes - downvotes
    order = math.log10(max(abs(score), 1))
    sign = 1 if score > 0 else -1 if score < 0 else 0
    seconds = created_at.timestamp() - HOT_EPOCH_SECONDS
    return round(sign * order + seconds / HOT_SECONDS_PER_DECADE, 7)


def wilson_lower_bound(upvotes: int, downvotes: int, z: float = WILSON_Z) -> float:
    n = upvotes + downvotes
    if n <= 0:
        return 0.0
    share = upvotes / n
    z2 = z * z
    centre = share + z2 / (2 * n)
    spread = z * math.sqrt((share * (1 - share) + z2 / (4 * n)) / n)
    return (centre - spread) / (1 + z2 / n)


def controversy(upvotes: int, downvotes: int) -> float:
    if upvotes <= 0 or downvotes <= 0:
        return 0.0
    magnitude = upvotes + downvotes
    balance = downvotes / upvotes if upvotes > downvotes else upvotes / downvotes
    return float(magnitude**balance)
